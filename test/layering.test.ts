// The import graph of src/ (madge): no circular import between modules, none between src/'s
// directories (cli -> bench-serve -> cli counts, even when no single module closes the loop),
// nothing in src/ importing bench/ or test/, and no native() call above src/tensor/. Type-only
// and dynamic imports count. A self-test first shows that the same check finds a cycle written
// with this project's explicit .ts import specifiers.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import madge from 'madge';

const root = join(import.meta.dirname, '..');

/** Module -> the modules it imports, paths relative to `base`, for the .ts files under `dir`. */
async function importGraph(dir: string, base: string): Promise<{ graph: Record<string, string[]>; circular: string[][]; skipped: string[] }> {
  const res = await madge(dir, {
    baseDir: base,
    fileExtensions: ['ts'],
    tsConfig: join(root, 'tsconfig.json'),
    detectiveOptions: { ts: { skipTypeImports: false, skipAsyncImports: false }, es6: { skipTypeImports: false, skipAsyncImports: false } },
  });
  return { graph: res.obj(), circular: res.circular(), skipped: res.warnings().skipped };
}

/** The unit a module belongs to: its directory under src/ (src/cli/x.ts -> src/cli), or itself at src/'s top. */
function unitOf(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? parts.slice(0, 2).join('/') : file;
}

/** A cycle in a directed graph (as a list of nodes, first repeated at the end), or null. */
function findCycle(edges: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 'open');
    path.push(n);
    for (const m of edges.get(n) ?? []) {
      if (state.get(m) === 'open') return [...path.slice(path.indexOf(m)), m];
      if (!state.has(m)) {
        const c = visit(m);
        if (c) return c;
      }
    }
    path.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of edges.keys()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

/** Cycles between units (directories of src/), each edge with one import that makes it. */
function unitCycle(graph: Record<string, string[]>): string | null {
  const edges = new Map<string, Set<string>>();
  const why = new Map<string, string>();
  for (const [from, deps] of Object.entries(graph)) {
    for (const to of deps) {
      const a = unitOf(from), b = unitOf(to);
      if (a === b || !to.startsWith('src/')) continue;
      if (!edges.has(a)) edges.set(a, new Set());
      edges.get(a)!.add(b);
      if (!why.has(`${a} ${b}`)) why.set(`${a} ${b}`, `${from} -> ${to}`);
    }
  }
  const c = findCycle(edges);
  if (!c) return null;
  return c.slice(0, -1).map((a, i) => `${a} -> ${c[i + 1]} (${why.get(`${a} ${c[i + 1]}`)})`).join('\n');
}

describe('layering: the check itself', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'slipstream-layering-'));
    mkdirSync(join(dir, 'src', 'a'), { recursive: true });
    mkdirSync(join(dir, 'src', 'b'), { recursive: true });
    // a module cycle through a type-only import, and a directory cycle through a dynamic import
    writeFileSync(join(dir, 'src', 'a', 'x.ts'), "import type { Y } from './y.ts';\nexport const x = (y: Y) => y;\nexport const lazy = () => import('../b/z.ts');\n");
    writeFileSync(join(dir, 'src', 'a', 'y.ts'), "import { x } from './x.ts';\nexport type Y = number;\nexport const y = x;\n");
    writeFileSync(join(dir, 'src', 'b', 'z.ts'), "import { y } from '../a/y.ts';\nexport const z = y;\n");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('finds a module cycle and a directory cycle written with .ts specifiers', async () => {
    const { graph, circular, skipped } = await importGraph(join(dir, 'src'), dir);
    assert.deepEqual(skipped, []);
    assert.deepEqual(graph['src/a/x.ts']?.sort(), ['src/a/y.ts', 'src/b/z.ts']);
    assert.deepEqual(circular, [['src/a/x.ts', 'src/a/y.ts']]);
    assert.match(unitCycle(graph) ?? '', /src\/a -> src\/b \(src\/a\/x\.ts -> src\/b\/z\.ts\)\nsrc\/b -> src\/a \(src\/b\/z\.ts -> src\/a\/y\.ts\)/);
  });
});

describe('layering: src/', () => {
  let graph: Record<string, string[]>;
  let circular: string[][];
  let skipped: string[];
  before(async () => {
    ({ graph, circular, skipped } = await importGraph(join(root, 'src'), root));
  });

  it('madge resolves every import (an unresolved one would hide its edges)', () => {
    assert.deepEqual(skipped, []);
    assert.ok(Object.keys(graph).length > 50, `only ${Object.keys(graph).length} modules found`);
    assert.ok(graph['src/cli/main.ts']?.includes('src/cli/serve.ts'), 'the dynamic import of cli/serve.ts is an edge');
    assert.ok(graph['src/engine/worker.ts']?.includes('src/engine/worker-protocol.ts'));
  });

  it('has no circular import between modules', () => {
    assert.deepEqual(circular, [], `circular imports:\n${circular.map((c) => [...c, c[0]].join(' -> ')).join('\n')}`);
  });

  it("has no circular import between src/'s directories", () => {
    const c = unitCycle(graph);
    assert.equal(c, null, `directories import each other:\n${c}`);
  });

  it('imports nothing from bench/, test/ or elsewhere outside src/', () => {
    const out = Object.entries(graph).flatMap(([from, deps]) => deps.filter((d) => !d.startsWith('src/')).map((d) => `${from} -> ${d}`));
    assert.deepEqual(out, []);
  });

  // Above src/tensor/, the native core is reached through src/tensor/runtime.ts, the Backend or
  // src/tensor/convert.ts or the training kernels (src/tensor/train-cpu.ts).
  const NATIVE_ALLOWED = new Set<string>();

  it('calls native() only inside src/tensor/', () => {
    const users: string[] = [];
    for (const [file, deps] of Object.entries(graph)) {
      if (file.startsWith('src/tensor/') || NATIVE_ALLOWED.has(file) || !deps.includes('src/tensor/native.ts')) continue;
      const src = readFileSync(join(root, file), 'utf8');
      // the names imported from tensor/native.ts, by static or dynamic import
      const named = [...src.matchAll(/(?:import|const)\s*\{([^}]*)\}\s*=?\s*(?:from\s*|await import\()\s*['"][^'"]*tensor\/native\.ts['"]/g)].flatMap((m) => m[1]!.split(','));
      const names = named.map((s) => s.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0]!);
      if (names.includes('native') || /import\s*\*\s*as\s+\w+\s+from\s*['"][^'"]*tensor\/native\.ts['"]/.test(src)) users.push(file);
    }
    assert.deepEqual(users, [], 'use src/tensor/runtime.ts (or convert.ts, or the Backend) instead of native()');
  });
});

describe('package.json', () => {
  it('"main" is the public API module, and it loads', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main: string };
    const api = (await import(join(root, pkg.main))) as Record<string, unknown>;
    for (const name of ['loadModel', 'Engine', 'Tokenizer', 'cpuBackend', 'RefBackend', 'startEngineHost', 'buildServer']) assert.equal(typeof api[name], 'function', name);
  });
});

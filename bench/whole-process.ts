// Whole-process generation time: what a user waits for from typing the command to the last token.
// A fresh process loads the GGUF, reads a 5-token prompt and writes 128 greedy tokens, for
// Slipstream (`slipstream generate`) and for llama.cpp (node-llama-cpp 3.21.1 through
// compat/llamacpp/greedy.mjs, the same 5 token ids, the same threads); the two alternate `reps`
// times and the medians are compared. Both include Node's start-up and the module loading.
//
//   node --import tsx bench/whole-process.ts [--models stories110m,tinyllama] [--types q8_0]
//                                            [--tokens 128] [--reps 5] [--threads 2] [--isa avx2]

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModelFile, type BenchType } from './models.ts';
import { isaFlag } from './util.ts';

const { values: a } = parseArgs({
  options: {
    models: { type: 'string', default: 'stories110m' }, types: { type: 'string', default: 'q8_0' }, tokens: { type: 'string', default: '128' },
    reps: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' }, isa: { type: 'string' },
  },
});
const isa = isaFlag(a.isa ? ['--isa', a.isa] : []);
const root = join(import.meta.dirname, '..');
const compat = join(root, 'compat', 'llamacpp');
if (!existsSync(join(compat, 'node_modules', 'node-llama-cpp'))) throw new Error('the peer is not installed: run `npm ci --prefix compat/llamacpp`');
const tokens = Number(a.tokens), reps = Number(a.reps), threads = Number(a.threads);
const med = (v: number[]) => v.slice().sort((x, y) => x - y)[v.length >> 1]!;
const tmp = mkdtempSync(join(tmpdir(), 'ss-whole-'));

function timed(cmd: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, cmd, { cwd, encoding: 'utf8', env, maxBuffer: 64 << 20 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.slice(-800)}`);
  return s;
}

console.log(`# whole process: load + 5-token prompt + ${tokens} greedy tokens, a fresh process each; ${cpus()[0]?.model ?? 'cpu'}, ${threads} threads, Slipstream kernels ${isa ?? 'the best this CPU has'}; medians of ${reps} alternating runs`);
for (const m of a.models!.split(',')) {
  for (const type of a.types!.split(',') as BenchType[]) {
    const file = benchModelFile(m, type);
    const req = join(tmp, `${m}-${type}.json`);
    writeFileSync(req, JSON.stringify({ model: file, prompts: [[1, 9038, 2501, 263, 931]], nPredict: tokens, threads, contextSize: 512 }));
    const ss: number[] = [], lc: number[] = [];
    for (let r = 0; r < reps; r++) {
      ss.push(timed([join(root, 'bin', 'slipstream.js'), 'generate', '-m', file, '-p', 'Once upon a time', '-n', String(tokens), '--temperature', '0', '--ignore-eos', '-t', String(threads)], root, { ...process.env, SLIPSTREAM_THREADS: String(threads) }));
      lc.push(timed([join(compat, 'greedy.mjs'), req], compat));
    }
    console.log(`${m.padEnd(12)} ${type.padEnd(6)} | Slipstream ${med(ss).toFixed(2)} s (${ss.map((x) => x.toFixed(2)).join(' ')}) | llama.cpp ${med(lc).toFixed(2)} s (${lc.map((x) => x.toFixed(2)).join(' ')}) | ${(med(lc) / med(ss)).toFixed(2)}x`);
  }
}

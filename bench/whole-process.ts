// Whole-process generation time: what a user waits for from typing the command to the last token.
// A fresh process loads the GGUF, reads the prompt "Once upon a time" and writes 128 greedy
// tokens, for Slipstream (`slipstream generate`) and for llama.cpp (node-llama-cpp 3.21.1 through
// compat/llamacpp/greedy.mjs, given the token ids the file's own tokenizer makes of that prompt, so
// both prefill the same tokens; the same threads); the two alternate `reps` times and the medians
// are compared. Both include Node's start-up and the module loading.
//
//   node --import tsx bench/whole-process.ts [--models stories110m,tinyllama] [--types q8_0]
//                                            [--tokens 128] [--reps 5] [--threads 2] [--isa avx2]

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchModelFile, type BenchType } from './models.ts';
import { checkIsa, isaFlag } from './util.ts';
import { readGguf } from '../src/formats/gguf.ts';
import { tokenizerFromGguf } from '../src/formats/gguf-tokenizer.ts';

const { values: a } = parseArgs({
  options: {
    models: { type: 'string', default: 'stories110m' }, types: { type: 'string', default: 'q8_0' }, tokens: { type: 'string', default: '128' },
    reps: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' }, isa: { type: 'string' },
  },
});
const isa = isaFlag(process.argv.slice(2));
const root = join(import.meta.dirname, '..');
const compat = join(root, 'compat', 'llamacpp');
if (!existsSync(join(compat, 'node_modules', 'node-llama-cpp'))) throw new Error('the peer is not installed: run `npm ci --prefix compat/llamacpp`');
const tokens = Number(a.tokens), reps = Number(a.reps), threads = Number(a.threads);
const med = (v: number[]) => v.slice().sort((x, y) => x - y)[v.length >> 1]!;
const tmp = mkdtempSync(join(tmpdir(), 'ss-whole-'));
const PROMPT = 'Once upon a time';

/** Seconds the process took, and its stderr. */
function timed(cmd: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): { s: number; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, cmd, { cwd, encoding: 'utf8', env, maxBuffer: 64 << 20 });
  const s = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed: ${r.stderr.slice(-800)}`);
  return { s, stderr: r.stderr };
}

console.log(`# whole process: load + the prompt "${PROMPT}" + ${tokens} greedy tokens, a fresh process each; ${cpus()[0]?.model ?? 'cpu'}, ${threads} threads, Slipstream kernels ${isa ?? 'the best this CPU has'} (each row names the ones that ran); medians of ${reps} alternating runs`);
for (const m of a.models!.split(',')) {
  for (const type of a.types!.split(',') as BenchType[]) {
    const file = benchModelFile(m, type);
    const req = join(tmp, `${m}-${type}.json`);
    const ids = tokenizerFromGguf(readGguf(file).metadata, file).encode(PROMPT, { addSpecialTokens: true }); // as `generate -p` does
    writeFileSync(req, JSON.stringify({ model: file, prompts: [ids], nPredict: tokens, threads, contextSize: Math.max(512, ids.length + tokens) }));
    const ss: number[] = [], lc: number[] = [];
    let ran = '';
    for (let r = 0; r < reps; r++) {
      const one = timed([join(root, 'bin', 'slipstream.js'), 'generate', '-m', file, '-p', PROMPT, '-n', String(tokens), '--temperature', '0', '--ignore-eos', '-t', String(threads)], root, { ...process.env, SLIPSTREAM_THREADS: String(threads) });
      ss.push(one.s);
      ran = /threads, (\w+)\s*$/m.exec(one.stderr)?.[1] ?? 'unknown'; // generate's summary line ends with the kernels' ISA
      lc.push(timed([join(compat, 'greedy.mjs'), req], compat).s);
    }
    checkIsa(isa, ran, `slipstream generate on ${m} ${type}`);
    console.log(`${m.padEnd(12)} ${type.padEnd(6)} ${ran.padEnd(8)} | Slipstream ${med(ss).toFixed(2)} s (${ss.map((x) => x.toFixed(2)).join(' ')}) | llama.cpp ${med(lc).toFixed(2)} s (${lc.map((x) => x.toFixed(2)).join(' ')}) | ${(med(lc) / med(ss)).toFixed(2)}x`);
  }
}

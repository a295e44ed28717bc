// Where a prefill's time goes, op by op: wraps every method of the cpu backend with a timer
// (the ops are synchronous), warms up with an 8-token prefill, then times prefills of a
// pseudo-random prompt on fresh sequences and prints each op's total time and call count for
// the last one. matmul rows name their shapes and weight dtype.
//
//   node --import tsx bench/profile.ts MODEL.gguf [--prompt 512] [--reps 2] [--threads 2]
//   (the bench:generate models: bench/out/models/stories110m-random-q8_0.gguf ...)
//
// With --decode S: decode steps instead, S sequences batched (as `serve` runs them), each
// --prompt tokens into its context: per step, each op's time and calls (16 steps).
//   node --import tsx bench/profile.ts MODEL.gguf --decode 16 --prompt 48

import { makeBatch } from '../src/engine/batch.ts';
import { Sequence } from '../src/engine/generate.ts';
import { KvPool } from '../src/models/kv.ts';
import { loadModelSync } from '../src/models/load.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import type { Tensor } from '../src/tensor/tensor.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const file = args[0];
if (!file || file.startsWith('--')) {
  console.error('usage: node --import tsx bench/profile.ts MODEL.gguf [--prompt 512] [--reps 2] [--threads 2]');
  process.exit(2);
}
const promptLen = Number(opt('prompt', '512')), reps = Number(opt('reps', '2'));
const be = cpuBackend();
be.setThreads(Number(opt('threads', '2')));
const lm = loadModelSync(file, be);

const times = new Map<string, [number, number]>();
const target = be as unknown as Record<string, unknown>;
for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(be))) {
  const f = target[name];
  if (typeof f !== 'function' || name === 'constructor') continue;
  target[name] = function (this: unknown, ...a: unknown[]) {
    const t = performance.now();
    const r = (f as (...x: unknown[]) => unknown).apply(this, a);
    const dt = performance.now() - t;
    let key = name;
    if (name === 'matmul') {
      const [x, w] = a as [Tensor, Tensor];
      key += ` ${x.shape.join('x')} . ${w.shape.join('x')} ${w.dtype}`;
    }
    const e = times.get(key) ?? [0, 0];
    e[0] += dt, e[1]++;
    times.set(key, e);
    return r;
  };
}

const decodeSeqs = Number(opt('decode', '0'));
if (decodeSeqs > 0) {
  const S = decodeSeqs, ctx = promptLen, bs = 16, nb = Math.ceil((ctx + 32) / bs), steps = 16;
  const kv = new KvPool(lm.model.cfg, nb * S, bs, 'f32', true);
  const tables = Array.from({ length: S }, (_, q) => Int32Array.from({ length: nb }, (_, i) => q * nb + i));
  for (let q = 0; q < S; q++) lm.model.forward(makeBatch([{ tokens: Array.from({ length: ctx }, (_, i) => 5 + ((i * 7 + q) % 1000)), startPos: 0, blockTable: tables[q]! }], bs), kv);
  let pos = ctx;
  const step = () => lm.model.forward(makeBatch(tables.map((t, q) => ({ tokens: [7 + q + pos], startPos: pos, blockTable: t })), bs), kv);
  step(), pos++;
  times.clear();
  const t = performance.now();
  for (let i = 0; i < steps; i++, pos++) step();
  const ms = (performance.now() - t) / steps;
  console.log(`# ${file}: decode, ${S} sequences at ${ctx}+ tokens, ${be.threads} threads, isa ${be.isa}: ${ms.toFixed(1)} ms a step = ${((S * 1000) / ms).toFixed(1)} tok/s`);
  for (const [k, [tt, c]] of [...times].sort((a, b) => b[1][0] - a[1][0])) console.log(`${(tt / steps).toFixed(2).padStart(9)} ms ${String(c / steps).padStart(5)}  ${k}`);
  process.exit(0);
}

let s = 12345;
const prompt = Array.from({ length: promptLen }, () => 3 + ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) % (lm.config.vocabSize - 3)));
new Sequence(lm.model, { maxContext: 32 }).prefill(prompt.slice(0, 8));
console.log(`# ${file}: prefill of ${promptLen} tokens, ${be.threads} threads, isa ${be.isa}`);
for (let r = 0; r < reps; r++) {
  times.clear();
  const seq = new Sequence(lm.model, { maxContext: promptLen + 8 });
  const t = performance.now();
  seq.prefill(prompt);
  const ms = performance.now() - t;
  console.log(`prefill ${r + 1}: ${ms.toFixed(1)} ms = ${((promptLen / ms) * 1000).toFixed(0)} tok/s`);
}
for (const [k, [t, c]] of [...times].sort((a, b) => b[1][0] - a[1][0])) console.log(`${t.toFixed(1).padStart(9)} ms ${String(c).padStart(5)}  ${k}`);

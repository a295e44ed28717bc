// Prepacked q4_k (native/src/kquants.inc) against the stored layout on one model, in one process:
// the model loaded twice (the first copy with prepacking off), decode steps of S sequences
// alternating between the two copies, 6 rounds of 8 steps, medians; the read bandwidth after.
//
//   node --import tsx bench/prepack-ab.ts MODEL.gguf [S=1] [context=64]
import { makeBatch } from '../src/engine/batch.ts';
import { KvPool } from '../src/models/kv.ts';
import { loadModelSync } from '../src/models/load.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { native } from '../src/tensor/native.ts';
const file = process.argv[2]!; const S = Number(process.argv[3] ?? 1); const ctx = Number(process.argv[4] ?? 64);
const be = cpuBackend(); be.setThreads(2);
const mk = (mode: 'off' | 'mapped') => {
  be.prepackMode = mode;
  const lm = loadModelSync(file, be);
  const bs = 16, nb = Math.ceil((ctx + 200) / bs);
  const kv = new KvPool(lm.model.cfg, nb * S, bs, 'f32', true);
  const tables = Array.from({ length: S }, (_, s) => Int32Array.from({ length: nb }, (_, i) => s * nb + i));
  for (let s = 0; s < S; s++) lm.model.forward(makeBatch([{ tokens: Array.from({ length: ctx }, (_, i) => 5 + ((i * 7 + s) % 1000)), startPos: 0, blockTable: tables[s]! }], bs), kv);
  let pos = ctx;
  return (steps: number) => {
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) { lm.model.forward(makeBatch(tables.map((t, s) => ({ tokens: [7 + s + i], startPos: pos, blockTable: t })), bs), kv); pos++; }
    return (performance.now() - t0) / steps;
  };
};
const a = mk('off'), b = mk('mapped');
const big = new Float32Array(200_000_000); big.fill(1);
const bw = () => { const t0 = performance.now(); native().benchRead(big, 1); return (big.byteLength / ((performance.now() - t0) / 1e3)) / 1e9; };
const ra: number[] = [], rb: number[] = [];
for (let r = 0; r < 6; r++) { ra.push(a(8)); rb.push(b(8)); }
const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1]!;
console.log(`${file} S=${S}: stored ${med(ra).toFixed(1)} ms/step (${(S * 1000 / med(ra)).toFixed(1)} tok/s), prepacked ${med(rb).toFixed(1)} ms/step (${(S * 1000 / med(rb)).toFixed(1)} tok/s), ratio ${(med(ra) / med(rb)).toFixed(3)}; read bw ${bw().toFixed(1)} GB/s`);
console.log('rounds', ra.map((v) => v.toFixed(1)).join(' '), '|', rb.map((v) => v.toFixed(1)).join(' '));

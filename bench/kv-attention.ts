// Decode attention over f32, f16 and q8_0 KV pools, the dtypes alternating in one process (so a
// busy neighbour slows all alike): time per call and KV bytes read per second, median of rounds.
//
//   node --import tsx bench/kv-attention.ts [--seqs 16] [--len 1024] [--hq 32] [--hkv 4] [--dim 64] [--rounds 7]
//
// The default shape is bench:kernels' decode attention row (16 sequences x 1024 tokens, 32 query /
// 4 KV heads, head dim 64).

import { cpuBackend } from '../src/tensor/cpu.ts';
import { bytesFor } from '../src/tensor/dtype.ts';
import { residentZeros } from '../src/tensor/native.ts';
import { Tensor } from '../src/tensor/tensor.ts';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return Number(i >= 0 && args[i + 1] ? args[i + 1]! : fallback);
};
const B = opt('seqs', '16'), L = opt('len', '1024'), Hq = opt('hq', '32'), Hkv = opt('hkv', '4'), D = opt('dim', '64'), rounds = opt('rounds', '7');
const bs = 16, maxBlocks = Math.ceil(L / bs), nBlocks = B * maxBlocks;
const be = cpuBackend();

let s = 1;
const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const f32 = (shape: number[]) => Tensor.fromF32(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, rnd), shape);

const tables = Int32Array.from({ length: B * maxBlocks }, (_, i) => i);
const lens = new Int32Array(B).fill(L);
const slots = Int32Array.from({ length: nBlocks * bs }, (_, i) => i);
const kvIn = f32([nBlocks * bs, Hkv, D]);
const q = f32([B, Hq, D]);
const out = Tensor.zeros([B, Hq, D]);
const pools = (['f32', 'f16', 'q8_0'] as const).map((dt) => {
  const kShape = dt === 'q8_0' ? [nBlocks, Hkv, bs, D] : [nBlocks, Hkv, D, bs];
  const [k, v] = residentZeros([kShape, [nBlocks, Hkv, bs, D]], dt);
  be.kvWrite(kvIn, k!, slots, 'k');
  be.kvWrite(kvIn, v!, slots, 'v');
  return { dt, k: k!, v: v!, bytes: 2 * bytesFor(dt, B * L * Hkv * D), ms: [] as number[] };
});
const call = (p: (typeof pools)[number]) => be.attentionDecode(q, p.k, p.v, tables, maxBlocks, lens, out, { scale: 1 / Math.sqrt(D) });
for (const p of pools) call(p); // warm-up
for (let r = 0; r < rounds; r++) {
  for (const p of pools) {
    const reps = 5;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) call(p);
    p.ms.push((performance.now() - t0) / reps);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
console.log(`# decode attention: ${B} seqs x ${L} tokens, ${Hq} q / ${Hkv} kv heads, head dim ${D}; isa ${be.isa}, ${be.threads} threads; median of ${rounds} rounds`);
const f16ms = med(pools[1]!.ms);
for (const p of pools) {
  const ms = med(p.ms);
  console.log(`${p.dt.padEnd(5)} ${ms.toFixed(3)} ms  ${(p.bytes / (ms / 1000) / 1e9).toFixed(1)} GB/s of KV  (${(p.bytes / 2 ** 20).toFixed(1)} MiB; time vs f16 ${(ms / f16ms).toFixed(2)}x)`);
}

// Per-block cost of the quantized matmul kernels, one thread, weights in cache (N x K = 256 x 4096
// by default): ns per 256-weight block per row of x, for GEMV (M = 1, the call included) and GEMM
// (M = 64), the types side by side in one process, 15 alternating rounds (min and median).
// KB_M lists other row counts (e.g. 3,4: where the packed k-quant GEMM takes over from the direct tiles).
//
//   node --import tsx bench/kquant-blocks.ts
//   KB_TYPES=q8_0,q4_k,q6_k KB_N=256 KB_K=4096 KB_M=1,3,4,64 node --import tsx bench/kquant-blocks.ts
import { cpuBackend } from '../src/tensor/cpu.ts';
import { bytesFor, encode, type DType } from '../src/tensor/dtype.ts';
import { Tensor } from '../src/tensor/tensor.ts';
const cpu = cpuBackend();
cpu.setThreads(1);
const K = Number(process.env.KB_K ?? 4096), N = Number(process.env.KB_N ?? 256);
const r = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731) * Math.cos(i * 0.0123));
const dts = (process.env.KB_TYPES ?? 'q8_0,q4_k,q5_k,q6_k').split(',') as DType[];
const ws = Object.fromEntries(dts.map((d) => [d, new Tensor(d, [N, K], encode(d, r(N * K)))]));
const res: Record<string, number[]> = {};
for (const M of (process.env.KB_M ?? '1,64').split(',').map(Number)) {
  const x = Tensor.fromF32(r(M * K), [M, K]);
  const out = Tensor.zeros([M, N]);
  for (let round = 0; round < 15; round++) {
    for (const dt of dts) {
      const it = Math.max(4, Math.round(Math.max(100, (100 * 256 * 4096) / (N * K)) / M));
      const t0 = performance.now();
      for (let i = 0; i < it; i++) cpu.matmul(x, ws[dt]!, out);
      const ns = ((performance.now() - t0) / it) * 1e6 / ((N * K) / 256) / M;
      (res[`${dt} M=${M}`] ??= []).push(ns);
    }
  }
}
for (const [k, v] of Object.entries(res)) { v.sort((a, b) => a - b); console.log(k.padEnd(12), 'ns per 256-weight block per x row: min', v[0]!.toFixed(1), 'median', v[v.length >> 1]!.toFixed(1)); }

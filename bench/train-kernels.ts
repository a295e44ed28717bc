// Training-kernel micro-benchmark: the `cpu` TrainKernels at typical training shapes (B*T =
// 4096 rows), against this machine's ceilings measured in the same run (streaming read
// bandwidth, peak f32 FMA rate).
//
//   node --import tsx bench/train-kernels.ts [--quick] [--isa avx2|portable] [--threads n] [--only attention] [--json out.json]
//
// Elementwise and row kernels report GB/s of compulsory traffic (each buffer read or written
// once); attention reports time and GFLOP/s of its matrix products (causal half counted: the
// forward does 2, the backward 5 products of B*H*T*(T+1)/2*D multiply-adds, the recompute of the
// scores and dP included).

import { writeFileSync } from 'node:fs';
import { CpuTrainKernels, trainCore } from '../src/tensor/train-cpu.ts';
import { type KernelRow, randomF32, timeBest } from './util.ts';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const jsonPath = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
const isaArg = args.includes('--isa') ? args[args.indexOf('--isa') + 1] : undefined;
const threadsArg = args.includes('--threads') ? Number(args[args.indexOf('--threads') + 1]) : undefined;
/** runs only the kernels whose name contains this */
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]! : '';
const want = (name: string) => name.includes(only);
const MIN_TIME = quick ? 0.2 : 0.6;

const core = trainCore();
if (isaArg) core.setIsa(isaArg as 'avx2');
if (threadsArg) core.setThreads(threadsArg);
const k = new CpuTrainKernels();


const time = (fn: (i: number) => void): number => timeBest(fn, MIN_TIME);


type Row = KernelRow;
const rows: Row[] = [];

function report(kernel: string, shape: string, sec: number, value: number, unit: Row['unit'], ceiling: number): void {
  rows.push({ kernel, shape, time_us: sec * 1e6, value, unit });
  const pct = ((100 * value) / ceiling).toFixed(0).padStart(3);
  console.log(`${kernel.padEnd(26)} ${shape.padEnd(22)} ${(sec * 1e3).toFixed(3).padStart(9)} ms ${value.toFixed(1).padStart(8)} ${unit}  ${pct}% of ceiling`);
}

// ---- ceilings -------------------------------------------------------------------------------------
const info = core.info();
const big = randomF32(64 << 20, 7);
const readGBs = (big.byteLength / time(() => core.benchRead(big))) / 1e9;
const fmaIters = 2_000_000;
let flops = 0;
const fmaGF = (() => {
  const s = time(() => {
    flops = core.benchFma(fmaIters);
  });
  return flops / s / 1e9;
})();
console.log(`isa ${info.isa}, ${info.threads} threads: streaming read ${readGBs.toFixed(1)} GB/s, peak FMA ${fmaGF.toFixed(1)} GFLOP/s\n`);

// ---- elementwise / row kernels (--only: elementwise, norm, glu, rope, crossEntropy, embedding, attention) --------------------------------------------------------------------
const GB = (bytes: number, s: number) => bytes / s / 1e9;
if (want('elementwise')) {
  const n = 16 << 20;
  const x = randomF32(n, 1), y = randomF32(n, 2);
  let s = time(() => k.axpy(1e-3, x, y));
  report('axpy', `n=${n}`, s, GB(12 * n, s), 'GB/s', readGBs);
  s = time(() => k.scaleInPlace(y, 0.999));
  report('scaleInPlace', `n=${n}`, s, GB(8 * n, s), 'GB/s', readGBs);
  s = time(() => k.sumSquares(x));
  report('sumSquares', `n=${n}`, s, GB(4 * n, s), 'GB/s', readGBs);
  const m = new Float32Array(n), v = new Float32Array(n);
  let step = 1;
  s = time(() => k.adamw(x, y, m, v, step++, 1e-4, 0.9, 0.95, 1e-8, 0.1, 1));
  report('adamw', `n=${n}`, s, GB(28 * n, s), 'GB/s', readGBs);
}
if (want('norm')) {
  const R = 4096;
  for (const C of [256, 1024]) {
    const n = R * C;
    const x = randomF32(n, 3), w = randomF32(C, 4), b = randomF32(C, 5), dy = randomF32(n, 6);
    const out = new Float32Array(n), dx = new Float32Array(n), dw = new Float32Array(C), db = new Float32Array(C);
    const rstd = new Float32Array(R), mean = new Float32Array(R);
    const shape = `${R}x${C}`;
    let s = time(() => k.rmsNorm(x, w, R, C, 1e-5, out, rstd));
    report('rmsNorm', shape, s, GB(8 * n, s), 'GB/s', readGBs);
    s = time(() => k.rmsNormBackward(x, w, rstd, dy, R, C, dx, dw));
    report('rmsNormBackward', shape, s, GB(12 * n, s), 'GB/s', readGBs);
    s = time(() => k.layerNorm(x, w, b, R, C, 1e-5, out, mean, rstd));
    report('layerNorm', shape, s, GB(8 * n, s), 'GB/s', readGBs);
    s = time(() => k.layerNormBackward(x, w, mean, rstd, dy, R, C, dx, dw, db));
    report('layerNormBackward', shape, s, GB(12 * n, s), 'GB/s', readGBs);
  }
}
if (want('glu')) {
  const n = 4096 * 2048;
  const g = randomF32(n, 8, 4), u = randomF32(n, 9), dy = randomF32(n, 10);
  const out = new Float32Array(n), dg = new Float32Array(n), du = new Float32Array(n);
  const shape = '4096x2048';
  let s = time(() => k.swiglu(g, u, out));
  report('swiglu', shape, s, GB(12 * n, s), 'GB/s', readGBs);
  s = time(() => k.swigluBackward(g, u, dy, dg, du));
  report('swigluBackward', shape, s, GB(20 * n, s), 'GB/s', readGBs);
  for (const a of ['tanh', 'erf'] as const) {
    s = time(() => k.geglu(g, u, out, a));
    report(`geglu ${a}`, shape, s, GB(12 * n, s), 'GB/s', readGBs);
    s = time(() => k.gegluBackward(g, u, dy, dg, du, a));
    report(`gegluBackward ${a}`, shape, s, GB(20 * n, s), 'GB/s', readGBs);
    s = time(() => k.gelu(g, out, a));
    report(`gelu ${a}`, shape, s, GB(8 * n, s), 'GB/s', readGBs);
    s = time(() => k.geluBackward(g, dy, dg, a));
    report(`geluBackward ${a}`, shape, s, GB(12 * n, s), 'GB/s', readGBs);
  }
}
if (want('rope')) {
  const R = 4096, H = 6, D = 64, n = R * H * D;
  const x = randomF32(n, 11), pos = Int32Array.from({ length: R }, (_, i) => i % 256);
  const s = time(() => k.rope(x, R, H, D, pos, { layout: 'half', theta: 10000 }, false));
  report('rope', `${R}x${H}x${D}`, s, GB(8 * n, s), 'GB/s', readGBs);
}
if (want('crossEntropy')) {
  const R = 4096;
  for (const V of [4096, 8192]) {
    const logits = randomF32(R * V, 12, 5), d = new Float32Array(R * V);
    const targets = Int32Array.from({ length: R }, (_, i) => (i * 7919) % V);
    let s = time(() => k.crossEntropy(logits, R, V, targets, 0, 1 / R, d));
    report('crossEntropy', `${R}x${V}`, s, GB(8 * R * V, s), 'GB/s', readGBs);
    s = time(() => k.crossEntropy(logits, R, V, targets, 30, 1 / R, d));
    report('crossEntropy cap=30', `${R}x${V}`, s, GB(8 * R * V, s), 'GB/s', readGBs);
  }
}
if (want('embedding')) {
  const R = 4096, D = 512, V = 8192;
  const ids = Int32Array.from({ length: R }, (_, i) => (i * 7919) % V), dy = randomF32(R * D, 13), table = new Float32Array(V * D);
  const s = time(() => k.embeddingBackward(ids, dy, D, table));
  report('embeddingBackward', `${R}x${D}`, s, GB(12 * R * D, s), 'GB/s', readGBs);
}

// ---- attention ------------------------------------------------------------------------------------
console.log('');
for (const [B, T, Hq, Hkv, D] of !want('attention') ? [] :  [[16, 256, 6, 6, 64], [16, 256, 6, 2, 64], [4, 1024, 6, 6, 64]] as const) {
  const q = randomF32(B * T * Hq * D, 14), kk = randomF32(B * T * Hkv * D, 15), v = randomF32(B * T * Hkv * D, 16), dout = randomF32(B * T * Hq * D, 17);
  const seg = new Int32Array(B * T);
  const out = new Float32Array(q.length), lse = new Float32Array(B * T * Hq);
  const dq = new Float32Array(q.length), dk = new Float32Array(kk.length), dv = new Float32Array(v.length);
  const opts = { scale: 1 / Math.sqrt(D), softCap: 0, window: 0 };
  const mac = B * Hq * ((T * (T + 1)) / 2) * D; // multiply-adds of one causal product
  const shape = `B${B} T${T} H${Hq}/${Hkv} D${D}`;
  let s = time(() => k.attention(q, kk, v, seg, B, T, Hq, Hkv, D, opts, out, lse));
  report('attention fwd', shape, s, (2 * 2 * mac) / s / 1e9, 'GFLOP/s', fmaGF);
  s = time(() => k.attentionBackward(q, kk, v, seg, out, lse, dout, B, T, Hq, Hkv, D, opts, dq, dk, dv));
  report('attention bwd', shape, s, (5 * 2 * mac) / s / 1e9, 'GFLOP/s', fmaGF);
}

if (jsonPath) {
  writeFileSync(jsonPath, JSON.stringify({ isa: info.isa, threads: info.threads, readGBs, fmaGFlops: fmaGF, rows }, null, 2));
  console.log(`\nwrote ${jsonPath}`);
}

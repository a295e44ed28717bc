// sgemm benchmark: GFLOP/s per shape and transpose combination, against the f32 FMA peak
// (native().benchFma) measured right before each shape, so that load from other processes
// hits the ceiling and the kernel alike. Every number is the best of several runs.
//
//   node --import tsx bench/sgemm.ts                  # training shapes, active ISA, all threads
//   node --import tsx bench/sgemm.ts --quick          # fewer repetitions
//   node --import tsx bench/sgemm.ts --isa avx2       # another instruction set
//   node --import tsx bench/sgemm.ts --shape 512x768x1000
//   SLIPSTREAM_THREADS=1 node --import tsx bench/sgemm.ts

import { native, type NativeCore } from '../src/tensor/native.ts';
import { randomF32 } from './util.ts';

type Sgemm = (
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
) => void;
const n = native() as NativeCore & { sgemm: Sgemm };

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const isa = opt('--isa');
if (isa) n.setIsa(isa as 'avx512' | 'avx2' | 'portable');
const REPS = quick ? 4 : 10;

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}


/** Best of several ~50 ms runs of the FMA loop, in GFLOP/s. */
function fmaPeak(): number {
  const iters = 200_000;
  let t0 = now();
  n.benchFma(iters); // warm-up, and a size for the runs
  const per = Math.max(now() - t0, 1e-6);
  const run = Math.max(1, Math.round((0.05 / per) * iters));
  let best = 0;
  for (let r = 0; r < (quick ? 3 : 5); r++) {
    t0 = now();
    const flops = n.benchFma(run);
    best = Math.max(best, flops / (now() - t0) / 1e9);
  }
  return best;
}

const shapes: [number, number, number, string][] = opt('--shape')
  ? [[...opt('--shape')!.split('x').map(Number), 'custom'] as [number, number, number, string]]
  : [
      [1024, 1024, 1024, 'square'],
      [4096, 1152, 384, 'forward, fused QKV-like (x . W)'],
      [4096, 384, 1024, 'forward, down projection'],
      [384, 1024, 4096, 'weight gradient dW = x^T . dy (K = tokens)'],
      [1000, 1000, 1000, 'odd sizes (edge tiles)'],
    ];

const info = n.info();
console.log(`sgemm on ${info.isa}, ${info.threads} threads; best of ${REPS} runs; % is of the benchFma peak measured just before each shape`);
for (const [M, N, K, what] of shapes) {
  const peak = fmaPeak();
  console.log(`\nM=${M} N=${N} K=${K} (${what}); FMA peak ${peak.toFixed(1)} GFLOP/s`);
  const A = randomF32(M * K, 1), B = randomF32(K * N, 2), C = new Float32Array(M * N);
  const flops = 2 * M * N * K;
  for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as [boolean, boolean][]) {
    const lda = tA ? M : K, ldb = tB ? K : N;
    n.sgemm(tA, tB, M, N, K, 1, A, lda, B, ldb, 0, C, N); // warm-up: packing buffers, pages of C
    let best = Infinity;
    for (let r = 0; r < REPS; r++) {
      const t0 = now();
      n.sgemm(tA, tB, M, N, K, 1, A, lda, B, ldb, 0, C, N);
      best = Math.min(best, now() - t0);
    }
    const gf = flops / best / 1e9;
    const label = `${tA ? 'T' : 'N'}${tB ? 'T' : 'N'}`;
    console.log(`  ${label}  ${gf.toFixed(1).padStart(7)} GFLOP/s  ${((100 * gf) / peak).toFixed(0).padStart(4)}%  (${(best * 1e3).toFixed(2)} ms)`);
  }
}

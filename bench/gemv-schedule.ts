// Matrix-vector task scheduling, A/B in one process: tasks handed out from one shared counter
// (the earlier scheme) against contiguous per-thread shares with stealing (native/src/ops.cc,
// gemv_for). The two alternate six times on each shape, weights rotated through 1.2 GB so every
// call streams from DRAM; this VM's memory speed drifts, so only an alternating comparison says
// anything.
//   node --import tsx bench/gemv-schedule.ts [q8_0,f16,bf16,f32]
import { cpuBackend } from '../src/tensor/cpu.ts';
import { bytesFor, DTYPE_CODE, type DType } from '../src/tensor/dtype.ts';
import { native } from '../src/tensor/native.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { randomF32, timeBest } from './util.ts';

const n = native();
const cpu = cpuBackend();
const types = (process.argv[2] ?? 'q8_0,f16,bf16,f32').split(',') as DType[];
const shapes: [number, number][] = [
  [2048, 5632],
  [5632, 2048],
  [32000, 2048],
];
console.log(`# gemv scheduling, ${cpu.threads} threads, isa ${cpu.isa}: mean GB/s over 6 alternating rounds`);
for (const dtype of types) {
  for (const [N, K] of shapes) {
    const one = new Uint8Array(bytesFor(dtype, N * K));
    n.convert(randomF32(N * K, 3), DTYPE_CODE.f32, one, DTYPE_CODE[dtype], N * K);
    const copies = Math.ceil(1.2e9 / one.byteLength);
    const ws = Array.from({ length: copies }, () => new Tensor(dtype, [N, K], one.slice()));
    const x = Tensor.fromF32(randomF32(K, 7), [1, K]);
    const out = Tensor.zeros([1, N]);
    const sum = [0, 0];
    for (let round = 0; round < 6; round++) {
      for (const [i, counter] of [true, false].entries()) {
        n.setGemvSharedCounter(counter);
        sum[i]! += one.byteLength / timeBest((c) => cpu.matmul(x, ws[c % copies]!, out), 0.4) / 1e9;
      }
    }
    n.setGemvSharedCounter(false);
    console.log(
      `gemv ${dtype.padEnd(5)} ${`${N}x${K}`.padEnd(11)} shared counter ${(sum[0]! / 6).toFixed(1).padStart(5)}  shares ${(sum[1]! / 6).toFixed(1).padStart(5)} GB/s  = ${(sum[1]! / sum[0]!).toFixed(3)}x`,
    );
  }
}

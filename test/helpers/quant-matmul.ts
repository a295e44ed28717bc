// What the quantized-weight kernel tests (kquants, legacyq) share: running under one instruction
// set, awkward activations, and the batch-invariance check every quantized GEMM must pass.

import assert from 'node:assert/strict';
import type { CpuBackend } from '../../src/tensor/cpu.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { rng } from './random.ts';

/** Runs fn with the cpu backend's kernels forced to `isa`, then restores them. */
export function withIsa(cpu: CpuBackend, isa: string, fn: () => void): void {
  const before = cpu.isa;
  cpu.setIsa(isa as 'avx2');
  try {
    fn();
  } finally {
    cpu.setIsa(before as 'avx2');
  }
}

/** [M, K] activations of varied magnitude, with one all-zero row (its scale d is 0). */
export function randX(M: number, K: number, seed: number): Tensor {
  const r = rng(seed);
  const v = Float32Array.from({ length: M * K }, (_, i) => r() * (1 + ((i * 31) % 7)));
  for (let k = 0; k < K; k++) v[(M >> 1) * K + k] = 0;
  return Tensor.fromF32(v, [M, K]);
}

/**
 * A row's bits do not depend on how many rows run with it (T = 1, 2, 3, 5, 17 against 17, and
 * the last row alone: the GEMM tiles' edge), and matmulMulti equals separate matmuls.
 * x: [17, K]; w: [N, K]; w2: [5, K].
 */
export function assertBatchInvariant(cpu: CpuBackend, x: Tensor, w: Tensor, w2: Tensor, label: string): void {
  const N = w.shape[0]!;
  const all = Tensor.zeros([17, N]);
  cpu.matmul(x, w, all);
  for (const T of [1, 2, 3, 5, 17]) {
    const out = Tensor.zeros([T, N]);
    cpu.matmul(x.narrow(0, T), w, out);
    assert.deepEqual(out.toF32(), all.toF32().subarray(0, T * N), `${label} T=${T}`);
    const o1 = Tensor.zeros([T, N]), o2 = Tensor.zeros([T, 5]);
    cpu.matmulMulti(x.narrow(0, T), [w, w2], [o1, o2]);
    const s2 = Tensor.zeros([T, 5]);
    cpu.matmul(x.narrow(0, T), w2, s2);
    assert.deepEqual(o1.toF32(), out.toF32(), `${label} multi T=${T}`);
    assert.deepEqual(o2.toF32(), s2.toF32(), `${label} multi second weight T=${T}`);
  }
  const last = Tensor.zeros([1, N]);
  cpu.matmul(x.narrow(16, 1), w, last);
  assert.deepEqual(last.toF32(), all.toF32().subarray(16 * N), `${label} row 16 alone`);
}

// Benchmark helpers (bench/*.ts and src/tensor/bench-kernels.ts): seeded inputs and a best-of-3 timer.

/** Seeded xorshift32 fill for benchmark inputs: uniform in [-scale, scale). */
export function randomF32(count: number, seed = 1, scale = 1): Float32Array {
  const a = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (((s >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

/** One measured kernel row of a benchmark's table (and its --json output). */
export interface KernelRow {
  kernel: string;
  shape: string;
  time_us: number;
  value: number;
  unit: 'GB/s' | 'GFLOP/s';
}

export const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/**
 * Seconds per call of fn (given the call index): one warm-up call, then the best of 3 batches
 * of at least minTime / 3 seconds each.
 */
export function timeBest(fn: (i: number) => void, minTime: number): number {
  fn(0);
  let best = Infinity;
  let i = 1;
  for (let rep = 0; rep < 3; rep++) {
    const t0 = now();
    let calls = 0;
    while (now() - t0 < minTime / 3 || calls === 0) {
      fn(i++);
      calls++;
    }
    best = Math.min(best, (now() - t0) / calls);
  }
  return best;
}

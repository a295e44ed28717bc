// Shared by the benchmark scripts: seeded inputs and a best-of-3 timer (src/util/bench.ts, which
// the kernel benchmark in src/tensor/ uses too).
export { type KernelRow, now, randomF32, timeBest } from '../src/util/bench.ts';

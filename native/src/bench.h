// Machine ceilings for the benchmarks (bench/kernels.ts, bench/sgemm.ts, bench/train*.ts): a
// streaming read and the peak FMA rate, per ISA (bench_kernels.inc) and on all pool threads
// (bench.cc, which also binds them as benchRead / benchFma). Not part of the kernels' ABI.
#pragma once
#include <cstdint>

struct ss_bench_kernels {
  int width;  // floats per vector
  // sums n floats with four independent accumulators
  float (*read_sum)(const float* p, int64_t n);
  // 12 independent FMA chains, `iters` steps: 2 * 12 * width flops per step
  float (*peak_fma)(int64_t iters);
};

namespace ss_avx512 { extern const ss_bench_kernels bench_table; }
namespace ss_avx2 { extern const ss_bench_kernels bench_table; }
namespace ss_portable { extern const ss_bench_kernels bench_table; }

// Every per-ISA kernel file compiled for avx512 (binding.gyp gives this file the ISA's flags).
#define SS_ISA_AVX512 1
#define SS_NS ss_avx512
#include "kernels.inc"
#include "train_kernels.inc"
#include "train_image.inc"
#include "sgemm_kernels.inc"
#include "bench_kernels.inc"

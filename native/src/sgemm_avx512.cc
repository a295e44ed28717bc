#define SS_ISA_AVX512 1
#define SS_NS ss_avx512
#include "sgemm_kernels.inc"

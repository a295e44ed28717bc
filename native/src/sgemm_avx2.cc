#define SS_ISA_AVX2 1
#define SS_NS ss_avx2
#include "sgemm_kernels.inc"

#define SS_ISA_PORTABLE 1
#define SS_NS ss_portable
#include "sgemm_kernels.inc"

// Every per-ISA kernel file compiled for portable (binding.gyp gives this file the ISA's flags).
#define SS_ISA_PORTABLE 1
#define SS_NS ss_portable
#include "kernels.inc"
#include "train_kernels.inc"
#include "train_image.inc"
#include "sgemm_kernels.inc"
#include "bench_kernels.inc"
#include "kv_q8.inc"

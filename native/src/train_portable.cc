#define SS_ISA_PORTABLE 1
#define SS_NS ss_portable
#include "train_kernels.inc"

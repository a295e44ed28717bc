// Attention over q8_0 KV pools (kv_q8.inc, compiled for AVX2 and portable; an AVX-512 CPU runs
// the AVX2 build: no AVX-512 version has been written or measured yet).
#pragma once
#include <cstdint>

#include "kernels.h"

#define SS_KVQ8_DECL void attention_q8(const ss_attn_args& a, int64_t task0, int64_t task1);
#if defined(__x86_64__)
namespace ss_avx2 { SS_KVQ8_DECL }
#endif
namespace ss_portable { SS_KVQ8_DECL }
#undef SS_KVQ8_DECL

// Longest head dim the q8_0 attention kernel takes (its scratch rows live on the stack).
constexpr int64_t SS_KVQ8_DMAX = 512;

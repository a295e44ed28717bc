// The native core's C++ API: whole ops, threaded over the pool, ISA chosen at run time.
// addon.cc exposes these to JavaScript; a CUDA backend would implement the same list.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace ss {

// Instruction sets: "avx512", "avx2", "portable". The best one the CPU and OS support is
// chosen at load, unless SLIPSTREAM_NO_SIMD=1 (portable) or SLIPSTREAM_ISA=name is set.
const char* isa();
bool isa_supported(const char* name);
bool set_isa(const char* name);

// The active instruction set's entry of a per-ISA table (kernels.h, train.h, sgemm.h, bench.h):
// ss::active(SS_PER_ISA(train_table)) is ss_avx2::train_table on AVX2, and so on. The AVX-512
// and AVX2 kernel libraries are built on x86-64 only (binding.gyp); elsewhere every entry is the
// portable one.
int isa_index();  // 0 avx512, 1 avx2, 2 portable
template <class T>
inline const T* active(const T* avx512, const T* avx2, const T* portable) {
  const int i = isa_index();
  return i == 0 ? avx512 : i == 1 ? avx2 : portable;
}
#if defined(__x86_64__)
#define SS_PER_ISA(table) &ss_avx512::table, &ss_avx2::table, &ss_portable::table
#else
#define SS_PER_ISA(table) &ss_portable::table, &ss_portable::table, &ss_portable::table
#endif

void matmul(const ss_matmul_args& a);
// up to 8 matrices (same x, M, K and weight dtype) as one job; x quantized once for q8_0
void matmul_multi(const ss_matmul_args* a, int n);
// the first N / 8 * 8 rows of an N x K matrix w of a type with a prepacked layout (Q4_K,
// kquants.h) in that layout at dst (kq_prepacked_bytes(wtype, N, K) bytes, 32-byte aligned), on the pool
void kq_prepack(const uint8_t* w, int wtype, int64_t N, int64_t K, uint8_t* dst);
void binary(int op, const float* a, int64_t lda, const float* b, int64_t ldb, int bcast, float* out, int64_t ldo, int64_t rows, int64_t cols);
void scale(const float* a, int64_t lda, float s, float* out, int64_t ldo, int64_t rows, int64_t cols);
void rmsnorm(const float* x, int64_t ldx, const float* w, float eps, float* out, int64_t ldo, int64_t rows, int64_t cols);
void layernorm(const float* x, int64_t ldx, const float* w, const float* b, float eps, float* out, int64_t ldo, int64_t rows, int64_t cols);
void unary(int op, const float* x, int64_t ldx, float* out, int64_t ldo, int64_t rows, int64_t cols);
void gated(int op, const float* g, int64_t ldg, const float* u, int64_t ldu, float* out, int64_t ldo, int64_t rows, int64_t cols);
void attention(const ss_attn_args& a, int64_t T);

struct rope_args {
  float* x; int64_t T, H, D, sT, sH;
  const int32_t* positions;
  int64_t rotary_dim;
  int half_layout;            // 0: pairs (2i, 2i+1); 1: pairs (i, i + rd/2)
  double theta;
  int scaling;                // 0 none, 1 linear, 2 llama3, 3 longrope (Phi-3)
  double factor, low_freq_factor, high_freq_factor, original_max_position;
  // longrope: each inverse frequency divided by short_factors[i] at positions below
  // original_max_position, by long_factors[i] from there on; cos and sin times `factor` (the
  // attention factor)
  const float* short_factors;
  const float* long_factors;
};
// rotates x in place; inverse: by minus the angle (the backward of the rotation)
void rope(const rope_args& a, bool inverse = false);

// out[t, :] = row ids[t] of table [V, D] (any dtype) as f32
void embedding(const uint8_t* table, int ttype, int64_t D, const int32_t* ids, int64_t T, float* out, int64_t ldo);
// Writes k [T, H, D] (strides sT, sH) at slots into an f32/f16 value pool [nBlocks, H, bs, D],
// or with keyMajor into a key pool [nBlocks, H, D, bs] (each head dim of a block's keys contiguous).
void kv_write(const float* k, int64_t T, int64_t H, int64_t D, int64_t sT, int64_t sH, void* cache, int ctype, int64_t bs, const int32_t* slots, bool keyMajor);
void argmax(const float* x, int64_t ldx, int64_t rows, int64_t cols, int32_t* out);
// n elements from src (any dtype) to dst (any dtype); through f32, q8_0 quantized as llama.cpp
void convert(const void* src, int stype, void* dst, int dtype, int64_t n);

size_t dtype_bytes(int dtype, int64_t n);

}  // namespace ss

// General f32 matrix multiply for training (forward and backward GEMMs), BLIS-style:
// op(A) and op(B) are packed into cache-sized panels (the packing absorbs the transposes),
// a register-blocked microkernel per ISA does the FMAs, and the pool threads each own
// independent blocks of C.
#pragma once
#include <cstdint>

namespace ss {

// Row-major: C[M, N] = alpha * op(A) . op(B) + beta * C.
// transA = false: A is [M, K], rows lda apart; true: A is stored [K, M], rows lda apart.
// transB = false: B is [K, N], rows ldb apart; true: B is stored [N, K], rows ldb apart.
// beta == 0 overwrites C without reading it (C may hold NaN); K == 0 or alpha == 0 leave
// C = beta * C without reading A or B. Runs on the pool, on the active ISA (ss::isa()).
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same with B in half precision (IEEE f16, or bfloat16 when bf16): weights kept at half
// their f32 size, widened (exactly) to f32 as their panels are packed, so the product costs
// what the f32 one does and equals sgemm on the widened B bit for bit.
void sgemm_half_b(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const uint16_t* B, bool bf16, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace ss

// The per-ISA part (sgemm_kernels.inc compiled three times); sgemm.cc blocks and threads.
struct ss_sgemm_kernels {
  const char* name;
  int mr, nr;      // microtile: mr rows of op(A) by nr columns of op(B)
  int kc, mc, nc;  // cache blocking: depth of a packed block, rows of an A block, columns of a B block
  // Packs `rows` rows (of op(A), or columns of op(B)) by kc into panels of mr (pack_a) or
  // nr (pack_b) rows, each stored k-major (panel[k * r + i]), the last one zero-padded.
  // Element (i, k) is src[i * ld + k] when !kmajor, src[k * ld + i] when kmajor.
  void (*pack_a)(const float* src, int64_t ld, bool kmajor, int64_t rows, int64_t kc, float* dst);
  void (*pack_b)(const float* src, int64_t ld, bool kmajor, int64_t rows, int64_t kc, float* dst);
  // pack_b from f16 (or bf16) elements, widened to f32.
  void (*pack_b_half)(const uint16_t* src, int64_t ld, bool kmajor, bool bf16, int64_t rows, int64_t kc, float* dst);
  // C[0:m, 0:n] = alpha * (packed A panel . packed B panel) + beta * C (beta == 0: C not read);
  // m <= mr, n <= nr.
  void (*kernel)(int64_t kc, const float* a, const float* b, float* C, int64_t ldc, float alpha, float beta, int64_t m, int64_t n);
};

namespace ss_avx512 { extern const ss_sgemm_kernels sgemm_table; }
namespace ss_avx2 { extern const ss_sgemm_kernels sgemm_table; }
namespace ss_portable { extern const ss_sgemm_kernels sgemm_table; }

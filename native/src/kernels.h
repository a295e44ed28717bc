// The C ABI between the dispatcher (ops.cc) and the per-ISA kernels (kernels.inc compiled
// three times). Kernels are single-threaded over a range; ops.cc splits work over the pool.
#pragma once
#include <cstdint>

// SS_Q4_K / SS_Q6_K / SS_Q5_K: GGUF k-quant weights (matmul only, x quantized to Q8_K; kquants.h)
// SS_Q4_0 / SS_Q4_1 / SS_Q5_0 / SS_Q5_1 / SS_IQ4_NL: GGUF's simple weights (matmul only, x quantized to Q8_0,
// and for the _1 types also the Q8_1 block sums; legacyq.h)
enum ss_dtype { SS_F32 = 0, SS_F16 = 1, SS_BF16 = 2, SS_Q8_0 = 3, SS_Q4_K = 4, SS_Q6_K = 5, SS_Q5_K = 6, SS_Q4_0 = 7, SS_Q4_1 = 8, SS_Q5_0 = 9, SS_Q5_1 = 10, SS_IQ4_NL = 11, SS_Q2_K = 12, SS_Q3_K = 13, SS_IQ4_XS = 14 };
enum ss_unary { SS_SOFTMAX = 0, SS_SILU = 1, SS_GELU_TANH = 2, SS_GELU_ERF = 3 };
enum ss_gated { SS_SWIGLU = 0, SS_GEGLU_TANH = 1, SS_GEGLU_ERF = 2 };
enum ss_binary { SS_ADD = 0, SS_MUL = 1 };

struct ss_matmul_args {
  const float* x; int64_t ldx;      // [M, K] rows ldx floats apart
  const uint8_t* w; int wtype;      // [N, K] contiguous rows of `wtype`
  int64_t ldw;                      // bytes per weight row
  float* out; int64_t ldo;          // [M, N]
  int64_t M, N, K;
  // q8_0 weights only: x quantized to q8_0 blocks by ops.cc, as int8 [M, K] and scales [M, K/32]
  const int8_t* xq; const float* xd;
  // k-quant weights only: x as Q8_K, xq int8 [M, K], xd [M, K/256] and the sums of each 16 xbs [M, K/16]
  const int16_t* xbs;
  // q4_0 / q5_0 / iq4_nl weights: xq / xd as for q8_0; q4_1 / q5_1 also xs [M, K/32], Q8_1's f16(d * sum q) as f32
  const float* xs;
  // q4_k weights: rows [0, N / 8 * 8) prepacked (ss::kq_prepack), or null; used where the
  // ISA's kernels read that layout (AVX2, AVX-512), else the rows above are read
  const uint8_t* wp;
};

struct ss_attn_args {
  const float* q; int64_t qsT, qsH;     // [T, Hq, D]
  float* out; int64_t osT, osH;         // [T, Hq, D]
  const void* kc; const void* vc;       // pools: keys [nBlocks, Hkv, D, bs], values [nBlocks, Hkv, bs, D]
  int ctype;                            // SS_F32 or SS_F16
  int64_t Hq, Hkv, bs, D;
  const int32_t* tables; int64_t tableStride;  // row t's block table at tables + t * tableStride
  const int32_t* positions;             // row t's query position; keys 0..pos visible
  float scale, softcap; int64_t window;
  int64_t T;                            // rows
  // rows taken together per task (consecutive rows of one sequence, tableStride 0): task i is
  // rows [i / Hkv * rowsPerTask, + rowsPerTask) x KV head i % Hkv; 0 or 1: one row per task
  int64_t rowsPerTask;
};

using ss_qkx2_x8_fn = void (*)(int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales, float* mins, float rmin, float rdelta, int nstep, bool use_mad);

struct ss_kernels {
  const char* name;
  // out[m0:m1, n0:n1]
  void (*matmul)(const ss_matmul_args& a, int64_t m0, int64_t m1, int64_t n0, int64_t n1);
  void (*binary)(int op, const float* a, int64_t lda, const float* b, int64_t ldb, int bcast, float* out, int64_t ldo, int64_t cols, int64_t r0, int64_t r1);
  void (*scale)(const float* a, int64_t lda, float s, float* out, int64_t ldo, int64_t cols, int64_t r0, int64_t r1);
  void (*rmsnorm)(const float* x, int64_t ldx, const float* w, float eps, float* out, int64_t ldo, int64_t cols, int64_t r0, int64_t r1);
  void (*layernorm)(const float* x, int64_t ldx, const float* w, const float* b, float eps, float* out, int64_t ldo, int64_t cols, int64_t r0, int64_t r1);
  void (*unary)(int op, const float* x, int64_t ldx, float* out, int64_t ldo, int64_t cols, int64_t r0, int64_t r1);
  void (*gated)(int op, const float* g, int64_t ldg, const float* u, int64_t ldu, float* out, int64_t ldo, int64_t cols, int64_t r0, int64_t r1);
  // tasks are (row block, kv head g) pairs numbered block * Hkv + g (see rowsPerTask)
  void (*attention)(const ss_attn_args& a, int64_t task0, int64_t task1);
  // the matmul tile sizes this ISA prefers (rows of x, rows of w)
  int mr, nr;
  // q8_0 activation blocks: q[n] int8 and d[n/32] (the f16-rounded scale as f32), llama.cpp's rounding
  void (*quantize_q8)(const float* x, int64_t n, int8_t* q, float* d);
  // n floats to f16 bits at dst (any alignment), round to nearest even: f32_to_f16_scalar's bits
  void (*f32_to_f16)(const float* src, void* dst, int64_t n);
  // query rows attention's score tile takes at once (ops.cc groups a prefill chunk's rows to fill it)
  int attn_rows;
  // 8 independent make_qkx2_quants searches (the k-quant quantizers' inner loop, kquants.h), rows
  // of n <= 32 at x / w / L with stride n: the scalar function's bits
  ss_qkx2_x8_fn make_qkx2_x8;
};

namespace ss_avx512 { extern const ss_kernels table; }
namespace ss_avx2 { extern const ss_kernels table; }
namespace ss_portable { extern const ss_kernels table; }

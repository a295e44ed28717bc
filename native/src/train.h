// The training kernels' C++ API (forward ops that save what the backward needs, the backward
// ops, the loss and the optimizer step), threaded over the pool with the ISA chosen at run
// time like ops.h. train_addon.cc exposes them to JavaScript as the `cpu` TrainKernels
// (src/tensor/train-cpu.ts); the semantics of every op are those of src/tensor/train-kernels.ts.
//
// Determinism: every result is reduced in an order fixed by the shapes and the ISA, never by
// the thread count or the schedule: parameter-gradient partial sums (dw, db) and per-chunk
// sums (sumSquares, the loss) are made over fixed chunks and added in chunk order.
#pragma once
#include <cstdint>

#include "kernels.h"
#include "ops.h"

// Causal attention over B packed sequences of T tokens (q [B*T, Hq, D]; k, v [B*T, Hkv, D]).
struct ss_tattn_args {
  const float* q; const float* k; const float* v;
  const int32_t* seg;                           // [B*T] document ids
  int64_t B, T, Hq, Hkv, D;
  float scale, softcap; int64_t window;
  float* out; float* lse;                       // forward outputs [B*T, Hq, D], [B*T, Hq]
  const float* o; const float* lse_in; const float* dout;  // backward inputs
  float* dq; float* dk; float* dv;              // backward outputs
};

struct ss_adamw_consts {
  float b1, b2, omb1, omb2, lr, eps, wd, gscale, ibc1, ibc2;  // ibc = 1 / (1 - beta^step)
};

// Backward attention task kinds: a whole (sequence, kv head) at once, or split in two passes
// (dk/dv over a key block, dq over a query block) when there are too few (b, g) pairs to
// keep every thread busy.
enum ss_attn_bwd_mode { SS_ABWD_ALL = 0, SS_ABWD_DKDV = 1, SS_ABWD_DQ = 2 };

// Query rows per attention tile (a multiple of every ISA's GEMM tile height, 6 and 4). Forward
// tasks and backward query blocks start at multiples of it, so a row's result never depends
// on how the work was split.
constexpr int64_t SS_ATTN_TQ = 48;

// Per-ISA kernels, single-threaded over a range (train_kernels.inc compiled three times).
struct ss_train_kernels {
  const char* name;
  int width;
  void (*axpy)(float a, const float* x, float* y, int64_t i0, int64_t i1);
  double (*sumsq)(const float* x, int64_t i0, int64_t i1);
  void (*scale)(float* x, float s, int64_t i0, int64_t i1);
  void (*rmsnorm)(const float* x, const float* w, int64_t cols, float eps, float* out, float* rstd, int64_t r0, int64_t r1);
  // dx for rows [r0, r1); dwp[c] = this range's partial sum of dw (overwritten)
  void (*rmsnorm_bwd)(const float* x, const float* w, const float* rstd, const float* dy, int64_t cols, float* dx, float* dwp, int64_t r0, int64_t r1);
  void (*layernorm)(const float* x, const float* w, const float* b, int64_t cols, float eps, float* out, float* mean, float* rstd, int64_t r0, int64_t r1);
  void (*layernorm_bwd)(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, int64_t cols, float* dx, float* dwp, float* dbp, int64_t r0, int64_t r1);
  // dst[c] += sum over p < np of parts[p * ld + c], p in order, for c in [c0, c1)
  void (*colsum)(const float* parts, int64_t np, int64_t ld, float* dst, int64_t c0, int64_t c1);
  // op: ss_gated (SS_SWIGLU, SS_GEGLU_TANH, SS_GEGLU_ERF)
  void (*glu)(int op, const float* g, const float* u, float* out, int64_t i0, int64_t i1);
  void (*glu_bwd)(int op, const float* g, const float* u, const float* dy, float* dg, float* du, int64_t i0, int64_t i1);
  // erf: 0 tanh approximation, 1 exact
  void (*gelu)(int erf, const float* x, float* out, int64_t i0, int64_t i1);
  void (*gelu_bwd)(int erf, const float* x, const float* dy, float* dx, int64_t i0, int64_t i1);
  // queries [q0, q1) of sequence b (q0 a multiple of SS_ATTN_TQ), all query heads of kv head g
  void (*attn_fwd)(const ss_tattn_args& a, int64_t b, int64_t g, int64_t q0, int64_t q1);
  // SS_ABWD_ALL: [lo, hi) ignored; SS_ABWD_DKDV: keys [lo, hi); SS_ABWD_DQ: queries [lo, hi)
  void (*attn_bwd)(const ss_tattn_args& a, int64_t b, int64_t g, int mode, int64_t lo, int64_t hi);
  // one row of logits; returns the row's loss (target < 0: writes zeros, returns 0)
  double (*xent_row)(const float* z, int64_t V, int32_t target, float softcap, float gscale, float* dz);
  // dtable[ids[r], c] += dy[r, c] for all r (in order) and c in [c0, c1)
  void (*emb_bwd)(const int32_t* ids, int64_t n, const float* dy, int64_t D, float* dtable, int64_t c0, int64_t c1);
  void (*adamw)(float* p, const float* g, float* m, float* v, const ss_adamw_consts& c, int64_t i0, int64_t i1);
};

namespace ss_avx512 { extern const ss_train_kernels train_table; }
namespace ss_avx2 { extern const ss_train_kernels train_table; }
namespace ss_portable { extern const ss_train_kernels train_table; }

namespace ss {

void t_axpy(float a, const float* x, float* y, int64_t n);
double t_sum_squares(const float* x, int64_t n);
void t_scale(float* x, int64_t n, float s);
void t_rmsnorm(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out, float* rstd);
void t_rmsnorm_bwd(const float* x, const float* w, const float* rstd, const float* dy, int64_t rows, int64_t cols, float* dx, float* dw);
void t_layernorm(const float* x, const float* w, const float* b, int64_t rows, int64_t cols, float eps, float* out, float* mean, float* rstd);
void t_layernorm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, int64_t rows, int64_t cols,
                     float* dx, float* dw, float* db);
void t_glu(int op, const float* g, const float* u, float* out, int64_t n);
void t_glu_bwd(int op, const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n);
void t_gelu(int erf, const float* x, float* out, int64_t n);
void t_gelu_bwd(int erf, const float* x, const float* dy, float* dx, int64_t n);
void t_attention(const ss_tattn_args& a);
void t_attention_bwd(const ss_tattn_args& a);
// sum of the counted rows' losses; targets[r] < 0 ignores row r
double t_cross_entropy(const float* z, int64_t rows, int64_t V, const int32_t* targets, float softcap, float gscale, float* dz);
void t_embedding_bwd(const int32_t* ids, int64_t n, const float* dy, int64_t D, float* dtable);
void t_adamw(float* p, const float* g, float* m, float* v, int64_t n, double step, double lr, double b1, double b2, double eps, double wd,
             double gscale);

}  // namespace ss

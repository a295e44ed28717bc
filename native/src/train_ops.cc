// Training ops: ISA dispatch (the instruction set ops.cc has chosen, so SLIPSTREAM_NO_SIMD,
// SLIPSTREAM_ISA and setIsa apply here too) and threading over the pool. Work is split into
// chunks whose boundaries depend only on the shapes, so every reduction has one fixed order.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ops.h"
#include "pool.h"
#include "train.h"

namespace ss {
namespace {

const ss_train_kernels* TK() { return active(SS_PER_ISA(train_table)); }

constexpr int64_t kChunk = 16384;  // elements per elementwise task (a multiple of every vector width)

// rows per task so that a task is worth a few microseconds
int64_t row_grain(int64_t cols) {
  const int64_t g = 16384 / (cols > 0 ? cols : 1);
  return g < 1 ? 1 : g;
}

template <class F>
void chunks(int64_t n, int64_t chunk, const F& f) {
  const int64_t tasks = (n + chunk - 1) / chunk;
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) f(t, t * chunk, t * chunk + chunk < n ? t * chunk + chunk : n);
  });
}

// A grow-only buffer of the calling thread (the op's partial sums).
template <class T>
T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}
thread_local std::vector<float> t_parts;
thread_local std::vector<double> t_dparts;

// Parameter-gradient partial sums: rows in fixed chunks (at most 64), each chunk's sums in its
// own row of `parts`, then the chunks added column by column in chunk order.
struct RowChunks {
  int64_t per, n;
  RowChunks(int64_t rows) {
    per = (rows + 63) / 64;
    if (per < 1) per = 1;
    n = (rows + per - 1) / per;
  }
};

void reduce_parts(const ss_train_kernels* k, const float* parts, int64_t np, int64_t cols, float* dst) {
  const int64_t cb = 256;
  parallel_for((cols + cb - 1) / cb, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) k->colsum(parts, np, cols, dst, t * cb, (t + 1) * cb < cols ? (t + 1) * cb : cols);
  });
}

}  // namespace

void t_axpy(float a, const float* x, float* y, int64_t n) {
  const ss_train_kernels* k = TK();
  chunks(n, kChunk, [&](int64_t, int64_t i0, int64_t i1) { k->axpy(a, x, y, i0, i1); });
}

double t_sum_squares(const float* x, int64_t n) {
  const ss_train_kernels* k = TK();
  const int64_t chunk = 4 * kChunk, tasks = (n + chunk - 1) / chunk;
  double* part = scratch(t_dparts, (size_t)tasks);
  chunks(n, chunk, [&](int64_t t, int64_t i0, int64_t i1) { part[t] = k->sumsq(x, i0, i1); });
  double s = 0;
  for (int64_t t = 0; t < tasks; t++) s += part[t];
  return s;
}

void t_scale(float* x, int64_t n, float s) {
  const ss_train_kernels* k = TK();
  chunks(n, kChunk, [&](int64_t, int64_t i0, int64_t i1) { k->scale(x, s, i0, i1); });
}

void t_rmsnorm(const float* x, const float* w, int64_t rows, int64_t cols, float eps, float* out, float* rstd) {
  const ss_train_kernels* k = TK();
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) { k->rmsnorm(x, w, cols, eps, out, rstd, r0, r1); });
}

void t_rmsnorm_bwd(const float* x, const float* w, const float* rstd, const float* dy, int64_t rows, int64_t cols, float* dx, float* dw) {
  if (rows == 0 || cols == 0) return;
  const ss_train_kernels* k = TK();
  const RowChunks rc(rows);
  float* parts = scratch(t_parts, (size_t)(rc.n * cols));
  parallel_for(rc.n, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t r0 = t * rc.per, r1 = r0 + rc.per < rows ? r0 + rc.per : rows;
      k->rmsnorm_bwd(x, w, rstd, dy, cols, dx, parts + t * cols, r0, r1);
    }
  });
  reduce_parts(k, parts, rc.n, cols, dw);
}

void t_layernorm(const float* x, const float* w, const float* b, int64_t rows, int64_t cols, float eps, float* out, float* mean, float* rstd) {
  const ss_train_kernels* k = TK();
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) { k->layernorm(x, w, b, cols, eps, out, mean, rstd, r0, r1); });
}

void t_layernorm_bwd(const float* x, const float* w, const float* mean, const float* rstd, const float* dy, int64_t rows, int64_t cols,
                     float* dx, float* dw, float* db) {
  if (rows == 0 || cols == 0) return;
  const ss_train_kernels* k = TK();
  const RowChunks rc(rows);
  float* parts = scratch(t_parts, (size_t)(rc.n * cols * (db ? 2 : 1)));
  float* bparts = db ? parts + rc.n * cols : nullptr;
  parallel_for(rc.n, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t r0 = t * rc.per, r1 = r0 + rc.per < rows ? r0 + rc.per : rows;
      k->layernorm_bwd(x, w, mean, rstd, dy, cols, dx, parts + t * cols, bparts ? bparts + t * cols : nullptr, r0, r1);
    }
  });
  reduce_parts(k, parts, rc.n, cols, dw);
  if (db) reduce_parts(k, bparts, rc.n, cols, db);
}

void t_glu(int op, const float* g, const float* u, float* out, int64_t n) {
  const ss_train_kernels* k = TK();
  chunks(n, kChunk / 4, [&](int64_t, int64_t i0, int64_t i1) { k->glu(op, g, u, out, i0, i1); });
}

void t_glu_bwd(int op, const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  const ss_train_kernels* k = TK();
  chunks(n, kChunk / 4, [&](int64_t, int64_t i0, int64_t i1) { k->glu_bwd(op, g, u, dy, dg, du, i0, i1); });
}

void t_gelu(int erf, const float* x, float* out, int64_t n) {
  const ss_train_kernels* k = TK();
  chunks(n, kChunk / 4, [&](int64_t, int64_t i0, int64_t i1) { k->gelu(erf, x, out, i0, i1); });
}

void t_gelu_bwd(int erf, const float* x, const float* dy, float* dx, int64_t n) {
  const ss_train_kernels* k = TK();
  chunks(n, kChunk / 4, [&](int64_t, int64_t i0, int64_t i1) { k->gelu_bwd(erf, x, dy, dx, i0, i1); });
}

constexpr int64_t kAttnRows = SS_ATTN_TQ;

void t_attention(const ss_tattn_args& a) {
  if (a.B == 0 || a.T == 0 || a.Hq == 0) return;  // (D = 0 still has an lse: log of the visible count)
  const ss_train_kernels* k = TK();
  // A task is a run of tiles of one (sequence, kv head), sharing one transposed K panel: as
  // long as possible while leaving at least 4 tasks per thread. Results do not depend on it.
  const int64_t nq = (a.T + kAttnRows - 1) / kAttnRows, pairs = a.B * a.Hkv;
  int64_t per = pairs * nq / (4 * pool_threads());
  per = per < 1 ? 1 : (per > nq ? nq : per);
  const int64_t runs = (nq + per - 1) / per, rows = per * kAttnRows;
  // later runs see more keys: hand those out first so the tail is short ones
  parallel_for(pairs * runs, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t r = runs - 1 - t / pairs, p = t % pairs;
      const int64_t q0 = r * rows, q1 = q0 + rows < a.T ? q0 + rows : a.T;
      k->attn_fwd(a, p / a.Hkv, p % a.Hkv, q0, q1);
    }
  });
}

void t_attention_bwd(const ss_tattn_args& a) {
  if (a.B == 0 || a.T == 0 || a.Hq == 0 || a.D == 0) return;
  const ss_train_kernels* k = TK();
  const int64_t pairs = a.B * a.Hkv;
  const int64_t threads = pool_threads();
  if (pairs >= 2 * threads || a.T <= 2 * SS_ATTN_TQ) {
    // one task per (sequence, kv head): dq, dk and dv in one pass
    parallel_for(pairs, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) k->attn_bwd(a, t / a.Hkv, t % a.Hkv, SS_ABWD_ALL, 0, 0);
    });
    return;
  }
  // Too few pairs for the pool: dk/dv per key block and dq per query block, as one job (they
  // write disjoint outputs). Recomputing the probabilities twice beats idle threads.
  const int64_t blk = 2 * SS_ATTN_TQ, nb = (a.T + blk - 1) / blk, n1 = pairs * nb;
  parallel_for(2 * n1, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t u = t % n1, p = u / nb, i = u % nb;
      const int64_t lo = i * blk, hi = lo + blk < a.T ? lo + blk : a.T;
      k->attn_bwd(a, p / a.Hkv, p % a.Hkv, t < n1 ? SS_ABWD_DKDV : SS_ABWD_DQ, lo, hi);
    }
  });
}

double t_cross_entropy(const float* z, int64_t rows, int64_t V, const int32_t* targets, float softcap, float gscale, float* dz) {
  const ss_train_kernels* k = TK();
  double* loss = scratch(t_dparts, (size_t)rows);
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) loss[r] = k->xent_row(z + r * V, V, targets[r], softcap, gscale, dz + r * V);
  });
  double s = 0;
  for (int64_t r = 0; r < rows; r++) s += loss[r];
  return s;
}

void t_embedding_bwd(const int32_t* ids, int64_t n, const float* dy, int64_t D, float* dtable) {
  const ss_train_kernels* k = TK();
  // column blocks: each task adds every row (in order) to its own columns, so repeated ids
  // never race and every element sums its rows in row order
  const int64_t cb = 32;
  parallel_for((D + cb - 1) / cb, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) k->emb_bwd(ids, n, dy, D, dtable, t * cb, (t + 1) * cb < D ? (t + 1) * cb : D);
  });
}

void t_adamw(float* p, const float* g, float* m, float* v, int64_t n, double step, double lr, double b1, double b2, double eps, double wd,
             double gscale) {
  const ss_train_kernels* k = TK();
  ss_adamw_consts c;
  c.b1 = (float)b1, c.b2 = (float)b2, c.omb1 = (float)(1.0 - b1), c.omb2 = (float)(1.0 - b2);
  c.lr = (float)lr, c.eps = (float)eps, c.wd = (float)wd, c.gscale = (float)gscale;
  c.ibc1 = (float)(1.0 / (1.0 - std::pow(b1, step)));
  c.ibc2 = (float)(1.0 / (1.0 - std::pow(b2, step)));
  chunks(n, kChunk, [&](int64_t, int64_t i0, int64_t i1) { k->adamw(p, g, m, v, c, i0, i1); });
}

}  // namespace ss

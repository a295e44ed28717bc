// The image training ops (train_image.h): threading over the pool, sgemm for the convolutions'
// and attention's products, the per-ISA row kernels (train_image.inc) for the rest.
#include <cmath>
#include <cstring>
#include <vector>

#include "ops.h"
#include "pool.h"
#include "sgemm.h"
#include "train.h"
#include "train_image.h"

namespace ss {
namespace {

const ss_train_image_kernels* IK() { return active(SS_PER_ISA(train_image_table)); }
const ss_train_kernels* TK() { return active(SS_PER_ISA(train_table)); }

// Grow-only buffers of the calling thread (an op's scratch: columns, scores, partial sums).
// The ops call sgemm, which runs on the pool, so these belong to the caller, never to a worker.
thread_local std::vector<float> t_cols, t_dcols, t_parts;
float* grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

constexpr int64_t kChunk = 16384;

template <class F>
void chunks(int64_t n, int64_t chunk, const F& f) {
  const int64_t tasks = (n + chunk - 1) / chunk;
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) f(t, t * chunk, t * chunk + chunk < n ? t * chunk + chunk : n);
  });
}

// dst[c] (+)= sum over r < R of x[r * C + c], r in order, threaded over column blocks
void col_sums(const float* x, int64_t R, int64_t C, float* dst, bool overwrite) {
  const ss_train_kernels* k = TK();
  if (overwrite) std::memset(dst, 0, (size_t)C * sizeof(float));
  const int64_t cb = 256;
  parallel_for((C + cb - 1) / cb, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) k->colsum(x, R, C, dst, t * cb, (t + 1) * cb < C ? (t + 1) * cb : C);
  });
}

// ---- convolution ------------------------------------------------------------------------------
//
// im2col: the output pixels (n, oy, ox) flattened are the rows of a [P, K] column matrix,
// K = KH KW Ci, row r holding the KH x KW x Ci input patch of its pixel (zeros for the padding).
// Convolution is then one GEMM, out[P, Co] = cols . w^T, since w [Co, KH, KW, Ci] is [Co, K].
// Rows are processed in blocks (at most kColBudget floats of columns) so the scratch stays
// bounded whatever the batch, and 1x1 stride-1 unpadded convolutions are the GEMM on x directly.
//
// The backward RECOMPUTES the columns rather than saving them from the forward: im2col is a copy,
// O(P K) memory traffic against the GEMMs' O(P K Co) flops (Co >= 128 in the networks), while
// saving the columns would make every 3x3 convolution keep 9x its input for the backward.
// dcols = dy . w, then col2im gathers: every input pixel sums the column entries of the output
// pixels of the block whose patch covers it (a gather, so threads own input pixels and nothing
// races; blocks are added in order, so the result is deterministic).

constexpr int64_t kColBudget = int64_t(1) << 22;  // floats of columns per block (16 MiB)

bool is_pointwise(const ss_conv_shape& s) { return s.KH == 1 && s.KW == 1 && s.stride == 1 && s.pad == 0 && s.pad_end == 0; }

int64_t block_rows(const ss_conv_shape& s, int64_t P) {
  const int64_t K = s.KH * s.KW * s.Ci;
  int64_t rows = kColBudget / (K > 0 ? K : 1);
  if (rows < 64) rows = 64;
  return rows < P ? rows : P;
}

void im2col(const float* x, const ss_conv_shape& s, int64_t r0, int64_t r1, float* cols) {
  const int64_t K = s.KH * s.KW * s.Ci, run = s.KW * s.Ci;
  parallel_for(r1 - r0, 16, [&](int64_t a, int64_t b) {
    for (int64_t r = r0 + a; r < r0 + b; r++) {
      const int64_t n = r / (s.OH * s.OW), oy = r / s.OW % s.OH, ox = r % s.OW;
      float* dst = cols + (r - r0) * K;
      for (int64_t ky = 0; ky < s.KH; ky++) {
        const int64_t iy = oy * s.stride - s.pad + ky;
        float* d = dst + ky * run;
        if (iy < 0 || iy >= s.H) {
          std::memset(d, 0, (size_t)run * sizeof(float));
          continue;
        }
        const int64_t ix0 = ox * s.stride - s.pad;
        if (ix0 >= 0 && ix0 + s.KW <= s.W) {
          std::memcpy(d, x + ((n * s.H + iy) * s.W + ix0) * s.Ci, (size_t)run * sizeof(float));
          continue;
        }
        for (int64_t kx = 0; kx < s.KW; kx++) {
          const int64_t ix = ix0 + kx;
          if (ix < 0 || ix >= s.W) std::memset(d + kx * s.Ci, 0, (size_t)s.Ci * sizeof(float));
          else std::memcpy(d + kx * s.Ci, x + ((n * s.H + iy) * s.W + ix) * s.Ci, (size_t)s.Ci * sizeof(float));
        }
      }
    }
  });
}

// dx[input pixels touched by output rows [r0, r1)] += the column entries of those rows
void col2im_add(const float* dcols, const ss_conv_shape& s, int64_t r0, int64_t r1, float* dx) {
  const ss_train_kernels* k = TK();
  const int64_t K = s.KH * s.KW * s.Ci;
  // the input rows (n, iy), flattened as n H + iy, that the block's output rows (n, oy) can touch
  const int64_t a0 = r0 / s.OW, a1 = (r1 - 1) / s.OW;
  const int64_t n0 = a0 / s.OH, oy0 = a0 % s.OH, n1 = a1 / s.OH, oy1 = a1 % s.OH;
  const int64_t lo = oy0 * s.stride - s.pad, hi = oy1 * s.stride - s.pad + s.KH;
  const int64_t first = n0 * s.H + (lo > 0 ? lo : 0), last = n1 * s.H + (hi < s.H ? hi : s.H);
  if (last <= first) return;
  parallel_for(last - first, 1, [&](int64_t a, int64_t b) {
    for (int64_t row = first + a; row < first + b; row++) {
      const int64_t n = row / s.H, iy = row % s.H;
      for (int64_t ky = 0; ky < s.KH; ky++) {
        const int64_t ty = iy + s.pad - ky;
        if (ty < 0 || ty % s.stride) continue;
        const int64_t oy = ty / s.stride;
        if (oy >= s.OH) continue;
        for (int64_t ix = 0; ix < s.W; ix++) {
          float* d = dx + ((n * s.H + iy) * s.W + ix) * s.Ci;
          for (int64_t kx = 0; kx < s.KW; kx++) {
            const int64_t tx = ix + s.pad - kx;
            if (tx < 0 || tx % s.stride) continue;
            const int64_t ox = tx / s.stride;
            if (ox >= s.OW) continue;
            const int64_t r = (n * s.OH + oy) * s.OW + ox;
            if (r < r0 || r >= r1) continue;
            k->axpy(1.f, dcols + (r - r0) * K + (ky * s.KW + kx) * s.Ci, d, 0, s.Ci);
          }
        }
      }
    }
  });
}

// C = alpha op(A) . op(w) + beta C with w in its stored precision
void gemm_w(bool tA, bool tB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, ss_conv_weights w, int64_t ldb, float beta, float* C,
            int64_t ldc) {
  if (w.type == 0) sgemm(tA, tB, M, N, K, 1.f, A, lda, (const float*)w.p, ldb, beta, C, ldc);
  else sgemm_half_b(tA, tB, M, N, K, 1.f, A, lda, (const uint16_t*)w.p, w.type == 2, ldb, beta, C, ldc);
}

}  // namespace

void t_conv2d(const float* x, ss_conv_weights w, const float* b, const ss_conv_shape& s, float* out) {
  const int64_t P = s.B * s.OH * s.OW, K = s.KH * s.KW * s.Ci;
  if (P == 0 || s.Co == 0) return;
  if (K == 0) {
    std::memset(out, 0, (size_t)(P * s.Co) * sizeof(float));
  } else if (is_pointwise(s)) {
    gemm_w(false, true, P, s.Co, K, x, K, w, K, 0.f, out, s.Co);
  } else {
    const int64_t blk = block_rows(s, P);
    float* cols = grow(t_cols, (size_t)(blk * K));
    for (int64_t r0 = 0; r0 < P; r0 += blk) {
      const int64_t r1 = r0 + blk < P ? r0 + blk : P;
      im2col(x, s, r0, r1, cols);
      gemm_w(false, true, r1 - r0, s.Co, K, cols, K, w, K, 0.f, out + r0 * s.Co, s.Co);
    }
  }
  if (b) {
    const ss_train_kernels* k = TK();
    parallel_for(P, 64, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; p++) k->axpy(1.f, b, out + p * s.Co, 0, s.Co);
    });
  }
}

void t_conv2d_bwd(const float* x, ss_conv_weights w, const float* dy, const ss_conv_shape& s, float* dx, float* dw, float* db) {
  const int64_t P = s.B * s.OH * s.OW, K = s.KH * s.KW * s.Ci;
  if (db && P > 0) col_sums(dy, P, s.Co, db, false);
  if (dx) std::memset(dx, 0, (size_t)(s.B * s.H * s.W * s.Ci) * sizeof(float));
  if (P == 0 || K == 0 || s.Co == 0) return;
  if (is_pointwise(s)) {
    if (dw) sgemm(true, false, s.Co, K, P, 1.f, dy, s.Co, x, K, 1.f, dw, K);  // dw[Co, Ci] += dy^T . x
    if (dx) gemm_w(false, false, P, K, s.Co, dy, s.Co, w, K, 0.f, dx, K);  // dx[P, Ci] = dy . w
    return;
  }
  const int64_t blk = block_rows(s, P);
  float* cols = dw ? grow(t_cols, (size_t)(blk * K)) : nullptr;
  float* dcols = dx ? grow(t_dcols, (size_t)(blk * K)) : nullptr;
  for (int64_t r0 = 0; r0 < P; r0 += blk) {
    const int64_t r1 = r0 + blk < P ? r0 + blk : P, m = r1 - r0;
    if (dw) {
      im2col(x, s, r0, r1, cols);
      sgemm(true, false, s.Co, K, m, 1.f, dy + r0 * s.Co, s.Co, cols, K, 1.f, dw, K);  // dw[Co, K] += dy^T . cols
    }
    if (dx) {
      gemm_w(false, false, m, K, s.Co, dy + r0 * s.Co, s.Co, w, K, 0.f, dcols, K);  // dcols[m, K] = dy . w
      col2im_add(dcols, s, r0, r1, dx);
    }
  }
}

// ---- GroupNorm ----------------------------------------------------------------------------------
//
// Statistics per (batch item, group) in double, two passes (mean, then squared deviations), one
// task per pair. The elementwise passes run over rows (pixels) with the group's mean and rstd
// expanded to per-channel arrays, so they vectorise along the channels whatever C / G is.

namespace {
// mu, rs [B, C]: each channel's group mean and rstd
void expand(const float* mean, const float* rstd, int64_t B, int64_t C, int64_t G, float* mu, float* rs) {
  const int64_t cpg = C / G;
  for (int64_t n = 0; n < B; n++)
    for (int64_t c = 0; c < C; c++) mu[n * C + c] = mean[n * G + c / cpg], rs[n * C + c] = rstd[n * G + c / cpg];
}

// rows per task of the elementwise passes; chunks never straddle two batch items
int64_t gn_rows(int64_t C) {
  const int64_t r = kChunk / (C > 0 ? C : 1);
  return r < 1 ? 1 : r;
}
}  // namespace

void t_group_norm(const float* x, const float* w, const float* b, int64_t B, int64_t N, int64_t C, int64_t G, float eps, int silu, float* out,
                  float* mean, float* rstd) {
  if (B == 0 || C == 0) return;
  const int64_t cpg = C / G;
  parallel_for(B * G, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t n = t / G, g = t % G;
      const float* base = x + n * N * C + g * cpg;
      double sum = 0;
      for (int64_t p = 0; p < N; p++)
        for (int64_t c = 0; c < cpg; c++) sum += base[p * C + c];
      const double M = (double)N * cpg, mu = M > 0 ? sum / M : 0;
      double sq = 0;
      for (int64_t p = 0; p < N; p++)
        for (int64_t c = 0; c < cpg; c++) sq += (base[p * C + c] - mu) * (base[p * C + c] - mu);
      mean[t] = (float)mu;
      rstd[t] = (float)(1.0 / std::sqrt((M > 0 ? sq / M : 0) + eps));
    }
  });
  float* mu = grow(t_parts, (size_t)(2 * B * C));
  float* rs = mu + B * C;
  expand(mean, rstd, B, C, G, mu, rs);
  const ss_train_image_kernels* k = IK();
  const int64_t per = gn_rows(C), tpi = (N + per - 1) / per;
  parallel_for(B * tpi, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t n = t / tpi, p0 = t % tpi * per, p1 = p0 + per < N ? p0 + per : N;
      k->gn_fwd(x + n * N * C, mu + n * C, rs + n * C, w, b, C, silu, out + n * N * C, p0, p1);
    }
  });
}

void t_group_norm_bwd(const float* x, const float* w, const float* b, const float* mean, const float* rstd, const float* dy, int64_t B,
                      int64_t N, int64_t C, int64_t G, int silu, float* dx, float* dw, float* db) {
  if (B == 0 || C == 0 || N == 0) {
    return;
  }
  const ss_train_image_kernels* k = IK();
  const int64_t cpg = C / G, per = gn_rows(C), tpi = (N + per - 1) / per;
  // scratch: mu, rs [B, C]; per-chunk sums pe, pex [B * tpi, C]; per-item sums se, sex [B, C] (double); k1, k2, k3 [B, C]
  float* mu = grow(t_parts, (size_t)(2 * B * C + 2 * B * tpi * C + 3 * B * C));
  float* rs = mu + B * C;
  float* pe = rs + B * C;
  float* pex = pe + B * tpi * C;
  float* k1 = pex + B * tpi * C;
  float* k2 = k1 + B * C;
  float* k3 = k2 + B * C;
  expand(mean, rstd, B, C, G, mu, rs);
  parallel_for(B * tpi, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t n = t / tpi, p0 = t % tpi * per, p1 = p0 + per < N ? p0 + per : N;
      k->gn_bwd_sums(x + n * N * C, dy + n * N * C, mu + n * C, rs + n * C, w, b, C, silu, pe + t * C, pex + t * C, p0, p1);
    }
  });
  // per item and channel: the chunks in order, in double
  std::vector<double> se((size_t)(B * C)), sex((size_t)(B * C));
  for (int64_t n = 0; n < B; n++)
    for (int64_t t = 0; t < tpi; t++)
      for (int64_t c = 0; c < C; c++) se[n * C + c] += pe[(n * tpi + t) * C + c], sex[n * C + c] += pex[(n * tpi + t) * C + c];
  for (int64_t c = 0; c < C; c++) {
    double e = 0, ex = 0;
    for (int64_t n = 0; n < B; n++) e += se[n * C + c], ex += sex[n * C + c];
    if (db) db[c] += (float)e;
    if (dw) dw[c] += (float)ex;
  }
  if (!dx) return;
  const double M = (double)N * cpg;
  for (int64_t n = 0; n < B; n++) {
    for (int64_t g = 0; g < G; g++) {
      double sg = 0, sgx = 0;
      for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) sg += w[c] * se[n * C + c], sgx += w[c] * sex[n * C + c];
      const double r = rstd[n * G + g];
      for (int64_t c = g * cpg; c < (g + 1) * cpg; c++) {
        k1[n * C + c] = (float)(r * w[c]);
        k2[n * C + c] = (float)(-r * sgx / M);
        k3[n * C + c] = (float)(-r * sg / M);
      }
    }
  }
  parallel_for(B * tpi, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t n = t / tpi, p0 = t % tpi * per, p1 = p0 + per < N ? p0 + per : N;
      k->gn_bwd_dx(x + n * N * C, dy + n * N * C, mu + n * C, rs + n * C, w, b, k1 + n * C, k2 + n * C, k3 + n * C, C, silu, dx + n * N * C, p0, p1);
    }
  });
}

// ---- upsampling, activations, row sums ----------------------------------------------------------

void t_upsample2x(const float* x, int64_t B, int64_t H, int64_t W, int64_t C, float* out) {
  parallel_for(B * 2 * H, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t n = r / (2 * H), y = r % (2 * H);
      const float* src = x + (n * H + y / 2) * W * C;
      float* dst = out + r * 2 * W * C;
      for (int64_t xx = 0; xx < W; xx++) {
        std::memcpy(dst + 2 * xx * C, src + xx * C, (size_t)C * sizeof(float));
        std::memcpy(dst + (2 * xx + 1) * C, src + xx * C, (size_t)C * sizeof(float));
      }
    }
  });
}

void t_upsample2x_bwd(const float* dy, int64_t B, int64_t H, int64_t W, int64_t C, float* dx) {
  const ss_train_image_kernels* k = IK();
  parallel_for(B * H, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* top = dy + 2 * r * 2 * W * C;
      k->up_bwd_row(top, top + 2 * W * C, W, C, dx + r * W * C);
    }
  });
}

void t_act(int op, const float* x, float* out, int64_t n) {
  const ss_train_image_kernels* k = IK();
  chunks(n, kChunk / 4, [&](int64_t, int64_t i0, int64_t i1) { k->act(op, x, out, i0, i1); });
}

void t_act_bwd(int op, const float* x, const float* dy, float* dx, int64_t n) {
  const ss_train_image_kernels* k = IK();
  chunks(n, kChunk / 4, [&](int64_t, int64_t i0, int64_t i1) { k->act_bwd(op, x, dy, dx, i0, i1); });
}

void t_add_rows(const float* x, const float* v, int64_t G, int64_t R, int64_t C, float* out) {
  const ss_train_kernels* k = TK();
  const int64_t grain = C > 0 && C < kChunk ? kChunk / C : 1;
  parallel_for(G * R, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      if (out != x) std::memcpy(out + r * C, x + r * C, (size_t)C * sizeof(float));
      k->axpy(1.f, v + r / R * C, out + r * C, 0, C);
    }
  });
}

void t_sum_rows(const float* x, int64_t G, int64_t R, int64_t C, float* out) {
  for (int64_t g = 0; g < G; g++) col_sums(x + g * R * C, R, C, out + g * C, true);
}

// ---- attention ----------------------------------------------------------------------------------
//
// The forward runs tiles of SS_ATTN_TQ queries (train_image.inc, mha_fwd) as tasks over (item,
// head, run of tiles); only lse [B, Tq, H] is saved. The backward recomputes P = exp(S - lse),
// dP = dO V^T, dS = scale P (dP - rowsum(P dP)), dQ = dS K, dK += dS^T Q, dV += P^T dO: one tile
// task per (item, head) when there are at least two per thread (a UNet's heads x batch), else
// per pair query blocks of at most kScoreBudget / Tk rows through the threaded sgemm, heads as
// strided views (lda = H D), dK and dV accumulated over the blocks in order. (A first version ran
// the forward that way too: with D = 8..40 the three pool-wide phases per (item, head) cost
// more than the products.)

namespace {
constexpr int64_t kScoreBudget = int64_t(1) << 21;  // floats of scores per block (8 MiB)
int64_t q_block(int64_t Tq, int64_t Tk) {
  int64_t m = kScoreBudget / (Tk > 0 ? Tk : 1);
  if (m < 16) m = 16;
  return m < Tq ? m : Tq;
}
}  // namespace

void t_mha(const float* q, const float* k, const float* v, int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t D, float scale, float* out,
           float* lse) {
  if (B == 0 || Tq == 0 || H == 0) return;
  const ss_train_image_kernels* kk = IK();
  ss_mha_args a{};
  a.q = q, a.k = k, a.v = v, a.B = B, a.Tq = Tq, a.Tk = Tk, a.H = H, a.D = D, a.scale = scale, a.out = out, a.lse = lse;
  // A task is a run of query tiles of one (item, head), sharing one transposed K panel: as long
  // as possible while leaving at least 4 tasks per thread. Results do not depend on it (tiles
  // start at multiples of SS_ATTN_TQ either way).
  const int64_t nq = (Tq + SS_ATTN_TQ - 1) / SS_ATTN_TQ, pairs = B * H;
  int64_t per = pairs * nq / (4 * pool_threads());
  per = per < 1 ? 1 : (per > nq ? nq : per);
  const int64_t runs = (nq + per - 1) / per, rows = per * SS_ATTN_TQ;
  parallel_for(pairs * runs, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t r = t / pairs, p = t % pairs, q0 = r * rows, q1 = q0 + rows < Tq ? q0 + rows : Tq;
      kk->mha_fwd(a, p / H, p % H, q0, q1);
    }
  });
}

void t_mha_bwd(const float* q, const float* k, const float* v, const float* lse, const float* dout, int64_t B, int64_t Tq, int64_t Tk,
               int64_t H, int64_t D, float scale, float* dq, float* dk, float* dv) {
  const int64_t HD = H * D;
  if (Tq == 0) {  // no queries: no gradient reaches the keys
    std::memset(dk, 0, (size_t)(B * Tk * HD) * sizeof(float));
    std::memset(dv, 0, (size_t)(B * Tk * HD) * sizeof(float));
    return;
  }
  if (B == 0 || H == 0) return;
  const ss_train_image_kernels* kk = IK();
  if (B * H >= 2 * pool_threads()) {
    // enough (item, head) pairs for the pool: one single-threaded tile task each
    ss_mha_args a{};
    a.q = q, a.k = k, a.v = v, a.B = B, a.Tq = Tq, a.Tk = Tk, a.H = H, a.D = D, a.scale = scale;
    a.lse_in = lse, a.dout = dout, a.dq = dq, a.dk = dk, a.dv = dv;
    parallel_for(B * H, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) kk->mha_bwd(a, t / H, t % H);
    });
    return;
  }
  // Few pairs (the VAE's single-head attention, a batch of 1): per pair, query blocks through
  // the threaded sgemm and row kernels on the pool.
  const int64_t mb = q_block(Tq, Tk);
  float* P = grow(t_cols, (size_t)(mb * Tk));
  float* dP = grow(t_dcols, (size_t)(mb * Tk));
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < H; h++) {
      const int64_t kv0 = b * Tk * HD + h * D;
      for (int64_t t0 = 0; t0 < Tq; t0 += mb) {
        const int64_t m = t0 + mb < Tq ? mb : Tq - t0;
        const int64_t row0 = b * Tq + t0, qo = row0 * HD + h * D;
        const float beta = t0 == 0 ? 0.f : 1.f;
        sgemm(false, true, m, Tk, D, scale, q + qo, HD, k + kv0, HD, 0.f, P, Tk);
        sgemm(false, true, m, Tk, D, 1.f, dout + qo, HD, v + kv0, HD, 0.f, dP, Tk);
        parallel_for(m, 16, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; i++) {
            kk->probs_row(P + i * Tk, Tk, lse[(row0 + i) * H + h]);
            kk->dsoftmax_row(P + i * Tk, dP + i * Tk, Tk, scale);
          }
        });
        sgemm(false, false, m, D, Tk, 1.f, dP, Tk, k + kv0, HD, 0.f, dq + qo, HD);
        sgemm(true, false, Tk, D, m, 1.f, dP, Tk, q + qo, HD, beta, dk + kv0, HD);
        sgemm(true, false, Tk, D, m, 1.f, P, Tk, dout + qo, HD, beta, dv + kv0, HD);
      }
    }
  }
}

}  // namespace ss

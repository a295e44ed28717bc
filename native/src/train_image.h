// The image training kernels of the diffusion networks (src/tensor/train-kernels.ts,
// ImageTrainKernels), native side: convolution (im2col + sgemm), GroupNorm (+ SiLU), nearest 2x
// upsampling, non-causal multi-head attention (Tq != Tk), SiLU / quick GELU, row sums. The op
// layer (train_image.cc) threads over the pool and calls sgemm; the per-ISA row kernels
// (train_image.inc) are compiled three times like train_kernels.inc.
//
// Determinism: as train.h. Every reduction (dw, db, GroupNorm's per-group sums, dk and dv over
// query tiles or blocks) runs over chunks fixed by the shapes and adds them in chunk order. As in
// the causal attention, the backward's choice between per-(item, head) tile tasks and the sgemm
// path depends on the thread count (at least two pairs per thread), so its f32 rounding can too.
#pragma once
#include <cstdint>

struct ss_conv_shape {
  int64_t B, H, W, Ci, Co, KH, KW, stride, pad, pad_end, OH, OW;
};

// The weights of a convolution: f32, or f16 / bf16 (kept in half precision, widened as sgemm
// packs them: frozen or inference weights at half the memory).
struct ss_conv_weights {
  const void* p;
  int type;  // 0 f32, 1 f16, 2 bf16
};

// Non-causal attention, q [B, Tq, H, D], k and v [B, Tk, H, D].
struct ss_mha_args {
  const float* q; const float* k; const float* v;
  int64_t B, Tq, Tk, H, D;
  float scale;
  float* out; float* lse;                        // forward outputs
  const float* lse_in; const float* dout;        // backward inputs
  float* dq; float* dk; float* dv;               // backward outputs
};

struct ss_train_image_kernels {
  // op 0 silu, 1 quick_gelu (x sigmoid(1.702 x)); elements [i0, i1)
  void (*act)(int op, const float* x, float* out, int64_t i0, int64_t i1);
  void (*act_bwd)(int op, const float* x, const float* dy, float* dx, int64_t i0, int64_t i1);
  // GroupNorm rows [r0, r1) of one batch item, C channels; mu, rs: the mean and rstd of each
  // channel's group (expanded to C), w, b [C]. y = (x - mu) rs w + b (then SiLU when silu).
  void (*gn_fwd)(const float* x, const float* mu, const float* rs, const float* w, const float* b, int64_t C, int silu, float* out,
                 int64_t r0, int64_t r1);
  // e = dy (silu'(y) when silu), xhat = (x - mu) rs: pe[c] = sum over the rows of e, pex[c] = of e xhat (overwritten)
  void (*gn_bwd_sums)(const float* x, const float* dy, const float* mu, const float* rs, const float* w, const float* b, int64_t C, int silu,
                      float* pe, float* pex, int64_t r0, int64_t r1);
  // dx = e k1 + xhat k2 + k3 (per-channel coefficients)
  void (*gn_bwd_dx)(const float* x, const float* dy, const float* mu, const float* rs, const float* w, const float* b, const float* k1,
                    const float* k2, const float* k3, int64_t C, int silu, float* dx, int64_t r0, int64_t r1);
  // s = exp(s - lse) in place
  void (*probs_row)(float* s, int64_t n, float lse);
  // dp = scale p (dp - sum(p dp)) in place
  void (*dsoftmax_row)(const float* p, float* dp, int64_t n, float scale);
  // dx[x, c] = sum of the 2x2 block of rows r0 (top) and r1 (bottom) of dy, for x < W
  void (*up_bwd_row)(const float* r0, const float* r1, int64_t W, int64_t C, float* dx);
  // attention tiles of SS_ATTN_TQ query rows, single-threaded: the forward of queries [q0, q1)
  // (q0 a multiple of SS_ATTN_TQ) of item b, head h; the whole backward of (b, h)
  void (*mha_fwd)(const ss_mha_args& a, int64_t b, int64_t h, int64_t q0, int64_t q1);
  void (*mha_bwd)(const ss_mha_args& a, int64_t b, int64_t h);
};

namespace ss_avx512 { extern const ss_train_image_kernels train_image_table; }
namespace ss_avx2 { extern const ss_train_image_kernels train_image_table; }
namespace ss_portable { extern const ss_train_image_kernels train_image_table; }

namespace ss {

// out [B, OH, OW, Co] = conv(x [B, H, W, Ci], w [Co, KH, KW, Ci]) + b (b may be null)
void t_conv2d(const float* x, ss_conv_weights w, const float* b, const ss_conv_shape& s, float* out);
// dx overwritten, dw += , db += ; any may be null (skipped)
void t_conv2d_bwd(const float* x, ss_conv_weights w, const float* dy, const ss_conv_shape& s, float* dx, float* dw, float* db);
void t_group_norm(const float* x, const float* w, const float* b, int64_t B, int64_t N, int64_t C, int64_t G, float eps, int silu, float* out,
                  float* mean, float* rstd);
void t_group_norm_bwd(const float* x, const float* w, const float* b, const float* mean, const float* rstd, const float* dy, int64_t B,
                      int64_t N, int64_t C, int64_t G, int silu, float* dx, float* dw, float* db);
void t_upsample2x(const float* x, int64_t B, int64_t H, int64_t W, int64_t C, float* out);
void t_upsample2x_bwd(const float* dy, int64_t B, int64_t H, int64_t W, int64_t C, float* dx);
void t_mha(const float* q, const float* k, const float* v, int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t D, float scale, float* out,
           float* lse);
void t_mha_bwd(const float* q, const float* k, const float* v, const float* lse, const float* dout, int64_t B, int64_t Tq, int64_t Tk,
               int64_t H, int64_t D, float scale, float* dq, float* dk, float* dv);
void t_act(int op, const float* x, float* out, int64_t n);
void t_act_bwd(int op, const float* x, const float* dy, float* dx, int64_t n);
// out[g, r, c] = x[g, r, c] + v[g, c] (out may be x)
void t_add_rows(const float* x, const float* v, int64_t G, int64_t R, int64_t C, float* out);
// out[g, c] = sum over r of x[g, r, c] (overwritten)
void t_sum_rows(const float* x, int64_t G, int64_t R, int64_t C, float* out);

}  // namespace ss

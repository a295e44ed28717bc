// GGUF k-quant weights (Q4_K, Q5_K, Q6_K): block geometry, the scalar decoders and the Q8_K
// activation quantizer, shared by every ISA (ops.cc; the layouts are described in
// src/tensor/kquants.ts). The per-ISA dot-product kernels are in kquants.inc.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace ss {

constexpr int64_t QK_K = 256;
constexpr int64_t Q4_K_BYTES = 144;  // f16 d, f16 dmin, 12 scale bytes, 128 nibble bytes
constexpr int64_t Q5_K_BYTES = 176;  // Q4_K's header and scales, qh[32] (the fifth bits), 128 nibble bytes
constexpr int64_t Q6_K_BYTES = 210;  // ql[128], qh[64], int8 scales[16], f16 d

// the super-block types of 256 that multiply Q8_K activations (Q2_K, Q3_K and IQ4_XS: kquants2.h)
inline bool is_kquant(int t) { return t == SS_Q4_K || t == SS_Q5_K || t == SS_Q6_K || t == SS_Q2_K || t == SS_Q3_K || t == SS_IQ4_XS; }

inline float kq_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32_scalar(h);
}

// the 8 (scale, min) 6-bit pairs of a Q4_K block's 12 packed bytes (ggml's get_scale_min_k4)
inline void q4k_scale_min(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  for (int j = 0; j < 4; j++) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; j++) {
    sc[j] = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
    mn[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Prepacked Q4_K (kquants.inc, "Prepacked Q4_K"): groups of 8 rows interleaved once, for the
// AVX2 tiles. One super-block of 8 rows is KX_BLK bytes:
//   codes [4 pairs of sub-blocks][8 chunks][8 rows][4 bytes] (the rows' own nibble bytes)   1024
//   scales [8 sub-blocks][8 rows] u8   64
//   mins [4 sub-block pairs][8 rows][2] u8   64
//   d [8 rows] f16, dmin [8 rows] f16   32
constexpr int64_t KX_SC = 1024, KX_MN = KX_SC + 64, KX_D = KX_MN + 64, KX_DM = KX_D + 16, KX_BLK = KX_DM + 16;

// bytes of the prepacked form of an N x K matrix of a type that has one (Q4_K; its first N / 8 * 8
// rows), 0 for the others
inline int64_t kq_prepacked_bytes(int wtype, int64_t N, int64_t K) { return wtype == SS_Q4_K ? N / 8 * (K / QK_K) * KX_BLK : 0; }


// packs groups [g0, g1) of 8 rows (ldw bytes apart) of a Q4_K matrix of nb super-blocks a row
inline void kq_prepack_q4k(const uint8_t* w, int64_t ldw, int64_t nb, int64_t g0, int64_t g1, uint8_t* dst) {
  for (int64_t g = g0; g < g1; g++) {
    for (int64_t b = 0; b < nb; b++) {
      uint8_t* P = dst + (g * nb + b) * KX_BLK;
      for (int r = 0; r < 8; r++) {
        const uint8_t* blk = w + (8 * g + r) * ldw + b * Q4_K_BYTES;
        for (int j = 0; j < 4; j++)
          for (int c = 0; c < 8; c++) std::memcpy(P + 256 * j + 32 * c + 4 * r, blk + 16 + 32 * j + 4 * c, 4);
        uint8_t sc[8], mn[8];
        q4k_scale_min(blk + 4, sc, mn);
        for (int s = 0; s < 8; s++) P[KX_SC + 8 * s + r] = sc[s];
        for (int q = 0; q < 4; q++) P[KX_MN + 16 * q + 2 * r] = mn[2 * q], P[KX_MN + 16 * q + 2 * r + 1] = mn[2 * q + 1];
        std::memcpy(P + KX_D + 2 * r, blk, 2);
        std::memcpy(P + KX_DM + 2 * r, blk + 2, 2);
      }
    }
  }
}

// n (a multiple of 256) Q4_K values to f32, llama.cpp's dequantize_row_q4_K bit for bit
inline void dequant_q4k(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; b++, src += Q4_K_BYTES, y += QK_K) {
    const float d = kq_f16(src), dmin = kq_f16(src + 2);
    uint8_t sc[8], mn[8];
    q4k_scale_min(src + 4, sc, mn);
    for (int c = 0; c < 4; c++) {
      const float d1 = d * sc[2 * c], m1 = dmin * mn[2 * c], d2 = d * sc[2 * c + 1], m2 = dmin * mn[2 * c + 1];
      const uint8_t* q = src + 16 + 32 * c;
      for (int l = 0; l < 32; l++) {
        y[64 * c + l] = d1 * (float)(q[l] & 15) - m1;
        y[64 * c + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
      }
    }
  }
}

// n (a multiple of 256) Q5_K values to f32, llama.cpp's dequantize_row_q5_K bit for bit
inline void dequant_q5k(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; b++, src += Q5_K_BYTES, y += QK_K) {
    const float d = kq_f16(src), dmin = kq_f16(src + 2);
    uint8_t sc[8], mn[8];
    q4k_scale_min(src + 4, sc, mn);
    const uint8_t* qh = src + 16;
    for (int c = 0; c < 4; c++) {
      const float d1 = d * sc[2 * c], m1 = dmin * mn[2 * c], d2 = d * sc[2 * c + 1], m2 = dmin * mn[2 * c + 1];
      const uint8_t* q = src + 48 + 32 * c;
      for (int l = 0; l < 32; l++) {
        y[64 * c + l] = d1 * (float)((q[l] & 15) | (((qh[l] >> (2 * c)) & 1) << 4)) - m1;
        y[64 * c + 32 + l] = d2 * (float)((q[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
      }
    }
  }
}

// n (a multiple of 256) Q6_K values to f32, llama.cpp's dequantize_row_q6_K bit for bit
inline void dequant_q6k(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; b++, src += Q6_K_BYTES, y += QK_K) {
    const float d = kq_f16(src + 208);
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = src + 64 * h, *qh = src + 128 + 32 * h;
      const int8_t* sc = (const int8_t*)(src + 192 + 8 * h);
      float* o = y + 128 * h;
      for (int l = 0; l < 32; l++) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        o[l] = d * (float)sc[is] * (float)q1;
        o[l + 32] = d * (float)sc[is + 2] * (float)q2;
        o[l + 64] = d * (float)sc[is + 4] * (float)q3;
        o[l + 96] = d * (float)sc[is + 6] * (float)q4;
      }
    }
  }
}

// llama.cpp's nearest_int: round half to even through the f32 magic number
inline int kq_nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// quantize_row_q8_K_ref: n (a multiple of 256) floats to int8 q[n], f32 d[n/256] and the
// sums of q over each 16, bs[n/16]. Scalar on every ISA, so all of them get the same bytes.
inline void quantize_q8k(const float* x, int64_t n, int8_t* q, float* d, int16_t* bs) {
  for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, q += QK_K) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK_K; j++) {
      const float ax = x[j] < 0 ? -x[j] : x[j];
      if (ax > amax) amax = ax, max = x[j];
    }
    if (!(amax > 0.f)) {
      d[b] = 0.f;
      std::memset(q, 0, QK_K);
      std::memset(bs + 16 * b, 0, 32);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) {
      const int v = kq_nearest_int(iscale * x[j]);
      q[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int g = 0; g < 16; g++) {
      int s = 0;
      for (int i = 0; i < 16; i++) s += q[16 * g + i];
      bs[16 * b + g] = (int16_t)s;
    }
    d[b] = 1.f / iscale;
  }
}

}  // namespace ss

namespace ss {

// ---- llama.cpp's reference quantizers (quantize_row_q4_K_ref, quantize_row_q6_K_ref) ----------
// The same f32 arithmetic, step for step, as src/tensor/kquants.ts (built with
// -ffp-contract=off, so no step is fused): the same bytes.

// make_qkx2_quants: levels 0..nmax with a scale and a min (<= 0), weighted least squares over
// nstep + 1 candidate scales, judged by weighted squared error (use_mad: absolute error, Q2_K);
// writes L, returns the scale and sets *the_min = -min.
inline float kq_make_qkx2(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad = false) {
  float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; i++) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = (float)nmax / (max - min), scale = 1 / iscale, best_error = 0;
  for (int i = 0; i < n; i++) {
    int l = kq_nearest_int(iscale * (x[i] - min));
    l = l < 0 ? 0 : l > nmax ? nmax : l;
    L[i] = (uint8_t)l;
    const float diff = scale * (float)L[i] + min - x[i];
    best_error += w[i] * (use_mad ? std::fabs(diff) : diff * diff);
  }
  for (int is = 0; is <= nstep; is++) {
    iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      int l = kq_nearest_int(iscale * (x[i] - min));
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      Laux[i] = (uint8_t)l;
      const float wl = w[i] * (float)l;
      sum_l += wl;
      sum_l2 += wl * (float)l;
      sum_xl += wl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur = 0;
      for (int i = 0; i < n; i++) {
        const float diff = this_scale * (float)Laux[i] + this_min - x[i];
        cur += w[i] * (use_mad ? std::fabs(diff) : diff * diff);
      }
      if (cur < best_error) {
        for (int i = 0; i < n; i++) L[i] = Laux[i];
        best_error = cur;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

inline uint16_t kq_f32_to_f16(float v) { return f32_to_f16_scalar(v); }

// kq_make_qkx2 on 8 rows of n values (x, w, L with stride n): the portable form of the kernel
// table's make_qkx2_x8, which the quantizers below take (ops.cc passes the ISA's)
inline void kq_make_qkx2_x8(int n, int nmax, const float* x, const float* w, uint8_t* L, float* scales, float* mins, float rmin, float rdelta, int nstep, bool use_mad) {
  uint8_t Laux[32];
  for (int j = 0; j < 8; j++) scales[j] = kq_make_qkx2(n, nmax, x + n * j, w + n * j, L + n * j, &mins[j], Laux, rmin, rdelta, nstep, use_mad);
}

// n (a multiple of 256) floats to Q4_K (bits 4) or Q5_K (bits 5) blocks
inline void quantize_kmins(const float* x, uint8_t* y, int64_t n, int bits, ss_qkx2_x8_fn search) {
  uint8_t L[256];
  float w[256], scales[8], mins[8];
  const int64_t BB = bits == 4 ? Q4_K_BYTES : Q5_K_BYTES;
  const int nmax = bits == 4 ? 15 : 31, qs = bits == 4 ? 16 : 48;
  for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += BB) {
    std::memset(y, 0, BB);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; l++) w[32 * j + l] = av_x + std::fabs(x[32 * j + l]);
    }
    if (bits == 4) search(32, 15, x, w, L, scales, mins, -1.f, 0.1f, 20, false);
    else search(32, 31, x, w, L, scales, mins, -0.5f, 0.1f, 15, false);
    for (int j = 0; j < 8; j++) {
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f, inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t* s = y + 4;
    for (int j = 0; j < 8; j++) {
      uint8_t ls = (uint8_t)kq_nearest_int(inv_scale * scales[j]), lm = (uint8_t)kq_nearest_int(inv_min * mins[j]);
      ls = ls < 63 ? ls : 63;
      lm = lm < 63 ? lm : 63;
      if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
      } else {
        s[j + 4] = (uint8_t)((ls & 15) | ((lm & 15) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
      }
    }
    const uint16_t dh = kq_f32_to_f16(max_scale / 63.f), mh = kq_f32_to_f16(max_min / 63.f);
    std::memcpy(y, &dh, 2);
    std::memcpy(y + 2, &mh, 2);
    const float dd = f16_to_f32_scalar(dh), dm = f16_to_f32_scalar(mh);
    uint8_t sc[8], mn[8];
    q4k_scale_min(s, sc, mn);
    for (int j = 0; j < 8; j++) {
      const float d = dd * (float)sc[j];
      if (!d) continue;
      const float dmj = dm * (float)mn[j];
      for (int i = 0; i < 32; i++) {
        int l = kq_nearest_int((x[32 * j + i] + dmj) / d);
        L[32 * j + i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
      }
    }
    for (int j = 0; j < 4; j++)
      for (int l = 0; l < 32; l++) {
        const int l1 = L[64 * j + l], l2 = L[64 * j + l + 32];
        y[qs + 32 * j + l] = (uint8_t)((l1 & 15) | ((l2 & 15) << 4));
        if (bits == 5) y[16 + l] |= (uint8_t)(((l1 >> 4) << (2 * j)) | ((l2 >> 4) << (2 * j + 1)));
      }
  }
}
inline void quantize_q4k(const float* x, uint8_t* y, int64_t n, ss_qkx2_x8_fn search = kq_make_qkx2_x8) { quantize_kmins(x, y, n, 4, search); }
inline void quantize_q5k(const float* x, uint8_t* y, int64_t n, ss_qkx2_x8_fn search = kq_make_qkx2_x8) { quantize_kmins(x, y, n, 5, search); }

constexpr float kq_group_max_eps = 1e-15f;

// make_qx_quants with rmse_type 1 (weights x^2): levels -nmax..nmax-1 stored + nmax
inline float kq_make_qx(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kq_group_max_eps) {
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.f;
  }
  float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = kq_nearest_int(iscale * x[i]);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    L[i] = (int8_t)(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * (float)l;
    suml2 += w * (float)l * (float)l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
  for (int is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -((float)nmax + 0.1f * (float)is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; i++) {
      int l = kq_nearest_int(iscale * x[i]);
      l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
      const float w = x[i] * x[i];
      sumlx += w * x[i] * (float)l;
      suml2 += w * (float)l * (float)l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; i++) {
        int l = kq_nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// n (a multiple of 256) floats to Q6_K blocks
inline void quantize_q6k(const float* x, uint8_t* y, int64_t n) {
  int8_t L[256];
  float scales[16];
  for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += Q6_K_BYTES) {
    std::memset(y, 0, Q6_K_BYTES);
    float max_scale = 0, max_abs = 0;
    for (int g = 0; g < 16; g++) {
      const float s = kq_make_qx(16, 32, x + 16 * g, L + 16 * g);
      scales[g] = s;
      if (std::fabs(s) > max_abs) max_abs = std::fabs(s), max_scale = s;
    }
    if (max_abs < kq_group_max_eps) continue;
    const float iscale = -128.f / max_scale;
    const uint16_t dh = kq_f32_to_f16(1 / iscale);
    std::memcpy(y + 208, &dh, 2);
    const float dd = f16_to_f32_scalar(dh);
    for (int g = 0; g < 16; g++) {
      const int v = kq_nearest_int(iscale * scales[g]);
      y[192 + g] = (uint8_t)(int8_t)(v < 127 ? v : 127);
    }
    for (int g = 0; g < 16; g++) {
      const float d = dd * (float)(int8_t)y[192 + g];
      if (!d) continue;
      for (int i = 0; i < 16; i++) {
        int l = kq_nearest_int(x[16 * g + i] / d);
        L[16 * g + i] = (int8_t)((l < -32 ? -32 : l > 31 ? 31 : l) + 32);
      }
    }
    for (int h = 0; h < 2; h++) {
      const int j = 128 * h;
      uint8_t *ql = y + 64 * h, *qh = y + 128 + 32 * h;
      for (int l = 0; l < 32; l++) {
        const uint8_t q1 = (uint8_t)L[j + l], q2 = (uint8_t)L[j + l + 32], q3 = (uint8_t)L[j + l + 64], q4 = (uint8_t)L[j + l + 96];
        ql[l] = (uint8_t)((q1 & 15) | ((q3 & 15) << 4));
        ql[l + 32] = (uint8_t)((q2 & 15) | ((q4 & 15) << 4));
        qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

}  // namespace ss

#include "kquants2.h"

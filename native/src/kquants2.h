// GGUF's Q2_K, Q3_K and IQ4_XS super-blocks (256 weights; layouts in src/tensor/kquants2.ts):
// geometry, the scalar decoders and llama.cpp's reference quantizers, shared by every ISA. The
// quantizers are the same f32 arithmetic, step for step, as kquants2.ts (built with
// -ffp-contract=off): the same bytes, which are llama.cpp's bytes (test/kquants2.test.ts).
// The per-ISA dot-product kernels are in kquants2.inc. Included by kquants.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kquants.h"
#include "legacyq.h"

namespace ss {

constexpr int64_t Q2_K_BYTES = 84;    // scales[16] (scale | min << 4), qs[64] (2 bits), f16 d, f16 dmin
constexpr int64_t Q3_K_BYTES = 110;   // hmask[32], qs[64] (low 2 bits), 12 bytes of 6-bit scales, f16 d
constexpr int64_t IQ4_XS_BYTES = 136; // f16 d, u16 scales_h, scales_l[4], qs[128] (IQ4_NL nibbles)

// Q3_K's sixteen 6-bit scales minus 32 (-32..31) from the 12 packed bytes: the low nibbles of
// bytes 0-7 then their high nibbles, each with 2 high bits from bytes 8-11 (ggml's kmask unpacking)
inline void q3k_scales(const uint8_t* p, int8_t* sc) {
  uint32_t a[3];
  std::memcpy(a, p, 12);
  uint32_t u[4];
  u[0] = (a[0] & 0x0f0f0f0fu) | ((a[2] & 0x03030303u) << 4);
  u[1] = (a[1] & 0x0f0f0f0fu) | (((a[2] >> 2) & 0x03030303u) << 4);
  u[2] = ((a[0] >> 4) & 0x0f0f0f0fu) | (((a[2] >> 4) & 0x03030303u) << 4);
  u[3] = ((a[1] >> 4) & 0x0f0f0f0fu) | (((a[2] >> 6) & 0x03030303u) << 4);
  uint8_t b[16];
  std::memcpy(b, u, 16);
  for (int g = 0; g < 16; g++) sc[g] = (int8_t)(b[g] - 32);
}

// IQ4_XS sub-block ib's 6-bit scale minus 32
inline int iq4xs_scale(const uint8_t* blk, int ib) {
  uint16_t sh;
  std::memcpy(&sh, blk + 2, 2);
  return (((blk[4 + ib / 2] >> (4 * (ib % 2))) & 15) | (((sh >> (2 * ib)) & 3) << 4)) - 32;
}

// n (a multiple of 256) Q2_K values to f32, llama.cpp's dequantize_row_q2_K bit for bit
inline void dequant_q2k(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; b++, src += Q2_K_BYTES, y += QK_K) {
    const float d = kq_f16(src + 80), dmin = kq_f16(src + 82);
    for (int e = 0; e < 256; e++) {
      const uint8_t sc = src[e / 16];
      const int q = (src[16 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
      y[e] = (d * (float)(sc & 15)) * (float)q - dmin * (float)(sc >> 4);
    }
  }
}

// n (a multiple of 256) Q3_K values to f32, llama.cpp's dequantize_row_q3_K bit for bit
inline void dequant_q3k(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; b++, src += Q3_K_BYTES, y += QK_K) {
    const float d = kq_f16(src + 108);
    int8_t sc[16];
    q3k_scales(src + 96, sc);
    for (int e = 0; e < 256; e++) {
      const int lo = (src[32 + 32 * (e >> 7) + (e & 31)] >> (2 * ((e >> 5) & 3))) & 3;
      const int q = lo - ((src[e & 31] >> (e >> 5)) & 1 ? 0 : 4);
      y[e] = (d * (float)sc[e / 16]) * (float)q;
    }
  }
}

// n (a multiple of 256) IQ4_XS values to f32, llama.cpp's dequantize_row_iq4_xs bit for bit
inline void dequant_iq4xs(const uint8_t* src, float* y, int64_t n) {
  for (int64_t b = 0; b < n / QK_K; b++, src += IQ4_XS_BYTES, y += QK_K) {
    const float d = kq_f16(src);
    for (int ib = 0; ib < 8; ib++) {
      const float dl = d * (float)iq4xs_scale(src, ib);
      const uint8_t* qs = src + 8 + 16 * ib;
      for (int j = 0; j < 16; j++) {
        y[32 * ib + j] = dl * (float)kvalues_iq4nl[qs[j] & 15];
        y[32 * ib + j + 16] = dl * (float)kvalues_iq4nl[qs[j] >> 4];
      }
    }
  }
}

// 256 codes of 2 bits into 64 bytes (Q2_K's qs, Q3_K's low bits)
inline void kq_pack2(const uint8_t* L, uint8_t* q) {
  for (int h = 0; h < 2; h++)
    for (int l = 0; l < 32; l++) {
      const int j = 128 * h + l;
      q[32 * h + l] = (uint8_t)((L[j] & 3) | ((L[j + 32] & 3) << 2) | ((L[j + 64] & 3) << 4) | ((L[j + 96] & 3) << 6));
    }
}

inline float kq_put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16_scalar(v);
  std::memcpy(p, &h, 2);
  return f16_to_f32_scalar(h);
}

// quantize_row_q2_K_ref
inline void quantize_q2k(const float* x, uint8_t* y, int64_t n, ss_qkx2_x8_fn search = kq_make_qkx2_x8) {
  uint8_t L[256];
  float w[256], scales[16], mins[16];
  for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += Q2_K_BYTES) {
    std::memset(y, 0, Q2_K_BYTES);
    float max_scale = 0, max_min = 0;
    for (int i = 0; i < 256; i++) w[i] = std::fabs(x[i]);
    search(16, 3, x, w, L, scales, mins, -0.5f, 0.1f, 15, true);
    search(16, 3, x + 128, w + 128, L + 128, scales + 8, mins + 8, -0.5f, 0.1f, 15, true);
    for (int g = 0; g < 16; g++) {
      if (scales[g] > max_scale) max_scale = scales[g];
      if (mins[g] > max_min) max_min = mins[g];
    }
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int g = 0; g < 16; g++) y[g] = (uint8_t)kq_nearest_int(iscale * scales[g]);
    }
    const float dd = kq_put_f16(y + 80, max_scale > 0 ? max_scale / 15.f : 0.f);
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int g = 0; g < 16; g++) y[g] |= (uint8_t)(kq_nearest_int(iscale * mins[g]) << 4);
    }
    const float dm = kq_put_f16(y + 82, max_min > 0 ? max_min / 15.f : 0.f);
    for (int g = 0; g < 16; g++) {
      const float d = dd * (float)(y[g] & 15);
      if (!d) continue;
      const float m = dm * (float)(y[g] >> 4);
      for (int i = 0; i < 16; i++) {
        const int l = kq_nearest_int((x[16 * g + i] + m) / d);
        L[16 * g + i] = (uint8_t)(l < 0 ? 0 : l > 3 ? 3 : l);
      }
    }
    kq_pack2(L, y + 16);
  }
}

// make_q3_quants with do_rmse: levels -nmax..nmax-1 (stored + nmax), weights x^2, refined one
// coordinate at a time (up to 5 sweeps)
inline float kq_make_q3(int n, int nmax, const float* x, uint8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; i++) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kq_group_max_eps) {
    for (int i = 0; i < n; i++) L[i] = 0;
    return 0.f;
  }
  const float iscale = -(float)nmax / max;
  int8_t Ls[16];
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; i++) {
    int l = kq_nearest_int(iscale * x[i]);
    l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
    Ls[i] = (int8_t)l;
    const float w = x[i] * x[i];
    sumlx += w * x[i] * (float)l;
    suml2 += w * (float)l * (float)l;
  }
  for (int itry = 0; itry < 5; itry++) {
    int changed = 0;
    for (int i = 0; i < n; i++) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * (float)Ls[i];
      if (slx > 0) {
        float sl2 = suml2 - w * (float)Ls[i] * (float)Ls[i];
        int nl = kq_nearest_int(x[i] * sl2 / slx);
        nl = nl < -nmax ? -nmax : nl > nmax - 1 ? nmax - 1 : nl;
        if (nl != Ls[i]) {
          slx += w * x[i] * (float)nl;
          sl2 += w * (float)nl * (float)nl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            Ls[i] = (int8_t)nl;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; i++) L[i] = (uint8_t)(Ls[i] + nmax);
  return sumlx / suml2;
}

// quantize_row_q3_K_ref
inline void quantize_q3k(const float* x, uint8_t* y, int64_t n) {
  uint8_t L[256];
  float scales[16];
  for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += Q3_K_BYTES) {
    std::memset(y, 0, Q3_K_BYTES);
    float max_scale = 0, amax = 0;
    for (int g = 0; g < 16; g++) {
      scales[g] = kq_make_q3(16, 4, x + 16 * g, L + 16 * g);
      const float a = std::fabs(scales[g]);
      if (a > amax) amax = a, max_scale = scales[g];
    }
    uint8_t* sp = y + 96;
    float dd = 0.f;
    if (max_scale != 0.f) {
      const float iscale = -32.f / max_scale;
      for (int g = 0; g < 16; g++) {
        int l = kq_nearest_int(iscale * scales[g]);
        l = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
        if (g < 8) sp[g] = (uint8_t)(l & 15);
        else sp[g - 8] |= (uint8_t)((l & 15) << 4);
        sp[8 + (g & 3)] |= (uint8_t)((l >> 4) << (2 * (g >> 2)));
      }
      dd = kq_put_f16(y + 108, 1.f / iscale);
    }
    int8_t sc[16];
    q3k_scales(sp, sc);
    for (int g = 0; g < 16; g++) {
      const float d = dd * (float)sc[g];
      if (!d) continue;
      for (int i = 0; i < 16; i++) {
        const int l = kq_nearest_int(x[16 * g + i] / d);
        L[16 * g + i] = (uint8_t)((l < -4 ? -4 : l > 3 ? 3 : l) + 4);
      }
    }
    for (int j = 0; j < 256; j++)
      if (L[j] > 3) {
        y[j & 31] |= (uint8_t)(1 << (j >> 5));
        L[j] -= 4;
      }
    kq_pack2(L, y + 32);
  }
}

// quantize_iq4_xs without importance: quantize_row_iq4_nl_impl(256, 32, weights x^2, ntry 7)
inline void quantize_iq4xs(const float* x, uint8_t* y, int64_t n) {
  uint8_t L[256];
  float w[32], scales[8];
  for (int64_t b = 0; b < n / QK_K; b++, x += QK_K, y += IQ4_XS_BYTES) {
    std::memset(y, 0, IQ4_XS_BYTES);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < 8; ib++) {
      const float* xb = x + 32 * ib;
      float amax = 0, max = 0;
      for (int j = 0; j < 32; j++) {
        w[j] = xb[j] * xb[j];
        const float ax = std::fabs(xb[j]);
        if (ax > amax) amax = ax, max = xb[j];
      }
      if (amax < kq_group_max_eps) {
        scales[ib] = 0;
        continue;
      }
      const float v0 = kvalues_iq4nl[0];
      float d = -max / v0, id = 1.f / d, sumqx = 0, sumq2 = 0;
      for (int j = 0; j < 32; j++) {
        const float q = kvalues_iq4nl[iq4nl_best_index(id * xb[j])];
        sumqx += w[j] * q * xb[j];
        sumq2 += w[j] * q * q;
      }
      d = sumqx / sumq2;
      float best = d * sumqx;
      for (int itry = -7; itry <= 7; itry++) {
        id = (float)(itry + kvalues_iq4nl[0]) / max;
        sumqx = sumq2 = 0;
        for (int j = 0; j < 32; j++) {
          const float q = kvalues_iq4nl[iq4nl_best_index(id * xb[j])];
          sumqx += w[j] * q * xb[j];
          sumq2 += w[j] * q * q;
        }
        if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
          d = sumqx / sumq2;
          best = d * sumqx;
        }
      }
      scales[ib] = d;
      if (std::fabs(d) > amax_scale) amax_scale = std::fabs(d), max_scale = d;
    }
    const float d = -max_scale / 32;
    kq_put_f16(y, d);
    const float id = d != 0.f ? 1.f / d : 0.f;
    uint16_t sh = 0;
    for (int ib = 0; ib < 8; ib++) {
      int l = kq_nearest_int(id * scales[ib]);
      l = l < -32 ? -32 : l > 31 ? 31 : l;
      const float dl = d * (float)l, idl = dl != 0.f ? 1.f / dl : 0.f;
      for (int j = 0; j < 32; j++) L[32 * ib + j] = (uint8_t)iq4nl_best_index(idl * x[32 * ib + j]);
      l += 32;
      y[4 + ib / 2] |= (uint8_t)((l & 15) << (4 * (ib % 2)));
      sh |= (uint16_t)((l >> 4) << (2 * ib));
    }
    std::memcpy(y + 2, &sh, 2);
    for (int i = 0; i < 8; i++)
      for (int j = 0; j < 16; j++) y[8 + 16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
  }
}

}  // namespace ss

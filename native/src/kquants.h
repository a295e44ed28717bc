// GGUF k-quant weights (Q4_K, Q6_K): block geometry, the scalar decoders and the Q8_K
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
constexpr int64_t Q6_K_BYTES = 210;  // ql[128], qh[64], int8 scales[16], f16 d

inline bool is_kquant(int t) { return t == SS_Q4_K || t == SS_Q6_K; }

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

// GGUF's simple quant weights Q4_0, Q4_1, Q5_0 and Q5_1 (blocks of 32): geometry, the scalar
// decoders and llama.cpp's reference quantizers, shared by every ISA (layouts in
// src/tensor/legacyq.ts). The per-ISA dot-product kernels are in legacyq.inc.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace ss {

inline bool is_legacyq(int t) { return t == SS_Q4_0 || t == SS_Q4_1 || t == SS_Q5_0 || t == SS_Q5_1; }
// block bytes: 18, 20, 22, 24
inline int64_t legacyq_bytes(int t) { return t == SS_Q4_0 ? 18 : t == SS_Q4_1 ? 20 : t == SS_Q5_0 ? 22 : 24; }
// offset of the nibbles, of qh (Q5 types) and the code offset of the _0 types
inline int legacyq_qs(int t) { return t == SS_Q4_0 ? 2 : t == SS_Q4_1 ? 4 : t == SS_Q5_0 ? 6 : 8; }
inline int legacyq_qh(int t) { return t == SS_Q5_0 ? 2 : 4; }
inline bool legacyq_five(int t) { return t == SS_Q5_0 || t == SS_Q5_1; }
inline bool legacyq_min(int t) { return t == SS_Q4_1 || t == SS_Q5_1; }
inline int legacyq_off(int t) { return t == SS_Q4_0 ? 8 : t == SS_Q5_0 ? 16 : 0; }

inline float lq_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32_scalar(h);
}

// the 32 unsigned codes of a block, in element order
inline void legacyq_codes(int t, const uint8_t* blk, uint8_t* q) {
  const uint8_t* qs = blk + legacyq_qs(t);
  uint32_t qh = 0;
  if (legacyq_five(t)) std::memcpy(&qh, blk + legacyq_qh(t), 4);
  for (int l = 0; l < 16; l++) {
    q[l] = (uint8_t)((qs[l] & 15) | (((qh >> l) & 1) << 4));
    q[l + 16] = (uint8_t)((qs[l] >> 4) | (((qh >> (l + 16)) & 1) << 4));
  }
}

// n (a multiple of 32) values to f32, llama.cpp's dequantize_row_q4_0 / q4_1 / q5_0 / q5_1
inline void dequant_legacyq(int t, const uint8_t* src, float* y, int64_t n) {
  const int64_t bb = legacyq_bytes(t);
  const int off = legacyq_off(t);
  uint8_t q[32];
  for (int64_t b = 0; b < n / 32; b++, src += bb, y += 32) {
    const float d = lq_f16(src);
    legacyq_codes(t, src, q);
    if (legacyq_min(t)) {
      const float m = lq_f16(src + 2);
      for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d + m;
    } else {
      for (int j = 0; j < 32; j++) y[j] = (float)(q[j] - off) * d;
    }
  }
}

// n (a multiple of 32) floats to blocks: quantize_row_q4_0_ref / q4_1_ref / q5_0_ref / q5_1_ref,
// step for step the TypeScript ones (built with -ffp-contract=off: the same bytes)
inline void quantize_legacyq(int t, const float* x, uint8_t* y, int64_t n) {
  const int64_t bb = legacyq_bytes(t);
  const bool five = legacyq_five(t);
  for (int64_t b = 0; b < n / 32; b++, x += 32, y += bb) {
    std::memset(y, 0, (size_t)bb);
    int L[32];
    float d;
    if (legacyq_min(t)) {
      float mn = x[0], mx = x[0];
      for (int j = 1; j < 32; j++) {
        if (x[j] < mn) mn = x[j];
        if (x[j] > mx) mx = x[j];
      }
      d = (mx - mn) / (five ? 31.f : 15.f);
      const float id = d ? 1.f / d : 0.f;
      const uint16_t mh = f32_to_f16_scalar(mn);
      std::memcpy(y + 2, &mh, 2);
      for (int j = 0; j < 32; j++) {
        const float v = (x[j] - mn) * id + 0.5f;
        L[j] = five ? (int)(uint8_t)(int)v : (int)v < 15 ? (int)v : 15;
      }
    } else {
      float amax = 0.f, mx = 0.f;
      for (int j = 0; j < 32; j++) {
        const float a = x[j] < 0 ? -x[j] : x[j];
        if (a > amax) amax = a, mx = x[j];
      }
      d = mx / (five ? -16.f : -8.f);
      const float id = d ? 1.f / d : 0.f;
      const int nmax = five ? 31 : 15;
      for (int j = 0; j < 32; j++) {
        const int l = (int)(int8_t)(int)(x[j] * id + (five ? 16.5f : 8.5f));
        L[j] = l < nmax ? l : nmax;
      }
    }
    const uint16_t dh = f32_to_f16_scalar(d);
    std::memcpy(y, &dh, 2);
    uint8_t* qs = y + legacyq_qs(t);
    uint32_t qh = 0;
    for (int l = 0; l < 16; l++) {
      qs[l] = (uint8_t)((L[l] & 15) | ((L[l + 16] & 15) << 4));
      qh |= (uint32_t)((L[l] >> 4) & 1) << l;
      qh |= (uint32_t)((L[l + 16] >> 4) & 1) << (l + 16);
    }
    if (five) std::memcpy(y + legacyq_qh(t), &qh, 4);
  }
}

}  // namespace ss

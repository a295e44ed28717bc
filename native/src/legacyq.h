// GGUF's simple quant weights Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL (blocks of 32): geometry, the scalar
// decoders and llama.cpp's reference quantizers, shared by every ISA (layouts in
// src/tensor/legacyq.ts). The per-ISA dot-product kernels are in legacyq.inc.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels.h"
#include "simd.h"

namespace ss {

inline bool is_legacyq(int t) { return t == SS_Q4_0 || t == SS_Q4_1 || t == SS_Q5_0 || t == SS_Q5_1 || t == SS_IQ4_NL; }
// block bytes: 18, 20, 22, 24, 18
inline int64_t legacyq_bytes(int t) { return t == SS_Q4_0 || t == SS_IQ4_NL ? 18 : t == SS_Q4_1 ? 20 : t == SS_Q5_0 ? 22 : 24; }
// offset of the nibbles, of qh (Q5 types) and the code offset of the _0 types
inline int legacyq_qs(int t) { return t == SS_Q4_0 || t == SS_IQ4_NL ? 2 : t == SS_Q4_1 ? 4 : t == SS_Q5_0 ? 6 : 8; }
inline int legacyq_qh(int t) { return t == SS_Q5_0 ? 2 : 4; }
inline bool legacyq_five(int t) { return t == SS_Q5_0 || t == SS_Q5_1; }
inline bool legacyq_min(int t) { return t == SS_Q4_1 || t == SS_Q5_1; }
inline int legacyq_off(int t) { return t == SS_Q4_0 ? 8 : t == SS_Q5_0 ? 16 : 0; }

// kvalues_iq4nl: IQ4_NL's 16 levels
alignas(16) inline constexpr int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// the signed level of code q (Q4_0, Q5_0, IQ4_NL); q itself for Q4_1 / Q5_1
inline int legacyq_level(int t, int q) { return t == SS_IQ4_NL ? kvalues_iq4nl[q] : q - legacyq_off(t); }

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
  uint8_t q[32];
  for (int64_t b = 0; b < n / 32; b++, src += bb, y += 32) {
    const float d = lq_f16(src);
    legacyq_codes(t, src, q);
    if (legacyq_min(t)) {
      const float m = lq_f16(src + 2);
      for (int j = 0; j < 32; j++) y[j] = (float)q[j] * d + m;
    } else {
      for (int j = 0; j < 32; j++) y[j] = (float)legacyq_level(t, q[j]) * d;
    }
  }
}

// best_index_int8 over kvalues_iq4nl: the nearest level (ties to the upper one)
inline int iq4nl_best_index(float x) {
  const int8_t* v = kvalues_iq4nl;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int ml = 0, mu = 15;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < v[mav]) mu = mav;
    else ml = mav;
  }
  return x - v[mu - 1] < v[mu] - x ? mu - 1 : mu;
}

// quantize_row_iq4_nl_ref: quantize_row_iq4_nl_impl per block of 32, weights x^2, ntry 7
inline void quantize_iq4nl_block(const float* x, uint8_t* y) {
  float w[32];
  float amax = 0.f, max = 0.f;
  for (int j = 0; j < 32; j++) {
    w[j] = x[j] * x[j];
    const float ax = x[j] < 0 ? -x[j] : x[j];
    if (ax > amax) amax = ax, max = x[j];
  }
  float scale = 0.f;
  if (!(amax < 1e-15f)) {
    const float v0 = kvalues_iq4nl[0];
    float d = -max / v0;
    float id = 1.f / d;
    float sumqx = 0.f, sumq2 = 0.f;
    for (int j = 0; j < 32; j++) {
      const float q = kvalues_iq4nl[iq4nl_best_index(id * x[j])];
      sumqx += w[j] * q * x[j];
      sumq2 += w[j] * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -7; itry <= 7; itry++) {
      id = (float)(itry + kvalues_iq4nl[0]) / max;
      sumqx = sumq2 = 0.f;
      for (int j = 0; j < 32; j++) {
        const float q = kvalues_iq4nl[iq4nl_best_index(id * x[j])];
        sumqx += w[j] * q * x[j];
        sumq2 += w[j] * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
        d = sumqx / sumq2;
        best = d * sumqx;
      }
    }
    scale = d;
  }
  const uint16_t dh = f32_to_f16_scalar(scale);
  std::memcpy(y, &dh, 2);
  const float id = scale ? 1.f / scale : 0.f;
  uint8_t L[32];
  for (int j = 0; j < 32; j++) L[j] = (uint8_t)iq4nl_best_index(id * x[j]);
  for (int j = 0; j < 16; j++) y[2 + j] = (uint8_t)(L[j] | (L[j + 16] << 4));
}

// n (a multiple of 32) floats to blocks: quantize_row_q4_0_ref / q4_1_ref / q5_0_ref / q5_1_ref,
// step for step the TypeScript ones (built with -ffp-contract=off: the same bytes)
inline void quantize_legacyq(int t, const float* x, uint8_t* y, int64_t n) {
  const int64_t bb = legacyq_bytes(t);
  const bool five = legacyq_five(t);
  for (int64_t b = 0; b < n / 32; b++, x += 32, y += bb) {
    if (t == SS_IQ4_NL) {
      quantize_iq4nl_block(x, y);
      continue;
    }
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

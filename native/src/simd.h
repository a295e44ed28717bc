// SIMD abstraction: one struct per instruction set, same operations, so each kernel is
// written once (kernels.inc) and compiled three times: AVX-512, AVX2+FMA+F16C, portable.
// A kernel's reduction order depends only on V::W, never on how many rows a call has.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(SS_ISA_AVX512) || defined(SS_ISA_AVX2)
#include <immintrin.h>
#endif

namespace ss {

static inline float f16_to_f32_scalar(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {  // subnormal: normalise
      int e = -1;
      do { mant <<= 1; e++; } while (!(mant & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) bits = sign | 0x7f800000 | (mant << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t f32_to_f16_scalar(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, mant = x & 0x7fffff;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 | (mant >> 13) : 0));
  int e = (int)exp - 127 + 15;
  if (e >= 0x1f) return (uint16_t)(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (uint16_t)(sign | half);
  }
  uint32_t r = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
  return (uint16_t)(sign | r);
}

static inline float bf16_to_f32_scalar(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static inline uint16_t f32_to_bf16_scalar(float v) {
  uint32_t x;
  std::memcpy(&x, &v, 4);
  if ((x & 0x7f800000) == 0x7f800000 && (x & 0x7fffff)) return (uint16_t)(((x >> 16) | 0x40) & 0xffff);
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

// Scalar exp used by the portable path and for tails (same polynomial as the vector paths).
static inline float exp_poly_scalar(float x) {
  x = x < -88.f ? -88.f : (x > 88.f ? 88.f : x);
  float n = std::nearbyint(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  return std::ldexp(p, (int)n);
}

#if defined(SS_ISA_AVX512)
struct V {
  using R = __m512;
  static constexpr int W = 16;
  static constexpr const char* name = "avx512";
  static inline R zero() { return _mm512_setzero_ps(); }
  static inline R set1(float f) { return _mm512_set1_ps(f); }
  static inline R load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, R v) { _mm512_storeu_ps(p, v); }
  static inline R load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static inline R load_bf16(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
  }
  static inline R load_i8(const int8_t* p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p))); }
  static inline R add(R a, R b) { return _mm512_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static inline R div(R a, R b) { return _mm512_div_ps(a, b); }
  static inline R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static inline R max(R a, R b) { return _mm512_max_ps(a, b); }
  // true when some lane of a is greater than b's (false for NaN lanes)
  static inline bool any_gt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }
  static inline R min(R a, R b) { return _mm512_min_ps(a, b); }
  // Fixed-order tree: halves, then quarters ... (documented so the order never changes).
  static inline float hsum(R v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
  }
  static inline float hmax(R v) { return _mm512_reduce_max_ps(v); }
  // out[i] = hsum(v[i]) for i < 16, bit for bit (the same pairs are added: lanes l and l+8,
  // then l and l+4, l and l+2, l and l+1), as a transpose-and-add tree over 16 vectors.
  static inline void hsum_many(const R* v, float* out) {
    R s1[8], s2[4], s3[2];
    for (int i = 0; i < 8; i++)  // keys (i, i+8): halves; lanes 0-7 key i, 8-15 key i+8
      s1[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44), _mm512_shuffle_f32x4(v[i], v[i + 8], 0xEE));
    for (int i = 0; i < 4; i++)  // quarters: 128-bit block b holds 4 partials of one key
      s2[i] = _mm512_add_ps(_mm512_shuffle_f32x4(s1[i], s1[i + 4], 0x88), _mm512_shuffle_f32x4(s1[i], s1[i + 4], 0xDD));
    for (int i = 0; i < 2; i++)  // l and l+2 inside each 128-bit block
      s3[i] = _mm512_add_ps(_mm512_shuffle_ps(s2[i], s2[i + 2], 0x44), _mm512_shuffle_ps(s2[i], s2[i + 2], 0xEE));
    // l and l+1
    const R r = _mm512_add_ps(_mm512_shuffle_ps(s3[0], s3[1], 0x88), _mm512_shuffle_ps(s3[0], s3[1], 0xDD));
    // lane l now holds key {0,2,1,3,8,10,9,11,4,6,5,7,12,14,13,15}[l]; that order is its own
    // inverse, so one permute puts key i in lane i
    const __m512i order = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    _mm512_storeu_ps(out, _mm512_permutexvar_ps(order, r));
  }
  static inline R exp(R x) {
    x = _mm512_max_ps(_mm512_min_ps(x, set1(88.f)), set1(-88.f));
    R n = _mm512_roundscale_ps(_mm512_mul_ps(x, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm512_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(mul(p, r), r, add(r, set1(1.f)));
    return _mm512_scalef_ps(p, n);
  }
};
#elif defined(SS_ISA_AVX2)
struct V {
  using R = __m256;
  static constexpr int W = 8;
  static constexpr const char* name = "avx2";
  static inline R zero() { return _mm256_setzero_ps(); }
  static inline R set1(float f) { return _mm256_set1_ps(f); }
  static inline R load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, R v) { _mm256_storeu_ps(p, v); }
  static inline R load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
  static inline R load_bf16(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16));
  }
  static inline R load_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)p)));
  }
  static inline R add(R a, R b) { return _mm256_add_ps(a, b); }
  static inline R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static inline R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static inline R div(R a, R b) { return _mm256_div_ps(a, b); }
  static inline R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static inline R max(R a, R b) { return _mm256_max_ps(a, b); }
  static inline bool any_gt(R a, R b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0; }
  static inline R min(R a, R b) { return _mm256_min_ps(a, b); }
  static inline float hsum(R v) {
    __m128 b = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_add_ps(b, _mm_movehl_ps(b, b));
    b = _mm_add_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
  }
  // out[i] = hsum(v[i]) for i < 8, bit for bit (pairs l and l+4, then l+2, then l+1).
  static inline void hsum_many(const R* v, float* out) {
    R s1[4], s2[2];
    for (int i = 0; i < 4; i++)
      s1[i] = _mm256_add_ps(_mm256_permute2f128_ps(v[i], v[i + 4], 0x20), _mm256_permute2f128_ps(v[i], v[i + 4], 0x31));
    for (int i = 0; i < 2; i++)
      s2[i] = _mm256_add_ps(_mm256_shuffle_ps(s1[i], s1[i + 2], 0x44), _mm256_shuffle_ps(s1[i], s1[i + 2], 0xEE));
    const R r = _mm256_add_ps(_mm256_shuffle_ps(s2[0], s2[1], 0x88), _mm256_shuffle_ps(s2[0], s2[1], 0xDD));
    // lane l holds key {0,2,1,3,4,6,5,7}[l] (its own inverse): one permute restores key order
    _mm256_storeu_ps(out, _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 2, 1, 3, 4, 6, 5, 7)));
  }
  static inline float hmax(R v) {
    __m128 b = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    b = _mm_max_ps(b, _mm_movehl_ps(b, b));
    b = _mm_max_ss(b, _mm_movehdup_ps(b));
    return _mm_cvtss_f32(b);
  }
  static inline R exp(R x) {
    x = _mm256_max_ps(_mm256_min_ps(x, set1(88.f)), set1(-88.f));
    R n = _mm256_round_ps(_mm256_mul_ps(x, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    R r = _mm256_fnmadd_ps(n, set1(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
    R p = set1(1.9875691500e-4f);
    p = fma(p, r, set1(1.3981999507e-3f));
    p = fma(p, r, set1(8.3334519073e-3f));
    p = fma(p, r, set1(4.1665795894e-2f));
    p = fma(p, r, set1(1.6666665459e-1f));
    p = fma(p, r, set1(5.0000001201e-1f));
    p = fma(mul(p, r), r, add(r, set1(1.f)));
    // 2^n: n in [-127, 127] after the clamp; build the exponent bits (two steps keep -127 exact).
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i h = _mm256_srai_epi32(ni, 1);
    R s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    R s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
    return mul(mul(p, s1), s2);
  }
};
#else
// Portable: 8 plain floats; the compiler may use whatever SSE the baseline allows.
struct V {
  struct R { float v[8]; };
  static constexpr int W = 8;
  static constexpr const char* name = "portable";
  static inline R zero() { R r; for (int i = 0; i < 8; i++) r.v[i] = 0.f; return r; }
  static inline R set1(float f) { R r; for (int i = 0; i < 8; i++) r.v[i] = f; return r; }
  static inline R load(const float* p) { R r; std::memcpy(r.v, p, 32); return r; }
  static inline void store(float* p, R v) { std::memcpy(p, v.v, 32); }
  static inline R load_f16(const uint16_t* p) { R r; for (int i = 0; i < 8; i++) r.v[i] = f16_to_f32_scalar(p[i]); return r; }
  static inline R load_bf16(const uint16_t* p) { R r; for (int i = 0; i < 8; i++) r.v[i] = bf16_to_f32_scalar(p[i]); return r; }
  static inline R load_i8(const int8_t* p) { R r; for (int i = 0; i < 8; i++) r.v[i] = (float)p[i]; return r; }
#define SS_BIN(nm, expr) static inline R nm(R a, R b) { R r; for (int i = 0; i < 8; i++) { float x = a.v[i], y = b.v[i]; r.v[i] = (expr); } return r; }
  SS_BIN(add, x + y)
  SS_BIN(sub, x - y)
  SS_BIN(mul, x * y)
  SS_BIN(div, x / y)
  SS_BIN(max, x > y ? x : y)
  SS_BIN(min, x < y ? x : y)
  static inline bool any_gt(R a, R b) { for (int i = 0; i < 8; i++) if (a.v[i] > b.v[i]) return true; return false; }
#undef SS_BIN
  static inline R fma(R a, R b, R c) { R r; for (int i = 0; i < 8; i++) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
  static inline float hsum(R v) {
    float a[4], b[2];
    for (int i = 0; i < 4; i++) a[i] = v.v[i] + v.v[i + 4];
    for (int i = 0; i < 2; i++) b[i] = a[i] + a[i + 2];
    return b[0] + b[1];
  }
  static inline void hsum_many(const R* v, float* out) { for (int i = 0; i < 8; i++) out[i] = hsum(v[i]); }
  static inline float hmax(R v) { float m = v.v[0]; for (int i = 1; i < 8; i++) m = v.v[i] > m ? v.v[i] : m; return m; }
  static inline R exp(R x) { R r; for (int i = 0; i < 8; i++) r.v[i] = exp_poly_scalar(x.v[i]); return r; }
};
#endif

}  // namespace ss

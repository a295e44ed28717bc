#include "ops.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kquants.h"
#include "legacyq.h"
#include "kv_q8.h"
#include "pool.h"
#include "simd.h"

namespace ss {
namespace {

#if defined(__x86_64__)
bool os_saves(uint64_t mask) {
  uint32_t a, b, c, d;
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
  if (!(c & (1u << 27))) return false;  // OSXSAVE
  uint32_t lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((((uint64_t)hi << 32) | lo) & mask) == mask;
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && os_saves(0x6) && __builtin_cpu_supports("f16c");
}
bool has_avx512() {
  return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni") && os_saves(0xe6);
}
#else
bool has_avx2() { return false; }
bool has_avx512() { return false; }
#endif

// an index of isa_index()
int choose() {
  const char* no = std::getenv("SLIPSTREAM_NO_SIMD");
  if (no && *no && std::strcmp(no, "0") != 0) return 2;
  if (const char* want = std::getenv("SLIPSTREAM_ISA")) {
    if (!std::strcmp(want, "portable")) return 2;
    if (!std::strcmp(want, "avx2") && has_avx2()) return 1;
  }
  if (has_avx512()) return 0;
  if (has_avx2()) return 1;
  return 2;
}

int g_isa = choose();
const ss_kernels* const kTables[3] = {SS_PER_ISA(table)};
const ss_kernels* K = kTables[g_isa];

int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

}  // namespace

const char* isa() { return K->name; }

bool isa_supported(const char* name) {
  if (!std::strcmp(name, "portable")) return true;
  if (!std::strcmp(name, "avx2")) return has_avx2();
  if (!std::strcmp(name, "avx512")) return has_avx512();
  return false;
}

int isa_index() { return g_isa; }

bool set_isa(const char* name) {
  if (!isa_supported(name)) return false;
  g_isa = !std::strcmp(name, "portable") ? 2 : !std::strcmp(name, "avx2") ? 1 : 0;
  K = kTables[g_isa];
  return true;
}

size_t dtype_bytes(int dtype, int64_t n) {
  switch (dtype) {
    case SS_F32: return (size_t)n * 4;
    case SS_F16:
    case SS_BF16: return (size_t)n * 2;
    case SS_Q4_K: return (size_t)(n / QK_K) * Q4_K_BYTES;
    case SS_Q5_K: return (size_t)(n / QK_K) * Q5_K_BYTES;
    case SS_Q6_K: return (size_t)(n / QK_K) * Q6_K_BYTES;
    case SS_Q2_K: return (size_t)(n / QK_K) * Q2_K_BYTES;
    case SS_Q3_K: return (size_t)(n / QK_K) * Q3_K_BYTES;
    case SS_IQ4_XS: return (size_t)(n / QK_K) * IQ4_XS_BYTES;
    case SS_Q4_0:
    case SS_Q4_1:
    case SS_Q5_0:
    case SS_Q5_1:
    case SS_IQ4_NL: return (size_t)(n / 32) * (size_t)legacyq_bytes(dtype);
    default: return (size_t)(n / 32) * 34;
  }
}

// Activation rows to q8_0 blocks, int8 [M, cols] and f32 scales [M, cols/32] kept apart
// (the kernel table's quantizer: llama.cpp's rounding, the same bytes on every ISA).
static void quantize_rows_q8(const float* x, int64_t ldx, int64_t M, int64_t cols, int8_t* q, float* d) {
  const ss_kernels* k = K;
  parallel_for(M, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t m = r0; m < r1; m++) k->quantize_q8(x + m * ldx, cols, q + m * cols, d + m * (cols / 32));
  });
}

// Quantizes x for q8_0 weights into a grow-only per-thread buffer (no allocation once a model
// has warmed up) and points a.xq / a.xd at it. Returns false when memory runs out.
static bool prepare_q8(ss_matmul_args& a) {
  thread_local int8_t* qbuf = nullptr;
  thread_local size_t qcap = 0;
  const size_t need = (size_t)(a.M * a.K) + (size_t)(a.M * (a.K / 32)) * sizeof(float) + 64;
  if (qcap < need) {
    std::free(qbuf);
    qbuf = (int8_t*)std::malloc(need);
    qcap = qbuf ? need : 0;
    if (!qbuf) return false;
  }
  float* d = (float*)(((uintptr_t)(qbuf + a.M * a.K) + 63) & ~(uintptr_t)63);
  quantize_rows_q8(a.x, a.ldx, a.M, a.K, qbuf, d);
  a.xq = qbuf;
  a.xd = d;
  return true;
}

// Quantizes x to Q8_K for k-quant weights (int8 [M, K], d [M, K/256], sums of 16 [M, K/16]) into
// a grow-only per-thread buffer and points a.xq / a.xd / a.xbs at it. False when memory runs out.
static bool prepare_q8k(ss_matmul_args& a) {
  thread_local int8_t* qbuf = nullptr;
  thread_local size_t qcap = 0;
  const int64_t nb = a.K / QK_K;
  const size_t qbytes = ((size_t)(a.M * a.K) + 63) / 64 * 64, dbytes = ((size_t)(a.M * nb) * sizeof(float) + 63) / 64 * 64;
  const size_t need = qbytes + dbytes + (size_t)(a.M * nb * 16) * sizeof(int16_t) + 64;
  if (qcap < need) {
    std::free(qbuf);
    qbuf = (int8_t*)std::aligned_alloc(64, (need + 63) / 64 * 64);
    qcap = qbuf ? need : 0;
    if (!qbuf) return false;
  }
  float* d = (float*)(qbuf + qbytes);
  int16_t* bs = (int16_t*)((uint8_t*)d + dbytes);
  const float* x = a.x;
  const int64_t ldx = a.ldx, K = a.K;
  int8_t* q = qbuf;
  parallel_for(a.M, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t m = r0; m < r1; m++) quantize_q8k(x + m * ldx, K, q + m * K, d + m * nb, bs + m * nb * 16);
  });
  a.xq = qbuf;
  a.xd = d;
  a.xbs = bs;
  return true;
}

// Q4_1 / Q5_1 weights: x to q8_0 blocks (prepare_q8) plus each block's Q8_1 sum
// s = f16(d * sum q) as f32, d = amax / 127 before its f16 rounding (quantize_row_q8_1_ref), into
// a grow-only per-thread buffer at a.xs. False when memory runs out.
static bool prepare_q8_1(ss_matmul_args& a) {
  if (!prepare_q8(a)) return false;
  thread_local float* sbuf = nullptr;
  thread_local size_t scap = 0;
  const int64_t nb = a.K / 32;
  const size_t need = (size_t)(a.M * nb);
  if (scap < need) {
    std::free(sbuf);
    sbuf = (float*)std::malloc(need * sizeof(float));
    scap = sbuf ? need : 0;
    if (!sbuf) return false;
  }
  const float* x = a.x;
  const int8_t* q = a.xq;
  const int64_t ldx = a.ldx, K = a.K;
  float* s = sbuf;
  parallel_for(a.M, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t m = r0; m < r1; m++)
      for (int64_t b = 0; b < nb; b++) {
        const float* xb = x + m * ldx + b * 32;
        const int8_t* qb = q + m * K + b * 32;
        float amax = 0.f;
        int sum = 0;
        for (int j = 0; j < 32; j++) {
          const float v = xb[j] < 0 ? -xb[j] : xb[j];
          if (v > amax) amax = v;
          sum += qb[j];
        }
        const float d = amax / 127.f;
        s[m * nb + b] = f16_to_f32_scalar(f32_to_f16_scalar((float)sum * d));
      }
  });
  a.xs = sbuf;
  return true;
}

static bool prepare_x(ss_matmul_args& a) {
  if (a.wtype == SS_Q8_0 || a.wtype == SS_Q4_0 || a.wtype == SS_Q5_0 || a.wtype == SS_IQ4_NL) return prepare_q8(a);
  if (a.wtype == SS_Q4_1 || a.wtype == SS_Q5_1) return prepare_q8_1(a);
  if (is_kquant(a.wtype)) return prepare_q8k(a);
  return true;
}

// GEMM with f32/f16/bf16 weights: when x's rows are a multiple of 4 KiB apart, the lines a
// tile reads at one k of its 4 x rows (and 6 w rows, 4 KiB apart too in such models) all fall in
// one L1 set, and the x lines are evicted between uses. A copy of x with rows 64 bytes longer
// breaks that up; the tiles read the same values, so results are unchanged. Only for prefill-
// sized GEMMs (64 rows and more): with batched-decode row counts the copy and its extra pool
// dispatch measured 1-5% slower than the set conflicts it removes.
static void pad_x(ss_matmul_args& a) {
  if ((a.ldx * 4) % 4096 != 0 || a.M < 64) return;
  thread_local float* xbuf = nullptr;
  thread_local size_t xcap = 0;
  const int64_t ld = a.K + 16;
  const size_t need = (size_t)(a.M * ld);
  if (xcap < need) {
    std::free(xbuf);
    xbuf = (float*)std::aligned_alloc(64, need * sizeof(float));
    xcap = xbuf ? need : 0;
    if (!xbuf) return;  // no memory for the copy: run on x as it is
  }
  const float* x = a.x;
  const int64_t ldx = a.ldx, cols = a.K;
  float* dst = xbuf;
  parallel_for(a.M, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t m = r0; m < r1; m++) std::memcpy(dst + m * ld, x + m * ldx, (size_t)cols * sizeof(float));
  });
  a.x = xbuf, a.ldx = ld;
}

// Rows of weight per matrix-vector task: about 16 tasks per thread, so the dynamic schedule
// ends with little idle time, in whole tiles of the ISA's row count.
static int64_t gemv_rows(int64_t N, int64_t threads, int64_t nr) {
  int64_t rows = round_up((N + threads * 16 - 1) / (threads * 16), nr);
  return rows < 16 ? round_up(16, nr) : rows;
}

// Runs run_task(t) for every t in [0, tasks) on the pool. Each thread takes a contiguous share
// front to back, so the weight prefetches that run past one task's rows land in the rows of the
// thread's own next task; a thread done with its share takes tasks from the back of the others'
// (each share's [lo, hi) is one atomic word: the owner advances lo, a thief lowers hi). Against
// one shared task counter: q8_0 +2-12%, f16/bf16 +0-4%, f32 level (bench/NOTES.md).
template <class F>
static void gemv_for(int64_t tasks, const F& run_task) {
  constexpr int64_t MAXS = 64;
  int64_t S = pool_threads();
  if (S > MAXS) S = MAXS;
  if (S <= 1 || tasks <= 1) {
    for (int64_t t = 0; t < tasks; t++) run_task(t);
    return;
  }
  std::atomic<uint64_t> share[MAXS];
  auto pack = [](uint64_t lo, uint64_t hi) { return lo | hi << 32; };
  for (int64_t s = 0; s < S; s++) share[s].store(pack(tasks * s / S, tasks * (s + 1) / S), std::memory_order_relaxed);
  parallel_for(S, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; s++) {
      for (int64_t o = 0; o < S; o++) {
        std::atomic<uint64_t>& sh = share[(s + o) % S];
        uint64_t r = sh.load(std::memory_order_relaxed);
        for (;;) {
          const uint64_t lo = r & 0xffffffffu, hi = r >> 32;
          if (lo >= hi) break;
          const uint64_t t = o == 0 ? lo : hi - 1;  // own share from the front, others' from the back
          if (!sh.compare_exchange_weak(r, o == 0 ? pack(lo + 1, hi) : pack(lo, hi - 1), std::memory_order_relaxed)) continue;
          run_task((int64_t)t);
          r = sh.load(std::memory_order_relaxed);
        }
      }
    }
  });
}

void matmul(const ss_matmul_args& a_in) {
  const ss_kernels* k = K;
  ss_matmul_args a = a_in;
  if (!prepare_x(a)) return;
  const int64_t threads = pool_threads();
  if (a.M <= k->mr) {
    // Matrix-vector: split the weight rows; each task streams a run of rows once (prepacked
    // Q4_K: whole pairs of groups of 8 rows, the matrix-vector tile's).
    const int64_t rows = gemv_rows(a.N, threads, a.wp ? 16 : k->nr);
    const int64_t tasks = (a.N + rows - 1) / rows;
    gemv_for(tasks, [&](int64_t t) {
      const int64_t n0 = t * rows, n1 = n0 + rows < a.N ? n0 + rows : a.N;
      k->matmul(a, 0, a.M, n0, n1);
    });
    return;
  }
  // GEMM: (n block, m block) tasks; a weight block stays in L2 while m tiles stream past it.
  // Q4_K / Q6_K weights are packed per task on AVX2 (kquants.inc), so while there are 4 weight blocks
  // or more per thread a k-quant task takes every x row and packs its block once: bench:kernels q4_k
  // 512x2048.2048x2048 went from 0.90-0.97x to 1.02-1.04x the 64-row GFLOP/s of the same run (the
  // direct tiles of the other k-quants: q3_k level, 176-184 GFLOP/s).
  if (a.wtype < SS_Q8_0) pad_x(a);
  const int64_t NB = 64, nnb = (a.N + NB - 1) / NB;
  const int64_t MB = is_kquant(a.wtype) && nnb >= 4 * threads ? a.M : 64;
  const int64_t nmb = (a.M + MB - 1) / MB;
  parallel_for(nnb * nmb, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t nb = t / nmb, mb = t % nmb;
      const int64_t n0 = nb * NB, n1 = n0 + NB < a.N ? n0 + NB : a.N;
      const int64_t m0 = mb * MB, m1 = m0 + MB < a.M ? m0 + MB : a.M;
      k->matmul(a, m0, m1, n0, n1);
    }
  });
}

// Several matrices times the same x (q, k and v; gate and up): x is quantized once and all
// their rows go to the pool as one job. Each output is computed exactly as matmul() would.
void matmul_multi(const ss_matmul_args* as, int n) {
  const ss_kernels* k = K;
  if (n < 1) return;
  if (n == 1 || as[0].M > k->mr) {
    for (int i = 0; i < n; i++) matmul(as[i]);
    return;
  }
  ss_matmul_args a[8] = {};
  if (n > 8) n = 8;
  for (int i = 0; i < n; i++) a[i] = as[i];
  if (a[0].wtype >= SS_Q8_0) {
    if (!prepare_x(a[0])) return;
    for (int i = 1; i < n; i++) a[i].xq = a[0].xq, a[i].xd = a[0].xd, a[i].xbs = a[0].xbs, a[i].xs = a[0].xs;
  }
  const int64_t threads = pool_threads();
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += a[i].N;
  bool wp = false;
  for (int i = 0; i < n; i++) wp = wp || a[i].wp;
  const int64_t rows = gemv_rows(total, threads, wp ? 16 : k->nr);
  int64_t first[9];  // task index where matrix i starts
  first[0] = 0;
  for (int i = 0; i < n; i++) first[i + 1] = first[i] + (a[i].N + rows - 1) / rows;
  gemv_for(first[n], [&](int64_t t) {
    int i = 0;
    while (t >= first[i + 1]) i++;
    const int64_t n0 = (t - first[i]) * rows, n1 = n0 + rows < a[i].N ? n0 + rows : a[i].N;
    k->matmul(a[i], 0, a[i].M, n0, n1);
  });
}

void kq_prepack(const uint8_t* w, int wtype, int64_t N, int64_t K, uint8_t* dst) {
  const int64_t nb = K / QK_K;
  if (wtype != SS_Q4_K) return;
  parallel_for(N / 8, 1, [&](int64_t g0, int64_t g1) { kq_prepack_q4k(w, nb * Q4_K_BYTES, nb, g0, g1, dst); });
}

static int64_t row_grain(int64_t cols) {
  // enough rows per task that a task is worth a few microseconds
  int64_t g = 16384 / (cols > 0 ? cols : 1);
  return g < 1 ? 1 : g;
}

void binary(int op, const float* a, int64_t lda, const float* b, int64_t ldb, int bcast, float* out, int64_t ldo, int64_t rows, int64_t cols) {
  const ss_kernels* k = K;
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) { k->binary(op, a, lda, b, ldb, bcast, out, ldo, cols, r0, r1); });
}

void scale(const float* a, int64_t lda, float s, float* out, int64_t ldo, int64_t rows, int64_t cols) {
  const ss_kernels* k = K;
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) { k->scale(a, lda, s, out, ldo, cols, r0, r1); });
}

void rmsnorm(const float* x, int64_t ldx, const float* w, float eps, float* out, int64_t ldo, int64_t rows, int64_t cols) {
  const ss_kernels* k = K;
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) { k->rmsnorm(x, ldx, w, eps, out, ldo, cols, r0, r1); });
}

void layernorm(const float* x, int64_t ldx, const float* w, const float* b, float eps, float* out, int64_t ldo, int64_t rows, int64_t cols) {
  const ss_kernels* k = K;
  parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) { k->layernorm(x, ldx, w, b, eps, out, ldo, cols, r0, r1); });
}

void unary(int op, const float* x, int64_t ldx, float* out, int64_t ldo, int64_t rows, int64_t cols) {
  const ss_kernels* k = K;
  parallel_for(rows, row_grain(cols / 4), [&](int64_t r0, int64_t r1) { k->unary(op, x, ldx, out, ldo, cols, r0, r1); });
}

void gated(int op, const float* g, int64_t ldg, const float* u, int64_t ldu, float* out, int64_t ldo, int64_t rows, int64_t cols) {
  const ss_kernels* k = K;
  parallel_for(rows, row_grain(cols / 4), [&](int64_t r0, int64_t r1) { k->gated(op, g, ldg, u, ldu, out, ldo, cols, r0, r1); });
}

void attention(const ss_attn_args& a_in, int64_t T) {
  const ss_kernels* k = K;
  ss_attn_args a = a_in;
  if (a.ctype == SS_Q8_0) {  // q8_0 pools (kv_q8.inc): one task per (row, KV head)
#if defined(__x86_64__)
    void (*f)(const ss_attn_args&, int64_t, int64_t) = g_isa == 2 ? ss_portable::attention_q8 : ss_avx2::attention_q8;
#else
    void (*f)(const ss_attn_args&, int64_t, int64_t) = ss_portable::attention_q8;
#endif
    a.T = T;
    a.rowsPerTask = 1;
    parallel_for(T * a.Hkv, 1, [&](int64_t t0, int64_t t1) { f(a, t0, t1); });
    return;
  }
  // Rows of one sequence (a prefill chunk) go to the kernel several at a time when the query
  // heads per KV head are fewer than the score tile's rows (k->attn_rows: 8 on AVX-512, 4 on
  // AVX2 and portable): each key and value read then serves the heads of several rows. With one
  // head per KV head (multi-head attention: Llama 2, GPT-2) a row alone does one FMA per key
  // element loaded, and the chunk streams every KV head's blocks once per row: 25 GFLOP/s
  // against 130-141 for 8 heads per KV head, 72 with 8 rows together (`SS_HQ=12 SS_HKV=12 bash
  // bench/native/attention.sh`, prefill row; A/B 4.8x).
  const int64_t G = a.Hq / a.Hkv;
  a.T = T;
  a.rowsPerTask = a.tableStride == 0 && G < k->attn_rows ? k->attn_rows / G : 1;
  const int64_t blocks = (T + a.rowsPerTask - 1) / a.rowsPerTask;
  // A thread takes all KV heads of a row at once when that still balances the threads: two
  // threads reading different heads of one row's blocks at the same time measured 10-25% slower
  // than each streaming its own rows.
  const int64_t threads = pool_threads();
  const int64_t grain = blocks >= 4 * threads || blocks % threads == 0 ? a.Hkv : 1;
  parallel_for(blocks * a.Hkv, grain, [&](int64_t t0, int64_t t1) { k->attention(a, t0, t1); });
}

// the rotary_dim / 2 inverse frequencies theta^(-2i/d), with linear or Llama-3.1 scaling folded in
static void rope_inv_freq(const rope_args& a, double* inv, const float* ext = nullptr) {
  const int64_t half = a.rotary_dim / 2;
  for (int64_t i = 0; i < half; i++) {
    double f = std::pow(a.theta, -2.0 * (double)i / (double)a.rotary_dim);
    if (ext) f /= (double)ext[i];
    else if (a.scaling == 1) f /= a.factor;
    else if (a.scaling == 2) {
      const double low_wl = a.original_max_position / a.low_freq_factor;
      const double high_wl = a.original_max_position / a.high_freq_factor;
      const double wl = 2.0 * M_PI / f;
      if (wl < high_wl) {
      } else if (wl > low_wl) f /= a.factor;
      else {
        const double smooth = (a.original_max_position / wl - a.low_freq_factor) / (a.high_freq_factor - a.low_freq_factor);
        f = (1.0 - smooth) * f / a.factor + smooth * f;
      }
    }
    inv[i] = f;
  }
}

// The rotation: cos and sin of each angle in double, rounded to float, then the f32 rotation of
// each pair; the inverse (training's backward) negates the sine.
void rope(const rope_args& a, bool inverse) {
  const int64_t half = a.rotary_dim / 2;
  const bool longrope = a.scaling == 3;
  std::vector<double> inv((size_t)half), inv_long((size_t)half);
  rope_inv_freq(a, inv.data(), longrope ? a.short_factors : nullptr);
  if (longrope) rope_inv_freq(a, inv_long.data(), a.long_factors);
  const double* invp = inv.data();
  const double* invl = inv_long.data();
  const double mscale = longrope ? a.factor : 1.0;
  // cos and sin of position p's angles, as float, sin negated for the inverse
  auto angles = [&](int64_t p, float* c, float* sn) {
    const double* f = longrope && (double)p >= a.original_max_position ? invl : invp;
    for (int64_t i = 0; i < half; i++) {
      const double ang = (double)p * f[i];
      c[i] = (float)(mscale * std::cos(ang));
      const float v = (float)(mscale * std::sin(ang));
      sn[i] = inverse ? -v : v;
    }
  };
  auto rotate = [&](int64_t t, const float* __restrict c, const float* __restrict sn) {
    for (int64_t h = 0; h < a.H; h++) {
      float* __restrict v = a.x + t * a.sT + h * a.sH;
      if (a.half_layout) {
        for (int64_t i = 0; i < half; i++) {
          const float x0 = v[i], x1 = v[i + half];
          v[i] = x0 * c[i] - x1 * sn[i];
          v[i + half] = x0 * sn[i] + x1 * c[i];
        }
      } else {
        for (int64_t i = 0; i < half; i++) {
          const float x0 = v[2 * i], x1 = v[2 * i + 1];
          v[2 * i] = x0 * c[i] - x1 * sn[i];
          v[2 * i + 1] = x0 * sn[i] + x1 * c[i];
        }
      }
    }
  };
  int64_t maxpos = 0;
  for (int64_t t = 0; t < a.T; t++) maxpos = a.positions[t] > maxpos ? a.positions[t] : maxpos;
  if (maxpos < a.T) {
    // positions repeat (a batch of sequences): the trigonometry once per position, not per row
    std::vector<float> tab((size_t)(2 * (maxpos + 1) * half));
    float* tp = tab.data();
    parallel_for(maxpos + 1, 16, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; p++) angles(p, tp + 2 * p * half, tp + (2 * p + 1) * half);
    });
    parallel_for(a.T, 16, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; t++) rotate(t, tp + 2 * a.positions[t] * half, tp + (2 * a.positions[t] + 1) * half);
    });
    return;
  }
  parallel_for(a.T, 16, [&](int64_t t0, int64_t t1) {
    std::vector<float> cs((size_t)(2 * half));
    for (int64_t t = t0; t < t1; t++) {
      angles(a.positions[t], cs.data(), cs.data() + half);
      rotate(t, cs.data(), cs.data() + half);
    }
  });
}

static void decode_row(const uint8_t* src, int stype, float* dst, int64_t n) {
  switch (stype) {
    case SS_F32: std::memcpy(dst, src, (size_t)n * 4); break;
    case SS_F16:
      for (int64_t i = 0; i < n; i++) { uint16_t h; std::memcpy(&h, src + 2 * i, 2); dst[i] = f16_to_f32_scalar(h); }
      break;
    case SS_BF16:
      for (int64_t i = 0; i < n; i++) { uint16_t h; std::memcpy(&h, src + 2 * i, 2); dst[i] = bf16_to_f32_scalar(h); }
      break;
    case SS_Q4_K: dequant_q4k(src, dst, n); break;
    case SS_Q5_K: dequant_q5k(src, dst, n); break;
    case SS_Q6_K: dequant_q6k(src, dst, n); break;
    case SS_Q2_K: dequant_q2k(src, dst, n); break;
    case SS_Q3_K: dequant_q3k(src, dst, n); break;
    case SS_IQ4_XS: dequant_iq4xs(src, dst, n); break;
    case SS_Q4_0:
    case SS_Q4_1:
    case SS_Q5_0:
    case SS_Q5_1:
    case SS_IQ4_NL: dequant_legacyq(stype, src, dst, n); break;
    default:
      for (int64_t b = 0; b < n / 32; b++) {
        const uint8_t* blk = src + b * 34;
        uint16_t h; std::memcpy(&h, blk, 2);
        const float d = f16_to_f32_scalar(h);
        for (int i = 0; i < 32; i++) dst[b * 32 + i] = d * (float)(int8_t)blk[2 + i];
      }
  }
}

static void encode_row(const float* src, uint8_t* dst, int dtype, int64_t n) {
  switch (dtype) {
    case SS_Q4_K: quantize_q4k(src, dst, n, K->make_qkx2_x8); break;
    case SS_Q5_K: quantize_q5k(src, dst, n, K->make_qkx2_x8); break;
    case SS_Q6_K: quantize_q6k(src, dst, n); break;
    case SS_Q2_K: quantize_q2k(src, dst, n, K->make_qkx2_x8); break;
    case SS_Q3_K: quantize_q3k(src, dst, n); break;
    case SS_IQ4_XS: quantize_iq4xs(src, dst, n); break;
    case SS_Q4_0:
    case SS_Q4_1:
    case SS_Q5_0:
    case SS_Q5_1:
    case SS_IQ4_NL: quantize_legacyq(dtype, src, dst, n); break;
    case SS_F32: std::memcpy(dst, src, (size_t)n * 4); break;
    case SS_F16: K->f32_to_f16(src, dst, n); break;
    case SS_BF16:
      for (int64_t i = 0; i < n; i++) { uint16_t h = f32_to_bf16_scalar(src[i]); std::memcpy(dst + 2 * i, &h, 2); }
      break;
    default:
      // the activation quantizer, repacked into GGUF's block layout (f16 scale, 32 int8)
      for (int64_t b = 0; b < n / 32; b++) {
        uint8_t* blk = dst + b * 34;
        float d;
        K->quantize_q8(src + b * 32, 32, (int8_t*)(blk + 2), &d);
        const uint16_t h = f32_to_f16_scalar(d);  // d is already f16-exact
        std::memcpy(blk, &h, 2);
      }
  }
}

void embedding(const uint8_t* table, int ttype, int64_t D, const int32_t* ids, int64_t T, float* out, int64_t ldo) {
  const size_t row = dtype_bytes(ttype, D);
  parallel_for(T, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) decode_row(table + (size_t)ids[t] * row, ttype, out + t * ldo, D);
  });
}

void kv_write(const float* k, int64_t T, int64_t H, int64_t D, int64_t sT, int64_t sH, void* cache, int ctype, int64_t bs, const int32_t* slots, bool keyMajor) {
  for (int64_t t = 0; t < T; t++) {
    const int64_t blk = slots[t] / bs, off = slots[t] % bs;
    for (int64_t h = 0; h < H; h++) {
      const float* src = k + t * sT + h * sH;
      if (keyMajor && ctype != SS_Q8_0) {  // element (d, off) of the block at (blk * H + h) * D * bs + d * bs + off
        const int64_t base = (blk * H + h) * D * bs + off;
        if (ctype == SS_F32) {
          for (int64_t d = 0; d < D; d++) ((float*)cache)[base + d * bs] = src[d];
        } else {
          uint16_t half[256];  // converted a run at a time, then scattered bs apart
          for (int64_t d0 = 0; d0 < D; d0 += 256) {
            const int64_t m = D - d0 < 256 ? D - d0 : 256;
            K->f32_to_f16(src + d0, half, m);
            for (int64_t d = 0; d < m; d++) ((uint16_t*)cache)[base + (d0 + d) * bs] = half[d];
          }
        }
        continue;
      }
      const int64_t idx = ((blk * H + h) * bs + off) * D;
      if (ctype == SS_Q8_0) {  // keys and values alike: a token's row as q8_0 blocks (kv_q8.inc)
        encode_row(src, (uint8_t*)cache + dtype_bytes(SS_Q8_0, idx), SS_Q8_0, D);
        continue;
      }
      if (ctype == SS_F32) std::memcpy((float*)cache + idx, src, (size_t)D * 4);
      else encode_row(src, (uint8_t*)((uint16_t*)cache + idx), SS_F16, D);
    }
  }
}

void argmax(const float* x, int64_t ldx, int64_t rows, int64_t cols, int32_t* out) {
  for (int64_t r = 0; r < rows; r++) {
    const float* v = x + r * ldx;
    int64_t best = 0;
    for (int64_t c = 1; c < cols; c++)
      if (v[c] > v[best]) best = c;
    out[r] = (int32_t)best;
  }
}

void convert(const void* src, int stype, void* dst, int dtype, int64_t n) {
  const int64_t chunk = 32 * 1024;  // multiple of the q8_0 block
  const int64_t tasks = (n + chunk - 1) / chunk;
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    float* tmp = (float*)std::malloc(sizeof(float) * (size_t)chunk);
    if (!tmp) return;
    for (int64_t t = t0; t < t1; t++) {
      const int64_t e0 = t * chunk, m = e0 + chunk < n ? chunk : n - e0;
      decode_row((const uint8_t*)src + dtype_bytes(stype, e0), stype, tmp, m);
      encode_row(tmp, (uint8_t*)dst + dtype_bytes(dtype, e0), dtype, m);
    }
    std::free(tmp);
  });
}

}  // namespace ss

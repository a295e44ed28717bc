// How much read bandwidth can a loop keep while it computes, on this machine? A synthetic model
// of decode attention's memory side: 16 sequences x 4 KV heads, each task streaming its
// 4 KiB blocks (64 per task, page-aligned, 16 KiB apart as in the paged pools) in the kernel's
// order (the K of 8 blocks, then their V), with F 512-bit FMAs on every 64-byte line loaded
// (f32 decode attention with 8 query heads per KV head does 8 per line, plus its broadcasts
// and softmax) and a software prefetch (T0) one tile ahead. Prints, per F, GB/s from DRAM with
// 2 threads and 1, and the same loop's rate on an L1-resident buffer (its compute ceiling);
// first, the ceiling: a plain sequential read of the pools with 2 threads.
// Build and run: bash bench/native/stream.sh
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "harness.h"

struct Seg {
  const char* p;
  int64_t n;
};

// Streams segments [s0, s1) line by line, F FMAs per line over 16 accumulators, prefetching
// the line `dist` lines ahead in the same order.
template <int F>
static float body(const std::vector<Seg>& segs, size_t s0, size_t s1, int64_t dist) {
  __m512 a[16];
  for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
  const __m512 m = _mm512_set1_ps(0.999f);
  size_t ps = s0;
  int64_t po = dist * 64;
  while (ps < s1 && po >= segs[ps].n) po -= segs[ps].n, ps++;
  for (size_t s = s0; s < s1; s++)
    for (int64_t off = 0; off < segs[s].n; off += 256) {
#pragma GCC unroll 4
      for (int l = 0; l < 4; l++) {
        if (dist > 0 && ps < s1) {
          _mm_prefetch(segs[ps].p + po, _MM_HINT_T0);
          if ((po += 64) >= segs[ps].n) po = 0, ps++;
        }
        const __m512 x = _mm512_loadu_ps((const float*)(segs[s].p + off + l * 64));
#pragma GCC unroll 32
        for (int f = 0; f < F; f++) a[(l * F + f) % 16] = _mm512_fmadd_ps(x, m, a[(l * F + f) % 16]);
        if (F == 0) a[l] = _mm512_add_ps(a[l], x);
      }
    }
  __m512 s = a[0];
  for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

static TwoThreads pool;

template <int F>
static double rate(const std::vector<Seg>& segs, int threads, int64_t dist) {
  int64_t bytes = 0;
  for (const Seg& s : segs) bytes += s.n;
  volatile float sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
  if (threads == 2) {
    float r[2];
    pool.run([&](int i) { r[i] = i ? body<F>(segs, segs.size() / 2, segs.size(), dist) : body<F>(segs, 0, segs.size() / 2, dist); });
    sink = r[0] + r[1];
  } else {
    sink = body<F>(segs, 0, segs.size(), dist);
  }
  return bytes / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9;
}

int main() {
  const int64_t chunk = 4096, heads = 4, seqs = 16, per = 64, nb = seqs * per, copies = 6;
  const int64_t pool = nb * heads * chunk;  // 16 MiB per pool, as the 16 x 1024-token f32 cache
  std::vector<char*> K, Vv;
  for (int c = 0; c < copies; c++) {
    char* k = (char*)std::aligned_alloc(4096, pool);
    char* v = (char*)std::aligned_alloc(4096, pool);
    std::memset(k, 1, pool), std::memset(v, 1, pool);
    K.push_back(k), Vv.push_back(v);
  }
  auto order = [&](int c) {
    std::vector<Seg> segs;
    for (int64_t s = 0; s < seqs; s++)
      for (int64_t g = 0; g < heads; g++)
        for (int64_t b0 = 0; b0 < per; b0 += 8) {
          for (int64_t b = b0; b < b0 + 8; b++) segs.push_back({K[c] + ((s * per + b) * heads + g) * chunk, chunk});
          for (int64_t b = b0; b < b0 + 8; b++) segs.push_back({Vv[c] + ((s * per + b) * heads + g) * chunk, chunk});
        }
    return segs;
  };
  const std::vector<Seg> l1{{K[0], 16384}};
  int it = 0;
  double seq = 0;
  for (int r = 0; r < 5; r++) {
    const int c = it++ % copies;
    seq = std::max(seq, rate<0>({{K[c], pool}, {Vv[c], pool}}, 2, 0));
  }
  std::printf("sequential read of the pools, 2 threads: %.1f GB/s\n", seq);
  std::printf("FMAs/line   2 threads   1 thread   L1-resident (1 thread)   [GB/s, best of 5]\n");
  auto row = [&](int F, auto fn) {
    double t2 = 0, t1 = 0, c = 0;
    for (int r = 0; r < 5; r++) {
      t2 = std::max(t2, fn(order(it++ % copies), 2, 512));
      t1 = std::max(t1, fn(order(it++ % copies), 1, 512));
    }
    for (int r = 0; r < 2000; r++) c = std::max(c, fn(l1, 1, 0));
    std::printf("%9d   %9.1f   %8.1f   %22.1f   (2 threads: %.0f%% of the sequential read)\n", F, t2, t1, c, 100 * t2 / seq);
  };
  row(0, rate<0>);
  row(4, rate<4>);
  row(8, rate<8>);
  row(12, rate<12>);
  row(16, rate<16>);
}

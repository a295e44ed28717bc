// Decode-attention diagnostic harness: the AVX-512 attention kernel called directly (no Node,
// no thread pool), on the bench:kernels shape (16 sequences x 1,024 cached tokens, 32 query /
// 4 KV heads, head dim 64, blocks of 16), rotating over 16 copies of the cache so every call
// streams from DRAM. Separates where the time goes:
//   attention          the kernel, 2 threads (one half of the tasks each)
//   attention-1t       the kernel, 1 thread
//   read               a plain read of the same K and V blocks in the same order, 2 threads
//   l2                 the kernel on 128 cached tokens and one sequence, 1 thread (L2-resident)
// The pools start on a page boundary, as the engine's do; SS_MIS=64 starts them 64 bytes past
// one (as the engine's were before they were page-aligned), SS_HUGE=1 asks for transparent
// huge pages (not the engine's: see alignedZeros in src/tensor/native.ts).
// Build and run: bash bench/native/attention.sh [f32|f16]
#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

struct Shape {
  int B, L, Hq = 32, Hkv = 4, D = 64, bs = 16, copies;
};

static double run(const Shape& s, int ctype, const std::string& mode, int reps) {
  const int nb = s.B * s.L / s.bs;
  const size_t elems = (size_t)nb * s.Hkv * s.bs * s.D, es = ctype ? 2 : 4;
  std::vector<char*> ks(s.copies), vs(s.copies);
  for (int c = 0; c < s.copies; c++) {
    ks[c] = (char*)mmap(nullptr, elems * es + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    vs[c] = (char*)mmap(nullptr, elems * es + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (getenv("SS_HUGE") && atoi(getenv("SS_HUGE")) != 0) madvise(ks[c], elems * es + 4096, MADV_HUGEPAGE), madvise(vs[c], elems * es + 4096, MADV_HUGEPAGE);
    for (size_t i = 0; i < elems; i++) {
      const float x = rand() / (float)RAND_MAX - 0.5f, y = rand() / (float)RAND_MAX - 0.5f;
      if (ctype) ((uint16_t*)ks[c])[i] = _cvtss_sh(x, 0), ((uint16_t*)vs[c])[i] = _cvtss_sh(y, 0);
      else ((float*)ks[c])[i] = x, ((float*)vs[c])[i] = y;
    }
  }
  std::vector<float> q((size_t)s.B * s.Hq * s.D), o(q.size());
  for (auto& x : q) x = rand() / (float)RAND_MAX - 0.5f;
  std::vector<int32_t> tables(nb), pos(s.B, s.L - 1);
  for (int i = 0; i < nb; i++) tables[i] = i;
  ss_attn_args a{};
  a.q = q.data(), a.qsT = s.Hq * s.D, a.qsH = s.D, a.out = o.data(), a.osT = s.Hq * s.D, a.osH = s.D;
  const int mis = getenv("SS_MIS") ? atoi(getenv("SS_MIS")) : 0;  // pools this many bytes past a page
  a.ctype = ctype, a.Hq = s.Hq, a.Hkv = s.Hkv, a.bs = s.bs, a.D = s.D;
  a.tables = tables.data(), a.tableStride = s.L / s.bs, a.positions = pos.data(), a.scale = 0.125f;
  const int T = s.B * s.Hkv;
  // every K and V block of tasks [t0, t1), in the kernel's order, summed
  auto read = [&](int t0, int t1) {
    __m512 acc = _mm512_setzero_ps();
    const int64_t bytes = (int64_t)s.D * s.bs * es;
    for (int task = t0; task < t1; task++)
      for (int b = 0; b < s.L / s.bs; b++) {
        const int64_t off = ((int64_t)tables[task / s.Hkv * (s.L / s.bs) + b] * s.Hkv + task % s.Hkv) * bytes;
        for (int64_t i = 0; i < bytes; i += 64)
          acc = _mm512_add_ps(acc, _mm512_add_ps(_mm512_loadu_ps((const char*)a.kc + off + i), _mm512_loadu_ps((const char*)a.vc + off + i)));
      }
    volatile float sink = _mm512_reduce_add_ps(acc);
    (void)sink;
  };
  static TwoThreads pool;
  auto two = [&](const std::function<void(int, int)>& f) { pool.run([&](int i) { i ? f(T / 2, T) : f(0, T / 2); }); };
  auto kern = [&](int t0, int t1) { kernel->attention(a, t0, t1); };
  std::vector<double> times;
  for (int r = 0; r < reps; r++) {
    a.kc = ks[r % s.copies] + mis, a.vc = vs[r % s.copies] + mis;
    const auto t0 = std::chrono::steady_clock::now();
    if (mode == "read") two(read);
    else if (mode == "attention") two(kern);
    else kern(0, T);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  for (int c = 0; c < s.copies; c++) munmap(ks[c], elems * es), munmap(vs[c], elems * es);
  std::sort(times.begin(), times.end());
  return 2.0 * elems * es / times[times.size() / 2] / 1e9;  // GB/s of K and V, median call
}

int main(int argc, char** argv) {
  const int ctype = argc > 1 && !std::strcmp(argv[1], "f16") ? 1 : 0;
  const Shape dram{16, 1024, 32, 4, 64, 16, 16}, l2{1, 128, 32, 4, 64, 16, 1};
  std::printf("decode attention, %s KV, 32 q / 4 kv heads, head dim 64 (median of the calls)\n", ctype ? "f16" : "f32");
#ifdef SS_AB
  // builds A and B alternating, 6 rounds, on the 16 x 1024 shape (2 threads, 1 thread) and on
  // one L2-resident sequence of 512 tokens (1 thread)
  const Shape l2b{1, 512, 32, 4, 64, 16, 1};
  double s[2][3] = {};
  for (int round = 0; round < 6; round++) {
    double r[2][3];
    for (int b = 0; b < 2; b++) {
      kernel = b ? &ss_b::table : &ss_a::table;
      r[b][0] = run(dram, ctype, "attention", 60), r[b][1] = run(dram, ctype, "attention-1t", 30), r[b][2] = run(l2b, ctype, "l2", 3000);
      for (int k = 0; k < 3; k++) s[b][k] += r[b][k];
    }
    std::printf("  A %5.1f / %5.1f / %5.1f   B %5.1f / %5.1f / %5.1f GB/s (2 threads / 1 / L2)\n", r[0][0], r[0][1], r[0][2], r[1][0], r[1][1], r[1][2]);
  }
  std::printf("  mean B/A: %.3f with 2 threads, %.3f with 1, %.3f in L2\n", s[1][0] / s[0][0], s[1][1] / s[0][1], s[1][2] / s[0][2]);
#else
  std::printf("  attention    16 seqs x 1024 tok, 2 threads: %6.1f GB/s\n", run(dram, ctype, "attention", 100));
  std::printf("  attention-1t 16 seqs x 1024 tok, 1 thread:  %6.1f GB/s\n", run(dram, ctype, "attention-1t", 40));
  std::printf("  read         the same blocks, plain read:   %6.1f GB/s\n", run(dram, ctype, "read", 100));
  const double gbs = run(l2, ctype, "l2", 20000);
  // FLOPs: 4 per (query head, key, dim); bytes of one call: 2 x 128 x 4 x 64 x es
  const double flops_per_byte = 4.0 * 32 * 64 / (2.0 * 4 * 64 * (ctype ? 2 : 4));
  std::printf("  l2           1 seq x 128 tok, 1 thread:     %6.1f GB/s = %.0f GFLOP/s\n", gbs, gbs * flops_per_byte);
#endif
}

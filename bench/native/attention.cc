// Decode-attention diagnostic harness: the AVX-512 attention kernel called directly (no Node,
// no thread pool), on the bench:kernels shape (16 sequences x 1,024 cached tokens, 32 query /
// 4 KV heads, head dim 64, blocks of 16), rotating over 16 copies of the cache so every call
// streams from DRAM. Separates where the time goes:
//   attention          the kernel, 2 threads (one half of the tasks each)
//   attention-pool     the kernel, 2 threads taking a row's KV heads at a time from a shared
//                      counter, as ops.cc's pool hands them out
//   attention-1t       the kernel, 1 thread
//   read               a plain read of the same K and V blocks in the same order, 2 threads
//   read-seq           the same blocks in address order (a block's KV heads together), 2 threads
//   read-tile          4 blocks of one KV head, then the next head's (SS_TB=N: N blocks), 2 threads
//   read-pf            read-tile, prefetching the next 4 blocks of every head in address order
//                      (SS_PFH: the hint, 3 = T0, 2 = T1, 1 = T2, 0 = NTA), 2 threads
//   l2                 the kernel on 128 cached tokens and one sequence, 1 thread (L2-resident;
//                      SS_L2TOK=N: N tokens, 1024 = 2 MiB of f32 K and V, L3)
//   prefill            a prefill chunk of 256 rows of one sequence, rows grouped as ops.cc does
// The pools start on a page boundary, as the engine's do; SS_MIS=64 starts them 64 bytes past
// one (as the engine's were before they were page-aligned); SS_HUGE=1 asks for transparent huge
// pages, as the engine's KV pools are (residentZeros in src/tensor/native.ts). SS_HQ / SS_HKV
// set other head counts, SS_BS other block sizes; SS_SEQS / SS_COPIES the main rows' sequences
// and cache copies (SS_SEQS=2 SS_COPIES=1 keeps them in cache: the kernel's 2-thread compute
// rate). BFLAGS adds compiler flags (-DNAME for an experiment behind #ifdef); under ab.sh,
// SS_ROUNDS sets the number of alternating rounds.
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

// Tasks [0, tasks) on both threads of pool, handed out as ops.cc's pool does: a row block's KV
// heads (hkv tasks) per grab from one shared counter.
static void by_rows(TwoThreads& pool, const ss_attn_args& a, int tasks, int hkv) {
  std::atomic<int> next{0};
  pool.run([&](int) {
    for (int c; (c = next.fetch_add(hkv)) < tasks;) kernel->attention(a, c, std::min(tasks, c + hkv));
  });
}

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
  a.T = s.B, a.rowsPerTask = 1;
  const int T = s.B * s.Hkv;
  // Plain reads of the same K and V blocks, summed (order: 0 the kernel's, one KV head at a time;
  // 1 address order, a block's KV heads together; 2 TB blocks (SS_TB, default 4) of one KV head,
  // then the next head's; 3 as 2 with TB = 4, the next 4 blocks of every KV head prefetched in
  // address order as it goes, one contiguous range since the harness's blocks are consecutive;
  // SS_PFH the hint: 3 = T0, 2 = T1, 1 = T2, 0 = NTA)
  const int64_t bytes = (int64_t)s.D * s.bs * es, bps = s.L / s.bs;  // blocks per sequence
  auto off = [&](int seq, int b, int g) { return ((int64_t)tables[seq * bps + b] * s.Hkv + g) * bytes; };
  auto readOrder = [&](int t0, int t1, int order) {
    __m512 acc = _mm512_setzero_ps();
    const char *pfk = nullptr, *pfv = nullptr;
    const int hint = getenv("SS_PFH") ? atoi(getenv("SS_PFH")) : 2;
    auto run = [&](int64_t o, int64_t n) {
      const char* kp = (const char*)a.kc + o;
      const char* vp = (const char*)a.vc + o;
      __m512 x = _mm512_setzero_ps();
      if (!pfk) {
        for (int64_t i = 0; i < n; i += 64) x = _mm512_add_ps(x, _mm512_add_ps(_mm512_loadu_ps(kp + i), _mm512_loadu_ps(vp + i)));
      } else {
        for (int64_t i = 0; i < n; i += 64, pfk += 64, pfv += 64) {
          if (hint == 3) _mm_prefetch(pfk, _MM_HINT_T0), _mm_prefetch(pfv, _MM_HINT_T0);
          else if (hint == 2) _mm_prefetch(pfk, _MM_HINT_T1), _mm_prefetch(pfv, _MM_HINT_T1);
          else if (hint == 1) _mm_prefetch(pfk, _MM_HINT_T2), _mm_prefetch(pfv, _MM_HINT_T2);
          else _mm_prefetch(pfk, _MM_HINT_NTA), _mm_prefetch(pfv, _MM_HINT_NTA);
          x = _mm512_add_ps(x, _mm512_add_ps(_mm512_loadu_ps(kp + i), _mm512_loadu_ps(vp + i)));
        }
      }
      acc = _mm512_add_ps(acc, x);
    };
    const int TB = order == 3 || !getenv("SS_TB") ? 4 : atoi(getenv("SS_TB"));
    if (order == 0) {
      for (int task = t0; task < t1; task++)
        for (int b = 0; b < bps; b++) run(off(task / s.Hkv, b, task % s.Hkv), bytes);
    } else if (order == 1) {
      for (int seq = t0 / s.Hkv; seq < t1 / s.Hkv; seq++)
        for (int b = 0; b < bps; b++) run(off(seq, b, 0), bytes * s.Hkv);
    } else {
      for (int seq = t0 / s.Hkv; seq < t1 / s.Hkv; seq++)
        for (int b0 = 0; b0 < bps; b0 += TB) {
          pfk = pfv = nullptr;
          if (order == 3 && b0 + TB < bps) pfk = (const char*)a.kc + off(seq, b0 + TB, 0), pfv = (const char*)a.vc + off(seq, b0 + TB, 0);
          for (int g = 0; g < s.Hkv; g++)
            for (int b = b0; b < b0 + TB && b < bps; b++) run(off(seq, b, g), bytes);
        }
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
    if (mode == "read") two([&](int lo, int hi) { readOrder(lo, hi, 0); });
    else if (mode == "read-seq") two([&](int lo, int hi) { readOrder(lo, hi, 1); });
    else if (mode == "read-tile") two([&](int lo, int hi) { readOrder(lo, hi, 2); });
    else if (mode == "read-pf") two([&](int lo, int hi) { readOrder(lo, hi, 3); });
    else if (mode == "attention") two(kern);
    else if (mode == "attention-pool") by_rows(pool, a, T, s.Hkv);
    else kern(0, T);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  for (int c = 0; c < s.copies; c++) munmap(ks[c], elems * es), munmap(vs[c], elems * es);
  return 2.0 * elems * es / median(times) / 1e9;  // GB/s of K and V, median call
}

// A prefill chunk: T query rows at positions L - T .. L - 1 of one sequence (one block table for
// all rows, as ops.cc passes it), tasks handed out as ops.cc's pool does (chunks of a row
// block's KV heads from a shared counter, 2 threads), rows taken together as ops.cc does
// (SS_ROWS=N: N rows per task; in A/B runs build A takes SS_ROWS_A, default 1, as revisions
// before row groups have no attn_rows). Returns GFLOP/s (4 per query head, key and dim).
static double run_prefill(int hq, int hkv, int ctype, int reps) {
  const int L = 512, T = 256, D = 64, bs = 16, nb = L / bs;
  const size_t elems = (size_t)nb * hkv * bs * D, es = ctype ? 2 : 4;
  std::vector<char> kb(elems * es + 64), vb(elems * es + 64);
  char* kp = kb.data() + (64 - (uintptr_t)kb.data() % 64) % 64;
  char* vp = vb.data() + (64 - (uintptr_t)vb.data() % 64) % 64;
  for (size_t i = 0; i < elems; i++) {
    const float x = rand() / (float)RAND_MAX - 0.5f, y = rand() / (float)RAND_MAX - 0.5f;
    if (ctype) ((uint16_t*)kp)[i] = _cvtss_sh(x, 0), ((uint16_t*)vp)[i] = _cvtss_sh(y, 0);
    else ((float*)kp)[i] = x, ((float*)vp)[i] = y;
  }
  std::vector<float> q((size_t)T * hq * D), o(q.size());
  for (auto& x : q) x = rand() / (float)RAND_MAX - 0.5f;
  std::vector<int32_t> tables(nb), pos(T);
  for (int i = 0; i < nb; i++) tables[i] = i;
  double flops = 0;
  for (int t = 0; t < T; t++) pos[t] = L - T + t, flops += 4.0 * (pos[t] + 1) * hq * D;
  ss_attn_args a{};
  a.q = q.data(), a.qsT = hq * D, a.qsH = D, a.out = o.data(), a.osT = hq * D, a.osH = D;
  a.kc = kp, a.vc = vp, a.ctype = ctype, a.Hq = hq, a.Hkv = hkv, a.bs = bs, a.D = D;
  a.tables = tables.data(), a.tableStride = 0, a.positions = pos.data(), a.scale = 0.125f;
  const int G = hq / hkv;
  int rows;
#ifdef SS_AB
  if (kernel == &ss_a::table) rows = getenv("SS_ROWS_A") ? atoi(getenv("SS_ROWS_A")) : 1;
  else
#endif
    rows = getenv("SS_ROWS") ? atoi(getenv("SS_ROWS")) : G < kernel->attn_rows ? kernel->attn_rows / G : 1;  // ops.cc's rule
  if (rows < 1) rows = 1;
  a.T = T, a.rowsPerTask = rows;
  static TwoThreads pool;
  const int blocks = (T + rows - 1) / rows, tasks = blocks * hkv;
  std::vector<double> times;
  for (int r = 0; r < reps; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    by_rows(pool, a, tasks, hkv);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return flops / median(times) / 1e9;
}

int main(int argc, char** argv) {
  const int ctype = argc > 1 && !std::strcmp(argv[1], "f16") ? 1 : 0;
  // SS_HQ / SS_HKV: other head counts (multi-head attention: SS_HQ=12 SS_HKV=12), the same bytes
  const int hq = getenv("SS_HQ") ? atoi(getenv("SS_HQ")) : 32, hkv = getenv("SS_HKV") ? atoi(getenv("SS_HKV")) : 4;
  if (hq < 1 || hkv < 1 || hq % hkv) return std::fprintf(stderr, "SS_HQ must be a multiple of SS_HKV\n"), 1;
  const int bk = 16 * 4 / hkv > 0 ? 16 * 4 / hkv : 1;  // sequences: 16 at 4 KV heads, as many KV bytes at others
  const int l2tok = getenv("SS_L2TOK") ? atoi(getenv("SS_L2TOK")) : 128;  // the cached row's tokens
  const int bs = getenv("SS_BS") ? atoi(getenv("SS_BS")) : 16;  // tokens per KV block
  // SS_SEQS / SS_COPIES: the main shape's sequences and cache copies (SS_SEQS=2 SS_COPIES=1: 4 MiB
  // of f32 K and V, in cache, for the kernel's 2-thread rate without DRAM)
  const int seqs = getenv("SS_SEQS") ? atoi(getenv("SS_SEQS")) : bk, copies = getenv("SS_COPIES") ? atoi(getenv("SS_COPIES")) : 16;
  const Shape dram{seqs, 1024, hq, hkv, 64, bs, copies}, l2{1, l2tok, hq, hkv, 64, bs, 1};
  std::printf("decode attention, %s KV, %d q / %d kv heads, head dim 64 (median of the calls)\n", ctype ? "f16" : "f32", hq, hkv);
#ifdef SS_AB
  // builds A and B alternating, 6 rounds, on the 16 x 1024 shape (2 threads, 1 thread), on one
  // sequence of 512 tokens (1 thread; L2-resident at 4 KV heads) and on a prefill chunk (GFLOP/s)
  // (SS_ROUNDS: rounds, 6 by default). This VM's neighbours sometimes take a whole figure down
  // 5-10x, so the median of the rounds' B/A ratios is printed too: one such round moves the
  // mean a lot and the median little.
  const Shape l2b{1, 512, hq, hkv, 64, 16, 1};
  const int rounds = getenv("SS_ROUNDS") ? std::max(1, atoi(getenv("SS_ROUNDS"))) : 6;
  double s[2][4] = {};
  std::vector<double> ratio[4];
  for (int round = 0; round < rounds; round++) {
    double r[2][4];
    for (int b = 0; b < 2; b++) {
      kernel = b ? &ss_b::table : &ss_a::table;
      r[b][0] = run(dram, ctype, "attention", 60), r[b][1] = run(dram, ctype, "attention-1t", 30), r[b][2] = run(l2b, ctype, "l2", 3000);
      r[b][3] = run_prefill(hq, hkv, ctype, 40);
      for (int k = 0; k < 4; k++) s[b][k] += r[b][k];
    }
    for (int k = 0; k < 4; k++) ratio[k].push_back(r[1][k] / r[0][k]);
    std::printf("  A %5.1f / %5.1f / %5.1f / %5.0f   B %5.1f / %5.1f / %5.1f / %5.0f (GB/s 2 threads / 1 / L2; prefill GFLOP/s)\n", r[0][0], r[0][1], r[0][2], r[0][3], r[1][0], r[1][1], r[1][2], r[1][3]);
  }
  double med[4];
  for (int k = 0; k < 4; k++) med[k] = median(ratio[k]);
  std::printf("  mean B/A: %.3f with 2 threads, %.3f with 1, %.3f in L2, %.3f prefill\n", s[1][0] / s[0][0], s[1][1] / s[0][1], s[1][2] / s[0][2], s[1][3] / s[0][3]);
  std::printf("  median of the rounds' B/A: %.3f with 2 threads, %.3f with 1, %.3f in L2, %.3f prefill\n", med[0], med[1], med[2], med[3]);
#else
  std::printf("  attention    %2d seqs x 1024 tok, 2 threads: %6.1f GB/s\n", dram.B, run(dram, ctype, "attention", 100));
  std::printf("  attention-pool %2d seqs, a row per grab: %5.1f GB/s\n", dram.B, run(dram, ctype, "attention-pool", 100));
  std::printf("  attention-1t %2d seqs x 1024 tok, 1 thread:  %6.1f GB/s\n", dram.B, run(dram, ctype, "attention-1t", 40));
  std::printf("  read         the same blocks, plain read:   %6.1f GB/s\n", run(dram, ctype, "read", 100));
  std::printf("  read-seq     the same, in address order:    %6.1f GB/s\n", run(dram, ctype, "read-seq", 100));
  std::printf("  read-tile    the same, 4 blocks x KV heads:  %6.1f GB/s\n", run(dram, ctype, "read-tile", 100));
  std::printf("  read-pf      read-tile, next tile prefetched: %5.1f GB/s\n", run(dram, ctype, "read-pf", 100));
  const double gbs = run(l2, ctype, "l2", 20000);
  // FLOPs: 4 per (query head, key, dim); bytes of one call: 2 x tokens x 4 x 64 x es
  const double flops_per_byte = 4.0 * hq * 64 / (2.0 * hkv * 64 * (ctype ? 2 : 4));
  std::printf("  l2           1 seq x %4d tok, 1 thread:    %6.1f GB/s = %.0f GFLOP/s\n", l2tok, gbs, gbs * flops_per_byte);
  std::printf("  prefill      256 rows at 256-511, 2 threads: %5.0f GFLOP/s\n", run_prefill(hq, hkv, ctype, 40));
#endif
}

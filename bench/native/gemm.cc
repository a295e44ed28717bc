// GEMM harness: the matmul kernel called directly, with ops.cc's task grid (64 x 64 blocks, a
// shared task counter, 2 threads) and its padded activation rows (rows 4 KiB apart and 64 rows
// or more get 16 floats more), on data that stays in cache between calls.
//   bash bench/native/gemm.sh [M N K [f32|f16|bf16|q8_0]]      GFLOP/s of this tree's AVX-512 kernel
//   bash bench/native/ab.sh REV gemm [M N K [f32|f16|bf16|q8_0]]  revision REV (A) against this tree (B)
// q8_0: weights in GGUF's blocks (f16 scale, 32 int8), x quantized once as ops.cc does.
// SS_COPIES=N rotates the calls over N copies of the weights, so that they stream from DRAM
// (matrix-vector products: M = 1, e.g. SS_COPIES=64 ... gemm 1 2048 5632 bf16).
// SS_BLOCKS=64x64,96x96,... alternates task blocks (weight rows x x rows) over 8 rounds and prints
// each one's median (1024^3 f32: 48x64 to 120x96 all within 1.5% of ops.cc's 64x64).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "harness.h"

int main(int argc, char** argv) {
  const int64_t M = argc > 1 ? atoll(argv[1]) : 1024, N = argc > 2 ? atoll(argv[2]) : 1024, K = argc > 3 ? atoll(argv[3]) : 1024;
  const char* dt = argc > 4 ? argv[4] : "f32";
  const bool bf16 = !std::strcmp(dt, "bf16"), f16 = !std::strcmp(dt, "f16") || bf16, q8 = !std::strcmp(dt, "q8_0");
  if (q8 && K % 32) return std::fprintf(stderr, "q8_0 needs K a multiple of 32\n"), 1;
  const int64_t ldw = q8 ? K / 32 * 34 : K * (f16 ? 2 : 4), ldx = (K * 4) % 4096 == 0 && M >= 64 && !q8 ? K + 16 : K;
  // 64-byte aligned, as the engine's weights (mapped) and ops.cc's padded copy of x are
  float* x = (float*)std::aligned_alloc(64, (M * ldx * 4 + 63) / 64 * 64);
  uint8_t* w = (uint8_t*)std::aligned_alloc(64, (N * ldw + 63) / 64 * 64);
  std::vector<float> out(M * N), first;
  for (int64_t i = 0; i < M * ldx; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
  for (int64_t i = 0; i < N * K; i++) {
    const float v = rand() / (float)RAND_MAX - 0.5f;
    if (q8) {  // scale 1/254, quants of v * 254 (|v| <= 0.5)
      uint8_t* blk = w + i / K * ldw + i % K / 32 * 34;
      const uint16_t h = _cvtss_sh(1.f / 254.f, 0);
      std::memcpy(blk, &h, 2);
      blk[2 + i % 32] = (uint8_t)(int8_t)std::lround(v * 254.f);
    } else if (f16) {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      const uint16_t h = bf16 ? (uint16_t)(b >> 16) : _cvtss_sh(v, 0);
      std::memcpy(&w[2 * i], &h, 2);
    } else {
      std::memcpy(&w[4 * i], &v, 4);
    }
  }
  std::vector<int8_t> xq(q8 ? M * K : 0);
  std::vector<float> xd(q8 ? M * K / 32 : 0);
  for (int64_t m = 0; q8 && m < M; m++) kernel->quantize_q8(x + m * ldx, K, xq.data() + m * K, xd.data() + m * (K / 32));
  ss_matmul_args a{};
  a.x = x, a.ldx = ldx, a.w = w, a.wtype = q8 ? SS_Q8_0 : bf16 ? SS_BF16 : f16 ? SS_F16 : SS_F32, a.ldw = ldw;
  const int copies = getenv("SS_COPIES") ? std::max(1, atoi(getenv("SS_COPIES"))) : 1;
  std::vector<uint8_t*> ws{w};
  for (int c = 1; c < copies; c++) {
    ws.push_back((uint8_t*)std::aligned_alloc(64, (N * ldw + 63) / 64 * 64));
    std::memcpy(ws.back(), w, N * ldw);
  }
  int64_t ncall = 0;
  a.out = out.data(), a.ldo = N, a.M = M, a.N = N, a.K = K, a.xq = xq.data(), a.xd = xd.data();
  TwoThreads pool;
  int64_t NB = 64, MB = 64;  // ops.cc's task blocks (SS_BLOCKS=NBxMB,...: alternate others)
  auto call = [&] {  // one matmul, GFLOP/s
    a.w = ws[ncall++ % copies];
    std::atomic<int64_t> next{0};
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t nnb = (N + NB - 1) / NB, nmb = (M + MB - 1) / MB;
    pool.run([&](int) {
      for (int64_t t; (t = next++) < nnb * nmb;) {
        const int64_t nb = t / nmb, mb = t % nmb;
        kernel->matmul(a, mb * MB, std::min(M, mb * MB + MB), nb * NB, std::min(N, nb * NB + NB));
      }
    });
    return 2.0 * M * N * K / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9;
  };
  auto best = [&](int calls) {
    double b = 0;
    for (int i = 0; i < calls; i++) b = std::max(b, call());
    return b;
  };
  std::printf("GEMM %lldx%lld . %lldx%lld, %s weights, 2 threads (best of 5 calls per figure)\n", (long long)M, (long long)K, (long long)N, (long long)K, dt);
  // the f32 FMA peak of the kernels' ISA on both threads (kernel->peak_fma: 12 chains of FMAs),
  // best of 3, to put the GEMM's figures against
  auto peak = [&] {
    const int64_t iters = 20000000;
    double b = 0;
    for (int rep = 0; rep < 3; rep++) {
      volatile float sink = 0;
      const auto t0 = std::chrono::steady_clock::now();
      pool.run([&](int) { sink = sink + kernel->peak_fma(iters); });
      b = std::max(b, 2.0 * 12 * kernel->width * iters * 2 / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9);
    }
    return b;
  };
  const double pk = peak();
  std::printf("  f32 FMA peak (%s, 2 threads): %.1f GFLOP/s\n", kernel->name, pk);
#ifdef SS_AB
  double s[2] = {};
  bool same = true;
  std::vector<double> ra, rb, q;
  for (int round = 0; round < 8; round++) {
    double r[2];
    for (int b = 0; b < 2; b++) {
      kernel = b ? &ss_b::table : &ss_a::table;
      r[b] = best(5), s[b] += r[b];
      if (round == 0 && b == 0) first = out;
      if (b == 1) same = same && std::memcmp(first.data(), out.data(), out.size() * 4) == 0;
    }
    ra.push_back(r[0]), rb.push_back(r[1]), q.push_back(r[1] / r[0]);
    std::printf("  A %6.1f  B %6.1f GFLOP/s\n", r[0], r[1]);
  }
  std::printf("  mean B/A %.3f, median B/A %.3f; medians A %.1f (%.0f%% of peak), B %.1f (%.0f%%) GFLOP/s; outputs %s\n", s[1] / s[0], median(q), median(ra),
              100 * median(ra) / pk, median(rb), 100 * median(rb) / pk, same ? "bit-identical" : "DIFFER");
#else
  if (q8 && getenv("SS_CHECK")) {  // q8_0: every row alone (the matrix-vector path) against the GEMM's, bit for bit, and a double reference
    call();
    const int64_t nb = K / 32;
    int64_t differ = 0;
    double worst = 0;
    std::vector<float> one(N);
    for (int64_t m = 0; m < M; m++) {
      ss_matmul_args r = a;
      r.xq = a.xq + m * K, r.xd = a.xd + m * nb, r.out = one.data(), r.M = 1;
      for (int64_t n = 0; n < N; n += 16) kernel->matmul(r, 0, 1, n, std::min(N, n + 16));
      differ += std::memcmp(one.data(), out.data() + m * N, N * 4) != 0;
      for (int64_t n = 0; n < N; n++) {
        double e = 0, mag = 0;
        for (int64_t b = 0; b < nb; b++) {
          const uint8_t* blk = a.w + n * ldw + b * 34;
          uint16_t h;
          std::memcpy(&h, blk, 2);
          int32_t d = 0;
          for (int i = 0; i < 32; i++) d += (int32_t)a.xq[m * K + b * 32 + i] * (int8_t)blk[2 + i];
          e += (double)d * a.xd[m * nb + b] * _cvtsh_ss(h), mag += std::fabs((double)d * a.xd[m * nb + b] * _cvtsh_ss(h));
        }
        worst = std::max(worst, std::fabs(out[m * N + n] - e) / (mag + 1e-30));
      }
    }
    std::printf("  check: %lld of %lld rows differ from the row computed alone; worst |err| / sum|terms| %.2e\n", (long long)differ, (long long)M, worst);
    return differ != 0;
  }
  if (const char* bl = getenv("SS_BLOCKS")) {  // task blocks NBxMB, alternating, 8 rounds
    std::vector<std::pair<int64_t, int64_t>> shapes;
    for (const char* p = bl; *p;) {
      const int64_t nb = atoll(p);
      while (*p && *p != 'x') p++;
      const int64_t mb = *p ? atoll(++p) : nb;
      shapes.push_back({nb, mb});
      while (*p && *p != ',') p++;
      if (*p) p++;
    }
    std::vector<std::vector<double>> r(shapes.size());
    for (int round = 0; round < 8; round++)
      for (size_t i = 0; i < shapes.size(); i++) NB = shapes[i].first, MB = shapes[i].second, r[i].push_back(best(5));
    for (size_t i = 0; i < shapes.size(); i++) {
      std::vector<double> q;  // each round's ratio to the first shape
      for (size_t k = 0; k < r[i].size(); k++) q.push_back(r[i][k] / r[0][k]);
      std::printf("  blocks %lld x %lld: median %.1f GFLOP/s, median ratio to the first %.3f\n", (long long)shapes[i].first, (long long)shapes[i].second, median(r[i]),
                  median(q));
    }
    return 0;
  }
  const double g = best(20);
  std::printf("  %.1f GFLOP/s (%.0f%% of the FMA peak)\n", g, 100 * g / pk);
#endif
}

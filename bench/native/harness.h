// Shared by the C++ harnesses: the kernel table under test, and a second thread.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "kernels.h"

// The kernels under test: this tree's AVX-512 build, or with -DSS_AB (bench/native/ab.sh) build
// A (ss_a, a git revision) or B (ss_b, the working tree), switched by assigning `kernel`.
#ifdef SS_AB
namespace ss_a { extern const ss_kernels table; }
namespace ss_b { extern const ss_kernels table; }
static const ss_kernels* kernel = &ss_a::table;
#elif defined(SS_HARNESS_AVX2)  // ISA=avx2 bash bench/native/run.sh ...
namespace ss_avx2 { extern const ss_kernels table; }
static const ss_kernels* kernel = &ss_avx2::table;
#else
namespace ss_avx512 { extern const ss_kernels table; }
static const ss_kernels* kernel = &ss_avx512::table;
#endif

// The median of v (the mean of the middle two when v has an even count).
static inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The second thread: started once and spinning between calls, as the engine's pool does
// (starting a thread per call cost several percent of a ~1 ms call).
class TwoThreads {
 public:
  TwoThreads() : helper_([this] {
    for (int seen = 0;;) {
      int g;
      while ((g = gen_.load(std::memory_order_acquire)) == seen) _mm_pause();
      if (g < 0) return;
      seen = g;
      (*job_)(1);
      done_.store(g, std::memory_order_release);
    }
  }) {}
  ~TwoThreads() {
    gen_.store(-1, std::memory_order_release);
    helper_.join();
  }
  // f(0) on this thread and f(1) on the helper, returning when both are done
  void run(const std::function<void(int)>& f) {
    job_ = &f;
    const int g = gen_.load() + 1;
    gen_.store(g, std::memory_order_release);
    f(0);
    while (done_.load(std::memory_order_acquire) != g) _mm_pause();
  }

 private:
  std::atomic<int> gen_{0}, done_{0};
  const std::function<void(int)>* job_ = nullptr;
  std::thread helper_;
};

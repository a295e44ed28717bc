#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ss {
namespace {

struct Pool {
  std::mutex submit;  // one job at a time
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::thread> workers;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> active{0};
  std::atomic<int64_t> next{0};
  int64_t n = 0, grain = 1;
  task_fn fn = nullptr;
  void* ctx = nullptr;
  bool stop = false;
  int nthreads = 1;
  int64_t spin_us = 2000;

  void work() {
    for (;;) {
      int64_t t0 = next.fetch_add(grain, std::memory_order_relaxed);
      if (t0 >= n) break;
      int64_t t1 = t0 + grain < n ? t0 + grain : n;
      fn(ctx, t0, t1);
    }
  }

  // `seen`: the generation current when the worker was started (start() runs with no job in
  // flight), so a worker joins only jobs submitted after it exists.
  void worker_loop(uint64_t seen) {
    for (;;) {
      // Spin for a while before sleeping: ops of a forward pass arrive microseconds apart, and
      // waking a sleeping thread costs ~100 us on a VM (an IPI through the hypervisor), more
      // than most kernels take. The budget is time, not iterations: PAUSE lasts from a few
      // to ~140 cycles depending on the CPU.
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us);
      int spins = 0;
      uint64_t g;
      while ((g = generation.load(std::memory_order_acquire)) == seen) {
        if ((++spins & 63) != 0 || std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__)
          _mm_pause();
#endif
          continue;
        }
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen || stop; });
        if (stop) return;
      }
      if (stop) return;
      seen = g;
      work();
      active.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void start(int threads) {
    nthreads = threads < 1 ? 1 : threads;
    if (const char* e = std::getenv("SLIPSTREAM_SPIN_US")) spin_us = std::atoll(e);
    // A worker started by pool_set_threads must not take the generation already current for a job:
    // it used to start with seen = 0, run work() at once on the last job's stale state and
    // decrement `active`; when that happened just after the next run() had set `active`, the
    // count ended at -1 and run() spun forever while the worker slept (seen as a hang in
    // ops.test.ts, which resizes the pool between calls).
    const uint64_t g0 = generation.load(std::memory_order_acquire);
    for (int i = 1; i < nthreads; i++) workers.emplace_back([this, g0] { worker_loop(g0); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(m);
      stop = true;
      generation.fetch_add(1);
    }
    cv.notify_all();
    for (auto& t : workers) t.join();
    workers.clear();
    stop = false;
  }

  void run(int64_t n_, int64_t grain_, task_fn fn_, void* ctx_) {
    std::lock_guard<std::mutex> job(submit);
    if (nthreads == 1 || n_ <= grain_) {
      fn_(ctx_, 0, n_);
      return;
    }
    n = n_;
    grain = grain_ < 1 ? 1 : grain_;
    fn = fn_;
    ctx = ctx_;
    next.store(0, std::memory_order_relaxed);
    active.store(nthreads - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m);
      generation.fetch_add(1, std::memory_order_release);
    }
    cv.notify_all();
    work();
    while (active.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
      _mm_pause();
#endif
    }
  }
};

int default_threads() {
  if (const char* s = std::getenv("SLIPSTREAM_THREADS")) {
    int v = std::atoi(s);
    if (v > 0) return v;
  }
  unsigned h = std::thread::hardware_concurrency();
  return h ? (int)h : 1;
}

Pool& pool() {
  static Pool* p = [] {
    Pool* q = new Pool();  // never destroyed: threads live for the process
    q->start(default_threads());
    return q;
  }();
  return *p;
}

}  // namespace

void pool_run(int64_t n, int64_t grain, task_fn fn, void* ctx) {
  if (n <= 0) return;
  pool().run(n, grain, fn, ctx);
}

int pool_threads() { return pool().nthreads; }

void pool_set_threads(int n) {
  Pool& p = pool();
  std::lock_guard<std::mutex> job(p.submit);
  p.shutdown();
  p.start(n);
}

}  // namespace ss

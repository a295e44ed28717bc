// sgemm's blocking and threading (the packing and microkernel are per ISA, sgemm_kernels.inc).
//
// Loops, BLIS order: columns of C in blocks of nc, depth in blocks of kc. One pool job covers
// a column block and a run of depth blocks. Its tasks are independent blocks of C: a chunk
// of at most mc rows by a range of nr-wide op(B) panels, taken through the depth blocks in
// order. For each depth block the task packs its rows of op(A) into its own buffer (which
// stays in L2); each B panel is packed once, by the first task to need it, into a buffer
// all tasks share, and reused from L1/L2 while the task's A panels stream past it. Depth
// blocks after the first accumulate into C (beta = 1).
#include "sgemm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <memory>

#include "ops.h"
#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ss {
namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }

// The kernels of the active ISA (setIsa / SLIPSTREAM_NO_SIMD apply to sgemm too).
const ss_sgemm_kernels* pick() { return active(SS_PER_ISA(sgemm_table)); }

// Grow-only, 64-byte aligned packing memory of the calling thread: after the first call of a
// given size, sgemm allocates nothing. Allocated here, never on a pool thread, so running
// out of memory throws std::bad_alloc to the caller instead of ending the process.
struct Arena {
  float* p = nullptr;
  size_t cap = 0;
  ~Arena() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      void* q = nullptr;
      if (posix_memalign(&q, 64, n * sizeof(float)) != 0) throw std::bad_alloc();
      p = (float*)q;
      cap = n;
    }
    return p;
  }
};
thread_local Arena arena;

// The A-slot flags, grow-only like the arena.
struct Flags {
  std::unique_ptr<std::atomic<int>[]> f;
  int64_t cap = 0;
  std::atomic<int>* get(int64_t n) {
    if (n > cap) {
      f.reset(new std::atomic<int>[n]);
      cap = n;
    }
    for (int64_t i = 0; i < n; i++) f[i].store(0, std::memory_order_relaxed);
    return f.get();
  }
};
thread_local Flags flags;

// C = beta * C (K == 0 or alpha == 0); beta == 0 writes zeros without reading C.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  parallel_for(M, M * N >= (1 << 16) ? 16 : M, [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; i++) {
      float* c = C + i * ldc;
      if (beta == 0.f) std::memset(c, 0, (size_t)N * sizeof(float));
      else if (beta != 1.f)
        for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
  });
}

void relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

struct Job {
  const ss_sgemm_kernels* k;
  bool transA, transB;
  int64_t M, N, K;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* B;
  // B in half precision instead (sgemm_half_b): B16 set, B null
  const uint16_t* B16;
  bool bf16;
  int64_t ldb;
  float* C;
  int64_t ldc;
  // depth blocks are KC deep (the last one less)
  int64_t KC;
  // the current job: columns [j0, j0 + nc) and depth blocks [b0, b1)
  int64_t j0, nc, b0, b1;
  // packed B of the job: depth block b (from b0) at bpack + (b - b0) * bstride, panel q
  // of it nr * kc floats further on per panel
  float* bpack;
  int64_t bstride, npmax;
  // B panels are packed by the first task that needs them: 0 not yet, 1 being packed,
  // 2 ready. That spreads the packing over the threads without a pack phase and barrier of
  // its own (B's source is often read from DRAM: all threads packing at once would be
  // bandwidth-bound while the FMA units idle).
  std::atomic<int>* bstate;
  // task grid: m_chunks row chunks by n_split ranges of B panels
  int64_t mp, m_chunks, n_split;
  // per-task A buffers: a task takes a free slot for its duration (tasks on the pool run
  // on up to `slots` threads at once; the pool gives no thread index to key them by)
  float* aslots;
  int64_t aslot_size;
  std::atomic<int>* busy;
  int slots;

  int64_t depth(int64_t b) const { return K - b * KC < KC ? K - b * KC : KC; }
  int64_t bcols(int64_t q) const { return nc - q * k->nr < k->nr ? nc - q * k->nr : k->nr; }

  // Panel q of depth block b, packed on first use.
  const float* panel(int64_t b, int64_t q) const {
    const int64_t kc = depth(b);
    float* dst = bpack + (b - b0) * bstride + q * k->nr * kc;
    std::atomic<int>& st = bstate[(b - b0) * npmax + q];
    if (st.load(std::memory_order_acquire) == 2) return dst;
    int expect = 0;
    if (st.compare_exchange_strong(expect, 1, std::memory_order_acquire)) {
      const int64_t c = j0 + q * k->nr, k0 = b * KC;
      const int64_t off = transB ? c * ldb + k0 : k0 * ldb + c;
      if (B16) k->pack_b_half(B16 + off, ldb, !transB, bf16, bcols(q), kc, dst);
      else k->pack_b(B + off, ldb, !transB, bcols(q), kc, dst);
      st.store(2, std::memory_order_release);
    } else {
      while (st.load(std::memory_order_acquire) != 2) relax();
    }
    return dst;
  }

  // One chunk of rows by one range of panels, through all the job's depth blocks: a task
  // owns its block of C, so it needs no barrier between depth blocks.
  void task(int64_t t) const {
    const int64_t mi = t / n_split, ni = t % n_split;
    const int64_t mr = k->mr, nr = k->nr, np = cdiv(nc, nr);
    const int64_t i0 = mi * mp / m_chunks * mr, i1p = (mi + 1) * mp / m_chunks * mr;
    const int64_t i1 = i1p < M ? i1p : M;
    const int64_t q0 = ni * np / n_split, q1 = (ni + 1) * np / n_split, nq = q1 - q0;
    if (i1 <= i0 || nq <= 0) return;
    int s = 0;
    for (;; s = (s + 1) % slots) {
      int expect = 0;
      if (busy[s].load(std::memory_order_relaxed) == 0 && busy[s].compare_exchange_strong(expect, 1, std::memory_order_acquire)) break;
    }
    float* apack = aslots + s * aslot_size;
    // Tasks of different row chunks start at different panels, so the first ones to run
    // pack different panels instead of waiting on each other.
    const int64_t start = mi * nq / m_chunks;
    for (int64_t b = b0; b < b1; b++) {
      const int64_t k0 = b * KC, kc = depth(b);
      const float* src = transA ? A + k0 * lda + i0 : A + i0 * lda + k0;
      k->pack_a(src, lda, transA, i1 - i0, kc, apack);
      const float b_eff = k0 == 0 ? beta : 1.f;
      for (int64_t v = 0; v < nq; v++) {
        const int64_t q = q0 + (start + v) % nq;
        const float* bp = panel(b, q);
        const int64_t n = bcols(q);
        float* c = C + i0 * ldc + j0 + q * nr;
        for (int64_t i = i0; i < i1; i += mr, c += mr * ldc) {
          const int64_t m = i1 - i < mr ? i1 - i : mr;
          k->kernel(kc, apack + (i - i0) * kc, bp, c, ldc, alpha, b_eff, m, n);
        }
      }
    }
    busy[s].store(0, std::memory_order_release);
  }
};

// One call's work, on the pool.
void run(Job& j) {
  const int64_t M = j.M, N = j.N, K = j.K;
  const int64_t mr = j.k->mr, nr = j.k->nr;

  // Even blocks: K = 600 is two blocks of 300, not 512 + 88 (a thin block costs a C round trip).
  const int64_t kblocks = cdiv(K, j.k->kc), KC = round_up(cdiv(K, kblocks), 8);
  const int64_t nblocks = cdiv(N, j.k->nc), NC = round_up(cdiv(N, nblocks), nr);
  j.KC = KC;
  // Depth blocks per job: as many as keep the job's packed B within SPAN floats (16 MiB).
  // Fewer jobs, fewer barriers: at each one every thread waits for the slowest, which on a
  // machine shared with other processes may be one the OS has paused.
  constexpr int64_t SPAN = (int64_t)1 << 22;
  const int64_t per_job = KC * NC >= SPAN ? 1 : SPAN / (KC * NC);
  const int64_t jblocks = per_job < kblocks ? per_job : kblocks;
  // Small products are not worth waking the pool for.
  const int64_t T = (double)M * N * K < 64.0 * 64 * 64 ? 1 : pool_threads();

  // The task grid. Rows are dealt in whole mr panels, chunks of at most mc rows; with several
  // threads the chunk count is a multiple of the thread count so that equal tasks give equal
  // shares. When there are too few row panels to share evenly (a short M), the B panels are
  // split as well, each task packing the same few A rows.
  j.mp = cdiv(M, mr);
  const int64_t cp = j.k->mc / mr;
  j.m_chunks = cdiv(j.mp, cp);
  j.n_split = 1;
  if (T > 1) {
    // Two tasks a thread at least, where the rows allow 4 panels a chunk: the pool hands
    // tasks out as threads come free, so a thread the OS pauses (another process on the
    // core) holds up a quarter of the job, not half.
    int64_t want = round_up(j.m_chunks, T);
    const int64_t fine = 2 * T;
    if (want < fine && j.mp >= 4 * fine) want = fine;
    const double m_eff = (double)j.mp / (double)(cdiv(j.mp, T) * T);
    const double n_eff = (double)cdiv(NC, nr) / (double)(cdiv(cdiv(NC, nr), T) * T);
    if (j.mp >= want && (m_eff >= 0.95 || m_eff >= n_eff)) j.m_chunks = want;
    else j.n_split = T;
  }
  const int64_t chunk_rows = cdiv(j.mp, j.m_chunks) * mr;

  j.slots = (int)T;
  j.aslot_size = round_up(chunk_rows * KC, 16);
  j.bstride = round_up(KC * NC, 16);
  j.npmax = cdiv(NC, nr);
  const int64_t bsize = j.bstride * jblocks;
  float* mem = arena.get((size_t)(bsize + j.aslot_size * T));
  j.bpack = mem;
  j.aslots = mem + bsize;
  std::atomic<int>* f = flags.get(T + jblocks * j.npmax);
  j.busy = f;
  j.bstate = f + T;

  const int64_t tasks = j.m_chunks * j.n_split;
  for (int64_t j0 = 0; j0 < N; j0 += NC) {
    j.j0 = j0;
    j.nc = N - j0 < NC ? N - j0 : NC;
    for (int64_t b0 = 0; b0 < kblocks; b0 += jblocks) {
      j.b0 = b0;
      j.b1 = b0 + jblocks < kblocks ? b0 + jblocks : kblocks;
      // (the pool's job start publishes these resets to its threads)
      for (int64_t q = 0; q < jblocks * j.npmax; q++) j.bstate[q].store(0, std::memory_order_relaxed);
      if (T == 1) {
        for (int64_t t = 0; t < tasks; t++) j.task(t);
        continue;
      }
      parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; t++) j.task(t);
      });
    }
  }
}

// The job of a call, or null when there is nothing to multiply (C = beta * C done here).
bool setup(Job& j, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return false;
  if (K <= 0 || alpha == 0.f) {
    scale_c(M, N, beta, C, ldc);
    return false;
  }
  j.k = pick();
  j.transA = transA, j.transB = transB, j.M = M, j.N = N, j.K = K, j.alpha = alpha, j.beta = beta;
  j.A = A, j.lda = lda, j.ldb = ldb, j.C = C, j.ldc = ldc;
  return true;
}
}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  Job j{};
  if (!setup(j, transA, transB, M, N, K, alpha, A, lda, ldb, beta, C, ldc)) return;
  j.B = B;
  run(j);
}

void sgemm_half_b(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const uint16_t* B, bool bf16, int64_t ldb, float beta, float* C, int64_t ldc) {
  Job j{};
  if (!setup(j, transA, transB, M, N, K, alpha, A, lda, ldb, beta, C, ldc)) return;
  j.B16 = B;
  j.bf16 = bf16;
  run(j);
}

}  // namespace ss

// One persistent thread pool for the whole process. The calling thread takes part in the
// work; workers spin briefly after each job (ops arrive microseconds apart during a forward
// pass) and then sleep on a condition variable. Jobs from different JS threads are
// serialised by a mutex, so a worker_thread and the main thread can share the pool.
#pragma once
#include <cstdint>

namespace ss {

using task_fn = void (*)(void* ctx, int64_t t0, int64_t t1);

// Runs fn over tasks [0, n) in chunks of `grain` tasks, on all pool threads.
void pool_run(int64_t n, int64_t grain, task_fn fn, void* ctx);
int pool_threads();
void pool_set_threads(int n);

template <class F>
inline void parallel_for(int64_t n, int64_t grain, const F& f) {
  pool_run(n, grain, [](void* c, int64_t a, int64_t b) { (*(const F*)c)(a, b); }, (void*)&f);
}

}  // namespace ss

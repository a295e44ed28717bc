// The benchmarks' machine ceilings on all pool threads, on the ISA ops.cc has chosen, bound as
//   benchRead(Float32Array, streams = 1) -> checksum   (a streaming read)
//   benchFma(itersPerThread) -> flops performed        (the peak FMA rate)
// bench/kernels.ts measures each kernel against them (the roofline); bench/sgemm.ts and the
// training benches against benchFma.
#include <napi.h>

#include <cstdlib>

#include "bench.h"
#include "napi_args.h"
#include "ops.h"
#include "pool.h"

namespace {
using namespace ss_napi;

const ss_bench_kernels* BK() { return ss::active(SS_PER_ISA(bench_table)); }

float bench_read(const float* p, int64_t n, int streams) {
  const ss_bench_kernels* k = BK();
  const int64_t chunk = 1 << 20;
  const int64_t tasks = (n + chunk - 1) / chunk;
  float* part = (float*)std::calloc((size_t)tasks, sizeof(float));
  if (!part) return 0.f;
  ss::parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      const int64_t len = t * chunk + chunk < n ? chunk : n - t * chunk;
      if (streams <= 1) {
        part[t] = k->read_sum(p + t * chunk, len);
        continue;
      }
      // `streams` interleaved sequential streams, 4 KiB at a time each (as a GEMV tile reads rows)
      const int64_t q = len / streams, step = 1024;
      float s = 0.f;
      for (int64_t off = 0; off < q; off += step)
        for (int i = 0; i < streams; i++) s += k->read_sum(p + t * chunk + i * q + off, off + step < q ? step : q - off);
      part[t] = s;
    }
  });
  float s = 0.f;
  for (int64_t t = 0; t < tasks; t++) s += part[t];
  std::free(part);
  return s;
}

double bench_fma(int64_t iters) {
  const ss_bench_kernels* k = BK();
  const int64_t n = ss::pool_threads();
  volatile float sink = 0.f;
  ss::parallel_for(n, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) sink = sink + k->peak_fma(iters);
  });
  return 2.0 * 12 * k->width * (double)iters * (double)n;
}

Napi::Value BenchRead(const Napi::CallbackInfo& info) {
  const char* op = "benchRead";
  const Arr b = f32(info, 0, op, "data");
  const int64_t streams = info.Length() > 1 && !absent(info, 1) ? count(info, 1, op, "streams") : 1;
  if (streams > 1024) throw range_error(info, op, "streams must be at most 1024");
  return Napi::Number::New(info.Env(), bench_read((const float*)b.p, b.n, (int)streams));
}

Napi::Value BenchFma(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), bench_fma(count(info, 0, "benchFma", "itersPerThread")));
}

}  // namespace

void RegisterBench(Napi::Env env, Napi::Object exports) {
  exports.Set("benchRead", Napi::Function::New(env, BenchRead));
  exports.Set("benchFma", Napi::Function::New(env, BenchFma));
}

// N-API binding of the image ops (image.h):
//   groupNorm(x, w, b, out, B, N, C, G, eps)
// Every buffer is checked against the elements the call touches (src/tensor/cpu.ts has
// already checked shapes).
#include <napi.h>

#include <new>
#include <string>

#include "image.h"
#include "napi_args.h"

namespace {
using namespace ss_napi;

Napi::Value GroupNorm(const Napi::CallbackInfo& info) {
  const char* op = "groupNorm";
  const Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w"), b = f32(info, 2, op, "b"), o = f32(info, 3, op, "out");
  const int64_t B = count(info, 4, op, "B"), N = count(info, 5, op, "N"), C = count(info, 6, op, "C"), G = count(info, 7, op, "G");
  const double eps = number(info, 8, op, "eps");
  if (G < 1 || C % G) throw range_error(info, op, "groups must divide the channels");
  const int64_t n = mul(info, op, B, N, C);
  need(info, x, n, op, "x");
  need(info, o, n, op, "out");
  need(info, w, C, op, "w");
  need(info, b, C, op, "b");
  try {
    ss::group_norm((const float*)x.p, (const float*)w.p, (const float*)b.p, (float*)o.p, B, N, C, G, (float)eps);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), S(op, "out of memory"));
  }
  return info.Env().Undefined();
}

}  // namespace

void RegisterImage(Napi::Env env, Napi::Object exports) {
  exports.Set("groupNorm", Napi::Function::New(env, GroupNorm));
}

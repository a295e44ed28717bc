// N-API binding of ss::sgemm:
//   sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
// A, B and C are Float32Arrays (subarray views included: their byteOffset is honoured). Every
// buffer is checked against the elements the call touches, and C may not overlap A or B
// (the threads would read what others have already written).
#include <napi.h>

#include <new>
#include <string>

#include "napi_args.h"
#include "sgemm.h"

namespace {
using namespace ss_napi;

const char* const OP = "sgemm";

// Stored rows x cols of a matrix argument: checks ld against the row length and the buffer
// against the span. Returns the span (elements).
int64_t check(const Napi::CallbackInfo& info, const Arr& b, const char* name, const char* ldname, int64_t rows, int64_t cols, int64_t ld) {
  if (rows > 1 && ld < cols)
    throw range_error(info, OP, std::string(ldname) + " (" + std::to_string(ld) + ") is less than the " + std::to_string(cols) +
                                    " elements of a stored row of " + name);
  const int64_t need = span(info, OP, rows, ld, cols);
  if (b.n < need)
    throw range_error(info, OP, std::string(name) + " has " + std::to_string(b.n) + " elements, needs " + std::to_string(need) + " (" +
                                    std::to_string(rows) + " rows of " + std::to_string(cols) + ", " + ldname + " " + std::to_string(ld) + ")");
  return need;
}

bool overlap(const void* a, int64_t na, const void* b, int64_t nb) {
  if (na == 0 || nb == 0) return false;
  const uintptr_t a0 = (uintptr_t)a, a1 = a0 + (uintptr_t)na * 4, b0 = (uintptr_t)b, b1 = b0 + (uintptr_t)nb * 4;
  return a0 < b1 && b0 < a1;
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 13)
    throw type_error(info, OP, "expects 13 arguments (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), got " +
                                   std::to_string(info.Length()));
  const bool ta = boolean(info, 0, OP, "transA"), tb = boolean(info, 1, OP, "transB");
  const int64_t M = count(info, 2, OP, "M"), N = count(info, 3, OP, "N"), K = count(info, 4, OP, "K");
  const float alpha = (float)number(info, 5, OP, "alpha");
  const Arr A = f32(info, 6, OP, "A");
  const int64_t lda = count(info, 7, OP, "lda");
  const Arr B = f32(info, 8, OP, "B");
  const int64_t ldb = count(info, 9, OP, "ldb");
  const float beta = (float)number(info, 10, OP, "beta");
  const Arr C = f32(info, 11, OP, "C");
  const int64_t ldc = count(info, 12, OP, "ldc");
  // A is stored [M, K] or, transposed, [K, M]; B [K, N] or [N, K].
  const int64_t na = ta ? check(info, A, "A", "lda", K, M, lda) : check(info, A, "A", "lda", M, K, lda);
  const int64_t nb = tb ? check(info, B, "B", "ldb", N, K, ldb) : check(info, B, "B", "ldb", K, N, ldb);
  const int64_t nc = check(info, C, "C", "ldc", M, N, ldc);
  if (overlap(C.p, nc, A.p, na)) throw range_error(info, OP, "C overlaps A in memory");
  if (overlap(C.p, nc, B.p, nb)) throw range_error(info, OP, "C overlaps B in memory");
  try {
    ss::sgemm(ta, tb, M, N, K, alpha, (const float*)A.p, lda, (const float*)B.p, ldb, beta, (float*)C.p, ldc);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, S(OP, "out of memory for the packing buffers"));
  }
  return env.Undefined();
}

}  // namespace

void RegisterSgemm(Napi::Env env, Napi::Object exports) { exports.Set("sgemm", Napi::Function::New(env, Sgemm)); }

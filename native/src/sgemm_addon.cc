// N-API binding of ss::sgemm and ss::sgemm_half_b:
//   sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
//   sgemmHalf(transA, transB, M, N, K, alpha, A, lda, B, btype, ldb, beta, C, ldc)
// A and C are Float32Arrays (subarray views included: their byteOffset is honoured); B is a
// Float32Array, or for sgemmHalf any typed array holding f16 (btype 1) or bf16 (btype 2)
// elements, 2-byte aligned (a Uint16Array, or the bytes of a mapped tensor). Every
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
int64_t check(const Napi::CallbackInfo& info, const char* op, const Arr& b, const char* name, const char* ldname, int64_t rows, int64_t cols, int64_t ld) {
  if (rows > 1 && ld < cols)
    throw range_error(info, op, std::string(ldname) + " (" + std::to_string(ld) + ") is less than the " + std::to_string(cols) +
                                    " elements of a stored row of " + name);
  const int64_t need = span(info, op, rows, ld, cols);
  if (b.n < need)
    throw range_error(info, op, std::string(name) + " has " + std::to_string(b.n) + " elements, needs " + std::to_string(need) + " (" +
                                    std::to_string(rows) + " rows of " + std::to_string(cols) + ", " + ldname + " " + std::to_string(ld) + ")");
  return need;
}

// Whether byte ranges [a, a + na) and [b, b + nb) share memory.
bool overlap(const void* a, int64_t na, const void* b, int64_t nb) {
  if (na == 0 || nb == 0) return false;
  const uintptr_t a0 = (uintptr_t)a, a1 = a0 + (uintptr_t)na, b0 = (uintptr_t)b, b1 = b0 + (uintptr_t)nb;
  return a0 < b1 && b0 < a1;
}

// Both calls: B (argument 8) as f32 elements, or with `half` as f16 / bf16 ones (btype at 9).
Napi::Value Call(const Napi::CallbackInfo& info, bool half) {
  Napi::Env env = info.Env();
  const char* op = half ? "sgemmHalf" : OP;
  const size_t want = half ? 14 : 13, h = half ? 1 : 0;
  if (info.Length() != want)
    throw type_error(info, op, std::string("expects ") + std::to_string(want) + " arguments (transA, transB, M, N, K, alpha, A, lda, B, " +
                                   (half ? "btype, " : "") + "ldb, beta, C, ldc), got " + std::to_string(info.Length()));
  const bool ta = boolean(info, 0, op, "transA"), tb = boolean(info, 1, op, "transB");
  const int64_t M = count(info, 2, op, "M"), N = count(info, 3, op, "N"), K = count(info, 4, op, "K");
  const float alpha = (float)number(info, 5, op, "alpha");
  const Arr A = f32(info, 6, op, "A");
  const int64_t lda = count(info, 7, op, "lda");
  Arr B;
  int64_t btype = 0;
  if (half) {
    const Buf b = bytes(info, 8, op, "B");
    btype = count(info, 9, op, "btype");
    if (btype != 1 && btype != 2) throw range_error(info, op, "btype must be 1 (f16) or 2 (bf16), got " + std::to_string(btype));
    if ((uintptr_t)b.p % 2) throw range_error(info, op, "B must be 2-byte aligned (f16 / bf16 elements)");
    B = {b.p, (int64_t)(b.n / 2)};
  } else {
    B = f32(info, 8, op, "B");
  }
  const int64_t ldb = count(info, 9 + h, op, "ldb");
  const float beta = (float)number(info, 10 + h, op, "beta");
  const Arr C = f32(info, 11 + h, op, "C");
  const int64_t ldc = count(info, 12 + h, op, "ldc");
  // A is stored [M, K] or, transposed, [K, M]; B [K, N] or [N, K].
  const int64_t na = ta ? check(info, op, A, "A", "lda", K, M, lda) : check(info, op, A, "A", "lda", M, K, lda);
  const int64_t nb = tb ? check(info, op, B, "B", "ldb", N, K, ldb) : check(info, op, B, "B", "ldb", K, N, ldb);
  const int64_t nc = check(info, op, C, "C", "ldc", M, N, ldc);
  if (overlap(C.p, nc * 4, A.p, na * 4)) throw range_error(info, op, "C overlaps A in memory");
  if (overlap(C.p, nc * 4, B.p, nb * (half ? 2 : 4))) throw range_error(info, op, "C overlaps B in memory");
  try {
    if (half) ss::sgemm_half_b(ta, tb, M, N, K, alpha, (const float*)A.p, lda, (const uint16_t*)B.p, btype == 2, ldb, beta, (float*)C.p, ldc);
    else ss::sgemm(ta, tb, M, N, K, alpha, (const float*)A.p, lda, (const float*)B.p, ldb, beta, (float*)C.p, ldc);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, S(op, "out of memory for the packing buffers"));
  }
  return env.Undefined();
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) { return Call(info, false); }
Napi::Value SgemmHalf(const Napi::CallbackInfo& info) { return Call(info, true); }

}  // namespace

void RegisterSgemm(Napi::Env env, Napi::Object exports) { exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("sgemmHalf", Napi::Function::New(env, SgemmHalf));
}

// N-API binding of ss::sgemm:
//   sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
// A, B and C are Float32Arrays (subarray views included: their byteOffset is honoured). Every
// buffer is checked against the elements the call touches, and C may not overlap A or B
// (the threads would read what others have already written).
#include <napi.h>

#include <new>
#include <string>

#include "sgemm.h"

namespace {

const char* const OP = "sgemm";

std::string msg(const std::string& m) { return std::string(OP) + ": " + m; }

struct F32 {
  float* p;
  double n;  // elements
};

F32 f32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  napi_value v = info[i];
  bool is_ta = false;
  napi_is_typedarray(info.Env(), v, &is_ta);
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value ab;
  if (is_ta) napi_get_typedarray_info(info.Env(), v, &type, &length, &data, &ab, &offset);
  if (!is_ta || type != napi_float32_array) throw Napi::TypeError::New(info.Env(), msg(std::string(name) + " must be a Float32Array"));
  return {(float*)data, (double)length};
}

bool flag(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), msg(std::string(name) + " must be a boolean"));
  return info[i].As<Napi::Boolean>().Value();
}

int64_t count(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), msg(std::string(name) + " must be a number"));
  const double d = info[i].As<Napi::Number>().DoubleValue();
  // 2^40 bounds every product below (rows * ld < 2^80 as a double is still exact enough to
  // compare with a buffer length, which is below 2^53).
  if (!(d >= 0) || d != (double)(int64_t)d || d > 1099511627776.0)
    throw Napi::RangeError::New(info.Env(), msg(std::string(name) + " must be a non-negative integer, got " + info[i].ToString().Utf8Value()));
  return (int64_t)d;
}

float scalar(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), msg(std::string(name) + " must be a number"));
  return (float)info[i].As<Napi::Number>().DoubleValue();
}

// Elements reached by `rows` rows of `cols`, rows `ld` apart.
double span(int64_t rows, int64_t ld, int64_t cols) { return rows == 0 || cols == 0 ? 0.0 : (double)(rows - 1) * (double)ld + (double)cols; }

// Stored rows x cols of a matrix argument: checks ld against the row length and the buffer
// against the span. Returns the span.
double check(const Napi::CallbackInfo& info, const F32& b, const char* name, const char* ldname, int64_t rows, int64_t cols, int64_t ld) {
  if (rows > 1 && ld < cols)
    throw Napi::RangeError::New(info.Env(), msg(std::string(ldname) + " (" + std::to_string(ld) + ") is less than the " + std::to_string(cols) +
                                                " elements of a stored row of " + name));
  const double need = span(rows, ld, cols);
  if (b.n < need)
    throw Napi::RangeError::New(info.Env(), msg(std::string(name) + " has " + std::to_string((int64_t)b.n) + " elements, needs " +
                                                std::to_string((int64_t)need) + " (" + std::to_string(rows) + " rows of " +
                                                std::to_string(cols) + ", " + ldname + " " + std::to_string(ld) + ")"));
  return need;
}

bool overlap(const float* a, double na, const float* b, double nb) {
  if (na == 0 || nb == 0) return false;
  const uintptr_t a0 = (uintptr_t)a, a1 = a0 + (uintptr_t)na * 4, b0 = (uintptr_t)b, b1 = b0 + (uintptr_t)nb * 4;
  return a0 < b1 && b0 < a1;
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 13)
    throw Napi::TypeError::New(env, msg("expects 13 arguments (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), got " +
                                        std::to_string(info.Length())));
  const bool ta = flag(info, 0, "transA"), tb = flag(info, 1, "transB");
  const int64_t M = count(info, 2, "M"), N = count(info, 3, "N"), K = count(info, 4, "K");
  const float alpha = scalar(info, 5, "alpha");
  const F32 A = f32(info, 6, "A");
  const int64_t lda = count(info, 7, "lda");
  const F32 B = f32(info, 8, "B");
  const int64_t ldb = count(info, 9, "ldb");
  const float beta = scalar(info, 10, "beta");
  const F32 C = f32(info, 11, "C");
  const int64_t ldc = count(info, 12, "ldc");
  // A is stored [M, K] or, transposed, [K, M]; B [K, N] or [N, K].
  const double na = ta ? check(info, A, "A", "lda", K, M, lda) : check(info, A, "A", "lda", M, K, lda);
  const double nb = tb ? check(info, B, "B", "ldb", N, K, ldb) : check(info, B, "B", "ldb", K, N, ldb);
  const double nc = check(info, C, "C", "ldc", M, N, ldc);
  if (overlap(C.p, nc, A.p, na)) throw Napi::RangeError::New(env, msg("C overlaps A in memory"));
  if (overlap(C.p, nc, B.p, nb)) throw Napi::RangeError::New(env, msg("C overlaps B in memory"));
  try {
    ss::sgemm(ta, tb, M, N, K, alpha, A.p, lda, B.p, ldb, beta, C.p, ldc);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, msg("out of memory for the packing buffers"));
  }
  return env.Undefined();
}

}  // namespace

void RegisterSgemm(Napi::Env env, Napi::Object exports) { exports.Set("sgemm", Napi::Function::New(env, Sgemm)); }

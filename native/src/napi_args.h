// N-API argument checks shared by every addon file (addon.cc, train_addon.cc, sgemm_addon.cc,
// bench.cc): typed arrays, sizes and scalars read from JavaScript, and the arithmetic on sizes.
// Sizes are integers in [0, 2^53 - 1] (where doubles stop being exact), and every product or
// sum of them that bounds a buffer access is overflow-checked, so a check can never pass on a
// wrapped-around size. Errors are "op: message" TypeErrors (wrong kind of value) and
// RangeErrors (bad value, buffer too short).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace ss_napi {

inline std::string S(const char* op, const std::string& msg) { return std::string(op) + ": " + msg; }

inline Napi::TypeError type_error(const Napi::CallbackInfo& info, const char* op, const std::string& msg) {
  return Napi::TypeError::New(info.Env(), S(op, msg));
}
inline Napi::RangeError range_error(const Napi::CallbackInfo& info, const char* op, const std::string& msg) {
  return Napi::RangeError::New(info.Env(), S(op, msg));
}

// "argument i" unless the argument has a name
inline std::string label(size_t i, const char* name) { return name ? std::string(name) : "argument " + std::to_string(i); }

// ---- typed arrays ------------------------------------------------------------------------------

// Any typed array (subarray views included: their byteOffset is honoured), as bytes.
struct Buf {
  uint8_t* p;
  size_t n;  // bytes
};
inline Buf bytes_v(const Napi::CallbackInfo& info, napi_value v, const char* op, const char* name) {
  bool is_ta = false;
  napi_is_typedarray(info.Env(), v, &is_ta);
  if (!is_ta) throw type_error(info, op, std::string(name) + " must be a typed array");
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  napi_value ab;
  napi_get_typedarray_info(info.Env(), v, &type, &length, &data, &ab, &offset);
  size_t el = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: el = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
    default: el = 1;
  }
  return {(uint8_t*)data, length * el};
}
inline Buf bytes(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) { return bytes_v(info, info[i], op, name); }

// A typed array of one element type, as elements.
struct Arr {
  void* p;
  int64_t n;  // elements
};
inline Arr typed(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, napi_typedarray_type want, const char* wname) {
  napi_env env = info.Env();
  bool is_ta = false;
  napi_is_typedarray(env, info[i], &is_ta);
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value ab;
  if (is_ta) napi_get_typedarray_info(env, info[i], &type, &length, &data, &ab, &offset);
  if (!is_ta || type != want) throw type_error(info, op, std::string(name) + " must be a " + wname);
  return {data, (int64_t)length};
}
inline Arr f32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return typed(info, i, op, name, napi_float32_array, "Float32Array");
}
inline Arr i32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return typed(info, i, op, name, napi_int32_array, "Int32Array");
}
inline bool absent(const Napi::CallbackInfo& info, size_t i) { return info[i].IsNull() || info[i].IsUndefined(); }

// ---- numbers -----------------------------------------------------------------------------------

constexpr double kMaxSize = 9007199254740991.0;  // 2^53 - 1

// A size or index: an integer in [0, 2^53 - 1].
inline int64_t count_v(const Napi::CallbackInfo& info, Napi::Value v, const char* op, const std::string& what) {
  if (!v.IsNumber()) throw type_error(info, op, what + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > kMaxSize || d != (double)(int64_t)d)
    throw range_error(info, op, what + " must be a non-negative integer (at most 2^53 - 1), got " + v.ToString().Utf8Value());
  return (int64_t)d;
}
inline int64_t count(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name = nullptr) {
  return count_v(info, info[i], op, label(i, name));
}

// Any number (a scale, an epsilon, a soft-cap), as a double.
inline double number(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name = nullptr) {
  if (!info[i].IsNumber()) throw type_error(info, op, label(i, name) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// A boolean, strictly (not any truthy value).
inline bool boolean(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name = nullptr) {
  if (!info[i].IsBoolean()) throw type_error(info, op, label(i, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// ---- size arithmetic ---------------------------------------------------------------------------

// a * b (* c ...) of sizes, or a RangeError when it overflows
inline int64_t mul(const Napi::CallbackInfo& info, const char* op, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw range_error(info, op, "sizes too large");
  return r;
}
template <class... T>
inline int64_t mul(const Napi::CallbackInfo& info, const char* op, int64_t a, int64_t b, int64_t c, T... rest) {
  return mul(info, op, mul(info, op, a, b), c, rest...);
}
inline int64_t add(const Napi::CallbackInfo& info, const char* op, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw range_error(info, op, "sizes too large");
  return r;
}

// Elements reached by `rows` rows of `cols`, rows `ld` apart: (rows - 1) ld + cols (0 when empty).
inline int64_t span(const Napi::CallbackInfo& info, const char* op, int64_t rows, int64_t ld, int64_t cols) {
  return rows == 0 || cols == 0 ? 0 : add(info, op, mul(info, op, rows - 1, ld), cols);
}

// Elements reached by [T, H, D] with strides sT, sH (and 1): (T - 1) sT + (H - 1) sH + D.
inline int64_t span3(const Napi::CallbackInfo& info, const char* op, int64_t T, int64_t sT, int64_t H, int64_t sH, int64_t D) {
  if (T == 0 || H == 0 || D == 0) return 0;
  return add(info, op, add(info, op, mul(info, op, T - 1, sT), mul(info, op, H - 1, sH)), D);
}

// ---- buffer lengths ----------------------------------------------------------------------------

// "name has N elements, needs M"
inline void need(const Napi::CallbackInfo& info, const Arr& a, int64_t n, const char* op, const char* name) {
  if (a.n < n) throw range_error(info, op, std::string(name) + " has " + std::to_string(a.n) + " elements, needs " + std::to_string(n));
}
// "name buffer has N bytes, needs M"
inline void need(const Napi::CallbackInfo& info, const Buf& b, size_t n, const char* op, const char* name) {
  if (b.n < n) throw range_error(info, op, std::string(name) + " buffer has " + std::to_string(b.n) + " bytes, needs " + std::to_string(n));
}

}  // namespace ss_napi

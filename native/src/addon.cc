// N-API glue: turns JS typed arrays and numbers into the native core's calls. The TS layer
// (src/tensor/cpu.ts) has already checked shapes and dtypes; this layer re-checks every
// buffer against the bytes the kernel will touch, so no call can read or write past a
// buffer even when called directly.
#include <fcntl.h>
#include <napi.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "ops.h"
#include "pool.h"

// the training kernels' functions (train_addon.cc)
void RegisterTrain(Napi::Env env, Napi::Object exports);
void RegisterSgemm(Napi::Env env, Napi::Object exports);  // sgemm_addon.cc

namespace {

struct Buf {
  uint8_t* p;
  size_t n;
};

std::string S(const char* op, const std::string& msg) { return std::string(op) + ": " + msg; }

Buf bufv(const Napi::CallbackInfo& info, napi_value v, const char* op, const char* name) {
  bool is_ta = false;
  napi_is_typedarray(info.Env(), v, &is_ta);
  if (!is_ta) throw Napi::TypeError::New(info.Env(), S(op, std::string(name) + " must be a typed array"));
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

Buf buf(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) { return bufv(info, info[i], op, name); }

int64_t I(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), S(op, "argument " + std::to_string(i) + " must be a number"));
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (d != (double)(int64_t)d || d < 0) throw Napi::RangeError::New(info.Env(), S(op, "argument " + std::to_string(i) + " must be a non-negative integer"));
  return (int64_t)d;
}

double F(const Napi::CallbackInfo& info, size_t i, const char* op) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), S(op, "argument " + std::to_string(i) + " must be a number"));
  return info[i].As<Napi::Number>().DoubleValue();
}

void need(const Napi::CallbackInfo& info, const Buf& b, size_t bytes, const char* op, const char* name) {
  if (b.n < bytes)
    throw Napi::RangeError::New(info.Env(), S(op, std::string(name) + " buffer has " + std::to_string(b.n) + " bytes, needs " + std::to_string(bytes)));
}

// bytes reached by `rows` rows of `cols` f32 elements, rows `ld` apart
size_t span(int64_t rows, int64_t ld, int64_t cols, int dtype = SS_F32) {
  if (rows == 0 || cols == 0) return 0;
  return ss::dtype_bytes(dtype, (rows - 1) * ld) + ss::dtype_bytes(dtype, cols);
}

// matmul(x, ldx, w, wtype, out, ldo, M, N, K)
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* op = "matmul";
  Buf x = buf(info, 0, op, "x");
  int64_t ldx = I(info, 1, op);
  Buf w = buf(info, 2, op, "w");
  int wt = (int)I(info, 3, op);
  Buf o = buf(info, 4, op, "out");
  int64_t ldo = I(info, 5, op), M = I(info, 6, op), N = I(info, 7, op), K = I(info, 8, op);
  if (wt > SS_Q8_0) throw Napi::RangeError::New(info.Env(), S(op, "unknown weight dtype code"));
  if (wt == SS_Q8_0 && K % 32) throw Napi::RangeError::New(info.Env(), S(op, "q8_0 K must be a multiple of 32"));
  need(info, x, span(M, ldx, K), op, "x");
  need(info, w, ss::dtype_bytes(wt, N * K), op, "w");
  need(info, o, span(M, ldo, N), op, "out");
  ss_matmul_args a{(const float*)x.p, ldx, w.p, wt, (int64_t)ss::dtype_bytes(wt, K), (float*)o.p, ldo, M, N, K};
  ss::matmul(a);
  return info.Env().Undefined();
}

// matmulMulti(x, ldx, [w...], wtype, [out...], [ldo...], M, [N...], K)
Napi::Value MatmulMulti(const Napi::CallbackInfo& info) {
  const char* op = "matmulMulti";
  Napi::Env env = info.Env();
  Buf x = buf(info, 0, op, "x");
  int64_t ldx = I(info, 1, op);
  if (!info[2].IsArray() || !info[4].IsArray() || !info[5].IsArray() || !info[7].IsArray())
    throw Napi::TypeError::New(env, S(op, "weights, outputs, ldo and N must be arrays"));
  Napi::Array ws = info[2].As<Napi::Array>(), os = info[4].As<Napi::Array>(), ldos = info[5].As<Napi::Array>(), Ns = info[7].As<Napi::Array>();
  const uint32_t n = ws.Length();
  if (n < 1 || n > 8 || os.Length() != n || ldos.Length() != n || Ns.Length() != n)
    throw Napi::RangeError::New(env, S(op, "1 to 8 weights, with as many outputs, ldo and N"));
  int wt = (int)I(info, 3, op);
  int64_t M = I(info, 6, op), K = I(info, 8, op);
  if (wt > SS_Q8_0) throw Napi::RangeError::New(env, S(op, "unknown weight dtype code"));
  if (wt == SS_Q8_0 && K % 32) throw Napi::RangeError::New(env, S(op, "q8_0 K must be a multiple of 32"));
  need(info, x, span(M, ldx, K), op, "x");
  ss_matmul_args a[8];
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value wv = ws[i], ov = os[i], lv = ldos[i], nv = Ns[i];
    if (!lv.IsNumber() || !nv.IsNumber()) throw Napi::TypeError::New(env, S(op, "ldo and N must be numbers"));
    Buf w = bufv(info, wv, op, "w");
    Buf o = bufv(info, ov, op, "out");
    const int64_t ldo = lv.As<Napi::Number>().Int64Value(), N = nv.As<Napi::Number>().Int64Value();
    if (N < 0 || ldo < 0) throw Napi::RangeError::New(env, S(op, "negative N or ldo"));
    need(info, w, ss::dtype_bytes(wt, N * K), op, "w");
    need(info, o, span(M, ldo, N), op, "out");
    a[i] = ss_matmul_args{(const float*)x.p, ldx, w.p, wt, (int64_t)ss::dtype_bytes(wt, K), (float*)o.p, ldo, M, N, K, nullptr, nullptr};
  }
  ss::matmul_multi(a, (int)n);
  return env.Undefined();
}

// binary(op, a, lda, b, ldb, bcast, out, ldo, rows, cols)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const char* op = "binary";
  int kind = (int)I(info, 0, op);
  Buf a = buf(info, 1, op, "a");
  int64_t lda = I(info, 2, op);
  Buf b = buf(info, 3, op, "b");
  int64_t ldb = I(info, 4, op);
  int bc = (int)I(info, 5, op);
  Buf o = buf(info, 6, op, "out");
  int64_t ldo = I(info, 7, op), rows = I(info, 8, op), cols = I(info, 9, op);
  need(info, a, span(rows, lda, cols), op, "a");
  need(info, b, bc ? span(1, ldb, cols) : span(rows, ldb, cols), op, "b");
  need(info, o, span(rows, ldo, cols), op, "out");
  ss::binary(kind, (const float*)a.p, lda, (const float*)b.p, ldb, bc, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// scale(a, lda, s, out, ldo, rows, cols)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale";
  Buf a = buf(info, 0, op, "a");
  int64_t lda = I(info, 1, op);
  float s = (float)F(info, 2, op);
  Buf o = buf(info, 3, op, "out");
  int64_t ldo = I(info, 4, op), rows = I(info, 5, op), cols = I(info, 6, op);
  need(info, a, span(rows, lda, cols), op, "a");
  need(info, o, span(rows, ldo, cols), op, "out");
  ss::scale((const float*)a.p, lda, s, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// norm(x, ldx, w, b|null, eps, out, ldo, rows, cols, isLayerNorm)
Napi::Value Norm(const Napi::CallbackInfo& info) {
  const char* op = "norm";
  Buf x = buf(info, 0, op, "x");
  int64_t ldx = I(info, 1, op);
  Buf w = buf(info, 2, op, "w");
  bool hasB = !info[3].IsNull() && !info[3].IsUndefined();
  Buf b = hasB ? buf(info, 3, op, "b") : Buf{nullptr, 0};
  float eps = (float)F(info, 4, op);
  Buf o = buf(info, 5, op, "out");
  int64_t ldo = I(info, 6, op), rows = I(info, 7, op), cols = I(info, 8, op);
  bool ln = info[9].ToBoolean();
  need(info, x, span(rows, ldx, cols), op, "x");
  need(info, w, (size_t)cols * 4, op, "w");
  if (hasB) need(info, b, (size_t)cols * 4, op, "b");
  need(info, o, span(rows, ldo, cols), op, "out");
  if (ln) ss::layernorm((const float*)x.p, ldx, (const float*)w.p, (const float*)b.p, eps, (float*)o.p, ldo, rows, cols);
  else ss::rmsnorm((const float*)x.p, ldx, (const float*)w.p, eps, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// unary(op, x, ldx, out, ldo, rows, cols)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const char* op = "unary";
  int kind = (int)I(info, 0, op);
  Buf x = buf(info, 1, op, "x");
  int64_t ldx = I(info, 2, op);
  Buf o = buf(info, 3, op, "out");
  int64_t ldo = I(info, 4, op), rows = I(info, 5, op), cols = I(info, 6, op);
  need(info, x, span(rows, ldx, cols), op, "x");
  need(info, o, span(rows, ldo, cols), op, "out");
  ss::unary(kind, (const float*)x.p, ldx, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// gated(op, g, ldg, u, ldu, out, ldo, rows, cols)
Napi::Value Gated(const Napi::CallbackInfo& info) {
  const char* op = "gated";
  int kind = (int)I(info, 0, op);
  Buf g = buf(info, 1, op, "gate");
  int64_t ldg = I(info, 2, op);
  Buf u = buf(info, 3, op, "up");
  int64_t ldu = I(info, 4, op);
  Buf o = buf(info, 5, op, "out");
  int64_t ldo = I(info, 6, op), rows = I(info, 7, op), cols = I(info, 8, op);
  need(info, g, span(rows, ldg, cols), op, "gate");
  need(info, u, span(rows, ldu, cols), op, "up");
  need(info, o, span(rows, ldo, cols), op, "out");
  ss::gated(kind, (const float*)g.p, ldg, (const float*)u.p, ldu, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// rope(x, T, H, D, sT, sH, positions, rotaryDim, halfLayout, theta, scaling, factor, low, high, origMax)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  const char* op = "rope";
  Buf x = buf(info, 0, op, "x");
  ss::rope_args a{};
  a.x = (float*)x.p;
  a.T = I(info, 1, op); a.H = I(info, 2, op); a.D = I(info, 3, op); a.sT = I(info, 4, op); a.sH = I(info, 5, op);
  Buf pos = buf(info, 6, op, "positions");
  a.positions = (const int32_t*)pos.p;
  a.rotary_dim = I(info, 7, op);
  a.half_layout = (int)I(info, 8, op);
  a.theta = F(info, 9, op);
  a.scaling = (int)I(info, 10, op);
  a.factor = F(info, 11, op); a.low_freq_factor = F(info, 12, op); a.high_freq_factor = F(info, 13, op); a.original_max_position = F(info, 14, op);
  if (a.rotary_dim > a.D || a.rotary_dim % 2) throw Napi::RangeError::New(info.Env(), S(op, "bad rotary dim"));
  need(info, pos, (size_t)a.T * 4, op, "positions");
  if (a.T && a.H) need(info, x, (size_t)((a.T - 1) * a.sT + (a.H - 1) * a.sH + a.D) * 4, op, "x");
  for (int64_t t = 0; t < a.T; t++)
    if (a.positions[t] < 0) throw Napi::RangeError::New(info.Env(), S(op, "negative position"));
  ss::rope(a);
  return info.Env().Undefined();
}

// embedding(table, ttype, V, D, ids, out, ldo)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const char* op = "embedding";
  Buf t = buf(info, 0, op, "table");
  int tt = (int)I(info, 1, op);
  int64_t V = I(info, 2, op), D = I(info, 3, op);
  Buf ids = buf(info, 4, op, "ids");
  Buf o = buf(info, 5, op, "out");
  int64_t ldo = I(info, 6, op);
  int64_t T = (int64_t)(ids.n / 4);
  need(info, t, ss::dtype_bytes(tt, V * D), op, "table");
  need(info, o, span(T, ldo, D), op, "out");
  const int32_t* id = (const int32_t*)ids.p;
  for (int64_t i = 0; i < T; i++)
    if (id[i] < 0 || id[i] >= V)
      throw Napi::RangeError::New(info.Env(), S(op, "token id " + std::to_string(id[i]) + " at index " + std::to_string(i) + " is out of range [0, " + std::to_string(V) + ")"));
  ss::embedding(t.p, tt, D, id, T, (float*)o.p, ldo);
  return info.Env().Undefined();
}

// kvWrite(k, T, H, D, sT, sH, cache, ctype, nBlocks, bs, slots, keyMajor)
Napi::Value KvWrite(const Napi::CallbackInfo& info) {
  const char* op = "kvWrite";
  Buf k = buf(info, 0, op, "k");
  int64_t T = I(info, 1, op), H = I(info, 2, op), D = I(info, 3, op), sT = I(info, 4, op), sH = I(info, 5, op);
  Buf c = buf(info, 6, op, "cache");
  int ct = (int)I(info, 7, op);
  int64_t nb = I(info, 8, op), bs = I(info, 9, op);
  Buf sl = buf(info, 10, op, "slots");
  need(info, sl, (size_t)T * 4, op, "slots");
  if (T && H) need(info, k, (size_t)((T - 1) * sT + (H - 1) * sH + D) * 4, op, "k");
  need(info, c, ss::dtype_bytes(ct, nb * H * bs * D), op, "cache");
  const int32_t* s = (const int32_t*)sl.p;
  for (int64_t i = 0; i < T; i++)
    if (s[i] < 0 || s[i] >= nb * bs) throw Napi::RangeError::New(info.Env(), S(op, "slot " + std::to_string(s[i]) + " out of range"));
  const bool keyMajor = info.Length() > 11 && info[11].ToBoolean().Value();
  ss::kv_write((const float*)k.p, T, H, D, sT, sH, c.p, ct, bs, s, keyMajor);
  return info.Env().Undefined();
}

// attention(q, qsT, qsH, Hq, kc, vc, ctype, nBlocks, Hkv, bs, D, out, osT, osH, tables, tableStride, positions, scale, softcap, window)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  const char* op = "attention";
  ss_attn_args a{};
  Buf q = buf(info, 0, op, "q");
  a.q = (const float*)q.p; a.qsT = I(info, 1, op); a.qsH = I(info, 2, op); a.Hq = I(info, 3, op);
  Buf kc = buf(info, 4, op, "kCache");
  Buf vc = buf(info, 5, op, "vCache");
  a.kc = kc.p; a.vc = vc.p;
  a.ctype = (int)I(info, 6, op);
  int64_t nb = I(info, 7, op);
  a.Hkv = I(info, 8, op); a.bs = I(info, 9, op); a.D = I(info, 10, op);
  Buf o = buf(info, 11, op, "out");
  a.out = (float*)o.p; a.osT = I(info, 12, op); a.osH = I(info, 13, op);
  Buf tb = buf(info, 14, op, "tables");
  a.tables = (const int32_t*)tb.p; a.tableStride = I(info, 15, op);
  Buf ps = buf(info, 16, op, "positions");
  a.positions = (const int32_t*)ps.p;
  a.scale = (float)F(info, 17, op); a.softcap = (float)F(info, 18, op); a.window = I(info, 19, op);
  int64_t T = (int64_t)(ps.n / 4);
  if (a.Hkv == 0 || a.Hq % a.Hkv || a.bs == 0) throw Napi::RangeError::New(info.Env(), S(op, "bad head counts or block size"));
  size_t pool = ss::dtype_bytes(a.ctype, nb * a.Hkv * a.bs * a.D);
  need(info, kc, pool, op, "kCache");
  need(info, vc, pool, op, "vCache");
  if (T) {
    need(info, q, (size_t)((T - 1) * a.qsT + (a.Hq - 1) * a.qsH + a.D) * 4, op, "q");
    need(info, o, (size_t)((T - 1) * a.osT + (a.Hq - 1) * a.osH + a.D) * 4, op, "out");
  }
  const int64_t nt = (int64_t)(tb.n / 4);
  for (int64_t t = 0; t < T; t++) {
    const int64_t p = a.positions[t];
    const int64_t last = t * a.tableStride + p / a.bs;
    if (p < 0 || last >= nt) throw Napi::RangeError::New(info.Env(), S(op, "block table too short for position " + std::to_string(p)));
    for (int64_t i = t * a.tableStride; i <= last; i++)
      if (a.tables[i] < 0 || a.tables[i] >= nb) throw Napi::RangeError::New(info.Env(), S(op, "block " + std::to_string(a.tables[i]) + " out of range"));
  }
  ss::attention(a, T);
  return info.Env().Undefined();
}

// argmax(x, ldx, rows, cols, out Int32Array)
Napi::Value Argmax(const Napi::CallbackInfo& info) {
  const char* op = "argmax";
  Buf x = buf(info, 0, op, "x");
  int64_t ldx = I(info, 1, op), rows = I(info, 2, op), cols = I(info, 3, op);
  Buf o = buf(info, 4, op, "out");
  need(info, x, span(rows, ldx, cols), op, "x");
  need(info, o, (size_t)rows * 4, op, "out");
  if (cols == 0) throw Napi::RangeError::New(info.Env(), S(op, "empty rows"));
  ss::argmax((const float*)x.p, ldx, rows, cols, (int32_t*)o.p);
  return info.Env().Undefined();
}

// convert(src, stype, dst, dtype, n)
Napi::Value Convert(const Napi::CallbackInfo& info) {
  const char* op = "convert";
  Buf s = buf(info, 0, op, "src");
  int st = (int)I(info, 1, op);
  Buf d = buf(info, 2, op, "dst");
  int dt = (int)I(info, 3, op);
  int64_t n = I(info, 4, op);
  if (st > SS_Q8_0 || dt > SS_Q8_0) throw Napi::RangeError::New(info.Env(), S(op, "unknown dtype code"));
  if ((st == SS_Q8_0 || dt == SS_Q8_0) && n % 32) throw Napi::RangeError::New(info.Env(), S(op, "q8_0 element count must be a multiple of 32"));
  need(info, s, ss::dtype_bytes(st, n), op, "src");
  need(info, d, ss::dtype_bytes(dt, n), op, "dst");
  ss::convert(s.p, st, d.p, dt, n);
  return info.Env().Undefined();
}

// mmapFile(path) -> ArrayBuffer over a private, copy-on-write mapping of the file (opened
// read-only: the file itself is never written). Unmapped when the ArrayBuffer is collected.
// Mappings made by mmapFile, so dropPages only ever touches pages of a file mapping.
std::mutex g_maps_mu;
std::map<uintptr_t, size_t> g_maps;  // base -> length

Napi::Value MmapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "mmapFile: path must be a string");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Napi::Error::New(env, "mmapFile: cannot open '" + path + "': " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    throw Napi::Error::New(env, "mmapFile: cannot stat '" + path + "': " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    throw Napi::Error::New(env, "mmapFile: '" + path + "' is not a regular file");
  }
  // Optional window [offset, offset + length) so files larger than one ArrayBuffer (4 GiB on
  // Node 20) can be mapped piece by piece; mmap wants a page-aligned offset, so the mapping
  // starts at the page below and the buffer points inside it.
  const size_t fsize = (size_t)st.st_size;
  const size_t off = info.Length() > 1 && !info[1].IsUndefined() ? (size_t)I(info, 1, "mmapFile") : 0;
  if (off > fsize) {
    close(fd);
    throw Napi::RangeError::New(env, "mmapFile: offset past the end of '" + path + "'");
  }
  const size_t size = info.Length() > 2 && !info[2].IsUndefined() ? (size_t)I(info, 2, "mmapFile") : fsize - off;
  if (size > fsize - off) {
    close(fd);
    throw Napi::RangeError::New(env, "mmapFile: window past the end of '" + path + "'");
  }
  if (size > ((size_t)1 << 32)) {
    close(fd);
    throw Napi::RangeError::New(env, "mmapFile: '" + path + "': a window of " + std::to_string(size) +
                                         " bytes is larger than the 4 GiB an ArrayBuffer can hold here; map it in parts");
  }
  if (size == 0) {
    close(fd);
    return Napi::ArrayBuffer::New(env, 0);
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t base = off / page * page, lead = off - base;
  void* p = mmap(nullptr, size + lead, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)base);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) throw Napi::Error::New(env, "mmapFile: cannot map '" + path + "': " + std::strerror(e));
  struct Mapping { void* base; size_t len; };
  {
    std::lock_guard<std::mutex> lk(g_maps_mu);
    g_maps[(uintptr_t)p] = size + lead;
  }
  return Napi::ArrayBuffer::New(
      env, (uint8_t*)p + lead, size,
      [](Napi::Env, void*, Mapping* m) {
        {
          std::lock_guard<std::mutex> lk(g_maps_mu);
          g_maps.erase((uintptr_t)m->base);
        }
        munmap(m->base, m->len);
        delete m;
      },
      new Mapping{p, size + lead});
}

// allocResident(bytes, hugePages, populate) -> ArrayBuffer over zero-filled anonymous memory,
// unmapped when the buffer is collected. hugePages: 2 MiB aligned, transparent huge pages
// requested (THP in "madvise" mode uses them only where asked; under 2 MiB, plain pages).
// populate: the pages are faulted in now (MADV_POPULATE_WRITE, or a write to every page where
// the kernel lacks it), or in the background, not on first use: a fresh 4 KiB page costs ~13 us
// on its first write on this VM, and the KV pools' first tokens paid that inside the prefill.
// The loader's --no-mmap mode copies weights into it; the KV pools live in it (src/models/kv.ts).
struct AnonMap {
  void* base;
  size_t len;
  AnonMap(void* b, size_t l) : base(b), len(l) {}
  AnonMap(const AnonMap&) = delete;
  AnonMap& operator=(const AnonMap&) = delete;
  ~AnonMap() { munmap(base, len); }
};
struct Anon {
  std::shared_ptr<AnonMap> map;  // shared with a background populate, which may outlive the buffer
  size_t n;
};

Napi::Value AllocResident(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const size_t n = (size_t)I(info, 0, "allocResident");
  const bool huge = info.Length() > 1 && info[1].ToBoolean().Value() && n >= ((size_t)2 << 20);
  // populate: false, true (now), or "background" (a low-priority thread faults the pages in
  // while the caller goes on; a page the caller touches first is simply faulted in by it)
  const bool background = info.Length() > 2 && info[2].IsString() && info[2].As<Napi::String>().Utf8Value() == "background";
  const bool populate = background || (info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value());
  if (n == 0) return Napi::ArrayBuffer::New(env, 0);
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t align = huge ? (size_t)2 << 20 : page, size = (n + align - 1) / align * align, len = huge ? size + align : size;
  void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw Napi::Error::New(env, "allocResident: out of memory (" + std::to_string(n) + " bytes)");
  const auto map = std::make_shared<AnonMap>(m, len);
  char* p = (char*)(((uintptr_t)m + align - 1) / align * align);
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, size, MADV_HUGEPAGE);
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  if (background) {
    std::thread([map, p, size] {
      setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
      // 8 MiB at a time: a populate holds the address-space lock, and a whole pool at once
      // (2 GB, seconds here) stalled the process's own mmap calls (the JS heap's) by 0.6 s
      const size_t chunk = (size_t)8 << 20;
      for (size_t off = 0; off < size; off += chunk)  // unsupported (Linux < 5.14) or out of memory: pages fault in on use
        if (madvise(p + off, size - off < chunk ? size - off : chunk, MADV_POPULATE_WRITE) != 0) break;
    }).detach();
  } else if (populate && madvise(p, size, MADV_POPULATE_WRITE) != 0) {
    if (errno == ENOMEM || errno == EFAULT) throw Napi::Error::New(env, "allocResident: out of memory committing " + std::to_string(n) + " bytes (" + std::strerror(errno) + ")");
    for (size_t i = 0; i < size; i += page) ((volatile char*)p)[i] = 0;  // EINVAL: Linux < 5.14
  }
  // tell the garbage collector what a buffer holds, so unreferenced pools are collected soon
  Napi::MemoryManagement::AdjustExternalMemory(env, (int64_t)n);
  return Napi::ArrayBuffer::New(
      env, p, n,
      [](Napi::Env fenv, void*, Anon* a) {
        Napi::MemoryManagement::AdjustExternalMemory(fenv, -(int64_t)a->n);
        delete a;
      },
      new Anon{map, n});
}

// dropPages(view): gives back the whole pages of a file mapping's range (MADV_DONTNEED: they
// leave this process's resident set; reading them again would fault them back from the file).
// A view that is not inside an mmapFile mapping is left alone. Returns the bytes dropped.
Napi::Value DropPages(const Napi::CallbackInfo& info) {
  Buf b = buf(info, 0, "dropPages", "data");
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t lo = ((uintptr_t)b.p + page - 1) / page * page, hi = ((uintptr_t)b.p + b.n) / page * page;
  if (hi <= lo) return Napi::Number::New(info.Env(), 0);
  {
    std::lock_guard<std::mutex> lk(g_maps_mu);
    auto it = g_maps.upper_bound(lo);
    if (it == g_maps.begin()) return Napi::Number::New(info.Env(), 0);
    --it;
    if (hi > it->first + it->second) return Napi::Number::New(info.Env(), 0);
  }
  madvise((void*)lo, hi - lo, MADV_DONTNEED);
  return Napi::Number::New(info.Env(), (double)(hi - lo));
}

// addressMod(view, m) -> the address of the view's first byte modulo m (for aligned allocation)
Napi::Value AddressMod(const Napi::CallbackInfo& info) {
  Buf b = buf(info, 0, "addressMod", "data");
  const int64_t m = I(info, 1, "addressMod");
  if (m <= 0) throw Napi::RangeError::New(info.Env(), "addressMod: modulus must be > 0");
  return Napi::Number::New(info.Env(), (double)((uintptr_t)b.p % (uintptr_t)m));
}

// benchRead(Float32Array) -> checksum; benchFma(itersPerThread) -> flops performed
Napi::Value BenchRead(const Napi::CallbackInfo& info) {
  Buf b = buf(info, 0, "benchRead", "data");
  int streams = info.Length() > 1 ? (int)I(info, 1, "benchRead") : 1;
  return Napi::Number::New(info.Env(), ss::bench_read((const float*)b.p, (int64_t)(b.n / 4), streams));
}
Napi::Value BenchFma(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ss::bench_fma(I(info, 0, "benchFma")));
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", ss::isa());
  o.Set("threads", ss::pool_threads());
  Napi::Array av = Napi::Array::New(env);
  uint32_t i = 0;
  for (const char* n : {"avx512", "avx2", "portable"})
    if (ss::isa_supported(n)) av.Set(i++, n);
  o.Set("available", av);
  return o;
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "setIsa: name must be a string");
  std::string n = info[0].As<Napi::String>().Utf8Value();
  if (!ss::set_isa(n.c_str())) throw Napi::Error::New(info.Env(), "setIsa: '" + n + "' is not supported on this CPU (have: avx512, avx2, portable as available)");
  return Napi::String::New(info.Env(), ss::isa());
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int64_t n = I(info, 0, "setThreads");
  if (n < 1 || n > 1024) throw Napi::RangeError::New(info.Env(), "setThreads: thread count must be in [1, 1024]");
  ss::pool_set_threads((int)n);
  return Napi::Number::New(info.Env(), ss::pool_threads());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("scale", Napi::Function::New(env, Scale));
  exports.Set("norm", Napi::Function::New(env, Norm));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("gated", Napi::Function::New(env, Gated));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("kvWrite", Napi::Function::New(env, KvWrite));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("argmax", Napi::Function::New(env, Argmax));
  exports.Set("convert", Napi::Function::New(env, Convert));
  exports.Set("matmulMulti", Napi::Function::New(env, MatmulMulti));
  exports.Set("allocResident", Napi::Function::New(env, AllocResident));
  exports.Set("dropPages", Napi::Function::New(env, DropPages));
  exports.Set("mmapFile", Napi::Function::New(env, MmapFile));
  exports.Set("benchRead", Napi::Function::New(env, BenchRead));
  exports.Set("addressMod", Napi::Function::New(env, AddressMod));
  exports.Set("benchFma", Napi::Function::New(env, BenchFma));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  RegisterTrain(env, exports);
  RegisterSgemm(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(slipstream, Init)

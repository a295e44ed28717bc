// N-API glue: turns JS typed arrays and numbers into the native core's calls. The TS layer
// (src/tensor/cpu.ts) has already checked shapes and dtypes; this layer re-checks every
// buffer against the bytes the kernel will touch, so no call can read or write past a
// buffer even when called directly.
#include <dlfcn.h>
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

#include "kv_q8.h"
#include "napi_args.h"
#include "kquants.h"
#include "legacyq.h"
#include "ops.h"
#include "pool.h"

// the training kernels' functions (train_addon.cc)
void RegisterTrain(Napi::Env env, Napi::Object exports);
void RegisterSgemm(Napi::Env env, Napi::Object exports);  // sgemm_addon.cc
void RegisterBench(Napi::Env env, Napi::Object exports);  // bench.cc
void RegisterImage(Napi::Env env, Napi::Object exports);  // image_addon.cc

namespace {

using namespace ss_napi;

// bytes reached by `rows` rows of `cols` f32 elements, rows `ld` apart
size_t f32_span(const Napi::CallbackInfo& info, const char* op, int64_t rows, int64_t ld, int64_t cols) {
  return 4 * (size_t)span(info, op, rows, ld, cols);
}

// the optional prepacked form of a q4_k weight (ss::kq_prepack): null / undefined for none
static const uint8_t* prepacked_arg(const Napi::CallbackInfo& info, napi_value v, const char* op, int wt, int64_t N, int64_t K) {
  napi_valuetype t;
  napi_typeof(info.Env(), v, &t);
  if (t == napi_undefined || t == napi_null) return nullptr;
  if (wt != SS_Q4_K) throw type_error(info, op, "prepacked weights are q4_k only");
  Buf p = bytes_v(info, v, op, "prepacked");
  need(info, p, (size_t)ss::kq_prepacked_bytes(wt, N, K), op, "prepacked");
  if ((uintptr_t)p.p % 32) throw range_error(info, op, "prepacked weights must be 32-byte aligned");
  return p.p;
}

// matmul(x, ldx, w, wtype, out, ldo, M, N, K[, prepacked])
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const char* op = "matmul";
  Buf x = bytes(info, 0, op, "x");
  int64_t ldx = count(info, 1, op);
  Buf w = bytes(info, 2, op, "w");
  int wt = (int)count(info, 3, op);
  Buf o = bytes(info, 4, op, "out");
  int64_t ldo = count(info, 5, op), M = count(info, 6, op), N = count(info, 7, op), K = count(info, 8, op);
  if (wt < 0 || wt > SS_IQ4_XS) throw range_error(info, op, "unknown weight dtype code");
  if ((wt == SS_Q8_0 || ss::is_legacyq(wt)) && K % 32) throw range_error(info, op, "q8_0 / q4_0 / q4_1 / q5_0 / q5_1 / iq4_nl K must be a multiple of 32");
  if (ss::is_kquant(wt) && K % 256) throw range_error(info, op, "q2_k / q3_k / q4_k / q5_k / q6_k / iq4_xs K must be a multiple of 256");
  need(info, x, f32_span(info, op, M, ldx, K), op, "x");
  need(info, w, ss::dtype_bytes(wt, mul(info, op, N, K)), op, "w");
  need(info, o, f32_span(info, op, M, ldo, N), op, "out");
  ss_matmul_args a{(const float*)x.p, ldx, w.p, wt, (int64_t)ss::dtype_bytes(wt, K), (float*)o.p, ldo, M, N, K, nullptr, nullptr, nullptr, nullptr, nullptr};
  if (info.Length() > 9) a.wp = prepacked_arg(info, info[9], op, wt, N, K);
  ss::matmul(a);
  return info.Env().Undefined();
}

// matmulMulti(x, ldx, [w...], wtype, [out...], [ldo...], M, [N...], K[, [prepacked | null...]])
Napi::Value MatmulMulti(const Napi::CallbackInfo& info) {
  const char* op = "matmulMulti";
  Napi::Env env = info.Env();
  Buf x = bytes(info, 0, op, "x");
  int64_t ldx = count(info, 1, op);
  if (!info[2].IsArray() || !info[4].IsArray() || !info[5].IsArray() || !info[7].IsArray())
    throw type_error(info, op, "weights, outputs, ldo and N must be arrays");
  Napi::Array ws = info[2].As<Napi::Array>(), os = info[4].As<Napi::Array>(), ldos = info[5].As<Napi::Array>(), Ns = info[7].As<Napi::Array>();
  const uint32_t n = ws.Length();
  if (n < 1 || n > 8 || os.Length() != n || ldos.Length() != n || Ns.Length() != n)
    throw range_error(info, op, "1 to 8 weights, with as many outputs, ldo and N");
  int wt = (int)count(info, 3, op);
  int64_t M = count(info, 6, op), K = count(info, 8, op);
  if (wt < 0 || wt > SS_IQ4_XS) throw range_error(info, op, "unknown weight dtype code");
  if ((wt == SS_Q8_0 || ss::is_legacyq(wt)) && K % 32) throw range_error(info, op, "q8_0 / q4_0 / q4_1 / q5_0 / q5_1 / iq4_nl K must be a multiple of 32");
  if (ss::is_kquant(wt) && K % 256) throw range_error(info, op, "q2_k / q3_k / q4_k / q5_k / q6_k / iq4_xs K must be a multiple of 256");
  need(info, x, f32_span(info, op, M, ldx, K), op, "x");
  ss_matmul_args a[8];
  for (uint32_t i = 0; i < n; i++) {
    Napi::Value wv = ws[i], ov = os[i], lv = ldos[i], nv = Ns[i];
    Buf w = bytes_v(info, wv, op, "w");
    Buf o = bytes_v(info, ov, op, "out");
    const int64_t ldo = count_v(info, lv, op, "ldo"), N = count_v(info, nv, op, "N");
    need(info, w, ss::dtype_bytes(wt, mul(info, op, N, K)), op, "w");
    need(info, o, f32_span(info, op, M, ldo, N), op, "out");
    a[i] = ss_matmul_args{(const float*)x.p, ldx, w.p, wt, (int64_t)ss::dtype_bytes(wt, K), (float*)o.p, ldo, M, N, K, nullptr, nullptr, nullptr, nullptr, nullptr};
    if (info.Length() > 9 && info[9].IsArray()) {
      Napi::Array ps = info[9].As<Napi::Array>();
      if (ps.Length() != n) throw range_error(info, op, "as many prepacked entries as weights");
      Napi::Value pv = ps[i];
      a[i].wp = prepacked_arg(info, pv, op, wt, N, K);
    }
  }
  ss::matmul_multi(a, (int)n);
  return env.Undefined();
}

// kqPrepack(w, wtype, N, K, dst): the first N / 8 * 8 rows of the N x K matrix w (q4_k: the one
// type with a prepacked layout), prepacked into dst (kqPrepackedBytes(wtype, N, K) bytes, 32-byte
// aligned) for the AVX2 tiles
Napi::Value KqPrepack(const Napi::CallbackInfo& info) {
  const char* op = "kqPrepack";
  Buf w = bytes(info, 0, op, "w");
  const int wt = (int)count(info, 1, op);
  const int64_t N = count(info, 2, op), K = count(info, 3, op);
  Buf d = bytes(info, 4, op, "dst");
  if (wt != SS_Q4_K) throw type_error(info, op, "only q4_k matrices are prepacked");
  if (K % 256) throw range_error(info, op, "q4_k K must be a multiple of 256");
  need(info, w, ss::dtype_bytes(wt, mul(info, op, N, K)), op, "w");
  need(info, d, (size_t)ss::kq_prepacked_bytes(wt, N, K), op, "dst");
  if ((uintptr_t)d.p % 32) throw range_error(info, op, "dst must be 32-byte aligned");
  ss::kq_prepack(w.p, wt, N, K, d.p);
  return info.Env().Undefined();
}

Napi::Value KqPrepackedBytes(const Napi::CallbackInfo& info) {
  const int wt = (int)count(info, 0, "kqPrepackedBytes");
  const int64_t N = count(info, 1, "kqPrepackedBytes"), K = count(info, 2, "kqPrepackedBytes");
  if (wt != SS_Q4_K) throw type_error(info, "kqPrepackedBytes", "only q4_k matrices are prepacked");
  return Napi::Number::New(info.Env(), (double)ss::kq_prepacked_bytes(wt, N, K));
}

// binary(op, a, lda, b, ldb, bcast, out, ldo, rows, cols)
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const char* op = "binary";
  int kind = (int)count(info, 0, op);
  Buf a = bytes(info, 1, op, "a");
  int64_t lda = count(info, 2, op);
  Buf b = bytes(info, 3, op, "b");
  int64_t ldb = count(info, 4, op);
  int bc = (int)count(info, 5, op);
  Buf o = bytes(info, 6, op, "out");
  int64_t ldo = count(info, 7, op), rows = count(info, 8, op), cols = count(info, 9, op);
  need(info, a, f32_span(info, op, rows, lda, cols), op, "a");
  need(info, b, bc ? f32_span(info, op, 1, ldb, cols) : f32_span(info, op, rows, ldb, cols), op, "b");
  need(info, o, f32_span(info, op, rows, ldo, cols), op, "out");
  ss::binary(kind, (const float*)a.p, lda, (const float*)b.p, ldb, bc, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// scale(a, lda, s, out, ldo, rows, cols)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scale";
  Buf a = bytes(info, 0, op, "a");
  int64_t lda = count(info, 1, op);
  float s = (float)number(info, 2, op);
  Buf o = bytes(info, 3, op, "out");
  int64_t ldo = count(info, 4, op), rows = count(info, 5, op), cols = count(info, 6, op);
  need(info, a, f32_span(info, op, rows, lda, cols), op, "a");
  need(info, o, f32_span(info, op, rows, ldo, cols), op, "out");
  ss::scale((const float*)a.p, lda, s, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// norm(x, ldx, w, b|null, eps, out, ldo, rows, cols, isLayerNorm)
Napi::Value Norm(const Napi::CallbackInfo& info) {
  const char* op = "norm";
  Buf x = bytes(info, 0, op, "x");
  int64_t ldx = count(info, 1, op);
  Buf w = bytes(info, 2, op, "w");
  bool hasB = !info[3].IsNull() && !info[3].IsUndefined();
  Buf b = hasB ? bytes(info, 3, op, "b") : Buf{nullptr, 0};
  float eps = (float)number(info, 4, op);
  Buf o = bytes(info, 5, op, "out");
  int64_t ldo = count(info, 6, op), rows = count(info, 7, op), cols = count(info, 8, op);
  bool ln = info[9].ToBoolean();
  need(info, x, f32_span(info, op, rows, ldx, cols), op, "x");
  need(info, w, (size_t)cols * 4, op, "w");
  if (hasB) need(info, b, (size_t)cols * 4, op, "b");
  need(info, o, f32_span(info, op, rows, ldo, cols), op, "out");
  if (ln) ss::layernorm((const float*)x.p, ldx, (const float*)w.p, (const float*)b.p, eps, (float*)o.p, ldo, rows, cols);
  else ss::rmsnorm((const float*)x.p, ldx, (const float*)w.p, eps, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// unary(op, x, ldx, out, ldo, rows, cols)
Napi::Value Unary(const Napi::CallbackInfo& info) {
  const char* op = "unary";
  int kind = (int)count(info, 0, op);
  Buf x = bytes(info, 1, op, "x");
  int64_t ldx = count(info, 2, op);
  Buf o = bytes(info, 3, op, "out");
  int64_t ldo = count(info, 4, op), rows = count(info, 5, op), cols = count(info, 6, op);
  need(info, x, f32_span(info, op, rows, ldx, cols), op, "x");
  need(info, o, f32_span(info, op, rows, ldo, cols), op, "out");
  ss::unary(kind, (const float*)x.p, ldx, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// gated(op, g, ldg, u, ldu, out, ldo, rows, cols)
Napi::Value Gated(const Napi::CallbackInfo& info) {
  const char* op = "gated";
  int kind = (int)count(info, 0, op);
  Buf g = bytes(info, 1, op, "gate");
  int64_t ldg = count(info, 2, op);
  Buf u = bytes(info, 3, op, "up");
  int64_t ldu = count(info, 4, op);
  Buf o = bytes(info, 5, op, "out");
  int64_t ldo = count(info, 6, op), rows = count(info, 7, op), cols = count(info, 8, op);
  need(info, g, f32_span(info, op, rows, ldg, cols), op, "gate");
  need(info, u, f32_span(info, op, rows, ldu, cols), op, "up");
  need(info, o, f32_span(info, op, rows, ldo, cols), op, "out");
  ss::gated(kind, (const float*)g.p, ldg, (const float*)u.p, ldu, (float*)o.p, ldo, rows, cols);
  return info.Env().Undefined();
}

// rope(x, T, H, D, sT, sH, positions, rotaryDim, halfLayout, theta, scaling, factor, low, high, origMax[, shortFactors, longFactors])
Napi::Value Rope(const Napi::CallbackInfo& info) {
  const char* op = "rope";
  Buf x = bytes(info, 0, op, "x");
  ss::rope_args a{};
  a.x = (float*)x.p;
  a.T = count(info, 1, op); a.H = count(info, 2, op); a.D = count(info, 3, op); a.sT = count(info, 4, op); a.sH = count(info, 5, op);
  Buf pos = bytes(info, 6, op, "positions");
  a.positions = (const int32_t*)pos.p;
  a.rotary_dim = count(info, 7, op);
  a.half_layout = (int)count(info, 8, op);
  a.theta = number(info, 9, op);
  a.scaling = (int)count(info, 10, op);
  a.factor = number(info, 11, op); a.low_freq_factor = number(info, 12, op); a.high_freq_factor = number(info, 13, op); a.original_max_position = number(info, 14, op);
  if (a.rotary_dim > a.D || a.rotary_dim % 2) throw range_error(info, op, "rotary dim must be even and at most the head dim");
  if (a.scaling > 3) throw range_error(info, op, "unknown scaling code");
  Buf sf{}, lf{};
  if (a.scaling == 3) {
    sf = bytes(info, 15, op, "shortFactors");
    lf = bytes(info, 16, op, "longFactors");
    need(info, sf, 4 * (size_t)(a.rotary_dim / 2), op, "shortFactors");
    need(info, lf, 4 * (size_t)(a.rotary_dim / 2), op, "longFactors");
    a.short_factors = (const float*)sf.p;
    a.long_factors = (const float*)lf.p;
  }
  need(info, pos, 4 * (size_t)a.T, op, "positions");
  need(info, x, 4 * (size_t)span3(info, op, a.T, a.sT, a.H, a.sH, a.D), op, "x");
  for (int64_t t = 0; t < a.T; t++)
    if (a.positions[t] < 0)
      throw range_error(info, op, "position " + std::to_string(a.positions[t]) + " at index " + std::to_string(t) + " is negative");
  ss::rope(a);
  return info.Env().Undefined();
}

// embedding(table, ttype, V, D, ids, out, ldo)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const char* op = "embedding";
  Buf t = bytes(info, 0, op, "table");
  int tt = (int)count(info, 1, op);
  int64_t V = count(info, 2, op), D = count(info, 3, op);
  Buf ids = bytes(info, 4, op, "ids");
  Buf o = bytes(info, 5, op, "out");
  int64_t ldo = count(info, 6, op);
  int64_t T = (int64_t)(ids.n / 4);
  if (tt < 0 || tt > SS_IQ4_XS) throw range_error(info, op, "unknown table dtype code");
  if ((tt == SS_Q8_0 || ss::is_legacyq(tt)) && D % 32) throw range_error(info, op, "q8_0 / q4_0 / q4_1 / q5_0 / q5_1 / iq4_nl D must be a multiple of 32");
  if (ss::is_kquant(tt) && D % 256) throw range_error(info, op, "q2_k / q3_k / q4_k / q5_k / q6_k / iq4_xs D must be a multiple of 256");
  need(info, t, ss::dtype_bytes(tt, mul(info, op, V, D)), op, "table");
  need(info, o, f32_span(info, op, T, ldo, D), op, "out");
  const int32_t* id = (const int32_t*)ids.p;
  for (int64_t i = 0; i < T; i++)
    if (id[i] < 0 || id[i] >= V)
      throw range_error(info, op, "token id " + std::to_string(id[i]) + " at index " + std::to_string(i) + " is out of range [0, " + std::to_string(V) + ")");
  ss::embedding(t.p, tt, D, id, T, (float*)o.p, ldo);
  return info.Env().Undefined();
}

// kvWrite(k, T, H, D, sT, sH, cache, ctype, nBlocks, bs, slots, keyMajor)
Napi::Value KvWrite(const Napi::CallbackInfo& info) {
  const char* op = "kvWrite";
  Buf k = bytes(info, 0, op, "k");
  int64_t T = count(info, 1, op), H = count(info, 2, op), D = count(info, 3, op), sT = count(info, 4, op), sH = count(info, 5, op);
  Buf c = bytes(info, 6, op, "cache");
  int ct = (int)count(info, 7, op);
  int64_t nb = count(info, 8, op), bs = count(info, 9, op);
  Buf sl = bytes(info, 10, op, "slots");
  if (ct != SS_F32 && ct != SS_F16 && ct != SS_Q8_0) throw range_error(info, op, "cache dtype must be f32, f16 or q8_0");
  if (ct == SS_Q8_0 && D % 32) throw range_error(info, op, "a q8_0 cache needs a head dim that is a multiple of 32");
  need(info, sl, 4 * (size_t)T, op, "slots");
  need(info, k, 4 * (size_t)span3(info, op, T, sT, H, sH, D), op, "k");
  need(info, c, ss::dtype_bytes(ct, mul(info, op, nb, H, bs, D)), op, "cache");
  const int32_t* s = (const int32_t*)sl.p;
  const int64_t slots = mul(info, op, nb, bs);
  for (int64_t i = 0; i < T; i++)
    if (s[i] < 0 || s[i] >= slots) throw range_error(info, op, "slot " + std::to_string(s[i]) + " out of range");
  const bool keyMajor = info.Length() > 11 && info[11].ToBoolean().Value();
  ss::kv_write((const float*)k.p, T, H, D, sT, sH, c.p, ct, bs, s, keyMajor);
  return info.Env().Undefined();
}

// attention(q, qsT, qsH, Hq, kc, vc, ctype, nBlocks, Hkv, bs, D, out, osT, osH, tables, tableStride, positions, scale, softcap, window)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  const char* op = "attention";
  ss_attn_args a{};
  Buf q = bytes(info, 0, op, "q");
  a.q = (const float*)q.p; a.qsT = count(info, 1, op); a.qsH = count(info, 2, op); a.Hq = count(info, 3, op);
  Buf kc = bytes(info, 4, op, "kCache");
  Buf vc = bytes(info, 5, op, "vCache");
  a.kc = kc.p; a.vc = vc.p;
  a.ctype = (int)count(info, 6, op);
  int64_t nb = count(info, 7, op);
  a.Hkv = count(info, 8, op); a.bs = count(info, 9, op); a.D = count(info, 10, op);
  Buf o = bytes(info, 11, op, "out");
  a.out = (float*)o.p; a.osT = count(info, 12, op); a.osH = count(info, 13, op);
  Buf tb = bytes(info, 14, op, "tables");
  a.tables = (const int32_t*)tb.p; a.tableStride = count(info, 15, op);
  Buf ps = bytes(info, 16, op, "positions");
  a.positions = (const int32_t*)ps.p;
  a.scale = (float)number(info, 17, op); a.softcap = (float)number(info, 18, op); a.window = count(info, 19, op);
  int64_t T = (int64_t)(ps.n / 4);
  if (a.Hkv == 0 || a.Hq % a.Hkv || a.bs == 0) throw range_error(info, op, "bad head counts or block size");
  if (a.ctype != SS_F32 && a.ctype != SS_F16 && a.ctype != SS_Q8_0) throw range_error(info, op, "cache dtype must be f32, f16 or q8_0");
  if (a.ctype == SS_Q8_0 && (a.D % 32 || a.D > SS_KVQ8_DMAX)) throw range_error(info, op, "a q8_0 cache needs a head dim that is a multiple of 32, at most " + std::to_string(SS_KVQ8_DMAX));
  size_t pool = ss::dtype_bytes(a.ctype, mul(info, op, nb, a.Hkv, a.bs, a.D));
  need(info, kc, pool, op, "kCache");
  need(info, vc, pool, op, "vCache");
  need(info, q, 4 * (size_t)span3(info, op, T, a.qsT, a.Hq, a.qsH, a.D), op, "q");
  need(info, o, 4 * (size_t)span3(info, op, T, a.osT, a.Hq, a.osH, a.D), op, "out");
  const int64_t nt = (int64_t)(tb.n / 4);
  for (int64_t t = 0; t < T; t++) {
    const int64_t p = a.positions[t];
    const int64_t last = p < 0 ? -1 : add(info, op, mul(info, op, t, a.tableStride), p / a.bs);
    if (p < 0 || last >= nt) throw range_error(info, op, "block table too short for position " + std::to_string(p));
    for (int64_t i = t * a.tableStride; i <= last; i++)
      if (a.tables[i] < 0 || a.tables[i] >= nb) throw range_error(info, op, "block " + std::to_string(a.tables[i]) + " out of range");
  }
  ss::attention(a, T);
  return info.Env().Undefined();
}

// argmax(x, ldx, rows, cols, out Int32Array)
Napi::Value Argmax(const Napi::CallbackInfo& info) {
  const char* op = "argmax";
  Buf x = bytes(info, 0, op, "x");
  int64_t ldx = count(info, 1, op), rows = count(info, 2, op), cols = count(info, 3, op);
  Buf o = bytes(info, 4, op, "out");
  need(info, x, f32_span(info, op, rows, ldx, cols), op, "x");
  need(info, o, 4 * (size_t)rows, op, "out");
  if (cols == 0) throw range_error(info, op, "empty rows");
  ss::argmax((const float*)x.p, ldx, rows, cols, (int32_t*)o.p);
  return info.Env().Undefined();
}

// convert(src, stype, dst, dtype, n)
Napi::Value Convert(const Napi::CallbackInfo& info) {
  const char* op = "convert";
  Buf s = bytes(info, 0, op, "src");
  int st = (int)count(info, 1, op);
  Buf d = bytes(info, 2, op, "dst");
  int dt = (int)count(info, 3, op);
  int64_t n = count(info, 4, op);
  if (st < 0 || st > SS_IQ4_XS || dt < 0 || dt > SS_IQ4_XS) throw range_error(info, op, "unknown dtype code");
  if ((ss::is_kquant(st) || ss::is_kquant(dt)) && n % 256) throw range_error(info, op, "q2_k / q3_k / q4_k / q5_k / q6_k / iq4_xs element count must be a multiple of 256");
  if ((st == SS_Q8_0 || dt == SS_Q8_0 || ss::is_legacyq(st) || ss::is_legacyq(dt)) && n % 32) throw range_error(info, op, "q8_0 / q4_0 / q4_1 / q5_0 / q5_1 / iq4_nl element count must be a multiple of 32");
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
  const size_t off = info.Length() > 1 && !info[1].IsUndefined() ? (size_t)count(info, 1, "mmapFile") : 0;
  if (off > fsize) {
    close(fd);
    throw Napi::RangeError::New(env, "mmapFile: offset past the end of '" + path + "'");
  }
  const size_t size = info.Length() > 2 && !info[2].IsUndefined() ? (size_t)count(info, 2, "mmapFile") : fsize - off;
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
  const size_t n = (size_t)count(info, 0, "allocResident");
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
// The whole pages [lo, hi) of b, when they lie inside one mmapFile mapping; false otherwise.
static bool mapped_pages(const Buf& b, uintptr_t& lo, uintptr_t& hi) {
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  lo = ((uintptr_t)b.p + page - 1) / page * page, hi = ((uintptr_t)b.p + b.n) / page * page;
  if (hi <= lo) return false;
  std::lock_guard<std::mutex> lk(g_maps_mu);
  auto it = g_maps.upper_bound(lo);
  if (it == g_maps.begin()) return false;
  --it;
  return hi <= it->first + it->second;
}

Napi::Value DropPages(const Napi::CallbackInfo& info) {
  Buf b = bytes(info, 0, "dropPages", "data");
  uintptr_t lo, hi;
  if (!mapped_pages(b, lo, hi)) return Napi::Number::New(info.Env(), 0);
  madvise((void*)lo, hi - lo, MADV_DONTNEED);
  return Napi::Number::New(info.Env(), (double)(hi - lo));
}

// mappedBytes(view) -> the bytes of the view's whole pages when they lie in an mmapFile mapping
// (what dropPages would give back), else 0; touches nothing
Napi::Value MappedBytes(const Napi::CallbackInfo& info) {
  Buf b = bytes(info, 0, "mappedBytes", "data");
  uintptr_t lo, hi;
  return Napi::Number::New(info.Env(), mapped_pages(b, lo, hi) ? (double)(hi - lo) : 0.0);
}

// addressMod(view, m) -> the address of the view's first byte modulo m (for aligned allocation)
Napi::Value AddressMod(const Napi::CallbackInfo& info) {
  Buf b = bytes(info, 0, "addressMod", "data");
  const int64_t m = count(info, 1, "addressMod");
  if (m <= 0) throw Napi::RangeError::New(info.Env(), "addressMod: modulus must be > 0");
  return Napi::Number::New(info.Env(), (double)((uintptr_t)b.p % (uintptr_t)m));
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
  int64_t n = count(info, 0, "setThreads");
  if (n < 1 || n > 1024) throw Napi::RangeError::New(info.Env(), "setThreads: thread count must be in [1, 1024]");
  ss::pool_set_threads((int)n);
  return Napi::Number::New(info.Env(), ss::pool_threads());
}

// The addon must never be unloaded: its thread pool's threads live for the process, running this
// library's code. Node unloads an addon when the last environment that loaded it goes away, so a
// server whose engine worker thread alone loaded it had the library unmapped under the pool
// threads when the worker was terminated at shutdown (SIGSEGV on exit). Opening ourselves again
// with RTLD_NODELETE pins the library.
void PinLibrary() {
  static std::once_flag once;
  std::call_once(once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&PinLibrary), &info) != 0 && info.dli_fname != nullptr) {
      dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    }
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  PinLibrary();
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
  exports.Set("mappedBytes", Napi::Function::New(env, MappedBytes));
  exports.Set("kqPrepack", Napi::Function::New(env, KqPrepack));
  exports.Set("kqPrepackedBytes", Napi::Function::New(env, KqPrepackedBytes));
  exports.Set("mmapFile", Napi::Function::New(env, MmapFile));
  exports.Set("addressMod", Napi::Function::New(env, AddressMod));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  RegisterTrain(env, exports);
  RegisterSgemm(env, exports);
  RegisterBench(env, exports);
  RegisterImage(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(slipstream, Init)

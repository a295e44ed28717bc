// N-API glue for the training kernels (train.h). The TS layer (src/tensor/train-cpu.ts) passes
// shapes explicitly; this layer checks every buffer's type and length against the elements the
// call touches, and every index it follows (token ids, targets, positions), so no call can
// read or write outside a buffer even when made directly. Errors name the op.
#include <napi.h>

#include <string>

#include "napi_args.h"
#include "train.h"

namespace {

using namespace ss_napi;

#define F32P(a) ((float*)(a).p)

// trainAxpy(a, x, y, n)
Napi::Value Axpy(const Napi::CallbackInfo& info) {
  const char* op = "axpy";
  const float a = (float)number(info, 0, op);
  Arr x = f32(info, 1, op, "x"), y = f32(info, 2, op, "y");
  const int64_t n = count(info, 3, op);
  need(info, x, n, op, "x");
  need(info, y, n, op, "y");
  ss::t_axpy(a, F32P(x), F32P(y), n);
  return info.Env().Undefined();
}

// trainSumSquares(x, n) -> number
Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  const char* op = "sumSquares";
  Arr x = f32(info, 0, op, "x");
  const int64_t n = count(info, 1, op);
  need(info, x, n, op, "x");
  return Napi::Number::New(info.Env(), ss::t_sum_squares(F32P(x), n));
}

// trainScale(x, n, s)
Napi::Value Scale(const Napi::CallbackInfo& info) {
  const char* op = "scaleInPlace";
  Arr x = f32(info, 0, op, "x");
  const int64_t n = count(info, 1, op);
  const float s = (float)number(info, 2, op);
  need(info, x, n, op, "x");
  ss::t_scale(F32P(x), n, s);
  return info.Env().Undefined();
}

// trainRmsNorm(x, w, rows, cols, eps, out, rstd)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const char* op = "rmsNorm";
  Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w");
  const int64_t rows = count(info, 2, op), cols = count(info, 3, op);
  const float eps = (float)number(info, 4, op);
  Arr out = f32(info, 5, op, "out"), rstd = f32(info, 6, op, "rstd");
  const int64_t n = mul(info, op, rows, cols);
  need(info, x, n, op, "x");
  need(info, w, cols, op, "w");
  need(info, out, n, op, "out");
  need(info, rstd, rows, op, "rstd");
  ss::t_rmsnorm(F32P(x), F32P(w), rows, cols, eps, F32P(out), F32P(rstd));
  return info.Env().Undefined();
}

// trainRmsNormBackward(x, w, rstd, dy, rows, cols, dx, dw)
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "rmsNormBackward";
  Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w"), rstd = f32(info, 2, op, "rstd"), dy = f32(info, 3, op, "dy");
  const int64_t rows = count(info, 4, op), cols = count(info, 5, op);
  Arr dx = f32(info, 6, op, "dx"), dw = f32(info, 7, op, "dw");
  const int64_t n = mul(info, op, rows, cols);
  need(info, x, n, op, "x");
  need(info, w, cols, op, "w");
  need(info, rstd, rows, op, "rstd");
  need(info, dy, n, op, "dy");
  need(info, dx, n, op, "dx");
  need(info, dw, cols, op, "dw");
  ss::t_rmsnorm_bwd(F32P(x), F32P(w), F32P(rstd), F32P(dy), rows, cols, F32P(dx), F32P(dw));
  return info.Env().Undefined();
}

// trainLayerNorm(x, w, b | null, rows, cols, eps, out, mean, rstd)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  const char* op = "layerNorm";
  Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w");
  const bool hasB = !absent(info, 2);
  Arr b = hasB ? f32(info, 2, op, "b") : Arr{nullptr, 0};
  const int64_t rows = count(info, 3, op), cols = count(info, 4, op);
  const float eps = (float)number(info, 5, op);
  Arr out = f32(info, 6, op, "out"), mean = f32(info, 7, op, "mean"), rstd = f32(info, 8, op, "rstd");
  const int64_t n = mul(info, op, rows, cols);
  need(info, x, n, op, "x");
  need(info, w, cols, op, "w");
  if (hasB) need(info, b, cols, op, "b");
  need(info, out, n, op, "out");
  need(info, mean, rows, op, "mean");
  need(info, rstd, rows, op, "rstd");
  ss::t_layernorm(F32P(x), F32P(w), hasB ? F32P(b) : nullptr, rows, cols, eps, F32P(out), F32P(mean), F32P(rstd));
  return info.Env().Undefined();
}

// trainLayerNormBackward(x, w, mean, rstd, dy, rows, cols, dx, dw, db | null)
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "layerNormBackward";
  Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w"), mean = f32(info, 2, op, "mean"), rstd = f32(info, 3, op, "rstd");
  Arr dy = f32(info, 4, op, "dy");
  const int64_t rows = count(info, 5, op), cols = count(info, 6, op);
  Arr dx = f32(info, 7, op, "dx"), dw = f32(info, 8, op, "dw");
  const bool hasB = !absent(info, 9);
  Arr db = hasB ? f32(info, 9, op, "db") : Arr{nullptr, 0};
  const int64_t n = mul(info, op, rows, cols);
  need(info, x, n, op, "x");
  need(info, w, cols, op, "w");
  need(info, mean, rows, op, "mean");
  need(info, rstd, rows, op, "rstd");
  need(info, dy, n, op, "dy");
  need(info, dx, n, op, "dx");
  need(info, dw, cols, op, "dw");
  if (hasB) need(info, db, cols, op, "db");
  ss::t_layernorm_bwd(F32P(x), F32P(w), F32P(mean), F32P(rstd), F32P(dy), rows, cols, F32P(dx), F32P(dw), hasB ? F32P(db) : nullptr);
  return info.Env().Undefined();
}

int glu_op(const Napi::CallbackInfo& info, size_t i, const char* op) {
  const int64_t k = count(info, i, op);
  if (k > SS_GEGLU_ERF) throw range_error(info, op, "unknown gated activation code");
  return (int)k;
}

// trainGlu(op, g, u, out, n): op 0 swiglu, 1 geglu (tanh), 2 geglu (erf)
Napi::Value Glu(const Napi::CallbackInfo& info) {
  const char* op = info[0].IsNumber() && info[0].As<Napi::Number>().DoubleValue() == 0 ? "swiglu" : "geglu";
  const int k = glu_op(info, 0, op);
  Arr g = f32(info, 1, op, "g"), u = f32(info, 2, op, "u"), out = f32(info, 3, op, "out");
  const int64_t n = count(info, 4, op);
  need(info, g, n, op, "g");
  need(info, u, n, op, "u");
  need(info, out, n, op, "out");
  ss::t_glu(k, F32P(g), F32P(u), F32P(out), n);
  return info.Env().Undefined();
}

// trainGluBackward(op, g, u, dy, dg, du, n)
Napi::Value GluBackward(const Napi::CallbackInfo& info) {
  const char* op = info[0].IsNumber() && info[0].As<Napi::Number>().DoubleValue() == 0 ? "swigluBackward" : "gegluBackward";
  const int k = glu_op(info, 0, op);
  Arr g = f32(info, 1, op, "g"), u = f32(info, 2, op, "u"), dy = f32(info, 3, op, "dy"), dg = f32(info, 4, op, "dg"), du = f32(info, 5, op, "du");
  const int64_t n = count(info, 6, op);
  need(info, g, n, op, "g");
  need(info, u, n, op, "u");
  need(info, dy, n, op, "dy");
  need(info, dg, n, op, "dg");
  need(info, du, n, op, "du");
  ss::t_glu_bwd(k, F32P(g), F32P(u), F32P(dy), F32P(dg), F32P(du), n);
  return info.Env().Undefined();
}

// trainGelu(erf, x, out, n)
Napi::Value Gelu(const Napi::CallbackInfo& info) {
  const char* op = "gelu";
  const bool erf = info[0].ToBoolean();
  Arr x = f32(info, 1, op, "x"), out = f32(info, 2, op, "out");
  const int64_t n = count(info, 3, op);
  need(info, x, n, op, "x");
  need(info, out, n, op, "out");
  ss::t_gelu(erf ? 1 : 0, F32P(x), F32P(out), n);
  return info.Env().Undefined();
}

// trainGeluBackward(erf, x, dy, dx, n)
Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "geluBackward";
  const bool erf = info[0].ToBoolean();
  Arr x = f32(info, 1, op, "x"), dy = f32(info, 2, op, "dy"), dx = f32(info, 3, op, "dx");
  const int64_t n = count(info, 4, op);
  need(info, x, n, op, "x");
  need(info, dy, n, op, "dy");
  need(info, dx, n, op, "dx");
  ss::t_gelu_bwd(erf ? 1 : 0, F32P(x), F32P(dy), F32P(dx), n);
  return info.Env().Undefined();
}

// trainRope(x, rows, H, D, positions, rotaryDim, halfLayout, theta, scaling, factor, low, high, origMax, inverse[, shortFactors, longFactors])
Napi::Value Rope(const Napi::CallbackInfo& info) {
  const char* op = "rope";
  Arr x = f32(info, 0, op, "x");
  ss::rope_args a{};
  a.T = count(info, 1, op);
  a.H = count(info, 2, op);
  a.D = count(info, 3, op);
  Arr pos = i32(info, 4, op, "positions");
  a.rotary_dim = count(info, 5, op);
  a.half_layout = (int)count(info, 6, op);
  a.theta = number(info, 7, op);
  a.scaling = (int)count(info, 8, op);
  a.factor = number(info, 9, op);
  a.low_freq_factor = number(info, 10, op);
  a.high_freq_factor = number(info, 11, op);
  a.original_max_position = number(info, 12, op);
  const bool inverse = info[13].ToBoolean();
  if (a.rotary_dim > a.D || a.rotary_dim % 2) throw range_error(info, op, "rotary dim must be even and at most the head dim");
  if (a.scaling > 3) throw range_error(info, op, "unknown scaling code");
  Arr sf{}, lf{};
  if (a.scaling == 3) {
    sf = f32(info, 14, op, "shortFactors");
    lf = f32(info, 15, op, "longFactors");
    need(info, sf, a.rotary_dim / 2, op, "shortFactors");
    need(info, lf, a.rotary_dim / 2, op, "longFactors");
    a.short_factors = F32P(sf);
    a.long_factors = F32P(lf);
  }
  need(info, x, mul(info, op, a.T, a.H, a.D), op, "x");
  need(info, pos, a.T, op, "positions");
  a.x = F32P(x);
  a.positions = (const int32_t*)pos.p;
  a.sT = a.H * a.D;
  a.sH = a.D;
  for (int64_t t = 0; t < a.T; t++)
    if (a.positions[t] < 0) throw range_error(info, op, "position " + std::to_string(a.positions[t]) + " at index " + std::to_string(t) + " is negative");
  ss::rope(a, inverse);
  return info.Env().Undefined();
}

// The shape arguments shared by both attention calls, from argument `i`: B, T, Hq, Hkv, D, scale, softCap, window.
void attn_shape(const Napi::CallbackInfo& info, size_t i, const char* op, ss_tattn_args& a) {
  a.B = count(info, i, op);
  a.T = count(info, i + 1, op);
  a.Hq = count(info, i + 2, op);
  a.Hkv = count(info, i + 3, op);
  a.D = count(info, i + 4, op);
  a.scale = (float)number(info, i + 5, op);
  a.softcap = (float)number(info, i + 6, op);
  a.window = count(info, i + 7, op);
  if (a.Hkv == 0 || a.Hq % a.Hkv) throw range_error(info, op, "Hq must be a positive multiple of Hkv");
  if (!(a.softcap >= 0)) throw range_error(info, op, "softCap must be >= 0");
}

void attn_inputs(const Napi::CallbackInfo& info, const char* op, const Arr& q, const Arr& k, const Arr& v, const Arr& seg, ss_tattn_args& a) {
  const int64_t rows = mul(info, op, a.B, a.T);
  need(info, q, mul(info, op, rows, a.Hq, a.D), op, "q");
  need(info, k, mul(info, op, rows, a.Hkv, a.D), op, "k");
  need(info, v, mul(info, op, rows, a.Hkv, a.D), op, "v");
  need(info, seg, rows, op, "seg");
  a.q = F32P(q), a.k = F32P(k), a.v = F32P(v), a.seg = (const int32_t*)seg.p;
}

// trainAttention(q, k, v, seg, B, T, Hq, Hkv, D, scale, softCap, window, out, lse)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  const char* op = "attention";
  ss_tattn_args a{};
  Arr q = f32(info, 0, op, "q"), k = f32(info, 1, op, "k"), v = f32(info, 2, op, "v"), seg = i32(info, 3, op, "seg");
  attn_shape(info, 4, op, a);
  Arr out = f32(info, 12, op, "out"), lse = f32(info, 13, op, "lse");
  attn_inputs(info, op, q, k, v, seg, a);
  const int64_t rows = a.B * a.T;
  need(info, out, mul(info, op, rows, a.Hq, a.D), op, "out");
  need(info, lse, mul(info, op, rows, a.Hq), op, "lse");
  a.out = F32P(out), a.lse = F32P(lse);
  ss::t_attention(a);
  return info.Env().Undefined();
}

// trainAttentionBackward(q, k, v, seg, out, lse, dout, B, T, Hq, Hkv, D, scale, softCap, window, dq, dk, dv)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "attentionBackward";
  ss_tattn_args a{};
  Arr q = f32(info, 0, op, "q"), k = f32(info, 1, op, "k"), v = f32(info, 2, op, "v"), seg = i32(info, 3, op, "seg");
  Arr o = f32(info, 4, op, "out"), lse = f32(info, 5, op, "lse"), dout = f32(info, 6, op, "dout");
  attn_shape(info, 7, op, a);
  Arr dq = f32(info, 15, op, "dq"), dk = f32(info, 16, op, "dk"), dv = f32(info, 17, op, "dv");
  attn_inputs(info, op, q, k, v, seg, a);
  const int64_t rows = a.B * a.T, nq = mul(info, op, rows, a.Hq, a.D), nk = mul(info, op, rows, a.Hkv, a.D);
  need(info, o, nq, op, "out");
  need(info, lse, mul(info, op, rows, a.Hq), op, "lse");
  need(info, dout, nq, op, "dout");
  need(info, dq, nq, op, "dq");
  need(info, dk, nk, op, "dk");
  need(info, dv, nk, op, "dv");
  a.o = F32P(o), a.lse_in = F32P(lse), a.dout = F32P(dout), a.dq = F32P(dq), a.dk = F32P(dk), a.dv = F32P(dv);
  ss::t_attention_bwd(a);
  return info.Env().Undefined();
}

// trainCrossEntropy(logits, rows, V, targets, softCap, gradScale, dlogits) -> loss sum
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const char* op = "crossEntropy";
  Arr z = f32(info, 0, op, "logits");
  const int64_t rows = count(info, 1, op), V = count(info, 2, op);
  Arr t = i32(info, 3, op, "targets");
  const float cap = (float)number(info, 4, op), gs = (float)number(info, 5, op);
  Arr dz = f32(info, 6, op, "dlogits");
  const int64_t n = mul(info, op, rows, V);
  need(info, z, n, op, "logits");
  need(info, t, rows, op, "targets");
  need(info, dz, n, op, "dlogits");
  if (!(cap >= 0)) throw range_error(info, op, "softCap must be >= 0");
  const int32_t* tg = (const int32_t*)t.p;
  for (int64_t r = 0; r < rows; r++)
    if (tg[r] < -1 || tg[r] >= V)
      throw range_error(info, op, "target " + std::to_string(tg[r]) + " of row " + std::to_string(r) + " is out of range [0, " +
                                                        std::to_string(V) + ") (-1 ignores a row)");
  return Napi::Number::New(info.Env(), ss::t_cross_entropy(F32P(z), rows, V, tg, cap, gs, F32P(dz)));
}

// trainEmbeddingBackward(ids, n, dy, D, dtable)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embeddingBackward";
  Arr ids = i32(info, 0, op, "ids");
  const int64_t n = count(info, 1, op);
  Arr dy = f32(info, 2, op, "dy");
  const int64_t D = count(info, 3, op);
  Arr dt = f32(info, 4, op, "dtable");
  need(info, ids, n, op, "ids");
  need(info, dy, mul(info, op, n, D), op, "dy");
  if (D == 0) return info.Env().Undefined();
  const int64_t vocab = dt.n / D;
  const int32_t* id = (const int32_t*)ids.p;
  for (int64_t i = 0; i < n; i++)
    if (id[i] < 0 || id[i] >= vocab)
      throw range_error(info, op, "token id " + std::to_string(id[i]) + " at index " + std::to_string(i) + " is out of range [0, " +
                                                        std::to_string(vocab) + ") of dtable");
  ss::t_embedding_bwd(id, n, F32P(dy), D, F32P(dt));
  return info.Env().Undefined();
}

// trainAdamw(p, g, m, v, n, step, lr, beta1, beta2, eps, wd, gradScale)
Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const char* op = "adamw";
  Arr p = f32(info, 0, op, "p"), g = f32(info, 1, op, "g"), m = f32(info, 2, op, "m"), v = f32(info, 3, op, "v");
  const int64_t n = count(info, 4, op);
  const double step = number(info, 5, op), lr = number(info, 6, op), b1 = number(info, 7, op), b2 = number(info, 8, op), eps = number(info, 9, op), wd = number(info, 10, op),
               gs = number(info, 11, op);
  if (!(step >= 1)) throw range_error(info, op, "step must be >= 1 (1-based), got " + std::to_string(step));
  if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw range_error(info, op, "beta1 and beta2 must be in [0, 1)");
  need(info, p, n, op, "p");
  need(info, g, n, op, "g");
  need(info, m, n, op, "m");
  need(info, v, n, op, "v");
  ss::t_adamw(F32P(p), F32P(g), F32P(m), F32P(v), n, step, lr, b1, b2, eps, wd, gs);
  return info.Env().Undefined();
}

}  // namespace

// the image training kernels (train_image_addon.cc)
void RegisterTrainImage(Napi::Env env, Napi::Object exports);

void RegisterTrain(Napi::Env env, Napi::Object exports) {
  RegisterTrainImage(env, exports);
  exports.Set("trainAxpy", Napi::Function::New(env, Axpy));
  exports.Set("trainSumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("trainScale", Napi::Function::New(env, Scale));
  exports.Set("trainRmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("trainRmsNormBackward", Napi::Function::New(env, RmsNormBackward));
  exports.Set("trainLayerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("trainLayerNormBackward", Napi::Function::New(env, LayerNormBackward));
  exports.Set("trainGlu", Napi::Function::New(env, Glu));
  exports.Set("trainGluBackward", Napi::Function::New(env, GluBackward));
  exports.Set("trainGelu", Napi::Function::New(env, Gelu));
  exports.Set("trainGeluBackward", Napi::Function::New(env, GeluBackward));
  exports.Set("trainRope", Napi::Function::New(env, Rope));
  exports.Set("trainAttention", Napi::Function::New(env, Attention));
  exports.Set("trainAttentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("trainCrossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("trainEmbeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  exports.Set("trainAdamw", Napi::Function::New(env, Adamw));
}

// N-API glue for the image training kernels (train_image.h), as train_addon.cc: every buffer's
// type and length is checked against the elements the call touches, every shape against the
// others, so no call reads or writes outside a buffer even when made directly. Errors name the op.
#include <napi.h>

#include <string>

#include "napi_args.h"
#include "train_image.h"

namespace {

using namespace ss_napi;

#define F32P(a) ((float*)(a).p)

// A nullable f32 buffer of at least n elements.
float* opt_f32(const Napi::CallbackInfo& info, size_t i, int64_t n, const char* op, const char* name) {
  if (absent(info, i)) return nullptr;
  Arr a = f32(info, i, op, name);
  need(info, a, n, op, name);
  return F32P(a);
}

// (B, H, W, Ci, Co, KH, KW, stride, pad, padEnd) from argument i on
ss_conv_shape conv_shape(const Napi::CallbackInfo& info, size_t i, const char* op) {
  ss_conv_shape s{};
  s.B = count(info, i, op, "B"), s.H = count(info, i + 1, op, "H"), s.W = count(info, i + 2, op, "W"), s.Ci = count(info, i + 3, op, "Ci");
  s.Co = count(info, i + 4, op, "Co"), s.KH = count(info, i + 5, op, "KH"), s.KW = count(info, i + 6, op, "KW");
  s.stride = count(info, i + 7, op, "stride"), s.pad = count(info, i + 8, op, "pad"), s.pad_end = count(info, i + 9, op, "padEnd");
  if (s.stride < 1) throw range_error(info, op, "stride must be >= 1");
  const int64_t ph = s.H + s.pad + s.pad_end, pw = s.W + s.pad + s.pad_end;
  if (s.KH < 1 || s.KW < 1 || ph < s.KH || pw < s.KW) throw range_error(info, op, "the kernel does not fit the padded input");
  s.OH = (ph - s.KH) / s.stride + 1, s.OW = (pw - s.KW) / s.stride + 1;
  mul(info, op, s.B, s.H, s.W, s.Ci);
  mul(info, op, s.Co, s.KH, s.KW, s.Ci);
  mul(info, op, s.B, s.OH, s.OW, s.Co);
  mul(info, op, s.B, s.OH, s.OW, mul(info, op, s.KH, s.KW, s.Ci));
  return s;
}

// The weights (argument i): a Float32Array, or with the optional type argument `t` 1 (f16) or 2
// (bf16) any typed array holding that many 2-byte elements, 2-byte aligned.
ss_conv_weights conv_weights(const Napi::CallbackInfo& info, size_t i, size_t t, const ss_conv_shape& s, const char* op) {
  const int64_t n = s.Co * s.KH * s.KW * s.Ci;
  const int64_t type = info.Length() > t && !absent(info, t) ? count(info, t, op, "wtype") : 0;
  if (type == 0) {
    Arr w = f32(info, i, op, "w");
    need(info, w, n, op, "w");
    return {w.p, 0};
  }
  if (type != 1 && type != 2) throw range_error(info, op, "wtype must be 0 (f32), 1 (f16) or 2 (bf16), got " + std::to_string(type));
  const Buf b = bytes(info, i, op, "w");
  if ((uintptr_t)b.p % 2) throw range_error(info, op, "w must be 2-byte aligned (f16 / bf16 elements)");
  need(info, b, (size_t)n * 2, op, "w");
  return {b.p, (int)type};
}

// trainConv2d(x, w, b | null, out, B, H, W, Ci, Co, KH, KW, stride, pad, padEnd [, wtype])
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  const char* op = "conv2d";
  const ss_conv_shape s = conv_shape(info, 4, op);
  Arr x = f32(info, 0, op, "x"), out = f32(info, 3, op, "out");
  const ss_conv_weights w = conv_weights(info, 1, 14, s, op);
  need(info, x, s.B * s.H * s.W * s.Ci, op, "x");
  need(info, out, s.B * s.OH * s.OW * s.Co, op, "out");
  const float* b = opt_f32(info, 2, s.Co, op, "b");
  ss::t_conv2d(F32P(x), w, b, s, F32P(out));
  return info.Env().Undefined();
}

// trainConv2dBackward(x, w, dy, dx | null, dw | null, db | null, B, H, W, Ci, Co, KH, KW, stride, pad, padEnd [, wtype])
Napi::Value Conv2dBackward(const Napi::CallbackInfo& info) {
  const char* op = "conv2dBackward";
  const ss_conv_shape s = conv_shape(info, 6, op);
  Arr x = f32(info, 0, op, "x"), dy = f32(info, 2, op, "dy");
  const ss_conv_weights w = conv_weights(info, 1, 16, s, op);
  need(info, x, s.B * s.H * s.W * s.Ci, op, "x");
  need(info, dy, s.B * s.OH * s.OW * s.Co, op, "dy");
  float* dx = opt_f32(info, 3, s.B * s.H * s.W * s.Ci, op, "dx");
  float* dw = opt_f32(info, 4, s.Co * s.KH * s.KW * s.Ci, op, "dw");
  float* db = opt_f32(info, 5, s.Co, op, "db");
  ss::t_conv2d_bwd(F32P(x), w, F32P(dy), s, dx, dw, db);
  return info.Env().Undefined();
}

void groups(const Napi::CallbackInfo& info, const char* op, int64_t C, int64_t G) {
  if (G < 1 || C % G != 0) throw range_error(info, op, std::to_string(C) + " channels do not split into " + std::to_string(G) + " groups");
}

// trainGroupNorm(x, w, b, B, N, C, G, eps, silu, out, mean, rstd)
Napi::Value GroupNorm(const Napi::CallbackInfo& info) {
  const char* op = "groupNorm";
  Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w"), b = f32(info, 2, op, "b");
  const int64_t B = count(info, 3, op, "B"), N = count(info, 4, op, "N"), C = count(info, 5, op, "C"), G = count(info, 6, op, "G");
  const float eps = (float)number(info, 7, op, "eps");
  const bool silu = info[8].ToBoolean();
  Arr out = f32(info, 9, op, "out"), mean = f32(info, 10, op, "mean"), rstd = f32(info, 11, op, "rstd");
  groups(info, op, C, G);
  const int64_t n = mul(info, op, B, N, C);
  need(info, x, n, op, "x");
  need(info, w, C, op, "w");
  need(info, b, C, op, "b");
  need(info, out, n, op, "out");
  need(info, mean, mul(info, op, B, G), op, "mean");
  need(info, rstd, B * G, op, "rstd");
  ss::t_group_norm(F32P(x), F32P(w), F32P(b), B, N, C, G, eps, silu ? 1 : 0, F32P(out), F32P(mean), F32P(rstd));
  return info.Env().Undefined();
}

// trainGroupNormBackward(x, w, b, mean, rstd, dy, B, N, C, G, silu, dx | null, dw | null, db | null)
Napi::Value GroupNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "groupNormBackward";
  Arr x = f32(info, 0, op, "x"), w = f32(info, 1, op, "w"), b = f32(info, 2, op, "b"), mean = f32(info, 3, op, "mean"), rstd = f32(info, 4, op, "rstd");
  Arr dy = f32(info, 5, op, "dy");
  const int64_t B = count(info, 6, op, "B"), N = count(info, 7, op, "N"), C = count(info, 8, op, "C"), G = count(info, 9, op, "G");
  const bool silu = info[10].ToBoolean();
  groups(info, op, C, G);
  const int64_t n = mul(info, op, B, N, C);
  need(info, x, n, op, "x");
  need(info, w, C, op, "w");
  need(info, b, C, op, "b");
  need(info, mean, mul(info, op, B, G), op, "mean");
  need(info, rstd, B * G, op, "rstd");
  need(info, dy, n, op, "dy");
  float* dx = opt_f32(info, 11, n, op, "dx");
  float* dw = opt_f32(info, 12, C, op, "dw");
  float* db = opt_f32(info, 13, C, op, "db");
  ss::t_group_norm_bwd(F32P(x), F32P(w), F32P(b), F32P(mean), F32P(rstd), F32P(dy), B, N, C, G, silu ? 1 : 0, dx, dw, db);
  return info.Env().Undefined();
}

// trainUpsample2x(backward, src, B, H, W, C, dst): forward x -> out, backward dy -> dx (H, W of the small image)
Napi::Value Upsample2x(const Napi::CallbackInfo& info) {
  const bool bwd = info[0].ToBoolean();
  const char* op = bwd ? "upsample2xBackward" : "upsample2x";
  Arr src = f32(info, 1, op, bwd ? "dy" : "x");
  const int64_t B = count(info, 2, op, "B"), H = count(info, 3, op, "H"), W = count(info, 4, op, "W"), C = count(info, 5, op, "C");
  Arr dst = f32(info, 6, op, bwd ? "dx" : "out");
  const int64_t small = mul(info, op, B, H, W, C), big = mul(info, op, small, 4);
  need(info, src, bwd ? big : small, op, bwd ? "dy" : "x");
  need(info, dst, bwd ? small : big, op, bwd ? "dx" : "out");
  if (bwd) ss::t_upsample2x_bwd(F32P(src), B, H, W, C, F32P(dst));
  else ss::t_upsample2x(F32P(src), B, H, W, C, F32P(dst));
  return info.Env().Undefined();
}

void mha_dims(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t& B, int64_t& Tq, int64_t& Tk, int64_t& H, int64_t& D) {
  B = count(info, i, op, "B"), Tq = count(info, i + 1, op, "Tq"), Tk = count(info, i + 2, op, "Tk"), H = count(info, i + 3, op, "H"), D = count(info, i + 4, op, "D");
  mul(info, op, B, Tq, H, D);
  mul(info, op, B, Tk, H, D);
  mul(info, op, Tq, Tk);
  if (Tk == 0 && Tq > 0 && B > 0 && H > 0) throw range_error(info, op, "no keys to attend to (Tk = 0)");
}

// trainMha(q, k, v, B, Tq, Tk, H, D, scale, out, lse)
Napi::Value Mha(const Napi::CallbackInfo& info) {
  const char* op = "mha";
  Arr q = f32(info, 0, op, "q"), k = f32(info, 1, op, "k"), v = f32(info, 2, op, "v");
  int64_t B, Tq, Tk, H, D;
  mha_dims(info, 3, op, B, Tq, Tk, H, D);
  const float scale = (float)number(info, 8, op, "scale");
  Arr out = f32(info, 9, op, "out"), lse = f32(info, 10, op, "lse");
  need(info, q, B * Tq * H * D, op, "q");
  need(info, k, B * Tk * H * D, op, "k");
  need(info, v, B * Tk * H * D, op, "v");
  need(info, out, B * Tq * H * D, op, "out");
  need(info, lse, B * Tq * H, op, "lse");
  ss::t_mha(F32P(q), F32P(k), F32P(v), B, Tq, Tk, H, D, scale, F32P(out), F32P(lse));
  return info.Env().Undefined();
}

// trainMhaBackward(q, k, v, lse, dout, B, Tq, Tk, H, D, scale, dq, dk, dv)
Napi::Value MhaBackward(const Napi::CallbackInfo& info) {
  const char* op = "mhaBackward";
  Arr q = f32(info, 0, op, "q"), k = f32(info, 1, op, "k"), v = f32(info, 2, op, "v"), lse = f32(info, 3, op, "lse"), dout = f32(info, 4, op, "dout");
  int64_t B, Tq, Tk, H, D;
  mha_dims(info, 5, op, B, Tq, Tk, H, D);
  const float scale = (float)number(info, 10, op, "scale");
  Arr dq = f32(info, 11, op, "dq"), dk = f32(info, 12, op, "dk"), dv = f32(info, 13, op, "dv");
  need(info, q, B * Tq * H * D, op, "q");
  need(info, k, B * Tk * H * D, op, "k");
  need(info, v, B * Tk * H * D, op, "v");
  need(info, lse, B * Tq * H, op, "lse");
  need(info, dout, B * Tq * H * D, op, "dout");
  need(info, dq, B * Tq * H * D, op, "dq");
  need(info, dk, B * Tk * H * D, op, "dk");
  need(info, dv, B * Tk * H * D, op, "dv");
  ss::t_mha_bwd(F32P(q), F32P(k), F32P(v), F32P(lse), F32P(dout), B, Tq, Tk, H, D, scale, F32P(dq), F32P(dk), F32P(dv));
  return info.Env().Undefined();
}

int act_op(const Napi::CallbackInfo& info, const char* op) {
  const int64_t a = count(info, 0, op, "activation");
  if (a > 1) throw range_error(info, op, "unknown activation code " + std::to_string(a));
  return (int)a;
}

// trainAct(op, x, out, n): op 0 silu, 1 quick_gelu
Napi::Value Act(const Napi::CallbackInfo& info) {
  const char* op = "act";
  const int a = act_op(info, op);
  Arr x = f32(info, 1, op, "x"), out = f32(info, 2, op, "out");
  const int64_t n = count(info, 3, op);
  need(info, x, n, op, "x");
  need(info, out, n, op, "out");
  ss::t_act(a, F32P(x), F32P(out), n);
  return info.Env().Undefined();
}

// trainActBackward(op, x, dy, dx, n)
Napi::Value ActBackward(const Napi::CallbackInfo& info) {
  const char* op = "actBackward";
  const int a = act_op(info, op);
  Arr x = f32(info, 1, op, "x"), dy = f32(info, 2, op, "dy"), dx = f32(info, 3, op, "dx");
  const int64_t n = count(info, 4, op);
  need(info, x, n, op, "x");
  need(info, dy, n, op, "dy");
  need(info, dx, n, op, "dx");
  ss::t_act_bwd(a, F32P(x), F32P(dy), F32P(dx), n);
  return info.Env().Undefined();
}

// trainSumRows(x, G, R, C, out)
Napi::Value SumRows(const Napi::CallbackInfo& info) {
  const char* op = "sumRows";
  Arr x = f32(info, 0, op, "x");
  const int64_t G = count(info, 1, op, "G"), R = count(info, 2, op, "R"), C = count(info, 3, op, "C");
  Arr out = f32(info, 4, op, "out");
  need(info, x, mul(info, op, G, R, C), op, "x");
  need(info, out, mul(info, op, G, C), op, "out");
  ss::t_sum_rows(F32P(x), G, R, C, F32P(out));
  return info.Env().Undefined();
}

// trainAddRows(x, v, G, R, C, out)
Napi::Value AddRows(const Napi::CallbackInfo& info) {
  const char* op = "addRows";
  Arr x = f32(info, 0, op, "x"), v = f32(info, 1, op, "v");
  const int64_t G = count(info, 2, op, "G"), R = count(info, 3, op, "R"), C = count(info, 4, op, "C");
  Arr out = f32(info, 5, op, "out");
  const int64_t n = mul(info, op, G, R, C);
  need(info, x, n, op, "x");
  need(info, v, mul(info, op, G, C), op, "v");
  need(info, out, n, op, "out");
  if (out.p != x.p && (char*)out.p < (char*)x.p + n * 4 && (char*)x.p < (char*)out.p + n * 4) throw range_error(info, op, "out overlaps x without being x");
  ss::t_add_rows(F32P(x), F32P(v), G, R, C, F32P(out));
  return info.Env().Undefined();
}

}  // namespace

void RegisterTrainImage(Napi::Env env, Napi::Object exports) {
  exports.Set("trainConv2d", Napi::Function::New(env, Conv2d));
  exports.Set("trainConv2dBackward", Napi::Function::New(env, Conv2dBackward));
  exports.Set("trainGroupNorm", Napi::Function::New(env, GroupNorm));
  exports.Set("trainGroupNormBackward", Napi::Function::New(env, GroupNormBackward));
  exports.Set("trainUpsample2x", Napi::Function::New(env, Upsample2x));
  exports.Set("trainMha", Napi::Function::New(env, Mha));
  exports.Set("trainMhaBackward", Napi::Function::New(env, MhaBackward));
  exports.Set("trainAct", Napi::Function::New(env, Act));
  exports.Set("trainActBackward", Napi::Function::New(env, ActBackward));
  exports.Set("trainSumRows", Napi::Function::New(env, SumRows));
  exports.Set("trainAddRows", Napi::Function::New(env, AddRows));
}

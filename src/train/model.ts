// The trainable decoder: every family of the zoo (Llama 2/3, Mistral, Mixtral, Qwen2, Gemma,
// Gemma 2, GPT-2) on the autograd tape, with weights under their Hugging Face names and in HF
// layout (RoPE half-split, Gemma norms stored as w - 1, GPT-2 Conv1D [in, out]), so a
// checkpoint is a loadable HF model and the inference loader reads it as is.
//
//   x = embed(tokens) * embedScale                                   [n, D]
//   for each layer:  x += o(attn(rope(q(h)), rope(k(h)), v(h)))   h = norm(x)
//                    x += down(act(gate(h)) * up(h))               h = norm(x)
//   logits = lm_head(norm(x))                                        [n, V]
//
// LoRA (PEFT's formulation): a targeted projection becomes W x + (alpha / r) B A dropout(x)
// with A [r, in] (Kaiming-uniform) and B [out, r] (zeros). The base weights are frozen and may
// be q8_0 (QLoRA): their forward runs on the inference matmul, their input gradient on a
// dequantized copy.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../formats/model-config.ts';
import { openSafetensorsCheckpoint, writeSafetensors } from '../formats/safetensors.ts';
import type { Backend, RopeOptions } from '../tensor/backend.ts';
import { Tensor } from '../tensor/tensor.ts';
import { convertTensor } from '../tensor/convert.ts';
import { DTYPE_CODE } from '../tensor/dtype.ts';
import { native } from '../tensor/native.ts';
import { addLowRank } from '../models/lora.ts';
import { type Tape, Var, add, addInto, attention, conv1d, crossEntropy, embedding, gated, gelu, layerNorm, linear, rmsNorm, rope, splitCols } from './autograd.ts';
import type { AttnTrainOptions } from './kernels.ts';
import { TrainRng } from './rng.ts';
import { TrainError } from './errors.ts';

/** One packed batch: B sequences of T tokens (see data.ts). */
export interface TrainBatch {
  B: number;
  T: number;
  tokens: Int32Array; //     [B*T]
  targets: Int32Array; //    [B*T], -1 = no loss
  seg: Int32Array; //        [B*T] document ids (attention stays inside one)
  positions: Int32Array; //  [B*T]
}

export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
const TARGET_MODULE: Record<LoraTarget, string> = {
  q: 'self_attn.q_proj',
  k: 'self_attn.k_proj',
  v: 'self_attn.v_proj',
  o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj',
  up: 'mlp.up_proj',
  down: 'mlp.down_proj',
};

export interface LoraSpec {
  rank: number;
  alpha: number;
  dropout: number;
  targets: readonly LoraTarget[];
}

export interface LoraAdapter {
  /** [r, in] */
  A: Var;
  /** [out, r] */
  B: Var;
  scale: number;
  dropout: number;
}

/** HF tensor names and shapes of a model, in a fixed order. */
export function paramShapes(cfg: ModelConfig): Map<string, number[]> {
  const { dim: D, nHeads: Hq, nKvHeads: Hkv, headDim: Dh, ffnDim: F, vocabSize: V } = cfg;
  const m = new Map<string, number[]>();
  if (cfg.arch === 'gpt2') {
    // Conv1D weights are stored [in, out]; the output head is tied to wte
    m.set('transformer.wte.weight', [V, D]);
    m.set('transformer.wpe.weight', [cfg.maxPosition, D]);
    for (let l = 0; l < cfg.nLayers; l++) {
      const p = `transformer.h.${l}.`;
      m.set(p + 'ln_1.weight', [D]);
      m.set(p + 'ln_1.bias', [D]);
      m.set(p + 'attn.c_attn.weight', [D, 3 * D]);
      m.set(p + 'attn.c_attn.bias', [3 * D]);
      m.set(p + 'attn.c_proj.weight', [D, D]);
      m.set(p + 'attn.c_proj.bias', [D]);
      m.set(p + 'ln_2.weight', [D]);
      m.set(p + 'ln_2.bias', [D]);
      m.set(p + 'mlp.c_fc.weight', [D, F]);
      m.set(p + 'mlp.c_fc.bias', [F]);
      m.set(p + 'mlp.c_proj.weight', [F, D]);
      m.set(p + 'mlp.c_proj.bias', [D]);
    }
    m.set('transformer.ln_f.weight', [D]);
    m.set('transformer.ln_f.bias', [D]);
    return m;
  }
  m.set('model.embed_tokens.weight', [V, D]);
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + 'input_layernorm.weight', [D]);
    m.set(p + 'self_attn.q_proj.weight', [Hq * Dh, D]);
    m.set(p + 'self_attn.k_proj.weight', [Hkv * Dh, D]);
    m.set(p + 'self_attn.v_proj.weight', [Hkv * Dh, D]);
    if (cfg.arch === 'qwen2') {
      m.set(p + 'self_attn.q_proj.bias', [Hq * Dh]);
      m.set(p + 'self_attn.k_proj.bias', [Hkv * Dh]);
      m.set(p + 'self_attn.v_proj.bias', [Hkv * Dh]);
    }
    m.set(p + 'self_attn.o_proj.weight', [D, Hq * Dh]);
    m.set(p + 'post_attention_layernorm.weight', [D]);
    if (cfg.arch === 'gemma2') {
      m.set(p + 'pre_feedforward_layernorm.weight', [D]);
      m.set(p + 'post_feedforward_layernorm.weight', [D]);
    }
    if (cfg.arch === 'mixtral') {
      m.set(p + 'block_sparse_moe.gate.weight', [cfg.nExperts, D]);
      for (let e = 0; e < cfg.nExperts; e++) {
        const q = `${p}block_sparse_moe.experts.${e}.`;
        m.set(q + 'w1.weight', [F, D]); // gate
        m.set(q + 'w2.weight', [D, F]); // down
        m.set(q + 'w3.weight', [F, D]); // up
      }
      continue;
    }
    m.set(p + 'mlp.gate_proj.weight', [F, D]);
    m.set(p + 'mlp.up_proj.weight', [F, D]);
    m.set(p + 'mlp.down_proj.weight', [D, F]);
  }
  m.set('model.norm.weight', [D]);
  if (!cfg.tieEmbeddings) m.set('lm_head.weight', [V, D]);
  return m;
}

/** Parameters excluded from weight decay: norms and biases (1-D tensors). */
export function decays(name: string, shape: readonly number[]): boolean {
  return shape.length >= 2 && !name.endsWith('.bias');
}

export class TrainModel {
  /** Every f32 weight, by HF name: trainable (requiresGrad) or frozen. */
  readonly params = new Map<string, Var>();
  /** Frozen base weights kept in q8_0 (QLoRA), by HF name; absent from params. */
  readonly quantized = new Map<string, Tensor>();
  /** LoRA adapters by the HF name of the weight they adapt. */
  readonly lora = new Map<string, LoraAdapter>();
  private readonly ropeOpts: RopeOptions | null;
  private dropoutRng: TrainRng | null = null;

  constructor(
    readonly cfg: ModelConfig,
    weights: Map<string, Float32Array>,
    /** The inference backend, used only for q8_0 frozen weights. */
    private be: Backend | null = null,
  ) {
    for (const [name, shape] of paramShapes(cfg)) {
      // old GPT-2 checkpoints name their tensors without the "transformer." prefix
      const w = weights.get(name) ?? (cfg.arch === 'gpt2' ? weights.get(name.replace(/^transformer\./, '')) : undefined);
      if (!w) throw new TrainError(`the model has no tensor ${name}`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (w.length !== n) throw new TrainError(`tensor ${name} has ${w.length} values, expected [${shape}]`);
      this.params.set(name, Var.param(w, shape));
    }
    this.ropeOpts = cfg.rope
      ? { layout: cfg.rope.layout, theta: cfg.rope.theta, rotaryDim: cfg.rope.dim, scaling: cfg.rope.scaling }
      : null;
  }

  /** A freshly initialised model: N(0, std) matrices, output projections scaled by 1/sqrt(2L), unit norms. */
  static init(cfg: ModelConfig, rng: TrainRng, std = 0.02): TrainModel {
    const w = new Map<string, Float32Array>();
    for (const [name, shape] of paramShapes(cfg)) {
      const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
      if (shape.length === 1) {
        if (!name.endsWith('.bias')) a.fill(cfg.arch === 'gemma' || cfg.arch === 'gemma2' ? 0 : 1); // Gemma stores w - 1
      } else {
        const resid = /(o_proj|down_proj|c_proj)\.weight$/.test(name);
        rng.fillNormal(a, resid ? std / Math.sqrt(2 * cfg.nLayers) : std);
      }
      w.set(name, a);
    }
    return new TrainModel(cfg, w);
  }

  /** Trainable parameters by name (LoRA: only the adapters, as PEFT names them). */
  trainable(): Map<string, Var> {
    if (this.lora.size === 0) return this.params;
    const m = new Map<string, Var>();
    for (const [name, a] of this.lora) {
      const base = name.replace(/\.weight$/, '');
      m.set(`base_model.model.${base}.lora_A.weight`, a.A);
      m.set(`base_model.model.${base}.lora_B.weight`, a.B);
    }
    return m;
  }

  /** Number of values in all weights (frozen ones included). */
  get numParams(): number {
    let n = 0;
    for (const shape of paramShapes(this.cfg).values()) n += shape.reduce((a, b) => a * b, 1);
    return n;
  }

  /** The RNG LoRA dropout draws from (the trainer restores its state on resume). */
  setDropoutRng(rng: TrainRng): void {
    this.dropoutRng = rng;
  }

  /**
   * Writes the adapter in PEFT's layout: adapter_config.json + adapter_model.safetensors with
   * tensors base_model.model.<module>.lora_A.weight [r, in] / lora_B.weight [out, r].
   */
  writeAdapter(dir: string, baseModel: string): void {
    if (this.lora.size === 0) throw new Error('writeAdapter: the model has no LoRA adapters');
    mkdirSync(dir, { recursive: true });
    const first = this.lora.values().next().value!;
    const targets = new Set<string>();
    for (const name of this.lora.keys()) targets.add(name.split('.').at(-2)!);
    const rank = first.A.shape[0]!;
    const cfg = {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: baseModel,
      r: rank,
      lora_alpha: first.scale * rank,
      lora_dropout: first.dropout,
      target_modules: [...targets].sort(),
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      modules_to_save: null,
    };
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(cfg, null, 2) + '\n');
    writeSafetensors(
      join(dir, 'adapter_model.safetensors'),
      [...this.trainable()].map(([name, v]) => ({ name, dtype: 'F32' as const, shape: [...v.shape], data: f32Bytes(v.data) })),
      { format: 'pt' },
    );
  }

  /** Number of values in the trainable parameters. */
  get numTrainable(): number {
    let n = 0;
    for (const v of this.trainable().values()) n += v.size;
    return n;
  }

  /**
   * Freezes the base model and adds LoRA adapters on the targeted projections of every layer.
   * quantizeBase: keep the frozen projection weights as q8_0 (needs the inference backend).
   */
  addLora(spec: LoraSpec, rng: TrainRng, quantizeBase: boolean, be?: Backend): void {
    if (!Number.isInteger(spec.rank) || spec.rank < 1) throw new TrainError(`lora rank must be a positive integer, got ${spec.rank}`);
    if (this.cfg.arch === 'gpt2') throw new TrainError('LoRA on GPT-2 (fused Conv1D c_attn) is not supported yet; fine-tune all weights instead');
    for (const t of spec.targets) {
      if (!LORA_TARGETS.includes(t)) throw new TrainError(`lora target "${t}" is not a projection of a ${this.cfg.arch} model (it has ${LORA_TARGETS.join(', ')})`);
    }
    for (const t of spec.targets) {
      if (!this.params.has(`model.layers.0.${TARGET_MODULE[t]}.weight`)) throw new TrainError(`lora target "${t}" (${TARGET_MODULE[t]}) is not a projection of a ${this.cfg.arch} model`);
    }
    if (quantizeBase && !be && !this.be) throw new Error('quantizeBase needs an inference backend');
    const frozen = new Map<string, Var>();
    for (const [name, v] of this.params) frozen.set(name, new Var(v.data, v.shape, false));
    this.params.clear();
    for (const [n, v] of frozen) this.params.set(n, v);
    if (be) this.be = be;
    for (let l = 0; l < this.cfg.nLayers; l++) {
      for (const t of spec.targets) {
        const name = `model.layers.${l}.${TARGET_MODULE[t]}.weight`;
        const w = this.params.get(name)!;
        const [out, inp] = w.shape as [number, number];
        const A = new Float32Array(spec.rank * inp);
        // PEFT: kaiming_uniform_(a=sqrt(5)) on A = U(-1/sqrt(in), 1/sqrt(in)); B = 0
        const bound = 1 / Math.sqrt(inp);
        for (let i = 0; i < A.length; i++) A[i] = (rng.uniform() * 2 - 1) * bound;
        this.lora.set(name, {
          A: Var.param(A, [spec.rank, inp]),
          B: Var.param(new Float32Array(out * spec.rank), [out, spec.rank]),
          scale: spec.alpha / spec.rank,
          dropout: spec.dropout,
        });
      }
    }
    if (quantizeBase) {
      for (const name of this.params.keys()) {
        const w = this.params.get(name)!;
        if (w.shape.length !== 2 || !/\.(q|k|v|o|gate|up|down)_proj\.weight$/.test(name) || w.shape[1]! % 32 !== 0) continue;
        const f32 = new Tensor('f32', w.shape, new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
        this.quantized.set(name, convertTensor(f32, 'q8_0'));
        this.params.delete(name);
      }
    }
    this.dropoutRng = rng;
  }

  /** W x for a projection: f32 or q8_0 frozen base, plus its LoRA adapter if any. */
  private proj(t: Tape, name: string, x: Var, bias: Var | null = null): Var {
    const q = this.quantized.get(name);
    const y = q ? this.quantLinear(t, q, x) : linear(t, x, this.params.get(name)!, bias);
    if (q && bias) throw new Error(`${name}: biases with q8_0 base weights are not supported`);
    const ad = this.lora.get(name);
    if (!ad) return y;
    const xin = ad.dropout > 0 && t.recording ? this.dropout(t, x, ad.dropout) : x;
    const h = linear(t, xin, ad.A); //                                  [n, r]
    const d = linear(t, h, ad.B); //                                    [n, out]
    // out = y + scale * d, in y's buffer (nothing reads y's values later)
    const out = new Var(y.data, y.shape, y.requiresGrad || d.requiresGrad);
    t.k.axpy(ad.scale, d.data, out.data);
    if (out.requiresGrad) {
      t.record(() => {
        t.shareGrad(y, out.grad!);
        t.addGrad(d, (dd) => {
          dd.set(out.grad!);
          t.k.scaleInPlace(dd, ad.scale);
        });
      });
    }
    return out;
  }

  /** y = x . W^T with W frozen in q8_0: forward on the inference matmul, dx through a dequantized copy. */
  private quantLinear(t: Tape, w: Tensor, x: Var): Var {
    const n = x.shape[0]!, K = x.shape[1]!, N = w.shape[0]!;
    const y = t.act([n, N], x.requiresGrad);
    const xt = new Tensor('f32', [n, K], new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength));
    const yt = new Tensor('f32', [n, N], new Uint8Array(y.data.buffer, y.data.byteOffset, y.data.byteLength));
    this.be!.matmul(xt, w, yt);
    if (x.requiresGrad) {
      t.record(() => {
        // dequantized straight into a reused arena buffer (no per-step allocation)
        const wf = t.arena.get(N * K);
        native().convert(w.data, DTYPE_CODE.q8_0, wf, DTYPE_CODE.f32, N * K);
        const beta = x.gradInit ? 1 : 0;
        t.k.gemm(false, false, n, K, N, 1, y.grad!, N, wf, K, beta, t.gradOut(x), K);
      });
    }
    return y;
  }

  /** Inverted dropout with a saved mask. */
  private dropout(t: Tape, x: Var, p: number): Var {
    const y = t.act(x.shape, x.requiresGrad);
    const mask = t.arena.get(x.size);
    const rng = this.dropoutRng!;
    const keep = 1 / (1 - p);
    for (let i = 0; i < x.size; i++) {
      mask[i] = rng.uniform() < p ? 0 : keep;
      y.data[i] = x.data[i]! * mask[i]!;
    }
    if (x.requiresGrad) {
      t.record(() => t.addGrad(x, (dx) => { const dy = y.grad!; for (let i = 0; i < dx.length; i++) dx[i] = dy[i]! * mask[i]!; }));
    }
    return y;
  }

  private p(name: string): Var {
    return this.params.get(name)!;
  }

  /** Logits [B*T, V] for every token of the batch (recorded on the tape). */
  forward(t: Tape, b: TrainBatch): Var {
    const cfg = this.cfg;
    if (cfg.arch === 'gpt2') return this.gpt2Forward(t, b);
    const { nHeads: Hq, nKvHeads: Hkv, headDim: Dh, normEps: eps } = cfg;
    const gemma = cfg.arch === 'gemma' || cfg.arch === 'gemma2';
    const gemma2 = cfg.arch === 'gemma2';
    const act = cfg.act === 'silu' ? 'silu' : cfg.act === 'gelu_erf' ? 'erf' : 'tanh';
    let x = embedding(t, this.p('model.embed_tokens.weight'), b.tokens, cfg.embedScale); // [n, D]
    for (let l = 0; l < cfg.nLayers; l++) {
      const pre = `model.layers.${l}.`;
      let h = rmsNorm(t, x, this.p(pre + 'input_layernorm.weight'), eps, gemma);
      let q = this.proj(t, pre + 'self_attn.q_proj.weight', h, this.params.get(pre + 'self_attn.q_proj.bias') ?? null); // [n, Hq*Dh]
      let k = this.proj(t, pre + 'self_attn.k_proj.weight', h, this.params.get(pre + 'self_attn.k_proj.bias') ?? null); // [n, Hkv*Dh]
      const v = this.proj(t, pre + 'self_attn.v_proj.weight', h, this.params.get(pre + 'self_attn.v_proj.bias') ?? null);
      if (this.ropeOpts) {
        q = rope(t, q, Hq, Dh, b.positions, this.ropeOpts);
        k = rope(t, k, Hkv, Dh, b.positions, this.ropeOpts);
      }
      const window = cfg.slidingWindow > 0 && (cfg.slidingLayers === 'all' || l % 2 === 0) ? cfg.slidingWindow : 0;
      const opts: AttnTrainOptions = { scale: cfg.attnScale, softCap: cfg.attnSoftCap, window };
      const a = attention(t, q, k, v, b.seg, b.B, b.T, Hq, Hkv, Dh, opts); //    [n, Hq*Dh]
      let o = this.proj(t, pre + 'self_attn.o_proj.weight', a); //                [n, D]
      // Gemma 2 norms the attention output; the others norm the FFN input with this weight
      if (gemma2) o = rmsNorm(t, o, this.p(pre + 'post_attention_layernorm.weight'), eps, true);
      x = addInto(t, x, o);
      h = rmsNorm(t, x, this.p(pre + (gemma2 ? 'pre_feedforward_layernorm.weight' : 'post_attention_layernorm.weight')), eps, gemma);
      let f: Var; //                                                              [n, D]
      if (cfg.arch === 'mixtral') f = this.moe(t, h, pre + 'block_sparse_moe.');
      else {
        const g = this.proj(t, pre + 'mlp.gate_proj.weight', h); //               [n, F]
        const u = this.proj(t, pre + 'mlp.up_proj.weight', h);
        f = this.proj(t, pre + 'mlp.down_proj.weight', gated(t, g, u, act));
      }
      if (gemma2) f = rmsNorm(t, f, this.p(pre + 'post_feedforward_layernorm.weight'), eps, true);
      x = addInto(t, x, f);
    }
    const xf = rmsNorm(t, x, this.p('model.norm.weight'), eps, gemma);
    const head = cfg.tieEmbeddings ? this.p('model.embed_tokens.weight') : this.p('lm_head.weight');
    return linear(t, xf, head); //                                                [n, V]
  }

  /**
   * Mixtral's sparse FFN (as src/models/mixtral.ts): softmax router, top-k experts per token with
   * their probabilities renormalised, each expert a SwiGLU MLP over the tokens routed to it. The
   * choice of experts is a constant of the backward; the gradient reaches the router through the
   * renormalised weights and the softmax.
   */
  private moe(t: Tape, h: Var, pre: string): Var {
    const E = this.cfg.nExperts, K = this.cfg.nExpertsPerToken, D = this.cfg.dim;
    const n = h.shape[0]!;
    const rl = linear(t, h, this.p(pre + 'gate.weight')); //                      [n, E]
    const probs = new Float64Array(n * E);
    const chosen = new Int32Array(n * K);
    const weight = new Float64Array(n * K);
    const sums = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      const row = rl.data.subarray(r * E, (r + 1) * E);
      let mx = -Infinity, z = 0;
      for (const v of row) mx = Math.max(mx, v);
      for (let e = 0; e < E; e++) z += (probs[r * E + e] = Math.exp(row[e]! - mx));
      for (let e = 0; e < E; e++) probs[r * E + e]! /= z;
      const order = Array.from({ length: E }, (_, i) => i).sort((a, b) => probs[r * E + b]! - probs[r * E + a]! || a - b);
      let s = 0;
      for (let k = 0; k < K; k++) s += probs[r * E + order[k]!]!;
      sums[r] = s;
      for (let k = 0; k < K; k++) {
        chosen[r * K + k] = order[k]!;
        weight[r * K + k] = probs[r * E + order[k]!]! / s;
      }
    }
    // each expert on the rows routed to it
    const outs: { picks: number[]; y: Var }[] = [];
    const byExpert: ({ picks: number[]; y: Var } | undefined)[] = new Array(E);
    for (let e = 0; e < E; e++) {
      const picks: number[] = [];
      for (let i = 0; i < n * K; i++) if (chosen[i] === e) picks.push(i);
      if (picks.length === 0) continue;
      const xin = gatherRows(t, h, picks.map((i) => Math.floor(i / K))); //            [m, D]
      const q = `${pre}experts.${e}.`;
      const g = this.proj(t, q + 'w1.weight', xin), u = this.proj(t, q + 'w3.weight', xin);
      const o = { picks, y: this.proj(t, q + 'w2.weight', gated(t, g, u, 'silu')) };
      outs.push(o);
      byExpert[e] = o;
    }
    const out = t.act([n, D], h.requiresGrad || outs.some((o) => o.y.requiresGrad) || rl.requiresGrad);
    out.data.fill(0);
    const slot = new Int32Array(n * K); // row of (token, k) in its expert's output
    for (const o of outs) o.picks.forEach((i, j) => (slot[i] = j));
    for (let r = 0; r < n; r++) {
      const dst = out.data.subarray(r * D, (r + 1) * D);
      for (let k = 0; k < K; k++) {
        const o = byExpert[chosen[r * K + k]!]!;
        t.k.axpy(weight[r * K + k]!, o.y.data.subarray(slot[r * K + k]! * D, (slot[r * K + k]! + 1) * D), dst);
      }
    }
    if (out.requiresGrad) {
      t.record(() => {
        const dout = out.grad!;
        const dw = new Float64Array(n * K);
        for (const o of outs) {
          t.addGrad(o.y, (dy) => {
            o.picks.forEach((i, j) => {
              const r = Math.floor(i / K);
              const src = dout.subarray(r * D, (r + 1) * D), yr = o.y.data.subarray(j * D, (j + 1) * D), d = dy.subarray(j * D, (j + 1) * D);
              let dot = 0;
              for (let c = 0; c < D; c++) {
                d[c] = weight[i]! * src[c]!;
                dot += src[c]! * yr[c]!;
              }
              dw[i] = dot;
            });
          });
        }
        // w_k = p_k / S over the chosen experts; p = softmax(router logits)
        t.addGrad(rl, (drl) => {
          for (let r = 0; r < n; r++) {
            const dp = new Float64Array(E);
            let wdw = 0;
            for (let k = 0; k < K; k++) wdw += weight[r * K + k]! * dw[r * K + k]!;
            for (let k = 0; k < K; k++) dp[chosen[r * K + k]!] = (dw[r * K + k]! - wdw) / sums[r]!;
            let pdp = 0;
            for (let e = 0; e < E; e++) pdp += probs[r * E + e]! * dp[e]!;
            for (let e = 0; e < E; e++) drl[r * E + e] = probs[r * E + e]! * (dp[e]! - pdp);
          }
        });
      });
    }
    return out;
  }

  /** GPT-2: learned positions, LayerNorm with bias, fused Conv1D q/k/v, plain GELU MLP. */
  private gpt2Forward(t: Tape, b: TrainBatch): Var {
    const cfg = this.cfg;
    const { dim: D, nHeads: H, headDim: Dh, normEps: eps } = cfg;
    const approx = cfg.act === 'gelu_erf' ? 'erf' : 'tanh';
    for (let i = 0; i < b.positions.length; i++) {
      if (b.positions[i]! >= cfg.maxPosition) throw new TrainError(`position ${b.positions[i]} is past GPT-2's ${cfg.maxPosition} learned positions (lower seqLen)`);
    }
    const wte = this.p('transformer.wte.weight');
    let x = add(t, embedding(t, wte, b.tokens), embedding(t, this.p('transformer.wpe.weight'), b.positions)); // [n, D]
    for (let l = 0; l < cfg.nLayers; l++) {
      const pre = `transformer.h.${l}.`;
      const p = (s: string) => this.p(pre + s);
      let h = layerNorm(t, x, p('ln_1.weight'), p('ln_1.bias'), eps);
      const [q, k, v] = splitCols(t, conv1d(t, h, p('attn.c_attn.weight'), p('attn.c_attn.bias')), [D, D, D]); // [n, D] each
      const a = attention(t, q!, k!, v!, b.seg, b.B, b.T, H, H, Dh, { scale: cfg.attnScale, softCap: 0, window: 0 });
      x = addInto(t, x, conv1d(t, a, p('attn.c_proj.weight'), p('attn.c_proj.bias')));
      h = layerNorm(t, x, p('ln_2.weight'), p('ln_2.bias'), eps);
      const u = gelu(t, conv1d(t, h, p('mlp.c_fc.weight'), p('mlp.c_fc.bias')), approx); //      [n, F]
      x = addInto(t, x, conv1d(t, u, p('mlp.c_proj.weight'), p('mlp.c_proj.bias')));
    }
    const xf = layerNorm(t, x, this.p('transformer.ln_f.weight'), this.p('transformer.ln_f.bias'), eps);
    return linear(t, xf, wte); //                                                   [n, V]
  }

  /**
   * Forward + cross-entropy; the backward closures are recorded (call t.backward()).
   * Returns the summed loss and the number of tokens it covers; gradients are scaled by
   * gradScale (1 / tokens of the whole optimiser step).
   */
  loss(t: Tape, b: TrainBatch, gradScale: number): { sum: number; count: number } {
    let count = 0;
    for (let i = 0; i < b.targets.length; i++) if (b.targets[i]! >= 0) count++;
    const logits = this.forward(t, b);
    const sum = crossEntropy(t, logits, b.targets, this.cfg.finalSoftCap, gradScale);
    return { sum, count };
  }

  /** f32 weights by HF name (LoRA merged into copies when merge is set). */
  weights(merge = false): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const name of paramShapes(this.cfg).keys()) {
      const v = this.params.get(name);
      let w: Float32Array;
      if (v) w = v.data;
      else {
        const d = convertTensor(this.quantized.get(name)!, 'f32');
        w = new Float32Array(d.data.buffer, d.data.byteOffset, d.data.byteLength / 4);
      }
      const ad = merge ? this.lora.get(name) : undefined;
      if (ad) {
        w = new Float32Array(w);
        addLowRank(w, { A: ad.A.data, B: ad.B.data, r: ad.A.shape[0]!, inDim: ad.A.shape[1]!, outDim: ad.B.shape[0]! }, ad.scale);
      }
      out.set(name, w);
    }
    return out;
  }
}

/** The bytes of a Float32Array (a view, no copy). */
export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** f32 weights of an HF checkpoint directory by name. */
export function readHfWeights(dir: string): Map<string, Float32Array> {
  const ck = openSafetensorsCheckpoint(dir);
  const out = new Map<string, Float32Array>();
  for (const name of ck.names()) {
    const t = ck.tensor(name);
    out.set(name, new Float32Array(t.toF32()));
  }
  return out;
}


/** Rows rows[j] of x, as a new [m, D] activation; the backward adds them back. */
function gatherRows(t: Tape, x: Var, rows: readonly number[]): Var {
  const D = x.shape[1]!;
  const y = t.act([rows.length, D], x.requiresGrad);
  rows.forEach((r, j) => y.data.set(x.data.subarray(r * D, (r + 1) * D), j * D));
  if (y.requiresGrad) {
    t.record(() =>
      t.addGrad(x, (dx) => {
        dx.fill(0);
        rows.forEach((r, j) => t.k.axpy(1, y.grad!.subarray(j * D, (j + 1) * D), dx.subarray(r * D, (r + 1) * D)));
      }),
    );
  }
  return y;
}

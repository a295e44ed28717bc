// The trainable model: every family of the zoo (Llama 2/3, Mistral, Mixtral, Qwen2, Qwen3,
// Qwen3-MoE, Gemma, Gemma 2, Gemma 3, Phi-3, GPT-2) on the autograd tape. The forward pass is the family's one definition
// (src/models/llama.ts, gemma.ts, gpt2.ts) run on TapeOps (tape-ops.ts); this file holds the
// weights, LoRA and checkpoints. Weights stay under their Hugging Face names and in HF layout
// (Gemma norms stored as w - 1, GPT-2 Conv1D [in, out]), so a checkpoint is a loadable HF model
// and the inference loader reads it as is; the handles given to the forward pass carry the two
// layout differences (formats/layout.ts hfLayoutChange).
//
// LoRA (PEFT's formulation): a targeted projection becomes W x + (alpha / r) B A dropout(x)
// with A [r, in] (Kaiming-uniform) and B [out, r] (zeros). The base weights are frozen and may
// be q8_0 (QLoRA): their forward runs on the inference matmul, their input gradient on a
// dequantized copy.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../formats/model-config.ts';
import { openSafetensorsCheckpoint, writeSafetensors } from '../formats/safetensors.ts';
import type { Backend } from '../tensor/backend.ts';
import { Tensor } from '../tensor/tensor.ts';
import { convertInto, convertTensor } from '../tensor/convert.ts';
import { addLowRank } from '../models/lora.ts';
import { ggufToHfName, hfLayoutChange, isGemmaArch } from '../formats/layout.ts';
import { FORWARD } from '../models/families.ts';
import type { Weights } from '../models/model.ts';
import { buildWeights } from '../models/weights.ts';
import { type Tape, Var, crossEntropy, linear } from '../tensor/autograd.ts';
import { TapeOps, type TrainBatch, type TrainWeight } from './tape-ops.ts';
import { TrainRng } from './rng.ts';
import { TrainError } from './errors.ts';

export type { TrainBatch } from './tape-ops.ts';

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
    if (cfg.arch === 'phi3') {
      m.set(p + 'self_attn.qkv_proj.weight', [(Hq + 2 * Hkv) * Dh, D]);
      m.set(p + 'self_attn.o_proj.weight', [D, Hq * Dh]);
      m.set(p + 'post_attention_layernorm.weight', [D]);
      m.set(p + 'mlp.gate_up_proj.weight', [2 * F, D]);
      m.set(p + 'mlp.down_proj.weight', [D, F]);
      continue;
    }
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
    if (cfg.qkNorm) {
      m.set(p + 'self_attn.q_norm.weight', [Dh]);
      m.set(p + 'self_attn.k_norm.weight', [Dh]);
    }
    if (cfg.arch === 'gemma2' || cfg.arch === 'gemma3') {
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
    if (cfg.arch === 'qwen3moe') {
      m.set(p + 'mlp.gate.weight', [cfg.nExperts, D]);
      for (let e = 0; e < cfg.nExperts; e++) {
        const q = `${p}mlp.experts.${e}.`;
        m.set(q + 'gate_proj.weight', [F, D]);
        m.set(q + 'up_proj.weight', [F, D]);
        m.set(q + 'down_proj.weight', [D, F]);
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
  private dropoutRng: TrainRng | null = null;
  /** The weight handles the forward pass reads (rebuilt when LoRA freezes or quantizes weights). */
  private handles: Weights<TrainWeight> | null = null;

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
  }

  /** A freshly initialised model: N(0, std) matrices, output projections scaled by 1/sqrt(2L), unit norms. */
  static init(cfg: ModelConfig, rng: TrainRng, std = 0.02): TrainModel {
    const w = new Map<string, Float32Array>();
    for (const [name, shape] of paramShapes(cfg)) {
      const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
      if (shape.length === 1) {
        if (!name.endsWith('.bias')) a.fill(isGemmaArch(cfg.arch) ? 0 : 1); // Gemma stores w - 1
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
    this.handles = null;
  }

  /** W x for a projection: f32 or q8_0 frozen base, plus its LoRA adapter if any. */
  private proj(t: Tape, x: Var, w: TrainWeight, bias: Var | null): Var {
    const q = w.q;
    if (q && bias) throw new Error(`${w.name}: biases with q8_0 base weights are not supported`);
    const y = q ? this.quantLinear(t, q, x) : linear(t, x, w.v!, bias);
    const ad = this.lora.get(w.name);
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
        convertInto(w, 'f32', wf);
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

  /** The forward pass's view of the weights: the family's Weights struct over TrainWeight handles. */
  private weightHandles(): Weights<TrainWeight> {
    if (this.handles) return this.handles;
    const arch = this.cfg.arch;
    const byName = new Map<string, TrainWeight>();
    const hfName = (name: string, expert?: number): string | null => {
      const hf = ggufToHfName(arch, name, expert);
      return hf !== null && (this.params.has(hf) || this.quantized.has(hf)) ? hf : null;
    };
    const shapes = paramShapes(this.cfg);
    this.handles = buildWeights<TrainWeight>(this.cfg, {
      file: 'the training model',
      has: (name) => hfName(name) !== null || hfName(name, 0) !== null,
      get: (name, expert) => {
        const hf = hfName(name, expert);
        if (hf === null) return undefined;
        let w = byName.get(hf);
        if (!w) {
          const shape = shapes.get(hf)!;
          const change = hfLayoutChange(arch, name, shape.length);
          w = {
            name: hf,
            v: this.params.get(hf),
            q: this.quantized.get(hf),
            shape: change.transpose ? [...shape].reverse() : shape,
            inOut: change.transpose,
            plusOne: change.gemmaNorm,
          };
          byName.set(hf, w);
        }
        return w;
      },
      shapeOf: (w) => w.shape,
      // Phi-3's fused qkv_proj / gate_up_proj: row pieces sharing the fused weight's values and gradient
      rowSlice: (w, start, n) => {
        const cols = w.shape[1]!;
        let v: Var | undefined;
        if (w.v) {
          v = new Var(w.v.data.subarray(start * cols, (start + n) * cols), [n, cols], w.v.requiresGrad);
          if (w.v.grad) {
            v.grad = w.v.grad.subarray(start * cols, (start + n) * cols);
            v.gradInit = w.v.gradInit;
          }
        }
        return { name: `${w.name}[${start}:${start + n}]`, v, q: w.q?.narrow(start, n), shape: [n, cols] };
      },
    });
    return this.handles;
  }

  /** Logits [B*T, V] for every token of the batch (recorded on the tape), by the family's forward pass. */
  forward(t: Tape, b: TrainBatch): Var {
    const ops = new TapeOps(t, this.cfg, b, (tape, x, w, bias) => this.proj(tape, x, w, bias));
    return FORWARD[this.cfg.arch](ops, this.weightHandles());
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
    // the forward pass applied any final soft-cap already
    const sum = crossEntropy(t, logits, b.targets, 0, gradScale);
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

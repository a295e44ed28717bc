// Every layout conversion between checkpoint formats lives here, each with a test
// (test/layout.test.ts):
//   - tensor names: Hugging Face <-> GGUF (llama.cpp's names are Slipstream's internal names);
//   - RoPE q/k row permutation: HF rotates pairs (i, i + d/2), GGUF "llama" rotates (2i, 2i+1);
//   - GPT-2's Conv1D weights stored [in, out] -> [out, in];
//   - Gemma's RMSNorm weight w applied as (1 + w): GGUF stores 1 + w, HF stores w;
//   - Llama 3.1 RoPE scaling <-> GGUF's rope_freqs tensor (Phi-3's LongRoPE factors travel as the
//     rope_factors_short / rope_factors_long tensors, written by convert.ts);
//   - Phi-3's fused qkv_proj / gate_up_proj stay fused in GGUF (attn_qkv, ffn_up) and are split
//     into row views at load (src/models/weights.ts);
//   - the vision-language Gemma 3's language-model prefixes;
//   - GGUF's reversed dims (ne0 innermost) <-> row-major shapes.
// Gemma's sqrt(d_model) embedding scale is not a layout change: it is part of the forward pass
// in every format (ModelConfig.embedScale).

import type { Arch, RopeScalingConfig } from './model-config.ts';

export interface MappedName {
  /** llama.cpp / internal name, e.g. "blk.3.attn_q.weight". */
  name: string;
  /** Mixtral: the expert this HF tensor belongs to (GGUF stacks experts in one 3-D tensor). */
  expert?: number;
}

const LLAMA_LAYER: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
  'block_sparse_moe.gate.weight': 'ffn_gate_inp.weight',
};

// Qwen 3 and Gemma 3 normalise each query and key head.
const QK_NORM: Record<string, string> = {
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
};

// Qwen3-MoE: the router is mlp.gate, the experts mlp.experts.N.{gate,up,down}_proj.
const { 'block_sparse_moe.gate.weight': _mixtralRouter, ...DENSE_LAYER } = LLAMA_LAYER;
const QWEN3MOE_LAYER: Record<string, string> = { ...DENSE_LAYER, ...QK_NORM, 'mlp.gate.weight': 'ffn_gate_inp.weight' };
const QWEN3MOE_EXPERT: Record<string, string> = { gate_proj: 'ffn_gate_exps.weight', down_proj: 'ffn_down_exps.weight', up_proj: 'ffn_up_exps.weight' };

// Gemma 2 has four norms per layer; its "post_attention_layernorm" is not the FFN's pre-norm.
const GEMMA2_LAYER: Record<string, string> = {
  ...LLAMA_LAYER,
  'post_attention_layernorm.weight': 'post_attention_norm.weight',
  'pre_feedforward_layernorm.weight': 'ffn_norm.weight',
  'post_feedforward_layernorm.weight': 'post_ffw_norm.weight',
};

// Phi-3 fuses q/k/v into qkv_proj and gate/up into gate_up_proj; GGUF keeps both fused
// (attn_qkv, and ffn_up of 2 * ffn rows: the gate's, then the up projection's).
const { 'self_attn.q_proj.weight': _q, 'self_attn.k_proj.weight': _k, 'self_attn.v_proj.weight': _v, 'mlp.gate_proj.weight': _g, 'mlp.up_proj.weight': _u, ...PHI3_REST } = DENSE_LAYER;
const PHI3_LAYER: Record<string, string> = { ...PHI3_REST, 'self_attn.qkv_proj.weight': 'attn_qkv.weight', 'mlp.gate_up_proj.weight': 'ffn_up.weight' };

const GEMMA3_LAYER: Record<string, string> = { ...GEMMA2_LAYER, ...QK_NORM };

/** The per-layer HF -> GGUF name table of an architecture (experts aside). */
function layerNames(arch: Arch): Record<string, string> {
  if (arch === 'gemma2') return GEMMA2_LAYER;
  if (arch === 'gemma3') return GEMMA3_LAYER;
  if (arch === 'qwen3') return { ...LLAMA_LAYER, ...QK_NORM };
  if (arch === 'qwen3moe') return QWEN3MOE_LAYER;
  if (arch === 'phi3') return PHI3_LAYER;
  return LLAMA_LAYER;
}

const MIXTRAL_EXPERT: Record<string, string> = { w1: 'ffn_gate_exps.weight', w2: 'ffn_down_exps.weight', w3: 'ffn_up_exps.weight' };

const GPT2_LAYER: Record<string, string> = {
  'ln_1.weight': 'attn_norm.weight',
  'ln_1.bias': 'attn_norm.bias',
  'attn.c_attn.weight': 'attn_qkv.weight',
  'attn.c_attn.bias': 'attn_qkv.bias',
  'attn.c_proj.weight': 'attn_output.weight',
  'attn.c_proj.bias': 'attn_output.bias',
  'ln_2.weight': 'ffn_norm.weight',
  'ln_2.bias': 'ffn_norm.bias',
  'mlp.c_fc.weight': 'ffn_up.weight',
  'mlp.c_fc.bias': 'ffn_up.bias',
  'mlp.c_proj.weight': 'ffn_down.weight',
  'mlp.c_proj.bias': 'ffn_down.bias',
};

/**
 * Hugging Face tensor name -> internal (GGUF) name. Returns null for tensors the model does not
 * use (rotary inv_freq buffers, GPT-2's causal-mask buffers, a tied lm_head); throws for a name
 * it does not know, so a checkpoint with unexpected tensors is never half-loaded silently.
 */
export function hfToGgufName(arch: Arch, hf: string): MappedName | null {
  if (arch === 'gpt2') {
    const n = hf.replace(/^transformer\./, '');
    if (n === 'wte.weight') return { name: 'token_embd.weight' };
    if (n === 'wpe.weight') return { name: 'position_embd.weight' };
    if (n === 'ln_f.weight') return { name: 'output_norm.weight' };
    if (n === 'ln_f.bias') return { name: 'output_norm.bias' };
    if (n === 'lm_head.weight') return null; // tied to wte
    const m = /^h\.(\d+)\.(.+)$/.exec(n);
    if (m) {
      if (m[2] === 'attn.bias' || m[2] === 'attn.masked_bias') return null;
      const t = GPT2_LAYER[m[2]!];
      if (t) return { name: `blk.${m[1]}.${t}` };
    }
    throw new Error(`unexpected tensor "${hf}" for ${arch}`);
  }
  if (arch === 'gemma3') {
    // The vision-language Gemma 3 checkpoints: the language model under language_model.model.*
    // (transformers 4) or model.language_model.* (transformers 5); the vision tower is not loaded.
    if (/^(model\.)?(vision_tower|multi_modal_projector)\./.test(hf)) return null;
    if (hf === 'language_model.lm_head.weight') return { name: 'output.weight' };
    const m = /^(?:language_model\.model|model\.language_model)\.(.+)$/.exec(hf);
    if (m) hf = `model.${m[1]}`;
  }
  if (hf === 'model.embed_tokens.weight') return { name: 'token_embd.weight' };
  if (hf === 'model.norm.weight') return { name: 'output_norm.weight' };
  if (hf === 'lm_head.weight') return { name: 'output.weight' };
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  if (m) {
    const rest = m[2]!;
    if (rest.endsWith('rotary_emb.inv_freq')) return null;
    const e = /^block_sparse_moe\.experts\.(\d+)\.(w[123])\.weight$/.exec(rest);
    if (e && arch === 'mixtral') return { name: `blk.${m[1]}.${MIXTRAL_EXPERT[e[2]!]}`, expert: Number(e[1]) };
    const q = /^mlp\.experts\.(\d+)\.(gate_proj|up_proj|down_proj)\.weight$/.exec(rest);
    if (q && arch === 'qwen3moe') return { name: `blk.${m[1]}.${QWEN3MOE_EXPERT[q[2]!]}`, expert: Number(q[1]) };
    const t = layerNames(arch)[rest];
    if (t) return { name: `blk.${m[1]}.${t}` };
  }
  throw new Error(`unexpected tensor "${hf}" for ${arch}`);
}

/** Gemma, Gemma 2 and Gemma 3 store RMSNorm weights as w and apply 1 + w (their q/k norms too). */
export function isGemmaArch(arch: Arch): boolean {
  return arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3';
}

/** Internal (GGUF) name -> Hugging Face name, for exporting GGUF to safetensors. */
export function ggufToHfName(arch: Arch, name: string, expert?: number): string | null {
  if (arch === 'gpt2') {
    if (name === 'token_embd.weight') return 'transformer.wte.weight';
    if (name === 'position_embd.weight') return 'transformer.wpe.weight';
    if (name === 'output_norm.weight') return 'transformer.ln_f.weight';
    if (name === 'output_norm.bias') return 'transformer.ln_f.bias';
    if (name === 'output.weight') return null;
    const m = /^blk\.(\d+)\.(.+)$/.exec(name);
    const hf = m && Object.entries(GPT2_LAYER).find(([, g]) => g === m[2]);
    if (m && hf) return `transformer.h.${m[1]}.${hf[0]}`;
    throw new Error(`no Hugging Face name for "${name}" (${arch})`);
  }
  if (name === 'token_embd.weight') return 'model.embed_tokens.weight';
  if (name === 'output_norm.weight') return 'model.norm.weight';
  if (name === 'output.weight') return 'lm_head.weight';
  if (name === 'rope_freqs.weight' || name === 'rope_factors_short.weight' || name === 'rope_factors_long.weight') return null;
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const qx = Object.entries(QWEN3MOE_EXPERT).find(([, g]) => g === m[2]);
    if (qx && expert !== undefined && arch === 'qwen3moe') return `model.layers.${m[1]}.mlp.experts.${expert}.${qx[0]}.weight`;
    const ex = Object.entries(MIXTRAL_EXPERT).find(([, g]) => g === m[2]);
    if (ex && expert !== undefined) return `model.layers.${m[1]}.block_sparse_moe.experts.${expert}.${ex[0]}.weight`;
    const hf = Object.entries(layerNames(arch)).find(([, g]) => g === m[2]);
    if (hf) return `model.layers.${m[1]}.${hf[0]}`;
  }
  throw new Error(`no Hugging Face name for "${name}" (${arch})`);
}

/**
 * The layout changes between a Hugging Face tensor and the internal tensor `name` (internal
 * name) of `ndim` dims: GPT-2's Conv1D weights are transposed, Gemma's norm weights become 1 + w.
 * (RoPE needs no change: Slipstream runs HF checkpoints in their own half-split layout.)
 */
export function hfLayoutChange(arch: Arch, name: string, ndim: number): { transpose: boolean; gemmaNorm: boolean } {
  return {
    transpose: arch === 'gpt2' && ndim === 2 && /attn_qkv|attn_output|ffn_up|ffn_down/.test(name),
    gemmaNorm: isGemmaArch(arch) && name.endsWith('norm.weight'),
  };
}

// ---------------------------------------------------------------------------------------------
// Row permutation for RoPE. Within each head of `headDim` rows, HF's row j*(hd/2) + i (j = 0, 1)
// becomes GGUF's row 2i + j. Rows are moved whole, so this works for any dtype (a q8_0 row is a
// run of whole blocks).

function permuteRows(src: Uint8Array, nRows: number, rowBytes: number, nHeads: number, toInterleaved: boolean): Uint8Array {
  const hd = nRows / nHeads;
  if (!Number.isInteger(hd) || hd % 2 !== 0) throw new Error(`rope permutation: ${nRows} rows do not split into ${nHeads} heads of even size`);
  const out = new Uint8Array(nRows * rowBytes);
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const halfRow = h * hd + j * half + i; //   HF (half-split) row
        const interRow = h * hd + 2 * i + j; //     GGUF (interleaved) row
        const [from, to] = toInterleaved ? [halfRow, interRow] : [interRow, halfRow];
        out.set(src.subarray(from * rowBytes, (from + 1) * rowBytes), to * rowBytes);
      }
    }
  }
  return out;
}

/** HF q/k projection rows (or bias) -> GGUF llama order. */
export function permuteForInterleavedRope(src: Uint8Array, nRows: number, rowBytes: number, nHeads: number): Uint8Array {
  return permuteRows(src, nRows, rowBytes, nHeads, true);
}

/** GGUF llama q/k rows -> HF order (inverse of permuteForInterleavedRope). */
export function unpermuteFromInterleavedRope(src: Uint8Array, nRows: number, rowBytes: number, nHeads: number): Uint8Array {
  return permuteRows(src, nRows, rowBytes, nHeads, false);
}

/** Transpose a [rows, cols] matrix of `elemBytes`-sized elements (GPT-2 Conv1D [in, out] -> [out, in]). */
export function transposeBytes(src: Uint8Array, rows: number, cols: number, elemBytes: number): Uint8Array {
  const out = new Uint8Array(rows * cols * elemBytes);
  if (elemBytes === 4 && src.byteOffset % 4 === 0) {
    const s = new Uint32Array(src.buffer, src.byteOffset, rows * cols);
    const o = new Uint32Array(out.buffer);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = s[r * cols + c]!;
    return out;
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const a = (r * cols + c) * elemBytes, b = (c * rows + r) * elemBytes;
      for (let k = 0; k < elemBytes; k++) out[b + k] = src[a + k]!;
    }
  }
  return out;
}

/** Gemma's norm weights: HF stores w and multiplies by (1 + w); GGUF and Slipstream store 1 + w. */
export function gemmaNormToGguf(w: Float32Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = 1 + w[i]!;
  return out;
}

export function gemmaNormFromGguf(w: Float32Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = w[i]! - 1;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Llama 3.1 RoPE scaling. llama.cpp carries it as a tensor rope_freqs[rotaryDim / 2] of divisors
// of each inverse frequency; HF carries four parameters. Divisor for frequency f (wavelength
// 2*pi/f): 1 above the high-frequency cutoff, `factor` below the low-frequency cutoff, and a
// smooth blend in between, which is exactly HF's "llama3" rule.

export function llama3RopeFreqs(s: Extract<RopeScalingConfig, { type: 'llama3' }>, theta: number, rotaryDim: number): Float32Array {
  const lowWavelen = s.originalMaxPosition / s.lowFreqFactor;
  const highWavelen = s.originalMaxPosition / s.highFreqFactor;
  const out = new Float32Array(rotaryDim / 2);
  for (let i = 0; i < rotaryDim / 2; i++) {
    const freq = Math.pow(theta, (-2 * i) / rotaryDim);
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPosition / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/**
 * GGUF rope_freqs back to HF's llama3 parameters. GGUF keeps only the divisors, so we recover the
 * parameters by trying the values Meta's released models use and checking that they reproduce
 * every divisor; anything else is reported as unsupported rather than approximated.
 */
export function ropeFreqsToScaling(freqs: Float32Array, theta: number, rotaryDim: number): RopeScalingConfig {
  let factor = 1;
  for (const f of freqs) factor = Math.max(factor, f);
  if (factor === 1) throw new Error('rope_freqs: every divisor is 1 (no scaling); unexpected for Llama 3.1');
  for (const orig of [8192, 4096, 2048, 16384, 32768]) {
    for (const [low, high] of [[1, 4], [1, 2], [1, 8], [2, 4]] as const) {
      const s = { type: 'llama3' as const, factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPosition: orig };
      const ref = llama3RopeFreqs(s, theta, rotaryDim);
      if (ref.every((v, i) => Math.abs(v - freqs[i]!) <= 1e-4 * v)) return s;
    }
  }
  throw new Error('rope_freqs: these RoPE frequency divisors do not match Llama 3.1 scaling with any known parameters; unsupported');
}

/** GGUF dims (ne0 = innermost first) <-> row-major shape. */
export function ggufDimsToShape(dims: readonly number[]): number[] {
  return [...dims].reverse();
}
export function shapeToGgufDims(shape: readonly number[]): number[] {
  return [...shape].reverse();
}

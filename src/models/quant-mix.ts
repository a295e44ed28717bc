// Which dtype each tensor of a GGUF export gets: llama.cpp's per-tensor rules for its "mostly"
// file types (llama_tensor_get_type in llama-quant.cpp), for the types Slipstream writes.
//
// q4_k_m (LLAMA_FTYPE_MOSTLY_Q4_K_M): weight matrices Q4_K, except
//   - output.weight (or token_embd.weight when the model has no separate output, tied
//     embeddings): Q6_K
//   - attn_v.weight and ffn_down on the layers use_more_bits picks: Q6_K; use_more_bits(i, n) is
//     i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer division): the first and last eighth
//     of the layers and every third layer between
//   - attn_v.weight and attn_k.weight of 8-expert models: Q8_0
// Not followed: llama.cpp's Falcon-specific ffn_down choice and its 70B attn_v bump to Q5_K
// (it knows the model's size class; we do not).
//   - fused attn_qkv.weight, and attn_output.weight of 8-expert models: Q5_K
// q5_k_m (LLAMA_FTYPE_MOSTLY_Q5_K_M): the same with Q5_K for Q4_K, except fused attn_qkv Q6_K
//   (and attn_output of 8-expert models stays Q5_K)
// q6_k (LLAMA_FTYPE_MOSTLY_Q6_K): every weight matrix Q6_K.
// 1-D tensors and the MoE router stay f32, as in every export.
//
// q2_k, q3_k_s, q3_k_m, q3_k_l, iq4_xs (LLAMA_FTYPE_MOSTLY_Q2_K, Q3_K_S/M/L, IQ4_XS): weight
//   matrices in Q2_K, Q3_K or IQ4_XS, output.weight (or the tied token_embd) Q6_K, and
//     attn_v:      q2_k Q4_K with 4+ query heads per KV head, else Q3_K; q3_k_m Q5_K on the first
//                  two layers, else Q4_K; q3_k_l Q5_K; iq4_xs Q5_K with 4+ query heads per KV head
//     ffn_down:    q2_k Q3_K; q3_k_m Q5_K on the first sixteenth of the layers, else Q4_K; q3_k_l
//                  Q5_K; iq4_xs Q5_K on the first eighth (llama.cpp without an importance matrix)
//     attn_output: q2_k Q3_K, q3_k_m Q4_K, q3_k_l Q5_K; with 8 experts Q5_K for q2_k, q3_k_s,
//                  q3_k_m and iq4_xs
//     attn_qkv:    q3_k_m and q3_k_l Q4_K
//     attn_v / attn_k with 8 experts: Q8_0
//   and a row length that is not a multiple of 256 takes llama.cpp's stand-in exactly: Q2_K, Q3_K
//   and IQ4_XS -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0 (the LM head: Q8_0), f16 when
//   not a multiple of 32 either.
//
// Where llama.cpp picks a type Slipstream cannot write, a wider one stands in (more bits, never
// fewer), and the file stays loadable by llama.cpp: a row length that is not a multiple of 256
// (llama.cpp: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0) becomes q8_0, or f16 when not a multiple
// of 32 either.

import type { DType } from '../tensor/dtype.ts';

export type GgufOutType = 'f32' | 'f16' | 'q8_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'iq4_nl' | 'q2_k' | 'q3_k_s' | 'q3_k_m' | 'q3_k_l' | 'iq4_xs';
export const GGUF_OUT_TYPES: readonly GgufOutType[] = ['f32', 'f16', 'q8_0', 'q4_k_m', 'q5_k_m', 'q6_k', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'iq4_nl', 'q2_k', 'q3_k_s', 'q3_k_m', 'q3_k_l', 'iq4_xs'];

/** llama.cpp's general.file_type values (LLAMA_FTYPE_*). */
export const FILE_TYPE: Record<GgufOutType, number> = { f32: 0, f16: 1, q8_0: 7, q4_k_m: 15, q5_k_m: 17, q6_k: 18, q4_0: 2, q4_1: 3, q5_0: 8, q5_1: 9, iq4_nl: 25, q2_k: 10, q3_k_s: 11, q3_k_m: 12, q3_k_l: 13, iq4_xs: 30 };

/** llama.cpp's use_more_bits: layers whose attn_v / ffn_down get Q6_K in Q4_K_M and Q5_K_M. */
export function useMoreBits(layer: number, nLayers: number): boolean {
  const e = Math.floor(nLayers / 8);
  return layer < e || layer >= Math.floor((7 * nLayers) / 8) || (layer - e) % 3 === 2;
}

export interface MixModel {
  nLayers: number;
  /** True when output.weight is absent and token_embd is also the LM head. */
  tiedEmbeddings: boolean;
  nExperts?: number;
  /** Query heads per KV head (IQ4_NL's attn_v rule). */
  nGqa?: number;
}

/** The dtype tensor `name` (GGUF name, row-major `shape`) is written in for file type `type`. */
export function ggufTensorDType(name: string, shape: readonly number[], type: GgufOutType, m: MixModel): DType {
  if (shape.length === 1 || name.endsWith('ffn_gate_inp.weight')) return 'f32';
  const cols = shape[shape.length - 1]!;
  const fallback = (): DType => (cols % 32 === 0 ? 'q8_0' : 'f16');
  if (type === 'f32' || type === 'f16') return type;
  if (type === 'q8_0') return fallback();
  if (type === 'q4_0' || type === 'q4_1' || type === 'q5_0' || type === 'q5_1' || type === 'iq4_nl') {
    // llama.cpp: the LM head (or the tied embedding) in Q6_K (q8_0 when its rows are not whole
    // super-blocks), attn_k / attn_v Q8_0 with 8 experts; IQ4_NL: attn_v Q5_K with 4+ query heads
    // per KV head, attn_output Q5_K with 8 experts; every other matrix in the file's type
    if (name === 'output.weight' || (m.tiedEmbeddings && name === 'token_embd.weight')) return cols % 256 === 0 ? 'q6_k' : fallback();
    if (cols % 32 !== 0) return 'f16';
    if ((name.endsWith('attn_v.weight') || name.endsWith('attn_k.weight')) && m.nExperts === 8) return 'q8_0';
    if (type === 'iq4_nl' && cols % 256 === 0) {
      if (name.endsWith('attn_v.weight') && (m.nGqa ?? 1) >= 4) return 'q5_k';
      if (name.endsWith('attn_output.weight') && m.nExperts === 8) return 'q5_k';
    }
    return type;
  }
  if (type === 'q2_k' || type === 'q3_k_s' || type === 'q3_k_m' || type === 'q3_k_l' || type === 'iq4_xs') return lowBitType(name, cols, type, m);
  if (cols % 256 !== 0) return fallback();
  if (type === 'q6_k') return 'q6_k';
  // q4_k_m, q5_k_m
  const base: DType = type === 'q4_k_m' ? 'q4_k' : 'q5_k';
  if (name === 'output.weight' || (m.tiedEmbeddings && name === 'token_embd.weight')) return 'q6_k';
  const layer = /^blk\.(\d+)\./.exec(name);
  const i = layer ? Number(layer[1]) : -1;
  if (name.endsWith('attn_v.weight')) {
    if (m.nExperts === 8) return 'q8_0';
    return useMoreBits(i, m.nLayers) ? 'q6_k' : base;
  }
  if (name.endsWith('attn_k.weight') && m.nExperts === 8) return 'q8_0';
  if (/ffn_down(_exps)?\.weight$/.test(name)) return useMoreBits(i, m.nLayers) ? 'q6_k' : base;
  if (name.endsWith('attn_qkv.weight')) return type === 'q4_k_m' ? 'q5_k' : 'q6_k';
  if (name.endsWith('attn_output.weight') && m.nExperts === 8) return 'q5_k';
  return base;
}

type LowBitType = 'q2_k' | 'q3_k_s' | 'q3_k_m' | 'q3_k_l' | 'iq4_xs';

/** llama_tensor_get_type for the Q2_K, Q3_K_S/M/L and IQ4_XS file types (no importance matrix, not Falcon). */
function lowBitType(name: string, cols: number, type: LowBitType, m: MixModel): DType {
  if (name === 'output.weight' || (m.tiedEmbeddings && name === 'token_embd.weight')) return cols % 256 === 0 ? 'q6_k' : cols % 32 === 0 ? 'q8_0' : 'f16';
  const layer = /^blk\.(\d+)\./.exec(name);
  const i = layer ? Number(layer[1]) : -1;
  const gqa4 = (m.nGqa ?? 1) >= 4, moe8 = m.nExperts === 8;
  let t: DType = type === 'q2_k' ? 'q2_k' : type === 'iq4_xs' ? 'iq4_xs' : 'q3_k';
  if (name.endsWith('attn_v.weight')) {
    if (type === 'q2_k') t = gqa4 ? 'q4_k' : 'q3_k';
    else if (type === 'q3_k_m') t = i < 2 ? 'q5_k' : 'q4_k';
    else if (type === 'q3_k_l') t = 'q5_k';
    else if (type === 'iq4_xs' && gqa4) t = 'q5_k';
    if (moe8) t = 'q8_0';
  } else if (name.endsWith('attn_k.weight')) {
    if (moe8) t = 'q8_0';
  } else if (/ffn_down(_exps)?\.weight$/.test(name)) {
    if (type === 'q2_k') t = 'q3_k';
    else if (type === 'q3_k_m') t = i < Math.floor(m.nLayers / 16) ? 'q5_k' : 'q4_k';
    else if (type === 'q3_k_l') t = 'q5_k';
    else if (type === 'iq4_xs' && i < Math.floor(m.nLayers / 8)) t = 'q5_k';
  } else if (name.endsWith('attn_output.weight')) {
    if (moe8) {
      if (type !== 'q3_k_l') t = 'q5_k';
    } else if (type === 'q2_k') t = 'q3_k';
    else if (type === 'q3_k_m') t = 'q4_k';
    else if (type === 'q3_k_l') t = 'q5_k';
  } else if (name.endsWith('attn_qkv.weight')) {
    if (type === 'q3_k_m' || type === 'q3_k_l') t = 'q4_k';
  }
  if (cols % 256 === 0) return t;
  if (cols % 32 !== 0) return 'f16';
  // llama.cpp's stand-ins for rows that are not whole super-blocks (Q6_K does not occur here)
  return t === 'q8_0' ? 'q8_0' : t === 'q4_k' ? 'q5_0' : t === 'q5_k' ? 'q5_1' : 'iq4_nl';
}

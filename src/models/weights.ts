// Assembling a family's Weights from a source of named tensors (a safetensors checkpoint or a
// GGUF file; see load.ts). Names are llama.cpp's; the source has already applied the layout
// conversions of src/formats/layout.ts.

import { FormatError } from '../formats/errors.ts';
import type { ModelConfig } from '../formats/model-config.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { Expert, LayerWeights, Weights } from './model.ts';

/** Named weights (internal names) of handle type W: Tensors, or the trainer's TrainWeights. */
export interface WeightSource<W = Tensor> {
  /** Where the tensors come from, for error messages. */
  readonly file: string;
  has(name: string): boolean;
  /** The tensor (Mixtral experts: the slice of one expert), or undefined. */
  get(name: string, expert?: number): W | undefined;
  /** Its shape in the internal layout (default: the Tensor's shape). */
  shapeOf?(w: W): readonly number[];
  /** Rows [start, start + n) of a matrix, sharing its memory (default: Tensor.narrow). */
  rowSlice?(w: W, start: number, n: number): W;
}

/**
 * A fused matrix's row pieces (Phi-3's qkv_proj and gate_up_proj), as views: the forward runs
 * them as separate projections of one input (Ops.linears: one job over x, so no slower than the
 * fused matmul), and training's gradients land in the fused tensor's memory.
 */
function splitRows<W>(src: WeightSource<W>, w: W, rows: readonly number[]): W[] {
  let start = 0;
  return rows.map((n) => {
    const piece = src.rowSlice ? src.rowSlice(w, start, n) : ((w as unknown as Tensor).narrow(start, n) as unknown as W);
    start += n;
    return piece;
  });
}

function req<W>(src: WeightSource<W>, name: string, shape: number[], expert?: number): W {
  const t = src.get(name, expert);
  const what = expert === undefined ? name : `${name} (expert ${expert})`;
  if (!t) throw new FormatError(src.file, `missing tensor ${what}`);
  const got = src.shapeOf ? src.shapeOf(t) : (t as unknown as Tensor).shape;
  const same = got.length === shape.length && got.every((d, i) => d === shape[i]);
  if (!same) throw new FormatError(src.file, `tensor ${what} has shape [${got.join(', ')}], the config implies [${shape.join(', ')}]`);
  return t;
}

function opt<W>(src: WeightSource<W>, name: string, shape: number[]): W | undefined {
  return src.has(name) ? req(src, name, shape) : undefined;
}

export function buildWeights<W = Tensor>(cfg: ModelConfig, src: WeightSource<W>): Weights<W> {
  const { dim: D, nHeads: Hq, nKvHeads: Hkv, headDim: Dh, ffnDim: F, vocabSize: V } = cfg;
  const tokEmbd = req(src, 'token_embd.weight', [V, D]);
  const layers: LayerWeights<W>[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `blk.${l}.`;
    const L: LayerWeights<W> = {
      attnNorm: req(src, p + 'attn_norm.weight', [D]),
      wo: req(src, p + 'attn_output.weight', [D, Hq * Dh]),
      ffnNorm: req(src, p + 'ffn_norm.weight', [D]),
    };
    if (cfg.arch === 'gpt2') {
      L.attnNormB = req(src, p + 'attn_norm.bias', [D]);
      L.wqkv = req(src, p + 'attn_qkv.weight', [3 * D, D]);
      L.bqkv = req(src, p + 'attn_qkv.bias', [3 * D]);
      L.bo = req(src, p + 'attn_output.bias', [D]);
      L.ffnNormB = req(src, p + 'ffn_norm.bias', [D]);
      L.wUp = req(src, p + 'ffn_up.weight', [F, D]);
      L.bUp = req(src, p + 'ffn_up.bias', [F]);
      L.wDown = req(src, p + 'ffn_down.weight', [D, F]);
      L.bDown = req(src, p + 'ffn_down.bias', [D]);
    } else if (cfg.arch === 'phi3') {
      const qkv = req(src, p + 'attn_qkv.weight', [(Hq + 2 * Hkv) * Dh, D]);
      [L.wq, L.wk, L.wv] = splitRows(src, qkv, [Hq * Dh, Hkv * Dh, Hkv * Dh]);
      const gateUp = req(src, p + 'ffn_up.weight', [2 * F, D]); //  gate rows, then up rows
      [L.wGate, L.wUp] = splitRows(src, gateUp, [F, F]);
      L.wDown = req(src, p + 'ffn_down.weight', [D, F]);
    } else {
      L.wq = req(src, p + 'attn_q.weight', [Hq * Dh, D]);
      L.wk = req(src, p + 'attn_k.weight', [Hkv * Dh, D]);
      L.wv = req(src, p + 'attn_v.weight', [Hkv * Dh, D]);
      L.bq = opt(src, p + 'attn_q.bias', [Hq * Dh]);
      L.bk = opt(src, p + 'attn_k.bias', [Hkv * Dh]);
      L.bv = opt(src, p + 'attn_v.bias', [Hkv * Dh]);
      if (cfg.arch === 'qwen2' && !(L.bq && L.bk && L.bv)) throw new FormatError(src.file, `Qwen2 layer ${l} lacks its q/k/v biases`);
      if (cfg.qkNorm) {
        L.qNorm = req(src, p + 'attn_q_norm.weight', [Dh]);
        L.kNorm = req(src, p + 'attn_k_norm.weight', [Dh]);
      }
      if (cfg.arch === 'gemma2' || cfg.arch === 'gemma3') {
        L.postAttnNorm = req(src, p + 'post_attention_norm.weight', [D]);
        L.postFfnNorm = req(src, p + 'post_ffw_norm.weight', [D]);
      }
      if (cfg.nExperts > 0) {
        L.router = req(src, p + 'ffn_gate_inp.weight', [cfg.nExperts, D]);
        L.experts = [];
        for (let e = 0; e < cfg.nExperts; e++) {
          const ex: Expert<W> = {
            gate: req(src, p + 'ffn_gate_exps.weight', [F, D], e),
            up: req(src, p + 'ffn_up_exps.weight', [F, D], e),
            down: req(src, p + 'ffn_down_exps.weight', [D, F], e),
          };
          L.experts.push(ex);
        }
      } else {
        L.wGate = req(src, p + 'ffn_gate.weight', [F, D]);
        L.wUp = req(src, p + 'ffn_up.weight', [F, D]);
        L.wDown = req(src, p + 'ffn_down.weight', [D, F]);
      }
    }
    layers.push(L);
  }
  const output = cfg.tieEmbeddings ? tokEmbd : req(src, 'output.weight', [V, D]);
  return {
    tokEmbd,
    posEmbd: cfg.arch === 'gpt2' ? req(src, 'position_embd.weight', [cfg.maxPosition, D]) : undefined,
    layers,
    outNorm: req(src, 'output_norm.weight', [D]),
    outNormB: cfg.arch === 'gpt2' ? req(src, 'output_norm.bias', [D]) : undefined,
    output,
  };
}

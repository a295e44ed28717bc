// The Backend contract. Every op writes into a caller-owned `out` tensor (no allocation on
// the hot path). Activations are f32; weights may be f32, f16, bf16, q8_0, the k-quants q4_k,
// q5_k and q6_k (GGUF's Q4_K, Q5_K, Q6_K, run as stored) or GGUF's simple types q4_0, q4_1, q5_0,
// q5_1 and iq4_nl (also run as stored).
//
// Two implementations: `ref` (plain TypeScript, float64 accumulation, the oracle) and `cpu`
// (the native C++ core). Both run the same argument checks (check.ts), so a bad call raises
// the same error naming the op and the shapes on either backend.
//
// Row invariance: every op computes each row of its output from that row's inputs alone,
// in a fixed order, so a row's result never depends on how many other rows are in the call
// (the determinism guarantee the engine builds on).

import type { Tensor } from './tensor.ts';

export type GeluApprox = 'tanh' | 'erf';

/**
 * Which pool of the paged cache a tensor is. Both hold [n_blocks, n_kv_heads, ...] blocks of
 * block_size tokens; within a (block, kv head) the value pool is token-major
 * [block_size, head_dim] and the key pool dimension-major [head_dim, block_size], so that one
 * dimension of a block's keys is one contiguous vector (scores are computed many keys per
 * vector with no transposes; the transpose happens once, when a key is written).
 */
export type PoolRole = 'k' | 'v';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      /** Llama 3.1 frequency-dependent scaling (HF rope_type "llama3"). */
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPosition: number;
    }
  | {
      /**
       * Phi-3's LongRoPE (HF rope_type "longrope"): inverse frequency i divided by shortFactor[i]
       * at positions below originalMaxPosition and by longFactor[i] from there on (one list per
       * rotated pair), cos and sin multiplied by attnFactor.
       */
      type: 'longrope';
      shortFactor: readonly number[];
      longFactor: readonly number[];
      originalMaxPosition: number;
      attnFactor: number;
    };

export interface RopeOptions {
  /** 'interleaved': pairs (2i, 2i+1) (Meta / GGUF llama); 'half': pairs (i, i + d/2) (HF / NeoX). */
  layout: 'interleaved' | 'half';
  /** Base of the inverse frequencies theta^(-2i/d). */
  theta: number;
  /** Number of leading dims of each head that rotate (default: the whole head). */
  rotaryDim?: number;
  scaling?: RopeScaling;
}

export interface AttentionOptions {
  /** Multiplier on q.k (usually 1/sqrt(head_dim)). */
  scale: number;
  /** Gemma-2 style logit soft-cap: s -> cap * tanh(s / cap). 0 or absent: none. */
  softCap?: number;
  /** Sliding window: a query at position p sees keys j with p - window < j <= p. 0 or absent: none. */
  window?: number;
}

/**
 * 2-D convolution geometry (NHWC activations, see Backend.conv2d): `pad` zero rows/columns
 * before the image (top, left), `padEnd` after it (bottom, right; default `pad`: diffusers' VAE
 * downsampler pads only after, pad 0 and padEnd 1).
 */
export interface Conv2dOptions {
  stride: number;
  pad: number;
  padEnd?: number;
}

/**
 * Paged KV cache pools, one per layer for K and one for V, dtype f32, f16 or q8_0 (see PoolRole):
 *   K [n_blocks, n_kv_heads, head_dim, block_size], V [n_blocks, n_kv_heads, block_size, head_dim];
 * q8_0 pools store every token's head_dim row as q8_0 blocks, keys token-major as well:
 *   K and V [n_blocks, n_kv_heads, block_size, head_dim] (head_dim a multiple of 32).
 * A sequence's token at position p lives in block blockTable[floor(p / block_size)],
 * at offset p % block_size. A "slot" is block * block_size + offset.
 */
export interface Backend {
  readonly name: string;

  /**
   * out[M, N] = x[M, K] . w[N, K]^T. x and out may be row-strided views; w is contiguous.
   * With q8_0 weights, each row of x is first quantized to q8_0 blocks (as llama.cpp does),
   * so every block's dot product is an exact integer times d_x * d_w. With k-quant weights x is
   * quantized to Q8_K (per 256: f32 scale, int8 values, sums of 16), llama.cpp's scheme likewise;
   * with q4_0 / q5_0 / iq4_nl weights to q8_0 blocks, with q4_1 / q5_1 to Q8_1 blocks (q8_0 plus
   * f16(d * sum q) per block).
   */
  matmul(x: Tensor, w: Tensor, out: Tensor): void;

  /**
   * Optional: readies weight matrix w for repeated products now rather than at its first matmul
   * (the cpu backend prepacks mapped q4_k matrices on AVX2 and AVX-512); true if it did anything. Results
   * are the same bits either way.
   */
  prepareWeight?(w: Tensor): boolean;

  /**
   * outs[i] = x . ws[i]^T for several weights sharing x (q/k/v, gate/up): the same results as
   * separate matmul calls, bit for bit; the cpu backend quantizes x once and runs all rows as
   * one job.
   */
  matmulMulti(x: Tensor, ws: readonly Tensor[], outs: readonly Tensor[]): void;

  /** out = a + b; b is [M, N] or a row [N] broadcast over rows. out may alias a. */
  add(a: Tensor, b: Tensor, out: Tensor): void;
  /** out = a * b; b is [M, N] or a row [N] broadcast over rows. out may alias a. */
  mul(a: Tensor, b: Tensor, out: Tensor): void;
  /** out = a * s. */
  scale(a: Tensor, s: number, out: Tensor): void;

  /** out = x / sqrt(mean(x^2) + eps) * w, per row. */
  rmsNorm(x: Tensor, w: Tensor, eps: number, out: Tensor): void;
  /** out = (x - mean) / sqrt(var + eps) * w (+ b), per row. */
  layerNorm(x: Tensor, w: Tensor, b: Tensor | null, eps: number, out: Tensor): void;

  /** Rotary embedding in place on x[T, H, Dh] (a view is fine) at positions[T]. */
  rope(x: Tensor, positions: Int32Array, opts: RopeOptions): void;

  /** Row-wise softmax. */
  softmax(x: Tensor, out: Tensor): void;
  silu(x: Tensor, out: Tensor): void;
  gelu(x: Tensor, out: Tensor, approx: GeluApprox): void;
  /** out = silu(gate) * up. */
  swiglu(gate: Tensor, up: Tensor, out: Tensor): void;
  /** out = gelu(gate) * up. */
  geglu(gate: Tensor, up: Tensor, out: Tensor, approx: GeluApprox): void;

  /** out[T, D] = table[ids[t], :] decoded to f32; table [V, D] of any dtype. */
  embedding(table: Tensor, ids: Int32Array, out: Tensor): void;

  /**
   * Write x[T, Hkv, Dh] (a view is fine) at slots[T] (slot = block * block_size + offset) into
   * a pool of the paged cache: role 'k' writes a key pool [n_blocks, Hkv, Dh, block_size]
   * (dimension-major within a block), 'v' a value pool [n_blocks, Hkv, block_size, Dh]. A q8_0
   * pool (either role, [n_blocks, Hkv, block_size, Dh]) gets each row quantized as ggml's
   * quantize_row_q8_0 (d = amax / 127 stored as f16, q = round(x / d), ties away from zero).
   */
  kvWrite(x: Tensor, cache: Tensor, slots: Int32Array, role: PoolRole): void;

  /**
   * Causal attention for one sequence's prefill chunk. q[T, Hq, Dh] holds positions
   * startPos .. startPos+T-1; their K/V (and all earlier positions) are already in the cache,
   * reached through blockTable. Hq must be a multiple of Hkv (grouped-query attention).
   * out[T, Hq, Dh].
   */
  attentionPrefill(
    q: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    blockTable: Int32Array,
    startPos: number,
    out: Tensor,
    opts: AttentionOptions,
  ): void;

  /**
   * One new token for each of B sequences: q[B, Hq, Dh]; sequence b has seqLens[b] tokens in
   * the cache (the new one included, at position seqLens[b] - 1) and its block table at
   * blockTables[b * maxBlocks ...]. out[B, Hq, Dh].
   */
  attentionDecode(
    q: Tensor,
    kCache: Tensor,
    vCache: Tensor,
    blockTables: Int32Array,
    maxBlocks: number,
    seqLens: Int32Array,
    out: Tensor,
    opts: AttentionOptions,
  ): void;

  /** Index of the largest value of each row (the first one on ties). */
  argmax(x: Tensor): Int32Array;

  /** out[j, :] = x[rows[j], :] (out has rows.length rows). */
  gatherRows(x: Tensor, rows: Int32Array, out: Tensor): void;
  /** out[rows[j], :] = x[j, :]; the other rows of out are left as they are. */
  scatterRows(x: Tensor, rows: Int32Array, out: Tensor): void;
  /** Logit soft-capping (Gemma 2): out = cap * tanh(x / cap). out may alias x. */
  softCap(x: Tensor, cap: number, out: Tensor): void;

  /**
   * Mixture-of-experts routing per row of logits[T, E]: p = softmax(row), the k largest p (ties:
   * the lower expert first) with their probabilities renormalised to sum to 1. ids[t * k + j] is
   * the j-th chosen expert of row t and weights[t, j] its weight.
   */
  topkRoute(logits: Tensor, k: number, ids: Int32Array, weights: Tensor): void;
  /**
   * out[t, :] = sum over j < K of w[t, j] * x[t * K + j, :], added in j order (so a row's result
   * does not depend on the other rows). x [T * K, D], w [T, K], out [T, D].
   */
  combineRows(x: Tensor, w: Tensor, out: Tensor): void;

  // ---- image ops (the diffusion networks) ---------------------------------------------------
  //
  // Images are NHWC: [B, H, W, C] f32, contiguous. Channels last because the networks mix
  // channels far more than pixels: a 1x1 convolution, the attention projections and every
  // linear layer are then plain matmuls over [B * H * W, C] rows with no transposes, the
  // transformer blocks read the image as tokens [B, H * W, C] as it lies, a channel concat is
  // two column-strided copies, and a 3x3 convolution's im2col copies whole runs of kw * C
  // contiguous floats. Convolution weights are [C_out, kh, kw, C_in] (PyTorch's
  // [C_out, C_in, kh, kw] permuted once at load, src/diffusion/load.ts).

  /**
   * out[B, OH, OW, Co] = conv(x[B, H, W, Ci], w[Co, kh, kw, Ci]) (+ b[Co]), zero padding, with
   * OH = floor((H + pad + padEnd - kh) / stride) + 1 (likewise OW). w is f32, f16 or bf16
   * (f32 accumulation); b is f32.
   */
  conv2d(x: Tensor, w: Tensor, b: Tensor | null, out: Tensor, opts: Conv2dOptions): void;

  /**
   * GroupNorm of x[B, ..., C] (contiguous; the middle dims are the pixels): the C channels in
   * `groups` runs of C / groups, each normalised over its channels and all pixels of one batch
   * item (population variance), times w[c] plus b[c], then SiLU when `silu`. out may alias x.
   */
  groupNorm(x: Tensor, w: Tensor, b: Tensor, groups: number, eps: number, silu: boolean, out: Tensor): void;

  /** Nearest-neighbour 2x upsampling: out[B, 2H, 2W, C] from x[B, H, W, C]. */
  upsample2x(x: Tensor, out: Tensor): void;

  /**
   * Non-causal attention: out[b, h] = softmax(scale * q[b, h] . k[b, h]^T) . v[b, h] for
   * q[B, H, Tq, D], k and v [B, H, Tk, D] and out [B, H, Tq, D]: views with a contiguous last
   * dimension (a projection's [B, T, H * D] rows seen as heads). Self- and cross-attention;
   * `causal` (CLIP's text transformer): query t sees keys j <= t + Tk - Tq.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, out: Tensor, scale: number, causal?: boolean): void;
}

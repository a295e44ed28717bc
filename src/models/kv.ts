// The paged KV cache's storage: one K and one V pool per layer (f32, f16 or q8_0),
//   K [n_blocks, n_kv_heads, head_dim, block_size]   (dimension-major within a block)
//   V [n_blocks, n_kv_heads, block_size, head_dim]
// (see PoolRole in src/tensor/backend.ts for why keys are stored transposed). q8_0 pools hold
// each token's head_dim row as q8_0 blocks (32 int8 + an f16 scale: 34 bytes per 32 values,
// 0.53x of f16), keys token-major too: K and V both [n_blocks, n_kv_heads, block_size, head_dim];
// the head dim must be a multiple of 32.
// The model reads and writes it through block tables and slots; which blocks belong to which
// sequence is the engine's business (src/engine/), not the model's.

import { bytesFor } from '../tensor/dtype.ts';
import { residentZeros } from '../tensor/native.ts';
import type { Tensor } from '../tensor/tensor.ts';
import type { ModelConfig } from '../formats/model-config.ts';

export type KvDType = 'f32' | 'f16' | 'q8_0';

export const KV_DTYPES: readonly KvDType[] = ['f32', 'f16', 'q8_0'];

/** Why `dtype` cannot hold this model's KV cache (q8_0 needs a head dim that is a multiple of 32), or null. */
export function kvDtypeProblem(cfg: Pick<ModelConfig, 'headDim'>, dtype: KvDType): string | null {
  return dtype === 'q8_0' && cfg.headDim % 32 !== 0 ? `--kv-dtype q8_0 needs a head dim that is a multiple of 32; this model's is ${cfg.headDim} (use f16)` : null;
}

/** A --kv-dtype flag's value, or a problem naming the choices. */
export function isKvDtype(v: unknown): v is KvDType {
  return typeof v === 'string' && (KV_DTYPES as readonly string[]).includes(v);
}

export class KvPool {
  readonly k: Tensor[];
  readonly v: Tensor[];
  readonly nBlocks: number;
  readonly blockSize: number;
  readonly dtype: KvDType;

  /** populate: faulted in now, or 'background' (see residentZeros). */
  constructor(cfg: ModelConfig, nBlocks: number, blockSize = 16, dtype: KvDType = 'f32', populate: boolean | 'background' = true) {
    if (!Number.isInteger(nBlocks) || nBlocks <= 0) throw new Error(`KvPool: nBlocks must be a positive integer, got ${nBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new Error(`KvPool: blockSize must be a positive integer, got ${blockSize}`);
    this.nBlocks = nBlocks;
    this.blockSize = blockSize;
    if (dtype === 'q8_0' && cfg.headDim % 32 !== 0) throw new Error(`KvPool: a q8_0 KV cache needs a head dim that is a multiple of 32; this model's is ${cfg.headDim} (use --kv-dtype f16)`);
    this.dtype = dtype;
    // every layer's pools in one block of memory: page-aligned, on huge pages, faulted in up front
    const vShape = [nBlocks, cfg.nKvHeads, blockSize, cfg.headDim];
    const kShape = dtype === 'q8_0' ? vShape : [nBlocks, cfg.nKvHeads, cfg.headDim, blockSize];
    const pools = residentZeros(Array.from({ length: 2 * cfg.nLayers }, (_, i) => (i % 2 ? vShape : kShape)), dtype, populate);
    this.k = pools.filter((_, i) => i % 2 === 0);
    this.v = pools.filter((_, i) => i % 2 === 1);
  }

  /** KV bytes per token for the whole model: 2 (K and V) * layers * kv heads * head dim * dtype size. */
  static bytesPerToken(cfg: ModelConfig, dtype: KvDType = 'f32'): number {
    return 2 * cfg.nLayers * bytesFor(dtype, cfg.nKvHeads * cfg.headDim);
  }

  get bytes(): number {
    return this.nBlocks * this.blockSize * (this.k.length ? KvPool.bytesPerTokenOf(this) : 0);
  }

  private static bytesPerTokenOf(p: KvPool): number {
    const [, hkv, , hd] = p.v[0]!.shape as [number, number, number, number];
    return 2 * p.k.length * bytesFor(p.dtype, hkv * hd);
  }
}

// Single-sequence generation (what `slipstream generate` and the generation benchmark run):
// prefill the prompt in chunks, then decode one token at a time, gpt-fast style: small pure
// steps over a KV cache whose blocks all belong to this one sequence. The serving engine runs the
// same Model.forward over many sequences at once.

import { KvPool, type KvDType } from '../models/kv.ts';
import type { Model } from '../models/model.ts';
import { makeBatch } from './batch.ts';
import { Rng, sample, type SamplingParams } from './sampler.ts';

export interface SequenceOptions {
  /** Tokens the cache must hold (prompt + generated). */
  maxContext: number;
  blockSize?: number;
  kvDtype?: KvDType;
  /** Prompt tokens per forward step (default 256: big enough for GEMM efficiency, small scratch). */
  prefillChunk?: number;
}

export class Sequence {
  readonly kv: KvPool;
  readonly table: Int32Array;
  readonly maxContext: number;
  private readonly chunk: number;
  /** Tokens in the cache. */
  pos = 0;

  constructor(
    readonly model: Model,
    opts: SequenceOptions,
  ) {
    const bs = opts.blockSize ?? 16;
    const nBlocks = Math.ceil(opts.maxContext / bs);
    // faulted in now, as llama.cpp clears its cache when a context is made; a pool of over
    // 512 MiB (a long --max-tokens) in the background, so a generation that stops early has
    // not waited for all of it
    const bytes = nBlocks * bs * KvPool.bytesPerToken(model.cfg, opts.kvDtype ?? 'f32');
    this.kv = new KvPool(model.cfg, nBlocks, bs, opts.kvDtype ?? 'f32', bytes <= 512 * 1024 * 1024 ? true : 'background');
    this.table = Int32Array.from({ length: nBlocks }, (_, i) => i);
    this.maxContext = nBlocks * bs;
    this.chunk = opts.prefillChunk ?? 256;
  }

  private step(tokens: Int32Array): Float32Array {
    const n = tokens.length;
    if (this.pos + n > this.maxContext) throw new Error(`context full: ${this.pos} + ${n} tokens exceed ${this.maxContext}`);
    const batch = makeBatch([{ tokens, startPos: this.pos, blockTable: this.table }], this.kv.blockSize);
    const logits = this.model.forward(batch, this.kv);
    this.pos += n;
    return logits.f32().subarray(0, this.model.cfg.vocabSize);
  }

  /** Runs the prompt through the model; returns the logits after its last token. */
  prefill(prompt: ArrayLike<number>): Float32Array {
    if (prompt.length === 0) throw new Error('prefill: empty prompt');
    let logits!: Float32Array;
    for (let i = 0; i < prompt.length; i += this.chunk) {
      logits = this.step(Int32Array.from(Array.prototype.slice.call(prompt, i, i + this.chunk) as number[]));
    }
    return logits;
  }

  /** Feeds one token; returns the logits for the next. */
  decode(token: number): Float32Array {
    return this.step(Int32Array.of(token));
  }
}

export interface GenerateOptions {
  maxTokens: number;
  sampling: SamplingParams;
  /** Stop at any of these ids (unless ignoreEos). */
  eosIds: number[];
  ignoreEos?: boolean;
  /** Called with each new token; return false to stop. */
  onToken?: (id: number) => boolean | void;
}

export interface GenerateResult {
  tokens: number[];
  promptTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
  finishReason: 'stop' | 'length';
}

/** Prompt in, tokens out (streamed through onToken), with the timings the CLI reports. */
export function generate(seq: Sequence, prompt: number[], o: GenerateOptions): GenerateResult {
  const rng = new Rng(o.sampling.seed);
  const t0 = performance.now();
  let logits = seq.prefill(prompt);
  const t1 = performance.now();
  const out: number[] = [];
  let finish: GenerateResult['finishReason'] = 'length';
  const room = seq.maxContext - seq.pos;
  const limit = Math.min(o.maxTokens, room + 1);
  while (out.length < limit) {
    const id = sample(logits, o.sampling, rng);
    out.push(id);
    if (!o.ignoreEos && o.eosIds.includes(id)) {
      finish = 'stop';
      break;
    }
    if (o.onToken?.(id) === false) {
      finish = 'stop';
      break;
    }
    if (out.length >= limit) break;
    logits = seq.decode(id);
  }
  const t2 = performance.now();
  return { tokens: out, promptTokens: prompt.length, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000, finishReason: finish };
}

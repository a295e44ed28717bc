// Single-request generation.
//
// generate() is what `slipstream generate` runs: one request through the serving Engine (same
// scheduler, sampling, penalties, stop strings and detokenizer as `serve`), with a KV pool sized
// for that one request (prompt + max tokens) and its text streamed as it comes.
//
// Sequence is the same generation without the engine, gpt-fast style: prefill a prompt in chunks,
// then decode one token at a time, each a Model.forward over a cache whose blocks all belong to
// this one sequence.
// The generation benchmark (bench/generate-one.ts, bench/profile.ts) and the model tests use it
// to time and check the model alone, without the engine's scheduling and sampling around it.

import type { Tokenizer } from '../formats/tokenizer.ts';
import { KvPool, type KvDType } from '../models/kv.ts';
import type { Model } from '../models/model.ts';
import type { FinishReason, SamplingOptions } from './api.ts';
import { makeBatch } from './batch.ts';
import { Engine, type StepModel } from './engine.ts';

// A KV pool up to this size is faulted in before the first step (as llama.cpp clears its cache
// when a context is made); a larger one (a long --max-tokens) by a background thread, so a
// generation that stops early has not waited for all of it.
const EAGER_KV_BYTES = 512 * 1024 * 1024;

export interface SequenceOptions {
  /** Tokens the cache must hold (prompt + generated). */
  maxContext: number;
  blockSize?: number;
  /** Prompt tokens per forward step (default 256: big enough for GEMM efficiency, small scratch). */
  prefillChunk?: number;
  /** KV cache dtype (default f32: the benchmarks' and the model tests'). */
  kvDtype?: KvDType;
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
    const dtype = opts.kvDtype ?? 'f32';
    const bytes = nBlocks * bs * KvPool.bytesPerToken(model.cfg, dtype);
    this.kv = new KvPool(model.cfg, nBlocks, bs, dtype, bytes <= EAGER_KV_BYTES ? true : 'background');
    this.table = Int32Array.from({ length: nBlocks }, (_, i) => i);
    this.maxContext = nBlocks * bs;
    this.chunk = opts.prefillChunk ?? 256;
  }

  private step(tokens: ArrayLike<number>): Float32Array {
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
      logits = this.step(Array.prototype.slice.call(prompt, i, i + this.chunk) as number[]);
    }
    return logits;
  }

  /** Feeds one token; returns the logits for the next. */
  decode(token: number): Float32Array {
    return this.step([token]);
  }
}

export interface GenerateOptions {
  /** Sampling and stopping of the one request (n must be 1). */
  sampling: SamplingOptions;
  kvDtype?: KvDType;
  blockSize?: number; //     16
  /** Prompt tokens per step (default 256, as Sequence). */
  prefillChunk?: number;
  /** Stop token ids besides the request's own (default the model's eosIds). */
  eosIds?: number[];
  /** Called with each piece of new text as it is generated. */
  onText?: (text: string) => void;
}

export interface GenerateResult {
  /** The sampled tokens (a final EOS or stop token included). */
  tokens: number[];
  text: string;
  promptTokens: number;
  /** Until the first token was sampled. */
  prefillSeconds: number;
  /** From then to the last token (tokens.length - 1 forward steps). */
  decodeSeconds: number;
  finishReason: FinishReason;
}

/**
 * Prompt in, text out: one request through an Engine whose KV pool holds exactly this request
 * (prompt + sampling.maxTokens). Throws EngineError('bad_request' | 'context_length') for a
 * request the engine refuses.
 */
export function generate(model: StepModel, tokenizer: Tokenizer, prompt: number[], o: GenerateOptions): GenerateResult {
  if (o.sampling.n !== 1) throw new Error(`generate: one choice only, got n = ${o.sampling.n}`);
  const bs = o.blockSize ?? 16;
  const kvDtype = o.kvDtype ?? 'f32';
  const numBlocks = Math.ceil((prompt.length + o.sampling.maxTokens) / bs);
  const bytes = numBlocks * bs * KvPool.bytesPerToken(model.cfg, kvDtype);
  const engine = new Engine(model, tokenizer, {
    numBlocks,
    blockSize: bs,
    kvDtype,
    kvPopulate: bytes <= EAGER_KV_BYTES ? true : 'background',
    maxBatchTokens: o.prefillChunk ?? 256,
    maxSeqs: 1,
    prefixCaching: false,
    eosIds: o.eosIds,
  });
  engine.submit({ id: 'generate', promptIds: prompt, sampling: o.sampling });
  const t0 = performance.now();
  let t1 = 0;
  const tokens: number[] = [];
  let text = '';
  let finish: FinishReason | undefined;
  while (!finish) {
    if (!engine.hasWork()) throw new Error('generate: the engine stopped before the request finished');
    for (const ev of engine.step()) {
      if (ev.error) throw new Error(ev.error);
      if (ev.tokenId >= 0) {
        if (tokens.length === 0) t1 = performance.now();
        tokens.push(ev.tokenId);
      }
      if (ev.text) {
        text += ev.text;
        o.onText?.(ev.text);
      }
      if (ev.finishReason) finish = ev.finishReason;
    }
  }
  const t2 = performance.now();
  if (tokens.length === 0) t1 = t2;
  return { tokens, text, promptTokens: prompt.length, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000, finishReason: finish };
}

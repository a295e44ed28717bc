// A mock model for engine tests whose logits a test computes by hand, and which reads its context
// back from the paged KV cache: each forward writes every token's id into its KV slot, and the
// logits of a row depend on the ids read back through the sequence's block table. So a wrong
// slot, block table, prefix-cache hit or recompute gives different tokens (or an error), exactly
// as it would with a real model.

import type { ModelConfig } from '../../src/formats/model-config.ts';
import { tokenizerFromGguf } from '../../src/formats/gguf-tokenizer.ts';
import type { Tokenizer } from '../../src/formats/tokenizer.ts';
import type { SamplingOptions, TokenEvent } from '../../src/engine/api.ts';
import type { Engine, StepModel } from '../../src/engine/engine.ts';
import type { KvPool } from '../../src/models/kv.ts';
import type { Batch } from '../../src/models/model.ts';
import { randomVocabMetadata, specToConfig, TINY_SPECS } from '../../src/models/random.ts';
import { Tensor } from '../../src/tensor/tensor.ts';

export const V = 320;
/** First id of an ordinary text piece in the random vocabulary (after <unk> <s> </s> and 256 bytes). */
export const FIRST_TEXT = 259;

/** The default rule: the next token is a text piece chosen by the sum of the context's ids. */
export function sumRule(ctx: readonly number[]): number {
  let s = 0;
  for (const t of ctx) s += t;
  return FIRST_TEXT + (s % (V - FIRST_TEXT));
}

export class MockModel implements StepModel {
  readonly cfg: ModelConfig;
  /** Tokens computed per forward call (prompt chunks and decode tokens). */
  readonly calls: number[] = [];
  constructor(
    /** Maps the context (ids at positions 0..p, read from the KV cache) to the favoured next id. */
    readonly rule: (ctx: readonly number[]) => number = sumRule,
    maxPosition = 256,
  ) {
    this.cfg = { ...specToConfig(TINY_SPECS.llama), vocabSize: V, maxPosition, nLayers: 1 };
  }

  forward(batch: Batch, kv: KvPool): Tensor {
    const k = kv.k[0]!.f32();
    const bs = kv.blockSize;
    const stride = this.cfg.nKvHeads * bs * this.cfg.headDim; // floats per block
    const at = (slot: number) => Math.floor(slot / bs) * stride + (slot % bs) * this.cfg.headDim;
    this.calls.push(batch.tokens.length);
    for (let i = 0; i < batch.tokens.length; i++) k[at(batch.slots[i]!)] = batch.tokens[i]! + 1;
    const out = Tensor.zeros([batch.logitRows.length, V]);
    const o = out.f32();
    batch.logitRows.forEach((row, r) => {
      const s = batch.seqs.find((q) => row >= q.row && row < q.row + q.n)!;
      const pos = s.startPos + (row - s.row);
      const ctx: number[] = [];
      for (let p = 0; p <= pos; p++) {
        const v = k[at(s.blockTable[Math.floor(p / bs)]! * bs + (p % bs))]!;
        if (!(v > 0)) throw new Error(`mock: position ${p} was never written to the KV cache`);
        ctx.push(v - 1);
      }
      const target = this.rule(ctx);
      // A smooth distribution peaked at target: logit(j) = 4 - 0.25 * circular distance above target.
      for (let j = 0; j < V; j++) o[r * V + j] = 4 - 0.25 * ((j - target + V) % V);
    });
    return out;
  }
}

export function mockTokenizer(): Tokenizer {
  return tokenizerFromGguf(randomVocabMetadata(V), 'mock-tokenizer.json');
}

export function opts(o: Partial<SamplingOptions> = {}): SamplingOptions {
  return {
    temperature: 0, topP: 1, topK: 0, minP: 0,
    repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0,
    maxTokens: 8, stop: [], stopTokenIds: [], ignoreEos: false, n: 1,
    ...o,
  };
}

export interface ChoiceResult {
  tokens: number[];
  text: string;
  events: TokenEvent[];
  finishReason?: string;
}

/** Steps the engine until it has no work; returns every choice's events keyed `${id}/${index}`. */
export function runToEnd(engine: Engine, maxSteps = 10_000): Map<string, ChoiceResult> {
  const out = new Map<string, ChoiceResult>();
  for (let i = 0; engine.hasWork(); i++) {
    if (i >= maxSteps) throw new Error('runToEnd: the engine does not finish');
    collect(out, engine.step());
  }
  return out;
}

export function collect(out: Map<string, ChoiceResult>, events: TokenEvent[]): void {
  for (const e of events) {
    const key = `${e.requestId}/${e.index}`;
    let c = out.get(key);
    if (!c) out.set(key, (c = { tokens: [], text: '', events: [] }));
    c.events.push(e);
    if (e.tokenId >= 0) c.tokens.push(e.tokenId);
    c.text += e.text;
    if (e.finishReason) c.finishReason = e.finishReason;
  }
}

/** What the mock produces for a prompt at temperature 0, computed by hand (no engine). */
export function expectedGreedy(prompt: readonly number[], n: number, rule = sumRule): number[] {
  const ctx = prompt.slice();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = rule(ctx);
    out.push(t);
    ctx.push(t);
  }
  return out;
}

// The serving engine core. One step is JetStream's contract kept small:
//   schedule (which sequences, how many tokens each, which KV blocks)
//   -> one Model.forward over the packed batch
//   -> sample and postprocess each sequence that reached the end of its known tokens,
// returning one packed array of TokenEvents. The engine is synchronous and single-threaded;
// src/engine/worker-host.ts runs it in a worker thread and drives step() in a loop.
//
// Choices of a request (n > 1) are separate sequences. The first computes the prompt; the others
// are held back until it has, then take its full prompt blocks from the prefix cache (reference-
// counted, not copied) and recompute only the partial last block. That needs no KV copy kernel,
// and it is exactly as correct as the prefix cache is.
//
// Determinism: every per-sequence computation (penalties, sampling, logprobs, stop checks) reads
// only that sequence's logits row and state, and the kernels are row-invariant, so at temperature
// 0 a request's tokens do not depend on what else is in the batch.

import type { Tokenizer } from '../formats/tokenizer.ts';
import type { ModelConfig } from '../formats/model-config.ts';
import { KvPool, type KvDType } from '../models/kv.ts';
import type { Batch } from '../models/model.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { EngineError, type EngineStats, type FinishReason, type GenerateRequest, type SamplingOptions, type TokenEvent } from './api.ts';
import { makeBatch } from './batch.ts';
import { BlockManager, BlockTable } from './block-manager.ts';
import { IncrementalDetokenizer } from './detokenizer.ts';
import { applyPenalties, hasPenalties, logSoftmaxNormalizer, topKIds } from './penalties.ts';
import { Rng, sample, validateSampling } from './sampler.ts';
import { Scheduler, type Scheduled, type SchedSeq } from './scheduler.ts';
import { StopMatcher } from './stop.ts';
import { ConstraintError, constraintFor, vocabularyFor, type ConstraintSpec, type TokenConstraint, type TokenVocabulary } from '../structured/index.ts';

/** What the engine needs of a model (Model, or a test's mock with hand-computed logits). */
export interface StepModel {
  readonly cfg: ModelConfig;
  /** Logits [batch.logitRows.length, cfg.vocabSize]. */
  forward(batch: Batch, kv: KvPool): Tensor;
}

export interface EngineOptions {
  /** KV blocks in the pool. */
  numBlocks: number;
  blockSize?: number; //        16
  kvDtype?: KvDType; //         'f32'
  /** When the pool's memory is faulted in: now (true), or by a background thread ('background', the default). */
  kvPopulate?: boolean | 'background';
  maxBatchTokens?: number; //   512
  maxSeqs?: number; //          16
  maxWaiting?: number; //       256
  /** Context limit (prompt + max tokens); default the model's, capped to what the pool holds. */
  maxContext?: number;
  prefixCaching?: boolean; //   true
  /** Stop token ids besides each request's own (default the model's eosIds). */
  eosIds?: number[];
  /** Top alternatives a request may ask for (default 20, OpenAI's limit). */
  maxLogprobs?: number;
  log?: (msg: string) => void;
}

/** What the last step computed (for tests and logs). */
export interface StepInfo {
  tokens: number;
  seqs: { requestId: string; index: number; n: number; startPos: number }[];
}

interface Request {
  id: string;
  promptIds: number[];
  sampling: SamplingOptions;
  seqs: Seq[];
  unfinished: number;
  /** Distinct prompt ids (for the repetition penalty), built on first use. */
  promptSet?: Set<number>;
  /** Structured output: the compiled constraint over this model's vocabulary. */
  constraint?: TokenConstraint;
}

/** One step's work: the scheduled chunks (decode tokens first) and the batch that packs them. */
interface StepPlan {
  order: Scheduled<Seq>[];
  batch: Batch;
}

class Seq implements SchedSeq {
  tokens: number[];
  readonly promptLen: number;
  numComputed = 0;
  readonly table = new BlockTable();
  prefilled = false;
  after?: Seq;
  cachedTokens = -1;
  status: SchedSeq['status'] = 'waiting';
  readonly outCounts = new Map<number, number>();
  sentFirst = false;
  /** The constraint's state after this choice's output so far (structured output). */
  constraintState = 0;

  constructor(
    readonly req: Request,
    readonly index: number,
    readonly rng: Rng,
    readonly detok: IncrementalDetokenizer,
    readonly stop: StopMatcher,
  ) {
    this.tokens = req.promptIds.slice();
    this.promptLen = req.promptIds.length;
  }

  get completion(): number {
    return this.tokens.length - this.promptLen;
  }
}

export class Engine {
  readonly kv: KvPool;
  readonly blocks: BlockManager;
  readonly scheduler: Scheduler<Seq>;
  readonly maxContext: number;
  lastStep: StepInfo | null = null;
  private readonly model: StepModel;
  private readonly tok: Tokenizer;
  private readonly eos: Set<number>;
  private readonly maxWaiting: number;
  private readonly maxLogprobs: number;
  private readonly log: (msg: string) => void;
  private readonly requests = new Map<string, Request>();
  /** Events produced outside a step (aborts), returned by the next step. */
  private pending: TokenEvent[] = [];
  private promptTokens = 0;
  private cachedPromptTokens = 0;
  /** The tokenizer's vocabulary as bytes, for structured output (built on first use). */
  private vocab: TokenVocabulary | null = null;
  /** Scratch for copyRow. */
  private rowBuf = new Float32Array(0);
  private generationTokens = 0;

  constructor(model: StepModel, tokenizer: Tokenizer, opts: EngineOptions) {
    const bs = opts.blockSize ?? 16;
    this.model = model;
    this.tok = tokenizer;
    // sized for many sequences: by default faulted in by a background thread, so start-up does not wait
    this.kv = new KvPool(model.cfg, opts.numBlocks, bs, opts.kvDtype ?? 'f32', opts.kvPopulate ?? 'background');
    this.blocks = new BlockManager(opts.numBlocks, bs, opts.prefixCaching ?? true);
    this.scheduler = new Scheduler<Seq>(this.blocks, { maxBatchTokens: opts.maxBatchTokens ?? 512, maxSeqs: opts.maxSeqs ?? 16 });
    // One sequence must always fit in the pool, so preemption can always make progress.
    this.maxContext = Math.min(opts.maxContext ?? model.cfg.maxPosition, model.cfg.maxPosition, opts.numBlocks * bs);
    this.eos = new Set(opts.eosIds ?? model.cfg.eosIds);
    this.maxWaiting = opts.maxWaiting ?? 256;
    this.maxLogprobs = opts.maxLogprobs ?? 20;
    this.log = opts.log ?? (() => {});
    this.scheduler.onPreempt = (s) =>
      this.log(`preempted request ${s.req.id} choice ${s.index} (${s.tokens.length} tokens) for lack of KV blocks; it will be recomputed`);
  }

  /** Queues a request; throws EngineError('bad_request' | 'context_length' | 'queue_full'). */
  submit(req: GenerateRequest): void {
    const o = req.sampling;
    this.validate(req);
    if (req.promptIds.length + o.maxTokens > this.maxContext) {
      throw new EngineError('context_length', `the prompt (${req.promptIds.length} tokens) plus max_tokens (${o.maxTokens}) exceeds the context of ${this.maxContext} tokens`);
    }
    if (this.waitingRequests() >= this.maxWaiting) throw new EngineError('queue_full', `the waiting queue is full (${this.maxWaiting} requests)`);
    const r: Request = { id: req.id, promptIds: req.promptIds.slice(), sampling: { ...o, stop: o.stop.slice(), stopTokenIds: o.stopTokenIds.slice() }, seqs: [], unfinished: o.n };
    if (o.constraint !== undefined) r.constraint = this.compileConstraint(o.constraint);
    for (let i = 0; i < o.n; i++) {
      // Choices of a seeded request draw from distinct, reproducible streams.
      const rng = o.seed === undefined ? new Rng() : new Rng((o.seed + Math.imul(i, 0x9e3779b9)) >>> 0);
      const s = new Seq(r, i, rng, new IncrementalDetokenizer(this.tok, r.promptIds), new StopMatcher(r.sampling.stop));
      if (i > 0) s.after = r.seqs[0];
      if (r.constraint) s.constraintState = r.constraint.start();
      r.seqs.push(s);
    }
    this.requests.set(r.id, r);
    for (const s of r.seqs) this.scheduler.add(s);
  }

  /** Cancels a request: its blocks are freed now; its final events come with the next step. */
  abort(requestId: string, error?: string): boolean {
    const r = this.requests.get(requestId);
    if (!r) return false;
    for (const s of r.seqs) {
      if (s.status === 'finished') continue;
      const ev: TokenEvent = { requestId: r.id, index: s.index, tokenId: -1, text: '' };
      if (error !== undefined) ev.error = error;
      this.finishSeq(s, ev, 'abort');
      this.pending.push(ev);
    }
    return true;
  }

  hasWork(): boolean {
    return this.scheduler.hasWork() || this.pending.length > 0;
  }

  /** One engine step: schedule, run the model once, sample; returns the step's events. */
  step(): TokenEvent[] {
    const events = this.pending;
    this.pending = [];
    const plan = this.schedule();
    if (!plan) return events;
    try {
      const logits = this.run(plan);
      this.postprocess(plan, logits, events);
    } catch (e) {
      // A failure inside the model fails the requests of this batch, not the engine.
      const msg = `engine step failed: ${(e as Error).message}`;
      this.log(msg);
      const ids = new Set(plan.order.map((s) => s.seq.req.id));
      for (const id of ids) this.abort(id, msg);
      events.push(...this.pending);
      this.pending = [];
    }
    return events;
  }

  /** Which sequences run this step and how many tokens each (KV blocks allocated), packed into a batch; null when idle. */
  private schedule(): StepPlan | null {
    const sched = this.scheduler.schedule();
    if (sched.length === 0) {
      this.lastStep = null;
      return null;
    }
    // Single-token rows first and consecutive: the model batches them into one attention call.
    const order = [...sched.filter((s) => s.n === 1), ...sched.filter((s) => s.n > 1)];
    const batch = makeBatch(
      order.map(({ seq, n, sample }) => ({
        tokens: seq.tokens.slice(seq.numComputed, seq.numComputed + n),
        startPos: seq.numComputed,
        blockTable: Int32Array.from(seq.table.blocks),
        logits: sample ? 'last' : 'none',
      })),
      this.blocks.blockSize,
    );
    this.lastStep = { tokens: batch.tokens.length, seqs: order.map(({ seq, n }) => ({ requestId: seq.req.id, index: seq.index, n, startPos: seq.numComputed })) };
    return { order, batch };
  }

  /** One Model.forward over the step's batch: the logits of the rows that sample, [rows, vocab]. */
  private run(plan: StepPlan): Float32Array {
    return this.model.forward(plan.batch, this.kv).f32();
  }

  /** The chunks are computed; each sequence that reached the end of its known tokens samples one. */
  private postprocess(plan: StepPlan, logits: Float32Array, events: TokenEvent[]): void {
    this.scheduler.update(plan.order);
    const V = this.model.cfg.vocabSize;
    let r = 0;
    for (const s of plan.order) {
      if (!s.sample) continue;
      events.push(this.nextToken(s.seq, logits.subarray(r * V, (r + 1) * V)));
      r++;
    }
  }

  stats(): EngineStats {
    let running = 0;
    let waiting = 0;
    for (const r of this.requests.values()) {
      if (r.seqs.some((s) => s.status === 'running')) running++;
      else waiting++;
    }
    return {
      running,
      waiting,
      kvBlocksUsed: this.blocks.usedBlocks,
      kvBlocksTotal: this.blocks.totalBlocks,
      prefixCacheHitRate: this.promptTokens ? this.cachedPromptTokens / this.promptTokens : 0,
      preemptions: this.scheduler.preemptions,
      promptTokens: this.promptTokens,
      generationTokens: this.generationTokens,
    };
  }

  private waitingRequests(): number {
    let n = 0;
    for (const r of this.requests.values()) if (r.seqs.every((s) => s.status === 'waiting')) n++;
    return n;
  }

  /** Penalties, sampling, logprobs, detokenization and stop checks for one sequence's new token. */
  private nextToken(seq: Seq, row: Float32Array): TokenEvent {
    const r = seq.req;
    const o = r.sampling;
    let x = row;
    if (hasPenalties(o)) {
      x = this.copyRow(row); // the logits are shared scratch: penalize a copy
      r.promptSet ??= new Set(r.promptIds);
      applyPenalties(x, o, r.promptSet, seq.outCounts);
    }
    // Structured output: tokens that cannot continue a valid output get -inf (never all of them)
    if (r.constraint) {
      if (x === row) x = this.copyRow(row);
      r.constraint.applyMask(seq.constraintState, x);
    }
    const id = sample(x, o, seq.rng);
    const ev: TokenEvent = { requestId: r.id, index: seq.index, tokenId: id, text: '' };
    if (o.logprobs !== undefined) {
      // Log-probabilities of the penalized logits, before temperature and filtering.
      const lse = logSoftmaxNormalizer(x);
      ev.logprob = x[id]! - lse;
      ev.topLogprobs = topKIds(x, o.logprobs).map((t) => ({ id: t, token: this.tok.decode([t]), logprob: x[t]! - lse }));
    }
    if (!seq.sentFirst) {
      seq.sentFirst = true;
      // The request's prompt-cache hit (the first choice's; later choices reuse its blocks by design).
      const first = r.seqs[0]!;
      ev.cachedTokens = Math.max(0, first.cachedTokens);
      if (seq.index === 0) {
        this.promptTokens += seq.promptLen;
        this.cachedPromptTokens += ev.cachedTokens;
      }
    }
    seq.tokens.push(id);
    seq.outCounts.set(id, (seq.outCounts.get(id) ?? 0) + 1);
    this.generationTokens++;

    let finish: FinishReason | undefined;
    let byStopString = false;
    // A constrained output ends at the end-of-sequence token (allowed only where the output is
    // valid, ignore_eos or not) or as soon as it is complete (nothing but EOS could follow).
    const eos = this.eos.has(id) && (!o.ignoreEos || r.constraint !== undefined);
    if (eos || o.stopTokenIds.includes(id)) {
      finish = 'stop';
    } else {
      const out = seq.stop.push(seq.detok.push(id));
      ev.text = out.text;
      if (out.stopped) {
        finish = 'stop';
        byStopString = true;
      } else if (r.constraint) {
        seq.constraintState = r.constraint.advance(seq.constraintState, id);
        if (r.constraint.isComplete(seq.constraintState)) finish = 'stop';
      }
    }
    if (!finish && seq.completion >= o.maxTokens) finish = 'length';
    if (finish) {
      if (!byStopString) {
        // Whatever was held back (an incomplete character, a possible stop-string start) is text.
        const tail = seq.stop.push(seq.detok.flush());
        ev.text += tail.text;
        if (tail.stopped) finish = 'stop';
        else ev.text += seq.stop.flush();
      }
      this.finishSeq(seq, ev, finish);
    }
    return ev;
  }

  /**
   * A copy of a logits row to modify (penalties, structured-output masks), in one buffer reused
   * for every sequence: each row is sampled before the next one is copied.
   */
  private copyRow(row: Float32Array): Float32Array {
    if (this.rowBuf.length !== row.length) this.rowBuf = new Float32Array(row.length);
    this.rowBuf.set(row);
    return this.rowBuf;
  }

  /** A request's constraint over this model's vocabulary (compiled once per spec, cached); a bad one is the request's fault. */
  private compileConstraint(spec: ConstraintSpec): TokenConstraint {
    try {
      this.vocab ??= vocabularyFor(this.tok);
      return constraintFor(spec, this.vocab, [...this.eos]);
    } catch (e) {
      if (e instanceof ConstraintError) throw new EngineError('bad_request', e.message);
      throw e;
    }
  }

  private finishSeq(seq: Seq, ev: TokenEvent, reason: FinishReason): void {
    ev.finishReason = reason;
    ev.promptTokens = seq.promptLen;
    ev.completionTokens = seq.completion;
    this.scheduler.finish(seq);
    const r = seq.req;
    if (--r.unfinished === 0) this.requests.delete(r.id);
  }

  private validate(req: GenerateRequest): void {
    const bad = (m: string): never => {
      throw new EngineError('bad_request', m);
    };
    if (typeof req.id !== 'string' || req.id === '') bad('request id must be a non-empty string');
    if (this.requests.has(req.id)) bad(`request id ${req.id} is already in use`);
    const V = this.model.cfg.vocabSize;
    if (!Array.isArray(req.promptIds) || req.promptIds.length === 0) bad('the prompt is empty');
    for (const t of req.promptIds) if (!Number.isInteger(t) || t < 0 || t >= V) bad(`prompt token id ${t} is outside the vocabulary [0, ${V})`);
    const o = req.sampling;
    const msg = validateSampling(o);
    if (msg) bad(msg);
    if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1) bad(`max_tokens must be an integer >= 1, got ${o.maxTokens}`);
    if (!Number.isInteger(o.n) || o.n < 1) bad(`n must be an integer >= 1, got ${o.n}`);
    if (!(o.repetitionPenalty > 0) || !Number.isFinite(o.repetitionPenalty)) bad(`repetition_penalty must be > 0, got ${o.repetitionPenalty}`);
    if (!Number.isFinite(o.presencePenalty)) bad(`presence_penalty must be a number, got ${o.presencePenalty}`);
    if (!Number.isFinite(o.frequencyPenalty)) bad(`frequency_penalty must be a number, got ${o.frequencyPenalty}`);
    if (o.seed !== undefined && !Number.isInteger(o.seed)) bad(`seed must be an integer, got ${o.seed}`);
    if (o.logprobs !== undefined && (!Number.isInteger(o.logprobs) || o.logprobs < 0 || o.logprobs > this.maxLogprobs)) {
      bad(`logprobs must be an integer in [0, ${this.maxLogprobs}], got ${o.logprobs}`);
    }
    if (!Array.isArray(o.stop) || o.stop.some((s) => typeof s !== 'string')) bad('stop must be a list of strings');
    if (!Array.isArray(o.stopTokenIds) || o.stopTokenIds.some((t) => !Number.isInteger(t))) bad('stop_token_ids must be a list of integers');
  }
}


// Continuous batching with a token budget per step, in vLLM V1's terms: every sequence carries
// its known tokens (prompt + generated) and how many of them have been computed into the KV
// cache; a step gives each scheduled sequence some of the difference. A decoding sequence needs
// 1 token, a new one its whole prompt (minus what the prefix cache already holds), a preempted one
// everything again: one rule covers decode, chunked prefill, prefix caching and recompute.
//
// Order of a step: running sequences first, oldest first (their decode tokens are reserved before
// any prompt chunk takes budget), then waiting ones while budget, sequence slots and blocks last.
// When a running sequence needs a block and none is free, the newest running sequence is
// preempted: its blocks are freed (its full blocks stay in the prefix cache) and it goes back to
// the front of the waiting queue to be recomputed later. Requests are never failed for lack of
// blocks: the engine only admits requests whose whole context fits in the pool.

import { BlockManager, BlockTable } from './block-manager.ts';

/** What the scheduler needs to know about a sequence (the engine's Seq extends it). */
export interface SchedSeq {
  /** Prompt + generated tokens. */
  tokens: number[];
  promptLen: number;
  /** Tokens of `tokens` whose KV is in the cache. */
  numComputed: number;
  table: BlockTable;
  /** Set once the prompt has been computed (it stays set through preemption). */
  prefilled: boolean;
  /** A sequence that must finish its prompt before this one starts (the first choice of n > 1). */
  after?: SchedSeq;
  /** Prompt tokens served from the prefix cache when it was first admitted (-1: not admitted yet). */
  cachedTokens: number;
  status: 'waiting' | 'running' | 'finished';
}

export interface Scheduled<S extends SchedSeq> {
  seq: S;
  /** Tokens computed this step: tokens[seq.numComputed .. + n). */
  n: number;
  /** Whether this chunk reaches the end of the known tokens (the step samples a new one). */
  sample: boolean;
}

export interface SchedulerOptions {
  maxBatchTokens: number;
  maxSeqs: number;
}

export class Scheduler<S extends SchedSeq> {
  readonly waiting: S[] = [];
  /** In admission order: the last is the newest (the first preempted). */
  readonly running: S[] = [];
  preemptions = 0;
  /** Called when a sequence is preempted (the engine logs it). */
  onPreempt?: (seq: S) => void;

  constructor(
    readonly blocks: BlockManager,
    readonly opts: SchedulerOptions,
  ) {
    if (!Number.isInteger(opts.maxBatchTokens) || opts.maxBatchTokens < 1) throw new Error(`Scheduler: maxBatchTokens must be a positive integer, got ${opts.maxBatchTokens}`);
    if (!Number.isInteger(opts.maxSeqs) || opts.maxSeqs < 1) throw new Error(`Scheduler: maxSeqs must be a positive integer, got ${opts.maxSeqs}`);
  }

  add(seq: S): void {
    seq.status = 'waiting';
    this.waiting.push(seq);
  }

  hasWork(): boolean {
    return this.running.length > 0 || this.waiting.length > 0;
  }

  /** Decides this step's work; blocks for it are allocated when this returns. */
  schedule(): Scheduled<S>[] {
    const out: Scheduled<S>[] = [];
    const bs = this.blocks;
    let budget = this.opts.maxBatchTokens;
    // Decode tokens are reserved first: a prompt chunk of an older sequence may not take them.
    let decodesLeft = 0;
    for (const s of this.running) if (s.tokens.length - s.numComputed === 1) decodesLeft++;
    let preempted = false;

    for (let i = 0; i < this.running.length; i++) {
      const s = this.running[i]!;
      const todo = s.tokens.length - s.numComputed;
      const isDecode = todo === 1;
      if (isDecode) decodesLeft--;
      const room = isDecode ? budget : budget - decodesLeft;
      const n = Math.min(todo, room);
      if (n <= 0) continue;
      // Free blocks by preempting the newest running sequences, this one last.
      let ok = bs.grow(s.table, s.numComputed + n);
      while (!ok) {
        const victim = this.running[this.running.length - 1]!;
        if (this.running.length - 1 > i) {
          if (victim.tokens.length - victim.numComputed === 1) decodesLeft--;
          this.preempt(victim);
          preempted = true;
          ok = bs.grow(s.table, s.numComputed + n);
        } else break;
      }
      if (!ok) {
        // Nothing newer left to preempt: this sequence itself waits.
        this.preempt(s);
        preempted = true;
        i--;
        continue;
      }
      out.push({ seq: s, n, sample: s.numComputed + n === s.tokens.length });
      budget -= n;
    }

    // New sequences, unless this step had to preempt (memory is tight; let the running ones go on).
    if (!preempted) {
      for (let w = 0; w < this.waiting.length && budget > 0 && this.running.length < this.opts.maxSeqs; ) {
        const s = this.waiting[w]!;
        if (s.after && !s.after.prefilled && s.after.status !== 'finished') {
          w++; // a later choice waits for the first to compute the shared prompt
          continue;
        }
        // Reuse cached full blocks of the known tokens, leaving at least one token to compute
        // (its logits give the next token).
        const m = bs.match(s.tokens, Math.floor((s.tokens.length - 1) / bs.blockSize));
        const cached = m.blocks.length * bs.blockSize;
        const n = Math.min(s.tokens.length - cached, budget);
        const need = bs.freeNeededFor(m.blocks) + Math.ceil((cached + n) / bs.blockSize) - m.blocks.length;
        if (need > bs.freeBlocks) break; // first come, first served: the queue waits for blocks
        bs.acquire(s.table, m);
        if (!bs.grow(s.table, cached + n)) throw new Error('Scheduler: block accounting is inconsistent');
        s.numComputed = cached;
        if (s.cachedTokens < 0) s.cachedTokens = Math.min(cached, s.promptLen);
        this.waiting.splice(w, 1);
        s.status = 'running';
        this.running.push(s);
        out.push({ seq: s, n, sample: cached + n === s.tokens.length });
        budget -= n;
      }
    }
    return out;
  }

  /** After the model ran: the chunks are computed; their full blocks enter the prefix cache. */
  update(done: Scheduled<S>[]): void {
    for (const { seq, n } of done) {
      seq.numComputed += n;
      this.blocks.commit(seq.table, seq.tokens, seq.numComputed);
      if (seq.numComputed >= seq.promptLen) seq.prefilled = true;
    }
  }

  /** Removes a sequence (finished or aborted) and frees its blocks at once. */
  finish(seq: S): void {
    remove(this.running, seq) || remove(this.waiting, seq);
    this.blocks.free(seq.table);
    seq.status = 'finished';
  }

  private preempt(s: S): void {
    remove(this.running, s);
    this.blocks.free(s.table);
    s.numComputed = 0;
    s.status = 'waiting';
    this.waiting.unshift(s);
    this.preemptions++;
    this.onPreempt?.(s);
  }
}

function remove<T>(a: T[], x: T): boolean {
  const i = a.indexOf(x);
  if (i < 0) return false;
  a.splice(i, 1);
  return true;
}

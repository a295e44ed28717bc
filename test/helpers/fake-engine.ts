// A deterministic stand-in for the serving engine, for server tests. Tokens are Unicode code
// points (encode/decode are exact inverses); every choice generates REPLY (choice i starting i
// characters in) one character per step, `stepMs` apart, then stops as if on EOS. It honours
// max_tokens, stop strings (across tokens), n, logprobs, abort, a running limit and a waiting
// queue limit, and shutdown with a grace period, so the server's handling of each can be tested.

import { EngineError, type EngineClient, type EngineStats, type GenerateRequest, type TokenEvent } from '../../src/engine/api.ts';

export const REPLY = 'Hello from the fake engine.';
const BLOCK = 16;

interface Running {
  req: GenerateRequest;
  onEvents: (events: TokenEvent[]) => void;
  choices: { out: string; emitted: number; tokens: number; done: boolean }[];
}

export interface FakeEngineOptions {
  maxContext?: number;
  maxRunning?: number;
  maxWaiting?: number;
  stepMs?: number;
  modelName?: string;
}

export class FakeEngine implements EngineClient {
  readonly modelName: string;
  readonly maxContext: number;
  readonly maxRunning: number;
  readonly maxWaiting: number;
  stepMs: number;
  /** Every request submitted and every abort, for assertions. */
  readonly submitted: GenerateRequest[] = [];
  readonly aborted: string[] = [];
  private running = new Map<string, Running>();
  private waiting: Running[] = [];
  private timer: NodeJS.Timeout | undefined;
  private shuttingDown = false;
  private promptTokens = 0;
  private generationTokens = 0;

  constructor(o: FakeEngineOptions = {}) {
    this.modelName = o.modelName ?? 'fake-model';
    this.maxContext = o.maxContext ?? 512;
    this.maxRunning = o.maxRunning ?? 64;
    this.maxWaiting = o.maxWaiting ?? 64;
    this.stepMs = o.stepMs ?? 2;
  }

  encode(text: string, _addSpecialTokens: boolean): number[] {
    return Array.from(text, (c) => c.codePointAt(0)!);
  }

  decode(ids: number[]): string {
    for (const id of ids) if (!Number.isInteger(id) || id < 0 || id > 0x10ffff) throw new EngineError('bad_request', `token id ${id} is out of range`);
    return ids.map((id) => String.fromCodePoint(id)).join('');
  }

  applyChatTemplate(messages: { role: string; content: string }[], addGenerationPrompt: boolean): string {
    // Like many real templates: optional system first, then user/assistant alternating.
    let expect = 'user';
    messages.forEach((m, i) => {
      if (i === 0 && m.role === 'system') return;
      if (m.role !== expect) throw new EngineError('bad_request', `conversation roles must alternate user/assistant (message ${i} is '${m.role}')`);
      expect = expect === 'user' ? 'assistant' : 'user';
    });
    return messages.map((m) => `<${m.role}>${m.content}\n`).join('') + (addGenerationPrompt ? '<assistant>' : '');
  }

  async submit(req: GenerateRequest, onEvents: (events: TokenEvent[]) => void): Promise<void> {
    if (this.shuttingDown) throw new EngineError('shutting_down', 'the engine is shutting down');
    if (req.promptIds.length + req.sampling.maxTokens > this.maxContext) throw new EngineError('context_length', 'prompt + max_tokens exceed the context');
    if (this.decode(req.promptIds).includes('__explode__')) throw new Error('simulated engine failure');
    const r: Running = {
      req,
      onEvents,
      choices: Array.from({ length: req.sampling.n }, (_, i) => ({ out: REPLY.slice(i % REPLY.length), emitted: 0, tokens: 0, done: false })),
    };
    if (this.running.size >= this.maxRunning) {
      if (this.waiting.length >= this.maxWaiting) throw new EngineError('queue_full', 'the waiting queue is full');
      this.waiting.push(r);
    } else this.running.set(req.id, r);
    this.submitted.push(req);
    this.promptTokens += req.promptIds.length;
    this.schedule();
  }

  abort(requestId: string): void {
    this.aborted.push(requestId);
    const r = this.running.get(requestId) ?? this.waiting.find((w) => w.req.id === requestId);
    if (!r) return;
    this.running.delete(requestId);
    this.waiting = this.waiting.filter((w) => w !== r);
    // Like the real engine may: a last 'abort' event after the cancel (the server must ignore it).
    setImmediate(() => r.onEvents(r.choices.flatMap((c, index) => (c.done ? [] : [{ requestId, index, tokenId: -1, text: '', finishReason: 'abort' as const }]))));
  }

  stats(): EngineStats {
    let blocks = 0;
    for (const r of this.running.values()) {
      const gen = Math.max(0, ...r.choices.map((c) => c.tokens));
      blocks += Math.ceil((r.req.promptIds.length + gen) / BLOCK);
    }
    return {
      running: this.running.size,
      waiting: this.waiting.length,
      kvBlocksUsed: blocks,
      kvBlocksTotal: 1024,
      prefixCacheHitRate: 0.25,
      preemptions: 0,
      promptTokens: this.promptTokens,
      generationTokens: this.generationTokens,
    };
  }

  async shutdown(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    const deadline = Date.now() + graceMs;
    while ((this.running.size || this.waiting.length) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    for (const id of [...this.running.keys(), ...this.waiting.map((w) => w.req.id)]) this.abort(id);
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (!this.timer && this.running.size) this.timer = setTimeout(() => this.step(), this.stepMs);
  }

  /** One engine step: every running choice gets one token. */
  private step(): void {
    this.timer = undefined;
    for (const r of [...this.running.values()]) {
      const s = r.req.sampling;
      const events: TokenEvent[] = [];
      r.choices.forEach((c, index) => {
        if (c.done) return;
        const base = { requestId: r.req.id, index, promptTokens: r.req.promptIds.length };
        if (c.tokens >= c.out.length && !s.ignoreEos) {
          // EOS: a final event without a token.
          c.done = true;
          events.push({ ...base, tokenId: -1, text: c.out.slice(c.emitted, c.tokens), finishReason: 'stop', completionTokens: c.tokens });
          return;
        }
        const ch = c.out[c.tokens % c.out.length]!;
        const id = ch.codePointAt(0)!;
        c.tokens++;
        this.generationTokens++;
        const full = Array.from({ length: c.tokens }, (_, k) => c.out[k % c.out.length]).join('');
        const ev: TokenEvent = { ...base, tokenId: id, text: '' };
        if (c.tokens === 1) ev.cachedTokens = 0;
        if (s.logprobs !== undefined) {
          ev.logprob = -0.5;
          ev.topLogprobs = Array.from({ length: s.logprobs }, (_, k) => ({ id: 65 + k, token: String.fromCharCode(65 + k), logprob: -1 - k }));
        }
        // Stop strings: end before the first occurrence; hold back text that may begin one.
        const hit = s.stop.map((x) => full.indexOf(x)).filter((i) => i >= 0);
        if (hit.length) {
          const cut = Math.min(...hit);
          ev.text = full.slice(c.emitted, cut);
          c.emitted = cut;
          ev.finishReason = 'stop';
        } else {
          let safe = full.length;
          for (const x of s.stop) for (let k = Math.min(x.length - 1, full.length); k > 0; k--) if (full.endsWith(x.slice(0, k))) safe = Math.min(safe, full.length - k);
          if (c.tokens >= s.maxTokens) {
            safe = full.length;
            ev.finishReason = 'length';
          }
          ev.text = full.slice(c.emitted, safe);
          c.emitted = safe;
        }
        if (ev.finishReason) {
          c.done = true;
          ev.completionTokens = c.tokens;
        }
        events.push(ev);
      });
      if (r.choices.every((c) => c.done)) {
        this.running.delete(r.req.id);
        const next = this.waiting.shift();
        if (next) this.running.set(next.req.id, next);
      }
      r.onEvents(events);
    }
    this.schedule();
  }
}

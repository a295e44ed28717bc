// The engine off the HTTP event loop: startEngineHost() starts src/engine/worker.ts in a worker
// thread (which loads the model and runs the engine's step loop) and returns an EngineClient for
// the server. Requests and aborts go to the worker as messages; each engine step comes back as
// one message of events, routed here to the per-request callbacks. The tokenizer is rebuilt on
// this thread from the worker's tokenizer.json, so encode/decode/chat templates are synchronous.
//
// Failures stay contained: a request that fails inside the engine gets a final event with an
// `error`; if the worker itself dies, every in-flight request gets one and later submits are
// rejected with EngineError('internal'). The process never goes down with it.

import { basename } from 'node:path';
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { applyChatTemplate, ChatTemplateError, templateToolSupport } from '../formats/chat-template.ts';
import { Tokenizer } from '../formats/tokenizer.ts';
import { EngineError, type ChatTurn, type EngineClient, type EngineStats, type GenerateRequest, type TokenEvent, type ToolTemplateSupport } from './api.ts';
import type { EngineHostOptions, FromWorker, ToWorker } from './worker-protocol.ts';

export { kvBlocksFor, type EngineHostOptions } from './worker-protocol.ts';

interface InFlight {
  onEvents: (events: TokenEvent[]) => void;
  /** Choices without their final event yet. */
  open: Set<number>;
  promptTokens: number;
  /** Tokens received per choice. */
  tokens: number[];
  accept?: { resolve: () => void; reject: (e: Error) => void };
}

export interface EngineHost extends EngineClient {
  /** KV pool facts, for logs: blocks, tokens per block, bytes per token. */
  readonly kv: { blocks: number; blockSize: number; bytesPerToken: number };
}

/** Starts the engine's worker thread; resolves once the model is loaded. */
export async function startEngineHost(opts: EngineHostOptions, log: (msg: string) => void = (m) => console.warn(m)): Promise<EngineHost> {
  const here = import.meta.url;
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    tsx = 'file://' + createRequire(here).resolve('tsx/esm/api');
  }
  // The worker registers tsx itself (hooks registered on this thread do not reach it), then
  // imports the TypeScript entry point, as bin/slipstream.js does for the CLI.
  const boot = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.__tsx)
      .then((m) => { m.register(); return import(workerData.__module); })
      .catch((e) => parentPort.postMessage({ type: 'fatal', message: String((e && e.stack) || e) }));`;
  const worker = new Worker(boot, {
    eval: true,
    workerData: { opts: { ...opts }, __tsx: tsx, __module: new URL('./worker.ts', here).href },
  });
  const host = new Host(worker, opts.modelName ?? modelNameOf(opts.model), log);
  await host.ready;
  return host;
}

function modelNameOf(spec: string): string {
  if (spec.startsWith('hf:')) return spec.slice(3).split('@')[0]!;
  return basename(spec.replace(/\/+$/, '')).replace(/\.gguf$/, '');
}

class Host implements EngineHost {
  readonly modelName: string;
  maxContext = 0;
  kv = { blocks: 0, blockSize: 0, bytesPerToken: 0 };
  readonly ready: Promise<void>;
  private tok!: Tokenizer;
  private last: EngineStats = { running: 0, waiting: 0, kvBlocksUsed: 0, kvBlocksTotal: 0, prefixCacheHitRate: 0, preemptions: 0, promptTokens: 0, generationTokens: 0 };
  private readonly inflight = new Map<string, InFlight>();
  private closing = false;
  private dead: string | null = null;
  private drained: (() => void) | null = null;

  constructor(
    private readonly worker: Worker,
    modelName: string,
    private readonly log: (msg: string) => void,
  ) {
    this.modelName = modelName;
    let started = false;
    this.ready = new Promise((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          started = true;
          this.maxContext = m.maxContext;
          this.kv = { blocks: m.numBlocks, blockSize: m.blockSize, bytesPerToken: m.kvBytesPerToken };
          this.tok = Tokenizer.fromJson(m.tokenizer.json, m.tokenizer.config, m.tokenizer.file, { eos_token_id: m.tokenizer.eosIds });
          this.last = m.stats;
          resolve();
        } else if (m.type === 'fatal') {
          // before 'ready' the model did not load (a bad path or file): the caller reports it
          const e = new Error(m.message);
          e.name = 'ModelLoadError';
          reject(e);
          this.fail(m.message, !started);
          void worker.terminate();
        } else this.onMessage(m);
      });
      worker.on('error', (e) => {
        reject(e);
        this.fail(`engine worker crashed: ${e.message}`);
      });
      worker.on('exit', (code) => {
        reject(new Error(`engine worker exited with code ${code} before the model was loaded`));
        if (!this.closing) this.fail(`engine worker exited with code ${code}`);
      });
    });
  }

  submit(req: GenerateRequest, onEvents: (events: TokenEvent[]) => void): Promise<void> {
    if (this.dead) return Promise.reject(new EngineError('internal', this.dead));
    if (this.closing) return Promise.reject(new EngineError('shutting_down', 'the server is shutting down'));
    if (this.inflight.has(req.id)) return Promise.reject(new EngineError('bad_request', `request id ${req.id} is already in use`));
    return new Promise((resolve, reject) => {
      const n = Number.isInteger(req.sampling?.n) && req.sampling.n > 0 ? req.sampling.n : 1;
      this.inflight.set(req.id, { onEvents, open: new Set(Array.from({ length: n }, (_, i) => i)), promptTokens: req.promptIds?.length ?? 0, tokens: new Array<number>(n).fill(0), accept: { resolve, reject } });
      this.worker.postMessage({ type: 'submit', req } satisfies ToWorker);
    });
  }

  abort(requestId: string): void {
    if (this.inflight.has(requestId) && !this.dead) this.worker.postMessage({ type: 'abort', id: requestId } satisfies ToWorker);
  }

  stats(): EngineStats {
    return { ...this.last };
  }

  encode(text: string, addSpecialTokens: boolean): number[] {
    try {
      return this.tok.encode(text, { addSpecialTokens });
    } catch (e) {
      throw new EngineError('bad_request', (e as Error).message);
    }
  }

  decode(ids: number[]): string {
    if (!Array.isArray(ids) || ids.some((t) => !Number.isInteger(t) || t < 0)) throw new EngineError('bad_request', 'token ids must be integers >= 0');
    return this.tok.decode(ids);
  }

  applyChatTemplate(messages: ChatTurn[], addGenerationPrompt: boolean, opts: { tools?: unknown[] } = {}): string {
    const tok = this.tok;
    if (!tok.chatTemplate) throw new EngineError('bad_request', `the model ${this.modelName} has no chat template`);
    try {
      return applyChatTemplate(tok.chatTemplate, messages, {
        addGenerationPrompt,
        bosToken: tok.bosId !== null ? tok.idToToken(tok.bosId) : undefined,
        eosToken: tok.eosIds.length ? tok.idToToken(tok.eosIds[0]!) : undefined,
        ...(opts.tools ? { extra: { tools: opts.tools } } : {}),
      });
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new EngineError(e.kind === 'syntax' ? 'internal' : 'bad_request', e.message);
      throw e;
    }
  }

  toolSupport(): ToolTemplateSupport {
    return templateToolSupport(this.tok.chatTemplate);
  }

  async shutdown(graceMs: number): Promise<void> {
    this.closing = true;
    if (this.inflight.size > 0 && !this.dead) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, graceMs));
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.drained = null;
    }
    // Whatever is left is aborted: its callers hear so before the worker goes.
    for (const id of [...this.inflight.keys()]) this.finishAll(id, 'abort');
    await this.worker.terminate();
  }

  private onMessage(m: FromWorker): void {
    this.last = m.stats;
    switch (m.type) {
      case 'accepted': {
        const f = this.inflight.get(m.id);
        f?.accept?.resolve();
        if (f) f.accept = undefined;
        break;
      }
      case 'rejected': {
        const f = this.inflight.get(m.id);
        this.inflight.delete(m.id);
        f?.accept?.reject(new EngineError(m.code, m.message));
        this.checkDrained();
        break;
      }
      case 'events':
        this.route(m.events);
        break;
      case 'log':
        this.log(m.msg);
        break;
    }
  }

  /** Delivers a step's events, one call per request, in order. */
  private route(events: TokenEvent[]): void {
    const byReq = new Map<string, TokenEvent[]>();
    for (const e of events) {
      let a = byReq.get(e.requestId);
      if (!a) byReq.set(e.requestId, (a = []));
      a.push(e);
    }
    for (const [id, evs] of byReq) {
      const f = this.inflight.get(id);
      if (!f) continue;
      for (const e of evs) {
        if (e.tokenId >= 0) f.tokens[e.index] = (f.tokens[e.index] ?? 0) + 1;
        if (e.finishReason) f.open.delete(e.index);
      }
      if (f.open.size === 0) this.inflight.delete(id);
      this.deliver(f, evs);
    }
    this.checkDrained();
  }

  private deliver(f: InFlight, evs: TokenEvent[]): void {
    try {
      f.onEvents(evs);
    } catch (e) {
      this.log(`engine host: an event callback threw: ${(e as Error).message}`);
    }
  }

  /** Ends every open choice of a request with a final event made here (worker gone or shut down). */
  private finishAll(id: string, reason: 'abort', error?: string): void {
    const f = this.inflight.get(id);
    if (!f) return;
    this.inflight.delete(id);
    if (f.accept) {
      f.accept.reject(new EngineError(error ? 'internal' : 'shutting_down', error ?? 'the server is shutting down'));
      return;
    }
    const evs = [...f.open].map((index): TokenEvent => {
      const e: TokenEvent = { requestId: id, index, tokenId: -1, text: '', finishReason: reason, promptTokens: f.promptTokens, completionTokens: f.tokens[index] ?? 0 };
      if (error) e.error = error;
      return e;
    });
    this.deliver(f, evs);
  }

  private fail(message: string, quiet = false): void {
    if (this.dead) return;
    this.dead = message;
    if (!quiet) this.log(message);
    for (const id of [...this.inflight.keys()]) this.finishAll(id, 'abort', message);
    this.checkDrained();
  }

  private checkDrained(): void {
    if (this.inflight.size === 0) this.drained?.();
  }
}

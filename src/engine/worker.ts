// The engine's thread: loads the model, owns the Engine, and runs step() in a loop while there
// is work. Between steps it yields to its own event loop (setImmediate), so submits and aborts
// posted by the main thread land between two steps. Each step's events go back in one message.
//
// Protocol (main -> worker): { type: 'submit', req } | { type: 'abort', id }
// (worker -> main): 'ready' | 'fatal' | 'accepted' | 'rejected' | 'events' | 'log'
// Every message from the worker carries the engine's stats, so the main thread answers stats()
// without a round trip.

import { parentPort, workerData } from 'node:worker_threads';
import { EngineError, type TokenEvent } from './api.ts';
import { Engine } from './engine.ts';
import { kvDtypeProblem, KvPool } from '../models/kv.ts';
import { loadModel, prepareWeights } from '../models/load.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { kvBlocksFor, type EngineHostOptions, type ToWorker } from './worker-protocol.ts';

const port = parentPort!;
const opts = workerData.opts as EngineHostOptions;

async function main(): Promise<void> {
  const be = cpuBackend();
  if (opts.threads !== undefined) be.setThreads(opts.threads);
  const lm = await loadModel(opts.model, be, { quantize: opts.quantize, lora: opts.lora });
  // weights the backend repacks at first use (prepacked q4_k on AVX2): now, before 'ready' (and
  // before the KV pool, whose pages are faulted in by a background thread), not inside the first
  // request
  const prep = prepareWeights(lm.model, be);
  const blockSize = opts.blockSize ?? 16;
  const kvDtype = opts.kvDtype ?? 'f32';
  const kvProblem = kvDtypeProblem(lm.config, kvDtype);
  if (kvProblem) throw new Error(kvProblem);
  const maxSeqs = opts.maxSeqs ?? 16;
  const numBlocks = kvBlocksFor(KvPool.bytesPerToken(lm.config, kvDtype), blockSize, lm.config.maxPosition, maxSeqs, opts.kvCacheMemory);
  const engine = new Engine(lm.model, lm.tokenizer, {
    numBlocks,
    blockSize,
    kvDtype,
    maxBatchTokens: opts.maxBatchTokens ?? 512,
    maxSeqs,
    maxWaiting: opts.maxWaiting ?? 256,
    eosIds: lm.config.eosIds,
    log: (msg) => port.postMessage({ type: 'log', msg, stats: engine.stats() }),
  });

  // Requests still running, with their unfinished choices (to fail them if a step throws).
  const live = new Map<string, number>();
  let queued = false;
  const kick = () => {
    if (!queued) {
      queued = true;
      setImmediate(loop);
    }
  };
  const loop = () => {
    queued = false;
    if (!engine.hasWork()) return;
    let events: TokenEvent[];
    try {
      events = engine.step();
    } catch (e) {
      // The engine catches model failures itself; anything else fails every live request.
      const msg = `engine step failed: ${(e as Error).message}`;
      for (const id of live.keys()) engine.abort(id, msg);
      try {
        events = engine.step();
      } catch {
        events = [];
      }
      port.postMessage({ type: 'log', msg, stats: engine.stats() });
    }
    for (const ev of events) {
      if (!ev.finishReason) continue;
      const left = (live.get(ev.requestId) ?? 1) - 1;
      if (left <= 0) live.delete(ev.requestId);
      else live.set(ev.requestId, left);
    }
    if (events.length) port.postMessage({ type: 'events', events, stats: engine.stats() });
    if (engine.hasWork()) kick();
  };

  port.on('message', (m: ToWorker) => {
    if (m.type === 'submit') {
      try {
        engine.submit(m.req);
        live.set(m.req.id, m.req.sampling.n);
        port.postMessage({ type: 'accepted', id: m.req.id, stats: engine.stats() });
        kick();
      } catch (e) {
        const err = e instanceof EngineError ? e : new EngineError('internal', (e as Error).message);
        port.postMessage({ type: 'rejected', id: m.req.id, code: err.code, message: err.message, stats: engine.stats() });
      }
    } else if (m.type === 'abort') {
      if (engine.abort(m.id)) kick();
    }
  });

  if (prep.matrices > 0) port.postMessage({ type: 'log', msg: `prepacked ${prep.matrices} q4_k matrices in ${prep.seconds.toFixed(1)} s`, stats: engine.stats() });

  const tok = lm.tokenizer;
  port.postMessage({
    type: 'ready',
    maxContext: engine.maxContext,
    tokenizer: { json: tok.json, config: tok.config, file: tok.file, eosIds: tok.eosIds },
    kvBytesPerToken: KvPool.bytesPerToken(lm.config, kvDtype),
    numBlocks,
    blockSize,
    stats: engine.stats(),
  });
}

main().catch((e: Error) => port.postMessage({ type: 'fatal', message: e.message }));

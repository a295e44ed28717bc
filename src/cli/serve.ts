// `slipstream serve`: start the engine (model in a worker thread), put the OpenAI-compatible
// server in front of it, and shut down cleanly on SIGTERM/SIGINT: refuse new requests (503),
// let in-flight ones finish within a grace period, close, exit 0.

import { defaultModelDir } from '../models/default.ts';
import { startEngineHost } from '../engine/worker-host.ts';
import { buildServer, startDraining } from '../server/app.ts';
import { UsageError } from '../errors.ts';
import { EngineError, type EngineClient } from '../engine/api.ts';
import { MultiEngine } from '../server/models-router.ts';
import type { EngineHostOptions } from '../engine/worker-host.ts';

export interface ServeCliOptions {
  /** One model, or several (each [NAME=]MODEL) served by name. */
  model?: string | string[];
  host?: string;
  port?: string;
  apiKey?: string;
  quantize?: string;
  lora?: string;
  kvCacheMemory?: string;
  maxBatchTokens?: string;
  maxSeqs?: string;
  maxWaiting?: string;
  threads?: string;
  servedModelName?: string;
  /** Log every request (fastify's logger). */
  log?: boolean;
}

const GRACE_MS = 30_000;

function num(name: string, v: string | undefined, opts: { int?: boolean; min?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (opts.int && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${opts.int ? 'an integer' : 'a number'}, got '${v}'`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`--${name} must be >= ${opts.min}, got ${v}`);
  return n;
}

export async function serveCommand(o: ServeCliOptions): Promise<void> {
  const host = o.host ?? '127.0.0.1';
  const port = num('port', o.port ?? '8000', { int: true, min: 0 })!;
  if (port > 65535) throw new UsageError(`--port must be <= 65535, got ${port}`);
  if (o.quantize !== undefined && o.quantize !== 'q8_0') throw new UsageError(`--quantize supports q8_0, got '${o.quantize}'`);
  const kvGiB = num('kv-cache-memory', o.kvCacheMemory);
  if (kvGiB !== undefined && kvGiB <= 0) throw new UsageError(`--kv-cache-memory must be > 0 GiB, got ${kvGiB}`);
  const apiKey = o.apiKey ?? (process.env.SLIPSTREAM_API_KEY || undefined);

  const models = o.model === undefined ? [] : Array.isArray(o.model) ? o.model : [o.model];
  const hostOpts = {
    quantize: o.quantize as 'q8_0' | undefined,
    lora: o.lora,
    kvCacheMemory: kvGiB === undefined ? undefined : Math.floor(kvGiB * 2 ** 30),
    maxBatchTokens: num('max-batch-tokens', o.maxBatchTokens, { int: true, min: 1 }),
    maxSeqs: num('max-seqs', o.maxSeqs, { int: true, min: 1 }),
    maxWaiting: num('max-waiting', o.maxWaiting, { int: true, min: 0 }),
    threads: num('threads', o.threads, { int: true, min: 1 }),
  };
  const engine =
    models.length > 1
      ? await startEngines(models, hostOpts, o)
      : await startEngineHost({ ...hostOpts, model: models[0] ?? defaultModelDir(), modelName: o.servedModelName ?? (models.length === 0 ? 'slipstream-default' : undefined) });
  const app = buildServer(engine, { apiKey, logger: o.log ?? false }); // the model name is the engine's
  const url = await app.listen({ host, port });
  const names = engine instanceof MultiEngine ? engine.names.join(', ') : engine.modelName;
  process.stderr.write(`slipstream: serving ${names} at ${url}/v1 (context ${engine.maxContext} tokens${apiKey ? ', API key required' : ''})\n`);

  // Resolves on the first signal, once everything is closed; a second signal exits at once.
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) {
        process.stderr.write(`slipstream: ${sig} again, exiting now\n`);
        process.exit(1);
      }
      stopping = true;
      process.stderr.write(`slipstream: ${sig}: no new requests; finishing in-flight ones (up to ${GRACE_MS / 1000} s)\n`);
      startDraining(app);
      engine
        .shutdown(GRACE_MS)
        .catch((e: unknown) => process.stderr.write(`slipstream: engine shutdown: ${(e as Error).message}\n`))
        .then(() => app.close())
        .catch((e: unknown) => process.stderr.write(`slipstream: server close: ${(e as Error).message}\n`))
        .finally(() => {
          process.exitCode = 0;
          resolve();
        });
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
  });
}

/**
 * Several models, one engine host (worker thread, KV pool) each, behind a MultiEngine that routes
 * by `model`. Each is given as [NAME=]MODEL; --kv-cache-memory is split evenly between them.
 */
async function startEngines(specs: string[], base: Omit<EngineHostOptions, 'model'>, o: ServeCliOptions): Promise<MultiEngine> {
  if (o.servedModelName !== undefined) throw new UsageError('--served-model-name names one model; with several --model flags name each as --model NAME=MODEL');
  if (o.lora !== undefined) throw new UsageError('--lora applies to one model; serve the merged model (slipstream finetune writes model/) as one of the --model flags');
  const parsed = specs.map((s) => {
    const m = /^([A-Za-z0-9][\w.:-]*)=(.+)$/.exec(s);
    return m && !m[1]!.startsWith('hf:') ? { name: m[1]!, model: m[2]! } : { name: undefined, model: s };
  });
  // --kv-cache-memory is the total; without it each engine sizes its pool as a lone one does
  // (what its --max-seqs full contexts need, at most 40% of the memory free when it loads).
  const share = base.kvCacheMemory === undefined ? undefined : Math.floor(base.kvCacheMemory / parsed.length);
  const hosts: EngineClient[] = [];
  try {
    for (const p of parsed) {
      // one at a time: each load maps its weights and sizes its pool
      hosts.push(await startEngineHost({ ...base, model: p.model, modelName: p.name, kvCacheMemory: share }));
    }
    return new MultiEngine(hosts);
  } catch (e) {
    await Promise.all(hosts.map((h) => h.shutdown(0)));
    if (e instanceof EngineError) throw new UsageError(e.message);
    throw e;
  }
}

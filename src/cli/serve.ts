// `slipstream serve`: start the engine (model in a worker thread), put the OpenAI-compatible
// server in front of it, and shut down cleanly on SIGTERM/SIGINT: refuse new requests (503),
// let in-flight ones finish within a grace period, close, exit 0.

import { defaultModelDir } from '../models/default.ts';
import { startEngineHost } from '../engine/worker-host.ts';
import { buildServer, startDraining } from '../server/app.ts';
import { UsageError } from '../errors.ts';
import { LOG_FORMATS, type LogFormat } from '../server/request-log.ts';

export interface ServeCliOptions {
  model?: string;
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
  /** The per-request log line on stdout: text (default) or json. */
  logFormat?: string;
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
  const logFormat = (o.logFormat ?? 'text') as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) throw new UsageError(`--log-format must be ${LOG_FORMATS.join(' or ')}, got '${o.logFormat}'`);

  const engine = await startEngineHost({
    model: o.model ?? defaultModelDir(),
    modelName: o.servedModelName ?? (o.model === undefined ? 'slipstream-default' : undefined),
    quantize: o.quantize as 'q8_0' | undefined,
    lora: o.lora,
    kvCacheMemory: kvGiB === undefined ? undefined : Math.floor(kvGiB * 2 ** 30),
    maxBatchTokens: num('max-batch-tokens', o.maxBatchTokens, { int: true, min: 1 }),
    maxSeqs: num('max-seqs', o.maxSeqs, { int: true, min: 1 }),
    maxWaiting: num('max-waiting', o.maxWaiting, { int: true, min: 0 }),
    threads: num('threads', o.threads, { int: true, min: 1 }),
  });
  const app = buildServer(engine, { apiKey, logger: o.log ?? false, requestLog: { format: logFormat } }); // the model name is the engine's
  const url = await app.listen({ host, port });
  process.stderr.write(`slipstream: serving ${engine.modelName} at ${url}/v1 (context ${engine.maxContext} tokens${apiKey ? ', API key required' : ''})\n`);

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

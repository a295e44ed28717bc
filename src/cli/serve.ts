// `slipstream serve`: start the engine (model in a worker thread), put the OpenAI-compatible
// server in front of it, and shut down cleanly on SIGTERM/SIGINT, or when the process that
// launched it goes away: answer new requests 503 with Retry-After (the listener stays open), let
// in-flight ones finish within a grace period, close, exit 0.
//
// Why the launcher watch: `npx slipstream serve` runs `sh -c slipstream ...` under npm; SIGTERM to
// npm (what systemd, Docker, Kubernetes or a script sends to the PID it started) kills npm and the
// shell but never reaches this process, which is re-parented and would keep serving. So the
// server checks its parent pid every second and drains when it changes (re-parented: the
// launcher is gone). `--no-parent-watch` turns that off (nohup-style detached servers).

import { createServer } from 'node:net';
import { defaultImageModelDir, defaultModelDir, NO_DEFAULT_IMAGE_MODEL } from '../models/default.ts';
import { LOAD_QUANTS, type LoadQuant } from '../models/load.ts';
import { isKvDtype, KV_DTYPES, type KvDType } from '../models/kv.ts';
import { startEngineHost } from '../engine/worker-host.ts';
import { buildServer, startDraining } from '../server/app.ts';
import { UsageError } from '../errors.ts';
import { LOG_FORMATS, type LogFormat } from '../server/request-log.ts';
import { EngineError, type EngineClient } from '../engine/api.ts';
import { MultiEngine } from '../server/models-router.ts';
import type { EngineHostOptions } from '../engine/worker-host.ts';
import type { ImageClient } from '../diffusion/service.ts';

export interface ServeCliOptions {
  /** One model, or several (each [NAME=]MODEL) served by name. */
  model?: string | string[];
  host?: string;
  port?: string;
  apiKey?: string;
  quantize?: string;
  lora?: string;
  kvCacheMemory?: string;
  kvDtype?: string;
  maxBatchTokens?: string;
  maxSeqs?: string;
  maxWaiting?: string;
  threads?: string;
  servedModelName?: string;
  /** Log every request (fastify's logger). */
  log?: boolean;
  /** Drain and exit when the launching process exits (default true). */
  parentWatch?: boolean;
  /** The per-request log line on stdout: text (default) or json. */
  logFormat?: string;
  /** A Stable Diffusion pipeline (diffusers folder or hf:org/name) for /v1/images/*. */
  /** false: --no-image-model. */
  imageModel?: string | false;
  /** Its weights variant (fp16). */
  imageVariant?: string;
  /** A single-file image model's diffusers config folder, and its prediction type. */
  imageConfig?: string;
  imagePredictionType?: string;
  /** --image-lora file[:scale], repeatable: LoRAs merged into the image model. */
  imageLora?: string[];
}

/** A failure to serve that is not a bad flag (port in use, address not available): one line, exit 1. */
export class ServeError extends Error {
  override name = 'ServeError';
}

/** The one-line reason a listen on host:port failed. */
export function listenErrorMessage(e: NodeJS.ErrnoException, host: string, port: number): string {
  switch (e.code) {
    case 'EADDRINUSE':
      return `port ${port} is in use (EADDRINUSE) on ${host}: stop the other server or pick another --port`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${host}:${port} (EADDRNOTAVAIL): ${host} is not an address of this machine; try --host 127.0.0.1 or 0.0.0.0`;
    case 'EACCES':
    case 'EPERM':
      return `no permission to listen on ${host}:${port} (${e.code}): ports below 1024 need privileges; pick a port >= 1024`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve --host ${host} (${e.code})`;
    default:
      return `cannot listen on ${host}:${port}: ${e.message}`;
  }
}

/** Fails fast (before the model loads) when host:port cannot be bound. Port 0 always can. */
function checkListen(host: string, port: number): Promise<void> {
  if (port === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => reject(new ServeError(listenErrorMessage(e, host, port))));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve()));
  });
}

/** Calls `onGone` once when this process is re-parented (its launcher exited). Unref'd. */
export function watchParent(onGone: (ppid: number) => void, everyMs = 1000): () => void {
  const start = process.ppid;
  // Under a container runtime the server may be PID 1 (ppid 0) or a child of init: nothing to watch.
  if (start <= 1) return () => {};
  const t = setInterval(() => {
    if (process.ppid !== start) {
      clearInterval(t);
      onGone(start);
    }
  }, everyMs);
  t.unref();
  return () => clearInterval(t);
}

const GRACE_MS = 30_000;

function num(name: string, v: string | undefined, opts: { int?: boolean; min?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (opts.int && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${opts.int ? 'an integer' : 'a number'}, got '${v}'`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`--${name} must be >= ${opts.min}, got ${v}`);
  return n;
}

function threads(v: string | undefined): number | undefined {
  const n = num('threads', v, { int: true, min: 1 });
  if (n !== undefined && n > 1024) throw new UsageError(`--threads must be <= 1024, got ${n}`);
  return n;
}

export async function serveCommand(o: ServeCliOptions): Promise<void> {
  const host = o.host ?? '127.0.0.1';
  const port = num('port', o.port ?? '8000', { int: true, min: 0 })!;
  if (port > 65535) throw new UsageError(`--port must be <= 65535, got ${port}`);
  if (o.quantize !== undefined && !(LOAD_QUANTS as readonly string[]).includes(o.quantize)) throw new UsageError(`--quantize supports ${LOAD_QUANTS.join(', ')}, got '${o.quantize}'`);
  const kvGiB = num('kv-cache-memory', o.kvCacheMemory);
  if (kvGiB !== undefined && kvGiB <= 0) throw new UsageError(`--kv-cache-memory must be > 0 GiB, got ${kvGiB}`);
  if (o.kvDtype !== undefined && !isKvDtype(o.kvDtype)) throw new UsageError(`--kv-dtype must be ${KV_DTYPES.join(', ')}, got '${o.kvDtype}'`);
  const apiKey = o.apiKey ?? (process.env.SLIPSTREAM_API_KEY || undefined);
  await checkListen(host, port);
  const logFormat = (o.logFormat ?? 'text') as LogFormat;
  if (!LOG_FORMATS.includes(logFormat)) throw new UsageError(`--log-format must be ${LOG_FORMATS.join(' or ')}, got '${o.logFormat}'`);

  const models = o.model === undefined ? [] : Array.isArray(o.model) ? o.model : [o.model];
  const hostOpts = {
    quantize: o.quantize as LoadQuant | undefined,
    lora: o.lora,
    kvCacheMemory: kvGiB === undefined ? undefined : Math.floor(kvGiB * 2 ** 30),
    kvDtype: o.kvDtype as KvDType | undefined,
    maxBatchTokens: num('max-batch-tokens', o.maxBatchTokens, { int: true, min: 1 }),
    maxSeqs: num('max-seqs', o.maxSeqs, { int: true, min: 1 }),
    maxWaiting: num('max-waiting', o.maxWaiting, { int: true, min: 0 }),
    threads: threads(o.threads),
  };
  // The image model first: a bad folder should fail before the LLM's load is paid for.
  let images: ImageClient | undefined;
  if (o.imageModel === 'default') {
    const dir = defaultImageModelDir();
    if (!dir) throw new UsageError(`--image-model default: ${NO_DEFAULT_IMAGE_MODEL}`);
    images = await startImages(dir, undefined, hostOpts.threads, {}, o.imageLora);
  } else if (typeof o.imageModel === 'string') images = await startImages(o.imageModel, o.imageVariant, hostOpts.threads, { config: o.imageConfig, predictionType: o.imagePredictionType }, o.imageLora);
  else if (o.imageModel === undefined && models.length === 0) {
    // `serve` with no models named: the embedded default LLM and, when it is there, the embedded
    // default image model (the playground's Image tab then works out of the box)
    const dir = defaultImageModelDir();
    if (dir) images = await startImages(dir, undefined, hostOpts.threads);
  }
  const engine =
    models.length > 1
      ? await startEngines(models, hostOpts, o)
      : await startEngineHost({ ...hostOpts, model: models[0] ?? defaultModelDir(), modelName: o.servedModelName ?? (models.length === 0 ? 'slipstream-default' : undefined) });
  const app = buildServer(engine, { apiKey, logger: o.log ?? false, requestLog: { format: logFormat }, images }); // the model name is the engine's
  let url: string;
  try {
    url = await app.listen({ host, port });
  } catch (e) {
    await engine.shutdown(0).catch(() => {});
    await images?.close().catch(() => {});
    throw new ServeError(listenErrorMessage(e as NodeJS.ErrnoException, host, port));
  }
  const names = engine instanceof MultiEngine ? engine.names.join(', ') : engine.modelName;
  process.stderr.write(
    `slipstream: serving ${names} at ${url}/v1 (context ${engine.maxContext} tokens${apiKey ? ', API key required' : ''})` +
      `${images ? `, images with ${images.modelName} (${images.nativeSize}x${images.nativeSize})` : ''}; playground at ${url}/\n`,
  );

  // Resolves on the first signal, once everything is closed; a second signal exits at once.
  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      stopWatch();
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
        .then(() => images?.close())
        .then(() => app.close())
        .catch((e: unknown) => process.stderr.write(`slipstream: server close: ${(e as Error).message}\n`))
        .finally(() => {
          process.exitCode = 0;
          resolve();
        });
    };
    const stopWatch = o.parentWatch === false ? () => {} : watchParent((ppid) => onSignal(`the launching process (pid ${ppid}) exited`));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    // A closed terminal: drain too (unless detached on purpose, where nohup's SIGHUP-ignore must hold).
    if (o.parentWatch !== false) process.on('SIGHUP', () => onSignal('SIGHUP'));
    // If whoever read our stderr is gone, a log line must not crash the drain (EPIPE).
    process.stderr.on('error', () => {});
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

/** The image model's worker; a bad folder or download is one line, exit 1. */
async function startImages(spec: string, variant: string | undefined, threads: number | undefined, single: { config?: string; predictionType?: string } = {}, loraValues?: string[]): Promise<ImageClient> {
  const { existsSync, statSync } = await import('node:fs');
  const { downloadModel, parseModelSpec } = await import('../formats/hub.ts');
  const { diffusersInclude, loraFlags } = await import('./image.ts');
  const loras = loraFlags(loraValues, '--image-lora');
  const { startImageService } = await import('../diffusion/service.ts');
  let dir = spec;
  if (parseModelSpec(spec)) dir = await downloadModel(spec, { progress: true, include: diffusersInclude(variant) });
  else if (!existsSync(dir)) throw new UsageError(`--image-model ${spec}: no such file or folder (expected a diffusers folder with model_index.json, hf:org/name, or a single-file .safetensors checkpoint)`);
  if (single.predictionType === 'v-prediction') single = { ...single, predictionType: 'v_prediction' };
  if (single.predictionType !== undefined && single.predictionType !== 'epsilon' && single.predictionType !== 'v_prediction') throw new UsageError(`--image-prediction-type must be epsilon or v_prediction, got '${single.predictionType}'`);
  try {
    return await startImageService({ dir, variant, threads, ...single, loras });
  } catch (e) {
    throw new ServeError(`--image-model ${spec}: ${(e as Error).message.split('\n')[0]}`);
  }
}

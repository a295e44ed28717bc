// Image generation off the HTTP event loop: startImageService() starts src/diffusion/worker.ts in
// a worker thread (which loads the pipeline and runs one request at a time) and returns an
// ImageClient for the server. Requests wait in a queue here, so a client that goes away before its
// turn costs nothing; the one running reports each denoising step, and its pictures come back as
// transferred buffers. A failure inside the worker fails that request (or, if the worker dies, every
// request), never the process.

import { basename } from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { ImageRequest, ImageResult, StepProgress } from './pipeline.ts';
import type { LoraSpec } from './lora.ts';

/** What the server needs of an image model. */
export interface ImageClient {
  readonly modelName: string;
  readonly nativeSize: number;
  /** The VAE's pixels per latent: sizes must be multiples of it. */
  readonly sizeMultiple: number;
  /** LoRAs merged into the model (for the pictures' parameters text). */
  readonly loras?: readonly LoraSpec[];
  /**
   * Queues a request; resolves with its pictures. Rejects with ImageServiceError: 'invalid'
   * (a bad field, named), 'full' (the queue is full), 'aborted' (the signal fired), 'internal'.
   */
  generate(req: ImageRequest, onStep?: (p: StepProgress) => void, signal?: AbortSignal): Promise<ImageResult>;
  stats(): ImageStats;
  close(): Promise<void>;
}

export interface ImageStats {
  waiting: number;
  running: number;
  /** The running request's progress, 0..1 (0 when idle). */
  progress: number;
  stepsTotal: number;
  imagesTotal: number;
}

export class ImageServiceError extends Error {
  override name = 'ImageServiceError';
  constructor(readonly kind: 'invalid' | 'full' | 'aborted' | 'internal', message: string, readonly field?: string) {
    super(message);
  }
}

export interface ImageServiceOptions {
  /** A diffusers folder, or a single-file checkpoint. */
  dir: string;
  variant?: string;
  /** Single-file checkpoints: a diffusers folder describing it, and the prediction type. */
  config?: string;
  predictionType?: string;
  /** LoRA files merged into the weights at load (lora.ts). */
  loras?: LoraSpec[];
  modelName?: string;
  threads?: number;
  /** Requests that may wait behind the running one (default 16). */
  maxWaiting?: number;
}

type ToWorker = { type: 'generate'; id: number; req: ImageRequest };
type FromWorker =
  | { type: 'ready'; nativeSize: number; sizeMultiple: number }
  | { type: 'fatal'; message: string }
  | { type: 'step'; id: number; progress: StepProgress }
  | { type: 'done'; id: number; result: ImageResult }
  | { type: 'failed'; id: number; message: string; field?: string; invalid: boolean };

interface Job {
  id: number;
  req: ImageRequest;
  onStep?: (p: StepProgress) => void;
  resolve: (r: ImageResult) => void;
  reject: (e: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export async function startImageService(opts: ImageServiceOptions): Promise<ImageClient> {
  let tsx: string;
  try {
    tsx = import.meta.resolve('tsx/esm/api');
  } catch {
    tsx = 'file://' + createRequire(import.meta.url).resolve('tsx/esm/api');
  }
  const boot = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.__tsx)
      .then((m) => { m.register(); return import(workerData.__module); })
      .catch((e) => parentPort.postMessage({ type: 'fatal', message: String((e && e.stack) || e) }));`;
  const worker = new Worker(boot, { eval: true, workerData: { opts: { ...opts }, __tsx: tsx, __module: new URL('./worker.ts', import.meta.url).href } });
  const svc = new Service(worker, opts.modelName ?? basename(opts.dir.replace(/\/+$/, '')).replace(/\.safetensors$/, ''), opts.maxWaiting ?? 16, opts.loras ?? []);
  await svc.ready;
  return svc;
}

class Service implements ImageClient {
  nativeSize = 0;
  sizeMultiple = 8;
  readonly ready: Promise<void>;
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  private dead: string | null = null;
  private nextId = 1;
  private progress = 0;
  private stepsTotal = 0;
  private imagesTotal = 0;

  constructor(private readonly worker: Worker, readonly modelName: string, private readonly maxWaiting: number, readonly loras: readonly LoraSpec[] = []) {
    this.ready = new Promise((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') {
          this.nativeSize = m.nativeSize;
          this.sizeMultiple = m.sizeMultiple;
          resolve();
        } else if (m.type === 'fatal') {
          this.die(m.message);
          reject(new Error(m.message));
        } else this.onMessage(m);
      });
      worker.on('error', (e) => {
        this.die(e.message);
        reject(e);
      });
      worker.on('exit', (code) => {
        this.die(`the image worker exited (code ${code})`);
        reject(new Error(`the image worker exited (code ${code}) before the model loaded`));
      });
    });
  }

  generate(req: ImageRequest, onStep?: (p: StepProgress) => void, signal?: AbortSignal): Promise<ImageResult> {
    if (this.dead) return Promise.reject(new ImageServiceError('internal', `the image model is not available: ${this.dead}`));
    if (signal?.aborted) return Promise.reject(new ImageServiceError('aborted', 'the client went away'));
    if (this.queue.length >= this.maxWaiting) return Promise.reject(new ImageServiceError('full', `${this.queue.length} image requests are already waiting; retry later`));
    return new Promise((resolve, reject) => {
      const job: Job = { id: this.nextId++, req, onStep, resolve, reject, signal };
      if (signal) {
        // A waiting request is dropped at once; the running one finishes (a UNet step cannot be cut), its result unused.
        job.onAbort = () => {
          const i = this.queue.indexOf(job);
          if (i >= 0) {
            this.queue.splice(i, 1);
            reject(new ImageServiceError('aborted', 'the client went away'));
          }
        };
        signal.addEventListener('abort', job.onAbort, { once: true });
      }
      this.queue.push(job);
      this.pump();
    });
  }

  private pump(): void {
    if (this.running || this.dead) return;
    const job = this.queue.shift();
    if (!job) return;
    this.running = job;
    this.progress = 0;
    // Posted by structured clone (nothing transferred): the caller keeps its init image.
    this.worker.postMessage({ type: 'generate', id: job.id, req: job.req } satisfies ToWorker);
  }

  private finish(id: number): Job | null {
    const job = this.running;
    if (!job || job.id !== id) return null;
    this.running = null;
    this.progress = 0;
    if (job.signal && job.onAbort) job.signal.removeEventListener('abort', job.onAbort);
    setImmediate(() => this.pump());
    return job;
  }

  private onMessage(m: Exclude<FromWorker, { type: 'ready' } | { type: 'fatal' }>): void {
    if (m.type === 'step') {
      if (this.running?.id !== m.id) return;
      this.stepsTotal++;
      this.progress = m.progress.step / m.progress.total;
      try {
        this.running.onStep?.(m.progress);
      } catch {
        // a listener's failure (a closed socket) must not stop the service
      }
      return;
    }
    const job = this.finish(m.id);
    if (!job) return;
    if (m.type === 'done') {
      this.imagesTotal += m.result.images.length;
      job.resolve(m.result);
    } else job.reject(new ImageServiceError(m.invalid ? 'invalid' : 'internal', m.message, m.field));
  }

  private die(why: string): void {
    if (this.dead) return;
    this.dead = why;
    const err = new ImageServiceError('internal', `the image worker stopped: ${why}`);
    if (this.running) this.running.reject(err);
    for (const j of this.queue.splice(0)) j.reject(err);
    this.running = null;
  }

  stats(): ImageStats {
    return { waiting: this.queue.length, running: this.running ? 1 : 0, progress: this.progress, stepsTotal: this.stepsTotal, imagesTotal: this.imagesTotal };
  }

  async close(): Promise<void> {
    this.die('closed');
    await this.worker.terminate();
  }
}

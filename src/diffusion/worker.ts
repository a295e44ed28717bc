// The image worker thread (started by src/diffusion/service.ts): loads a Stable Diffusion
// pipeline, then runs the requests it is sent, one at a time, reporting every denoising step.

import { parentPort, workerData } from 'node:worker_threads';
import { cpuBackend } from '../tensor/cpu.ts';
import { ImageRequestError, StableDiffusionPipeline, type ImageRequest } from './pipeline.ts';
import type { ImageServiceOptions } from './service.ts';

const port = parentPort!;
const opts = (workerData as { opts: ImageServiceOptions }).opts;
const be = cpuBackend();
if (opts.threads) be.setThreads(opts.threads);
let pipe: StableDiffusionPipeline;
try {
  pipe = StableDiffusionPipeline.load(opts.dir, be, { variant: opts.variant, config: opts.config, predictionType: opts.predictionType, loras: opts.loras });
  port.postMessage({ type: 'ready', nativeSize: pipe.nativeSize, sizeMultiple: pipe.sizeMultiple });
} catch (e) {
  port.postMessage({ type: 'fatal', message: (e as Error).message });
  process.exit(1);
}

port.on('message', (m: { type: 'generate'; id: number; req: ImageRequest }) => {
  if (m.type !== 'generate') return;
  try {
    const { latents: _latents, ...result } = pipe.generate(m.req, (progress) => port.postMessage({ type: 'step', id: m.id, progress })); // the latents stay here
    port.postMessage({ type: 'done', id: m.id, result }, result.images.map((i) => i.data.buffer as ArrayBuffer));
  } catch (e) {
    const invalid = e instanceof ImageRequestError;
    port.postMessage({ type: 'failed', id: m.id, message: (e as Error).message, field: invalid ? (e as ImageRequestError).field : undefined, invalid });
  }
});

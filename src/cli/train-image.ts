// `slipstream train-image`: fine-tune (full or LoRA) or train from scratch a Stable Diffusion
// model on a folder of captioned pictures (src/diffusion/train/). A progress bar with the loss on
// stderr, metrics.jsonl and checkpoints in the run directory (rerunning the same command resumes
// from the last checkpoint), a loss curve (PNG + SVG) at the end, sample grids when prompts are
// given, and the trained model: LoRA files (PEFT and kohya naming) or a diffusers folder.
// SIGTERM / SIGINT end a UNet run cleanly (stop-signals.ts): a checkpoint at the step reached, the
// plot and a summary line, exit 0; rerunning resumes. (The --train-vae stage is not trapped: a
// signal ends it as before, and a rerun resumes from its last periodic checkpoint.)

import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { UsageError } from '../errors.ts';
import { createProgress, type Progress } from '../formats/progress.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { refBackend } from '../tensor/ref.ts';
import { nativeAvailable, setThreads } from '../tensor/runtime.ts';
import type { TrainConfig } from '../train/config.ts';
import { writeLossPlot } from '../train/plot.ts';
import { lockRunDir } from '../train/trainer.ts';
import { trainKernels } from './train.ts';
import { trapStopSignals } from './stop-signals.ts';
import type { TrainImageConfig } from '../diffusion/train/trainer.ts';

export interface TrainImageFlags {
  model?: string;
  config?: string;
  fromScratch?: string;
  data: string;
  out: string;
  instancePrompt?: string;
  captionColumn?: string;
  resolution?: string;
  loraRank?: string;
  loraAlpha?: string;
  trainTextEncoder?: boolean;
  predictionType?: string;
  snrGamma?: string;
  captionDropout?: string;
  noiseOffset?: string;
  latents?: string;
  ema?: string;
  steps?: string;
  batchSize?: string;
  gradAccum?: string;
  lr?: string;
  minLr?: string;
  warmup?: string;
  schedule?: string;
  weightDecay?: string;
  clip?: string;
  seed?: string;
  checkpointEvery?: string;
  sampleEvery?: string;
  samplePrompt?: string[];
  sampleSteps?: string;
  sampleSeed?: string;
  sampleGuidance?: string;
  singleFile?: boolean;
  trainVae?: boolean;
  klWeight?: string;
  vaeCrop?: string;
  plot?: string;
  threads?: string;
}

function num(flag: string, v: string | undefined, def: number, check: (n: number) => boolean = Number.isFinite, what = 'a number'): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new UsageError(`--${flag} must be ${what}, got "${v}"`);
  return n;
}
const posInt = (n: number) => Number.isInteger(n) && n >= 1;
const nonNegInt = (n: number) => Number.isInteger(n) && n >= 0;
const nonNeg = (n: number) => n >= 0;

/** The flags as a run configuration; bad values are UsageErrors naming the flag. */
export function trainImageConfig(f: TrainImageFlags): TrainImageConfig {
  if (!f.model && !f.fromScratch) throw new UsageError('give --model (a diffusers folder or a single-file checkpoint) or --from-scratch <config folder>');
  if (f.model && f.fromScratch) throw new UsageError('--model and --from-scratch exclude each other');
  const lora = f.loraRank !== undefined;
  const rank = num('lora-rank', f.loraRank, 4, posInt, 'an integer >= 1');
  if (lora && f.fromScratch) throw new UsageError('--from-scratch trains every weight: it cannot be combined with --lora-rank');
  if (lora && f.trainVae) throw new UsageError('--train-vae trains every VAE weight: it cannot be combined with --lora-rank');
  const latents = f.latents ?? 'sample';
  if (latents !== 'mean' && latents !== 'sample') throw new UsageError(`--latents must be mean or sample, got "${latents}"`);
  const schedule = f.schedule ?? 'constant';
  if (schedule !== 'constant' && schedule !== 'cosine') throw new UsageError(`--schedule must be constant or cosine, got "${schedule}"`);
  if (f.predictionType !== undefined && f.predictionType !== 'epsilon' && f.predictionType !== 'v_prediction') throw new UsageError(`--prediction-type must be epsilon or v_prediction, got "${f.predictionType}"`);
  const ema = num('ema', f.ema, 0, (n) => n >= 0 && n < 1, 'a decay in [0, 1)');
  const steps = num('steps', f.steps, 1000, posInt, 'an integer >= 1');
  const lr = num('lr', f.lr, lora ? 1e-4 : f.fromScratch ? 1e-4 : 1e-5, (n) => n > 0, 'a number > 0');
  const train: TrainConfig['train'] = {
    steps,
    batchSize: num('batch-size', f.batchSize, 1, posInt, 'an integer >= 1'),
    gradAccum: num('grad-accum', f.gradAccum, 1, posInt, 'an integer >= 1'),
    lr,
    minLr: num('min-lr', f.minLr, 0, nonNeg, 'a number >= 0'),
    warmup: num('warmup', f.warmup, 0, nonNegInt, 'an integer >= 0'),
    schedule,
    weightDecay: num('weight-decay', f.weightDecay, 1e-2, nonNeg, 'a number >= 0'),
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    clip: num('clip', f.clip, 1, nonNeg, 'a number >= 0 (0: off)'),
    seed: num('seed', f.seed, 0, nonNegInt, 'an integer >= 0'),
    evalEvery: 0,
    evalBatches: 0,
    checkpointEvery: num('checkpoint-every', f.checkpointEvery, 100, nonNegInt, 'an integer >= 0'),
    logEvery: 10,
    threads: null,
  };
  const res = f.resolution === undefined ? null : num('resolution', f.resolution, 0, posInt, 'a positive integer');
  return {
    model: f.model ? resolve(f.model) : null,
    singleFileConfig: f.config ? resolve(f.config) : null,
    fromScratch: f.fromScratch ? resolve(f.fromScratch) : null,
    data: resolve(f.data),
    instancePrompt: f.instancePrompt ?? null,
    captionColumn: f.captionColumn ?? 'text',
    resolution: res,
    mode: lora ? 'lora' : 'full',
    lora: { rank, alpha: num('lora-alpha', f.loraAlpha, rank, (n) => n > 0, 'a number > 0') },
    trainTextEncoder: f.trainTextEncoder === true,
    prediction: f.predictionType ?? null,
    captionDropout: num('caption-dropout', f.captionDropout, 0, (n) => n >= 0 && n <= 1, 'a probability in [0, 1]'),
    snrGamma: num('snr-gamma', f.snrGamma, 0, nonNeg, 'a number >= 0 (0: off)'),
    noiseOffset: num('noise-offset', f.noiseOffset, 0, nonNeg, 'a number >= 0'),
    latents,
    ema,
    train,
    sampleEvery: num('sample-every', f.sampleEvery, 0, nonNegInt, 'an integer >= 0'),
    samplePrompts: f.samplePrompt ?? [],
    sampleSteps: num('sample-steps', f.sampleSteps, 20, posInt, 'an integer >= 1'),
    sampleSeed: num('sample-seed', f.sampleSeed, 0, nonNegInt, 'an integer >= 0'),
    sampleGuidance: num('sample-guidance', f.sampleGuidance, 7.5, nonNeg, 'a number >= 0'),
    exportSingleFile: f.singleFile === true,
    trainVae: f.trainVae === true,
    klWeight: num('kl-weight', f.klWeight, 1e-4, nonNeg, 'a number >= 0'),
    vaeCrop: f.vaeCrop === undefined ? null : num('vae-crop', f.vaeCrop, 0, posInt, 'a positive integer'),
    out: resolve(f.out),
  };
}

export async function trainImageCommand(f: TrainImageFlags): Promise<void> {
  const c = trainImageConfig(f);
  if (f.threads !== undefined) setThreads(num('threads', f.threads, 0, posInt, 'a positive integer'));
  const log = (m: string) => process.stderr.write(`slipstream train-image: ${m}\n`);
  if (c.trainVae) {
    await vaeCommand(c, f.plot, log);
    return;
  }
  const release = lockRunDir(c.out, log);
  const signals = trapStopSignals('train-image');
  try {
    const { runImageTraining, setupImageTraining } = await import('../diffusion/train/trainer.ts');
    const { k } = await trainKernels();
    const be = nativeAvailable() ? cpuBackend() : refBackend;
    // a bar only once there is something to encode (a cached dataset, or an error first, draws none)
    let bar0: Progress | null = null;
    let setup;
    try {
      setup = setupImageTraining(c, be, (done, total) => (bar0 ??= createProgress('encoding the dataset (VAE latents, caption embeddings)', total, { unit: 'items' })).update(done));
    } finally {
      (bar0 as Progress | null)?.stop();
    }
    for (const w of setup.warnings) log(`warning: ${w}`);
    const sig0 = signals.stopped();
    if (sig0) {
      log(`${sig0} before the first step: nothing trained (the dataset cache is kept)`);
      return;
    }
    const tty = process.stderr.isTTY === true;
    let bar: cliProgress.SingleBar | null = null;
    const result = await runImageTraining(c, k, be, {
      onStart: (i) => {
        log(
          `${i.images} images (${i.source}), ${i.captions} distinct captions, ${(i.trainable / 1e6).toFixed(3)}M trainable parameters (${c.mode}), ` +
            `latents ${i.cacheReused ? 'read from' : 'written to'} the cache, kernels ${k.name}` + (i.resumedFrom > 0 ? `, resuming at step ${i.resumedFrom}` : ''),
        );
        if (tty) {
          bar = new cliProgress.SingleBar({ format: 'train-image [{bar}] {value}/{total} | loss {loss} | {ips} img/s | ETA {eta_formatted}', hideCursor: true, etaBuffer: 20 }, cliProgress.Presets.shades_classic);
          bar.start(c.train.steps, i.resumedFrom, { loss: '-', ips: '-' });
        }
      },
      onStep: (s) => {
        if (bar) bar.update(s.step, { loss: s.loss.toFixed(4), ips: s.imagesPerSec.toFixed(2) });
        else if (s.step === s.steps || s.step % c.train.logEvery === 0) log(`step ${s.step}/${s.steps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} grad norm ${s.gradNorm.toFixed(3)} ${s.imagesPerSec.toFixed(2)} img/s`);
      },
      onSample: (file) => {
        if (!bar) log(`samples: ${file}`);
      },
      onLog: log,
      shouldStop: () => signals.stopped() !== null,
    }, setup);
    (bar as cliProgress.SingleBar | null)?.stop();
    if (result.stoppedAt !== undefined) {
      const last = result.history.at(-1);
      log(`stopped by ${signals.stopped()} at step ${result.stoppedAt}/${c.train.steps}${last ? `, loss ${last.loss.toFixed(4)}` : ''}; checkpoint in ${resolve(c.out, 'checkpoints')}; rerun the same command to resume`);
    } else log(`done, loss ${result.finalLoss.toFixed(4)}; ${result.outputs.join(', ')}; log in ${resolve(c.out, 'metrics.jsonl')}`);
    if (result.history.length > 0) {
      const png = f.plot ?? resolve(c.out, 'loss.png');
      await writeLossPlot(png, result.history, `${c.out}: ${result.stoppedAt ?? result.steps} steps, batch ${c.train.batchSize} x${c.train.gradAccum}, ${c.mode}`);
      log(`loss curve written to ${png}`);
    }
  } finally {
    signals.dispose();
    release();
  }
}

/** --train-vae: the VAE stage (src/diffusion/train/vae-stage.ts), one line per logEvery steps or a bar. */
async function vaeCommand(c: TrainImageConfig, plot: string | undefined, log: (m: string) => void): Promise<void> {
  const { runVaeStage } = await import('../diffusion/train/vae-stage.ts');
  const { k } = await trainKernels();
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | null = null;
  if (tty) {
    bar = new cliProgress.SingleBar({ format: 'train-vae [{bar}] {value}/{total} | loss {loss} | ETA {eta_formatted}', hideCursor: true, etaBuffer: 20 }, cliProgress.Presets.shades_classic);
    bar.start(c.train.steps, 0, { loss: '-' });
  }
  const r = runVaeStage(c, k, {
    onStep: (s) => {
      if (bar) bar.update(s.step, { loss: s.loss.toFixed(4) });
      else if (s.step === s.steps || s.step % c.train.logEvery === 0) log(`step ${s.step}/${s.steps} loss ${s.loss.toFixed(5)} (reconstruction ${s.rec.toFixed(5)}, KL ${s.kl.toFixed(3)}) lr ${s.lr.toExponential(2)}`);
    },
    onLog: log,
  });
  (bar as cliProgress.SingleBar | null)?.stop();
  log(`done: the trained VAE (scaling_factor ${r.scalingFactor.toFixed(4)}) is in ${r.modelDir}; train the UNet with --from-scratch ${r.modelDir}`);
  if (r.history.length > 0) {
    const png = plot ?? resolve(c.out, 'loss.png');
    await writeLossPlot(png, r.history.map((h) => ({ step: h.step, loss: h.loss })), `${c.out}: VAE, ${r.steps} steps, batch ${c.train.batchSize}`);
    log(`loss curve written to ${png}`);
  }
}

// `slipstream train-image`: fine-tuning (full or LoRA) and from-scratch training of Stable
// Diffusion UNets (and optionally the text encoder) on a folder of captioned pictures, on the
// same autograd tape, optimiser, checkpoints and loss plot as the LLM trainer (src/train/).
//
// One optimiser step = gradAccum micro-batches of batchSize pictures. Per micro-batch:
//   latents = (mean, or mean + std · N(0, 1)) × scaling_factor     from the dataset cache (cache.ts)
//   x_t, target, t, w = noiseBatch(...)                             (noise.ts)
//   caption = the picture's, or (--caption-dropout p) the empty caption with probability p
//   context = cached text embeddings, or the text encoder on the tape (--train-text-encoder)
//   pred = unetForward(TapeDiffOps(tape, LoRA hook), ...)           the inference UNet, on the tape
//   loss = weighted MSE; dloss/dpred seeds the tape's backward
// then AdamW (global-norm clipping, warmup + cosine/constant lr as the LLM trainer's lrAt), and
// the EMA of the trained weights when asked.
//
// Resumption: a checkpoint (src/train/checkpoint.ts: atomic, kill -9 safe) holds the trained
// tensors, their AdamW moments, the EMA, the step, the data position and the RNG state; every
// other input is a pure function of the options, so a resumed run continues on the same loss
// curve. Each draw (picture order aside, see data.ts epochOrder) comes from that one RNG, in a
// fixed order per micro-batch: latent samples, then per picture the timestep, its noise and
// offsets (noise.ts), then the caption-dropout coins.
//
// Frozen weights are f32 copies (diffWeightsFromTensors); a f16 / bf16 frozen base would need
// half-precision weight operands in the tape's kernels.

import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePng, type RgbImage } from '../../formats/image.ts';
import { Tape, type Var } from '../../tensor/autograd.ts';
import type { Backend } from '../../tensor/backend.ts';
import { Tensor } from '../../tensor/tensor.ts';
import type { TrainKernels } from '../../tensor/train-kernels.ts';
import { type Params as CkParams, latestCheckpoint, loadCheckpoint, saveCheckpoint, truncateMetricsLog } from '../../train/checkpoint.ts';
import { type TrainConfig, lrAt } from '../../train/config.ts';
import { TrainError } from '../../train/errors.ts';
import { AdamW } from '../../train/optim.ts';
import { TrainRng } from '../../train/rng.ts';
import { lockRunDir } from '../../train/trainer.ts';
import { clipTextForward, promptEmbeds } from '../clip-text.ts';
import { loadStableDiffusion, type StableDiffusion } from '../load.ts';
import { StableDiffusionPipeline } from '../pipeline.ts';
import { loadStableDiffusionSingleFile } from '../single-file.ts';
import { diffWeightsFromTensors, TapeDiffOps, type DiffProjection, type DiffWeights } from '../tape-ops.ts';
import { unetForward } from '../unet.ts';
import { datasetCache, type DatasetCache } from './cache.ts';
import { epochOrder, loadImageDataset, type ImageDataset } from './data.ts';
import { componentWeights, writeDiffusersFolder, writeSingleFile, type ComponentWeights, type HostTensor } from './export.ts';
import { scratchFolder } from './init.ts';
import { LoraSet, TEXT_LORA_RE, UNET_LORA_RE } from './lora.ts';
import { noiseBatch, trainSchedule, weightedMse, type NoisedBatch, type NoiseOptions, type TrainSchedule } from './noise.ts';

export interface TrainImageConfig {
  /** A diffusers folder or a single-file checkpoint; null with fromScratch. */
  model: string | null;
  /** Single-file checkpoints: the diffusers folder describing it. */
  singleFileConfig: string | null;
  /** A config folder (configs, tokenizer, scheduler; weights optional) to train from random weights. */
  fromScratch: string | null;
  data: string;
  instancePrompt: string | null;
  captionColumn: string;
  /** Picture size in pixels; null: the model's native size. */
  resolution: number | null;
  mode: 'lora' | 'full';
  lora: { rank: number; alpha: number };
  trainTextEncoder: boolean;
  /** Probability of training a picture on the empty caption instead of its own (classifier-free guidance; diffusers' proportion_empty_prompts). */
  captionDropout: number;
  /** Overrides the scheduler's prediction_type. */
  prediction: string | null;
  snrGamma: number;
  noiseOffset: number;
  /** The latent of a picture: the encoder's mean, or a fresh sample each time (diffusers). */
  latents: 'mean' | 'sample';
  /** EMA decay of the trained weights (0: off). */
  ema: number;
  /** The LLM trainer's optimisation settings (evalEvery / evalBatches unused). */
  train: TrainConfig['train'];
  /** Sample grid every N steps (0: only at the end when prompts are given). */
  sampleEvery: number;
  samplePrompts: string[];
  sampleSteps: number;
  sampleSeed: number;
  sampleGuidance: number;
  /** Train the VAE instead (vae-stage.ts; the CLI routes there): the first stage of a from-scratch pipeline. */
  trainVae: boolean;
  /** The KL term's weight in the VAE objective. */
  klWeight: number;
  /** --train-vae: random crops of this many pixels (null: whole pictures). */
  vaeCrop: number | null;
  /** Also write an SD 1.x-layout single-file checkpoint (full / from-scratch runs). */
  exportSingleFile: boolean;
  out: string;
}

export interface ImageStepInfo {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  imagesPerSec: number;
  elapsedSec: number;
}

export interface TrainImageEvents {
  onStart?(info: { images: number; captions: number; trainable: number; resumedFrom: number; cacheReused: boolean; source: string }): void;
  onStep?(s: ImageStepInfo): void;
  onCheckpoint?(dir: string): void;
  onSample?(file: string): void;
  onLog?(msg: string): void;
  shouldStop?(): boolean;
  /** Dataset encoding progress (latents and captions). */
  onCacheProgress?(done: number, total: number): void;
}

export interface TrainImageResult {
  steps: number;
  finalLoss: number;
  history: { step: number; loss: number }[];
  /** What was written at the end: the exported model folder / LoRA files. */
  outputs: string[];
  stoppedAt?: number;
}

interface DataPos {
  epoch: number;
  index: number;
}

/** Everything a run needs, loaded once. */
export interface ImageTrainSetup {
  sd: StableDiffusion;
  /** The folder exports copy configs from (the model, or the scratch init folder). */
  root: string;
  ds: ImageDataset;
  resolution: number;
  /** Pictures in the run. */
  N: number;
  /** Cached latents and caption embeddings. */
  cache: DatasetCache;
  schedule: TrainSchedule;
  unet: DiffWeights;
  text: DiffWeights | null;
  lora: LoraSet | null;
  /** Trainable tensors by checkpoint name (unet.<name>, text_encoder.<name>, or LoRA names). */
  trainable: Map<string, Var>;
  warnings: string[];
}

function schedulerConfigOf(sd: StableDiffusion): Record<string, unknown> {
  if (sd.assets) return sd.assets.schedulerConfig;
  const p = join(sd.root, 'scheduler', 'scheduler_config.json');
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new TrainError(`${p}: cannot read the scheduler settings (${(e as Error).message})`);
  }
}

export function setupImageTraining(c: TrainImageConfig, be: Backend, onCacheProgress?: (done: number, total: number) => void): ImageTrainSetup {
  if (c.trainVae) throw new TrainError('--train-vae runs its own stage (vae-stage.ts runVaeStage)');
  const warnings: string[] = [];
  let root: string;
  if (c.fromScratch) {
    if (c.mode !== 'full') throw new TrainError('--from-scratch trains every weight: it cannot be combined with --lora-rank');
    const s = scratchFolder(c.fromScratch, c.out, c.train.seed);
    root = s.dir;
    if (s.random.includes('vae')) warnings.push(`${c.fromScratch}/vae has no weights: the latents come from a random VAE, which carries no picture; give the config folder trained VAE weights`);
    if (s.random.includes('text_encoder') && !c.trainTextEncoder) warnings.push('the text encoder is random and frozen: captions cannot condition the model; add --train-text-encoder');
  } else {
    if (!c.model) throw new TrainError('give --model (a diffusers folder or a single-file checkpoint) or --from-scratch <config folder>');
    root = c.model;
  }
  const st = statSync(root, { throwIfNoEntry: false });
  if (!st) throw new TrainError(`--model ${root}: no such file or folder`);
  const sd = st.isFile() ? loadStableDiffusionSingleFile(root, { config: c.singleFileConfig ?? undefined }) : loadStableDiffusion(root);
  const sdxl = sd.textEncoder2 !== null;
  // the end-of-run export must be possible before hours are spent: the single-file writer knows
  // the SD 1.x layout (one CLIP text encoder in transformers' names)
  const singleFile = c.mode === 'full' && (c.exportSingleFile || st.isFile());
  if (singleFile && (sdxl || sd.unet.config.crossAttentionDim === 1024)) {
    throw new TrainError(`${st.isFile() ? `${root} is a single-file SD 2.x / XL checkpoint: full training` : '--single-file'} exports only the SD 1.x single-file layout; train a LoRA (--lora-rank), or start from a diffusers folder`);
  }
  if (sdxl && c.trainTextEncoder) throw new TrainError('--train-text-encoder is not supported for SDXL (two text encoders) yet; train the UNet alone');
  const ds = loadImageDataset(c.data, { instancePrompt: c.instancePrompt ?? undefined, captionColumn: c.captionColumn });
  const resolution = c.resolution ?? sd.unet.config.sampleSize * 2 ** (sd.vae.config.blockOutChannels.length - 1);
  if (c.train.batchSize > ds.items.length) throw new TrainError(`--batch-size ${c.train.batchSize} is larger than the dataset (${ds.items.length} images)`);
  const schedule = trainSchedule(schedulerConfigOf(sd), c.prediction ?? undefined);
  // a trained text encoder reads the token ids: no embeddings to cache
  const cache = datasetCache(c.out, ds, sd, resolution, be, onCacheProgress, !c.trainTextEncoder);

  const full = c.mode === 'full';
  const unetNames = sd.unet.params.ckpt.names();
  const unet = diffWeightsFromTensors('unet', sd.unet.params, unetNames, () => full);
  const trainable = new Map<string, Var>();
  let text: DiffWeights | null = null;
  if (c.trainTextEncoder) {
    const names = sd.textEncoder.params.ckpt.names().filter((n) => !n.endsWith('position_ids'));
    text = diffWeightsFromTensors('text_encoder', sd.textEncoder.params, names, () => full);
  }
  let lora: LoraSet | null = null;
  if (full) {
    for (const [n, w] of unet.m) trainable.set(`unet.${n}`, w.v);
    if (text) for (const [n, w] of text.m) trainable.set(`text_encoder.${n}`, w.v);
  } else {
    lora = new LoraSet(c.lora);
    const rng = new TrainRng(c.train.seed + 2);
    const shapes = (w: DiffWeights) => new Map([...w.m].map(([n, x]) => [n, x.v.shape] as const));
    lora.add('unet', shapes(unet), UNET_LORA_RE, rng);
    if (text) lora.add('text_encoder', shapes(text), TEXT_LORA_RE, rng);
    for (const [n, v] of lora.params()) trainable.set(n, v);
  }
  return { sd, root, ds, resolution, N: cache.N, cache, schedule, unet, text, lora, trainable, warnings };
}

/** Checkpoint tensors of Vars (or of parallel arrays such as the AdamW moments). */
function ckParams(vars: Map<string, Var>, data?: Map<string, Float32Array>, prefix = ''): CkParams {
  const p: CkParams = new Map();
  for (const [n, v] of vars) p.set(prefix + n, { shape: [...v.shape], data: data ? data.get(n)! : v.data });
  return p;
}

/** Runs (or resumes) a training run to its end, yielding to the event loop between steps. */
export async function runImageTraining(c: TrainImageConfig, k: TrainKernels, be: Backend, ev: TrainImageEvents = {}, setup?: ImageTrainSetup): Promise<TrainImageResult> {
  const release = lockRunDir(c.out, ev.onLog);
  try {
    const it = imageTrainSteps(c, k, be, ev, setup);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
      await new Promise<void>((res) => setImmediate(res));
    }
  } finally {
    release();
  }
}

function* imageTrainSteps(c: TrainImageConfig, k: TrainKernels, be: Backend, ev: TrainImageEvents, setup?: ImageTrainSetup): Generator<number, TrainImageResult, void> {
  const su = setup ?? setupImageTraining(c, be, ev.onCacheProgress);
  if (!setup) for (const w of su.warnings) ev.onLog?.(`warning: ${w}`);
  const { cache, schedule, trainable, N } = su;
  const B = c.train.batchSize;
  const opt = new AdamW(trainable, { beta1: c.train.beta1, beta2: c.train.beta2, eps: c.train.eps, weightDecay: c.train.weightDecay, clip: c.train.clip }, k);
  const ema = c.ema > 0 ? new Map([...trainable].map(([n, v]) => [n, v.data.slice()])) : null;
  mkdirSync(c.out, { recursive: true });
  const logPath = join(c.out, 'metrics.jsonl');

  let pos: DataPos = { epoch: 0, index: 0 };
  let history: TrainImageResult['history'] = [];
  let startStep = 0;
  const rng = new TrainRng(c.train.seed + 1);
  const expect = (): CkParams => {
    const p = ckParams(trainable);
    if (ema) for (const [n, v] of trainable) p.set(`ema.${n}`, { shape: [...v.shape], data: ema.get(n)! });
    return p;
  };
  const latest = latestCheckpoint(c.out);
  if (latest) {
    // the EMA rides along with the weights, so the check of the file against this run is ours
    const ck = loadCheckpoint(latest);
    const want = expect();
    const mismatch = (why: string) => new TrainError(`checkpoint ${latest} was made for a different run: ${why}; use another --out folder to start afresh`);
    for (const [n, p] of want) {
      const got = ck.params.get(n);
      if (!got || got.shape.join() !== p.shape.join()) throw mismatch(got ? `tensor ${n} is [${got.shape}], this run's is [${p.shape}]` : `tensor ${n} is not in it (a different model, LoRA rank, or --ema setting)`);
      if (!n.startsWith('ema.') && (!ck.opt || !ck.opt.m.has(n))) throw mismatch(`optimizer tensor ${n} is not in it`);
    }
    for (const n of ck.params.keys()) if (!want.has(n)) throw mismatch(`tensor ${n} is not in this run (a different model, LoRA rank, or --ema setting)`);
    for (const [n, p] of ck.params) {
      if (n.startsWith('ema.')) ema!.get(n.slice(4))!.set(p.data);
      else trainable.get(n)!.data.set(p.data);
    }
    if (ck.opt) {
      for (const [n, p] of ck.opt.m) if (opt.m.has(n)) opt.m.get(n)!.set(p.data);
      for (const [n, p] of ck.opt.v) if (opt.v.has(n)) opt.v.get(n)!.set(p.data);
    }
    const st = ck.state as { step: number; data: DataPos; rng: number[]; history: TrainImageResult['history'] };
    startStep = st.step;
    opt.step = st.step;
    pos = st.data;
    history = st.history ?? [];
    rng.restore(st.rng);
    ev.onLog?.(`resuming from ${latest} (step ${startStep})`);
    // steps logged after the checkpoint (before the run was killed) are done again
    truncateMetricsLog(logPath, startStep);
  } else if (existsSync(logPath)) writeFileSync(logPath, '');
  let nTrainable = 0;
  for (const v of trainable.values()) nTrainable += v.size;
  ev.onStart?.({ images: N, captions: cache.U - 1, trainable: nTrainable, resumedFrom: startStep, cacheReused: cache.reused, source: su.ds.source });

  const runInfo = {
    slipstream_train_image: {
      model: c.model, from_scratch: c.fromScratch, mode: c.mode, lora: c.mode === 'lora' ? c.lora : null, train_text_encoder: c.trainTextEncoder,
      resolution: su.resolution, caption_dropout: c.captionDropout, prediction_type: schedule.prediction, snr_gamma: c.snrGamma, noise_offset: c.noiseOffset, latents: c.latents, ema: c.ema,
    },
  };
  const save = (step: number): void => {
    const dir = saveCheckpoint(c.out, {
      step,
      params: expect(),
      opt: { m: ckParams(trainable, opt.m), v: ckParams(trainable, opt.v) },
      hfConfig: runInfo,
      state: { step, data: pos, rng: rng.state, history },
    });
    ev.onCheckpoint?.(dir);
  };

  const t = new Tape(k);
  const t0 = performance.now();
  let lastLoss = NaN;
  let lastSaved = startStep;
  let order: { epoch: number; perm: Int32Array } = { epoch: -1, perm: new Int32Array(0) };
  for (let step = startStep; step < c.train.steps; step++) {
    if (ev.shouldStop?.()) {
      if (step > lastSaved) save(step);
      return { steps: step, finalLoss: lastLoss, history, outputs: [], stoppedAt: step };
    }
    const ts = performance.now();
    let loss = 0;
    let p = pos;
    for (let micro = 0; micro < c.train.gradAccum; micro++) {
      // the micro-batch's pictures
      const rows: number[] = [];
      for (let i = 0; i < B; i++) {
        if (p.index >= N) p = { epoch: p.epoch + 1, index: 0 };
        if (order.epoch !== p.epoch) order = { epoch: p.epoch, perm: epochOrder(N, c.train.seed, p.epoch) };
        rows.push(order.perm[p.index]!);
        p = { epoch: p.epoch, index: p.index + 1 };
      }
      const { pred, nb } = forwardBatch(t, su, rows, rng, c.latents, { noiseOffset: c.noiseOffset, snrGamma: c.snrGamma }, c.captionDropout);
      const dpred = t.gradOut(pred);
      loss += weightedMse(pred.data, nb.target, nb.weights, 1 / c.train.gradAccum, dpred) / c.train.gradAccum;
      t.backward();
      t.reset();
    }
    if (!Number.isFinite(loss)) {
      opt.zeroGrad();
      throw new TrainError(`the loss became ${loss} at step ${step + 1}; stopping. The last good checkpoint is ${latestCheckpoint(c.out) ?? '(none yet)'}; lower --lr or raise --warmup`);
    }
    const lr = lrAt(step, c.train);
    const gradNorm = opt.update(lr);
    if (!Number.isFinite(gradNorm)) {
      throw new TrainError(`the gradient norm became ${gradNorm} at step ${step + 1}; stopping without applying it. The last good checkpoint is ${latestCheckpoint(c.out) ?? '(none yet)'}`);
    }
    if (ema) {
      for (const [n, v] of trainable) {
        const e = ema.get(n)!;
        for (let i = 0; i < e.length; i++) e[i] = c.ema * e[i]! + (1 - c.ema) * v.data[i]!;
      }
    }
    pos = p;
    lastLoss = loss;
    const s = step + 1;
    const dt = (performance.now() - ts) / 1000;
    const info: ImageStepInfo = { step: s, steps: c.train.steps, loss, lr, gradNorm, imagesPerSec: (B * c.train.gradAccum) / dt, elapsedSec: (performance.now() - t0) / 1000 };
    history.push({ step: s, loss });
    appendFileSync(logPath, JSON.stringify({ ...info, time: new Date().toISOString() }) + '\n');
    ev.onStep?.(info);
    const isLast = s === c.train.steps;
    if ((c.train.checkpointEvery > 0 && s % c.train.checkpointEvery === 0) || isLast) {
      save(s);
      lastSaved = s;
    }
    if (c.samplePrompts.length > 0 && ((c.sampleEvery > 0 && s % c.sampleEvery === 0) || isLast)) {
      const file = join(c.out, 'samples', `step-${String(s).padStart(8, '0')}.png`);
      writeSampleGrid(file, c, su, be, ema);
      ev.onSample?.(file);
    }
    yield s;
  }
  const outputs = exportRun(c, su, ema);
  return { steps: c.train.steps, finalLoss: lastLoss, history, outputs };
}

/**
 * The UNet's prediction for the pictures `rows` (one micro-batch) on the tape, and the noised
 * batch it was computed from: latents (the cached mean, or a draw from the cached distribution),
 * x_t and targets from `rng`, the context from the cache or the text encoder on the tape.
 */
function forwardBatch(t: Tape, su: ImageTrainSetup, rows: readonly number[], rng: TrainRng, latents: 'mean' | 'sample', no: NoiseOptions, captionDropout: number): { pred: Var; nb: NoisedBatch } {
  const { sd, schedule, text, lora } = su;
  const { cache, unet } = su;
  const B = rows.length, per = cache.h * cache.w * cache.C;
  const sf = Math.fround(sd.vae.config.scalingFactor);
  const x0 = new Float32Array(B * per);
  rows.forEach((r, b) => {
    for (let i = 0; i < per; i++) {
      const m = cache.mean[r * per + i]!;
      const v = latents === 'sample' ? m + cache.std[r * per + i]! * rng.normal() : m;
      x0[b * per + i] = Math.fround(v * sf);
    }
  });
  const nb = noiseBatch(schedule, x0, B, cache.C, rng, no);
  const caps = captionRows(cache, rows, captionDropout, rng);
  const o = new TapeDiffOps(t, lora ? lora.hook('unet') : undefined);
  const context = text ? textContext(t, sd, text, lora ? lora.hook('text_encoder') : undefined, cache, caps) : o.constant(gatherRows(cache.context!, caps, cache.T * cache.D), [B, cache.T, cache.D]);
  const textEmbeds = cache.pooled ? o.constant(gatherRows(cache.pooled, caps, cache.P), [B, cache.P]) : undefined;
  const timeIds = cache.timeIds ? rows.flatMap((r) => [...cache.timeIds!.subarray(r * 6, r * 6 + 6)]) : undefined;
  const pred = unetForward(o, sd.unet.config, unet, { sample: o.constant(nb.noisy, [B, cache.h, cache.w, cache.C]), timesteps: nb.timesteps, context, textEmbeds, timeIds });
  return { pred, nb };
}

/**
 * The loss of the current weights over every picture with fixed noise and timesteps drawn from
 * `seed` (latent means, no offset, no min-SNR weights): comparable between two points of a run.
 */
export function fixedNoiseLoss(su: ImageTrainSetup, k: TrainKernels, seed: number): number {
  const t = new Tape(k);
  t.recording = false;
  const rng = new TrainRng(seed);
  let sum = 0;
  for (let r = 0; r < su.cache.N; r++) {
    const { pred, nb } = forwardBatch(t, su, [r], rng, 'mean', { noiseOffset: 0, snrGamma: 0 }, 0);
    sum += weightedMse(pred.data, nb.target, nb.weights, 1, new Float32Array(pred.size));
    t.reset();
  }
  return sum / su.cache.N;
}

/**
 * The cache rows of the pictures' captions: each picture's own, or with probability `dropout`
 * the empty caption (row 0). Draws one number per picture only when dropout > 0.
 */
export function captionRows(cache: Pick<DatasetCache, 'caption'>, rows: readonly number[], dropout: number, rng: TrainRng): number[] {
  return rows.map((r) => (dropout > 0 && rng.uniform() < dropout ? 0 : cache.caption[r]!));
}

/** rows of a [N, width] array, concatenated. */
function gatherRows(a: Float32Array, rows: readonly number[], width: number): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((r, i) => out.set(a.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

/** The text encoder on the tape (--train-text-encoder): the UNet's context for these caption rows. */
function textContext(t: Tape, sd: StableDiffusion, text: DiffWeights, hook: DiffProjection | undefined, cache: DatasetCache, caps: readonly number[]): Var {
  const o = new TapeDiffOps(t, hook);
  const ids = new Int32Array(caps.length * cache.T);
  caps.forEach((u, i) => ids.set(cache.ids.subarray(u * cache.T, (u + 1) * cache.T), i * cache.T));
  const cfg = sd.textEncoder.config;
  const out = clipTextForward(o, cfg, text, ids, caps.length);
  return promptEmbeds(o, cfg, text, out, 'sd');
}

/** The trained tensors of one component in the inference layout: merged LoRA, or the full weights (EMA when kept). */
function trainedWeights(su: ImageTrainSetup, component: 'unet' | 'text_encoder', ema: Map<string, Float32Array> | null): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  const params = component === 'unet' ? su.sd.unet.params : su.sd.textEncoder.params;
  const weights = component === 'unet' ? su.unet : su.text;
  if (!weights) return out;
  if (su.lora) {
    const data = (n: string) => ema?.get(n) ?? su.trainable.get(n)!.data;
    // the EMA (when kept) stands in for the adapters' values while merging
    const saved = new Map<Var, Float32Array>();
    if (ema) {
      for (const [n, v] of su.trainable) {
        saved.set(v, v.data);
        v.data = data(n);
      }
    }
    try {
      for (const [n, w] of su.lora.merged(component, (x) => params.get(x).toF32())) out.set(n, { shape: [...weights.get(n).v.shape], data: w });
    } finally {
      for (const [v, d] of saved) v.data = d;
    }
    return out;
  }
  for (const [n, w] of weights.m) out.set(n, { shape: [...w.v.shape], data: ema?.get(`${component}.${n}`) ?? w.v.data });
  return out;
}

/** A grid (one row) of sample pictures for the sample prompts, fixed seeds, with the current weights. */
function writeSampleGrid(file: string, c: TrainImageConfig, su: ImageTrainSetup, be: Backend, ema: Map<string, Float32Array> | null): void {
  const pipe = StableDiffusionPipeline.load(su.root, be, { config: c.singleFileConfig ?? undefined });
  for (const [component, params] of [['unet', pipe.sd.unet.params], ['text_encoder', pipe.sd.textEncoder.params]] as const) {
    for (const [n, w] of trainedWeights(su, component, ema)) params.replace(n, Tensor.fromF32(w.data.slice(), w.shape));
  }
  const images: RgbImage[] = c.samplePrompts.map((prompt, i) =>
    pipe.generate({ prompt, steps: c.sampleSteps, guidance: c.sampleGuidance, seed: c.sampleSeed + i, width: su.resolution, height: su.resolution }).images[0]!);
  mkdirSync(join(file, '..'), { recursive: true });
  writePng(file, gridImage(images), { prompts: c.samplePrompts.join(' | ') });
}

/** Pictures side by side with a 2-pixel white gap. */
export function gridImage(images: readonly RgbImage[]): RgbImage {
  const h = Math.max(...images.map((i) => i.height)), gap = 2;
  const w = images.reduce((s, i) => s + i.width, 0) + gap * (images.length - 1);
  const data = new Uint8Array(w * h * 3).fill(255);
  let x0 = 0;
  for (const img of images) {
    for (let y = 0; y < img.height; y++) data.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), (y * w + x0) * 3);
    x0 += img.width + gap;
  }
  return { width: w, height: h, data };
}

function readComponentConfig(root: string, sub: string): Record<string, unknown> {
  const p = join(root, sub, 'config.json');
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new TrainError(`export: cannot read ${p} (${(e as Error).message})`);
  }
}

/** The end-of-run files: LoRA files (PEFT and kohya), or a diffusers folder (+ a single file). */
function exportRun(c: TrainImageConfig, su: ImageTrainSetup, ema: Map<string, Float32Array> | null): string[] {
  const outputs: string[] = [];
  if (su.lora) {
    const saved = new Map<Var, Float32Array>();
    if (ema) for (const [n, v] of su.trainable) (saved.set(v, v.data), (v.data = ema.get(n)!));
    try {
      const peft = join(c.out, 'lora.safetensors'), kohya = join(c.out, 'lora-kohya.safetensors');
      su.lora.write(peft, 'peft');
      su.lora.write(kohya, 'kohya', su.sd.textEncoder2 !== null);
      outputs.push(peft, kohya);
    } finally {
      for (const [v, d] of saved) v.data = d;
    }
    return outputs;
  }
  const unetW = componentWeights(su.sd.unet.params, trainedWeights(su, 'unet', ema));
  const textW = componentWeights(su.sd.textEncoder.params, trainedWeights(su, 'text_encoder', ema));
  const vaeW = componentWeights(su.sd.vae.params);
  if (statSync(su.root).isDirectory()) {
    const dir = join(c.out, 'model');
    const weights: Record<string, ComponentWeights> = { unet: unetW, vae: vaeW, text_encoder: textW };
    const configs: Record<string, Record<string, unknown>> = { unet: readComponentConfig(su.root, 'unet'), vae: readComponentConfig(su.root, 'vae'), text_encoder: readComponentConfig(su.root, 'text_encoder') };
    if (su.sd.textEncoder2) {
      weights.text_encoder_2 = componentWeights(su.sd.textEncoder2.params);
      configs.text_encoder_2 = readComponentConfig(su.root, 'text_encoder_2');
    }
    writeDiffusersFolder(dir, { source: su.root, configs, weights });
    outputs.push(dir);
  }
  if (c.exportSingleFile || !statSync(su.root).isDirectory()) {
    if (su.sd.textEncoder2) throw new TrainError('single-file export supports SD 1.x-layout pipelines (one CLIP text encoder)');
    const file = join(c.out, 'model.safetensors');
    writeSingleFile(file, { unet: unetW, unetConfig: su.sd.unet.config, vae: vaeW, vaeBlocks: su.sd.vae.config.blockOutChannels.length, textEncoder: textW });
    outputs.push(file);
  }
  return outputs;
}

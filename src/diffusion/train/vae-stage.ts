// `train-image --train-vae`: the VAE stage of a pipeline trained from nothing, on a folder of
// captioned pictures (captions unused), through vae-trainer.ts (the AutoencoderKL objective on
// the tape, resumable checkpoints). The result is <out>/model: the config folder with the trained
// vae/ (its scaling_factor measured on the pictures), ready to be the --from-scratch folder of the
// UNet + text encoder stage.

import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../../formats/image.ts';
import type { TrainKernels } from '../../tensor/train-kernels.ts';
import { TrainError } from '../../train/errors.ts';
import { vaeConfig } from '../vae.ts';
import { loadImageDataset, loadTrainImage } from './data.ts';
import type { TrainImageConfig } from './trainer.ts';
import { latentStd, trainVae, writeVaeFolder, type PictureSource, type VaeStepInfo } from './vae-trainer.ts';

export interface VaeStageResult {
  steps: number;
  history: VaeStepInfo[];
  /** The folder written: the config folder with the trained vae/. */
  modelDir: string;
  scalingFactor: number;
}

/** The pictures of a dataset folder at `size` (centre crop + resize), decoded once each on first use. */
export function folderPictures(dir: string, size: number, opts: { instancePrompt?: string; captionColumn?: string } = {}): PictureSource {
  const ds = loadImageDataset(dir, { instancePrompt: opts.instancePrompt ?? '', captionColumn: opts.captionColumn });
  const cache = new Map<number, RgbImage>();
  return {
    count: ds.items.length,
    size,
    get(i: number) {
      let p = cache.get(i);
      if (!p) cache.set(i, (p = loadTrainImage(ds.items[i]!.file, size)));
      return p.data;
    },
  };
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new TrainError(`--train-vae: cannot read ${path} (${(e as Error).message})`);
  }
}

/** Trains the VAE of the config folder (--from-scratch, or --model's folder) on the pictures of --data. */
export function runVaeStage(c: TrainImageConfig, k: TrainKernels, ev: { onStep?: (s: VaeStepInfo) => void; onLog?: (msg: string) => void } = {}): VaeStageResult {
  const src = c.fromScratch ?? c.model;
  if (!src || !existsSync(join(src, 'vae', 'config.json'))) throw new TrainError('--train-vae needs a folder with vae/config.json: --from-scratch <config folder> (or --model <diffusers folder>)');
  if (c.mode !== 'full') throw new TrainError('--train-vae trains every VAE weight: it cannot be combined with --lora-rank');
  if (c.trainTextEncoder) throw new TrainError('--train-vae trains the VAE alone: drop --train-text-encoder (train the UNet and text encoder in a second run)');
  const config = readJson(join(src, 'vae', 'config.json'));
  let cfg;
  try {
    cfg = vaeConfig(config);
  } catch (e) {
    throw new TrainError(`${join(src, 'vae', 'config.json')}: ${(e as Error).message}`);
  }
  const size = c.resolution ?? (typeof config.sample_size === 'number' ? config.sample_size : 0);
  if (!(size > 0)) throw new TrainError('--train-vae: give --resolution (the VAE config has no sample_size)');
  const pictures = folderPictures(c.data, size, { captionColumn: c.captionColumn });
  const t = c.train;
  const r = trainVae(k, pictures, {
    config, out: c.out, steps: t.steps, batchSize: t.batchSize, lr: t.lr, minLr: t.minLr, warmup: t.warmup,
    klWeight: c.klWeight, crop: c.vaeCrop ?? undefined, clip: t.clip, seed: t.seed, checkpointEvery: t.checkpointEvery > 0 ? t.checkpointEvery : t.steps,
  }, ev);
  const scalingFactor = 1 / latentStd(k, pictures, cfg, r.weights, 512);
  const modelDir = join(c.out, 'model');
  rmSync(modelDir, { recursive: true, force: true });
  mkdirSync(modelDir, { recursive: true });
  for (const f of readdirSync(src)) if (f !== 'vae') cpSync(join(src, f), join(modelDir, f), { recursive: true });
  writeVaeFolder(join(modelDir, 'vae'), config, r.weights, scalingFactor);
  return { steps: r.steps, history: r.history, modelDir, scalingFactor };
}

// Training an AutoencoderKL (the VAE of a latent diffusion model) on pictures: the stage before a
// from-scratch UNet can be trained, since the latents of a random VAE carry no picture.
//
// The VAE is the inference definition (vae.ts: vaeEncode / vaeDecode) run on the autograd tape
// (TapeDiffOps). Per step, for a batch x of pictures in [-1, 1] (NHWC):
//   [mean, logvar] = encode(x)                 logvar clamped to [-30, 20] as diffusers does
//   z = mean + exp(logvar / 2) · ε             the reparameterised sample, ε ~ N(0, 1)
//   x̂ = decode(z)
//   loss = mean((x̂ - x)²) + klWeight · mean(½ (mean² + exp(logvar) - 1 - logvar))
// (Latent Diffusion's autoencoders add a perceptual and an adversarial loss; the pictures this
// is meant for, flat shapes, reconstruct well on the pixel loss alone.) AdamW with warmup and a
// cosine schedule, global-norm clipping.
//
// The export writes vae/config.json with scaling_factor = 1 / std(latents) measured on the
// training pictures (how Stable Diffusion's 0.18215 was chosen), so the UNet trains on latents
// of unit variance, and the weights as vae/diffusion_pytorch_model.safetensors.
//
// Checkpoints (src/train/checkpoint.ts: atomic, resumable) hold the weights, the AdamW moments
// and the generator's state, so a run killed at any point and restarted continues on the same
// loss curve.

import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '../../formats/safetensors.ts';
import { Tape, Var } from '../../tensor/autograd.ts';
import { Tensor } from '../../tensor/tensor.ts';
import type { TrainKernels } from '../../tensor/train-kernels.ts';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint, truncateMetricsLog, type Params as CkParams } from '../../train/checkpoint.ts';
import { lrAt } from '../../train/config.ts';
import { TrainError } from '../../train/errors.ts';
import { AdamW } from '../../train/optim.ts';
import { TrainRng } from '../../train/rng.ts';
import { lockRunDir } from '../../train/trainer.ts';
import { convWeightToNhwc } from '../load.ts';
import { constant } from '../../tensor/autograd-image.ts';
import { DiffWeights, TapeDiffOps, type DiffWeight } from '../tape-ops.ts';
import { vaeConfig, vaeDecode, vaeEncode, type VaeConfig } from '../vae.ts';
import { convWeightToNchw } from './export.ts';
import { randomInit, vaeParamShapes } from './init.ts';

/** Where the pictures come from: `count` RGB pictures of size x size (3 bytes a pixel). */
export interface PictureSource {
  count: number;
  size: number;
  get(i: number): Uint8Array;
}

export interface VaeTrainOptions {
  /** vae/config.json's contents. */
  config: Record<string, unknown>;
  /** Run folder: checkpoints/, metrics.jsonl, loss.png. */
  out: string;
  steps: number;
  batchSize: number;
  lr: number;
  minLr?: number;
  warmup?: number;
  klWeight?: number;
  clip?: number;
  seed?: number;
  checkpointEvery?: number;
  /** Keep this many checkpoints (default 2). */
  keep?: number;
  /**
   * Train on random crops of this size (a multiple of the VAE's factor) instead of whole pictures,
   * as Latent Diffusion trained its autoencoders on 256-pixel crops: the network is convolutional
   * (its mid-block attention sees fewer positions), each step costs (crop / size)² as much, and
   * small objects fill more of what the loss sees.
   */
  crop?: number;
}

export interface VaeStepInfo {
  step: number;
  steps: number;
  loss: number;
  rec: number;
  kl: number;
  lr: number;
  gradNorm: number;
  ms: number;
}

export interface VaeTrainResult {
  steps: number;
  resumedFrom: number;
  /** Mean reconstruction loss over the last 10% of steps. */
  finalRec: number;
  history: VaeStepInfo[];
  /** The trained weights in the inference layout. */
  weights: Map<string, Var>;
  config: VaeConfig;
}

const LOGVAR_MIN = -30, LOGVAR_MAX = 20;

/**
 * z = mean + exp(logvar / 2) · eps from moments [B, h, w, 2L] (mean first), on the tape; the
 * backward also adds the KL term's gradient (klScale = klWeight / latent elements) into the
 * moments, so the caller seeds the tape with the reconstruction gradient only. Returns z and
 * the KL mean.
 */
export function sampleLatent(t: Tape, moments: Var, eps: Float32Array, klScale: number): { z: Var; kl: number } {
  const C2 = moments.shape[moments.shape.length - 1]!, L = C2 / 2, rows = moments.size / C2;
  if (eps.length !== rows * L) throw new Error(`sampleLatent: ${eps.length} noise values for ${rows * L} latents`);
  const z = t.act([...moments.shape.slice(0, -1), L], moments.requiresGrad);
  const m = moments.data;
  let kl = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < L; c++) {
      const mu = m[r * C2 + c]!, lv = Math.min(LOGVAR_MAX, Math.max(LOGVAR_MIN, m[r * C2 + L + c]!));
      z.data[r * L + c] = mu + Math.exp(0.5 * lv) * eps[r * L + c]!;
      kl += 0.5 * (mu * mu + Math.exp(lv) - 1 - lv);
    }
  }
  if (z.requiresGrad) {
    t.record(() => {
      t.addGrad(moments, (d) => {
        const dz = z.gradInit ? z.grad! : null;
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < L; c++) {
            const g = dz ? dz[r * L + c]! : 0;
            const mu = m[r * C2 + c]!, raw = m[r * C2 + L + c]!;
            const inside = raw > LOGVAR_MIN && raw < LOGVAR_MAX;
            const lv = Math.min(LOGVAR_MAX, Math.max(LOGVAR_MIN, raw));
            const std = Math.exp(0.5 * lv);
            d[r * C2 + c] = g + klScale * mu;
            d[r * C2 + L + c] = inside ? g * eps[r * L + c]! * 0.5 * std + klScale * 0.5 * (std * std - 1) : 0;
          }
        }
      });
    });
  }
  return { z, kl: kl / (rows * L) };
}

/**
 * A batch of pictures as NHWC floats in [-1, 1]: whole, or the crop x crop window at each
 * picture's offset (offsets[b] = [y, x]).
 */
function batchPixels(src: PictureSource, idx: readonly number[], crop = src.size, offsets?: readonly (readonly [number, number])[]): Float32Array {
  const S = src.size, n = S * S * 3, m = crop * crop * 3;
  const out = new Float32Array(idx.length * m);
  idx.forEach((i, b) => {
    const px = src.get(i);
    if (px.length !== n) throw new TrainError(`picture ${i}: ${px.length} bytes, expected ${S}x${S}x3 = ${n}`);
    const [oy, ox] = offsets?.[b] ?? [0, 0];
    for (let y = 0; y < crop; y++) {
      for (let j = 0; j < crop * 3; j++) out[b * m + y * crop * 3 + j] = px[((oy + y) * S + ox) * 3 + j]! / 127.5 - 1;
    }
  });
  return out;
}

/** The initial weights (PyTorch's initialisation, inference layout). */
function initialWeights(cfg: VaeConfig, seed: number): Map<string, Var> {
  const shapes = vaeParamShapes(cfg);
  const init = randomInit(shapes, new TrainRng(seed));
  const out = new Map<string, Var>();
  for (const [name, data] of init) {
    const shape = shapes.get(name)!;
    const t = shape.length === 4 ? convWeightToNhwc(Tensor.fromF32(data, shape)) : Tensor.fromF32(data, shape);
    out.set(name, Var.param(Float32Array.from(t.toF32()), t.shape));
  }
  return out;
}

const toCk = (m: Map<string, Float32Array>, shapes: Map<string, Var>): CkParams =>
  new Map([...m].map(([k, v]) => [k, { shape: [...shapes.get(k)!.shape], data: v }]));

/** The learning-rate schedule: linear warmup, then cosine to minLr (the LLM trainer's lrAt). */
const schedule = (o: VaeTrainOptions) => ({
  lr: o.lr, minLr: o.minLr ?? o.lr / 10, warmup: o.warmup ?? Math.min(200, Math.floor(o.steps / 10)), schedule: 'cosine' as const, steps: o.steps,
});

export function trainVae(
  k: TrainKernels, src: PictureSource, o: VaeTrainOptions,
  ev: { onStep?: (s: VaeStepInfo) => void; onLog?: (msg: string) => void } = {},
): VaeTrainResult {
  const cfg = vaeConfig(o.config);
  const factor = 2 ** (cfg.blockOutChannels.length - 1);
  if (src.size % factor) throw new TrainError(`picture size ${src.size} is not a multiple of the VAE's ${factor}`);
  if (src.count < 1) throw new TrainError('no pictures to train on');
  if (!(o.steps >= 1 && o.batchSize >= 1 && o.lr > 0)) throw new TrainError('steps, batchSize and lr must be positive');
  const crop = o.crop ?? src.size;
  if (!Number.isInteger(crop) || crop < factor || crop > src.size || crop % factor) throw new TrainError(`crop ${crop} must be a multiple of ${factor} no larger than the pictures (${src.size})`);
  mkdirSync(o.out, { recursive: true });
  const unlock = lockRunDir(o.out, ev.onLog);
  try {
    const seed = o.seed ?? 1;
    const weights = initialWeights(cfg, seed);
    const opt = new AdamW(weights, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, clip: o.clip ?? 1 }, k);
    const rng = new TrainRng(seed + 101);
    let start = 0;
    const history: VaeStepInfo[] = [];
    const metricsPath = join(o.out, 'metrics.jsonl');
    const last = latestCheckpoint(o.out);
    if (last) {
      const expect: CkParams = new Map([...weights].map(([n, v]) => [n, { shape: [...v.shape], data: v.data }]));
      const ck = loadCheckpoint(last, expect);
      for (const [n, p] of ck.params) weights.get(n)!.data.set(p.data);
      if (ck.opt) {
        for (const [n, p] of ck.opt.m) opt.m.get(n)!.set(p.data);
        for (const [n, p] of ck.opt.v) opt.v.get(n)!.set(p.data);
      }
      opt.step = ck.step;
      rng.restore(ck.state.rng as number[]);
      start = ck.step;
      // the metrics of steps after the checkpoint are dropped: the run redoes them identically
      history.push(...truncateMetricsLog<VaeStepInfo>(metricsPath, start));
      ev.onLog?.(`resuming from ${last} (step ${start})`);
    } else writeFileSync(metricsPath, '');
    const params = new DiffWeights('vae', new Map<string, DiffWeight>([...weights].map(([name, v]) => [name, { name, v }])));
    const t = new Tape(k);
    const ops = new TapeDiffOps(t);
    const S = crop, L = cfg.latentChannels, h = S / factor;
    const klWeight = o.klWeight ?? 1e-4;
    const sched = schedule(o);
    const save = (step: number) => {
      saveCheckpoint(o.out, {
        step,
        params: new Map([...weights].map(([n, v]) => [n, { shape: [...v.shape], data: v.data }])),
        opt: { m: toCk(opt.m, weights), v: toCk(opt.v, weights) },
        hfConfig: o.config,
        state: { rng: rng.state, kind: 'vae' },
        keep: o.keep ?? 2,
      });
    };
    for (let step = start; step < o.steps; step++) {
      const t0 = performance.now();
      const idx = Array.from({ length: o.batchSize }, () => Math.floor(rng.uniform() * src.count));
      const span = src.size - crop + 1;
      const offsets = crop < src.size ? idx.map(() => [Math.floor(rng.uniform() * span), Math.floor(rng.uniform() * span)] as const) : undefined;
      const x = batchPixels(src, idx, crop, offsets);
      const eps = new Float32Array(o.batchSize * h * h * L);
      rng.fillNormal(eps, 1);
      const moments = vaeEncode(ops, cfg, params, constant(t, x, [o.batchSize, S, S, 3]));
      const { z, kl } = sampleLatent(t, moments, eps, klWeight / eps.length);
      const xr = vaeDecode(ops, cfg, params, z);
      // seed: d mean((x̂ - x)²) / dx̂
      const g = t.gradOut(xr);
      let rec = 0;
      for (let i = 0; i < x.length; i++) {
        const d = xr.data[i]! - x[i]!;
        rec += d * d;
        g[i] = (2 * d) / x.length;
      }
      rec /= x.length;
      t.backward();
      t.reset();
      const lr = lrAt(step, sched);
      const gradNorm = opt.update(lr);
      const loss = rec + klWeight * kl;
      if (!Number.isFinite(gradNorm) || !Number.isFinite(loss)) {
        const good = latestCheckpoint(o.out);
        throw new TrainError(`step ${step + 1}: the loss or the gradients are not finite (loss ${loss}); ${good ? `the last good checkpoint is ${good}` : 'no checkpoint was written yet'}`);
      }
      const info: VaeStepInfo = { step: step + 1, steps: o.steps, loss, rec, kl, lr, gradNorm, ms: performance.now() - t0 };
      history.push(info);
      appendFileSync(metricsPath, JSON.stringify(info) + '\n');
      const every = o.checkpointEvery ?? 200;
      if ((step + 1) % every === 0 || step + 1 === o.steps) save(step + 1);
      ev.onStep?.(info);
    }
    const tail = history.slice(Math.floor(history.length * 0.9));
    return { steps: o.steps, resumedFrom: start, finalRec: tail.reduce((s, x) => s + x.rec, 0) / Math.max(1, tail.length), history, weights, config: cfg };
  } finally {
    unlock();
  }
}

/**
 * std of the latent means over `n` pictures (encoded with the trained weights, on the tape with
 * recording off): the scaling_factor that gives the UNet latents of unit variance is 1 / std.
 */
export function latentStd(k: TrainKernels, src: PictureSource, cfg: VaeConfig, weights: Map<string, Var>, n = 256): number {
  const t = new Tape(k);
  t.recording = false;
  const ops = new TapeDiffOps(t);
  const params = new DiffWeights('vae', new Map<string, DiffWeight>([...weights].map(([name, v]) => [name, { name, v: new Var(v.data, v.shape, false) }])));
  let s = 0, s2 = 0, cnt = 0;
  const L = cfg.latentChannels;
  for (let i0 = 0; i0 < Math.min(n, src.count); i0 += 16) {
    const idx = Array.from({ length: Math.min(16, Math.min(n, src.count) - i0) }, (_, j) => i0 + j);
    const m = vaeEncode(ops, cfg, params, constant(t, batchPixels(src, idx), [idx.length, src.size, src.size, 3]));
    const C2 = 2 * L;
    for (let r = 0; r < m.size / C2; r++) {
      for (let c = 0; c < L; c++) {
        const v = m.data[r * C2 + c]!;
        s += v;
        s2 += v * v;
        cnt++;
      }
    }
    t.reset();
  }
  const mean = s / cnt;
  return Math.sqrt(Math.max(1e-12, s2 / cnt - mean * mean));
}

/** Writes <dir>/config.json (with `scalingFactor`) and <dir>/diffusion_pytorch_model.safetensors (f32). */
export function writeVaeFolder(dir: string, config: Record<string, unknown>, weights: Map<string, Var>, scalingFactor: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, scaling_factor: scalingFactor }, null, 2) + '\n');
  const entries = [...weights].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, v]) => {
    const t = v.shape.length === 4 ? convWeightToNchw({ shape: v.shape, data: v.data }) : { shape: v.shape, data: v.data };
    return { name, dtype: 'F32' as const, shape: [...t.shape], data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
  });
  writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), entries, { format: 'pt' });
}

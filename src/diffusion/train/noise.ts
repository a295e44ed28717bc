// The denoising objective, as diffusers' examples/text_to_image/train_text_to_image.py (0.27)
// computes it for one batch of clean latents x0:
//
//   noise ε ~ N(0, 1)  (+ noise_offset · N(0, 1) per image and channel: offset noise)
//   t ~ U{0, ..., num_train_timesteps - 1}, one per image
//   x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε                         (the scheduler's add_noise)
//   target = ε (epsilon) | sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x0 (v_prediction, get_velocity)
//   loss = mean_b w_b · mean_i (pred - target)²
//   w_b = 1, or with min-SNR-γ (arXiv 2303.09556), snr = ᾱ_t / (1 - ᾱ_t):
//         min(snr, γ) / snr (epsilon), min(snr, γ) / (snr + 1) (v_prediction)
//
// ᾱ comes from the model's scheduler_config.json through the inference schedulers' own code
// (schedulers/common.ts noiseSchedule, alpha-common.ts addNoiseAlpha), so the noise a model is
// trained on is the noise it is sampled with. Every draw comes from one TrainRng whose state the
// checkpoint keeps, so a resumed run draws the same noise and timesteps.

import { noiseSchedule, resolveConfig, SCHEDULE_DEFAULTS, type SchedulerConfigJson } from '../schedulers/common.ts';
import { addNoiseAlpha } from '../schedulers/alpha-common.ts';
import type { TrainRng } from '../../train/rng.ts';
import { TrainError } from '../../train/errors.ts';

export type Prediction = 'epsilon' | 'v_prediction';

export interface TrainSchedule {
  alphasCumprod: Float32Array;
  prediction: Prediction;
  numTrainTimesteps: number;
}

/** The training noise schedule of a scheduler_config.json; `prediction` overrides its prediction_type. */
export function trainSchedule(config: SchedulerConfigJson, prediction?: string): TrainSchedule {
  const className = typeof config._class_name === 'string' ? config._class_name : 'scheduler';
  const c = resolveConfig(className, { ...SCHEDULE_DEFAULTS, rescale_betas_zero_snr: false }, config, ['trained_betas']);
  const { alphasCumprod } = noiseSchedule(className, c);
  const p = prediction ?? (typeof config.prediction_type === 'string' ? config.prediction_type : 'epsilon');
  if (p !== 'epsilon' && p !== 'v_prediction') throw new TrainError(`prediction type must be epsilon or v_prediction, got "${p}"`);
  return { alphasCumprod, prediction: p, numTrainTimesteps: alphasCumprod.length };
}

/** Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t). */
export function snrAt(s: TrainSchedule, t: number): number {
  const a = s.alphasCumprod[t]!;
  return a / (1 - a);
}

/** The min-SNR-γ weight of timestep t (1 when gamma is 0: off). */
export function minSnrWeight(s: TrainSchedule, t: number, gamma: number): number {
  if (!(gamma > 0)) return 1;
  const snr = snrAt(s, t);
  const m = Math.min(snr, gamma);
  return s.prediction === 'epsilon' ? m / snr : m / (snr + 1);
}

export interface NoisedBatch {
  /** x_t, same layout as x0. */
  noisy: Float32Array;
  /** What the model should output. */
  target: Float32Array;
  timesteps: number[];
  /** Per-image loss weights (min-SNR or 1). */
  weights: number[];
}

export interface NoiseOptions {
  /** Offset noise scale (0: off). */
  noiseOffset: number;
  /** min-SNR γ (0: off). */
  snrGamma: number;
}

/**
 * Draws the noise and timesteps for a batch of B clean latents x0 (NHWC, [B, h, w, C]) and
 * builds x_t and the target. Order of draws (part of the resume contract): per image, the
 * timestep, then the noise in element order, then the C offsets.
 */
export function noiseBatch(s: TrainSchedule, x0: Float32Array, B: number, C: number, rng: TrainRng, o: NoiseOptions): NoisedBatch {
  const per = x0.length / B;
  const noise = new Float32Array(x0.length);
  const timesteps: number[] = [];
  for (let b = 0; b < B; b++) {
    timesteps.push(Math.min(s.numTrainTimesteps - 1, Math.floor(rng.uniform() * s.numTrainTimesteps)));
    const eps = noise.subarray(b * per, (b + 1) * per);
    for (let i = 0; i < per; i++) eps[i] = rng.normal();
    if (o.noiseOffset > 0) {
      const off = Array.from({ length: C }, () => rng.normal() * o.noiseOffset);
      for (let i = 0; i < per; i++) eps[i] = Math.fround(eps[i]! + off[i % C]!);
    }
  }
  return noisedWith(s, x0, noise, timesteps, o.snrGamma);
}

/** x_t, the target and the weights for given noise and timesteps (one per image). */
export function noisedWith(s: TrainSchedule, x0: Float32Array, noise: Float32Array, timesteps: readonly number[], snrGamma: number): NoisedBatch {
  const B = timesteps.length, per = x0.length / B;
  const noisy = new Float32Array(x0.length), target = new Float32Array(x0.length);
  const weights: number[] = [];
  for (let b = 0; b < B; b++) {
    const t = timesteps[b]!;
    const eps = noise.subarray(b * per, (b + 1) * per), x = x0.subarray(b * per, (b + 1) * per);
    noisy.set(addNoiseAlpha(s.alphasCumprod, x, eps, t), b * per);
    if (s.prediction === 'epsilon') target.set(eps, b * per);
    else {
      // get_velocity: sqrt(a) ε - sqrt(1 - a) x0, in float32
      const a = s.alphasCumprod[t]!;
      const sa = Math.fround(Math.sqrt(a)), sb = Math.fround(Math.sqrt(Math.fround(1 - a)));
      for (let i = 0; i < per; i++) target[b * per + i] = Math.fround(Math.fround(sa * eps[i]!) - Math.fround(sb * x[i]!));
    }
    weights.push(minSnrWeight(s, t, snrGamma));
  }
  return { noisy, target, timesteps: [...timesteps], weights };
}

/**
 * The weighted MSE mean_b w_b · mean_i (pred - target)² (float64 sums) and its gradient with
 * respect to pred, times gradScale (1 / micro-batches of the step), written into dpred.
 */
export function weightedMse(pred: Float32Array, target: Float32Array, weights: readonly number[], gradScale: number, dpred: Float32Array): number {
  const B = weights.length, per = pred.length / B;
  let loss = 0;
  for (let b = 0; b < B; b++) {
    let s = 0;
    const w = weights[b]!, g = (2 * w * gradScale) / (B * per);
    for (let i = b * per; i < (b + 1) * per; i++) {
      const d = pred[i]! - target[i]!;
      s += d * d;
      dpred[i] = g * d;
    }
    loss += (w * s) / per;
  }
  return loss / B;
}

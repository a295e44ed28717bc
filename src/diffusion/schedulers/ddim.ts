// DDIM (Song et al., 2020), as diffusers' DDIMScheduler: deterministic for eta = 0 (the pipelines'
// default); eta > 0 adds noise drawn from the step's generator.

import {
  type Rng, type Scheduler, type SchedulerConfigJson, SCHEDULE_DEFAULTS, SchedulerConfigError, checkSameLength, checkSteps,
  drawNoise, f32, noiseSchedule, oneOf, resolveConfig, spacedTimesteps,
} from './common.ts';
import { addNoiseChecked, alphaAt, clampInPlace, predictX0 } from './alpha-common.ts';

export const DDIM_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
};

export interface DdimOptions {
  /** The DDIM eta (0: deterministic, 1: DDPM-like); diffusers' pipeline argument `eta`. */
  eta?: number;
}

export class DDIMScheduler implements Scheduler {
  readonly className = 'DDIMScheduler';
  readonly config: typeof DDIM_DEFAULTS;
  readonly order = 1;
  readonly initNoiseSigma = 1;
  readonly sigmas = null;
  readonly alphasCumprod: Float32Array;
  readonly eta: number;
  private readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  numInferenceSteps: number | null = null;

  constructor(config: SchedulerConfigJson = {}, options: DdimOptions = {}) {
    this.config = resolveConfig(this.className, DDIM_DEFAULTS, config);
    const c = this.config;
    oneOf(this.className, 'prediction_type', c.prediction_type, ['epsilon', 'sample', 'v_prediction']);
    oneOf(this.className, 'timestep_spacing', c.timestep_spacing, ['linspace', 'leading', 'trailing']);
    if (c.thresholding) throw new SchedulerConfigError(`${this.className}: config key "thresholding" (dynamic thresholding, for pixel-space models) is not supported`);
    this.alphasCumprod = noiseSchedule(this.className, c).alphasCumprod;
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    this.eta = options.eta ?? 0;
    if (!Number.isFinite(this.eta) || this.eta < 0) throw new SchedulerConfigError(`${this.className}: eta must be a non-negative number, got ${this.eta}`);
  }

  setTimesteps(n: number): void {
    const c = this.config;
    checkSteps(this.className, n, c.num_train_timesteps);
    this.numInferenceSteps = n;
    this.timesteps = spacedTimesteps(this.className, c.timestep_spacing, c.num_train_timesteps, n, c.steps_offset);
  }

  setBeginIndex(): void {
    // DDIMScheduler has no step index: each step reads its alphas from t itself.
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, rng?: Rng): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const c = this.config;
    const prevT = t - Math.floor(c.num_train_timesteps / this.numInferenceSteps);
    const a = this.alphaAt(t);
    const aPrev = prevT >= 0 ? this.alphaAt(prevT) : this.finalAlphaCumprod;
    const b = f32(1 - a);
    const sa = f32(Math.sqrt(a)), sb = f32(Math.sqrt(b));
    const x0 = predictX0(c.prediction_type, a, sample, modelOutput);
    const eps = new Float32Array(sample.length);
    for (let i = 0; i < eps.length; i++) {
      const x = sample[i]!, m = modelOutput[i]!;
      eps[i] = c.prediction_type === 'epsilon' ? m
        : c.prediction_type === 'sample' ? f32(x - f32(sa * m)) / sb
        : f32(sa * m) + f32(sb * x);
    }
    if (c.clip_sample) clampInPlace(x0, c.clip_sample_range);
    const variance = f32(f32(f32(1 - aPrev) / b) * f32(1 - f32(a / aPrev)));
    const std = f32(f32(this.eta) * f32(Math.sqrt(variance)));
    const dirCoeff = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
    const saPrev = f32(Math.sqrt(aPrev));
    const out = new Float32Array(sample.length);
    for (let i = 0; i < out.length; i++) out[i] = f32(saPrev * x0[i]!) + f32(dirCoeff * eps[i]!);
    if (this.eta > 0) {
      const noise = drawNoise(this.className, sample.length, rng);
      for (let i = 0; i < out.length; i++) out[i] = out[i]! + f32(std * noise[i]!);
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    return addNoiseChecked(this.className, this.alphasCumprod, original, noise, t);
  }

  private alphaAt(t: number): number {
    return alphaAt(this.className, this.alphasCumprod, t);
  }
}

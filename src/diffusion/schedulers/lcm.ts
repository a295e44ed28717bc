// Latent Consistency Model sampling (Luo et al., 2023), as diffusers' LCMScheduler: each step
// predicts the clean sample through the consistency boundary condition, then (except at the last
// step) re-noises it to the next timestep with noise from the step's generator.

import {
  type Rng, type Scheduler, type SchedulerConfigJson, SCHEDULE_DEFAULTS, SchedulerConfigError, checkSameLength,
  drawNoise, f32, indexForTimestep, noiseSchedule, npLinspace, oneOf, resolveConfig,
} from './common.ts';
import { addNoiseChecked, alphaAt, clampInPlace, predictX0 } from './alpha-common.ts';

export const LCM_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  original_inference_steps: 50,
  clip_sample: false,
  clip_sample_range: 1.0,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  timestep_scaling: 10.0,
  rescale_betas_zero_snr: false,
};

export class LCMScheduler implements Scheduler {
  readonly className = 'LCMScheduler';
  readonly config: typeof LCM_DEFAULTS;
  readonly order = 1;
  readonly initNoiseSigma = 1;
  readonly sigmas = null;
  readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  numInferenceSteps: number | null = null;
  private stepIndex: number | null = null;
  private beginIndex: number | null = null;

  constructor(config: SchedulerConfigJson = {}) {
    this.config = resolveConfig(this.className, LCM_DEFAULTS, config);
    const c = this.config;
    oneOf(this.className, 'prediction_type', c.prediction_type, ['epsilon', 'sample', 'v_prediction']);
    if (c.thresholding) throw new SchedulerConfigError(`${this.className}: config key "thresholding" (dynamic thresholding, for pixel-space models) is not supported`);
    if (!Number.isInteger(c.original_inference_steps) || c.original_inference_steps < 1 || c.original_inference_steps > c.num_train_timesteps) {
      throw new SchedulerConfigError(`${this.className}: config key "original_inference_steps" must be an integer in [1, ${c.num_train_timesteps}], got ${c.original_inference_steps}`);
    }
    this.alphasCumprod = noiseSchedule(this.className, c).alphasCumprod;
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  /** set_timesteps(n): n of the `original_inference_steps` training-schedule timesteps, evenly picked. */
  setTimesteps(n: number): void {
    const c = this.config;
    const original = c.original_inference_steps;
    if (!Number.isInteger(n) || n < 1) throw new SchedulerConfigError(`${this.className}: num_inference_steps must be a positive integer, got ${n}`);
    if (n > original) {
      throw new SchedulerConfigError(`${this.className}: num_inference_steps ${n} cannot be larger than original_inference_steps ${original}`);
    }
    const k = Math.floor(c.num_train_timesteps / original);
    const origin: number[] = [];
    for (let i = original; i >= 1; i--) origin.push(i * k - 1);
    const idx = npLinspace(0, origin.length, n + 1).slice(0, n).map(Math.floor); // endpoint=False
    this.timesteps = idx.map((i) => origin[i]!);
    this.numInferenceSteps = n;
    this.stepIndex = null;
    this.beginIndex = null;
  }

  setBeginIndex(index: number): void {
    this.beginIndex = index;
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, rng?: Rng): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const c = this.config;
    if (this.stepIndex === null) {
      const i = this.beginIndex ?? indexForTimestep(this.timesteps, t);
      if (i === null) throw new SchedulerConfigError(`${this.className}: timestep ${t} is not in the schedule [${this.timesteps.join(', ')}]`);
      this.stepIndex = i;
    }
    const prevIndex = this.stepIndex + 1;
    const prevT = prevIndex < this.timesteps.length ? this.timesteps[prevIndex]! : t;
    const a = this.alphaAt(t);
    const aPrev = prevT >= 0 ? this.alphaAt(prevT) : this.finalAlphaCumprod;
    // Boundary condition scalings (sigma_data 0.5); the int64 timestep times a Python float is a
    // float32 tensor.
    const s = f32(t * f32(c.timestep_scaling));
    const s2 = f32(f32(s * s) + 0.25);
    const cSkip = f32(0.25 / s2);
    const cOut = f32(s / f32(Math.sqrt(s2)));
    const x0 = predictX0(c.prediction_type, a, sample, modelOutput);
    if (c.clip_sample) clampInPlace(x0, c.clip_sample_range);
    const n = sample.length;
    const denoised = new Float32Array(n);
    for (let i = 0; i < n; i++) denoised[i] = f32(cOut * x0[i]!) + f32(cSkip * sample[i]!);
    let out = denoised;
    if (this.stepIndex !== this.numInferenceSteps - 1) {
      const noise = drawNoise(this.className, n, rng);
      const sa = f32(Math.sqrt(aPrev)), sb = f32(Math.sqrt(f32(1 - aPrev)));
      out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f32(sa * denoised[i]!) + f32(sb * noise[i]!);
    }
    this.stepIndex++;
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    return addNoiseChecked(this.className, this.alphasCumprod, original, noise, t);
  }

  private alphaAt(t: number): number {
    return alphaAt(this.className, this.alphasCumprod, t);
  }
}

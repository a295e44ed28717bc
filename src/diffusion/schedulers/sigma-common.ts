// Pieces shared by the sigma-based (k-diffusion style) schedulers: step-index bookkeeping as
// diffusers 0.27.2 does it (begin index for img2img, else the timestep's position), and add_noise.

import { SchedulerConfigError, f32, indexForTimestep } from './common.ts';

export class StepIndex {
  step: number | null = null;
  begin: number | null = null;

  reset(): void {
    this.step = null;
    this.begin = null;
  }

  /** _init_step_index: the begin index if set, else t's position; `missing` is used when t is
   * absent (DPM-Solver and UniPC use the last index; Euler fails). */
  init(className: string, timesteps: readonly number[], t: number, missing: 'last' | 'error'): number {
    if (this.step === null) {
      let i = this.begin ?? indexForTimestep(timesteps, t);
      if (i === null) {
        if (missing === 'error') throw new SchedulerConfigError(`${className}: timestep ${t} is not in the schedule [${timesteps.join(', ')}]`);
        i = timesteps.length - 1;
      }
      this.step = i;
    }
    return this.step;
  }

  /** The index add_noise uses for t. */
  forAddNoise(className: string, timesteps: readonly number[], t: number, missing: 'last' | 'error'): number {
    if (this.begin === null) {
      const i = indexForTimestep(timesteps, t);
      if (i === null) {
        if (missing === 'error') throw new SchedulerConfigError(`${className}: timestep ${t} is not in the schedule [${timesteps.join(', ')}]`);
        return timesteps.length - 1;
      }
      return i;
    }
    return this.step ?? this.begin;
  }
}

/** 1 / sqrt(sigma^2 + 1) and sigma / sqrt(sigma^2 + 1) in float32 (diffusers' _sigma_to_alpha_sigma_t). */
export function alphaSigma(sigma: number): [number, number] {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return [alpha, f32(sigma * alpha)];
}

/** log(alpha) - log(sigma) in float32. */
export function lambdaOf(alpha: number, sigma: number): number {
  return f32(f32(Math.log(alpha)) - f32(Math.log(sigma)));
}

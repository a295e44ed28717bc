// Pieces shared by the schedulers that work on alphas_cumprod directly (DDIM, PNDM, LCM).

import { checkSameLength, f32, SchedulerConfigError } from './common.ts';

/** alphas_cumprod[t], or an error naming the scheduler when t is not an integer timestep of its schedule. */
export function alphaAt(className: string, alphasCumprod: Float32Array, t: number): number {
  const a = alphasCumprod[t];
  if (!Number.isInteger(t) || a === undefined) throw new SchedulerConfigError(`${className}: timestep ${t} is not an integer in [0, ${alphasCumprod.length})`);
  return a;
}

/** addNoise of an alpha scheduler, with its checks: same lengths, an integer timestep. */
export function addNoiseChecked(className: string, alphasCumprod: Float32Array, original: Float32Array, noise: Float32Array, t: number): Float32Array {
  checkSameLength(className, 'noise', noise, original);
  alphaAt(className, alphasCumprod, t);
  return addNoiseAlpha(alphasCumprod, original, noise, t);
}

/** diffusers' add_noise for alpha schedulers: sqrt(a_t) x + sqrt(1 - a_t) noise, in float32. */
export function addNoiseAlpha(alphasCumprod: Float32Array, original: Float32Array, noise: Float32Array, t: number): Float32Array {
  const a = alphasCumprod[t]!;
  const sa = f32(Math.sqrt(a)), sb = f32(Math.sqrt(f32(1 - a)));
  const out = new Float32Array(original.length);
  for (let i = 0; i < out.length; i++) out[i] = f32(sa * original[i]!) + f32(sb * noise[i]!);
  return out;
}

/** The predicted clean sample x0 from the model output, for a given alpha_prod_t (float32). */
export function predictX0(prediction: string, a: number, sample: Float32Array, modelOutput: Float32Array): Float32Array {
  const sa = f32(Math.sqrt(a)), sb = f32(Math.sqrt(f32(1 - a)));
  const out = new Float32Array(sample.length);
  for (let i = 0; i < out.length; i++) {
    const x = sample[i]!, m = modelOutput[i]!;
    out[i] = prediction === 'epsilon' ? f32(x - f32(sb * m)) / sa
      : prediction === 'sample' ? m
      : f32(sa * x) - f32(sb * m);
  }
  return out;
}

export function clampInPlace(x: Float32Array, range: number): void {
  const r = f32(range);
  for (let i = 0; i < x.length; i++) x[i] = Math.min(Math.max(x[i]!, -r), r);
}

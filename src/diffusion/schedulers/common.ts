// What the diffusion schedulers share: the Scheduler contract, reading scheduler_config.json the
// way diffusers' ConfigMixin does (known keys over the class's defaults, unknown keys ignored), the
// noise schedule (betas, alphas_cumprod, sigmas), numpy's timestep arithmetic, and float32 helpers.
//
// Arithmetic: diffusers (0.27.2) keeps the schedule in float32 torch tensors, the latents in float32,
// and does the timestep and sigma set-up in numpy float64. We follow that operation by operation:
// every float32 tensor op is rounded with Math.fround, float64 numpy steps are done in doubles, so a
// step's output agrees with diffusers to about an ulp of float32 (see test/diffusion-sched.test.ts).

import type { TorchGenerator } from '../torch-rng.ts';
import { randnTensor } from '../torch-rng.ts';

export const f32 = Math.fround;

/** A scheduler config as read from `scheduler/scheduler_config.json` (or built in code). */
export type SchedulerConfigJson = Record<string, unknown>;

/** The generator(s) a stochastic step draws its noise from: one for the whole batch, or one per item. */
export type Rng = TorchGenerator | readonly TorchGenerator[];

/**
 * A diffusion scheduler on float32 latents ([B, C, H, W] flattened, contiguous), mirroring the
 * diffusers scheduler of the same name. The denoising loop is:
 *
 *   s.setTimesteps(n); let x = noise * s.initNoiseSigma;
 *   for (const t of s.timesteps) x = s.step(unet(s.scaleModelInput(x, t), t), t, x, rng);
 */
export interface Scheduler {
  /** The diffusers class it reproduces, e.g. 'EulerDiscreteScheduler'. */
  readonly className: string;
  /** The effective config: the class's defaults overlaid with the keys it knows from the given config. */
  readonly config: Readonly<Record<string, unknown>>;
  /** diffusers' `order` (model evaluations per timestep entry; 1 for all schedulers here). */
  readonly order: number;
  /** The timesteps of the current schedule (after setTimesteps), first to last. */
  readonly timesteps: readonly number[];
  /** The sigmas of the current schedule (sigma-based schedulers only; one more than the timesteps). */
  readonly sigmas: Float32Array | null;
  /** The number of inference steps set by setTimesteps (null before). */
  readonly numInferenceSteps: number | null;
  /** Scale for the initial noise (`latents = noise * initNoiseSigma`). */
  readonly initNoiseSigma: number;
  /** diffusers' `set_timesteps(n)`: a fresh schedule; resets the step state. */
  setTimesteps(numInferenceSteps: number): void;
  /** diffusers' `set_begin_index` (img2img starts part-way; a no-op where diffusers has none). */
  setBeginIndex(index: number): void;
  /** The model input for timestep t (sigma schedulers divide by sqrt(sigma^2 + 1)). */
  scaleModelInput(sample: Float32Array, t: number): Float32Array;
  /** One denoising step: the sample at the next timestep. `rng` is needed by stochastic steps. */
  step(modelOutput: Float32Array, t: number, sample: Float32Array, rng?: Rng): Float32Array;
  /** Forward diffusion to timestep t (image-to-image), as diffusers' `add_noise`. */
  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array;
}

export class SchedulerConfigError extends Error {
  override name = 'SchedulerConfigError';
}

// ---- config reading -----------------------------------------------------------------------------

/** The keys (and defaults) every scheduler here takes for its noise schedule. */
export const SCHEDULE_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null as number[] | null,
};

/**
 * diffusers' from_config: the class defaults, overlaid with the keys of `given` that the class knows
 * (others are ignored, as diffusers does, so a PNDM config can configure an Euler scheduler), then
 * type-checked against the default's type (a bad value is an error naming the key).
 */
export function resolveConfig<T extends Record<string, unknown>>(className: string, defaults: T, given: SchedulerConfigJson, nullable: readonly string[] = []): T {
  const out: Record<string, unknown> = { ...defaults };
  // Keys a newer diffusers saved but had left at their default ("_use_default_values") mean "default".
  const usedDefaults = Array.isArray(given['_use_default_values']) ? (given['_use_default_values'] as unknown[]) : [];
  for (const [k, v] of Object.entries(given)) {
    if (!(k in defaults) || usedDefaults.includes(k)) continue;
    const d = defaults[k];
    const nullOk = d === null || nullable.includes(k);
    if (v === null && nullOk) { out[k] = null; continue; }
    const want = d === null ? null : Array.isArray(d) ? 'array' : typeof d;
    const got = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
    if (want !== null && want !== got) {
      throw new SchedulerConfigError(`${className}: config key "${k}" must be a ${want}${nullOk ? ' or null' : ''}, got ${JSON.stringify(v)}`);
    }
    if (typeof v === 'number' && !Number.isFinite(v) && k !== 'lambda_min_clipped') {
      throw new SchedulerConfigError(`${className}: config key "${k}" must be finite, got ${v}`);
    }
    out[k] = v;
  }
  for (const k of ['num_train_timesteps', 'steps_offset']) {
    const v = out[k];
    if (v !== undefined && (!Number.isInteger(v) || (v as number) < 0 || (k === 'num_train_timesteps' && (v as number) < 2))) {
      throw new SchedulerConfigError(`${className}: config key "${k}" must be a ${k === 'steps_offset' ? 'non-negative' : 'positive'} integer, got ${JSON.stringify(v)}`);
    }
  }
  return out as T;
}

export function oneOf<T extends string>(className: string, key: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new SchedulerConfigError(`${className}: config key "${key}" is ${JSON.stringify(value)}; supported: ${allowed.join(', ')}`);
}

export function checkSteps(className: string, n: number, max: number): void {
  if (!Number.isInteger(n) || n < 1) throw new SchedulerConfigError(`${className}: num_inference_steps must be a positive integer, got ${n}`);
  if (n > max) throw new SchedulerConfigError(`${className}: num_inference_steps ${n} cannot be larger than num_train_timesteps ${max}`);
}

// ---- the noise schedule -------------------------------------------------------------------------

/** torch.linspace(start, end, steps, dtype=float32) on the CPU (step and both halves in float32). */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) { out[0] = start; return out; }
  const s = f32(start), e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < halfway ? f32(s + f32(step * i)) : f32(e - f32(step * (steps - i - 1)));
  }
  return out;
}

/** betas_for_alpha_bar (cosine, max_beta 0.999), computed in float64 and stored as float32. */
function betasForAlphaBar(n: number): Float32Array {
  const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999);
  return out;
}

/** rescale_zero_terminal_snr (arXiv 2305.08891, Algorithm 1) in float32. */
function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  const n = betas.length;
  const sqrtBar = new Float32Array(n);
  let cum = 1;
  for (let i = 0; i < n; i++) {
    cum *= f32(1 - betas[i]!); // cumprod accumulates in double, stores float32
    sqrtBar[i] = Math.sqrt(f32(cum));
  }
  const a0 = sqrtBar[0]!, aT = sqrtBar[n - 1]!;
  const scale = f32(a0 / f32(a0 - aT));
  const bar = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = f32(f32(sqrtBar[i]! - aT) * scale);
    bar[i] = f32(v * v);
  }
  const out = new Float32Array(n);
  out[0] = f32(1 - bar[0]!);
  for (let i = 1; i < n; i++) out[i] = f32(1 - f32(bar[i]! / bar[i - 1]!));
  return out;
}

export interface NoiseSchedule {
  betas: Float32Array;
  alphasCumprod: Float32Array;
}

/** betas and alphas_cumprod as diffusers builds them in __init__ (float32 tensors). */
export function noiseSchedule(className: string, c: typeof SCHEDULE_DEFAULTS & { rescale_betas_zero_snr?: boolean }): NoiseSchedule {
  const n = c.num_train_timesteps;
  let betas: Float32Array;
  if (c.trained_betas !== null) {
    if (!Array.isArray(c.trained_betas) || c.trained_betas.some((b) => typeof b !== 'number')) throw new SchedulerConfigError(`${className}: config key "trained_betas" must be a list of numbers`);
    betas = Float32Array.from(c.trained_betas);
  } else {
    const kind = oneOf(className, 'beta_schedule', c.beta_schedule, ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
    if (kind === 'linear') betas = torchLinspaceF32(c.beta_start, c.beta_end, n);
    else if (kind === 'scaled_linear') betas = torchLinspaceF32(c.beta_start ** 0.5, c.beta_end ** 0.5, n).map((b) => f32(b * b));
    else betas = betasForAlphaBar(n);
  }
  if (c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
  // torch.cumprod on the CPU accumulates in double (acc_type<float> is double) and stores floats.
  const alphasCumprod = new Float32Array(betas.length);
  let cum = 1;
  for (let i = 0; i < betas.length; i++) {
    cum *= f32(1 - betas[i]!);
    alphasCumprod[i] = cum;
  }
  return { betas, alphasCumprod };
}

/** ((1 - a) / a) ** 0.5 per train timestep, in float32 (diffusers' sigmas before interpolation). */
export function trainSigmas(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => Math.sqrt(f32(f32(1 - a) / a)));
}

// ---- numpy helpers --------------------------------------------------------------------------------

/** np.round: halves to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.linspace(start, stop, num) in float64 (endpoint included). */
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i * step + start);
  out[num - 1] = stop;
  return out;
}

/** np.arange(start, stop, step) in float64 (length ceil((stop - start) / step), values start + i*delta). */
export function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  const out: number[] = [];
  if (len === 0) return out;
  out.push(start);
  const delta = (start + step) - start;
  for (let i = 1; i < len; i++) out.push(start + i * delta);
  return out;
}

/** np.interp(x, arange(len(fp)), fp) for one x. */
export function npInterpIndex(x: number, fp: ArrayLike<number>): number {
  const n = fp.length;
  if (x <= 0) return fp[0]!;
  if (x >= n - 1) return fp[n - 1]!;
  const j = Math.floor(x);
  if (j === x) return fp[j]!;
  const slope = (fp[j + 1]! - fp[j]!) / 1;
  return slope * (x - j) + fp[j]!;
}

/** Karras et al. (2022) sigmas, rho 7, in float64 (diffusers' _convert_to_karras). */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const rho = 7.0;
  const minInv = sigmaMin ** (1 / rho), maxInv = sigmaMax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (maxInv + r * (minInv - maxInv)) ** rho);
}

/** diffusers' _sigma_to_t: the fractional train timestep of a sigma, by interpolating log sigmas
 * (`logSigmas` float32 as numpy keeps them). */
export function sigmaToT(sigma: number, logSigmas: Float32Array): number {
  const logSigma = Math.log(Math.max(sigma, 1e-10));
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) if (logSigma - logSigmas[i]! >= 0) low = i;
  low = Math.min(low, logSigmas.length - 2);
  const lo = logSigmas[low]!, hi = logSigmas[low + 1]!;
  let w = (lo - logSigma) / f32(lo - hi);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * low + w * (low + 1);
}

/** The timesteps of a "linspace" / "leading" / "trailing" spacing as the DDIM-family schedulers
 * compute them (integers, descending). */
export function spacedTimesteps(className: string, spacing: unknown, trainSteps: number, n: number, stepsOffset: number): number[] {
  const kind = oneOf(className, 'timestep_spacing', spacing, ['linspace', 'leading', 'trailing']);
  if (kind === 'linspace') return npLinspace(0, trainSteps - 1, n).map(roundHalfEven).reverse();
  if (kind === 'leading') {
    const ratio = Math.floor(trainSteps / n);
    const ts: number[] = [];
    for (let i = n - 1; i >= 0; i--) ts.push(i * ratio + stepsOffset);
    return ts;
  }
  return npArange(trainSteps, 0, -trainSteps / n).map((t) => roundHalfEven(t) - 1);
}

// ---- latent arithmetic ------------------------------------------------------------------------------

export function checkSameLength(className: string, what: string, a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) throw new SchedulerConfigError(`${className}: ${what} has ${a.length} values but the sample has ${b.length}`);
}

/** Noise of the latent shape drawn as diffusers' randn_tensor(model_output.shape, generator) draws it. */
export function drawNoise(className: string, n: number, rng: Rng | undefined): Float32Array {
  if (rng === undefined) throw new SchedulerConfigError(`${className}: this step draws noise; pass a TorchGenerator (rng)`);
  if (!Array.isArray(rng)) return randnTensor([n], rng as TorchGenerator);
  const gens = rng as readonly TorchGenerator[];
  if (n % gens.length !== 0) throw new SchedulerConfigError(`${className}: ${gens.length} generators do not divide a sample of ${n} values into a batch`);
  return randnTensor([gens.length, n / gens.length], gens);
}

/** diffusers' index_for_timestep: the position of t in the schedule (the second one if it occurs
 * twice, so img2img resuming at a repeated timestep does not skip); null if absent. */
export function indexForTimestep(timesteps: readonly number[], t: number): number | null {
  const hits: number[] = [];
  for (let i = 0; i < timesteps.length; i++) if (timesteps[i] === t) hits.push(i);
  if (hits.length === 0) return null;
  return hits.length > 1 ? hits[1]! : hits[0]!;
}

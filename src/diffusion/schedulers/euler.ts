// Euler (Karras et al., 2022, Algorithm 2 without churn) and Euler ancestral, as diffusers'
// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler. Both draw noise of the latent shape
// from the generator at every step (plain Euler too, though with s_churn = 0 it does not use it), so
// a shared generator stays in step with diffusers.

import {
  type Rng, type Scheduler, type SchedulerConfigJson, SCHEDULE_DEFAULTS, SchedulerConfigError, checkSameLength, checkSteps,
  drawNoise, f32, karrasSigmas, noiseSchedule, npArange, npInterpIndex, npLinspace, oneOf, resolveConfig, roundHalfEven,
  sigmaToT, trainSigmas,
} from './common.ts';
import { StepIndex } from './sigma-common.ts';

export const EULER_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  prediction_type: 'epsilon',
  interpolation_type: 'linear',
  use_karras_sigmas: false,
  sigma_min: null as number | null,
  sigma_max: null as number | null,
  timestep_spacing: 'linspace',
  timestep_type: 'discrete',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

export const EULER_ANCESTRAL_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  prediction_type: 'epsilon',
  timestep_spacing: 'linspace',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

abstract class EulerBase implements Scheduler {
  abstract readonly className: string;
  readonly order = 1;
  readonly alphasCumprod: Float32Array;
  timesteps: number[] = [];
  sigmas: Float32Array;
  numInferenceSteps: number | null = null;
  protected readonly index = new StepIndex();
  protected readonly c: typeof EULER_DEFAULTS;

  constructor(className: string, c: typeof EULER_DEFAULTS) {
    this.c = c;
    oneOf(className, 'timestep_spacing', c.timestep_spacing, ['linspace', 'leading', 'trailing']);
    this.alphasCumprod = noiseSchedule(className, c).alphasCumprod;
    if (c.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    const s = trainSigmas(this.alphasCumprod).reverse();
    this.sigmas = new Float32Array(s.length + 1);
    this.sigmas.set(s);
    this.timesteps = npLinspace(0, c.num_train_timesteps - 1, c.num_train_timesteps).reverse();
  }

  get initNoiseSigma(): number {
    let max = 0;
    for (const s of this.sigmas) max = Math.max(max, s);
    if (this.c.timestep_spacing === 'linspace' || this.c.timestep_spacing === 'trailing') return max;
    return f32(Math.sqrt(f32(f32(max * max) + 1)));
  }

  setTimesteps(n: number): void {
    const c = this.c;
    const cls = this.className;
    checkSteps(cls, n, c.num_train_timesteps);
    this.numInferenceSteps = n;
    const T = c.num_train_timesteps;
    let ts: number[];
    if (c.timestep_spacing === 'linspace') ts = npLinspace(0, T - 1, n).map(f32).reverse();
    else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(T / n);
      ts = Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + c.steps_offset);
    } else ts = npArange(T, 0, -T / n).map((t) => roundHalfEven(t) - 1);
    const train = trainSigmas(this.alphasCumprod);
    let sig = ts.map((t) => npInterpIndex(t, train));
    if (c.use_karras_sigmas) {
      const logSigmas = train.map(Math.log);
      sig = karrasSigmas(c.sigma_min ?? sig[sig.length - 1]!, c.sigma_max ?? sig[0]!, n);
      ts = sig.map((s) => f32(sigmaToT(s, logSigmas)));
    }
    this.timesteps = ts;
    this.sigmas = new Float32Array(sig.length + 1);
    this.sigmas.set(sig);
    this.index.reset();
  }

  setBeginIndex(index: number): void {
    this.index.begin = index;
  }

  scaleModelInput(sample: Float32Array, t: number): Float32Array {
    const i = this.index.init(this.className, this.timesteps, t, 'error');
    const sigma = this.sigmas[i]!;
    const d = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
    return sample.map((x) => x / d);
  }

  /** The x0 prediction for sigma (diffusers: epsilon uses sigma_hat, equal to sigma without churn). */
  protected predictX0(modelOutput: Float32Array, sample: Float32Array, sigma: number, allowSample: boolean): Float32Array {
    const p = this.c.prediction_type;
    const n = sample.length;
    const out = new Float32Array(n);
    if (p === 'epsilon') for (let i = 0; i < n; i++) out[i] = sample[i]! - f32(sigma * modelOutput[i]!);
    else if (p === 'v_prediction') {
      const s2 = f32(f32(sigma * sigma) + 1);
      const k = f32(-sigma / f32(Math.sqrt(s2)));
      for (let i = 0; i < n; i++) out[i] = f32(modelOutput[i]! * k) + f32(sample[i]! / s2);
    } else if (p === 'sample' && allowSample) out.set(modelOutput);
    else throw new SchedulerConfigError(`${this.className}: prediction_type ${JSON.stringify(p)} is not supported; use epsilon or v_prediction`);
    return out;
  }

  abstract step(modelOutput: Float32Array, t: number, sample: Float32Array, rng?: Rng): Float32Array;

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    checkSameLength(this.className, 'noise', noise, original);
    const sigma = this.sigmas[this.index.forAddNoise(this.className, this.timesteps, t, 'error')]!;
    const out = new Float32Array(original.length);
    for (let i = 0; i < out.length; i++) out[i] = original[i]! + f32(noise[i]! * sigma);
    return out;
  }

  get config(): Readonly<Record<string, unknown>> {
    return this.c;
  }
}

export class EulerDiscreteScheduler extends EulerBase {
  readonly className = 'EulerDiscreteScheduler';

  constructor(config: SchedulerConfigJson = {}) {
    const c = resolveConfig('EulerDiscreteScheduler', EULER_DEFAULTS, config, ['sigma_min', 'sigma_max']);
    oneOf('EulerDiscreteScheduler', 'prediction_type', c.prediction_type, ['epsilon', 'v_prediction', 'sample']);
    oneOf('EulerDiscreteScheduler', 'interpolation_type', c.interpolation_type, ['linear']);
    oneOf('EulerDiscreteScheduler', 'timestep_type', c.timestep_type, ['discrete']);
    super('EulerDiscreteScheduler', c);
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, rng?: Rng): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const i = this.index.init(this.className, this.timesteps, t, 'error');
    const sigma = this.sigmas[i]!;
    drawNoise(this.className, sample.length, rng); // drawn and unused (s_churn = 0), as diffusers does
    const x0 = this.predictX0(modelOutput, sample, sigma, true);
    const dt = f32(this.sigmas[i + 1]! - sigma);
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) out[k] = sample[k]! + f32(f32(f32(sample[k]! - x0[k]!) / sigma) * dt);
    this.index.step = i + 1;
    return out;
  }
}

export class EulerAncestralDiscreteScheduler extends EulerBase {
  readonly className = 'EulerAncestralDiscreteScheduler';

  constructor(config: SchedulerConfigJson = {}) {
    const c = resolveConfig('EulerAncestralDiscreteScheduler', EULER_ANCESTRAL_DEFAULTS, config);
    oneOf('EulerAncestralDiscreteScheduler', 'prediction_type', c.prediction_type, ['epsilon', 'v_prediction']);
    super('EulerAncestralDiscreteScheduler', { ...EULER_DEFAULTS, ...c });
  }

  override get config(): Readonly<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(EULER_ANCESTRAL_DEFAULTS)) out[k] = (this.c as Record<string, unknown>)[k];
    return out;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array, rng?: Rng): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const i = this.index.init(this.className, this.timesteps, t, 'error');
    const sigma = this.sigmas[i]!;
    const x0 = this.predictX0(modelOutput, sample, sigma, false);
    const sf = sigma, st = this.sigmas[i + 1]!;
    const st2 = f32(st * st), sf2 = f32(sf * sf);
    const up = f32(Math.sqrt(f32(f32(st2 * f32(sf2 - st2)) / sf2)));
    const down = f32(Math.sqrt(f32(st2 - f32(up * up))));
    const dt = f32(down - sigma);
    const n = sample.length;
    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) out[k] = sample[k]! + f32(f32(f32(sample[k]! - x0[k]!) / sigma) * dt);
    const noise = drawNoise(this.className, n, rng);
    for (let k = 0; k < n; k++) out[k] = out[k]! + f32(noise[k]! * up);
    this.index.step = i + 1;
    return out;
  }
}

// PNDM's pseudo linear multistep (PLMS) sampler, as diffusers' PNDMScheduler with
// skip_prk_steps = true (what Stable Diffusion's scheduler configs set). The Runge-Kutta warm-up
// (skip_prk_steps = false) is not implemented: such a config is an error.

import {
  type Scheduler, type SchedulerConfigJson, SCHEDULE_DEFAULTS, SchedulerConfigError, checkSameLength, checkSteps,
  f32, noiseSchedule, npArange, npLinspace, oneOf, resolveConfig, roundHalfEven,
} from './common.ts';
import { addNoiseChecked, alphaAt } from './alpha-common.ts';

export const PNDM_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
};

export class PNDMScheduler implements Scheduler {
  readonly className = 'PNDMScheduler';
  readonly config: typeof PNDM_DEFAULTS;
  readonly order = 1;
  readonly initNoiseSigma = 1;
  readonly sigmas = null;
  readonly alphasCumprod: Float32Array;
  private readonly finalAlphaCumprod: number;
  timesteps: number[] = [];
  numInferenceSteps: number | null = null;
  private ets: Float32Array[] = [];
  private counter = 0;
  private curSample: Float32Array | null = null;

  constructor(config: SchedulerConfigJson = {}) {
    this.config = resolveConfig(this.className, PNDM_DEFAULTS, config);
    const c = this.config;
    oneOf(this.className, 'prediction_type', c.prediction_type, ['epsilon', 'v_prediction']);
    oneOf(this.className, 'timestep_spacing', c.timestep_spacing, ['linspace', 'leading', 'trailing']);
    if (!c.skip_prk_steps) {
      throw new SchedulerConfigError(`${this.className}: skip_prk_steps = false (the Runge-Kutta warm-up) is not supported; Stable Diffusion's configs set skip_prk_steps = true`);
    }
    this.alphasCumprod = noiseSchedule(this.className, c).alphasCumprod;
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  setTimesteps(n: number): void {
    const c = this.config;
    checkSteps(this.className, n, c.num_train_timesteps);
    this.numInferenceSteps = n;
    const T = c.num_train_timesteps;
    // Ascending, as PNDM keeps them before the PLMS reordering.
    let asc: number[];
    if (c.timestep_spacing === 'linspace') asc = npLinspace(0, T - 1, n).map(roundHalfEven);
    else if (c.timestep_spacing === 'leading') asc = Array.from({ length: n }, (_, i) => i * Math.floor(T / n) + c.steps_offset);
    else asc = npArange(T, 0, -T / n).map((t) => roundHalfEven(t) - 1).reverse();
    // plms: _timesteps[:-1], _timesteps[-2:-1], _timesteps[-1:], reversed (the second-to-last repeats).
    const plms = [...asc.slice(0, -1), ...asc.slice(-2, -1), ...asc.slice(-1)].reverse();
    this.timesteps = plms;
    this.ets = [];
    this.counter = 0;
    this.curSample = null;
  }

  setBeginIndex(): void {
    // PNDMScheduler has no step index in diffusers 0.27.2.
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const stride = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    let prevT = t - stride;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput);
    } else {
      prevT = t;
      t = t + stride;
    }
    const e = this.ets;
    const n = sample.length;
    let mo: Float32Array;
    if (e.length === 1 && this.counter === 0) {
      mo = modelOutput;
      this.curSample = sample;
    } else if (e.length === 1 && this.counter === 1) {
      mo = new Float32Array(n);
      const e1 = e[e.length - 1]!;
      for (let i = 0; i < n; i++) mo[i] = f32(modelOutput[i]! + e1[i]!) / 2;
      sample = this.curSample ?? sample;
      this.curSample = null;
    } else if (e.length === 2) {
      const [e2, e1] = [e[0]!, e[1]!];
      mo = new Float32Array(n);
      for (let i = 0; i < n; i++) mo[i] = f32(f32(3 * e1[i]!) - e2[i]!) / 2;
    } else if (e.length === 3) {
      const [e3, e2, e1] = [e[0]!, e[1]!, e[2]!];
      mo = new Float32Array(n);
      for (let i = 0; i < n; i++) mo[i] = f32(f32(f32(23 * e1[i]!) - f32(16 * e2[i]!)) + f32(5 * e3[i]!)) / 12;
    } else {
      const [e4, e3, e2, e1] = [e[0]!, e[1]!, e[2]!, e[3]!];
      const k = f32(1 / 24);
      mo = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        mo[i] = k * f32(f32(f32(f32(55 * e1[i]!) - f32(59 * e2[i]!)) + f32(37 * e3[i]!)) - f32(9 * e4[i]!));
      }
    }
    const out = this.prevSample(sample, t, prevT, mo);
    this.counter++;
    return out;
  }

  private prevSample(sample: Float32Array, t: number, prevT: number, mo: Float32Array): Float32Array {
    const a = this.alphaAt(t);
    const aPrev = prevT >= 0 ? this.alphaAt(prevT) : this.finalAlphaCumprod;
    const b = f32(1 - a), bPrev = f32(1 - aPrev);
    const n = sample.length;
    if (this.config.prediction_type === 'v_prediction') {
      const sa = f32(Math.sqrt(a)), sb = f32(Math.sqrt(b));
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = f32(sa * mo[i]!) + f32(sb * sample[i]!);
      mo = v;
    }
    const sampleCoeff = f32(Math.sqrt(f32(aPrev / a)));
    const denom = f32(f32(a * f32(Math.sqrt(bPrev))) + f32(Math.sqrt(f32(f32(a * b) * aPrev))));
    const da = f32(aPrev - a);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = f32(sampleCoeff * sample[i]!) - f32(f32(da * mo[i]!) / denom);
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    return addNoiseChecked(this.className, this.alphasCumprod, original, noise, t);
  }

  private alphaAt(t: number): number {
    return alphaAt(this.className, this.alphasCumprod, t);
  }
}

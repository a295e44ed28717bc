// DPM-Solver / DPM-Solver++ multistep (Lu et al., 2022), as diffusers' DPMSolverMultistepScheduler:
// "DPM++ 2M" is algorithm_type dpmsolver++ with solver_order 2, and "DPM++ 2M Karras" adds
// use_karras_sigmas. Orders 1-3, midpoint and heun solver types, final_sigmas_type zero or
// sigma_min. Not implemented (an error names the key): the SDE variants, use_lu_lambdas,
// thresholding and learned variance.

import {
  type Scheduler, type SchedulerConfigJson, SCHEDULE_DEFAULTS, SchedulerConfigError, checkSameLength, checkSteps,
  f32, karrasSigmas, noiseSchedule, npArange, npInterpIndex, npLinspace, oneOf, resolveConfig, roundHalfEven, sigmaToT,
  trainSigmas,
} from './common.ts';
import { StepIndex, alphaSigma, lambdaOf } from './sigma-common.ts';

export const DPM_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  solver_order: 2,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  use_karras_sigmas: false,
  use_lu_lambdas: false,
  final_sigmas_type: 'zero',
  lambda_min_clipped: -Infinity,
  variance_type: null as string | null,
  timestep_spacing: 'linspace',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
};

export class DPMSolverMultistepScheduler implements Scheduler {
  readonly className = 'DPMSolverMultistepScheduler';
  readonly config: typeof DPM_DEFAULTS;
  readonly order = 1;
  readonly initNoiseSigma = 1;
  readonly alphasCumprod: Float32Array;
  timesteps: number[] = [];
  sigmas: Float32Array;
  numInferenceSteps: number | null = null;
  private readonly index = new StepIndex();
  private modelOutputs: (Float32Array | null)[] = [];
  private lowerOrderNums = 0;

  constructor(config: SchedulerConfigJson = {}) {
    const cls = this.className;
    this.config = resolveConfig(cls, DPM_DEFAULTS, config);
    const c = this.config;
    // diffusers maps the names of other solvers onto its own.
    if (c.algorithm_type === 'deis') c.algorithm_type = 'dpmsolver++';
    if (['logrho', 'bh1', 'bh2'].includes(c.solver_type)) c.solver_type = 'midpoint';
    if (c.algorithm_type === 'sde-dpmsolver' || c.algorithm_type === 'sde-dpmsolver++') {
      throw new SchedulerConfigError(`${cls}: algorithm_type ${JSON.stringify(c.algorithm_type)} (the SDE variants) is not supported; use dpmsolver++ or dpmsolver`);
    }
    oneOf(cls, 'algorithm_type', c.algorithm_type, ['dpmsolver++', 'dpmsolver']);
    oneOf(cls, 'solver_type', c.solver_type, ['midpoint', 'heun']);
    oneOf(cls, 'prediction_type', c.prediction_type, ['epsilon', 'sample', 'v_prediction']);
    oneOf(cls, 'timestep_spacing', c.timestep_spacing, ['linspace', 'leading', 'trailing']);
    oneOf(cls, 'final_sigmas_type', c.final_sigmas_type, ['zero', 'sigma_min']);
    if (![1, 2, 3].includes(c.solver_order)) throw new SchedulerConfigError(`${cls}: config key "solver_order" must be 1, 2 or 3, got ${c.solver_order}`);
    if (c.use_lu_lambdas) throw new SchedulerConfigError(`${cls}: config key "use_lu_lambdas" is not supported`);
    if (c.thresholding) throw new SchedulerConfigError(`${cls}: config key "thresholding" (dynamic thresholding, for pixel-space models) is not supported`);
    if (c.variance_type !== null) throw new SchedulerConfigError(`${cls}: config key "variance_type" (learned variance) is not supported`);
    if (c.algorithm_type === 'dpmsolver' && c.final_sigmas_type === 'zero') {
      throw new SchedulerConfigError(`${cls}: final_sigmas_type "zero" is not supported for algorithm_type "dpmsolver"; use "sigma_min"`);
    }
    this.alphasCumprod = noiseSchedule(cls, c).alphasCumprod;
    if (c.rescale_betas_zero_snr) this.alphasCumprod[this.alphasCumprod.length - 1] = 2 ** -24;
    this.sigmas = trainSigmas(this.alphasCumprod);
    this.modelOutputs = new Array(c.solver_order).fill(null);
  }

  setTimesteps(n: number): void {
    const c = this.config;
    const T = c.num_train_timesteps;
    checkSteps(this.className, n, T);
    // The last usable timestep: lambda_t (ascending after the flip) clipped at lambda_min_clipped.
    let clipped = 0;
    for (let i = this.alphasCumprod.length - 1; i >= 0; i--) {
      const a = this.alphasCumprod[i]!;
      const lambda = f32(f32(Math.log(f32(Math.sqrt(a)))) - f32(Math.log(f32(Math.sqrt(f32(1 - a))))));
      if (lambda < c.lambda_min_clipped) clipped++;
      else break;
    }
    const last = T - clipped;
    let ts: number[];
    if (c.timestep_spacing === 'linspace') ts = npLinspace(0, last - 1, n + 1).map(roundHalfEven).reverse().slice(0, -1);
    else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(last / (n + 1));
      ts = Array.from({ length: n + 1 }, (_, i) => (n - i) * ratio).slice(0, -1).map((t) => t + c.steps_offset);
    } else ts = npArange(last, 0, -T / n).map((t) => roundHalfEven(t) - 1);
    const train = trainSigmas(this.alphasCumprod);
    let sig: number[];
    if (c.use_karras_sigmas) {
      const logSigmas = train.map(Math.log);
      sig = karrasSigmas(train[0]!, train[train.length - 1]!, n);
      ts = sig.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
    } else {
      sig = ts.map((t) => npInterpIndex(t, train));
    }
    const a0 = this.alphasCumprod[0]!;
    const sigmaLast = c.final_sigmas_type === 'sigma_min' ? f32(Math.sqrt(f32(f32(1 - a0) / a0))) : 0;
    this.sigmas = Float32Array.from([...sig, sigmaLast]);
    this.timesteps = ts;
    this.numInferenceSteps = ts.length;
    this.modelOutputs = new Array(c.solver_order).fill(null);
    this.lowerOrderNums = 0;
    this.index.reset();
  }

  setBeginIndex(index: number): void {
    this.index.begin = index;
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  /** diffusers' convert_model_output: x0 for DPM-Solver++, epsilon for DPM-Solver. */
  private convert(mo: Float32Array, sample: Float32Array, i: number): Float32Array {
    const c = this.config;
    const [alpha, sigma] = alphaSigma(this.sigmas[i]!);
    const n = sample.length;
    const out = new Float32Array(n);
    const p = c.prediction_type;
    if (c.algorithm_type === 'dpmsolver++') {
      for (let k = 0; k < n; k++) {
        out[k] = p === 'epsilon' ? f32(sample[k]! - f32(sigma * mo[k]!)) / alpha
          : p === 'sample' ? mo[k]!
          : f32(alpha * sample[k]!) - f32(sigma * mo[k]!);
      }
    } else {
      for (let k = 0; k < n; k++) {
        out[k] = p === 'epsilon' ? mo[k]!
          : p === 'sample' ? f32(sample[k]! - f32(alpha * mo[k]!)) / sigma
          : f32(alpha * mo[k]!) + f32(sigma * sample[k]!);
      }
    }
    return out;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const c = this.config;
    const i = this.index.init(this.className, this.timesteps, t, 'last');
    const len = this.timesteps.length;
    const lowerOrderFinal = i === len - 1 && (c.euler_at_final || (c.lower_order_final && len < 15) || c.final_sigmas_type === 'zero');
    const lowerOrderSecond = i === len - 2 && c.lower_order_final && len < 15;
    const m = this.convert(modelOutput, sample, i);
    this.modelOutputs.shift();
    this.modelOutputs.push(m);
    let out: Float32Array;
    if (c.solver_order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) out = this.firstOrder(m, sample, i);
    else if (c.solver_order === 2 || this.lowerOrderNums < 2 || lowerOrderSecond) out = this.secondOrder(sample, i);
    else out = this.thirdOrder(sample, i);
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.index.step = i + 1;
    return out;
  }

  private firstOrder(m: Float32Array, x: Float32Array, i: number): Float32Array {
    const [at, st] = alphaSigma(this.sigmas[i + 1]!);
    const [as, ss] = alphaSigma(this.sigmas[i]!);
    const h = f32(lambdaOf(at, st) - lambdaOf(as, ss));
    const out = new Float32Array(x.length);
    if (this.config.algorithm_type === 'dpmsolver++') {
      const a = f32(st / ss), b = f32(at * f32(f32(Math.exp(-h)) - 1));
      for (let k = 0; k < out.length; k++) out[k] = f32(a * x[k]!) - f32(b * m[k]!);
    } else {
      const a = f32(at / as), b = f32(st * f32(f32(Math.exp(h)) - 1));
      for (let k = 0; k < out.length; k++) out[k] = f32(a * x[k]!) - f32(b * m[k]!);
    }
    return out;
  }

  private secondOrder(x: Float32Array, i: number): Float32Array {
    const c = this.config;
    const [at, st] = alphaSigma(this.sigmas[i + 1]!);
    const [as0, ss0] = alphaSigma(this.sigmas[i]!);
    const [as1, ss1] = alphaSigma(this.sigmas[i - 1]!);
    const lt = lambdaOf(at, st), l0 = lambdaOf(as0, ss0), l1 = lambdaOf(as1, ss1);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!, m1 = this.modelOutputs[this.modelOutputs.length - 2]!;
    const h = f32(lt - l0), h0 = f32(l0 - l1);
    const r0 = f32(h0 / h);
    const inv = f32(1 / r0);
    const n = x.length;
    const out = new Float32Array(n);
    let A: number, B: number, C: number, sign: number;
    if (c.algorithm_type === 'dpmsolver++') {
      const em1 = f32(f32(Math.exp(-h)) - 1);
      A = f32(st / ss0);
      B = f32(at * em1);
      if (c.solver_type === 'midpoint') { C = f32(0.5 * B); sign = -1; } else { C = f32(at * f32(f32(em1 / h) + 1)); sign = 1; }
    } else {
      const ep1 = f32(f32(Math.exp(h)) - 1);
      A = f32(at / as0);
      B = f32(st * ep1);
      if (c.solver_type === 'midpoint') C = f32(0.5 * B);
      else C = f32(st * f32(f32(ep1 / h) - 1));
      sign = -1;
    }
    for (let k = 0; k < n; k++) {
      const d1 = f32(inv * f32(m0[k]! - m1[k]!));
      const base = f32(f32(A * x[k]!) - f32(B * m0[k]!));
      out[k] = sign < 0 ? base - f32(C * d1) : base + f32(C * d1);
    }
    return out;
  }

  private thirdOrder(x: Float32Array, i: number): Float32Array {
    const c = this.config;
    const [at, st] = alphaSigma(this.sigmas[i + 1]!);
    const [as0, ss0] = alphaSigma(this.sigmas[i]!);
    const [as1, ss1] = alphaSigma(this.sigmas[i - 1]!);
    const [as2, ss2] = alphaSigma(this.sigmas[i - 2]!);
    const lt = lambdaOf(at, st), l0 = lambdaOf(as0, ss0), l1 = lambdaOf(as1, ss1), l2 = lambdaOf(as2, ss2);
    const L = this.modelOutputs.length;
    const m0 = this.modelOutputs[L - 1]!, m1 = this.modelOutputs[L - 2]!, m2 = this.modelOutputs[L - 3]!;
    const h = f32(lt - l0), h0 = f32(l0 - l1), h1 = f32(l1 - l2);
    const r0 = f32(h0 / h), r1 = f32(h1 / h);
    const i0 = f32(1 / r0), i1 = f32(1 / r1), k1 = f32(r0 / f32(r0 + r1)), k2 = f32(1 / f32(r0 + r1));
    const h2 = f32(h * h);
    let A: number, B: number, C: number, D: number;
    if (c.algorithm_type === 'dpmsolver++') {
      const em1 = f32(f32(Math.exp(-h)) - 1);
      A = f32(st / ss0); B = f32(at * em1);
      C = f32(at * f32(f32(em1 / h) + 1));
      D = f32(at * f32(f32(f32(em1 + h) / h2) - 0.5));
    } else {
      const ep1 = f32(f32(Math.exp(h)) - 1);
      A = f32(at / as0); B = f32(st * ep1);
      C = -f32(st * f32(f32(ep1 / h) - 1));
      D = f32(st * f32(f32(f32(ep1 - h) / h2) - 0.5));
    }
    const out = new Float32Array(x.length);
    for (let k = 0; k < out.length; k++) {
      const d10 = f32(i0 * f32(m0[k]! - m1[k]!)), d11 = f32(i1 * f32(m1[k]! - m2[k]!));
      const diff = f32(d10 - d11);
      const d1 = f32(d10 + f32(k1 * diff));
      const d2 = f32(k2 * diff);
      out[k] = f32(f32(f32(A * x[k]!) - f32(B * m0[k]!)) + f32(C * d1)) - f32(D * d2);
    }
    return out;
  }

  addNoise(original: Float32Array, noise: Float32Array, t: number): Float32Array {
    checkSameLength(this.className, 'noise', noise, original);
    const [alpha, sigma] = alphaSigma(this.sigmas[this.index.forAddNoise(this.className, this.timesteps, t, 'last')]!);
    const out = new Float32Array(original.length);
    for (let k = 0; k < out.length; k++) out[k] = f32(alpha * original[k]!) + f32(sigma * noise[k]!);
    return out;
  }
}

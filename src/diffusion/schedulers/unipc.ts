// UniPC (Zhao et al., 2023), as diffusers' UniPCMultistepScheduler: a multistep predictor (UniP)
// followed at the next step by a corrector (UniC) that reuses the new model evaluation; B(h) of type
// bh2 (Stable Diffusion's configs) or bh1, data prediction (predict_x0, the default), orders 1-3,
// Karras sigmas, disable_corrector. Not implemented: predict_x0 = false, solver_p, thresholding.
// diffusers 0.27.2's UniPC has no rescale_betas_zero_snr or final_sigmas_type: such keys are
// ignored, as there.

import {
  type Scheduler, type SchedulerConfigJson, SCHEDULE_DEFAULTS, SchedulerConfigError, checkSameLength, checkSteps,
  f32, karrasSigmas, noiseSchedule, npArange, npInterpIndex, npLinspace, oneOf, resolveConfig, roundHalfEven, sigmaToT,
  trainSigmas,
} from './common.ts';
import { StepIndex, alphaSigma, lambdaOf } from './sigma-common.ts';

export const UNIPC_DEFAULTS = {
  ...SCHEDULE_DEFAULTS,
  solver_order: 2,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  sample_max_value: 1.0,
  predict_x0: true,
  solver_type: 'bh2',
  lower_order_final: true,
  disable_corrector: [] as number[],
  solver_p: null as unknown,
  use_karras_sigmas: false,
  timestep_spacing: 'linspace',
  steps_offset: 0,
};

/** torch.linalg.solve for a small float32 system: LU with partial pivoting (LAPACK sgesv's order of
 * operations: columns scaled by the pivot's reciprocal, then forward and back substitution). */
function solveF32(Ain: number[][], bin: number[]): number[] {
  const n = bin.length;
  const A = Ain.map((r) => r.map(f32));
  const b = bin.map(f32);
  const piv: number[] = [];
  for (let j = 0; j < n; j++) {
    let p = j;
    for (let i = j + 1; i < n; i++) if (Math.abs(A[i]![j]!) > Math.abs(A[p]![j]!)) p = i;
    piv.push(p);
    if (p !== j) [A[p], A[j]] = [A[j]!, A[p]!];
    const r = f32(1 / A[j]![j]!);
    for (let i = j + 1; i < n; i++) A[i]![j] = f32(A[i]![j]! * r);
    for (let i = j + 1; i < n; i++) for (let k = j + 1; k < n; k++) A[i]![k] = f32(A[i]![k]! - f32(A[i]![j]! * A[j]![k]!));
  }
  for (let j = 0; j < n; j++) if (piv[j] !== j) [b[j], b[piv[j]!]] = [b[piv[j]!]!, b[j]!];
  for (let i = 0; i < n; i++) for (let k = 0; k < i; k++) b[i] = f32(b[i]! - f32(A[i]![k]! * b[k]!));
  for (let i = n - 1; i >= 0; i--) {
    for (let k = i + 1; k < n; k++) b[i] = f32(b[i]! - f32(A[i]![k]! * b[k]!));
    b[i] = f32(b[i]! / A[i]![i]!);
  }
  return b;
}

export class UniPCMultistepScheduler implements Scheduler {
  readonly className = 'UniPCMultistepScheduler';
  readonly config: typeof UNIPC_DEFAULTS;
  readonly order = 1;
  readonly initNoiseSigma = 1;
  readonly alphasCumprod: Float32Array;
  timesteps: number[] = [];
  sigmas: Float32Array;
  numInferenceSteps: number | null = null;
  private readonly index = new StepIndex();
  private modelOutputs: (Float32Array | null)[] = [];
  private lowerOrderNums = 0;
  private lastSample: Float32Array | null = null;
  private thisOrder = 1;

  constructor(config: SchedulerConfigJson = {}) {
    const cls = this.className;
    this.config = resolveConfig(cls, UNIPC_DEFAULTS, config, ['solver_p']);
    const c = this.config;
    if (['midpoint', 'heun', 'logrho'].includes(c.solver_type)) c.solver_type = 'bh2';
    oneOf(cls, 'solver_type', c.solver_type, ['bh1', 'bh2']);
    oneOf(cls, 'prediction_type', c.prediction_type, ['epsilon', 'sample', 'v_prediction']);
    oneOf(cls, 'timestep_spacing', c.timestep_spacing, ['linspace', 'leading', 'trailing']);
    if (![1, 2, 3].includes(c.solver_order)) throw new SchedulerConfigError(`${cls}: config key "solver_order" must be 1, 2 or 3, got ${c.solver_order}`);
    if (!c.predict_x0) throw new SchedulerConfigError(`${cls}: config key "predict_x0" = false (noise prediction) is not supported`);
    if (c.solver_p !== null) throw new SchedulerConfigError(`${cls}: config key "solver_p" is not supported`);
    if (c.thresholding) throw new SchedulerConfigError(`${cls}: config key "thresholding" (dynamic thresholding, for pixel-space models) is not supported`);
    if (!c.disable_corrector.every((v) => Number.isInteger(v))) throw new SchedulerConfigError(`${cls}: config key "disable_corrector" must be a list of step indices`);
    this.alphasCumprod = noiseSchedule(cls, c).alphasCumprod;
    this.sigmas = trainSigmas(this.alphasCumprod);
    this.modelOutputs = new Array(c.solver_order).fill(null);
  }

  setTimesteps(n: number): void {
    const c = this.config;
    const T = c.num_train_timesteps;
    checkSteps(this.className, n, T);
    let ts: number[];
    if (c.timestep_spacing === 'linspace') ts = npLinspace(0, T - 1, n + 1).map(roundHalfEven).reverse().slice(0, -1);
    else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(T / (n + 1));
      ts = Array.from({ length: n + 1 }, (_, i) => (n - i) * ratio).slice(0, -1).map((t) => t + c.steps_offset);
    } else ts = npArange(T, 0, -T / n).map((t) => roundHalfEven(t) - 1);
    const train = trainSigmas(this.alphasCumprod);
    let sig: number[];
    if (c.use_karras_sigmas) {
      const logSigmas = train.map(Math.log);
      sig = karrasSigmas(train[0]!, train[train.length - 1]!, n);
      ts = sig.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
      sig.push(sig[sig.length - 1]!);
    } else {
      sig = ts.map((t) => npInterpIndex(t, train));
      const a0 = this.alphasCumprod[0]!;
      sig.push(f32(Math.sqrt(f32(f32(1 - a0) / a0))));
    }
    this.sigmas = Float32Array.from(sig);
    this.timesteps = ts;
    this.numInferenceSteps = ts.length;
    this.modelOutputs = new Array(c.solver_order).fill(null);
    this.lowerOrderNums = 0;
    this.lastSample = null;
    this.index.reset();
  }

  setBeginIndex(index: number): void {
    this.index.begin = index;
  }

  scaleModelInput(sample: Float32Array): Float32Array {
    return sample;
  }

  private convert(mo: Float32Array, sample: Float32Array, i: number): Float32Array {
    const [alpha, sigma] = alphaSigma(this.sigmas[i]!);
    const p = this.config.prediction_type;
    const out = new Float32Array(sample.length);
    for (let k = 0; k < out.length; k++) {
      out[k] = p === 'epsilon' ? f32(sample[k]! - f32(sigma * mo[k]!)) / alpha
        : p === 'sample' ? mo[k]!
        : f32(alpha * sample[k]!) - f32(sigma * mo[k]!);
    }
    return out;
  }

  step(modelOutput: Float32Array, t: number, sample: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerConfigError(`${this.className}: call setTimesteps before step`);
    checkSameLength(this.className, 'modelOutput', modelOutput, sample);
    const c = this.config;
    const i = this.index.init(this.className, this.timesteps, t, 'last');
    const useCorrector = i > 0 && !c.disable_corrector.includes(i - 1) && this.lastSample !== null;
    const m = this.convert(modelOutput, sample, i);
    if (useCorrector) sample = this.corrector(m, this.lastSample!, sample, this.thisOrder, i);
    this.modelOutputs.shift();
    this.modelOutputs.push(m);
    const order = c.lower_order_final ? Math.min(c.solver_order, this.timesteps.length - i) : c.solver_order;
    this.thisOrder = Math.min(order, this.lowerOrderNums + 1);
    this.lastSample = sample;
    const out = this.predictor(sample, this.thisOrder, i);
    if (this.lowerOrderNums < c.solver_order) this.lowerOrderNums++;
    this.index.step = i + 1;
    return out;
  }

  /** The coefficients both updates share: h, hh = -h, h_phi_1, B(h), the rks and D1s, and b. */
  private coefficients(iT: number, iS0: number, order: number, firstPrev: number): {
    at: number; st: number; ss0: number; hPhi1: number; Bh: number; rks: number[]; d1s: Float32Array[]; b: number[];
  } {
    const [at, st] = alphaSigma(this.sigmas[iT]!);
    const [as0, ss0] = alphaSigma(this.sigmas[iS0]!);
    const l0 = lambdaOf(as0, ss0);
    const h = f32(lambdaOf(at, st) - l0);
    const L = this.modelOutputs.length;
    const m0 = this.modelOutputs[L - 1]!;
    const rks: number[] = [];
    const d1s: Float32Array[] = [];
    for (let j = 1; j < order; j++) {
      const si = firstPrev - (j - 1);
      const mi = this.modelOutputs[L - (j + 1)]!;
      const [a, s] = alphaSigma(this.sigmas[si]!);
      const rk = f32(f32(lambdaOf(a, s) - l0) / h);
      rks.push(rk);
      d1s.push(mi.map((v, k) => f32(v - m0[k]!) / rk));
    }
    rks.push(1);
    const hh = -h;
    const hPhi1 = f32(Math.expm1(hh));
    let hPhiK = f32(f32(hPhi1 / hh) - 1);
    let fact = 1;
    const Bh = this.config.solver_type === 'bh1' ? hh : f32(Math.expm1(hh));
    const b: number[] = [];
    for (let j = 1; j <= order; j++) {
      b.push(f32(f32(hPhiK * fact) / Bh));
      fact *= j + 1;
      hPhiK = f32(f32(hPhiK / hh) - f32(1 / fact));
    }
    return { at, st, ss0, hPhi1, Bh, rks, d1s, b };
  }

  private static powRows(rks: number[], rows: number): number[][] {
    const R: number[][] = [];
    for (let p = 0; p < rows; p++) R.push(rks.map((r) => (p === 0 ? 1 : p === 1 ? r : f32(r ** p))));
    return R;
  }

  /** multistep_uni_p_bh_update (data prediction). */
  private predictor(x: Float32Array, order: number, i: number): Float32Array {
    const { at, st, ss0, hPhi1, Bh, rks, d1s, b } = this.coefficients(i + 1, i, order, i - 1);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    let rhos: number[] = [];
    if (d1s.length > 0) {
      if (order === 2) rhos = [0.5];
      else {
        const R = UniPCMultistepScheduler.powRows(rks, order);
        rhos = solveF32(R.slice(0, -1).map((r) => r.slice(0, -1)), b.slice(0, -1));
      }
    }
    const A = f32(st / ss0), B = f32(at * hPhi1), C = f32(at * Bh);
    const out = new Float32Array(x.length);
    for (let k = 0; k < out.length; k++) {
      const base = f32(f32(A * x[k]!) - f32(B * m0[k]!));
      let res = 0;
      for (let j = 0; j < d1s.length; j++) res = j === 0 ? f32(rhos[0]! * d1s[0]![k]!) : f32(res + f32(rhos[j]! * d1s[j]![k]!));
      out[k] = base - f32(C * res);
    }
    return out;
  }

  /** multistep_uni_c_bh_update (data prediction): corrects this step's sample with its model output. */
  private corrector(modelT: Float32Array, last: Float32Array, _thisSample: Float32Array, order: number, i: number): Float32Array {
    const { at, st, ss0, hPhi1, Bh, rks, d1s, b } = this.coefficients(i, i - 1, order, i - 2);
    const m0 = this.modelOutputs[this.modelOutputs.length - 1]!;
    const rhos = order === 1 ? [0.5] : solveF32(UniPCMultistepScheduler.powRows(rks, order), b);
    const A = f32(st / ss0), B = f32(at * hPhi1), C = f32(at * Bh);
    const rLast = rhos[rhos.length - 1]!;
    const out = new Float32Array(last.length);
    for (let k = 0; k < out.length; k++) {
      const base = f32(f32(A * last[k]!) - f32(B * m0[k]!));
      let res = 0;
      for (let j = 0; j < d1s.length; j++) res = j === 0 ? f32(rhos[0]! * d1s[0]![k]!) : f32(res + f32(rhos[j]! * d1s[j]![k]!));
      const d1t = f32(modelT[k]! - m0[k]!);
      const corr = d1s.length > 0 ? f32(res + f32(rLast * d1t)) : f32(rLast * d1t);
      out[k] = base - f32(C * corr);
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

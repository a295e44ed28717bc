// AdamW over fp32 master weights, with global-norm gradient clipping. Weight decay is
// decoupled (applied to the weights, not the gradient) and skipped for norms and biases.

import type { Var } from '../tensor/autograd.ts';
import type { TrainKernels } from '../tensor/train-kernels.ts';
import { decays } from './model.ts';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm limit; 0: no clipping. */
  clip: number;
}

export class AdamW {
  readonly m = new Map<string, Float32Array>();
  readonly v = new Map<string, Float32Array>();
  /** Steps taken (bias correction uses step + 1 for the next one). */
  step = 0;

  constructor(
    readonly params: Map<string, Var>,
    readonly opts: AdamWOptions,
    private readonly k: TrainKernels,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.size));
      this.v.set(name, new Float32Array(p.size));
    }
  }

  /** The global L2 norm of all gradients. */
  gradNorm(): number {
    let s = 0;
    for (const p of this.params.values()) s += this.k.sumSquares(p.grad!);
    return Math.sqrt(s);
  }

  /**
   * One update with learning rate lr; gradients are zeroed afterwards. Returns the gradient
   * norm before clipping (NaN/inf: nothing is updated and the caller must stop).
   */
  update(lr: number): number {
    const norm = this.gradNorm();
    if (!Number.isFinite(norm)) return norm;
    const { beta1, beta2, eps, weightDecay, clip } = this.opts;
    const scale = clip > 0 && norm > clip ? clip / norm : 1;
    this.step++;
    for (const [name, p] of this.params) {
      const wd = decays(name, p.shape) ? weightDecay : 0;
      this.k.adamw(p.data, p.grad!, this.m.get(name)!, this.v.get(name)!, this.step, lr, beta1, beta2, eps, wd, scale);
      p.grad!.fill(0);
    }
    return norm;
  }

  zeroGrad(): void {
    for (const p of this.params.values()) p.grad!.fill(0);
  }
}

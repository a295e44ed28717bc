// Three small tape ops the LoRA hook needs around src/tensor/autograd.ts' linear (which takes
// rows [n, in]): a reshape that shares data and passes the gradient through, a scale, and a sum
// into a fresh activation.

import { add, type Tape, Var } from '../../tensor/autograd.ts';

/** The same values in another shape (no copy); the gradient flows back unchanged. */
export function reshapeVar(t: Tape, x: Var, shape: readonly number[]): Var {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n !== x.size) throw new Error(`reshape: [${x.shape}] has ${x.size} values, [${shape}] needs ${n}`);
  const y = new Var(x.data, shape, x.requiresGrad && t.recording);
  if (y.requiresGrad) {
    // recorded before y's consumers: runs after every one of them has added its gradient
    t.record(() => {
      if (y.gradInit) t.shareGrad(x, y.grad!);
    });
  }
  return y;
}

/** s · x (a new activation). */
export function scaleVar(t: Tape, x: Var, s: number): Var {
  const y = t.act(x.shape, x.requiresGrad);
  y.data.set(x.data);
  t.k.scaleInPlace(y.data, s);
  if (y.requiresGrad) {
    t.record(() => {
      t.addGrad(x, (dx) => {
        dx.set(y.grad!);
        t.k.scaleInPlace(dx, s);
      });
    });
  }
  return y;
}

/** a + b (a new activation, a's shape). */
export function sumVars(t: Tape, a: Var, b: Var): Var {
  return add(t, a, b);
}

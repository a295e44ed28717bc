// The image ops of the diffusion networks (conv2d, groupNorm, upsample2x, attention): the cpu
// backend (native GEMMs) against the ref backend (f64 loops) on random inputs of awkward sizes
// (odd H and W, channel counts that are not multiples of 8, stride 2, asymmetric padding,
// f16 weights), plus the arithmetic of one tiny case written out by hand.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import type { Backend } from '../src/tensor/backend.ts';
import type { DType } from '../src/tensor/dtype.ts';
import { rng } from './helpers/random.ts';

const cpu = cpuBackend();

function rand(shape: number[], seed: number, dtype: DType = 'f32'): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Array.from({ length: n }, () => r()), shape, dtype);
}

function close(got: Tensor, want: Tensor, tol: number, what: string): void {
  const a = got.toF32(), b = want.toF32();
  assert.equal(a.length, b.length);
  let scale = 0, err = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
  }
  assert.ok(err <= tol * Math.max(scale, 1e-30), `${what}: max |diff| ${err} over scale ${scale}`);
}

function both(run: (be: Backend) => Tensor, tol: number, what: string): void {
  close(run(cpu), run(refBackend), tol, what);
}

test('conv2d: hand-computed 3x3 with padding and bias', () => {
  // one channel, 2x2 image [[1, 2], [3, 4]], all-ones 3x3 kernel, bias 0.5: each output is the
  // sum of the image (every window covers all four pixels) plus 0.5
  const x = Tensor.from([1, 2, 3, 4], [1, 2, 2, 1]);
  const w = Tensor.from(new Array(9).fill(1), [1, 3, 3, 1]);
  const b = Tensor.from([0.5], [1]);
  for (const be of [cpu, refBackend]) {
    const out = Tensor.zeros([1, 2, 2, 1]);
    be.conv2d(x, w, b, out, { stride: 1, pad: 1 });
    assert.deepEqual([...out.toF32()], [10.5, 10.5, 10.5, 10.5], be.name);
  }
});

const convCases: { B: number; H: number; W: number; C: number; Co: number; k: number; stride: number; pad: number; padEnd?: number; dtype: DType }[] = [
  { B: 2, H: 7, W: 5, C: 3, Co: 13, k: 3, stride: 1, pad: 1, dtype: 'f32' },
  { B: 1, H: 9, W: 11, C: 12, Co: 5, k: 3, stride: 2, pad: 1, dtype: 'f32' },
  { B: 1, H: 8, W: 8, C: 10, Co: 6, k: 3, stride: 2, pad: 0, padEnd: 1, dtype: 'f32' }, // diffusers' VAE downsampler
  { B: 2, H: 5, W: 3, C: 19, Co: 7, k: 1, stride: 1, pad: 0, dtype: 'f32' },
  { B: 1, H: 6, W: 7, C: 9, Co: 11, k: 3, stride: 1, pad: 1, dtype: 'f16' },
  { B: 1, H: 4, W: 5, C: 17, Co: 3, k: 1, stride: 1, pad: 0, dtype: 'bf16' },
  { B: 1, H: 3, W: 3, C: 4, Co: 2, k: 3, stride: 1, pad: 0, dtype: 'f32' },
  { B: 1, H: 9, W: 8, C: 6, Co: 5, k: 3, stride: 2, pad: 0, padEnd: 1, dtype: 'f16' },
  // depth 3 * 3 * 70 = 630 crosses sgemm's depth blocks; 37 output channels, edge panels
  { B: 2, H: 5, W: 6, C: 70, Co: 37, k: 3, stride: 1, pad: 1, dtype: 'bf16' },
];

for (const c of convCases) {
  test(`conv2d cpu = ref: ${JSON.stringify(c)}`, () => {
    const x = rand([c.B, c.H, c.W, c.C], 1 + c.C);
    const w = rand([c.Co, c.k, c.k, c.C], 7 + c.Co, c.dtype);
    const b = rand([c.Co], 3);
    const pe = c.padEnd ?? c.pad;
    const OH = Math.floor((c.H + c.pad + pe - c.k) / c.stride) + 1, OW = Math.floor((c.W + c.pad + pe - c.k) / c.stride) + 1;
    both((be) => {
      const out = Tensor.zeros([c.B, OH, OW, c.Co]);
      be.conv2d(x, w, b, out, { stride: c.stride, pad: c.pad, padEnd: c.padEnd });
      return out;
    }, 1e-5, 'conv2d');
  });
}

test('conv2d: shape errors name the op', () => {
  const x = rand([1, 4, 4, 3], 1), w = rand([2, 3, 3, 3], 2);
  for (const be of [cpu, refBackend]) {
    assert.throws(() => be.conv2d(x, w, null, Tensor.zeros([1, 3, 4, 2]), { stride: 1, pad: 1 }), /conv2d: .*must be \[1, 4, 4, 2\]/);
    assert.throws(() => be.conv2d(x, rand([2, 3, 3, 5], 2), null, Tensor.zeros([1, 4, 4, 2]), { stride: 1, pad: 1 }), /conv2d: .*3 channels/);
  }
});

for (const [shape, groups, silu] of [
  [[2, 5, 7, 12], 4, false],
  [[1, 3, 3, 10], 5, true],
  [[2, 77, 6], 3, true],
] as [number[], number, boolean][]) {
  test(`groupNorm cpu = ref: ${shape} groups ${groups} silu ${silu}`, () => {
    const x = rand(shape, 11);
    // an offset mean, as activations deep in a network have
    const xs = x.f32();
    for (let i = 0; i < xs.length; i++) xs[i]! += 3;
    const C = shape[shape.length - 1]!;
    const w = rand([C], 5), b = rand([C], 6);
    both((be) => {
      const out = Tensor.zeros(shape);
      be.groupNorm(x, w, b, groups, 1e-6, silu, out);
      return out;
    }, 1e-5, 'groupNorm');
  });
}

test('groupNorm: in place, and the group count must divide the channels', () => {
  const x = rand([1, 4, 4, 8], 2), w = rand([8], 3), b = rand([8], 4);
  const want = Tensor.zeros([1, 4, 4, 8]);
  refBackend.groupNorm(x, w, b, 2, 1e-5, false, want);
  const y = Tensor.from(x.toF32(), [1, 4, 4, 8]);
  cpu.groupNorm(y, w, b, 2, 1e-5, false, y);
  close(y, want, 1e-5, 'in place');
  assert.throws(() => cpu.groupNorm(x, w, b, 3, 1e-5, false, Tensor.zeros([1, 4, 4, 8])), /groupNorm: 3 groups do not divide 8 channels/);
});

test('upsample2x cpu = ref, nearest', () => {
  const x = rand([2, 3, 5, 7], 9);
  both((be) => {
    const out = Tensor.zeros([2, 6, 10, 7]);
    be.upsample2x(x, out);
    return out;
  }, 0, 'upsample2x');
  const out = Tensor.zeros([1, 2, 2, 1]);
  cpu.upsample2x(Tensor.from([5], [1, 1, 1, 1]), out);
  assert.deepEqual([...out.toF32()], [5, 5, 5, 5]);
});

for (const [B, H, Tq, Tk, D] of [
  [2, 3, 17, 17, 8],
  [1, 2, 9, 77, 5],
  [2, 1, 1, 3, 4],
] as [number, number, number, number, number][]) {
  test(`attention cpu = ref: B ${B} heads ${H} Tq ${Tq} Tk ${Tk} D ${D}, heads as views of [B, T, H * D] rows`, () => {
    // projections lie as [B, T, H * D]; the op sees them as [B, H, T, D] through strides
    const view = (t: Tensor, T: number) => t.view([B, H, T, D], [T * H * D, D, H * D, 1]);
    const q = rand([B, Tq, H * D], 21), k = rand([B, Tk, H * D], 22), v = rand([B, Tk, H * D], 23);
    for (const t of [q, k]) {
      const a = t.f32();
      for (let i = 0; i < a.length; i++) a[i]! *= 2; // sharper softmax
    }
    both((be) => {
      const out = Tensor.zeros([B, Tq, H * D]);
      be.attention(view(q, Tq), view(k, Tk), view(v, Tk), view(out, Tq), 1 / Math.sqrt(D));
      return out;
    }, 1e-5, 'attention');
  });
}

test('attention: causal (CLIP text), cpu = ref, and the first query sees only the first key', () => {
  const [B, H, T, D] = [2, 2, 7, 4];
  const view = (t: Tensor) => t.view([B, H, T, D], [T * H * D, D, H * D, 1]);
  const q = rand([B, T, H * D], 31), k = rand([B, T, H * D], 32), v = rand([B, T, H * D], 33);
  both((be) => {
    const out = Tensor.zeros([B, T, H * D]);
    be.attention(view(q), view(k), view(v), view(out), 0.5, true);
    return out;
  }, 1e-5, 'causal attention');
  const out = Tensor.zeros([B, T, H * D]);
  cpu.attention(view(q), view(k), view(v), view(out), 0.5, true);
  assert.deepEqual([...out.toF32().subarray(0, H * D)], [...v.toF32().subarray(0, H * D)]);
});

test('attention (sgemm + softmax), groupNorm and conv2d on every instruction set this machine runs', () => {
  const isa = cpu.isa;
  try {
    for (const name of cpu.availableIsas()) {
      cpu.setIsa(name as 'avx512' | 'avx2' | 'portable');
      const [B, H, Tq, Tk, D] = [1, 3, 13, 21, 20];
      const view = (t: Tensor, T: number) => t.view([B, H, T, D], [T * H * D, D, H * D, 1]);
      const q = rand([B, Tq, H * D], 41), k = rand([B, Tk, H * D], 42), v = rand([B, Tk, H * D], 43);
      for (const causal of [false, true]) {
        both((be) => {
          const out = Tensor.zeros([B, Tq, H * D]);
          be.attention(view(q, Tq), view(k, Tk), view(v, Tk), view(out, Tq), 0.3, causal);
          return out;
        }, 1e-5, `attention on ${name}, causal ${causal}`);
      }
      const x = rand([2, 3, 5, 12], 44), w = rand([12], 45), b = rand([12], 46);
      both((be) => {
        const out = Tensor.zeros([2, 3, 5, 12]);
        be.groupNorm(x, w, b, 3, 1e-5, true, out);
        return out;
      }, 1e-5, `groupNorm on ${name}`);
      for (const dtype of ['f32', 'f16', 'bf16'] as const) {
        const cw = rand([9, 3, 3, 12], 47, dtype), cb = rand([9], 48);
        both((be) => {
          const out = Tensor.zeros([2, 3, 5, 9]);
          be.conv2d(x, cw, cb, out, { stride: 1, pad: 1 });
          return out;
        }, 1e-5, `conv2d ${dtype} on ${name}`);
      }
    }
  } finally {
    cpu.setIsa(isa as 'avx512' | 'avx2' | 'portable');
  }
});

test('attention: causal with more queries than keys is refused on both backends', () => {
  const t = (T: number) => Tensor.zeros([1, 1, T, 4]);
  for (const be of [cpu, refBackend]) assert.throws(() => be.attention(t(3), t(2), t(2), t(3), 1, true), /attention: causal attention needs no more queries \(3\) than keys \(2\)/);
});

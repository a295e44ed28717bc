// torch's CPU random numbers, reproduced: `torch.Generator("cpu").manual_seed(seed)` followed by
// `torch.randn(shape, generator=g, dtype=torch.float32)` / `torch.rand(...)`, as diffusers'
// `randn_tensor` calls them, so that a seed gives the same initial latents (and the same ancestral
// noise) as a diffusers pipeline run on the CPU.
//
// What torch 1.13 does (aten/src/ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp,
// core/DistributionsHelper.h, native/cpu/DistributionTemplates.h and DistributionKernels.cpp):
//   - the engine is the 32-bit Mersenne Twister (mt19937), seeded with the low 32 bits of the seed
//     by the reference init_genrand; `random64()` is two draws, the first as the high word.
//   - a float uniform in [0, 1) is (random() & (2^24 - 1)) / 2^24; a double one is
//     (random64() & (2^53 - 1)) / 2^53.
//   - `normal_` on a contiguous float32 tensor of at least 16 elements ("normal_fill"): first one
//     float uniform per element, in order; then every whole chunk of 16 is turned into normals in
//     place by Box–Muller with u1 = 1 - data[j], u2 = data[j + 8] for j < 8 (cos into data[j], sin
//     into data[j + 8]); if the size is not a multiple of 16, the last 16 elements (overlapping the
//     previous chunk) are drawn again as uniforms and transformed once more.
//     On a CPU whose ATen capability is AVX2 (the usual x86-64 case; `torch.__config__.show()` says
//     "CPU capability usage: AVX2") the transform is `normal_fill_16_AVX2`, whose log, sin and cos
//     are the Cephes polynomials of avx_mathfun.h in float32, compiled with FMA contraction. We
//     emulate that arithmetic operation by operation (`boxMuller16Avx2`) and match torch bit for
//     bit. On other capabilities (DEFAULT, AVX512, ARM) torch uses the scalar `normal_fill_16`
//     with libm's logf/cosf/sinf instead; `normalPath: 'scalar'` selects that (within 1 ulp, not
//     verified bit for bit here: our oracle runs AVX2).
//   - fewer than 16 elements (or float64): the scalar `normal_distribution<double>`: two double
//     uniforms u1, u2, r = sqrt(-2 log(1 - u2)), theta = 2 pi u1, returns r cos(theta) and keeps
//     r sin(theta) for the next call (the generator's cached double normal, cleared by
//     manual_seed); the float result is that double cast to float32.

/** The 32-bit Mersenne Twister as torch (and C++'s std::mt19937) runs it. */
export class MT19937 {
  private readonly state = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    const s = this.state;
    s[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = s[i - 1]! ^ (s[i - 1]! >>> 30);
      // 1812433253 * prev + i, mod 2^32 (Math.imul keeps the low 32 bits).
      s[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    this.index = 624;
  }

  private twist(): void {
    const s = this.state;
    for (let i = 0; i < 624; i++) {
      const y = (s[i]! & 0x80000000) | (s[(i + 1) % 624]! & 0x7fffffff);
      let v = s[(i + 397) % 624]! ^ (y >>> 1);
      if (y & 1) v ^= 0x9908b0df;
      s[i] = v >>> 0;
    }
    this.index = 0;
  }

  /** The next 32-bit output, as an unsigned integer. */
  nextUint32(): number {
    if (this.index >= 624) this.twist();
    let y = this.state[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** A copy in the same state. */
  clone(): MT19937 {
    const c = new MT19937(0);
    c.state.set(this.state);
    c.index = this.index;
    return c;
  }
}

/** Which Box–Muller arithmetic `randn` on ≥ 16 float32 elements reproduces (see the file comment). */
export type NormalPath = 'avx2' | 'scalar';

export interface TorchGeneratorOptions {
  /** Default 'avx2': torch's x86-64 CPU path (the one diffusers users on x86 get). */
  normalPath?: NormalPath;
}

const TWO_POW_24 = 16777216;
const TWO_POW_M53 = 2 ** -53;

/** The seed as torch keeps it: the low 32 bits of a 64-bit integer (negative seeds wrap, as in torch). */
function seedLow32(seed: number | bigint): number {
  if (typeof seed === 'bigint') return Number(BigInt.asUintN(32, seed));
  if (!Number.isSafeInteger(seed)) throw new RangeError(`torch seed must be an integer, got ${seed}`);
  // Low 32 bits of a two's-complement 64-bit integer: for safe integers `% 2^32` does it.
  const m = seed % 4294967296;
  return m < 0 ? m + 4294967296 : m;
}

function numelOf(shape: readonly number[] | number): number {
  const dims = typeof shape === 'number' ? [shape] : shape;
  let n = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`tensor shape must be non-negative integers, got [${dims.join(', ')}]`);
    n *= d;
  }
  return n;
}

/**
 * A torch CPU generator: `new TorchGenerator(seed)` is `torch.Generator("cpu").manual_seed(seed)`.
 * Draws advance its state as torch's do, so a sequence of calls (initial latents, then the ancestral
 * noise of each step) matches the same sequence in Python.
 */
export class TorchGenerator {
  private engine: MT19937;
  private nextDoubleNormal: number | null = null;
  readonly normalPath: NormalPath;

  constructor(seed: number | bigint = 67280421310721, options: TorchGeneratorOptions = {}) {
    this.engine = new MT19937(seedLow32(seed));
    this.normalPath = options.normalPath ?? 'avx2';
  }

  /** `g.manual_seed(seed)`: a fresh engine, and the cached normal forgotten. */
  manualSeed(seed: number | bigint): this {
    this.engine = new MT19937(seedLow32(seed));
    this.nextDoubleNormal = null;
    return this;
  }

  /** An independent copy in the same state (torch's get_state / set_state). */
  clone(): TorchGenerator {
    const g = new TorchGenerator(0, { normalPath: this.normalPath });
    g.engine = this.engine.clone();
    g.nextDoubleNormal = this.nextDoubleNormal;
    return g;
  }

  /** `random()`: one 32-bit draw. */
  random(): number {
    return this.engine.nextUint32();
  }

  /** A float32 uniform in [0, 1): 24 random bits. */
  private uniformFloat(): number {
    return (this.engine.nextUint32() & 0xffffff) / TWO_POW_24;
  }

  /** A float64 uniform in [0, 1): 53 bits of random64() (first draw = high word). */
  private uniformDouble(): number {
    const hi = this.engine.nextUint32();
    const lo = this.engine.nextUint32();
    return ((hi & 0x1fffff) * 4294967296 + lo) * TWO_POW_M53;
  }

  /** at::normal_distribution<double>: Box–Muller with one value cached for the next call. */
  private normalDouble(): number {
    if (this.nextDoubleNormal !== null) {
      const v = this.nextDoubleNormal;
      this.nextDoubleNormal = null;
      return v;
    }
    const u1 = this.uniformDouble();
    const u2 = this.uniformDouble();
    const r = Math.sqrt(-2 * Math.log(1 - u2));
    const theta = 2 * Math.PI * u1;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `torch.rand(shape, generator=g)` in float32. */
  rand(shape: readonly number[] | number): Float32Array {
    const n = numelOf(shape);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    return out;
  }

  /** `torch.randn(shape, generator=g, dtype=torch.float32)` (a contiguous tensor). */
  randn(shape: readonly number[] | number): Float32Array {
    const n = numelOf(shape);
    const out = new Float32Array(n);
    if (n < 16) {
      for (let i = 0; i < n; i++) out[i] = this.normalDouble();
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = this.uniformFloat();
    const fill = this.normalPath === 'avx2' ? boxMuller16Avx2 : boxMuller16Scalar;
    for (let i = 0; i + 16 <= n; i += 16) fill(out, i);
    if (n % 16 !== 0) {
      const start = n - 16;
      for (let i = 0; i < 16; i++) out[start + i] = this.uniformFloat();
      fill(out, start);
    }
    return out;
  }
}

/**
 * diffusers' `randn_tensor(shape, generator)` on the CPU in float32: one generator draws the whole
 * shape at once; a list of generators (one per batch item) draws shape[1:] from each in turn.
 */
export function randnTensor(shape: readonly number[], generator: TorchGenerator | readonly TorchGenerator[]): Float32Array {
  if (!Array.isArray(generator)) return (generator as TorchGenerator).randn(shape);
  const gens = generator as readonly TorchGenerator[];
  const batch = shape[0] ?? 0;
  if (gens.length !== batch) {
    throw new RangeError(`randnTensor: ${gens.length} generators for a batch of ${batch}: pass one generator or one per batch item`);
  }
  const per = numelOf(shape.slice(1));
  const out = new Float32Array(batch * per);
  gens.forEach((g, b) => out.set(g.randn([1, ...shape.slice(1)]), b * per));
  return out;
}

const f = Math.fround;

/** normal_fill_16 with libm in float32 (torch's non-AVX2 CPU path). */
function boxMuller16Scalar(data: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - data[at + j]!);
    const u2 = data[at + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * f(Math.log(u1)))));
    const theta = f(2 * Math.PI * u2);
    data[at + j] = f(radius * f(Math.cos(theta)));
    data[at + j + 8] = f(radius * f(Math.sin(theta)));
  }
}

// ---- the AVX2 path: avx_mathfun.h's log256_ps and sincos256_ps, one lane at a time, in float32,
// with the multiply-adds GCC fuses (-mfma, -ffp-contract=fast) fused here too.

const fbuf = new Float32Array(1);
const ibuf = new Int32Array(fbuf.buffer);

/** float32 fma(a, b, c): a*b + c rounded once to float32. The product of two float32 values is
 * exact in a double; the sum s = p + c is rounded to double first, and rounding s to float32 gives
 * the right answer unless s falls exactly on a float32 midpoint (double rounding). Then the exact
 * remainder of p + c (TwoSum) says which way to go. */
function fmaF(a: number, b: number, c: number): number {
  const p = a * b; // exact: 24 x 24 bits fit in 53
  const s = p + c;
  const r = f(s);
  const bb = s - p;
  const err = (p - (s - bb)) + (c - bb);
  if (err === 0 || r === s) return r;
  // Is s exactly halfway between float32 neighbours? Then the sign of err decides.
  const lo = r < s ? r : prevFloat(r);
  const hi = r < s ? nextFloat(r) : r;
  const mid = (lo + hi) / 2; // exact in double
  if (s !== mid) return r;
  return err > 0 ? hi : lo;
}

function nextFloat(x: number): number {
  fbuf[0] = x;
  if (x >= 0) ibuf[0] = ibuf[0]! + 1;
  else ibuf[0] = ibuf[0]! - 1;
  return fbuf[0]!;
}

function prevFloat(x: number): number {
  fbuf[0] = x;
  if (x > 0) ibuf[0] = ibuf[0]! - 1;
  else if (x === 0) return -1.401298464324817e-45;
  else ibuf[0] = ibuf[0]! + 1;
  return fbuf[0]!;
}

const SQRTHF = f(0.707106781186547524);
const LOG_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1].map(f);
const LOG_Q1 = f(-2.12194440e-4);
const LOG_Q2 = f(0.693359375);

/** log256_ps for one positive float32 lane. */
function logCephes(xIn: number): number {
  fbuf[0] = Math.max(xIn, 1.1754943508222875e-38);
  const bits = ibuf[0]!;
  let e = f((bits >>> 23) - 0x7f);
  ibuf[0] = (bits & ~0x7f800000) | 0x3f000000; // mantissa with exponent of 0.5: x in [0.5, 1)
  let x = fbuf[0]!;
  e = f(e + 1);
  const lt = x < SQRTHF;
  const tmp = lt ? x : 0;
  x = f(x - 1);
  e = f(e - (lt ? 1 : 0));
  x = f(x + tmp);
  const z = f(x * x);
  let y = LOG_P[0]!;
  for (let k = 1; k < 9; k++) y = fmaF(y, x, LOG_P[k]!);
  y = f(y * x);
  // y*z + e*q1: GCC fuses the first product (e*q1 rounded on its own); z*0.5 is exact.
  y = fmaF(y, z, f(e * LOG_Q1));
  y = f(y - z * 0.5);
  x = f(x + y);
  x = fmaF(e, LOG_Q2, x);
  return x;
}

const FOPI = f(1.27323954473516);
const DP1 = f(-0.78515625), DP2 = f(-2.4187564849853515625e-4), DP3 = f(-3.77489497744594108e-8);
const SIN_P0 = f(-1.9515295891e-4), SIN_P1 = f(8.3321608736e-3), SIN_P2 = f(-1.6666654611e-1);
const COS_P0 = f(2.443315711809948e-5), COS_P1 = f(-1.388731625493765e-3), COS_P2 = f(4.166664568298827e-2);

/** sincos256_ps for one float32 lane with x >= 0: [sin, cos]. */
function sincosCephes(xIn: number): [number, number] {
  let x = Math.abs(xIn);
  let j = Math.trunc(f(x * FOPI)) | 0;
  j = (j + 1) & ~1;
  const y = j; // exact as float32 for the small j here
  const sinSwap = (j & 4) !== 0;
  const polySin = (j & 2) === 0; // poly_mask: lanes where the sine uses the sine polynomial
  x = fmaF(y, DP1, x);
  x = fmaF(y, DP2, x);
  x = fmaF(y, DP3, x);
  const cosSwap = ((j - 2) & 4) === 0;
  const z = f(x * x);
  let yc = fmaF(COS_P0, z, COS_P1);
  yc = fmaF(yc, z, COS_P2);
  yc = f(yc * z);
  yc = fmaF(yc, z, -(z * 0.5)); // (yc*z) - z*0.5 with the first product fused
  yc = f(yc + 1);
  let ys = fmaF(SIN_P0, z, SIN_P1);
  ys = fmaF(ys, z, SIN_P2);
  ys = f(ys * z);
  ys = fmaF(ys, x, x);
  let s = polySin ? ys : yc;
  let c = polySin ? yc : ys;
  if ((xIn < 0) !== sinSwap) s = -s;
  if (cosSwap) c = -c;
  return [s, c];
}

const TWO_PI_F = f(2 * Math.PI);

/** normal_fill_16_AVX2. */
function boxMuller16Avx2(data: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - data[at + j]!);
    const u2 = data[at + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * logCephes(u1))));
    const theta = f(TWO_PI_F * u2);
    const [s, c] = sincosCephes(theta);
    data[at + j] = f(radius * c);
    data[at + j + 8] = f(radius * s);
  }
}

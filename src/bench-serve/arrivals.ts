// Request arrival times for the serving benchmark, as vLLM's `bench serve` draws them: the gap
// after each request is gamma-distributed with shape k (burstiness) and scale 1/(rate*k), so
// its mean is 1/rate whatever k is; k = 1 is the exponential, i.e. a Poisson process. Smaller
// k is burstier (variance 1/(k*rate^2)), larger k more regular. Seeded so a run repeats.

import { UsageError } from '../errors.ts';

/** A small seeded PRNG (sfc32 seeded through splitmix32): fast, 2^128 state, good enough for load generation. */
export class BenchRng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = () => {
      // splitmix32: spreads a small integer seed over the whole state
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6)) / 9007199254740992;
  }

  /** Uniform integer in [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo + 1));
  }

  /** Standard normal (Box-Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Gamma(shape, scale) by Marsaglia and Tsang; shape < 1 through Gamma(shape+1) * U^(1/shape). */
  gamma(shape: number, scale: number): number {
    if (shape < 1) {
      let u = 0;
      while (u === 0) u = this.uniform();
      return this.gamma(shape + 1, scale) * Math.pow(u, 1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      let v = 1 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const u = this.uniform();
      if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v * scale;
    }
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(this.uniform() * (i + 1));
      [a[i], a[j]] = [a[j]!, a[i]!];
    }
    return a;
  }
}

/**
 * Gaps in seconds between consecutive requests at `rate` req/s with gamma shape `burstiness`
 * (1: Poisson). All zeros when the rate is infinite (every request is sent at once, and
 * --max-concurrency alone shapes the load).
 */
export function arrivalGaps(n: number, rate: number, burstiness: number, rng: BenchRng): number[] {
  if (!(rate > 0)) throw new UsageError(`--request-rate must be > 0 or inf, got ${rate}`);
  if (!(burstiness > 0) || !Number.isFinite(burstiness)) throw new UsageError(`--burstiness must be a positive number, got ${burstiness}`);
  if (rate === Infinity) return new Array<number>(n).fill(0);
  const scale = 1 / (rate * burstiness);
  const gaps: number[] = [];
  for (let i = 0; i < n; i++) gaps.push(rng.gamma(burstiness, scale));
  return gaps;
}

/** Send-time offsets in seconds: the first request goes at 0, each later one a gap after the previous (as vLLM: send, then wait). */
export function arrivalOffsets(n: number, rate: number, burstiness: number, rng: BenchRng): number[] {
  const gaps = arrivalGaps(Math.max(0, n - 1), rate, burstiness, rng);
  const out = [0];
  for (let i = 0; i < gaps.length; i++) out.push(out[i]! + gaps[i]!);
  return out.slice(0, n);
}

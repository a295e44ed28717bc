// Token sampling from one row of logits: greedy at temperature 0, otherwise temperature, top-k,
// top-p (nucleus) and min-p filtering, then a draw from a seeded generator so a request with a
// seed is reproducible.

import { topKIds } from './penalties.ts';

export interface SamplingParams {
  temperature: number; //  0: greedy (argmax)
  topK: number; //         0: off
  topP: number; //         1: off
  minP: number; //         0: off
  seed?: number;
}

/** xoshiro128** seeded through splitmix32: fast, small state, good enough for sampling. */
export class Rng {
  private s = new Uint32Array(4);
  constructor(seed: number = (Math.random() * 2 ** 32) >>> 0) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }
  /** Uniform in [0, 1). */
  next(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return r / 2 ** 32;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

export function validateSampling(p: SamplingParams): string | null {
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature)) return `temperature must be >= 0, got ${p.temperature}`;
  if (!Number.isInteger(p.topK) || p.topK < 0) return `top_k must be an integer >= 0, got ${p.topK}`;
  if (!(p.topP > 0 && p.topP <= 1)) return `top_p must be in (0, 1], got ${p.topP}`;
  if (!(p.minP >= 0 && p.minP <= 1)) return `min_p must be in [0, 1], got ${p.minP}`;
  return null;
}

/** Picks the next token from logits[V] (not modified). */
export function sample(logits: Float32Array, p: SamplingParams, rng: Rng): number {
  if (p.temperature === 0) return argmax(logits);
  const V = logits.length;
  const invT = 1 / p.temperature;
  let mx = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i]! > mx) mx = logits[i]!;
  // Tokens more than 40 nats below the best have probability < 4e-18 relative to it: skipping
  // them changes nothing a draw could see, and keeps the sort small.
  let idx: number[];
  if (p.topK > 0 && p.topK < 1024) {
    // top-k: a partial selection, no sort of the vocabulary (same order: best first, ties by id)
    idx = topKIds(logits, p.topK);
  } else {
    const cut = mx - 40 * p.temperature;
    idx = [];
    for (let i = 0; i < V; i++) if (logits[i]! >= cut) idx.push(i);
    idx.sort((a, b) => logits[b]! - logits[a]! || a - b);
  }
  let n = idx.length;
  if (p.topK > 0 && p.topK < n) n = p.topK;
  const probs = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += probs[i] = Math.exp((logits[idx[i]!]! - mx) * invT);
  if (p.minP > 0) {
    const floor = p.minP * (probs[0]! / sum);
    let m = n;
    while (m > 1 && probs[m - 1]! / sum < floor) m--;
    if (m < n) {
      n = m;
      sum = 0;
      for (let i = 0; i < n; i++) sum += probs[i]!;
    }
  }
  if (p.topP < 1) {
    let acc = 0;
    let m = 0;
    while (m < n) {
      acc += probs[m++]! / sum;
      if (acc >= p.topP) break;
    }
    n = m;
    sum = 0;
    for (let i = 0; i < n; i++) sum += probs[i]!;
  }
  let r = rng.next() * sum;
  for (let i = 0; i < n; i++) {
    r -= probs[i]!;
    if (r < 0) return idx[i]!;
  }
  return idx[n - 1]!;
}

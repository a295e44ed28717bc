// The sampling flags `chat` shares with `generate` (same names, same ranges as `serve` accepts),
// parsed into the engine's SamplingOptions. With no flag, the model's generation_config.json
// decides, else llama.cpp's defaults.

import type { SamplingOptions } from '../engine/api.ts';
import { validateSampling } from '../engine/sampler.ts';
import type { GenerationDefaults } from '../models/load.ts';
import { UsageError } from '../errors.ts';

export interface SamplingFlags {
  maxTokens?: string;
  temperature?: string;
  topK?: string;
  topP?: string;
  minP?: string;
  seed?: string;
  stop?: string[];
  repetitionPenalty?: string;
  presencePenalty?: string;
  frequencyPenalty?: string;
  ignoreEos?: boolean;
}

export function numFlag(name: string, v: string | undefined, fallback: number, int = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${int ? 'an integer' : 'a number'}, got '${v}'`);
  return n;
}

function rangeFlag(name: string, v: string | undefined, fallback: number, r: { min?: number; above?: number; max: number }): number {
  const n = numFlag(name, v, fallback);
  if (v === undefined) return n;
  if (r.above !== undefined && !(n > r.above && n <= r.max)) throw new UsageError(`--${name} must be in (${r.above}, ${r.max}], got ${n}`);
  if (r.min !== undefined && !(n >= r.min && n <= r.max)) throw new UsageError(`--${name} must be in [${r.min}, ${r.max}], got ${n}`);
  return n;
}

/**
 * Checks the flags that need no model (call before loading it, so a typo fails fast); returns a
 * function that completes the options once the model's generation defaults are known.
 */
export function parseSamplingFlags(o: SamplingFlags, defaultMaxTokens: number): (gen: GenerationDefaults) => SamplingOptions {
  const maxTokens = numFlag('max-tokens', o.maxTokens, defaultMaxTokens, true);
  if (maxTokens < 1) throw new UsageError(`--max-tokens must be >= 1, got ${maxTokens}`);
  const repetitionPenalty = rangeFlag('repetition-penalty', o.repetitionPenalty, 1, { above: 0, max: 10 });
  const presencePenalty = rangeFlag('presence-penalty', o.presencePenalty, 0, { min: -2, max: 2 });
  const frequencyPenalty = rangeFlag('frequency-penalty', o.frequencyPenalty, 0, { min: -2, max: 2 });
  const stop = o.stop ?? [];
  if (stop.length > 16) throw new UsageError(`--stop may be given at most 16 times, got ${stop.length}`);
  if (stop.some((s) => s === '')) throw new UsageError('--stop must be a non-empty string');
  const temperature = o.temperature === undefined ? undefined : numFlag('temperature', o.temperature, 0);
  const topK = o.topK === undefined ? undefined : numFlag('top-k', o.topK, 0, true);
  const topP = o.topP === undefined ? undefined : numFlag('top-p', o.topP, 0);
  const minP = numFlag('min-p', o.minP, 0.05);
  const seed = o.seed === undefined ? undefined : numFlag('seed', o.seed, 0, true);
  const check = (s: SamplingOptions) => {
    const bad = validateSampling(s);
    // The sampler names the API's fields (top_k); the user typed flags (--top-k).
    if (bad) throw new UsageError(`--${bad.replace(/^(\w+)/, (f) => f.replace(/_/g, '-'))}`);
    return s;
  };
  // Catch a bad temperature / top-p / top-k now rather than after a long model load.
  check(build({}));
  function build(gen: GenerationDefaults): SamplingOptions {
    return {
      temperature: temperature ?? gen.temperature ?? 0.8,
      topK: topK ?? gen.topK ?? 40,
      topP: topP ?? gen.topP ?? 0.95,
      minP,
      seed,
      repetitionPenalty,
      presencePenalty,
      frequencyPenalty,
      stop,
      stopTokenIds: [],
      ignoreEos: o.ignoreEos === true,
      maxTokens,
      n: 1,
    };
  }
  return (gen) => check(build(gen));
}

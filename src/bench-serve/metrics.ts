// Serving metrics with vLLM's definitions (benchmarks/benchmark_serving.py, calculate_metrics),
// so our numbers compare with anyone else's `vllm bench serve` run:
// - TTFT: request sent -> first chunk carrying non-empty text.
// - ITL: the gaps between consecutive text chunks, pooled over all requests.
// - E2EL: request sent -> last text chunk.
// - TPOT: (E2EL - TTFT) / (output tokens - 1), only for requests with more than one output token
//   (the first token is excluded: it is the prefill's, not a decode step's).
// - Throughputs divide by the benchmark duration (first send to last completion); failed
//   requests count no tokens. Output tokens are usage.completion_tokens when the server
//   reports it, else the number of text chunks. Input tokens are usage.prompt_tokens when
//   reported (the server's own count, chat template included), else the dataset's length.
// - Goodput: requests meeting every given SLO, per second; for goodput a request with one
//   output token has TPOT 0 (as vLLM).
// - Statistics: mean, median, population std, and percentiles by linear interpolation
//   (numpy's defaults); an empty list gives 0.

import { UsageError } from '../errors.ts';

/** What one request measured. Times are milliseconds; `startMs` is relative to the benchmark start. */
export interface RequestRecord {
  index: number;
  /** Prompt tokens: the server's usage.prompt_tokens when it reports it, else the dataset's length. */
  promptLen: number;
  expectedOutputLen: number;
  success: boolean;
  error?: string;
  startMs: number;
  ttftMs: number;
  itlMs: number[];
  e2elMs: number;
  outputTokens: number;
  /** True when outputTokens came from usage.completion_tokens rather than counting chunks. */
  outputTokensFromUsage: boolean;
  /** Characters of generated text (kept instead of the text, to keep result files small). */
  outputChars: number;
}

export interface Distribution {
  mean: number;
  median: number;
  std: number;
  p90: number;
  p99: number;
}

/** Service-level objectives in milliseconds; a request is "good" when it meets every one given. */
export interface Slo {
  ttft?: number;
  tpot?: number;
  e2el?: number;
}

export interface ServeMetrics {
  completed: number;
  failed: number;
  durationS: number;
  totalInput: number;
  totalOutput: number;
  requestThroughput: number;
  /** Requests meeting every SLO per second; null when no SLO was given. */
  requestGoodput: number | null;
  goodCompleted: number | null;
  outputThroughput: number;
  totalTokenThroughput: number;
  /** Output tokens per dollar at --price-per-hour; null without a price. */
  outputTokensPerDollar: number | null;
  totalTokensPerDollar: number | null;
  ttftMs: Distribution;
  tpotMs: Distribution;
  itlMs: Distribution;
  e2elMs: Distribution;
}

export const METRIC_DEFINITIONS =
  "vLLM bench serve definitions: TTFT = send -> first non-empty text chunk; TPOT = (E2EL - TTFT) / (output tokens - 1), requests with > 1 token; " +
  'ITL = gaps between text chunks, pooled; E2EL = send -> last text chunk; throughput = tokens / duration (first send -> last completion); ' +
  'output tokens = usage.completion_tokens (else chunks), input tokens = usage.prompt_tokens (else dataset length); goodput = requests meeting all SLOs / duration; stats: mean, median, population std, linear-interpolated p90/p99';

/** The p-th percentile (0..100) of values, interpolating linearly between closest ranks (numpy's default). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (rank - lo);
}

export function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { mean: 0, median: 0, std: 0, p90: 0, p99: 0 };
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) * (v - mean);
  return { mean, median: percentile(values, 50), std: Math.sqrt(sq / values.length), p90: percentile(values, 90), p99: percentile(values, 99) };
}

/** TPOT of one successful request in ms, or undefined with fewer than two output tokens. */
export function tpotOf(r: RequestRecord): number | undefined {
  return r.outputTokens > 1 ? (r.e2elMs - r.ttftMs) / (r.outputTokens - 1) : undefined;
}

export function computeMetrics(records: readonly RequestRecord[], durationS: number, slo?: Slo, pricePerHour?: number): ServeMetrics {
  let completed = 0;
  let totalInput = 0;
  let totalOutput = 0;
  let good = 0;
  const ttfts: number[] = [];
  const tpots: number[] = [];
  const itls: number[] = [];
  const e2els: number[] = [];
  const hasSlo = slo !== undefined && (slo.ttft !== undefined || slo.tpot !== undefined || slo.e2el !== undefined);
  for (const r of records) {
    if (!r.success) continue;
    completed++;
    totalInput += r.promptLen;
    totalOutput += r.outputTokens;
    const tpot = tpotOf(r);
    if (tpot !== undefined) tpots.push(tpot);
    for (const g of r.itlMs) itls.push(g);
    ttfts.push(r.ttftMs);
    e2els.push(r.e2elMs);
    if (hasSlo) {
      const ok = (slo.ttft === undefined || r.ttftMs <= slo.ttft) && (slo.tpot === undefined || (tpot ?? 0) <= slo.tpot) && (slo.e2el === undefined || r.e2elMs <= slo.e2el);
      if (ok) good++;
    }
  }
  const dur = durationS > 0 ? durationS : Number.MIN_VALUE;
  const outputThroughput = totalOutput / dur;
  const totalTokenThroughput = (totalInput + totalOutput) / dur;
  const perDollar = (tokPerS: number) => (pricePerHour !== undefined && pricePerHour > 0 ? (tokPerS * 3600) / pricePerHour : null);
  return {
    completed,
    failed: records.length - completed,
    durationS,
    totalInput,
    totalOutput,
    requestThroughput: completed / dur,
    requestGoodput: hasSlo ? good / dur : null,
    goodCompleted: hasSlo ? good : null,
    outputThroughput,
    totalTokenThroughput,
    outputTokensPerDollar: perDollar(outputThroughput),
    totalTokensPerDollar: perDollar(totalTokenThroughput),
    ttftMs: distribution(ttfts),
    tpotMs: distribution(tpots),
    itlMs: distribution(itls),
    e2elMs: distribution(e2els),
  };
}

/** Parses `--goodput ttft:500 tpot:100 e2el:2000` (milliseconds), as vLLM's flag. */
export function parseGoodput(items: readonly string[]): Slo {
  const slo: Slo = {};
  for (const item of items.flatMap((s) => s.split(/[\s,]+/)).filter((s) => s !== '')) {
    const m = /^(ttft|tpot|e2el):(.+)$/.exec(item);
    const v = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(v) || v < 0) throw new UsageError(`--goodput expects items like ttft:500 tpot:100 e2el:2000 (ms, >= 0), got '${item}'`);
    slo[m[1] as keyof Slo] = v;
  }
  return slo;
}

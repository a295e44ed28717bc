// `slipstream bench serve`: load-tests any OpenAI-compatible server (ours, llama.cpp's, vLLM)
// the way vLLM's `bench serve` and JetStream's benchmark_serving do: requests arrive as a
// Poisson or gamma process at a rate (or all at once), optionally capped in flight; each
// streams its completion and is timed chunk by chunk; metrics follow vLLM's definitions
// (metrics.ts). A report names its hardware, its label and its definitions, so a number
// never travels without what it measured.

import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { FormatError } from '../formats/errors.ts';
import { arrivalOffsets, BenchRng } from './arrivals.ts';
import { fitRandomPrompts, loadShareGpt, randomDataset, type BenchRequest, type TokenCounter } from './datasets.ts';
import { computeMetrics, METRIC_DEFINITIONS, parseGoodput, type Distribution, type RequestRecord, type ServeMetrics, type Slo } from './metrics.ts';
import { plotSweep } from './plot.ts';
import { closeTarget, makeTarget, requestJson, streamRequest, type HttpTarget } from './request.ts';

export { BenchRng, arrivalGaps, arrivalOffsets } from './arrivals.ts';
export { computeMetrics, percentile, parseGoodput, METRIC_DEFINITIONS } from './metrics.ts';
export type { RequestRecord, ServeMetrics, Slo, Distribution } from './metrics.ts';
export { loadShareGpt, randomDataset } from './datasets.ts';
export type { BenchRequest } from './datasets.ts';
export { plotSweep } from './plot.ts';

export interface ServeBenchOptions {
  /** Server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is accepted). */
  baseUrl: string;
  endpoint?: 'completions' | 'chat';
  /** Model name to send; default: the first of GET /v1/models. */
  model?: string;
  apiKey?: string;
  numPrompts?: number;
  /** Requests per second; Infinity sends every request at once. */
  requestRate?: number;
  /** Gamma shape of the gaps (1: Poisson). */
  burstiness?: number;
  maxConcurrency?: number;
  seed?: number;
  /** ShareGPT JSON file; without it, synthetic prompts. */
  datasetPath?: string;
  inputLen?: number;
  outputLen?: number;
  rangeRatio?: number;
  /** Fixed max_tokens for ShareGPT requests instead of the reply's length. */
  sharegptOutputLen?: number;
  sharedPrefixLen?: number;
  /** Send ignore_eos: true (always for synthetic prompts, so outputs have their requested length). */
  ignoreEos?: boolean;
  goodput?: Slo;
  pricePerHour?: number;
  hardware?: string;
  label?: string;
  /** Send one request first and stop if it fails (as vLLM); default true. */
  warmup?: boolean;
  /** Measure prompt lengths with the server's POST /tokenize when it has one; default true. */
  useTokenize?: boolean;
  /** A progress bar on stderr (when it is a terminal); default false. */
  progress?: boolean;
  /** Prebuilt requests (a sweep reuses one dataset for every run). */
  requests?: BenchRequest[];
}

export interface BenchResult {
  label: string;
  date: string;
  hardware: string;
  definitions: string;
  config: {
    baseUrl: string;
    endpoint: 'completions' | 'chat';
    model: string;
    numPrompts: number;
    requestRate: number | 'inf';
    burstiness: number;
    maxConcurrency: number | null;
    seed: number;
    dataset: string;
    inputLen: number | null;
    outputLen: number | null;
    rangeRatio: number | null;
    sharedPrefixLen: number;
    ignoreEos: boolean;
    promptLengths: 'server /tokenize' | 'estimated' | 'server usage';
    goodput: Slo | null;
    pricePerHour: number | null;
  };
  metrics: ServeMetrics;
  requests: RequestRecord[];
}

export interface SweepResult {
  label: string;
  date: string;
  hardware: string;
  definitions: string;
  axis: 'concurrency' | 'rate';
  values: number[];
  runs: BenchResult[];
}

/** The machine the numbers came from: --hardware, else this machine's CPU (the client's: say so with --hardware when the server runs elsewhere). */
export function describeHardware(override?: string): string {
  if (override) return override;
  const cpus = os.cpus();
  const gib = (os.totalmem() / 2 ** 30).toFixed(0);
  return `${cpus[0]?.model?.trim() ?? 'unknown CPU'} x ${cpus.length} cores, ${gib} GiB RAM, ${os.platform()} ${os.arch()} (this machine)`;
}

async function defaultModel(t: HttpTarget): Promise<string> {
  let r;
  try {
    r = await requestJson(t, 'GET', '/v1/models');
  } catch (e) {
    throw new UsageError(`cannot reach ${t.base.origin}: ${(e as Error).message}`);
  }
  const data = (r.json as { data?: { id?: unknown }[] } | undefined)?.data;
  const id = Array.isArray(data) ? data[0]?.id : undefined;
  if (r.status !== 200 || typeof id !== 'string') throw new UsageError(`GET ${t.base.origin}/v1/models gave no model (HTTP ${r.status}); pass --model`);
  return id;
}

/** A token counter over the server's POST /tokenize (vLLM's {model, prompt}, llama.cpp's {content}); undefined when it has none. */
async function tokenizeCounter(t: HttpTarget, model: string): Promise<TokenCounter | undefined> {
  const count = (json: unknown): number | undefined => {
    const j = json as { count?: unknown; tokens?: unknown } | undefined;
    if (typeof j?.count === 'number') return j.count;
    if (Array.isArray(j?.tokens)) return j.tokens.length;
    return undefined;
  };
  for (const shape of [(text: string) => ({ model, prompt: text }), (text: string) => ({ content: text })]) {
    try {
      const r = await requestJson(t, 'POST', '/tokenize', shape('hello world'));
      if (r.status === 200 && count(r.json) !== undefined) {
        return async (text) => {
          try {
            const q = await requestJson(t, 'POST', '/tokenize', shape(text));
            return q.status === 200 ? count(q.json) : undefined;
          } catch {
            return undefined;
          }
        };
      }
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function requestBody(endpoint: 'completions' | 'chat', model: string, q: BenchRequest, ignoreEos: boolean): unknown {
  const common = { model, max_tokens: q.outputLen, temperature: 0, stream: true, stream_options: { include_usage: true }, ...(ignoreEos ? { ignore_eos: true } : {}) };
  if (endpoint === 'chat') {
    const messages = [...(q.prefix !== undefined ? [{ role: 'system', content: q.prefix }] : []), { role: 'user', content: q.prompt }];
    return { ...common, messages };
  }
  return { ...common, prompt: q.prefix !== undefined ? `${q.prefix} ${q.prompt}` : q.prompt };
}

/** A FIFO counting semaphore: the in-flight cap. */
class Semaphore {
  private waiting: (() => void)[] = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((res) => this.waiting.push(res));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

function positiveInt(name: string, v: number | undefined, fallback: number): number {
  const n = v ?? fallback;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} must be an integer >= 1, got ${v}`);
  return n;
}

interface Resolved {
  target: HttpTarget;
  model: string;
  requests: BenchRequest[];
  promptLengths: BenchResult['config']['promptLengths'];
}

/** Resolves the model and builds the dataset once (a sweep reuses both). */
async function prepare(o: ServeBenchOptions, target: HttpTarget): Promise<Resolved> {
  const model = o.model ?? (await defaultModel(target));
  const num = positiveInt('num-prompts', o.numPrompts, 100);
  if (o.requests) return { target, model, requests: o.requests, promptLengths: o.requests.every((r) => r.measured) ? 'server /tokenize' : 'estimated' };
  const seed = o.seed ?? 0;
  const rng = new BenchRng(seed);
  const counter = o.useTokenize === false ? undefined : await tokenizeCounter(target, model);
  const sharedPrefixLen = o.sharedPrefixLen ?? 0;
  if (!Number.isInteger(sharedPrefixLen) || sharedPrefixLen < 0) throw new UsageError(`--shared-prefix-len must be an integer >= 0, got ${sharedPrefixLen}`);
  if (o.datasetPath !== undefined) {
    if (o.sharegptOutputLen !== undefined) positiveInt('sharegpt-output-len', o.sharegptOutputLen, 1);
    const requests = await loadShareGpt(o.datasetPath, { num, outputLen: o.sharegptOutputLen, sharedPrefixLen, counter }, rng);
    if (requests.length < num) process.stderr.write(`bench serve: only ${requests.length} of ${num} conversations in ${o.datasetPath} pass the length filter; using those\n`);
    return { target, model, requests, promptLengths: requests.every((r) => r.measured) ? 'server /tokenize' : 'estimated' };
  }
  const requests = randomDataset(
    { num, inputLen: positiveInt('input-len', o.inputLen, 128), outputLen: positiveInt('output-len', o.outputLen, 64), rangeRatio: o.rangeRatio ?? 0, sharedPrefixLen },
    rng,
  );
  const measured = counter ? await fitRandomPrompts(requests, counter, rng, sharedPrefixLen) : false;
  return { target, model, requests, promptLengths: measured ? 'server /tokenize' : 'estimated' };
}

async function runPrepared(o: ServeBenchOptions, p: Resolved): Promise<BenchResult> {
  const endpoint = o.endpoint ?? 'completions';
  if (endpoint !== 'completions' && endpoint !== 'chat') throw new UsageError(`--endpoint must be completions or chat, got '${String(endpoint)}'`);
  const rate = o.requestRate ?? Infinity;
  const burstiness = o.burstiness ?? 1;
  const maxConc = o.maxConcurrency;
  if (maxConc !== undefined) positiveInt('max-concurrency', maxConc, 1);
  const seed = o.seed ?? 0;
  const ignoreEos = o.ignoreEos ?? o.datasetPath === undefined;
  const path = endpoint === 'chat' ? '/v1/chat/completions' : '/v1/completions';
  const reqs = p.requests;
  // The arrival stream has its own generator, so the same seed gives the same prompts whatever the rate.
  const offsets = arrivalOffsets(reqs.length, rate, burstiness, new BenchRng(seed ^ 0x5bd1e995));

  if (o.warmup !== false) {
    const w = await streamRequest(p.target, path, requestBody(endpoint, p.model, reqs[0]!, ignoreEos));
    if (!w.success) throw new UsageError(`the warm-up request to ${p.target.base.origin}${path} failed: ${w.error}`);
  }

  let bar: { increment(): void; stop(): void } | undefined;
  if (o.progress && process.stderr.isTTY) {
    const { SingleBar, Presets } = (await import('cli-progress')).default;
    const b = new SingleBar({ stream: process.stderr, format: 'bench serve [{bar}] {value}/{total} requests | {duration_formatted}' }, Presets.shades_classic);
    b.start(reqs.length, 0);
    bar = b;
  }

  const sem = new Semaphore(maxConc ?? Infinity);
  let usagePrompts = 0; // successful requests whose prompt length came from usage.prompt_tokens
  const start = performance.now();
  const records = await Promise.all(
    reqs.map(async (q, i): Promise<RequestRecord> => {
      const wait = start + offsets[i]! * 1000 - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      await sem.acquire();
      let out;
      try {
        out = await streamRequest(p.target, path, requestBody(endpoint, p.model, q, ignoreEos));
      } finally {
        sem.release();
        bar?.increment();
      }
      const fromUsage = out.usageCompletionTokens !== undefined;
      if (out.success && out.usagePromptTokens !== undefined) usagePrompts++;
      return {
        index: i,
        promptLen: out.usagePromptTokens ?? q.promptLen,
        expectedOutputLen: q.outputLen,
        success: out.success,
        ...(out.error !== undefined ? { error: out.error } : {}),
        startMs: out.sentAt - start,
        ttftMs: out.ttftMs,
        itlMs: out.itlMs,
        e2elMs: out.e2elMs,
        outputTokens: out.success ? (out.usageCompletionTokens ?? out.chunks) : 0,
        outputTokensFromUsage: fromUsage,
        outputChars: out.outputChars,
      };
    }),
  );
  const durationS = (performance.now() - start) / 1000;
  bar?.stop();

  return {
    label: o.label ?? 'unlabelled',
    date: new Date().toISOString(),
    hardware: describeHardware(o.hardware),
    definitions: METRIC_DEFINITIONS,
    config: {
      baseUrl: p.target.base.href,
      endpoint,
      model: p.model,
      numPrompts: reqs.length,
      requestRate: rate === Infinity ? 'inf' : rate,
      burstiness,
      maxConcurrency: maxConc ?? null,
      seed,
      dataset: o.datasetPath !== undefined ? `sharegpt:${o.datasetPath}` : 'random',
      inputLen: o.datasetPath === undefined ? (o.inputLen ?? 128) : null,
      outputLen: o.datasetPath === undefined ? (o.outputLen ?? 64) : (o.sharegptOutputLen ?? null),
      rangeRatio: o.datasetPath === undefined ? (o.rangeRatio ?? 0) : null,
      sharedPrefixLen: o.sharedPrefixLen ?? 0,
      ignoreEos,
      promptLengths: usagePrompts > 0 && usagePrompts === records.filter((r) => r.success).length ? 'server usage' : p.promptLengths,
      goodput: o.goodput && Object.keys(o.goodput).length > 0 ? o.goodput : null,
      pricePerHour: o.pricePerHour ?? null,
    },
    metrics: computeMetrics(records, durationS, o.goodput, o.pricePerHour),
    requests: records,
  };
}

/** One benchmark run: builds the dataset, sends every request on its arrival schedule, returns config, per-request records and metrics. */
export async function runServeBenchmark(opts: ServeBenchOptions): Promise<BenchResult> {
  const target = makeTarget(opts.baseUrl, opts.apiKey);
  try {
    return await runPrepared(opts, await prepare(opts, target));
  } finally {
    closeTarget(target);
  }
}

/** One run per value of --max-concurrency or --request-rate, on the same prompts. */
export async function runServeSweep(opts: ServeBenchOptions, axis: 'concurrency' | 'rate', values: number[], onRun?: (r: BenchResult) => void): Promise<SweepResult> {
  if (values.length === 0) throw new UsageError(`--sweep-${axis} needs at least one value`);
  const target = makeTarget(opts.baseUrl, opts.apiKey);
  try {
    const p = await prepare(opts, target);
    const runs: BenchResult[] = [];
    for (const [i, v] of values.entries()) {
      const o: ServeBenchOptions = axis === 'concurrency' ? { ...opts, maxConcurrency: v } : { ...opts, requestRate: v };
      const r = await runPrepared({ ...o, warmup: i === 0 && opts.warmup !== false }, p);
      runs.push(r);
      onRun?.(r);
    }
    return { label: opts.label ?? 'unlabelled', date: new Date().toISOString(), hardware: describeHardware(opts.hardware), definitions: METRIC_DEFINITIONS, axis, values, runs };
  } finally {
    closeTarget(target);
  }
}

// ---- report ----------------------------------------------------------------------------------

const f2 = (v: number) => v.toFixed(2);
const row = (k: string, v: string | number) => `${k.padEnd(40)} ${v}`;

function distRows(name: string, unit: string, d: Distribution): string[] {
  return [
    row(`Mean ${name} (${unit}):`, f2(d.mean)),
    row(`Median ${name} (${unit}):`, f2(d.median)),
    row(`Std ${name} (${unit}):`, f2(d.std)),
    row(`P90 ${name} (${unit}):`, f2(d.p90)),
    row(`P99 ${name} (${unit}):`, f2(d.p99)),
  ];
}

const section = (title: string) => ` ${title} `.padStart(25 + Math.ceil(title.length / 2) + 1, '-').padEnd(50, '-');

/** The vLLM-style result table, with the header naming label, hardware and metric definitions. */
export function formatReport(r: BenchResult): string {
  const m = r.metrics;
  const c = r.config;
  const lines = [
    `label: ${r.label} | hardware: ${r.hardware} | server: ${c.baseUrl} (${c.endpoint}, model ${c.model})`,
    `load: ${c.numPrompts} prompts, ${c.requestRate === 'inf' ? 'all sent at once' : `${c.requestRate} req/s, burstiness ${c.burstiness}${c.burstiness === 1 ? ' (Poisson)' : ' (gamma)'}`}, max concurrency ${c.maxConcurrency ?? 'none'}, dataset ${c.dataset}` +
      (c.inputLen !== null ? ` in ${c.inputLen} out ${c.outputLen} range ${c.rangeRatio}` : '') +
      (c.sharedPrefixLen > 0 ? `, shared prefix ${c.sharedPrefixLen}` : '') +
      `, prompt lengths ${c.promptLengths}, seed ${c.seed}`,
    `metrics: ${r.definitions}`,
    ' Serving Benchmark Result '.padStart(38, '=').padEnd(50, '='),
    row('Successful requests:', m.completed),
    row('Failed requests:', m.failed),
    row('Benchmark duration (s):', f2(m.durationS)),
    row('Total input tokens:', m.totalInput),
    row('Total generated tokens:', m.totalOutput),
    row('Request throughput (req/s):', f2(m.requestThroughput)),
  ];
  if (m.requestGoodput !== null) lines.push(row(`Request goodput (req/s):`, `${f2(m.requestGoodput)} (${m.goodCompleted} met ${Object.entries(c.goodput ?? {}).map(([k, v]) => `${k}<=${v}ms`).join(' ')})`));
  lines.push(row('Output token throughput (tok/s):', f2(m.outputThroughput)), row('Total token throughput (tok/s):', f2(m.totalTokenThroughput)));
  if (m.outputTokensPerDollar !== null) {
    lines.push(row(`Output tokens per $ (at $${c.pricePerHour}/h):`, m.outputTokensPerDollar.toFixed(0)), row('Total tokens per $:', m.totalTokensPerDollar!.toFixed(0)));
  }
  lines.push(section('Time to First Token'), ...distRows('TTFT', 'ms', m.ttftMs));
  lines.push(section('Time per Output Token (excl. 1st token)'), ...distRows('TPOT', 'ms', m.tpotMs));
  lines.push(section('Inter-token Latency'), ...distRows('ITL', 'ms', m.itlMs));
  lines.push(section('End-to-end Latency'), ...distRows('E2EL', 'ms', m.e2elMs));
  lines.push('='.repeat(50));
  const errs = r.requests.filter((q) => !q.success);
  if (errs.length > 0) lines.push(`first error (request ${errs[0]!.index}): ${errs[0]!.error}`);
  return lines.join('\n');
}

/** One line per run of a sweep. */
export function formatSweep(s: SweepResult): string {
  const head = ['' + s.axis, 'ok', 'fail', 'req/s', 'out tok/s', 'TTFT med', 'TTFT p99', 'TPOT med', 'TPOT p99', 'ITL med', 'ITL p99', 'E2EL med', 'E2EL p99'];
  const rows = s.runs.map((r, i) => {
    const m = r.metrics;
    return [String(s.values[i]), String(m.completed), String(m.failed), f2(m.requestThroughput), f2(m.outputThroughput), f2(m.ttftMs.median), f2(m.ttftMs.p99), f2(m.tpotMs.median), f2(m.tpotMs.p99), f2(m.itlMs.median), f2(m.itlMs.p99), f2(m.e2elMs.median), f2(m.e2elMs.p99)];
  });
  const w = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
  const fmt = (cells: string[]) => cells.map((c, j) => c.padStart(w[j]!)).join('  ');
  return [`sweep over ${s.axis} | label: ${s.label} | hardware: ${s.hardware} | latencies in ms`, fmt(head), ...rows.map(fmt)].join('\n');
}

/** The PNG for a sweep (or a single run, as one point). */
export async function plotResults(runs: BenchResult[], axis: 'concurrency' | 'rate', values: (number | string)[]): Promise<Buffer> {
  const points = runs.map((r, i) => ({
    x: String(values[i]),
    outputThroughput: r.metrics.outputThroughput,
    ttftMedian: r.metrics.ttftMs.median,
    ttftP99: r.metrics.ttftMs.p99,
    itlMedian: r.metrics.itlMs.median,
    itlP99: r.metrics.itlMs.p99,
    e2elMedian: r.metrics.e2elMs.median,
    e2elP99: r.metrics.e2elMs.p99,
  }));
  const first = runs[0]!;
  const caption = `${first.label} | ${first.config.model} | ${first.hardware}`;
  return plotSweep(points, axis === 'concurrency' ? 'max concurrency' : 'request rate (req/s)', caption);
}

// ---- CLI -------------------------------------------------------------------------------------

function num(name: string, v: string | undefined, opts: { int?: boolean; min?: number; inf?: boolean } = {}): number | undefined {
  if (v === undefined) return undefined;
  if (opts.inf && /^inf(inity)?$/i.test(v.trim())) return Infinity;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min)) {
    throw new UsageError(`--${name} must be ${opts.int ? 'an integer' : 'a number'}${opts.min === Number.MIN_VALUE ? ' > 0' : opts.min !== undefined ? ` >= ${opts.min}` : ''}${opts.inf ? ' or inf' : ''}, got '${v}'`);
  }
  return n;
}

function list(name: string, v: string, int: boolean): number[] {
  return v.split(',').map((s) => num(name, s.trim(), { int, min: int ? 1 : Number.MIN_VALUE })!);
}

export interface BenchServeCliOptions {
  baseUrl: string;
  endpoint: string;
  model?: string;
  apiKey?: string;
  numPrompts: string;
  requestRate: string;
  burstiness: string;
  maxConcurrency?: string;
  seed: string;
  datasetPath?: string;
  inputLen: string;
  outputLen: string;
  rangeRatio: string;
  sharegptOutputLen?: string;
  sharedPrefixLen: string;
  ignoreEos?: boolean;
  goodput?: string[];
  pricePerHour?: string;
  hardware?: string;
  label?: string;
  resultFile?: string;
  plot?: string;
  sweepConcurrency?: string;
  sweepRate?: string;
  warmup: boolean;
  tokenize: boolean;
}

export async function benchServeCommand(c: BenchServeCliOptions): Promise<void> {
  if (c.endpoint !== 'completions' && c.endpoint !== 'chat') throw new UsageError(`--endpoint must be completions or chat, got '${c.endpoint}'`);
  if (c.sweepConcurrency && c.sweepRate) throw new UsageError('give --sweep-concurrency or --sweep-rate, not both');
  const rangeRatio = num('range-ratio', c.rangeRatio, { min: 0 })!;
  if (rangeRatio >= 1) throw new UsageError(`--range-ratio must be in [0, 1), got '${c.rangeRatio}'`);
  const opts: ServeBenchOptions = {
    baseUrl: c.baseUrl,
    endpoint: c.endpoint,
    model: c.model,
    apiKey: c.apiKey ?? process.env.OPENAI_API_KEY,
    numPrompts: num('num-prompts', c.numPrompts, { int: true, min: 1 }),
    requestRate: num('request-rate', c.requestRate, { inf: true, min: Number.MIN_VALUE }),
    burstiness: num('burstiness', c.burstiness, { min: Number.MIN_VALUE }),
    maxConcurrency: num('max-concurrency', c.maxConcurrency, { int: true, min: 1 }),
    seed: num('seed', c.seed, { int: true }),
    datasetPath: c.datasetPath,
    inputLen: num('input-len', c.inputLen, { int: true, min: 1 }),
    outputLen: num('output-len', c.outputLen, { int: true, min: 1 }),
    rangeRatio,
    sharegptOutputLen: num('sharegpt-output-len', c.sharegptOutputLen, { int: true, min: 1 }),
    sharedPrefixLen: num('shared-prefix-len', c.sharedPrefixLen, { int: true, min: 0 }),
    ignoreEos: c.ignoreEos ? true : undefined,
    goodput: c.goodput ? parseGoodput(c.goodput) : undefined,
    pricePerHour: num('price-per-hour', c.pricePerHour, { min: Number.MIN_VALUE }),
    hardware: c.hardware,
    label: c.label,
    warmup: c.warmup,
    useTokenize: c.tokenize,
    progress: true,
  };
  let out: BenchResult | SweepResult;
  let png: Buffer | undefined;
  if (c.sweepConcurrency || c.sweepRate) {
    const axis = c.sweepConcurrency ? 'concurrency' : 'rate';
    const values = c.sweepConcurrency ? list('sweep-concurrency', c.sweepConcurrency, true) : list('sweep-rate', c.sweepRate!, false);
    const s = await runServeSweep(opts, axis, values, (r) => console.log(formatReport(r) + '\n'));
    console.log(formatSweep(s));
    if (c.plot) png = await plotResults(s.runs, axis, values);
    out = s;
  } else {
    const r = await runServeBenchmark(opts);
    console.log(formatReport(r));
    if (c.plot) png = await (r.config.maxConcurrency !== null || r.config.requestRate === 'inf' ? plotResults([r], 'concurrency', [r.config.maxConcurrency ?? 'inf']) : plotResults([r], 'rate', [r.config.requestRate]));
    out = r;
  }
  if (c.resultFile) await writeOutput(c.resultFile, JSON.stringify(out, null, 2) + '\n', 'results');
  if (c.plot && png) await writeOutput(c.plot, png, 'plot');
}

async function writeOutput(file: string, data: string | Buffer, what: string): Promise<void> {
  try {
    await writeFile(file, data);
  } catch (e) {
    throw new FormatError(file, `cannot write the ${what}: ${(e as Error).message}`);
  }
  console.log(`${what} written to ${file}`);
}

/** Adds `serve` to an existing `bench` command. */
export function registerBenchServe(benchCommand: Command): void {
  benchCommand
    .command('serve')
    .description('load-test an OpenAI-compatible server (ours, llama.cpp, vLLM) with vLLM bench serve metrics')
    .option('--base-url <url>', 'server root', 'http://127.0.0.1:8000')
    .option('--endpoint <kind>', 'completions (/v1/completions) or chat (/v1/chat/completions)', 'completions')
    .option('--model <name>', 'model name to request (default: the first of GET /v1/models)')
    .option('--api-key <key>', 'bearer token (default: $OPENAI_API_KEY)')
    .option('--num-prompts <n>', 'requests to send', '100')
    .option('--request-rate <r>', 'requests per second, or inf to send all at once', 'inf')
    .option('--burstiness <k>', 'gamma shape of the arrival gaps: 1 is Poisson, < 1 burstier, > 1 more regular', '1')
    .option('--max-concurrency <c>', 'cap on requests in flight (with --request-rate inf: a fixed concurrency)')
    .option('--seed <s>', 'seed for prompts and arrivals', '0')
    .option('--dataset-path <file>', 'ShareGPT-format JSON (default: synthetic prompts)')
    .option('--input-len <n>', 'synthetic prompt tokens', '128')
    .option('--output-len <n>', 'synthetic output tokens (max_tokens, with ignore_eos)', '64')
    .option('--range-ratio <r>', 'synthetic lengths uniform within +-r of the given ones, 0 <= r < 1', '0')
    .option('--sharegpt-output-len <n>', 'fixed max_tokens for ShareGPT prompts instead of the reply length')
    .option('--shared-prefix-len <n>', 'a common system prompt of ~n tokens on every request (prefix caching)', '0')
    .option('--ignore-eos', 'send ignore_eos with ShareGPT prompts too')
    .option('--goodput <slo...>', 'SLOs in ms for goodput, e.g. ttft:500 tpot:100 e2el:5000')
    .option('--price-per-hour <usd>', 'hardware price, to report tokens per dollar')
    .option('--hardware <text>', "what the server runs on (default: this machine's CPU)")
    .option('--label <text>', 'a name for this run (the baseline it is)')
    .option('--result-file <file>', 'write config, per-request data and metrics as JSON')
    .option('--plot <file.png>', 'draw throughput and latency against concurrency or rate')
    .option('--sweep-concurrency <list>', 'one run per max concurrency, e.g. 1,4,16')
    .option('--sweep-rate <list>', 'one run per request rate, e.g. 0.5,1,2')
    .option('--no-warmup', 'skip the single warm-up request')
    .option('--no-tokenize', "estimate prompt lengths instead of asking the server's /tokenize")
    .action(async (opts: BenchServeCliOptions) => {
      try {
        await benchServeCommand(opts);
      } catch (e) {
        const expected = e instanceof UsageError || e instanceof FormatError;
        process.stderr.write(`slipstream: error: ${expected ? (e as Error).message : ((e as Error).stack ?? String(e))}\n`);
        process.exitCode = e instanceof UsageError ? 2 : 1;
      }
    });
}

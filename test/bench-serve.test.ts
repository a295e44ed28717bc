// `slipstream bench serve` against a fake OpenAI-compatible streaming server started here:
// metric math on known timings, arrival generators, the concurrency cap, datasets, failures,
// the JSON result file and the PNG plot.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { crc32 as zlibCrc32, inflateSync } from 'node:zlib';
import { UsageError } from '../src/errors.ts';
import { FormatError } from '../src/formats/errors.ts';
import { randomDataset } from '../src/bench-serve/datasets.ts';
import { plotSweep, sweepSpec } from '../src/bench-serve/plot.ts';
import { chartSvg } from '../src/util/chart.ts';
import {
  arrivalGaps,
  arrivalOffsets,
  benchServeCommand,
  BenchRng,
  computeMetrics,
  loadShareGpt,
  parseGoodput,
  percentile,
  registerBenchServe,
  runServeBenchmark,
  type RequestRecord,
} from '../src/bench-serve/index.ts';

// ---- the fake server -------------------------------------------------------------------------

interface Fake {
  url: string;
  inflight: number;
  maxInflight: number;
  received: Record<string, unknown>[];
  arrivals: number;
  /** Every failEvery-th request (counting from 1) answers 500; 0: none. */
  failEvery: number;
  usage: boolean;
  firstMs: number;
  gapMs: number;
  server: http.Server;
}

function startFake(): Promise<Fake> {
  const f: Fake = { url: '', inflight: 0, maxInflight: 0, received: [], arrivals: 0, failEvery: 0, usage: true, firstMs: 30, gapMs: 10, server: undefined! };
  f.server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (b) => (body += b));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/v1/models') return json(res, 200, { object: 'list', data: [{ id: 'fake-model', object: 'model' }] });
      // /tokenize: one token per space-separated word, so prompt lengths can be checked exactly.
      if (req.method === 'POST' && req.url === '/tokenize') {
        const b = JSON.parse(body) as { prompt: string };
        return json(res, 200, { tokens: b.prompt.split(' ').filter((w) => w !== '').map((_, i) => i) });
      }
      const chat = req.url === '/v1/chat/completions';
      if (req.method !== 'POST' || (!chat && req.url !== '/v1/completions')) return json(res, 404, { error: { message: 'not found' } });
      const b = JSON.parse(body) as Record<string, unknown>;
      f.received.push(b);
      f.arrivals++;
      if (f.failEvery > 0 && f.arrivals % f.failEvery === 0) return json(res, 500, { error: { message: 'injected failure', type: 'server_error' } });
      f.inflight++;
      f.maxInflight = Math.max(f.maxInflight, f.inflight);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const n = b.max_tokens as number;
      let sent = 0;
      const tick = () => {
        const delta = chat ? { choices: [{ index: 0, delta: { content: ` t${sent}` } }] } : { choices: [{ index: 0, text: ` t${sent}` }] };
        res.write(`data: ${JSON.stringify(delta)}\n\n`);
        if (++sent < n) return void setTimeout(tick, f.gapMs);
        if (f.usage) res.write(`data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 7, completion_tokens: n, total_tokens: n + 7 } })}\n\n`);
        res.end('data: [DONE]\n\n');
        f.inflight--;
      };
      setTimeout(tick, f.firstMs);
    });
  });
  return new Promise((resolve) =>
    f.server.listen(0, '127.0.0.1', () => {
      f.url = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}`;
      resolve(f);
    }),
  );
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const rec = (o: Partial<RequestRecord>): RequestRecord => ({
  index: 0, promptLen: 10, expectedOutputLen: 4, success: true, startMs: 0, ttftMs: 0, itlMs: [], e2elMs: 0, outputTokens: 0, outputTokensFromUsage: true, outputChars: 0, ...o,
});

// ---- pure math -------------------------------------------------------------------------------

describe('bench serve metrics (vLLM definitions)', () => {
  it('percentiles interpolate linearly between ranks, as numpy', () => {
    assert.equal(percentile([4, 1, 3, 2], 50), 2.5);
    assert.ok(Math.abs(percentile([1, 2, 3, 4], 90) - 3.7) < 1e-12);
    assert.equal(percentile([5], 99), 5);
    assert.equal(percentile([], 50), 0);
  });

  it('computes TTFT, TPOT without the first token, pooled ITL, E2EL, throughputs and goodput', () => {
    const records = [
      rec({ index: 0, promptLen: 10, ttftMs: 100, itlMs: [100, 100, 100], e2elMs: 400, outputTokens: 4 }),
      rec({ index: 1, promptLen: 20, ttftMs: 200, itlMs: [], e2elMs: 200, outputTokens: 1 }),
      rec({ index: 2, promptLen: 30, success: false, error: 'HTTP 500', outputTokens: 0 }),
    ];
    const m = computeMetrics(records, 2, { ttft: 150 }, 2);
    assert.equal(m.completed, 2);
    assert.equal(m.failed, 1);
    assert.equal(m.totalInput, 30); // failed requests count no input
    assert.equal(m.totalOutput, 5);
    assert.equal(m.requestThroughput, 1);
    assert.equal(m.outputThroughput, 2.5);
    assert.equal(m.totalTokenThroughput, 17.5);
    assert.equal(m.ttftMs.mean, 150);
    assert.equal(m.ttftMs.median, 150);
    assert.equal(m.ttftMs.std, 50); // population std
    assert.ok(Math.abs(m.ttftMs.p90 - 190) < 1e-9);
    assert.ok(Math.abs(m.ttftMs.p99 - 199) < 1e-9);
    // (400 - 100) / (4 - 1): the single-token request has no TPOT.
    assert.deepEqual([m.tpotMs.mean, m.tpotMs.p99], [100, 100]);
    assert.deepEqual([m.itlMs.mean, m.itlMs.std], [100, 0]);
    assert.equal(m.e2elMs.mean, 300);
    assert.equal(m.goodCompleted, 1);
    assert.equal(m.requestGoodput, 0.5);
    assert.equal(m.outputTokensPerDollar, (2.5 * 3600) / 2);
    // For goodput a one-token request has TPOT 0, so it meets a TPOT SLO that the 100 ms one misses.
    const g = computeMetrics(records, 2, parseGoodput(['tpot:50']));
    assert.equal(g.goodCompleted, 1);
    assert.equal(computeMetrics(records, 2).requestGoodput, null);
  });

  it('parses --goodput and rejects bad items', () => {
    assert.deepEqual(parseGoodput(['ttft:500', 'tpot:100,e2el:2000']), { ttft: 500, tpot: 100, e2el: 2000 });
    assert.throws(() => parseGoodput(['itl:5']), UsageError);
    assert.throws(() => parseGoodput(['ttft:abc']), UsageError);
  });
});

describe('bench serve arrivals', () => {
  const moments = (xs: number[]) => {
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    return [mean, xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length] as const;
  };

  it('Poisson gaps: exponential with mean 1/R and variance 1/R^2', () => {
    const [mean, v] = moments(arrivalGaps(20000, 4, 1, new BenchRng(1)));
    assert.ok(Math.abs(mean - 0.25) < 0.25 * 0.03, `mean ${mean}`);
    assert.ok(Math.abs(v - 0.0625) < 0.0625 * 0.06, `variance ${v}`);
  });

  it('gamma gaps keep the mean 1/R with variance 1/(k R^2)', () => {
    for (const k of [0.5, 4]) {
      const [mean, v] = moments(arrivalGaps(20000, 4, k, new BenchRng(2)));
      const want = 1 / (k * 16);
      assert.ok(Math.abs(mean - 0.25) < 0.25 * 0.03, `k=${k} mean ${mean}`);
      assert.ok(Math.abs(v - want) < want * 0.08, `k=${k} variance ${v} want ${want}`);
    }
  });

  it('is reproducible from the seed; an infinite rate sends everything at 0', () => {
    assert.deepEqual(arrivalGaps(5, 2, 1, new BenchRng(7)), arrivalGaps(5, 2, 1, new BenchRng(7)));
    assert.notDeepEqual(arrivalGaps(5, 2, 1, new BenchRng(7)), arrivalGaps(5, 2, 1, new BenchRng(8)));
    assert.deepEqual(arrivalOffsets(3, Infinity, 1, new BenchRng(0)), [0, 0, 0]);
    const off = arrivalOffsets(4, 2, 1, new BenchRng(3));
    assert.equal(off[0], 0);
    assert.ok(off[1]! < off[2]! && off[2]! < off[3]!);
    assert.throws(() => arrivalGaps(2, 0, 1, new BenchRng(0)), UsageError);
    assert.throws(() => arrivalGaps(2, 1, -1, new BenchRng(0)), UsageError);
  });
});

describe('bench serve datasets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-serve-'));

  it('random prompts have lengths uniform within the range ratio', () => {
    const reqs = randomDataset({ num: 200, inputLen: 100, outputLen: 20, rangeRatio: 0.5, sharedPrefixLen: 0 }, new BenchRng(0));
    const words = reqs.map((r) => r.prompt.split(' ').length);
    assert.ok(words.every((n, i) => n >= 50 && n <= 150 && n === reqs[i]!.promptLen));
    assert.ok(Math.min(...words) < 60 && Math.max(...words) > 140);
    assert.ok(reqs.every((r) => r.outputLen >= 10 && r.outputLen <= 30));
    assert.throws(() => randomDataset({ num: 1, inputLen: 10, outputLen: 1, rangeRatio: 1, sharedPrefixLen: 0 }, new BenchRng(0)), UsageError);
  });

  it('loads ShareGPT: first turn is the prompt, the reply gives the output length, short or one-turn entries are skipped', async () => {
    const long = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
    const file = join(dir, 'sharegpt.json');
    writeFileSync(file, JSON.stringify([
      { id: 'a', conversations: [{ from: 'human', value: long(10) }, { from: 'gpt', value: long(20) }] },
      { id: 'b', conversations: [{ from: 'human', value: 'hi' }, { from: 'gpt', value: long(20) }] },
      { id: 'c', conversations: [{ from: 'human', value: long(10) }] },
      { id: 'd', conversations: [{ from: 'human', value: long(30) }, { from: 'gpt', value: long(40) }, { from: 'human', value: 'x' }] },
      { id: 'e', conversations: [{ from: 'human', value: long(5) }, { from: 'gpt', value: 'ok' }] },
    ]));
    const counter = async (t: string) => t.split(' ').length;
    const reqs = await loadShareGpt(file, { num: 10, sharedPrefixLen: 0, counter }, new BenchRng(0));
    assert.deepEqual(reqs.map((r) => [r.promptLen, r.outputLen]).sort((a, b) => a[0]! - b[0]!), [[10, 20], [30, 40]]);
    assert.ok(reqs.every((r) => r.measured));
    // Without a tokenizer: words * 1.3; a fixed output length overrides the reply's.
    const est = await loadShareGpt(file, { num: 1, outputLen: 8, sharedPrefixLen: 0 }, new BenchRng(0));
    assert.equal(est.length, 1);
    assert.equal(est[0]!.outputLen, 8);
    assert.ok([13, 39, 7].includes(est[0]!.promptLen));
    writeFileSync(join(dir, 'bad.json'), '{"oops"');
    await assert.rejects(loadShareGpt(join(dir, 'bad.json'), { num: 1, sharedPrefixLen: 0 }, new BenchRng(0)), FormatError);
    writeFileSync(join(dir, 'obj.json'), '{"conversations": []}');
    await assert.rejects(loadShareGpt(join(dir, 'obj.json'), { num: 1, sharedPrefixLen: 0 }, new BenchRng(0)), /JSON array/);
  });
});

// ---- against the fake server -----------------------------------------------------------------

describe('bench serve against a streaming server', () => {
  let f: Fake;
  const dir = mkdtempSync(join(tmpdir(), 'bench-serve-run-'));
  before(async () => (f = await startFake()));
  after(() => f.server.close());
  const reset = () => Object.assign(f, { maxInflight: 0, received: [], arrivals: 0, failEvery: 0, usage: true, firstMs: 30, gapMs: 10 });

  it('caps in-flight requests, times TTFT/ITL/TPOT and takes the model from /v1/models', async () => {
    reset();
    const r = await runServeBenchmark({ baseUrl: f.url + '/v1', numPrompts: 9, maxConcurrency: 3, inputLen: 12, outputLen: 5, seed: 1, label: 'fake' });
    assert.equal(f.maxInflight, 3);
    assert.equal(f.received.length, 10); // 9 + the warm-up
    assert.equal(r.config.model, 'fake-model');
    assert.ok(f.received.every((b) => b.model === 'fake-model' && b.stream === true && b.ignore_eos === true && b.max_tokens === 5));
    assert.deepEqual(f.received[0]!.stream_options, { include_usage: true });
    const m = r.metrics;
    assert.equal(m.completed, 9);
    assert.equal(m.failed, 0);
    assert.equal(m.totalOutput, 45);
    assert.equal(m.totalInput, 9 * 7); // usage.prompt_tokens wins over the dataset's estimate
    assert.ok(r.requests.every((q) => q.itlMs.length === 4 && q.outputTokensFromUsage));
    assert.ok(m.ttftMs.median >= 25 && m.ttftMs.median < 500, `ttft ${m.ttftMs.median}`);
    assert.ok(m.tpotMs.median >= 8 && m.tpotMs.median < 200, `tpot ${m.tpotMs.median}`);
    assert.ok(m.e2elMs.mean >= m.ttftMs.mean + 4 * 8);
    // The server reported prompt_tokens, so those are the input lengths.
    assert.equal(r.config.promptLengths, 'server usage');
    // Three waves of three: the duration is at least three requests' latency.
    assert.ok(m.durationS * 1000 >= 3 * (30 + 4 * 10) * 0.9);
  });

  it('measures prompts with /tokenize and sends the shared prefix as the chat system message; counts chunks without usage', async () => {
    reset();
    f.usage = false;
    const r = await runServeBenchmark({ baseUrl: f.url, endpoint: 'chat', numPrompts: 4, inputLen: 20, outputLen: 3, sharedPrefixLen: 50, warmup: false, seed: 2 });
    assert.equal(r.config.promptLengths, 'server /tokenize');
    assert.ok(r.requests.every((q) => q.promptLen === 70 && q.outputTokens === 3 && !q.outputTokensFromUsage));
    const systems = f.received.map((b) => (b.messages as { role: string; content: string }[])[0]!);
    assert.ok(systems.every((s) => s.role === 'system' && s.content === systems[0]!.content && s.content.split(' ').length === 50));
    assert.equal(r.metrics.completed, 4);
  });

  it('counts failed requests with their error, follows a request rate, writes the result file and a sweep plot', async () => {
    reset();
    f.failEvery = 3;
    f.firstMs = 5;
    f.gapMs = 2;
    const r = await runServeBenchmark({ baseUrl: f.url, numPrompts: 9, requestRate: 200, inputLen: 8, outputLen: 3, warmup: false, goodput: { ttft: 10000 } });
    assert.equal(r.metrics.failed, 3);
    assert.equal(r.metrics.completed, 6);
    assert.equal(r.metrics.goodCompleted, 6);
    assert.match(r.requests.find((q) => !q.success)!.error!, /HTTP 500.*injected failure/);
    assert.ok(r.requests.some((q) => q.startMs > 5), 'requests spread over time at a finite rate');

    reset();
    const resultFile = join(dir, 'out.json');
    const plot = join(dir, 'out.png');
    const log = console.log;
    const lines: string[] = [];
    console.log = (s: string) => lines.push(s);
    try {
      await benchServeCommand({
        baseUrl: f.url, endpoint: 'completions', numPrompts: '4', requestRate: 'inf', burstiness: '1', seed: '0', inputLen: '8', outputLen: '3', rangeRatio: '0',
        sharedPrefixLen: '0', goodput: ['ttft:1000'], pricePerHour: '1.5', label: 'baseline-x', resultFile, plot, sweepConcurrency: '1,2', warmup: false, tokenize: true,
      });
    } finally {
      console.log = log;
    }
    const out = lines.join('\n');
    assert.match(out, /label: baseline-x \| hardware: .+/);
    assert.match(out, /metrics: vLLM bench serve definitions/);
    assert.match(out, /Output tokens per \$/);
    assert.match(out, /sweep over concurrency/);
    const saved = JSON.parse(readFileSync(resultFile, 'utf8')) as { axis: string; values: number[]; runs: { config: { maxConcurrency: number }; requests: unknown[]; metrics: { completed: number } }[] };
    assert.equal(saved.axis, 'concurrency');
    assert.deepEqual(saved.runs.map((x) => x.config.maxConcurrency), [1, 2]);
    assert.ok(saved.runs.every((x) => x.requests.length === 4 && x.metrics.completed === 4));
    checkPng(readFileSync(plot));
  });

  it('registers `serve` on a bench command; its flags reach the runner', async () => {
    reset();
    const bench = new Command('bench').exitOverride();
    registerBenchServe(bench);
    const resultFile = join(dir, 'cli.json');
    const log = console.log;
    console.log = () => {};
    try {
      await bench.parseAsync(['serve', '--base-url', f.url, '--num-prompts', '3', '--input-len', '6', '--output-len', '2', '--max-concurrency', '1', '--no-warmup', '--no-tokenize', '--label', 'cli-run', '--result-file', resultFile], { from: 'user' });
    } finally {
      console.log = log;
    }
    const saved = JSON.parse(readFileSync(resultFile, 'utf8')) as { label: string; config: { maxConcurrency: number; promptLengths: string }; metrics: { completed: number; totalOutput: number } };
    assert.equal(saved.label, 'cli-run');
    assert.equal(saved.config.maxConcurrency, 1);
    assert.deepEqual([saved.metrics.completed, saved.metrics.totalOutput], [3, 6]);
    assert.equal(f.received.length, 3);
    assert.equal(f.maxInflight, 1);
  });

  it('a bad flag or an unreachable server is a clear error', async () => {
    const base = { baseUrl: f.url, endpoint: 'completions', numPrompts: '4', requestRate: 'inf', burstiness: '1', seed: '0', inputLen: '8', outputLen: '3', rangeRatio: '0', sharedPrefixLen: '0', warmup: false, tokenize: true };
    await assert.rejects(benchServeCommand({ ...base, numPrompts: 'x' }), /--num-prompts must be an integer/);
    await assert.rejects(benchServeCommand({ ...base, endpoint: 'embeddings' }), /--endpoint must be completions or chat/);
    await assert.rejects(runServeBenchmark({ baseUrl: 'http://127.0.0.1:1', numPrompts: 1 }), /cannot reach/);
  });
});

// ---- PNG -------------------------------------------------------------------------------------

/** Walks the chunks: signature, IHDR first (8-bit RGB or RGBA), CRCs (checked with zlib's own CRC-32), IEND last; returns width, height, pixels. */
function checkPng(buf: Buffer): { w: number; h: number; raw: Buffer } {
  assert.deepEqual([...buf.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const types: string[] = [];
  const idat: Buffer[] = [];
  let w = 0, h = 0, ch = 0;
  for (let p = 8; p < buf.length; ) {
    const len = buf.readUInt32BE(p);
    const type = buf.toString('ascii', p + 4, p + 8);
    const data = buf.subarray(p + 8, p + 8 + len);
    assert.equal(buf.readUInt32BE(p + 8 + len), zlibCrc32(buf.subarray(p + 4, p + 8 + len)), `${type} CRC`);
    if (type === 'IHDR') {
      [w, h] = [data.readUInt32BE(0), data.readUInt32BE(4)];
      assert.equal(data[8], 8, 'bit depth 8');
      ch = data[9] === 2 ? 3 : data[9] === 6 ? 4 : 0;
      assert.ok(ch > 0, `colour type ${data[9]} is RGB or RGBA`);
    }
    if (type === 'IDAT') idat.push(data);
    types.push(type);
    p += 12 + len;
  }
  assert.equal(types[0], 'IHDR');
  assert.equal(types.at(-1), 'IEND');
  const raw = inflateSync(Buffer.concat(idat));
  assert.equal(raw.length, h * (1 + ch * w));
  return { w, h, raw };
}

describe('bench serve chart', () => {
  it('draws the four panels with text (DejaVu Sans) through Vega-Lite and resvg', async () => {
    const pt = (x: string, k: number) => ({ x, outputThroughput: 100 * k, ttftMedian: 10 * k, ttftP99: 20 * k, itlMedian: 5, itlP99: 9, e2elMedian: 300 * k, e2elP99: Number.NaN });
    const spec = sweepSpec([pt('1', 1), pt('2', 2)], 'max concurrency', 'baseline | tiny | cpu');
    const svg = await chartSvg(spec);
    for (const t of ['output tokens/s', 'TTFT (ms)', 'ITL (ms)', 'E2E latency (ms)', 'max concurrency', 'baseline | tiny | cpu', 'median', 'p99']) {
      assert.ok(svg.includes(`>${t}<`), `the SVG has the text "${t}"`);
    }
    const { w, h } = checkPng(await plotSweep([pt('1', 1), pt('2', 2)], 'max concurrency', 'baseline'));
    assert.ok(w > 800 && h > 500, `${w}x${h}`);
  });
});

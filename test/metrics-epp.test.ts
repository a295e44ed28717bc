// /metrics speaks the model-server protocol of the Kubernetes Gateway API Inference Extension
// (docs/proposals/003-model-server-protocol in kubernetes-sigs/gateway-api-inference-extension):
// the endpoint picker scrapes vLLM's names by default (--total-queued-requests-metric
// vllm:num_requests_waiting, --total-running-requests-metric vllm:num_requests_running,
// --kv-cache-usage-percentage-metric vllm:kv_cache_usage_perc, or vllm:gpu_cache_usage_perc in older
// releases, --lora-info-metric vllm:lora_requests_info, --cache-info-metric vllm:cache_config_info).
// Checked here: the names, their types, and their values against known engine stats and against
// our own metrics in the same scrape while requests run.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EngineStats } from '../src/engine/api.ts';
import { buildServer } from '../src/server/app.ts';
import { FakeEngine } from './helpers/fake-engine.ts';
import { cpuInfo } from '../src/tensor/runtime.ts';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A small parser for the Prometheus text format (what the picker's expfmt reads). */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

const one = (samples: Sample[], name: string): Sample => {
  const found = samples.filter((s) => s.name === name);
  assert.equal(found.length, 1, `${name}: ${found.length} series`);
  return found[0]!;
};

class FixedStatsEngine extends FakeEngine {
  /** What the worker host exposes about its KV cache. */
  readonly kv = { blocks: 1024, blockSize: 16, bytesPerToken: 4096 };
  constructor(private readonly fixed: EngineStats) {
    super();
  }
  override stats(): EngineStats {
    return this.fixed;
  }
}

async function scrape(engine: FakeEngine) {
  const app = buildServer(engine);
  try {
    const r = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(r.statusCode, 200);
    return parse(r.body);
  } finally {
    await app.close();
  }
}

describe('endpoint-picker metrics', () => {
  test('names, types and values from the engine stats', async () => {
    const stats: EngineStats = { running: 3, waiting: 5, kvBlocksUsed: 256, kvBlocksTotal: 1024, prefixCacheHitRate: 0.5, preemptions: 0, promptTokens: 10, generationTokens: 20 };
    const before = Date.now() / 1000;
    const { types, samples } = await scrape(new FixedStatsEngine(stats));
    for (const name of ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc', 'vllm:lora_requests_info', 'vllm:cache_config_info']) {
      assert.equal(types.get(name), 'gauge', name);
    }
    assert.equal(one(samples, 'vllm:num_requests_waiting').value, 5);
    assert.equal(one(samples, 'vllm:num_requests_running').value, 3);
    assert.equal(one(samples, 'vllm:kv_cache_usage_perc').value, 0.25); // a fraction, as vLLM's
    assert.equal(one(samples, 'vllm:gpu_cache_usage_perc').value, 0.25);
    const cache = one(samples, 'vllm:cache_config_info');
    assert.deepEqual(cache.labels, { block_size: '16', num_gpu_blocks: '1024' });
    assert.equal(cache.value, 1);
    // No adapters served by name: both lists empty (the picker skips such a series), value a timestamp.
    const lora = one(samples, 'vllm:lora_requests_info');
    assert.deepEqual(lora.labels, { max_lora: '0', running_lora_adapters: '', waiting_lora_adapters: '' });
    assert.ok(lora.value >= before - 1 && lora.value <= Date.now() / 1000 + 1, String(lora.value));
    // Ours are still there, with the same numbers.
    assert.equal(one(samples, 'slipstream_requests_waiting').value, 5);
    assert.equal(one(samples, 'slipstream_kv_blocks_used').value, 256);
    // The kernels this process runs, so a benchmark can name them (bench:serve --isa checks it).
    const backend = one(samples, 'slipstream_backend_info');
    assert.equal(backend.labels.backend, 'cpu');
    assert.equal(backend.labels.isa, cpuInfo().isa);
    assert.equal(backend.value, 1);
  });

  test('an empty pool reads 0, not NaN; an engine without a block size has no cache_config_info', async () => {
    const stats: EngineStats = { running: 0, waiting: 0, kvBlocksUsed: 0, kvBlocksTotal: 0, prefixCacheHitRate: 0, preemptions: 0, promptTokens: 0, generationTokens: 0 };
    const fixed = await scrape(new FixedStatsEngine(stats));
    assert.equal(one(fixed.samples, 'vllm:kv_cache_usage_perc').value, 0);
    assert.equal(fixed.samples.filter((s) => s.name === 'vllm:cache_config_info').length, 0);
    const plain = await scrape(new FakeEngine());
    assert.equal(plain.samples.filter((s) => s.name === 'vllm:cache_config_info').length, 0);
    assert.equal(one(plain.samples, 'vllm:num_requests_waiting').value, 0);
  });

  test('under load: the picker sees the queue the engine has', async () => {
    const engine = new FakeEngine({ maxRunning: 2, stepMs: 50 }); // 12 tokens: 0.6 s per request, time to scrape
    const app = buildServer(engine);
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const reqs = Array.from({ length: 5 }, () =>
        fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'fake-model', prompt: 'Hello there', max_tokens: 12 }) }).then((r) => r.text()),
      );
      while (engine.submitted.length < 5) await new Promise((r) => setTimeout(r, 2));
      const { samples } = parse(await (await fetch(`${url}/metrics`)).text());
      const v = (n: string) => one(samples, n).value;
      assert.equal(v('vllm:num_requests_running'), 2);
      assert.equal(v('vllm:num_requests_waiting'), 3);
      assert.equal(v('vllm:num_requests_waiting'), v('slipstream_requests_waiting'));
      assert.ok(v('vllm:kv_cache_usage_perc') > 0);
      assert.equal(v('vllm:kv_cache_usage_perc'), v('slipstream_kv_blocks_used') / v('slipstream_kv_blocks_total'));
      await Promise.all(reqs);
      const after = parse(await (await fetch(`${url}/metrics`)).text()).samples;
      assert.equal(one(after, 'vllm:num_requests_running').value, 0);
      assert.equal(one(after, 'vllm:num_requests_waiting').value, 0);
      assert.equal(one(after, 'vllm:kv_cache_usage_perc').value, 0);
    } finally {
      await app.close();
    }
  });
});

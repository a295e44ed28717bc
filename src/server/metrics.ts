// Prometheus metrics, one registry per server (tests run several servers in one process).
// Latencies are measured by the server, per request; the engine's state (running, waiting, KV
// blocks, prefix-cache hit rate, preemptions, token counts) is read from engine.stats() at scrape
// time, so the two can never disagree.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineClient, EngineStats } from '../engine/api.ts';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 20, 40, 80];
const E2E_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly ttft: Histogram;
  readonly itl: Histogram;
  readonly e2e: Histogram;
  readonly requests: Counter<'finish_reason'>;
  private readonly gauges: Record<'running' | 'waiting' | 'kvUsed' | 'kvTotal' | 'hitRate', Gauge>;
  private readonly totals: Record<'preemptions' | 'promptTokens' | 'generationTokens', Counter>;
  // Engine counters already exported; a scrape adds the difference.
  private last = { preemptions: 0, promptTokens: 0, generationTokens: 0 };

  constructor() {
    const registers = [this.registry];
    this.ttft = new Histogram({ name: 'slipstream_time_to_first_token_seconds', help: 'Time from request arrival to its first generated token', buckets: LATENCY_BUCKETS, registers });
    this.itl = new Histogram({ name: 'slipstream_inter_token_latency_seconds', help: 'Time between consecutive tokens of one choice', buckets: LATENCY_BUCKETS, registers });
    this.e2e = new Histogram({ name: 'slipstream_e2e_request_latency_seconds', help: 'Time from request arrival to its last token', buckets: E2E_BUCKETS, registers });
    this.requests = new Counter({ name: 'slipstream_requests_total', help: 'Finished generation requests by finish reason (abort: client gone; error: engine failure)', labelNames: ['finish_reason'], registers });
    const g = (name: string, help: string) => new Gauge({ name, help, registers });
    this.gauges = {
      running: g('slipstream_requests_running', 'Requests being computed'),
      waiting: g('slipstream_requests_waiting', 'Requests waiting for a slot'),
      kvUsed: g('slipstream_kv_blocks_used', 'KV-cache blocks in use'),
      kvTotal: g('slipstream_kv_blocks_total', 'KV-cache blocks in the pool'),
      hitRate: g('slipstream_prefix_cache_hit_rate', 'Share of prompt tokens served from the prefix cache (0..1)'),
    };
    const c = (name: string, help: string) => new Counter({ name, help, registers });
    this.totals = {
      preemptions: c('slipstream_preemptions_total', 'Requests preempted (recomputed later) because KV blocks ran out'),
      promptTokens: c('slipstream_prompt_tokens_total', 'Prompt tokens processed'),
      generationTokens: c('slipstream_generation_tokens_total', 'Tokens generated'),
    };
  }

  /** The Prometheus text exposition, with the engine's state read now. */
  async render(engine: EngineClient): Promise<string> {
    let s: EngineStats | undefined;
    try {
      s = engine.stats();
    } catch {
      s = undefined; // keep serving the server-side metrics
    }
    if (s) {
      this.gauges.running.set(s.running);
      this.gauges.waiting.set(s.waiting);
      this.gauges.kvUsed.set(s.kvBlocksUsed);
      this.gauges.kvTotal.set(s.kvBlocksTotal);
      this.gauges.hitRate.set(s.prefixCacheHitRate);
      for (const k of ['preemptions', 'promptTokens', 'generationTokens'] as const) {
        const d = s[k] - this.last[k];
        if (d > 0) this.totals[k].inc(d);
        this.last[k] = Math.max(this.last[k], s[k]);
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

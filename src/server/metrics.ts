// Prometheus metrics, one registry per server (tests run several servers in one process).
// Latencies are measured by the server, per request; the engine's state (running, waiting, KV
// blocks, prefix-cache hit rate, preemptions, token counts) is read from engine.stats() at scrape
// time, so the two can never disagree.
//
// Next to ours, the same engine state goes out under the names of the model-server protocol of the
// Kubernetes Gateway API Inference Extension, whose endpoint picker (the prefix- and load-aware
// router in front of vLLM pods) scrapes them to choose a pod for each request: vLLM's names, with
// vLLM's semantics, so the picker's defaults route to Slipstream pods unchanged. See
// https://github.com/kubernetes-sigs/gateway-api-inference-extension/tree/main/docs/proposals/003-model-server-protocol

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineClient, EngineStats } from '../engine/api.ts';
import type { ImageClient } from '../diffusion/service.ts';
import { cpuInfo, nativeAvailable } from '../tensor/runtime.ts';

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
  private readonly epp: Record<'waiting' | 'running' | 'kvUsage' | 'gpuCacheUsage', Gauge>;
  private readonly loraInfo: Gauge<'max_lora' | 'running_lora_adapters' | 'waiting_lora_adapters'>;
  private readonly cacheInfo: Gauge<'block_size' | 'num_gpu_blocks'>;
  private readonly image: Record<'waiting' | 'running' | 'progress', Gauge>;
  private readonly imageTotals: Record<'steps' | 'images', Counter>;
  private lastImage = { steps: 0, images: 0 };

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
    // The endpoint picker's model-server protocol (names as vLLM exports them).
    this.epp = {
      // TotalQueuedRequests
      waiting: g('vllm:num_requests_waiting', 'Requests waiting for a slot (same as slipstream_requests_waiting)'),
      // TotalRunningRequests
      running: g('vllm:num_requests_running', 'Requests being computed (same as slipstream_requests_running)'),
      // KVCacheUtilization: a fraction, 0..1, as vLLM's is
      kvUsage: g('vllm:kv_cache_usage_perc', 'Fraction of KV-cache blocks in use (0..1)'),
      // The name vLLM used before kv_cache_usage_perc, still the default of older endpoint pickers
      gpuCacheUsage: g('vllm:gpu_cache_usage_perc', 'Fraction of KV-cache blocks in use (0..1); the older name of vllm:kv_cache_usage_perc'),
    };
    // LoRA adapters: Slipstream merges a --lora adapter into the weights at load and serves no
    // adapters by name, so none is ever running or waiting; the series is there so the picker finds
    // the family (it reports a missing one as an error on every scrape) and ignores it.
    this.loraInfo = new Gauge({
      name: 'vllm:lora_requests_info',
      help: 'LoRA adapters running and waiting (none: an adapter is merged at load); value: the time of the last update, in seconds',
      labelNames: ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters'],
      registers,
    });
    // Optional in the protocol: the prefix-cache scorer's block size and pool size.
    this.cacheInfo = new Gauge({ name: 'vllm:cache_config_info', help: 'KV-cache configuration (in the labels); value 1', labelNames: ['block_size', 'num_gpu_blocks'], registers });
    this.image = {
      waiting: g('slipstream_image_requests_waiting', 'Image requests waiting for the image model'),
      running: g('slipstream_image_requests_running', 'Image requests being denoised (0 or 1)'),
      progress: g('slipstream_image_progress', 'Fraction of the running image request\'s denoising steps done (0..1)'),
    };
    this.imageTotals = {
      steps: c('slipstream_image_steps_total', 'Denoising steps run (one UNet batch each)'),
      images: c('slipstream_images_total', 'Pictures generated'),
    };
    // Which kernels this process runs (the instruction set is chosen once per process, at the
    // native core's load: SLIPSTREAM_ISA forces one), so a benchmark can say what it measured.
    const backend = new Gauge({ name: 'slipstream_backend_info', help: 'The compute backend (in the labels); value 1', labelNames: ['backend', 'isa'], registers });
    if (nativeAvailable()) backend.set({ backend: 'cpu', isa: cpuInfo().isa }, 1);
    else backend.set({ backend: 'ref', isa: 'none' }, 1);
  }

  /** The Prometheus text exposition, with the engine's state read now. */
  async render(engine: EngineClient, images?: ImageClient): Promise<string> {
    if (images) {
      const st = images.stats();
      this.image.waiting.set(st.waiting);
      this.image.running.set(st.running);
      this.image.progress.set(st.progress);
      const ds = st.stepsTotal - this.lastImage.steps, di = st.imagesTotal - this.lastImage.images;
      if (ds > 0) this.imageTotals.steps.inc(ds);
      if (di > 0) this.imageTotals.images.inc(di);
      this.lastImage = { steps: st.stepsTotal, images: st.imagesTotal };
    }
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
      const usage = s.kvBlocksTotal > 0 ? Math.min(1, s.kvBlocksUsed / s.kvBlocksTotal) : 0;
      this.epp.waiting.set(s.waiting);
      this.epp.running.set(s.running);
      this.epp.kvUsage.set(usage);
      this.epp.gpuCacheUsage.set(usage);
      // The worker host knows its block size (engine.kv); an engine that does not say is left out.
      const blockSize = (engine as Partial<{ kv: { blockSize: number } }>).kv?.blockSize;
      this.cacheInfo.reset();
      if (blockSize && s.kvBlocksTotal > 0) this.cacheInfo.set({ block_size: String(blockSize), num_gpu_blocks: String(s.kvBlocksTotal) }, 1);
      for (const k of ['preemptions', 'promptTokens', 'generationTokens'] as const) {
        const d = s[k] - this.last[k];
        if (d > 0) this.totals[k].inc(d);
        this.last[k] = Math.max(this.last[k], s[k]);
      }
    }
    this.loraInfo.set({ max_lora: '0', running_lora_adapters: '', waiting_lora_adapters: '' }, Date.now() / 1000);
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

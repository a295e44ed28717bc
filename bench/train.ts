// Training throughput: model FLOPs utilisation (MFU) of a 10-20M-parameter Llama at sequence
// length 256 against this machine's f32 FMA peak, measured in the same run.
//
//   npm run bench:train [-- --steps 5 --batch 16 --json out.json]
//
// Model FLOPs per token = 6 x matmul parameters (output head included, embedding lookup not)
// + causal attention 6 x L x T x d_attn (forward + backward); see modelFlopsPerToken. MFU =
// tokens/s x FLOPs per token / peak. Data: random token ids (throughput does not depend on
// the text). A per-kernel time breakdown shows where the step goes.

import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { native } from '../src/tensor/native.ts';
import { Tape } from '../src/tensor/autograd.ts';
import { CpuTrainKernels } from '../src/tensor/train-cpu.ts';
import type { TrainKernels } from '../src/tensor/train-kernels.ts';
import { type TrainBatch, TrainModel } from '../src/train/model.ts';
import { AdamW } from '../src/train/optim.ts';
import { TrainRng } from '../src/train/rng.ts';
import { modelFlopsPerToken } from '../src/train/trainer.ts';
import type { ModelConfig } from '../src/formats/model-config.ts';

const { values: a } = parseArgs({
  options: {
    steps: { type: 'string', default: '4' },
    batch: { type: 'string', default: '16' },
    seq: { type: 'string', default: '256' },
    dim: { type: 'string', default: '384' },
    layers: { type: 'string', default: '6' },
    heads: { type: 'string', default: '6' },
    ffn: { type: 'string', default: '1024' },
    vocab: { type: 'string', default: '8192' },
    json: { type: 'string' },
  },
});

const n = native();
const threads = n.info().threads;

/** The FMA peak of all pool threads (best of 5). */
function fmaPeak(): number {
  let best = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const flops = n.benchFma(4_000_000);
    best = Math.max(best, flops / ((performance.now() - t0) / 1000));
  }
  return best;
}

/** Wraps the kernels to add up wall time per method. */
function timed(k: TrainKernels): { k: TrainKernels; times: Map<string, number> } {
  const times = new Map<string, number>();
  const proxy = new Proxy(k, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const t0 = performance.now();
        const r = v.apply(target, args);
        times.set(String(prop), (times.get(String(prop)) ?? 0) + performance.now() - t0);
        return r;
      };
    },
  });
  return { k: proxy, times };
}

const D = Number(a.dim), L = Number(a.layers), H = Number(a.heads), F = Number(a.ffn), V = Number(a.vocab);
const B = Number(a.batch), T = Number(a.seq), steps = Number(a.steps);
const cfg: ModelConfig = {
  arch: 'llama', vocabSize: V, dim: D, nLayers: L, nHeads: H, nKvHeads: H, headDim: D / H, ffnDim: F, maxPosition: T,
  normEps: 1e-5, rope: { theta: 10000, layout: 'half', dim: D / H }, act: 'silu', tieEmbeddings: false, slidingWindow: 0,
  slidingLayers: 'all', attnScale: 1 / Math.sqrt(D / H), attnSoftCap: 0, finalSoftCap: 0, embedScale: 1, nExperts: 0,
  nExpertsPerToken: 0, bosId: 0, eosIds: [1],
};
const rng = new TrainRng(1);
const model = TrainModel.init(cfg, rng);
const batch: TrainBatch = {
  B, T,
  tokens: Int32Array.from({ length: B * T }, () => rng.nextU32() % V),
  targets: Int32Array.from({ length: B * T }, () => rng.nextU32() % V),
  seg: Int32Array.from({ length: B * T }, (_, i) => Math.floor(i / T)),
  positions: Int32Array.from({ length: B * T }, (_, i) => i % T),
};
const flopsPerTok = modelFlopsPerToken(cfg, T);

const cpuName = cpus()[0]?.model.trim() ?? 'unknown CPU';
console.log(`bench:train — ${cpuName}, ${availableParallelism()} cores, ${threads} threads, isa ${n.info().isa}`);
console.log(`model: Llama, ${(model.numParams / 1e6).toFixed(1)}M parameters (dim ${D}, ${L} layers, ${H} heads, ffn ${F}, vocab ${V}), batch ${B} x ${T} tokens`);
console.log(`model FLOPs per token (fwd+bwd): ${(flopsPerTok / 1e6).toFixed(1)} M`);

const peak0 = fmaPeak();
const { k, times } = timed(new CpuTrainKernels());
const t = new Tape(k);
const opt = new AdamW(model.trainable(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 }, k);
const stepTimes: number[] = [];
for (let s = 0; s <= steps; s++) {
  if (s === 1) times.clear(); // step 0 warms up (buffers allocated, pages faulted)
  const t0 = performance.now();
  model.loss(t, batch, 1 / (B * T));
  t.backward();
  t.reset();
  opt.update(1e-4);
  const dt = (performance.now() - t0) / 1000;
  if (s > 0) stepTimes.push(dt);
  console.log(`step ${s}${s === 0 ? ' (warm-up)' : ''}: ${dt.toFixed(2)} s, ${Math.round((B * T) / dt)} tok/s`);
}
const peak1 = fmaPeak();
const peak = Math.max(peak0, peak1);
stepTimes.sort((x, y) => x - y);
const med = stepTimes[Math.floor(stepTimes.length / 2)]!;
const tps = (B * T) / med;
const achieved = tps * flopsPerTok;
console.log('');
console.log(`FMA peak (measured before/after): ${(peak0 / 1e9).toFixed(0)} / ${(peak1 / 1e9).toFixed(0)} GFLOP/s`);
console.log(`median step ${med.toFixed(2)} s: ${Math.round(tps)} tokens/s, ${(achieved / 1e9).toFixed(1)} model GFLOP/s`);
console.log(`MFU: ${((100 * achieved) / peak).toFixed(1)}% of the measured FMA peak (target >= 40%)`);
console.log('');
console.log('time per step by kernel:');
const total = [...times.values()].reduce((x, y) => x + y, 0) / steps;
for (const [name, ms] of [...times].sort((x, y) => y[1] - x[1])) {
  console.log(`  ${name.padEnd(20)} ${(ms / steps).toFixed(0).padStart(6)} ms  ${((100 * ms) / steps / (med * 1000)).toFixed(1).padStart(5)}%`);
}
console.log(`  ${'(outside kernels)'.padEnd(20)} ${(med * 1000 - total).toFixed(0).padStart(6)} ms  ${((100 * (med * 1000 - total)) / (med * 1000)).toFixed(1).padStart(5)}%`);
if (a.json) {
  writeFileSync(a.json, JSON.stringify({ cpu: cpuName, threads, params: model.numParams, batch: B, seq: T, tokensPerSec: tps, modelFlopsPerSec: achieved, peak, mfu: achieved / peak, kernelMs: Object.fromEntries([...times].map(([k2, v]) => [k2, v / steps])) }, null, 2));
}

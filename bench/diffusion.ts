// One UNet2DConditionModel forward in the Stable Diffusion 1.5 shape (block_out 320/640/1280/1280,
// 2 layers per block, 8 heads, cross-attention 768; 860M parameters) with random f32 weights built
// in memory, batch 2 (classifier-free guidance) at a given image size (latents size / 8), on the
// cpu backend. Prints seconds per step, GFLOP/s against the measured FMA peak, and the time spent
// in each kind of op.
//   npx tsx bench/diffusion.ts [--size 256] [--steps 3] [--threads 2] [--dtype f32|f16]
// Peer: . ../shared/oracle/env.sh && "$ORACLE_PY" ../shared/oracle/diffusers_bench.py --size 256 --steps 3 --threads 2
import { parseArgs } from 'node:util';
import { BackendDiffOps, type Params } from '../src/diffusion/ops.ts';
import { unetConfig, unetFlops, unetForward, unetParamShapes } from '../src/diffusion/unet.ts';
import { vaeConfig, vaeDecode } from '../src/diffusion/vae.ts';
import type { Backend } from '../src/tensor/backend.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';

const { values: a } = parseArgs({
  options: { size: { type: 'string', default: '256' }, steps: { type: 'string', default: '3' }, threads: { type: 'string', default: '2' }, dtype: { type: 'string', default: 'f32' }, vae: { type: 'boolean', default: false } },
});
const size = Number(a.size), steps = Number(a.steps), dtype = a.dtype as 'f32' | 'f16';
const cpu = cpuBackend();
cpu.setThreads(Number(a.threads));

// diffusers' UNet2DConditionModel defaults with SD 1.x's cross_attention_dim and heads
const cfg = unetConfig({
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  cross_attention_dim: 768,
  attention_head_dim: 8,
});

// random weights, convolutions directly in the NHWC layout [C_out, kh, kw, C_in]
let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const weights = new Map<string, Tensor>();
let nParams = 0;
for (const [name, shape] of unetParamShapes(cfg)) {
  const s = shape.length === 4 ? [shape[0]!, shape[2]!, shape[3]!, shape[1]!] : shape;
  const n = s.reduce((x, y) => x * y, 1);
  nParams += n;
  const fan = shape.length === 1 ? 1 : n / shape[0]!;
  const v = new Float32Array(n);
  const sc = shape.length === 1 ? 0.1 : 1 / Math.sqrt(fan);
  for (let i = 0; i < n; i++) v[i] = (name.endsWith('norm.weight') || /norm\d?\.weight$/.test(name) ? 1 : 0) + rnd() * sc;
  weights.set(name, shape.length >= 2 && dtype === 'f16' ? Tensor.from(v, s, 'f16') : Tensor.fromF32(v, s));
}
const params: Params<Tensor> = {
  get: (n) => weights.get(n) ?? (() => { throw new Error(`no ${n}`); })(),
  has: (n) => weights.has(n),
};

// time per op kind: a Backend wrapper that times each call
const times = new Map<string, number>();
const timed = new Proxy(cpu as Backend, {
  get(target, prop, recv) {
    const v = Reflect.get(target, prop, recv) as unknown;
    if (typeof v !== 'function') return v;
    return (...args: unknown[]) => {
      const t0 = performance.now();
      const r = (v as (...x: unknown[]) => unknown).apply(target, args);
      times.set(String(prop), (times.get(String(prop)) ?? 0) + performance.now() - t0);
      return r;
    };
  },
});
const o = new BackendDiffOps(timed);

const h = size / 8;
const sample = Tensor.fromF32(Float32Array.from({ length: 2 * h * h * 4 }, rnd), [2, h, h, 4]);
const context = Tensor.fromF32(Float32Array.from({ length: 2 * 77 * 768 }, rnd), [2, 77, 768]);
const flops = unetFlops(cfg, 2, h, h, 77);
const peak = cpu.fmaPeakGflops();
console.log(`UNet SD 1.5 shape: ${(nParams / 1e6).toFixed(1)}M params (${dtype} weights), batch 2, latents ${h}x${h} (${size}px), ${(flops / 1e9).toFixed(1)} GFLOP per step; ${cpu.threads} threads, ${cpu.isa}, FMA peak now ${peak.toFixed(1)} GFLOP/s`);
const secs: number[] = [];
for (let s = 0; s < steps; s++) {
  times.clear();
  const t0 = performance.now();
  unetForward(o, cfg, params, { sample, timesteps: [999 - 300 * s], context });
  const dt = (performance.now() - t0) / 1e3;
  secs.push(dt);
  const split = [...times].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${(v / 1e3).toFixed(2)}s`).join(', ');
  console.log(`step ${s}: ${dt.toFixed(2)} s, ${(flops / dt / 1e9).toFixed(1)} GFLOP/s = ${((flops / dt / 1e9 / peak) * 100).toFixed(0)}% of the FMA peak (${split})`);
}
const med = [...secs].sort((x, y) => x - y)[Math.floor(secs.length / 2)]!;
console.log(JSON.stringify({ size, threads: cpu.threads, dtype, unet_step_median_s: +med.toFixed(3), gflops: +(flops / med / 1e9).toFixed(1), fma_peak_gflops: +peak.toFixed(1) }));

// --vae: the VAE decoder in the SD 1.5 shape (block_out 128/256/512/512, 2 layers per block,
// 4 latent channels), batch 1, at the same size; then a whole 20-step picture estimated as
// 20 UNet steps + one decode (the text encoder's ~0.1 s left out), the figure diffusers_bench.py
// estimates the same way (total_s_for_20_steps_est).
if (a.vae) {
  const vcfg = vaeConfig({ block_out_channels: [128, 256, 512, 512], layers_per_block: 2, latent_channels: 4, norm_num_groups: 32 });
  const vw = new Map<string, Tensor>();
  const put = (name: string, shape: number[]) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const fan = shape.length === 1 ? 1 : n / shape[0]!;
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = (shape.length === 1 && /norm.*weight$/.test(name) ? 1 : 0) + rnd() * (shape.length === 1 ? 0.1 : 1 / Math.sqrt(fan));
    vw.set(name, Tensor.fromF32(v, shape));
  };
  const conv = (pre: string, co: number, k: number, ci: number) => (put(pre + '.weight', [co, k, k, ci]), put(pre + '.bias', [co]));
  const norm = (pre: string, c: number) => (put(pre + '.weight', [c]), put(pre + '.bias', [c]));
  const resnet = (pre: string, ci: number, co: number) => {
    norm(pre + 'norm1', ci), conv(pre + 'conv1', co, 3, ci), norm(pre + 'norm2', co), conv(pre + 'conv2', co, 3, co);
    if (ci !== co) conv(pre + 'conv_shortcut', co, 1, ci);
  };
  const top = vcfg.blockOutChannels[vcfg.blockOutChannels.length - 1]!;
  conv('post_quant_conv', 4, 1, 4);
  conv('decoder.conv_in', top, 3, 4);
  resnet('decoder.mid_block.resnets.0.', top, top);
  norm('decoder.mid_block.attentions.0.group_norm', top);
  for (const l of ['to_q', 'to_k', 'to_v', 'to_out.0']) (put(`decoder.mid_block.attentions.0.${l}.weight`, [top, top]), put(`decoder.mid_block.attentions.0.${l}.bias`, [top]));
  resnet('decoder.mid_block.resnets.1.', top, top);
  const rev = [...vcfg.blockOutChannels].reverse();
  let prev = top;
  rev.forEach((out, i) => {
    for (let j = 0; j <= vcfg.layersPerBlock; j++) resnet(`decoder.up_blocks.${i}.resnets.${j}.`, j === 0 ? prev : out, out);
    if (i < rev.length - 1) conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, out, 3, out);
    prev = out;
  });
  norm('decoder.conv_norm_out', prev);
  conv('decoder.conv_out', 3, 3, prev);
  const vp: Params<Tensor> = { get: (n) => vw.get(n) ?? (() => { throw new Error(`no ${n}`); })(), has: (n) => vw.has(n) };
  const z = Tensor.fromF32(Float32Array.from({ length: h * h * 4 }, rnd), [1, h, h, 4]);
  times.clear();
  const t0 = performance.now();
  vaeDecode(o, vcfg, vp, z);
  const vaeS = (performance.now() - t0) / 1e3;
  const split = [...times].sort((x, y) => y[1] - x[1]).slice(0, 4).map(([k, v]) => `${k} ${(v / 1e3).toFixed(2)}s`).join(', ');
  console.log(`VAE decode ${size}x${size}: ${vaeS.toFixed(2)} s (${split}); a 20-step picture ≈ 20 x ${med.toFixed(2)} + ${vaeS.toFixed(2)} = ${(20 * med + vaeS).toFixed(1)} s`);
  console.log(JSON.stringify({ size, vae_decode_s: +vaeS.toFixed(3), total_s_for_20_steps_est: +(20 * med + vaeS).toFixed(1), peak_rss_MiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
}

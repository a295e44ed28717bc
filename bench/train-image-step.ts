// One UNet training step (forward + backward) on the autograd tape: TapeDiffOps over the native
// training kernels, a UNet2DConditionModel in a scaled SD 1.5 shape (block_out w, 2w, 4w, 4w with
// 2 layers per block, 8 heads, GroupNorm 32; SD 1.5 is w = 320), random f32 weights, batch 4,
// a 77-token context. Prints the seconds of the forward and the backward, the achieved GFLOP/s
// against the FMA peak measured in the same run, and the time per training kernel.
//
//   node --import tsx bench/train-image-step.ts [--width 64] [--size 256] [--batch 4] [--ctx 256] [--steps 3] [--threads 2] [--lora]
//        [--peer [--python PY]]
//
// --peer also runs the same step in Hugging Face diffusers on PyTorch's CPU backend
// (scripts/oracle/unet_train_step.py: the same UNet2DConditionModel config, forward, MSE loss,
// backward, the same threads) with PY (default $ORACLE_PY, which `. ../shared/oracle/env.sh`
// sets) and prints the ratio of the best step times. Full training only (diffusers' LoRA needs peft).
//
// FLOPs: the forward's are unetFlops (2 per multiply-add of the convolutions, linears and the
// attention products); a full backward does twice that (dX and dW of every product; attention's
// backward does 5 products against the forward's 2, counted as 2x too), so a full step is 3x the
// forward, the usual convention. --lora freezes every weight except the attention projections
// (dW work skipped), and the step is then counted as 2x the forward plus the dW of those.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DiffWeights, TapeDiffOps, type DiffWeight } from '../src/diffusion/tape-ops.ts';
import { unetConfig, unetFlops, unetForward, unetParamShapes } from '../src/diffusion/unet.ts';
import { Tape, Var } from '../src/tensor/autograd.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { cpuTrainKernels } from '../src/tensor/train-cpu.ts';
import type { TrainKernels } from '../src/tensor/train-kernels.ts';

const { values: a } = parseArgs({
  options: {
    width: { type: 'string', default: '64' }, size: { type: 'string', default: '256' }, batch: { type: 'string', default: '4' },
    ctx: { type: 'string', default: '256' }, steps: { type: 'string', default: '3' }, threads: { type: 'string', default: '2' },
    lora: { type: 'boolean', default: false }, peer: { type: 'boolean', default: false }, python: { type: 'string', default: process.env.ORACLE_PY ?? 'python3' },
  },
});
const w = Number(a.width), size = Number(a.size), B = Number(a.batch), ctxDim = Number(a.ctx), steps = Number(a.steps);
const cpu = cpuBackend();
cpu.setThreads(Number(a.threads));

const cfg = unetConfig({
  block_out_channels: [w, 2 * w, 4 * w, 4 * w],
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  cross_attention_dim: ctxDim,
  attention_head_dim: 8,
});

let seed = 1;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const trainable = (n: string) => !a.lora || /attn[12]\.to_(q|k|v|out\.0)\.weight$/.test(n);
const m = new Map<string, DiffWeight>();
let nParams = 0, nTrain = 0, loraFlops = 0;
const h = size / 8;
for (const [name, shape] of unetParamShapes(cfg)) {
  const s = shape.length === 4 ? [shape[0]!, shape[2]!, shape[3]!, shape[1]!] : shape; // [Co, kh, kw, Ci]
  const n = s.reduce((x, y) => x * y, 1);
  nParams += n;
  const v = new Float32Array(n);
  const sc = shape.length === 1 ? 0.1 : 1 / Math.sqrt(n / shape[0]!);
  for (let i = 0; i < n; i++) v[i] = (/norm\d?\.weight$/.test(name) ? 1 : 0) + rnd() * sc;
  if (trainable(name)) nTrain += n;
  m.set(name, { name, v: trainable(name) ? Var.param(v, s) : new Var(v, s, false) });
}
if (a.lora) {
  // dW of the trainable projections: 2 * rows * out * in per use (rows = pixels, or 77 context tokens for attn2 k/v)
  const level = (name: string) => {
    const mm = /^(down|up)_blocks\.(\d)/.exec(name);
    if (!mm) return 3; // mid block: the smallest latents
    return mm[1] === 'down' ? Number(mm[2]) : 3 - Number(mm[2]);
  };
  for (const [name, dw] of m) {
    if (!trainable(name)) continue;
    const px = (h >> level(name)) ** 2;
    const rows = /attn2\.to_[kv]/.test(name) ? 77 : px;
    loraFlops += 2 * B * rows * dw.v.size;
  }
}
const p = new DiffWeights('unet', m);

// timing per training kernel
const times = new Map<string, number>();
const k0 = cpuTrainKernels();
const k = new Proxy(k0 as TrainKernels, {
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

const sampleData = Float32Array.from({ length: B * h * h * 4 }, rnd);
const ctxData = Float32Array.from({ length: B * 77 * ctxDim }, rnd);
const fwdFlops = unetFlops(cfg, B, h, h, 77);
const stepFlops = a.lora ? 2 * fwdFlops + loraFlops : 3 * fwdFlops;
const peak = cpu.fmaPeakGflops();
console.log(
  `UNet, scaled SD 1.5 shape (block_out ${cfg.blockOutChannels.join('/')}): ${(nParams / 1e6).toFixed(1)}M params, ${(nTrain / 1e6).toFixed(2)}M trainable${a.lora ? ' (attention projections: --lora)' : ''}; ` +
    `batch ${B}, latents ${h}x${h}, context 77x${ctxDim}; ${(stepFlops / 1e9).toFixed(1)} GFLOP per step (forward ${(fwdFlops / 1e9).toFixed(1)}); ${cpu.threads} threads, ${cpu.isa}, FMA peak now ${peak.toFixed(1)} GFLOP/s`,
);
const t = new Tape(k);
const res: { fwd: number; bwd: number }[] = [];
for (let s = 0; s < steps; s++) {
  times.clear();
  const t0 = performance.now();
  const sample = t.act([B, h, h, 4], false);
  sample.data.set(sampleData);
  const context = t.act([B, 77, ctxDim], false);
  context.data.set(ctxData);
  const out = unetForward(new TapeDiffOps(t), cfg, p, { sample, timesteps: Array.from({ length: B }, (_, i) => 999 - 250 * i), context });
  const t1 = performance.now();
  out.grad = t.arena.get(out.size);
  for (let i = 0; i < out.size; i++) out.grad[i] = (2 * (out.data[i]! - sampleData[i]!)) / out.size; // MSE against the sample as a stand-in target
  out.gradInit = true;
  t.backward();
  const t2 = performance.now();
  t.reset();
  for (const dw of m.values()) if (dw.v.grad) dw.v.grad.fill(0);
  const fwd = (t1 - t0) / 1e3, bwd = (t2 - t1) / 1e3, all = fwd + bwd;
  res.push({ fwd, bwd });
  const split = [...times].sort((x, y) => y[1] - x[1]).slice(0, 10).map(([n, v]) => `${n} ${(v / 1e3).toFixed(2)}s`).join(', ');
  console.log(
    `step ${s}: forward ${fwd.toFixed(2)} s + backward ${bwd.toFixed(2)} s = ${all.toFixed(2)} s, ${(stepFlops / all / 1e9).toFixed(1)} GFLOP/s = ${((stepFlops / all / 1e9 / peak) * 100).toFixed(0)}% of the FMA peak; arena ${(t.arena.bytes / 2 ** 30).toFixed(2)} GiB (${split})`,
  );
}
const best = res.reduce((x, y) => (x.fwd + x.bwd <= y.fwd + y.bwd ? x : y));
console.log(JSON.stringify({
  width: w, size, batch: B, lora: a.lora, threads: cpu.threads, isa: cpu.isa, forward_s: +best.fwd.toFixed(3), backward_s: +best.bwd.toFixed(3),
  step_gflops: +(stepFlops / (best.fwd + best.bwd) / 1e9).toFixed(1), fma_peak_gflops: +peak.toFixed(1),
}));

if (a.peer) {
  if (a.lora) throw new Error('--peer compares full training steps: drop --lora');
  const script = join(import.meta.dirname, '..', 'scripts', 'oracle', 'unet_train_step.py');
  const args = ['--width', String(w), '--size', String(size), '--batch', String(B), '--ctx', String(ctxDim), '--steps', String(steps), '--threads', String(cpu.threads)];
  const r = spawnSync(a.python!, [script, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`the diffusers peer failed (${a.python} ${script}; set ORACLE_PY or --python): ${(r.stderr || String(r.error)).slice(-600)}`);
  const peer = JSON.parse(r.stdout.trim().split('\n').pop()!) as { diffusers: string; torch: string; params: number; best_forward_s: number; best_backward_s: number };
  if (peer.params !== nParams) console.log(`note: diffusers' UNet has ${peer.params} parameters against ${nParams} here`);
  const ours = best.fwd + best.bwd, theirs = peer.best_forward_s + peer.best_backward_s;
  console.log(
    `diffusers ${peer.diffusers} (torch ${peer.torch}, CPU, ${cpu.threads} threads), the same step: forward ${peer.best_forward_s.toFixed(2)} s + backward ${peer.best_backward_s.toFixed(2)} s = ${theirs.toFixed(2)} s, ` +
      `${(stepFlops / theirs / 1e9).toFixed(1)} GFLOP/s; Slipstream ${ours.toFixed(2)} s: ${(theirs / ours).toFixed(2)}x faster`,
  );
}

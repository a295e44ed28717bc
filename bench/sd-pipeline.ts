// A whole `slipstream image` run in a real Stable Diffusion shape, end to end, against diffusers.
//
//   npm run bench:sd-pipeline -- [--family sd1|sd2|sdxl] [--size 512] [--steps 20]
//        [--scheduler dpm++-2m] [--guidance 7.5] [--dtype f16|f32] [--threads 2] [--peer] [--peer-steps 2]
//        [--prepare]   (only write the folder)
//
// The first run writes a diffusers folder with random weights in the family's standard shape
// (SD 1.5: UNet 860M, CLIP ViT-L; SD 2.x: OpenCLIP ViT-H; SDXL base: UNet 2.6B and two text
// encoders; configs from src/formats/sd-checkpoint.ts, weights in --dtype as an fp16 variant
// would hold them) under bench/out/sd-random/. Then it runs the CLI as a user would, in a child
// process under /usr/bin/time: load, prompt encoding, every denoising step and the VAE decode,
// the PNG written. It prints the CLI's own timing line, the wall time and the peak resident
// memory of the process, and the FMA peak of this machine measured in the same run.
//
// --peer (SD 1.5 shape only): diffusers 0.27.2 on PyTorch CPU from ../shared/oracle, the same
// shape, 2 threads, batch 2 with guidance, DPM-Solver++ (diffusers_bench.py): it runs
// --peer-steps UNet steps and the VAE decode and states the whole picture at our step count as
// text encode + steps x its median step + decode (its own estimate, from the same run).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { clipTextConfig } from '../src/diffusion/clip-text.ts';
import { clipTextParamShapes, randomInit, vaeParamShapes } from '../src/diffusion/train/init.ts';
import { writeDiffusersFolder, type ComponentWeights } from '../src/diffusion/train/export.ts';
import { TrainRng } from '../src/train/rng.ts';
import { unetConfig, unetParamShapes } from '../src/diffusion/unet.ts';
import { vaeConfig } from '../src/diffusion/vae.ts';
import { standardConfigs, type SdFamily } from '../src/formats/sd-checkpoint.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const { values: a } = parseArgs({
  options: {
    family: { type: 'string', default: 'sd1' },
    size: { type: 'string' },
    steps: { type: 'string', default: '20' },
    scheduler: { type: 'string', default: 'dpm++-2m' },
    guidance: { type: 'string', default: '7.5' },
    dtype: { type: 'string', default: 'f16' },
    threads: { type: 'string', default: '2' },
    peer: { type: 'boolean', default: false },
    'peer-steps': { type: 'string', default: '2' },
    prepare: { type: 'boolean', default: false },
  },
});
const family = a.family as SdFamily;
if (!['sd1', 'sd2', 'sdxl'].includes(family)) throw new Error(`--family must be sd1, sd2 or sdxl, got ${a.family}`);
const dtype = a.dtype === 'f32' ? 'F32' : a.dtype === 'f16' ? 'F16' : (() => { throw new Error(`--dtype must be f16 or f32, got ${a.dtype}`); })();
const size = Number(a.size ?? (family === 'sdxl' ? 1024 : 512));
const root = join(import.meta.dirname, '..');
const dir = join(root, 'bench', 'out', 'sd-random', `${family}-${a.dtype}`);

/** The diffusers folder of the family's standard configs with random weights (written once). */
function buildFolder(): void {
  if (existsSync(join(dir, 'model_index.json'))) return;
  const c = standardConfigs(family);
  // the configs and tokenizers (the export copies them from here), then the folder
  const src = `${dir}.src`, tmp = `${dir}.tmp`;
  for (const d of [src, tmp]) rmSync(d, { recursive: true, force: true });
  mkdirSync(join(src, 'scheduler'), { recursive: true });
  const two = !!c.textEncoder2;
  const index = {
    _class_name: two ? 'StableDiffusionXLPipeline' : 'StableDiffusionPipeline',
    scheduler: ['diffusers', c.scheduler._class_name],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    ...(two ? { text_encoder_2: ['transformers', 'CLIPTextModelWithProjection'], tokenizer_2: ['transformers', 'CLIPTokenizer'] } : {}),
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  };
  writeFileSync(join(src, 'model_index.json'), JSON.stringify(index, null, 2));
  writeFileSync(join(src, 'scheduler', 'scheduler_config.json'), JSON.stringify(c.scheduler, null, 2));
  const clip = (f: string) => gunzipSync(readFileSync(join(root, 'assets', 'clip', f)));
  for (const [sub, tc] of [['tokenizer', c.tokenizerConfig], ['tokenizer_2', c.tokenizer2Config]] as const) {
    if (!tc) continue;
    mkdirSync(join(src, sub));
    writeFileSync(join(src, sub, 'vocab.json'), clip('vocab.json.gz'));
    writeFileSync(join(src, sub, 'merges.txt'), clip('merges.txt.gz'));
    writeFileSync(join(src, sub, 'tokenizer_config.json'), JSON.stringify(tc, null, 2));
  }
  // One component at a time (SDXL's UNet alone is 10 GB in f32), each from its own generator.
  const comps: [string, Record<string, unknown>, Map<string, number[]>][] = [
    ['unet', c.unet, unetParamShapes(unetConfig(c.unet))],
    ['vae', c.vae, vaeParamShapes(vaeConfig(c.vae))],
    ['text_encoder', c.textEncoder, clipTextParamShapes(clipTextConfig(c.textEncoder))],
  ];
  if (c.textEncoder2) comps.push(['text_encoder_2', c.textEncoder2, clipTextParamShapes(clipTextConfig(c.textEncoder2))]);
  comps.forEach(([sub, cfg, shapes], i) => {
    const t0 = performance.now();
    const w = randomInit(shapes, new TrainRng(1000 + i));
    // inference layout: convolutions [Co, kh, kw, Ci] (random values, so only the shape moves)
    const weights: ComponentWeights = new Map([...w].map(([n, d]) => {
      const s = shapes.get(n)!;
      return [n, { shape: s.length === 4 ? [s[0]!, s[2]!, s[3]!, s[1]!] : s, data: d }];
    }));
    writeDiffusersFolder(tmp, { source: src, configs: { [sub]: cfg }, weights: { [sub]: weights }, dtype });
    const n = [...w.values()].reduce((s, d) => s + d.length, 0);
    console.log(`wrote ${sub}: ${(n / 1e6).toFixed(0)}M parameters (${a.dtype}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  rmSync(src, { recursive: true, force: true });
}

buildFolder();
if (a.prepare) process.exit(0);
const cpu = cpuBackend();
cpu.setThreads(Number(a.threads));
const peak = cpu.fmaPeakGflops();
const cpuName = cpus()[0]?.model.trim() ?? 'unknown CPU';
console.log(`${family} shape, ${size}x${size}, ${a.steps} steps ${a.scheduler}, guidance ${a.guidance}, ${a.dtype} weights; ${a.threads} threads on ${cpuName} (${cpu.isa}), FMA peak now ${peak.toFixed(1)} GFLOP/s`);

const out = join(root, 'bench', 'out', `sd-pipeline-${family}.png`);
const cli = ['--import', 'tsx', join(root, 'src', 'cli', 'main.ts'), 'image', '-m', dir, '-p', 'a photograph of an astronaut riding a horse', '--steps', a.steps!, '--scheduler', a.scheduler!, '--guidance', a.guidance!, '--seed', '1', '--width', String(size), '--height', String(size), '--threads', a.threads!, '--no-progress', '-o', out];
const r = spawnSync('/usr/bin/time', ['-f', 'TIME %e %M', process.execPath, ...cli], { encoding: 'utf8', maxBuffer: 1 << 26 });
const err = r.stderr ?? '';
const line = err.split('\n').find((l) => l.startsWith('slipstream: 1 image')) ?? '';
const tm = /TIME ([\d.]+) (\d+)/.exec(err);
if (r.status !== 0 || !tm) throw new Error(`slipstream image failed (status ${r.status}):\n${err.slice(-2000)}`);
const wall = Number(tm[1]), rssMiB = Number(tm[2]) / 1024;
const gen = Number(/generation ([\d.]+) s/.exec(line)?.[1] ?? NaN), load = Number(/load ([\d.]+) s/.exec(line)?.[1] ?? NaN);
console.log(line);
console.log(`slipstream image: ${wall.toFixed(1)} s wall (whole process: start, load ${load} s, generation ${gen} s, PNG), peak resident ${rssMiB.toFixed(0)} MiB`);
const res: Record<string, unknown> = { family, size, steps: Number(a.steps), scheduler: a.scheduler, dtype: a.dtype, threads: Number(a.threads), cpu: cpuName, isa: cpu.isa, fma_peak_gflops: +peak.toFixed(1), wall_s: wall, load_s: load, generation_s: gen, peak_rss_MiB: Math.round(rssMiB) };

if (a.peer) {
  if (family !== 'sd1') throw new Error('--peer: diffusers_bench.py builds the SD 1.5 shape only');
  const env = join(root, '..', 'shared', 'oracle', 'env.sh');
  const script = join(root, '..', 'shared', 'oracle', 'diffusers_bench.py');
  const py = execFileSync('bash', ['-c', `. "${env}" >/dev/null 2>&1 && "$ORACLE_PY" "${script}" --size ${size} --steps ${a['peer-steps']} --threads ${a.threads}`], { encoding: 'utf8', maxBuffer: 1 << 24 });
  const p = JSON.parse(py.trim().split('\n').pop()!) as { text_s: number; unet_step_median_s: number; vae_decode_s: number; peak_rss_MiB: number; peer: string };
  const est = p.text_s + Number(a.steps) * p.unet_step_median_s + p.vae_decode_s;
  console.log(`peer ${p.peer}: UNet step ${p.unet_step_median_s} s (median of ${a['peer-steps']}), VAE decode ${p.vae_decode_s} s, text ${p.text_s} s -> ${a.steps} steps ≈ ${est.toFixed(1)} s (model build excluded), peak resident ${p.peak_rss_MiB} MiB`);
  console.log(`ratio: diffusers ${est.toFixed(1)} s / slipstream ${wall.toFixed(1)} s wall = ${(est / wall).toFixed(2)}x faster (slipstream's figure includes process start, load and the PNG); memory ${(rssMiB / p.peak_rss_MiB).toFixed(2)}x diffusers'`);
  Object.assign(res, { peer: p.peer, peer_unet_step_s: p.unet_step_median_s, peer_vae_decode_s: p.vae_decode_s, peer_total_est_s: +est.toFixed(1), peer_peak_rss_MiB: p.peak_rss_MiB, speedup: +(est / wall).toFixed(2), memory_ratio: +(rssMiB / p.peak_rss_MiB).toFixed(2) });
}
console.log(JSON.stringify(res));

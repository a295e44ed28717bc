// Rebuilds Slipstream's default image model from nothing but this repository:
//
//   npm run recipe:default-image                 (every stage)
//   node --import tsx recipes/default-image/build.ts [--stage skeleton|data|vae|unet|export|eval|all]
//
//   1. skeleton  out/model: the CLIP-subset tokenizer and the component configs (stages.ts)
//   2. data      out/data: an imagefolder of generated scenes (scenes.ts; training split only)
//   3. vae       out/vae-run: the AutoencoderKL trained on those pictures (reconstruction + KL,
//                src/diffusion/train/vae-trainer.ts), written into out/model/vae with its
//                scaling_factor measured on the latents
//   4. unet      out/unet-run: `slipstream train-image --from-scratch out/model --train-text-encoder`
//                on out/data: the UNet and the text encoder trained together
//   5. export    models/default-image: f16 weights + configs + tokenizer
//   6. eval      prompt adherence on held-out captions (evaluate.ts), a sample grid
//
// Every stage resumes: run it again after an interruption and it continues from its last
// checkpoint. Stages are deterministic for the seeds here.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDataset, buildModelSkeleton, built, DATA_DIR, DATA_SEED, IMAGE_SIZE, MODEL_DIR, modelConfigs, OUT_DIR, RECIPE_DIR } from './stages.ts';
import { examples } from './scenes.ts';

/** Pictures the VAE and the UNet see (the dataset stage writes them; the VAE draws the same scenes). */
export const DATA_COUNT = 20_000;
/** The adherence measure: held-out prompts, sampler settings. */
export const EVAL = { prompts: 100, steps: 20, guidance: 4 };
export const VAE = { steps: 6000, batchSize: 8, crop: 32, lr: 1e-3, klWeight: 1e-4, seed: 1 };

const { values } = parseArgs({ options: { stage: { type: 'string', default: 'all' }, threads: { type: 'string' } } });
const stage = values.stage!;
const want = (s: string) => stage === 'all' || stage === s;
if (values.threads) (await import('../../src/tensor/runtime.ts')).setThreads(Number(values.threads));

if (want('skeleton') && !built.skeleton()) buildModelSkeleton(MODEL_DIR);
if (want('data') && !built.dataset()) buildDataset(DATA_COUNT, DATA_DIR, DATA_SEED);

if (want('vae')) {
  const { trainVae, latentStd, writeVaeFolder } = await import('../../src/diffusion/train/vae-trainer.ts');
  const { cpuTrainKernels } = await import('../../src/tensor/train-cpu.ts');
  const { createProgress } = await import('../../src/formats/progress.ts');
  const k = cpuTrainKernels();
  // The same scenes as the dataset, drawn again (cheaper than decoding the PNGs).
  const cache = new Map<number, Uint8Array>();
  const src = {
    count: DATA_COUNT,
    size: IMAGE_SIZE,
    get(i: number) {
      let p = cache.get(i);
      if (!p) cache.set(i, (p = examples(DATA_SEED, 'train', i, 1, IMAGE_SIZE)[0]!.pixels));
      return p;
    },
  };
  const config = modelConfigs(0).vae!;
  const bar = createProgress('vae', VAE.steps, { unit: 'steps' });
  const r = trainVae(k, src, { config, out: join(OUT_DIR, 'vae-run'), ...VAE, checkpointEvery: 100 }, {
    onStep: (s) => bar.update(s.step),
    onLog: (m) => console.log(m),
  });
  bar.stop();
  const std = latentStd(k, src, r.config, r.weights, 512);
  writeVaeFolder(join(MODEL_DIR, 'vae'), config, r.weights, 1 / std);
  console.log(`vae: reconstruction MSE ${r.finalRec.toFixed(5)} (pixels in [-1, 1]) after ${r.steps} steps; latent std ${std.toFixed(3)} -> scaling_factor ${(1 / std).toFixed(4)}`);
}

if (want("unet") && !existsSync(join(MODEL_DIR, 'vae', 'diffusion_pytorch_model.safetensors'))) {
  throw new Error('the unet stage needs the trained VAE: run --stage vae first');
}

/** The UNet + text encoder stage: `slipstream train-image` flags. */
export const UNET = {
  steps: 3500,
  batchSize: 32,
  lr: 5e-4,
  minLr: 5e-5,
  warmup: 200,
  captionDropout: 0.1,
  snrGamma: 5,
  seed: 1,
};
const UNET_RUN = join(OUT_DIR, 'unet-run');
/** Held-out prompts drawn in the sample grids while training. */
const SAMPLE_PROMPTS = examples(DATA_SEED, 'heldout', 0, 4, IMAGE_SIZE).map((e) => e.caption);

if (want('unet')) {
  const { trainImageCommand } = await import('../../src/cli/train-image.ts');
  await trainImageCommand({
    fromScratch: MODEL_DIR,
    trainTextEncoder: true,
    data: DATA_DIR,
    out: UNET_RUN,
    latents: 'mean',
    steps: String(UNET.steps),
    batchSize: String(UNET.batchSize),
    lr: String(UNET.lr),
    minLr: String(UNET.minLr),
    warmup: String(UNET.warmup),
    schedule: 'cosine',
    weightDecay: '0',
    snrGamma: String(UNET.snrGamma),
    captionDropout: String(UNET.captionDropout),
    seed: String(UNET.seed),
    checkpointEvery: '250',
    sampleEvery: '1000',
    samplePrompt: SAMPLE_PROMPTS,
    sampleSteps: '20',
    sampleGuidance: '4',
  });
}

const root = join(RECIPE_DIR, '..', '..');
export const DEFAULT_IMAGE_MODEL_DIR = join(root, 'models', 'default-image');

if (want('export')) {
  const { exportF16Folder } = await import('./export.ts');
  const bytes = exportF16Folder(join(UNET_RUN, 'model'), DEFAULT_IMAGE_MODEL_DIR);
  console.log(`export: ${DEFAULT_IMAGE_MODEL_DIR} (${(bytes / 1e6).toFixed(1)} MB of f16 weights)`);
}

if (want('eval')) {
  const { evaluateAdherence, sampleGridSvg, summary } = await import('./evaluate.ts');
  const { StableDiffusionPipeline } = await import('../../src/diffusion/pipeline.ts');
  const { cpuBackend } = await import('../../src/tensor/cpu.ts');
  const { svgToPng } = await import('../../src/util/chart.ts');
  const { writeFileSync } = await import('node:fs');
  const pipe = StableDiffusionPipeline.load(DEFAULT_IMAGE_MODEL_DIR, cpuBackend());
  const t0 = Date.now();
  const r = evaluateAdherence((prompt, seed) => pipe.generate({ prompt, seed, steps: EVAL.steps, guidance: EVAL.guidance }).images[0]!, EVAL.prompts);
  console.log(`eval: ${summary(r)} (${EVAL.steps} steps, guidance ${EVAL.guidance}, ${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  writeFileSync(join(DEFAULT_IMAGE_MODEL_DIR, 'samples.png'), await svgToPng(sampleGridSvg(r.samples.slice(0, 20)), 1));
  writeFileSync(join(DEFAULT_IMAGE_MODEL_DIR, 'eval.json'), JSON.stringify({ ...EVAL, prompts: r.prompts, adherence: r.adherence, background: r.background, colorsAndShapes: r.colorsAndShapes, counts: r.counts, relation: r.relation, first16: r.samples.slice(0, 16).filter((x) => x.adheres).length }, null, 2) + '\n');
}

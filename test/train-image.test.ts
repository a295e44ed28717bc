// `slipstream train-image` end to end on the tiny SD 1 / SDXL fixture pipelines and a folder of
// four generated pictures: the loss goes down; a run killed with SIGKILL resumes on the same loss
// curve (EMA, min-SNR, offset noise, sampled latents and caption dropout included, so every draw is replayed);
// a trained LoRA written to a file and merged by the inference side (readSdLora / applyLoras)
// gives the UNet output of the in-memory adapters; full fine-tuning exports a diffusers folder
// and a single file that load back with the trained weights; from-scratch training from config
// files; SDXL's cached pooled embeddings and time ids; bad input is one clear line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { trainImageConfig } from '../src/cli/train-image.ts';
import { applyLoras, readSdLora } from '../src/diffusion/lora.ts';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { BackendDiffOps, type Params } from '../src/diffusion/ops.ts';
import { loadStableDiffusionSingleFile } from '../src/diffusion/single-file.ts';
import { TapeDiffOps } from '../src/diffusion/tape-ops.ts';
import { captionRows, fixedNoiseLoss, runImageTraining, setupImageTraining, type ImageTrainSetup, type TrainImageConfig } from '../src/diffusion/train/trainer.ts';
import { unetForward, type UNetConfig } from '../src/diffusion/unet.ts';
import { writePng } from '../src/formats/image.ts';
import { Tape } from '../src/tensor/autograd.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { CpuTrainKernels } from '../src/tensor/train-cpu.ts';
import { TrainRng } from '../src/train/rng.ts';
import { encodeCaption, pipelineTokenizers } from '../src/diffusion/train/cache.ts';
import { runVaeStage } from '../src/diffusion/train/vae-stage.ts';
import { imageToUnit, loadTrainImage } from '../src/diffusion/train/data.ts';
import { latentDist, vaeEncode } from '../src/diffusion/vae.ts';
import { signalAfterSteps } from './helpers/train-run.ts';

const PIPES = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline');
const SD1 = join(PIPES, 'sd1');
const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
const env = { ...process.env, SLIPSTREAM_THREADS: '2' };
const cli = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
const be = cpuBackend();
const k = new CpuTrainKernels();

let root: string, data: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-train-image-'));
  data = join(root, 'data');
  mkdirSync(data);
  const cols: [string, number[]][] = [['red', [220, 30, 30]], ['blue', [30, 30, 220]], ['green', [30, 200, 30]], ['yellow', [230, 220, 40]]];
  const lines = cols.map(([name, c], i) => {
    const img = new Uint8Array(40 * 32 * 3);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 40; x++) img.set((x - 20) ** 2 + (y - 16) ** 2 < 80 ? c : [240, 240, 240], (y * 40 + x) * 3);
    writePng(join(data, `${i}.png`), { width: 40, height: 32, data: img });
    return JSON.stringify({ file_name: `${i}.png`, text: `a ${name} circle` });
  });
  writeFileSync(join(data, 'metadata.jsonl'), lines.join('\n') + '\n');
});
after(() => rmSync(root, { recursive: true, force: true }));

const config = (out: string, flags: Record<string, string | boolean | string[]> = {}): TrainImageConfig =>
  trainImageConfig({ model: SD1, data, out: join(root, out), steps: '6', batchSize: '2', checkpointEvery: '0', ...flags });

/** The UNet's output for a fixed input: on the tape with the run's weights (and LoRA hook), or on the backend with loaded weights. */
function probe(cfg: UNetConfig): { sample: Float32Array; ctx: Float32Array } {
  const rng = new TrainRng(11);
  const sample = new Float32Array(16 * 16 * 4), ctx = new Float32Array(77 * cfg.crossAttentionDim);
  rng.fillNormal(sample, 1);
  rng.fillNormal(ctx, 1);
  return { sample, ctx };
}
function tapeOut(su: ImageTrainSetup): Float32Array {
  const t = new Tape(k);
  t.recording = false;
  const cfg = su.sd.unet.config, { sample, ctx } = probe(cfg);
  const o = new TapeDiffOps(t, su.lora ? su.lora.hook('unet') : undefined);
  return unetForward(o, cfg, su.unet!, { sample: o.constant(sample, [1, 16, 16, 4]), timesteps: [300], context: o.constant(ctx, [1, 77, cfg.crossAttentionDim]) }).data.slice();
}
function backendOut(cfg: UNetConfig, params: Params<Tensor>): Float32Array {
  const { sample, ctx } = probe(cfg);
  return unetForward(new BackendDiffOps(be), cfg, params, { sample: Tensor.fromF32(sample, [1, 16, 16, 4]), timesteps: [300], context: Tensor.fromF32(ctx, [1, 77, cfg.crossAttentionDim]) }).toF32();
}
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const losses = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);

describe('train-image', () => {
  test('full fine-tuning lowers the loss on fixed noise; the exports load back with the trained weights', async () => {
    const c = config('full', { steps: '12', batchSize: '4', lr: '5e-3', latents: 'mean', singleFile: true });
    const su = setupImageTraining(c, be);
    const before = fixedNoiseLoss(su, k, 123);
    const r = await runImageTraining(c, k, be, {}, su);
    const afterLoss = fixedNoiseLoss(su, k, 123);
    assert.equal(r.history.length, 12);
    assert.ok(afterLoss < before * 0.95, `fixed-noise loss ${before} -> ${afterLoss}`);
    assert.deepEqual(r.outputs, [join(c.out, 'model'), join(c.out, 'model.safetensors')]);
    const mem = tapeOut(su);
    const folder = loadStableDiffusion(join(c.out, 'model'));
    assert.ok(maxDiff(backendOut(folder.unet.config, folder.unet.params), mem) < 1e-4, 'diffusers folder');
    const single = loadStableDiffusionSingleFile(join(c.out, 'model.safetensors'), { config: SD1 });
    assert.ok(maxDiff(backendOut(single.unet.config, single.unet.params), mem) < 1e-4, 'single file');
    const base = loadStableDiffusion(SD1);
    assert.ok(maxDiff(backendOut(base.unet.config, base.unet.params), mem) > 1e-3, 'training changed the UNet');
    // the cache is reused by a second run on the same data and model
    assert.equal(setupImageTraining(c, be).cache!.reused, true);
  });

  test('LoRA: the PEFT and kohya files, merged by `image --lora`, give the in-memory adapted UNet', async () => {
    const c = config('lora', { loraRank: '4', loraAlpha: '8', lr: '1e-2', steps: '4' });
    const su = setupImageTraining(c, be);
    const r = await runImageTraining(c, k, be, {}, su);
    assert.deepEqual(r.outputs, [join(c.out, 'lora.safetensors'), join(c.out, 'lora-kohya.safetensors')]);
    const mem = tapeOut(su);
    const base = loadStableDiffusion(SD1);
    assert.ok(maxDiff(backendOut(base.unet.config, base.unet.params), mem) > 1e-5, 'the adapters moved');
    for (const file of r.outputs) {
      const sd = loadStableDiffusion(SD1);
      applyLoras(sd, [{ file, scale: 1 }], be);
      assert.ok(maxDiff(backendOut(sd.unet.config, sd.unet.params), mem) < 1e-5, file);
    }
    // and the image command takes it
    const img = cli('image', '-m', SD1, '-p', 'a red circle', '--steps', '2', '--seed', '1', '--lora', r.outputs[0]!, '-o', join(root, 'lora.png'), '--no-progress');
    assert.equal(img.status, 0, img.stderr);
  });

  test('kill -9 mid-run, rerun: resumes from the last checkpoint on the same loss curve', { timeout: 120_000 }, async () => {
    const flags = ['-m', SD1, '-d', data, '--steps', '8', '--batch-size', '2', '--lora-rank', '2', '--train-text-encoder', '--lr', '5e-3', '--checkpoint-every', '2',
      '--ema', '0.9', '--snr-gamma', '5', '--noise-offset', '0.05', '--latents', 'sample', '--caption-dropout', '0.3', '--seed', '3'];
    const fullOut = join(root, 'runs', 'whole');
    const a = cli('train-image', ...flags, '-o', fullOut, '--sample-prompt', 'a red circle', '--sample-prompt', 'a blue circle', '--sample-steps', '2', '--plot', join(root, 'curve.png'));
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stderr, /done, loss [\d.]+; .*lora\.safetensors/);
    assert.equal(readFileSync(join(root, 'curve.png')).subarray(1, 4).toString(), 'PNG');
    assert.equal(readFileSync(join(fullOut, 'samples', 'step-00000008.png')).subarray(1, 4).toString(), 'PNG');
    const want = losses(fullOut);
    assert.equal(want.length, 8);
    // the text encoder's adapters are in both files, and the inference side resolves every pair
    for (const f of ['lora.safetensors', 'lora-kohya.safetensors']) {
      const pairs = readSdLora(join(fullOut, f), loadStableDiffusion(SD1)).pairs;
      assert.equal(pairs.filter((p) => p.component === 'text_encoder').length, 2 * 4, f);
      assert.equal(pairs.filter((p) => p.component === 'unet').length, 32, f);
    }

    const out = join(root, 'runs', 'cut');
    await signalAfterSteps(['train-image', ...flags, '-o', out], out, 5, 'SIGKILL', env);
    const b = cli('train-image', ...flags, '-o', out);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, /resuming from .*step-0+(2|4|6)\b/);
    assert.match(b.stderr, /latents read from the cache/);
    assert.deepEqual(losses(out), want);
  });

  test('SIGTERM mid-run: a checkpoint at the step reached, the plot, one summary line, exit 0; the rerun resumes', { timeout: 120_000 }, async () => {
    const flags = ['-m', SD1, '-d', data, '--batch-size', '2', '--lora-rank', '2', '--lr', '5e-3', '--checkpoint-every', '0', '--seed', '4'];
    const out = join(root, 'runs', 'term');
    const { code, stderr } = await signalAfterSteps(['train-image', ...flags, '--steps', '400', '-o', out], out, 3, 'SIGTERM', env);
    assert.equal(code, 0, stderr);
    const m = /stopped by SIGTERM at step (\d+)\/400, loss [\d.]+; checkpoint in .*; rerun the same command to resume/.exec(stderr);
    assert.ok(m, stderr);
    const step = Number(m[1]);
    assert.equal(losses(out).length, step, 'the log ends at the step reached');
    assert.ok(existsSync(join(out, 'checkpoints', `step-${String(step).padStart(8, '0')}`)), `a checkpoint at step ${step}`);
    assert.equal(readFileSync(join(out, 'loss.png')).subarray(1, 4).toString(), 'PNG');
    assert.ok(!existsSync(join(out, 'train.lock')), 'the lock is released');
    assert.ok(!existsSync(join(out, 'lora.safetensors')), 'no export from a stopped run');
    assert.doesNotMatch(stderr, /\n\s+at /);
    const b = cli('train-image', ...flags, '--steps', String(step + 2), '-o', out);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, new RegExp(`resuming from .*step-0*${step}\\b`));
    assert.equal(losses(out).length, step + 2);
    assert.ok(existsSync(join(out, 'lora.safetensors')));
  });

  test('from scratch: a VAE trained first (its scaling factor measured), then the UNet and text encoder together', async () => {
    // a config folder: configs, tokenizer, scheduler, no weights at all
    const cfgDir = join(root, 'scratch-config');
    mkdirSync(cfgDir);
    for (const f of ['model_index.json', 'scheduler', 'tokenizer']) cpSync(join(SD1, f), join(cfgDir, f), { recursive: true });
    for (const f of ['unet', 'text_encoder', 'vae']) {
      mkdirSync(join(cfgDir, f));
      cpSync(join(SD1, f, 'config.json'), join(cfgDir, f, 'config.json'));
    }
    // stage 1: the VAE (vae-trainer.ts through the CLI's --train-vae); the loss goes down
    const c1 = trainImageConfig({ fromScratch: cfgDir, data, out: join(root, 'scratch-vae'), steps: '15', batchSize: '4', lr: '3e-3', warmup: '0', trainVae: true, checkpointEvery: '0' });
    const r1 = runVaeStage(c1, k);
    const l = r1.history.map((h) => h.loss);
    assert.ok(l.slice(-3).reduce((a, b) => a + b) < 0.8 * l.slice(0, 3).reduce((a, b) => a + b), `VAE loss ${l.map((x) => x.toFixed(3))}`);
    const vaeCfg = JSON.parse(readFileSync(join(r1.modelDir, 'vae', 'config.json'), 'utf8')) as { scaling_factor: number };
    assert.ok(Math.abs(vaeCfg.scaling_factor - r1.scalingFactor) < 1e-9 && vaeCfg.scaling_factor !== 0.18215, `scaling_factor ${vaeCfg.scaling_factor}`);
    assert.ok(existsSync(join(r1.modelDir, 'tokenizer', 'vocab.json')) && !existsSync(join(r1.modelDir, 'unet', 'diffusion_pytorch_model.safetensors')));

    // stage 2: the trained VAE's folder as the config folder: UNet and text encoder from random weights
    const c = trainImageConfig({ fromScratch: r1.modelDir, data, out: join(root, 'scratch'), steps: '3', batchSize: '2', trainTextEncoder: true, checkpointEvery: '0' });
    const su = setupImageTraining(c, be);
    assert.deepEqual(su.warnings, []);
    assert.ok(su.trainable.has('text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight'));
    assert.equal(su.cache.context, null, 'a trained text encoder needs no cached embeddings');
    const r = await runImageTraining(c, k, be, {}, su);
    const back = loadStableDiffusion(r.outputs[0]!);
    assert.ok(maxDiff(backendOut(back.unet.config, back.unet.params), tapeOut(su)) < 1e-4);
    const name = 'text_model.encoder.layers.0.self_attn.q_proj.weight';
    assert.deepEqual(back.textEncoder.params.get(name).toF32(), su.text!.get(name).v.data);
    assert.equal(back.vae.config.scalingFactor, vaeCfg.scaling_factor);
  });

  test('SDXL: pooled embeddings and time ids from the cache', async () => {
    const c = trainImageConfig({ model: join(PIPES, 'sdxl'), data, out: join(root, 'sdxl'), steps: '2', batchSize: '2', loraRank: '2', checkpointEvery: '0' });
    const su = setupImageTraining(c, be);
    const cache = su.cache!;
    assert.ok(cache.pooled && cache.timeIds);
    // 40x32 pictures: original size (32, 40), the centre crop's left edge 4 px in (scaled to the resolution)
    const res = su.resolution;
    assert.deepEqual([...cache.timeIds.subarray(0, 6)], [32, 40, 0, Math.round(4 * res / 32), res, res]);
    const r = await runImageTraining(c, k, be, {}, su);
    assert.ok(Number.isFinite(r.finalLoss));
    assert.ok(existsSync(join(c.out, 'lora-kohya.safetensors')));
  });

  test('captions: shared captions map to one row, row 0 is the empty caption, dropout picks it', () => {
    const d = join(root, 'shared');
    mkdirSync(d);
    for (const [i, cap] of ['a red circle', 'a blue circle', 'a red circle'].entries()) {
      cpSync(join(data, `${i}.png`), join(d, `${i}.png`));
      writeFileSync(join(d, `${i}.txt`), cap);
    }
    const su = setupImageTraining(config('shared', { data: d, batchSize: '1' }), be);
    const cache = su.cache!;
    assert.deepEqual([...cache.caption], [1, 2, 1]);
    assert.equal(cache.U, 3);
    // row 0: the embedding of "" as the pipeline encodes it
    const { tok } = pipelineTokenizers(su.sd);
    const empty = encodeCaption(new BackendDiffOps(be), su.sd, tok, null, '');
    assert.deepEqual(cache.context!.subarray(0, cache.T * cache.D), empty.context);
    // the latents (encoded in batches) are the VAE's mean of each picture alone
    const r = su.resolution, per = cache.h * cache.w * cache.C;
    const alone = latentDist(vaeEncode(new BackendDiffOps(be), su.sd.vae.config, su.sd.vae.params, Tensor.fromF32(imageToUnit(loadTrainImage(join(d, '2.png'), r)), [1, r, r, 3]))).mean.toF32();
    assert.ok(maxDiff(cache.mean.subarray(2 * per, 3 * per), alone) < 1e-5);
    assert.deepEqual(captionRows(cache, [0, 1, 2], 0, new TrainRng(1)), [1, 2, 1]);
    assert.deepEqual(captionRows(cache, [0, 1, 2], 1, new TrainRng(1)), [0, 0, 0]);
    const rows = captionRows(cache, Array.from({ length: 400 }, (_, i) => i % 3), 0.25, new TrainRng(2));
    const dropped = rows.filter((r) => r === 0).length;
    assert.ok(dropped > 70 && dropped < 130, `${dropped} of 400 dropped at p = 0.25`);
  });

  test('bad input: one line naming the problem', () => {
    const noCap = join(root, 'nocap');
    mkdirSync(noCap);
    cpSync(join(data, '0.png'), join(noCap, 'a.png'));
    const bad = join(root, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'x.png'), 'not a picture');
    writeFileSync(join(bad, 'x.txt'), 'a caption');
    const cases: [Record<string, string | boolean>, RegExp][] = [
      [{ data: join(root, 'missing') }, /--data .*missing: no such folder/],
      [{ data: noCap }, /a\.png: no caption .*--instance-prompt/],
      [{ data: bad }, /cannot use training image .*x\.png: .*not a PNG or JPEG/],
      [{ latents: 'both' }, /--latents must be mean or sample/],
      [{ resolution: '18' }, /--resolution must be a positive multiple of 4 for this model, got 18/],
      [{ batchSize: '9' }, /--batch-size 9 is larger than the dataset \(4 images\)/],
      [{ loraRank: '0' }, /--lora-rank must be an integer >= 1, got "0"/],
      [{ model: join(PIPES, 'sdxl'), singleFile: true }, /--single-file exports only the SD 1.x single-file layout/],
    ];
    for (const [flags, re] of cases) {
      assert.throws(() => setupImageTraining(config(join('err', String(Math.random())), { steps: '1', batchSize: '1', ...flags }), be), re, JSON.stringify(flags));
    }
    // as the command line shows it: one line, no stack, non-zero exit
    const r = cli('train-image', '-m', SD1, '-d', noCap, '-o', join(root, 'err', 'cli'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^slipstream: error: .*a\.png: no caption/);
    assert.doesNotMatch(r.stderr, /\n\s+at |unexpected/);
    const help = cli('train-image', '--help');
    assert.equal(help.status, 0, help.stderr);
    assert.doesNotMatch(help.stdout, /\(default: "-?\d+(\.\d+)?(e-?\d+)?"\)/, 'numeric defaults are unquoted');
    assert.match(help.stdout, /\nExamples:\n {2}\$ slipstream train-image /);
  });
});

// The VAE training stage (src/diffusion/train/vae-trainer.ts): the reparameterised sample's
// gradient (with the KL term) against finite differences, the loss going down on scene pictures,
// a resumed run on the same loss curve as an uninterrupted one, and the exported folder read back
// by the inference VAE with the same reconstruction.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ComponentParams } from '../src/diffusion/load.ts';
import { BackendDiffOps } from '../src/diffusion/ops.ts';
import { latentStd, sampleLatent, trainVae, writeVaeFolder, type PictureSource } from '../src/diffusion/train/vae-trainer.ts';
import { vaeConfig, vaeDecode, vaeEncode } from '../src/diffusion/vae.ts';
import { openSafetensorsCheckpoint } from '../src/formats/safetensors.ts';
import { Tape, Var } from '../src/tensor/autograd.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { cpuTrainKernels } from '../src/tensor/train-cpu.ts';
import { RefTrainKernels } from '../src/tensor/train-ref.ts';
import { examples } from '../recipes/default-image/scenes.ts';

const tmp = mkdtempSync(join(tmpdir(), 'train-vae-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const CONFIG = {
  _class_name: 'AutoencoderKL', block_out_channels: [8, 16], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], in_channels: 3, out_channels: 3, latent_channels: 4, layers_per_block: 1,
  norm_num_groups: 4, sample_size: 16, scaling_factor: 1,
};
const pics = examples(5, 'train', 0, 64, 16).map((e) => e.pixels);
const src: PictureSource = { count: pics.length, size: 16, get: (i) => pics[i]! };

describe('VAE training', () => {
  test('sampleLatent: gradient of  sum(w · z) + klWeight · KL  matches finite differences (mean and logvar)', () => {
    const k = new RefTrainKernels();
    const rows = 3, L = 2;
    const m0 = Float32Array.from({ length: rows * 2 * L }, (_, i) => Math.sin(i * 1.7) * 0.8);
    const eps = Float32Array.from({ length: rows * L }, (_, i) => Math.cos(i * 2.3));
    const w = Float32Array.from({ length: rows * L }, (_, i) => 0.5 + Math.sin(i));
    const klW = 0.3, klScale = klW / (rows * L);
    const f = (m: Float32Array) => {
      const t = new Tape(k);
      t.recording = false;
      const { z, kl } = sampleLatent(t, new Var(m, [1, rows, 1, 2 * L], false), eps, klScale);
      let s = 0;
      for (let i = 0; i < z.size; i++) s += w[i]! * z.data[i]!;
      return s + klW * kl;
    };
    const t = new Tape(k);
    const mv = Var.param(Float32Array.from(m0), [1, rows, 1, 2 * L]);
    const { z } = sampleLatent(t, mv, eps, klScale);
    t.gradOut(z).set(w);
    t.backward();
    for (let i = 0; i < m0.length; i++) {
      const h = 1e-3, a = Float32Array.from(m0), b = Float32Array.from(m0);
      a[i]! += h;
      b[i]! -= h;
      const fd = (f(a) - f(b)) / (2 * h);
      assert.ok(Math.abs(fd - mv.grad![i]!) < 2e-3 * Math.max(1, Math.abs(fd)), `d/dm[${i}]: ${mv.grad![i]} vs finite difference ${fd}`);
    }
  });

  test('the reconstruction loss falls on crops of scene pictures, and a resumed run follows the same curve', () => {
    const k = cpuTrainKernels();
    const base = { config: CONFIG, batchSize: 4, crop: 12, lr: 3e-3, warmup: 5, checkpointEvery: 10, seed: 3 };
    const whole = trainVae(k, src, { ...base, out: join(tmp, 'whole'), steps: 30 });
    const first = whole.history.slice(0, 5).reduce((s, x) => s + x.rec, 0) / 5;
    assert.ok(whole.finalRec < first * 0.8, `reconstruction ${first.toFixed(4)} -> ${whole.finalRec.toFixed(4)}`);
    // interrupted at step 10 (a checkpoint), then the same command with the full step count
    assert.throws(() => trainVae(k, src, { ...base, out: join(tmp, 'split'), steps: 30 }, { onStep: (s) => { if (s.step === 10) throw new Error('killed'); } }), /killed/);
    const resumed = trainVae(k, src, { ...base, out: join(tmp, 'split'), steps: 30 });
    assert.equal(resumed.resumedFrom, 10);
    assert.deepEqual(resumed.history.map((h) => h.loss), whole.history.map((h) => h.loss));
  });

  test('the exported folder is read by the inference VAE and reconstructs as the trained weights do', () => {
    const k = cpuTrainKernels();
    const r = trainVae(k, src, { config: CONFIG, out: join(tmp, 'export'), steps: 15, batchSize: 4, lr: 3e-3, warmup: 5, seed: 4 });
    const std = latentStd(k, src, r.config, r.weights, 32);
    assert.ok(std > 0 && Number.isFinite(std));
    const dir = join(tmp, 'export', 'vae');
    writeVaeFolder(dir, CONFIG, r.weights, 1 / std);
    const cfg = vaeConfig({ ...CONFIG, scaling_factor: 1 / std });
    const p = new ComponentParams('vae', openSafetensorsCheckpoint(join(dir, 'diffusion_pytorch_model.safetensors')));
    const o = new BackendDiffOps(cpuBackend());
    const x = Tensor.fromF32(Float32Array.from(pics[0]!, (v) => v / 127.5 - 1), [1, 16, 16, 3]);
    const moments = vaeEncode(o, cfg, p, x);
    const mean = Tensor.fromF32(Float32Array.from({ length: 4 * 4 * 4 }, (_, i) => moments.toF32()[Math.floor(i / 4) * 8 + (i % 4)]!), [1, 4, 4, 4]);
    const y = vaeDecode(o, cfg, p, mean).toF32();
    let err = 0;
    for (let i = 0; i < y.length; i++) err += (y[i]! - x.toF32()[i]!) ** 2;
    err /= y.length;
    assert.ok(err < r.history[0]!.rec, `inference reconstruction error ${err} vs ${r.history[0]!.rec} at the start of training`);
  });
});

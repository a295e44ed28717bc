// The pieces of `slipstream train-image` that need no training step: the dataset folder and its
// errors, centre crop + resize, the noise / target / min-SNR arithmetic against hand-computed
// values, LoRA files written in PEFT and kohya naming and read back by the inference side
// (readSdLora / applyLoras), the diffusers-folder and single-file exports loaded back, and the
// from-scratch parameter lists against real component files.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { applyLoras, readSdLora } from '../src/diffusion/lora.ts';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { BackendDiffOps, type Params } from '../src/diffusion/ops.ts';
import { loadStableDiffusionSingleFile } from '../src/diffusion/single-file.ts';
import { unetForward } from '../src/diffusion/unet.ts';
import { centerCropResize, epochOrder, loadImageDataset } from '../src/diffusion/train/data.ts';
import { componentWeights, writeDiffusersFolder, writeSingleFile } from '../src/diffusion/train/export.ts';
import { clipTextParamShapes, vaeParamShapes } from '../src/diffusion/train/init.ts';
import { LoraSet, UNET_LORA_RE } from '../src/diffusion/train/lora.ts';
import { minSnrWeight, noiseBatch, trainSchedule, weightedMse } from '../src/diffusion/train/noise.ts';
import { writePng } from '../src/formats/image.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { TrainRng } from '../src/train/rng.ts';

const SD1 = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline', 'sd1');
const tmp = () => mkdtempSync(join(tmpdir(), 'ss-train-image-'));
const png = (path: string, w: number, h: number, f: (x: number, y: number) => [number, number, number]) => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(f(x, y), (y * w + x) * 3);
  writePng(path, { width: w, height: h, data });
};

describe('dataset folder', () => {
  test('metadata.jsonl, .txt captions, instance prompt', () => {
    const a = tmp();
    png(join(a, 'a.png'), 4, 4, () => [255, 0, 0]);
    png(join(a, 'b.png'), 4, 4, () => [0, 0, 255]);
    writeFileSync(join(a, 'metadata.jsonl'), '{"file_name": "b.png", "text": "blue"}\n{"file_name": "a.png", "text": "red"}\n');
    assert.deepEqual(loadImageDataset(a).items.map((i) => [i.file, i.caption]), [[join(a, 'b.png'), 'blue'], [join(a, 'a.png'), 'red']]);
    const b = tmp();
    png(join(b, 'x.png'), 4, 4, () => [0, 0, 0]);
    png(join(b, 'y.png'), 4, 4, () => [0, 0, 0]);
    writeFileSync(join(b, 'x.txt'), 'a black square\n');
    assert.throws(() => loadImageDataset(b), (e: Error) => e.message.includes(join(b, 'y.png')) && e.message.includes('no caption'));
    const ds = loadImageDataset(b, { instancePrompt: 'a photo of sks square' });
    assert.deepEqual(ds.items.map((i) => i.caption), ['a black square', 'a photo of sks square']);
    assert.equal(ds.source, 'txt+instance-prompt');
  });

  test('errors name the folder, the line or the image', () => {
    assert.throws(() => loadImageDataset('/no/such/folder'), /--data \/no\/such\/folder: no such folder/);
    const a = tmp();
    assert.throws(() => loadImageDataset(a), /no images/);
    writeFileSync(join(a, 'metadata.jsonl'), '{"file_name": "gone.png", "text": "x"}\n');
    assert.throws(() => loadImageDataset(a), /metadata.jsonl line 1: image gone.png not found/);
    png(join(a, 'p.png'), 4, 4, () => [0, 0, 0]);
    writeFileSync(join(a, 'metadata.jsonl'), '{"file_name": "p.png"}\n');
    assert.throws(() => loadImageDataset(a), /line 1: image p.png has no caption \("text"\)/);
    writeFileSync(join(a, 'metadata.jsonl'), '{"file_name": "p.png", "text": "x"}\nnot json\n');
    assert.throws(() => loadImageDataset(a), /line 2: not valid JSON/);
  });

  test('centre crop + resize: the middle square, averaged when shrinking', () => {
    // 12x8: columns 0-1 and 10-11 are cut away; the 8x8 middle is a 2x2 checker of 4-pixel cells
    const img = { width: 12, height: 8, data: new Uint8Array(12 * 8 * 3) };
    for (let y = 0; y < 8; y++) for (let x = 0; x < 12; x++) {
      const v = x < 2 || x >= 10 ? 77 : (Math.floor((x - 2) / 4) + Math.floor(y / 4)) % 2 ? 200 : 0;
      img.data.fill(v, (y * 12 + x) * 3, (y * 12 + x) * 3 + 3);
    }
    const out = centerCropResize(img, 2);
    const sq = { width: 8, height: 8, data: new Uint8Array(8 * 8 * 3) };
    for (let y = 0; y < 8; y++) sq.data.set(img.data.subarray((y * 12 + 2) * 3, (y * 12 + 10) * 3), y * 8 * 3);
    assert.deepEqual(out, centerCropResize(sq, 2)); // the borders play no part
    const r = [...out.data].filter((_, i) => i % 3 === 0);
    // PIL-style triangle filter of support 4 (the scale): cell values blend symmetrically
    assert.equal(r[0], r[3]);
    assert.equal(r[1], r[2]);
    assert.ok(r[0]! < 100 && r[1]! > 100, `${r}`);
    assert.deepEqual([...centerCropResize({ width: 7, height: 5, data: new Uint8Array(105).fill(123) }, 3).data], new Array(27).fill(123));
    const same = centerCropResize({ width: 3, height: 3, data: Uint8Array.from({ length: 27 }, (_, i) => i * 9) }, 3);
    assert.deepEqual([...same.data], Array.from({ length: 27 }, (_, i) => i * 9));
  });

  test('epoch order: a permutation, fixed by (seed, epoch)', () => {
    const a = epochOrder(10, 3, 0);
    assert.deepEqual([...a].sort((x, y) => x - y), [...Array(10).keys()]);
    assert.deepEqual(a, epochOrder(10, 3, 0));
    assert.notDeepEqual(a, epochOrder(10, 3, 1));
  });
});

describe('noise, targets and min-SNR weights', () => {
  const sched = { _class_name: 'DDPMScheduler', beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, num_train_timesteps: 1000, prediction_type: 'epsilon' };

  test('SD scaled_linear schedule: alpha_bar and min-SNR weights by hand', () => {
    const s = trainSchedule(sched);
    // beta_0 = 0.00085: alpha_bar_0 = 0.99915, snr = 0.99915 / 0.00085 = 1175.47
    assert.ok(Math.abs(s.alphasCumprod[0]! - 0.99915) < 1e-6);
    assert.ok(Math.abs(minSnrWeight(s, 0, 5) - 5 / (0.99915 / 0.00085)) < 1e-6);
    const v = trainSchedule(sched, 'v_prediction');
    assert.ok(Math.abs(minSnrWeight(v, 0, 5) - 5 / (0.99915 / 0.00085 + 1)) < 1e-6);
    // at t = 999 snr < 5: epsilon weight 1, v weight snr / (snr + 1)
    const a = s.alphasCumprod[999]!, snr = a / (1 - a);
    assert.ok(snr < 5);
    assert.equal(minSnrWeight(s, 999, 5), 1);
    assert.ok(Math.abs(minSnrWeight(v, 999, 5) - snr / (snr + 1)) < 1e-9);
    assert.equal(minSnrWeight(s, 0, 0), 1);
    assert.throws(() => trainSchedule(sched, 'sample'), /epsilon or v_prediction/);
  });

  test('x_t, the v target and the weighted loss and its gradient', () => {
    const s = trainSchedule(sched, 'v_prediction');
    const x0 = Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => Math.sin(i));
    const rng = new TrainRng(5);
    const nb = noiseBatch(s, x0, 2, 2, rng, { noiseOffset: 0, snrGamma: 5 });
    // replay the draws: t, then the noise
    const r2 = new TrainRng(5);
    for (let b = 0; b < 2; b++) {
      const t = Math.floor(r2.uniform() * 1000);
      assert.equal(nb.timesteps[b], t);
      const a = s.alphasCumprod[t]!;
      for (let i = 0; i < 6; i++) {
        const e = r2.normal(), x = x0[b * 6 + i]!;
        assert.ok(Math.abs(nb.noisy[b * 6 + i]! - (Math.sqrt(a) * x + Math.sqrt(1 - a) * e)) < 1e-5);
        assert.ok(Math.abs(nb.target[b * 6 + i]! - (Math.sqrt(a) * e - Math.sqrt(1 - a) * x)) < 1e-5);
      }
      const snr = a / (1 - a);
      assert.ok(Math.abs(nb.weights[b]! - Math.min(snr, 5) / (snr + 1)) < 1e-9);
    }
    // loss: mean_b w_b mean_i d^2; gradient 2 w_b d / (B n) x gradScale
    const pred = Float32Array.from({ length: 12 }, (_, i) => i / 10);
    const d = new Float32Array(12);
    const loss = weightedMse(pred, nb.target, [0.5, 2], 0.25, d);
    let want = 0;
    for (let b = 0; b < 2; b++) for (let i = 0; i < 6; i++) want += ([0.5, 2][b]! * (pred[b * 6 + i]! - nb.target[b * 6 + i]!) ** 2) / 12;
    assert.ok(Math.abs(loss - want) < 1e-6);
    assert.ok(Math.abs(d[7]! - (0.25 * 2 * 2 * (pred[7]! - nb.target[7]!)) / 12) < 1e-7);
  });

  test('noise offset: the same per-channel shift across an image', () => {
    const s = trainSchedule({ ...sched, prediction_type: 'epsilon' });
    const x0 = new Float32Array(2 * 4 * 3);
    const plain = noiseBatch(s, x0, 2, 3, new TrainRng(9), { noiseOffset: 0, snrGamma: 0 });
    const off = noiseBatch(s, x0, 2, 3, new TrainRng(9), { noiseOffset: 0.1, snrGamma: 0 });
    // image 0 draws the same t and noise before its offsets, so its shift is the difference
    for (let c = 0; c < 3; c++) {
      const shift = off.target[c]! - plain.target[c]!;
      assert.ok(Math.abs(shift) > 0 && Math.abs(shift) < 0.5);
      for (let p = 1; p < 4; p++) assert.ok(Math.abs(off.target[p * 3 + c]! - plain.target[p * 3 + c]! - shift) < 1e-6);
    }
  });
});

/** The UNet's output on a fixed input, NHWC. */
function unetOut(params: Params<Tensor>, sd: ReturnType<typeof loadStableDiffusion>): Float32Array {
  const cfg = sd.unet.config;
  const rng = new TrainRng(1);
  const sample = new Float32Array(1 * 16 * 16 * 4);
  rng.fillNormal(sample, 1);
  const ctx = new Float32Array(77 * cfg.crossAttentionDim);
  rng.fillNormal(ctx, 1);
  return unetForward(new BackendDiffOps(cpuBackend()), cfg, params, {
    sample: Tensor.fromF32(sample, [1, 16, 16, 4]), timesteps: [500], context: Tensor.fromF32(ctx, [1, 77, cfg.crossAttentionDim]),
  }).toF32();
}

describe('LoRA files', () => {
  test('PEFT and kohya files read back to W + alpha/r B A; the UNet gives the in-memory result', () => {
    const sd = loadStableDiffusion(SD1);
    const shapes = new Map<string, readonly number[]>();
    for (const n of sd.unet.params.ckpt.names()) shapes.set(n, sd.unet.params.ckpt.info(n).shape);
    const set = new LoraSet({ rank: 2, alpha: 3 });
    const rng = new TrainRng(4);
    const n = set.add('unet', shapes, UNET_LORA_RE, rng);
    assert.equal(n, [...shapes.keys()].filter((k) => UNET_LORA_RE.test(k)).length);
    for (const a of set.adapters.values()) rng.fillNormal(a.up.data, 0.5); // as if trained
    const merged = set.merged('unet', (w) => sd.unet.params.get(w).toF32());
    // the in-memory adapted UNet
    const mem = loadStableDiffusion(SD1);
    for (const [w, data] of merged) mem.unet.params.replace(w, Tensor.fromF32(data, shapes.get(w)!));
    const want = unetOut(mem.unet.params, mem);
    const base = unetOut(sd.unet.params, sd);
    const dir = tmp();
    for (const naming of ['peft', 'kohya'] as const) {
      const file = join(dir, `${naming}.safetensors`);
      set.write(file, naming);
      const fresh = loadStableDiffusion(SD1);
      const read = readSdLora(file, fresh);
      assert.equal(read.naming, naming);
      assert.equal(read.pairs.length, n);
      applyLoras(fresh, [{ file, scale: 1 }], cpuBackend());
      for (const [w, data] of merged) {
        const got = fresh.unet.params.get(w).toF32();
        for (let i = 0; i < data.length; i++) assert.ok(Math.abs(got[i]! - data[i]!) < 1e-5, `${naming} ${w}[${i}]`);
      }
      const out = unetOut(fresh.unet.params, fresh);
      let diff = 0, moved = 0;
      for (let i = 0; i < out.length; i++) {
        diff = Math.max(diff, Math.abs(out[i]! - want[i]!));
        moved = Math.max(moved, Math.abs(want[i]! - base[i]!));
      }
      assert.ok(diff < 1e-4, `${naming}: max diff ${diff}`);
      assert.ok(moved > 1e-3, 'the adapters change the output');
    }
  });
});

describe('exports', () => {
  test('a diffusers folder loads back with the same tensors (convolutions in PyTorch layout)', () => {
    const sd = loadStableDiffusion(SD1);
    const out = join(tmp(), 'model');
    const unet = componentWeights(sd.unet.params);
    const w0 = unet.get('conv_in.weight')!;
    const changed = { shape: w0.shape, data: w0.data.map((v) => v + 1) };
    const trained = new Map([['conv_in.weight', changed]]);
    const configs = Object.fromEntries(['unet', 'vae', 'text_encoder'].map((s) => [s, JSON.parse(readFileSync(join(SD1, s, 'config.json'), 'utf8')) as Record<string, unknown>]));
    writeDiffusersFolder(out, { source: SD1, configs, weights: { unet: componentWeights(sd.unet.params, trained), vae: componentWeights(sd.vae.params), text_encoder: componentWeights(sd.textEncoder.params) } });
    const back = loadStableDiffusion(out);
    for (const name of sd.unet.params.ckpt.names()) {
      const want = name === 'conv_in.weight' ? changed.data : sd.unet.params.get(name).toF32();
      assert.deepEqual(back.unet.params.get(name).toF32(), want, name);
      assert.deepEqual(back.unet.params.ckpt.info(name).shape, sd.unet.params.ckpt.info(name).shape, name);
    }
    for (const name of sd.vae.params.ckpt.names()) assert.deepEqual(back.vae.params.get(name).toF32(), sd.vae.params.get(name).toF32(), name);
  });

  test('a single-file (LDM layout) checkpoint loads back through single-file.ts', () => {
    const sd = loadStableDiffusion(SD1);
    const file = join(tmp(), 'model.safetensors');
    writeSingleFile(file, {
      unet: componentWeights(sd.unet.params), unetConfig: sd.unet.config,
      vae: componentWeights(sd.vae.params), vaeBlocks: sd.vae.config.blockOutChannels.length,
      textEncoder: componentWeights(sd.textEncoder.params),
    });
    const back = loadStableDiffusionSingleFile(file, { config: SD1 });
    for (const [c, a, b] of [['unet', sd.unet, back.unet], ['vae', sd.vae, back.vae], ['text_encoder', sd.textEncoder, back.textEncoder]] as const) {
      const names = a.params.ckpt.names().filter((n) => !n.endsWith('position_ids'));
      assert.deepEqual(b.params.ckpt.names().sort(), [...names].sort(), c);
      for (const n of names) assert.deepEqual(b.params.get(n).toF32(), a.params.get(n).toF32(), `${c} ${n}`);
    }
  });
});

describe('from scratch', () => {
  test('parameter lists match real text encoder and VAE files', () => {
    const sd = loadStableDiffusion(SD1);
    for (const [want, ck] of [[clipTextParamShapes(sd.textEncoder.config), sd.textEncoder.params.ckpt], [vaeParamShapes(sd.vae.config), sd.vae.params.ckpt]] as const) {
      const got = new Map(ck.names().filter((n) => !n.endsWith('position_ids')).map((n) => [n, [...ck.info(n).shape]]));
      assert.deepEqual(new Map([...want].sort()), new Map([...got].sort()));
    }
  });
});



// train-image against diffusers 0.27.2 (scripts/oracle/train_image.py made the fixtures in
// test/fixtures/diffusion/train): the training loss of train_text_to_image.py (ε and v targets,
// plain and min-SNR-5 weighted) and its gradients on the tiny SD 1 UNet; and the LoRA files the
// trainer writes (kohya and PEFT naming), read and fused the way diffusers reads them, give the
// UNet output of the in-memory adapters.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { fromNchw, toNchw } from '../src/diffusion/ops.ts';
import { diffWeightsFromTensors, TapeDiffOps } from '../src/diffusion/tape-ops.ts';
import { convWeightToNchw } from '../src/diffusion/train/export.ts';
import { noisedWith, trainSchedule, weightedMse } from '../src/diffusion/train/noise.ts';
import { unetForward } from '../src/diffusion/unet.ts';
import { Tape } from '../src/tensor/autograd.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { CpuTrainKernels } from '../src/tensor/train-cpu.ts';
import { oracleLoraSet } from '../scripts/oracle/train-image-lora.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'diffusion', 'train');
const SD1 = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline', 'sd1');
const f32 = (name: string) => new Float32Array(new Uint8Array(readFileSync(join(DIR, name))).buffer);
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  timesteps: number[]; gamma: number; x0: string; noise: string; context: string;
  cases: { prediction: string; snr_gamma: number; loss: number; weights: number[]; noisy: string; target: string; grads: Record<string, string> }[];
  loras: { file: string; naming: string; pairs: number; out: string }[];
};
const k = new CpuTrainKernels();
const sd = loadStableDiffusion(SD1);
const cfg = sd.unet.config;
const B = expected.timesteps.length, C = cfg.inChannels, S = cfg.sampleSize, D = cfg.crossAttentionDim;
const nhwc = (a: Float32Array, b = B) => fromNchw(a, [b, C, S, S]).toF32();
const relErr = (got: ArrayLike<number>, want: ArrayLike<number>) => {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i]! - want[i]!));
    den = Math.max(den, Math.abs(want[i]!));
  }
  return num / Math.max(den, 1e-12);
};

describe('train-image against diffusers', () => {
  const schedJson = JSON.parse(readFileSync(join(SD1, 'scheduler', 'scheduler_config.json'), 'utf8')) as Record<string, unknown>;
  const x0 = nhwc(f32(expected.x0)), noise = nhwc(f32(expected.noise)), ctx = f32(expected.context);

  for (const cs of expected.cases) {
    test(`${cs.prediction}, min-SNR γ ${cs.snr_gamma}: x_t, target, weights, loss and gradients`, () => {
      const s = trainSchedule(schedJson, cs.prediction);
      const nb = noisedWith(s, x0, noise, expected.timesteps, cs.snr_gamma);
      assert.ok(relErr(nb.noisy, nhwc(f32(cs.noisy))) < 1e-6, 'x_t');
      assert.ok(relErr(nb.target, nhwc(f32(cs.target))) < 1e-6, 'target');
      nb.weights.forEach((w, i) => assert.ok(Math.abs(w - cs.weights[i]!) < 1e-5 * Math.max(1, cs.weights[i]!), `weight ${i}: ${w} vs ${cs.weights[i]}`));

      const t = new Tape(k);
      const p = diffWeightsFromTensors('unet', sd.unet.params, sd.unet.params.ckpt.names(), () => true);
      const o = new TapeDiffOps(t);
      const pred = unetForward(o, cfg, p, { sample: o.constant(nb.noisy, [B, S, S, C]), timesteps: expected.timesteps, context: o.constant(ctx, [B, 77, D]) });
      const loss = weightedMse(pred.data, nb.target, nb.weights, 1, t.gradOut(pred));
      assert.ok(Math.abs(loss - cs.loss) < 1e-5 * cs.loss, `loss ${loss} vs diffusers ${cs.loss}`);
      t.backward();
      for (const [name, file] of Object.entries(cs.grads)) {
        const v = p.get(name).v;
        const g = v.shape.length === 4 ? convWeightToNchw({ shape: v.shape, data: v.grad! }).data : v.grad!;
        const e = relErr(g, f32(file));
        assert.ok(e < 2e-4, `${name}: relative error ${e}`);
      }
    });
  }

  test('our LoRA files, read and fused as diffusers does, give the in-memory adapted UNet', () => {
    const set = oracleLoraSet(SD1);
    const t = new Tape(k);
    t.recording = false;
    const p = diffWeightsFromTensors('unet', sd.unet.params, sd.unet.params.ckpt.names(), () => false);
    const o = new TapeDiffOps(t, set.hook('unet'));
    const out = unetForward(o, cfg, p, { sample: o.constant(x0.subarray(0, S * S * C), [1, S, S, C]), timesteps: [500], context: o.constant(ctx.subarray(0, 77 * D), [1, 77, D]) });
    const mine = toNchw(Tensor.fromF32(out.data.slice(), [1, S, S, C]));
    for (const l of expected.loras) {
      assert.equal(l.pairs, set.adapters.size);
      // the committed file is what the writer produces today
      const file = join(mkdtempSync(join(tmpdir(), 'ss-oracle-lora-')), l.file);
      set.write(file, l.naming as 'kohya' | 'peft');
      assert.deepEqual(readFileSync(file), readFileSync(join(DIR, l.file)), `${l.file} is stale: rerun scripts/oracle/train-image-lora.ts and train_image.py`);
      const e = relErr(mine, f32(l.out));
      assert.ok(e < 1e-5, `${l.naming}: relative error ${e}`);
    }
  });
});

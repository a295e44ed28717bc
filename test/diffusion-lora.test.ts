// LoRA files for Stable Diffusion (src/diffusion/lora.ts, src/formats/sd-lora-keys.ts) against
// diffusers 0.27.2's rules (scripts/oracle/lora.py made the fixtures): kohya (diffusers module
// names for SD 1, the SGM layout for SDXL, lora_te_ / lora_te1_ / lora_te2_, alpha, LoCon
// convolutions) and PEFT LoRAs merged into the tiny SD 1 and SDXL pipelines, one file and two at
// different scales; the same seed gives diffusers' latents and picture. Then the names and the errors.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { applyLoras, loraLabel, parseLoraSpec } from '../src/diffusion/lora.ts';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.ts';
import { kohyaFlatten, parseLoraKey, sgmToDiffusers } from '../src/formats/sd-lora-keys.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const DIR = join(import.meta.dirname, 'fixtures', 'diffusion', 'lora');
const PIPES = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline');

interface Case {
  name: string;
  model: string;
  variant: string | null;
  loras: { file: string; scale: number }[];
  prompt: string;
  scheduler: string | null;
  steps: number;
  guidance: number;
  seed: number;
  size: number;
  timesteps: number[];
  latentsShape: number[];
  imageShape: number[];
}

const cases = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Case[];

describe('LoRA pipelines against diffusers', () => {
  for (const c of cases) {
    test(`${c.name}: ${c.model} with ${c.loras.map((l) => `${l.file} × ${l.scale}`).join(' + ')}`, () => {
      const be = cpuBackend();
      const loras = c.loras.map((l) => ({ file: join(DIR, l.file), scale: l.scale }));
      const pipe = StableDiffusionPipeline.load(join(PIPES, c.model), be, { variant: c.variant ?? undefined, loras });
      const req = { prompt: c.prompt, scheduler: c.scheduler ?? undefined, steps: c.steps, guidance: c.guidance, seed: c.seed, width: c.size, height: c.size };
      const r = pipe.generate(req);
      assert.deepEqual(r.timesteps, c.timesteps);
      const [, H, W] = c.imageShape as [number, number, number];
      const want = new Uint8Array(readFileSync(join(DIR, `${c.name}.u8`)));
      const base = new Uint8Array(readFileSync(join(DIR, `${c.name}.base.u8`)));
      let worst = 0;
      for (let i = 0; i < H * W * 3; i++) worst = Math.max(worst, Math.abs(r.images[0]!.data[i]! - want[i]!));
      assert.ok(worst <= 2, `largest pixel difference ${worst}/255`);
      // The tiny VAE flattens differences; the latents show the LoRA's effect plainly.
      const wantLat = new Float32Array(new Uint8Array(readFileSync(join(DIR, `${c.name}.latents.f32`))).buffer);
      const gotLat = r.latents!;
      assert.equal(gotLat.length, wantLat.length);
      const plain = StableDiffusionPipeline.load(join(PIPES, c.model), be, { variant: c.variant ?? undefined }).generate(req);
      let maxErr = 0, sumErr = 0, sumMoved = 0;
      for (let i = 0; i < wantLat.length; i++) {
        const e = Math.abs(gotLat[i]! - wantLat[i]!);
        maxErr = Math.max(maxErr, e);
        sumErr += e;
        sumMoved += Math.abs(gotLat[i]! - plain.latents![i]!);
      }
      let basePx = 0;
      for (let i = 0; i < H * W * 3; i++) basePx = Math.max(basePx, Math.abs(plain.images[0]!.data[i]! - base[i]!));
      assert.ok(basePx <= 2, `without the LoRA: diffusers' base picture (largest difference ${basePx}/255)`);
      assert.ok(maxErr < 1e-3, `largest latent difference ${maxErr}`);
      assert.ok(sumErr * 20 < sumMoved, 'the LoRA moves the latents far more than the difference to diffusers');
    });
  }
});

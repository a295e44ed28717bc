// The embedded default image model (models/default-image, trained here by recipes/default-image):
// small enough to ship, a diffusers folder the ordinary pipeline loads, and it draws what held-out
// prompts ask for, as the deterministic checker of recipes/default-image/scenes.ts scores it.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.ts';
import { defaultImageModelDir } from '../src/models/default.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { evaluateAdherence, summary } from '../recipes/default-image/evaluate.ts';

const dir = defaultImageModelDir();

function bytesUnder(d: string): number {
  return readdirSync(d).reduce((n, f) => {
    const p = join(d, f);
    return n + (statSync(p).isDirectory() ? bytesUnder(p) : statSync(p).size);
  }, 0);
}

describe('embedded default image model', () => {
  it('is shipped, at most 25 MB, f16 weights, 64x64 pictures', () => {
    assert.ok(dir, 'models/default-image is missing');
    assert.ok(bytesUnder(dir) <= 25e6, `${bytesUnder(dir)} bytes`);
    const pipe = StableDiffusionPipeline.load(dir, cpuBackend());
    assert.equal(pipe.nativeSize, 64);
  });

  it('follows held-out prompts: the recorded adherence is reproduced on the first 16 of them', () => {
    const pipe = StableDiffusionPipeline.load(dir!, cpuBackend());
    const recorded = JSON.parse(readFileSync(join(dir!, 'eval.json'), 'utf8')) as { steps: number; guidance: number; first16: number };
    const r = evaluateAdherence((prompt, seed) => pipe.generate({ prompt, seed, steps: recorded.steps, guidance: recorded.guidance }).images[0]!, 16);
    // the pictures are deterministic on one machine; another ISA's rounding may flip a borderline one
    assert.ok(Math.abs(r.adherence * 16 - recorded.first16) <= 2, `${summary(r)}; recorded ${recorded.first16}/16`);
    assert.ok(r.background >= 0.9, summary(r));
  });
});

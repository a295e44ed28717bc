// Whole Stable Diffusion pipelines against diffusers 0.27.2 (scripts/oracle/pipeline.py made the
// fixtures): tiny random SD 1.x, SD 2.x (v-prediction, fp16 weights) and SDXL (two encoders, pooled
// embeddings, time ids, zeroed negative prompt) folders with CLIP tokenizers; text-to-image with
// several schedulers, guidance, negative prompts, guidance_rescale and two images per prompt, and
// image-to-image with a strength. Same seed, same picture: every pixel within 2/255.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { StableDiffusionPipeline, ImageRequestError } from '../src/diffusion/pipeline.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { assertDrawsFixture, PIPELINE_FIXTURES, pipelineCases, requestFor } from './helpers/sd-fixtures.ts';

const DIR = PIPELINE_FIXTURES;
const cases = pipelineCases();
const pipes = new Map<string, StableDiffusionPipeline>();
const pipe = (m: string) => {
  if (!pipes.has(m)) pipes.set(m, StableDiffusionPipeline.load(join(DIR, m), cpuBackend(), { variant: m === 'sd1' ? undefined : 'fp16' }));
  return pipes.get(m)!;
};

describe('Stable Diffusion pipelines against diffusers', () => {
  for (const c of cases) {
    test(`${c.name}: ${c.model}, ${c.scheduler ?? 'the model\'s scheduler'}, ${c.steps} steps, guidance ${c.guidance}${c.init ? `, img2img strength ${c.strength}` : ''}`, () => {
      const warnings: string[] = [];
      const r = pipe(c.model).generate(
        requestFor(c),
        undefined,
        (w) => warnings.push(w),
      );
      assert.deepEqual(r.timesteps, c.timesteps);
      const [N, H, W] = c.imageShape as [number, number, number];
      assert.equal(r.images.length, N);
      for (const img of r.images) assert.deepEqual([img.height, img.width], [H, W]);
      assertDrawsFixture(r, c.name);
      if (c.prompt.length > 200) assert.ok(warnings.some((w) => /cut to CLIP's 77 tokens/.test(w)), 'a long prompt is cut with a warning');
      else assert.deepEqual(warnings, []);
    });
  }
});

describe('image requests', () => {
  test('bad settings are errors naming the field', () => {
    const p = pipe('sd1');
    const base = { prompt: 'x', steps: 2, guidance: 5, seed: 1 };
    const bad = (req: object, field: string, re: RegExp) =>
      assert.throws(() => p.resolve({ ...base, ...req }), (e: unknown) => e instanceof ImageRequestError && e.field === field && re.test(e.message));
    bad({ width: 31, height: 32 }, 'width', /width must be a multiple of 2, got 31/); // the tiny VAE's factor
    // a multiple of the VAE's factor that is not one of the UNet's (latents 15x16): accepted, as diffusers does
    assert.equal(p.resolve({ ...base, width: 30, height: 32 }).width, 30);
    bad({ steps: 0 }, 'steps', /steps must be an integer from 1/);
    bad({ scheduler: 'nope' }, 'scheduler', /known samplers: ddim/);
    assert.throws(() => p.scheduler('nope'), /known samplers/);
    bad({ n: 0 }, 'n', /n must be/);
    bad({ guidance: -1 }, 'guidance', /guidance/);
    bad({ initImage: { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) }, strength: 0.1, steps: 4 }, 'strength', /leaves no denoising step/);
    assert.equal(p.resolve(base).width, p.nativeSize);
  });
});

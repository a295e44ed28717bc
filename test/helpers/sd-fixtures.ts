// The whole-pipeline fixtures of scripts/oracle/pipeline.py (test/fixtures/diffusion/pipeline/):
// each case's settings as diffusers ran them, the request that repeats them, and the pixel
// comparison every pipeline test makes (diffusers' picture within 2/255).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageRequest, ImageResult } from '../../src/diffusion/pipeline.ts';
import { readImage } from '../../src/formats/image.ts';

export const PIPELINE_FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'diffusion', 'pipeline');

export interface PipelineCase {
  name: string;
  model: string;
  prompt: string;
  negative: string | null;
  scheduler: string | null;
  steps: number;
  guidance: number;
  seed: number;
  size: number;
  n: number;
  rescale: number;
  init: string | null;
  strength: number | null;
  timesteps: number[];
  latentsShape: number[];
  imageShape: number[];
}

export function pipelineCases(): PipelineCase[] {
  return JSON.parse(readFileSync(join(PIPELINE_FIXTURES, 'expected.json'), 'utf8')) as PipelineCase[];
}

/** The request that repeats a case's diffusers run. */
export function requestFor(c: PipelineCase): ImageRequest {
  return {
    prompt: c.prompt,
    negativePrompt: c.negative ?? undefined,
    scheduler: c.scheduler ?? undefined,
    steps: c.steps,
    guidance: c.guidance,
    guidanceRescale: c.rescale,
    seed: c.seed,
    width: c.size,
    height: c.size,
    n: c.n,
    initImage: c.init ? readImage(join(PIPELINE_FIXTURES, c.init)) : undefined,
    strength: c.strength ?? undefined,
  };
}

/** diffusers' pictures for a case (or another fixture name): n x H x W x 3 bytes. */
export function expectedPixels(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(PIPELINE_FIXTURES, `${name}.u8`)));
}

/** The largest per-byte difference of two pictures of the same size. */
export function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length, 'picture sizes differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** All of a result's pictures, one after another, against the fixture's bytes: within 2/255. */
export function assertDrawsFixture(r: ImageResult, name: string): void {
  const data = new Uint8Array(r.images.reduce((s, i) => s + i.data.length, 0));
  let o = 0;
  for (const img of r.images) data.set(img.data, (o += img.data.length) - img.data.length);
  const worst = maxPixelDiff(data, expectedPixels(name));
  assert.ok(worst <= 2, `largest pixel difference ${worst}/255`);
}

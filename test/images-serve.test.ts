// `slipstream serve --image-model`: OpenAI's Images API through the official `openai` client, on
// the tiny SD 1.x pipeline fixture (scripts/oracle/pipeline.py): the pictures equal diffusers'
// (within 2/255) for generations and for edits (image-to-image) sent as multipart/form-data; the
// streamed variant reports every denoising step; /metrics counts steps and pictures; bad requests
// get 400s in OpenAI's format naming the field, and the server keeps serving.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI, { toFile } from 'openai';
import { decodeImage, pngText } from '../src/formats/image.ts';
import { startServe, type ServeProcess } from '../src/server/process.ts';
import { maxPixelDiff } from './helpers/sd-fixtures.ts';

const FIX = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline');
let srv: ServeProcess, client: OpenAI;


async function post(path: string, body: unknown): Promise<{ status: number; json: { error?: { message: string; param: string | null; code: string | null } } }> {
  const r = await fetch(srv.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as never };
}

before(async () => {
  srv = await startServe(['--image-model', join(FIX, 'sd1')], { SLIPSTREAM_THREADS: '2' });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'none', maxRetries: 0 });
});
after(async () => {
  await srv?.stop();
});

describe('Images API', () => {
  it('generations: two pictures equal to diffusers\', with their parameters in the PNG', async () => {
    const r = await client.images.generate({
      prompt: 'a red fox in the snow, watercolor',
      n: 2,
      size: '32x32' as never,
      response_format: 'b64_json',
      ...({ negative_prompt: 'blurry, dark', steps: 4, guidance_scale: 7.5, seed: 1, scheduler: 'dpm++-2m-karras' } as object),
    });
    assert.equal(r.data!.length, 2);
    const want = new Uint8Array(readFileSync(join(FIX, 'sd1-dpm-karras.u8')));
    r.data!.forEach((d, i) => {
      const png = Buffer.from(d.b64_json!, 'base64');
      const img = decodeImage(png);
      assert.equal(img.width, 32);
      assert.ok(maxPixelDiff(img.data, want.subarray(i * 3072, (i + 1) * 3072)) <= 2);
      assert.match(pngText(png).parameters!, /Seed: 1/);
    });
    assert.equal((r as unknown as { seed: number }).seed, 1);
  });

  it('edits: image-to-image from a multipart upload, as diffusers', async () => {
    const r = await client.images.edit({
      image: await toFile(readFileSync(join(FIX, 'init.png')), 'init.png', { type: 'image/png' }),
      prompt: 'a red square',
      response_format: 'b64_json',
      ...({ steps: 5, guidance_scale: 6, seed: 3, scheduler: 'ddim', strength: 0.6 } as object),
    });
    const img = decodeImage(Buffer.from(r.data![0]!.b64_json!, 'base64'));
    assert.ok(maxPixelDiff(img.data, new Uint8Array(readFileSync(join(FIX, 'sd1-img2img-ddim.u8')))) <= 2);
  });

  it('stream: a progress event per step, then the picture; /metrics counts them', async () => {
    const before = await srv.metric('slipstream_image_steps_total');
    const res = await fetch(`${srv.url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'a lighthouse', size: '32x32', steps: 3, seed: 4, scheduler: 'euler', stream: true }) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /text\/event-stream/);
    const events = (await res.text()).split('\n\n').filter((l) => l.startsWith('data: ') && !l.includes('[DONE]')).map((l) => JSON.parse(l.slice(6)) as { type: string; step?: number; total?: number; b64_json?: string });
    assert.deepEqual(events.filter((e) => e.type === 'image_generation.progress').map((e) => [e.step, e.total]), [[1, 3], [2, 3], [3, 3]]);
    const done = events.filter((e) => e.type === 'image_generation.completed');
    assert.equal(done.length, 1);
    assert.equal(decodeImage(Buffer.from(done[0]!.b64_json!, 'base64')).width, 32);
    assert.equal((await srv.metric('slipstream_image_steps_total')) - before, 3);
    assert.equal(await srv.metric('slipstream_image_requests_running'), 0);
    const models = await client.models.list();
    assert.ok(models.data.some((m) => m.id === 'sd1'));
  });

  it('bad requests: 400 naming the field; the server keeps serving', async () => {
    const cases: [string, unknown, string | null, RegExp][] = [
      ['/v1/images/generations', { size: '32x32' }, 'prompt', /'prompt' is required/],
      ['/v1/images/generations', { prompt: 'x', size: '31x32' }, 'size', /multiple of 2/],
      ['/v1/images/generations', { prompt: 'x', size: 'big' }, 'size', /WIDTHxHEIGHT/],
      ['/v1/images/generations', { prompt: 'x', steps: 0 }, 'steps', />= 1/],
      ['/v1/images/generations', { prompt: 'x', response_format: 'url' }, 'response_format', /b64_json/],
      ['/v1/images/generations', { prompt: 'x', size: '32x32', steps: 1, scheduler: 'warp' }, 'scheduler', /known samplers/],
      ['/v1/images/generations', { prompt: 'x', model: 'dall-e-3' }, 'model', /does not exist/],
      ['/v1/images/edits', { prompt: 'x' }, 'image', /'image' is required/],
      ['/v1/images/edits', { prompt: 'x', image: Buffer.from('not a picture').toString('base64') }, 'image', /not a PNG or JPEG/],
      ['/v1/images/edits', { prompt: 'x', image: readFileSync(join(FIX, 'init.png')).toString('base64'), mask: 'abc' }, 'mask', /not supported/],
    ];
    for (const [path, body, param, re] of cases) {
      const r = await post(path, body);
      assert.ok(r.status === 400 || r.status === 404, `${JSON.stringify(body)}: ${r.status}`);
      assert.equal(r.json.error!.param, param, JSON.stringify(r.json));
      assert.match(r.json.error!.message, re);
    }
    const ok = await post('/v1/images/generations', { prompt: 'still here', size: '32x32', steps: 1, seed: 9 });
    assert.equal(ok.status, 200);
  });
});

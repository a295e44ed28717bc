// `slipstream image` end to end: the tiny SD 1.x pipeline fixture (scripts/oracle/pipeline.py) run
// through the CLI gives diffusers' pictures, as PNG files that carry their parameters; the SD 2
// pipeline comes through `hf:` from a local mock of the Hugging Face hub, only the files a
// pipeline needs (the fp16 variant asked for, no other weights); bad input gets one-line errors.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pngText, readImage } from '../src/formats/image.ts';
import { MockHub, type MockFile } from './helpers/mock-hub.ts';
import { maxPixelDiff } from './helpers/sd-fixtures.ts';

const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
const FIX = join(import.meta.dirname, 'fixtures', 'diffusion', 'pipeline');
let root: string, hub: MockHub;

function cli(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, SLIPSTREAM_THREADS: '2', SLIPSTREAM_CACHE: join(root, 'cache'), HF_ENDPOINT: hub.url };
  delete env.HF_TOKEN;
  delete env.HF_HUB_OFFLINE;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'image', ...args], { env, cwd: root });
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());
}


before(async () => {
  root = mkdtempSync(join(tmpdir(), 'ss-image-cli-'));
  hub = await MockHub.start();
  const sd2 = join(FIX, 'sd2');
  const repo: MockFile[] = files(sd2).map((f) => ({ path: relative(sd2, join(sd2, f)), content: readFileSync(join(sd2, f)), lfs: f.endsWith('.safetensors') }));
  // Files a pipeline must not fetch: another format, another variant, a README.
  repo.push({ path: 'unet/diffusion_pytorch_model.bin', content: 'pickle', lfs: true }, { path: 'README.md', content: '# tiny sd2' }, { path: 'vae/diffusion_pytorch_model.safetensors', content: 'f32 weights', lfs: true });
  hub.addRepo('org/tiny-sd2', repo);
});
after(async () => {
  await hub.close();
  rmSync(root, { recursive: true, force: true });
});

describe('slipstream image', () => {
  it('draws what diffusers draws, two pictures with their parameters in the PNG', async () => {
    const c = (JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8')) as { name: string }[]).find((x) => x.name === 'sd1-dpm-karras')!;
    assert.ok(c);
    const r = await cli(['-m', join(FIX, 'sd1'), '-p', 'a red fox in the snow, watercolor', '--negative-prompt', 'blurry, dark', '--steps', '4', '--scheduler', 'dpm++-2m-karras', '--seed', '1', '--width', '32', '--height', '32', '-n', '2', '-o', 'fox.png']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['fox-1.png', 'fox-2.png']);
    assert.match(r.stderr, /2 images 32x32, 4 steps \(DPMSolverMultistepScheduler\), seed 1/);
    const want = new Uint8Array(readFileSync(join(FIX, 'sd1-dpm-karras.u8')));
    for (let i = 0; i < 2; i++) {
      const img = readImage(join(root, `fox-${i + 1}.png`));
      assert.ok(maxPixelDiff(img.data, want.subarray(i * 32 * 32 * 3, (i + 1) * 32 * 32 * 3)) <= 2);
      const text = pngText(readFileSync(join(root, `fox-${i + 1}.png`)));
      assert.equal(text.parameters, 'a red fox in the snow, watercolor\nNegative prompt: blurry, dark\nSteps: 4, Sampler: DPMSolverMultistepScheduler, CFG scale: 7.5, Seed: 1, Size: 32x32, Model: sd1');
      const back = JSON.parse(text.slipstream!) as Record<string, unknown>;
      assert.equal(back.seed, 1);
      assert.equal(back.index, i);
    }
  });

  it('image-to-image from a PNG, as diffusers', async () => {
    const r = await cli(['-m', join(FIX, 'sd1'), '-p', 'a red square', '--steps', '5', '--guidance', '6', '--scheduler', 'ddim', '--seed', '3', '--init-image', join(FIX, 'init.png'), '--strength', '0.6', '-o', 'sq.png', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(maxPixelDiff(readImage(join(root, 'sq.png')).data, new Uint8Array(readFileSync(join(FIX, 'sd1-img2img-ddim.u8')))) <= 2);
    assert.match(pngText(readFileSync(join(root, 'sq.png'))).parameters!, /Denoising strength: 0\.6/);
  });

  it('hf:org/name: downloads only what the pipeline needs (the fp16 variant) and draws as diffusers', async () => {
    const r = await cli(['-m', 'hf:org/tiny-sd2', '--variant', 'fp16', '-p', 'mountains at dawn', '--steps', '3', '--guidance', '4', '--seed', '5', '-o', 'm.png', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(maxPixelDiff(readImage(join(root, 'm.png')).data, new Uint8Array(readFileSync(join(FIX, 'sd2-vpred-ddim.u8')))) <= 2);
    const got = hub.requests.filter((q) => q.method === 'GET' && /\/resolve\//.test(q.path)).map((q) => q.path.replace(/^.*\/resolve\/[^/]+\//, ''));
    assert.ok(got.includes('unet/diffusion_pytorch_model.fp16.safetensors'), got.join(', '));
    for (const bad of ['unet/diffusion_pytorch_model.bin', 'README.md', 'vae/diffusion_pytorch_model.safetensors']) assert.ok(!got.includes(bad), `fetched ${bad}`);
  });

  it('without -m: the embedded default image model (models/default-image), a 64x64 picture', async () => {
    const r = await cli(['-p', 'two red circles above a blue square on a yellow background', '--steps', '8', '--seed', '3', '-o', 'default.png', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const img = readImage(join(root, 'default.png'));
    assert.deepEqual([img.width, img.height], [64, 64]);
    assert.match(pngText(readFileSync(join(root, 'default.png'))).parameters!, /Model: default-image/);
  });

  it('bad input: one line naming the problem, exit code 2 for flags', async () => {
    const sd1 = join(FIX, 'sd1');
    const cases: [string[], RegExp, number][] = [
      [['-m', sd1, '-p', 'x', '--width', '31', '--height', '32'], /--width: width must be a multiple of 2, got 31/, 2],
      [['-m', sd1, '-p', 'x', '--steps', '0'], /--steps: steps must be an integer from 1/, 2],
      [['-m', sd1, '-p', 'x', '--scheduler', 'warp-drive'], /--scheduler: unknown scheduler "warp-drive"; known samplers: ddim/, 2],
      [['-m', join(root, 'missing'), '-p', 'x'], /missing: no such file or directory/, 2],
      [['-m', sd1, '-p', 'x', '--strength', '0.5'], /--strength needs --init-image/, 2],
      [['-m', sd1, '-p', 'x', '-o', 'out.jpg'], /--output must name a \.png file/, 2],
    ];
    writeFileSync(join(root, 'notes.png'), 'not a picture');
    cases.push([['-m', sd1, '-p', 'x', '--init-image', join(root, 'notes.png')], /notes\.png: not a PNG or JPEG file/, 1]);
    const broken = join(root, 'broken');
    const { cpSync } = await import('node:fs');
    cpSync(sd1, broken, { recursive: true });
    rmSync(join(broken, 'vae'), { recursive: true });
    cases.push([['-m', broken, '-p', 'x'], /vae/, 1]);
    const cut = join(root, 'cut');
    cpSync(sd1, cut, { recursive: true });
    const unet = join(cut, 'unet', 'diffusion_pytorch_model.safetensors');
    writeFileSync(unet, readFileSync(unet).subarray(0, 5000));
    cases.push([['-m', cut, '-p', 'x', '--steps', '1'], /diffusion_pytorch_model\.safetensors/, 1]);
    for (const [args, re, code] of cases) {
      const r = await cli(args);
      assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected|    at /);
    }
  });
});

// LoRA files for Stable Diffusion (src/diffusion/lora.ts, src/formats/sd-lora-keys.ts) against
// diffusers 0.27.2's rules (scripts/oracle/lora.py made the fixtures): kohya (diffusers module
// names for SD 1, the SGM layout for SDXL, lora_te_ / lora_te1_ / lora_te2_, alpha, LoCon
// convolutions) and PEFT LoRAs merged into the tiny SD 1 and SDXL pipelines, one file and two at
// different scales; the same seed gives diffusers' latents and picture. Then the names and the errors.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parametersText } from '../src/cli/image.ts';
import { applyLoras, loraLabel, parseLoraSpec } from '../src/diffusion/lora.ts';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.ts';
import { decodeImage, pngText, readImage } from '../src/formats/image.ts';
import { writeSafetensors } from '../src/formats/safetensors.ts';
import { startServe } from '../src/server/process.ts';
import { kohyaFlatten, parseLoraKey, sgmToDiffusers } from '../src/formats/sd-lora-keys.ts';
import { Tensor } from '../src/tensor/tensor.ts';
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

describe('LoRA tensor names', () => {
  test('kohya, diffusers (new and old) and PEFT names give the component and module', () => {
    const k = (key: string) => {
      const r = parseLoraKey(key);
      return r && [r.component, r.module, r.part, r.naming, r.flat];
    };
    assert.deepEqual(k('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight'), ['unet', 'down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q', 'down', 'kohya', true]);
    assert.deepEqual(k('lora_te_text_model_encoder_layers_11_mlp_fc2.lora_up.weight'), ['text_encoder', 'text_model_encoder_layers_11_mlp_fc2', 'up', 'kohya', true]);
    assert.deepEqual(k('lora_te1_text_model_encoder_layers_0_self_attn_q_proj.alpha'), ['text_encoder', 'text_model_encoder_layers_0_self_attn_q_proj', 'alpha', 'kohya', true]);
    assert.deepEqual(k('lora_te2_text_model_encoder_layers_0_self_attn_q_proj.alpha'), ['text_encoder_2', 'text_model_encoder_layers_0_self_attn_q_proj', 'alpha', 'kohya', true]);
    assert.deepEqual(k('unet.mid_block.attentions.0.proj_in.lora.down.weight'), ['unet', 'mid_block.attentions.0.proj_in', 'down', 'diffusers', false]);
    assert.deepEqual(k('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight'), ['unet', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0', 'up', 'diffusers', false]);
    assert.deepEqual(k('down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor.to_v_lora.down.weight'), ['unet', 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v', 'down', 'diffusers', false]);
    assert.deepEqual(k('text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight'), ['text_encoder', 'text_model.encoder.layers.0.self_attn.k_proj', 'down', 'diffusers', false]);
    assert.deepEqual(k('text_encoder.text_model.encoder.layers.0.self_attn.to_out_lora.up.weight'), ['text_encoder', 'text_model.encoder.layers.0.self_attn.out_proj', 'up', 'diffusers', false]);
    assert.deepEqual(k('text_encoder_2.text_model.encoder.layers.3.mlp.fc1.lora_linear_layer.down.weight'), ['text_encoder_2', 'text_model.encoder.layers.3.mlp.fc1', 'down', 'diffusers', false]);
    assert.deepEqual(k('unet.up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj.lora_A.weight'), ['unet', 'up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj', 'down', 'peft', false]);
    assert.deepEqual(k('text_encoder_2.text_projection.lora_B.weight'), ['text_encoder_2', 'text_projection', 'up', 'peft', false]);
    assert.deepEqual(k('unet.down_blocks.0.resnets.0.conv1.alpha'), ['unet', 'down_blocks.0.resnets.0.conv1', 'alpha', 'diffusers', false]);
    assert.equal(k('lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a'), null);
    assert.equal(k('model.diffusion_model.out.2.weight'), null);
    assert.equal(kohyaFlatten('down_blocks.0.attentions.0.proj_in'), 'down_blocks_0_attentions_0_proj_in');
  });

  test("SDXL's SGM layout (layers_per_block 2) to diffusers' blocks, as diffusers maps it", () => {
    const m = (s: string) => sgmToDiffusers(s, 2);
    assert.equal(m('input_blocks_4_1_transformer_blocks_0_attn1_to_q'), 'down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q');
    assert.equal(m('input_blocks_8_1_proj_in'), 'down_blocks_2_attentions_1_proj_in');
    assert.equal(m('input_blocks_7_0_emb_layers_1'), 'down_blocks_2_resnets_0_time_emb_proj');
    assert.equal(m('input_blocks_1_0_in_layers_2'), 'down_blocks_0_resnets_0_conv1');
    assert.equal(m('input_blocks_4_0_skip_connection'), 'down_blocks_1_resnets_0_conv_shortcut');
    assert.equal(m('input_blocks_3_0_op'), 'down_blocks_0_downsamplers_0_conv');
    assert.equal(m('middle_block_0_out_layers_3'), 'mid_block_resnets_0_conv2');
    assert.equal(m('middle_block_1_transformer_blocks_9_ff_net_2'), 'mid_block_attentions_0_transformer_blocks_9_ff_net_2');
    assert.equal(m('middle_block_2_in_layers_2'), 'mid_block_resnets_1_conv1');
    assert.equal(m('output_blocks_0_1_transformer_blocks_0_attn2_to_k'), 'up_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k');
    assert.equal(m('output_blocks_5_1_proj_out'), 'up_blocks_1_attentions_2_proj_out');
    assert.equal(m('output_blocks_2_2_conv'), 'up_blocks_0_upsamplers_0_conv');
    assert.equal(m('output_blocks_8_0_out_layers_3'), 'up_blocks_2_resnets_2_conv2');
    assert.equal(m('input_blocks_0_0'), 'conv_in');
    assert.equal(m('out_2'), 'conv_out');
    assert.equal(m('time_embed_0'), 'time_embedding_linear_1');
    assert.equal(m('down_blocks_0_attentions_0_proj_in'), 'down_blocks_0_attentions_0_proj_in');
  });

  test('file[:scale]', () => {
    assert.deepEqual(parseLoraSpec('style.safetensors'), { file: 'style.safetensors', scale: 1 });
    assert.deepEqual(parseLoraSpec('style.safetensors:0.8'), { file: 'style.safetensors', scale: 0.8 });
    assert.deepEqual(parseLoraSpec('/a/b.safetensors:-0.5'), { file: '/a/b.safetensors', scale: -0.5 });
    assert.throws(() => parseLoraSpec('style.safetensors:strong'), /the scale after ':' must be a number .* got "strong"/);
    assert.throws(() => parseLoraSpec('style.safetensors:'), /must be a number/);
    assert.throws(() => parseLoraSpec(':0.5'), /no file before ':'/);
    const dir = mkdtempSync(join(tmpdir(), 'ss-lora-'));
    const odd = join(dir, 'a:b.safetensors');
    writeFileSync(odd, '');
    assert.deepEqual(parseLoraSpec(odd), { file: odd, scale: 1 }, 'an existing file whose name has a colon');
    assert.equal(loraLabel({ file: '/x/pixel-art.safetensors', scale: 0.8 }), 'pixel-art:0.8');
  });
});

describe('LoRA merging', () => {
  const be = cpuBackend();
  const sd1 = join(PIPES, 'sd1');
  const dir = mkdtempSync(join(tmpdir(), 'ss-lora-'));
  const f32 = (shape: number[], v = 0.1) => Tensor.fromF32(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(v), shape);
  /** A kohya alpha as the files hold it: a 0-d f32. */
  const scalar = (v: number) => ({ scalar: v });
  const file = (name: string, tensors: Record<string, Tensor | { scalar: number }>) => {
    const p = join(dir, name);
    writeSafetensors(p, Object.entries(tensors).map(([n, t]) => ('scalar' in t ? { name: n, dtype: 'F32' as const, shape: [], data: new Uint8Array(new Float32Array([t.scalar]).buffer) } : { name: n, tensor: t })));
    return p;
  };
  const toQ = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q';

  test('W + scale · alpha / r · up · down on the merged weights only; conv weights in NHWC', () => {
    const sd = loadStableDiffusion(sd1);
    const w0 = sd.unet.params.get(`${toQ}.weight`).toF32().slice(); // [8, 8]
    const conv0 = sd.unet.params.get('down_blocks.0.resnets.0.conv1.weight').toF32().slice(); // NHWC [8, 3, 3, 8]
    const other = sd.unet.params.get('down_blocks.0.resnets.0.conv2.weight');
    const down = new Float32Array(2 * 8).map((_, i) => (i % 5) * 0.1), up = new Float32Array(8 * 2).map((_, i) => (i % 3) - 1);
    const cd = new Float32Array(1 * 8 * 9).map((_, i) => i * 0.01), cu = new Float32Array(8).map((_, i) => i - 3);
    const p = file('one.safetensors', {
      [`lora_unet_${kohyaFlatten(toQ)}.lora_down.weight`]: Tensor.fromF32(down, [2, 8]),
      [`lora_unet_${kohyaFlatten(toQ)}.lora_up.weight`]: Tensor.fromF32(up, [8, 2]),
      [`lora_unet_${kohyaFlatten(toQ)}.alpha`]: scalar(1),
      'unet.down_blocks.0.resnets.0.conv1.lora_A.weight': Tensor.fromF32(cd, [1, 8, 3, 3]),
      'unet.down_blocks.0.resnets.0.conv1.lora_B.weight': Tensor.fromF32(cu, [8, 1, 1, 1]),
    });
    const sum = applyLoras(sd, [{ file: p, scale: 0.5 }], be);
    assert.deepEqual(sum, [{ file: p, scale: 0.5, naming: 'kohya+peft', weights: 2 }]);
    const w = sd.unet.params.get(`${toQ}.weight`).toF32();
    for (let o = 0; o < 8; o++) {
      for (let i = 0; i < 8; i++) {
        const d = up[o * 2]! * down[i]! + up[o * 2 + 1]! * down[8 + i]!;
        assert.ok(Math.abs(w[o * 8 + i]! - (w0[o * 8 + i]! + 0.5 * (1 / 2) * d)) < 1e-6);
      }
    }
    const c = sd.unet.params.get('down_blocks.0.resnets.0.conv1.weight');
    assert.deepEqual(c.shape, [8, 3, 3, 8]);
    const cv = c.toF32();
    for (let o = 0; o < 8; o++) for (let k = 0; k < 9; k++) for (let i = 0; i < 8; i++) {
      const want = conv0[(o * 9 + k) * 8 + i]! + 0.5 * cu[o]! * cd[i * 9 + k]!; // no alpha: factor 1
      assert.ok(Math.abs(cv[(o * 9 + k) * 8 + i]! - want) < 1e-6);
    }
    assert.equal(sd.unet.params.get('down_blocks.0.resnets.0.conv2.weight'), other, 'untouched weights are not copied');
  });

  test('errors name the file and the tensor', () => {
    const sd = loadStableDiffusion(sd1);
    const bad = (tensors: Record<string, Tensor | { scalar: number }>, re: RegExp, name = 'bad.safetensors') => {
      const p = file(name, tensors);
      assert.throws(() => applyLoras(sd, [{ file: p, scale: 1 }], be), (e: Error) => e.message.includes(p) && re.test(e.message), re.source);
    };
    bad({ 'lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight': f32([2, 8]), 'lora_unet_down_blocks_9_attentions_0_proj_in.lora_up.weight': f32([8, 2]) },
      /"lora_unet_down_blocks_9_attentions_0_proj_in\.lora_down\.weight": unet has no weight for module "down_blocks_9_attentions_0_proj_in"/);
    bad({ 'unet.nowhere.lora_A.weight': f32([2, 8]), 'unet.nowhere.lora_B.weight': f32([8, 2]) }, /"unet\.nowhere\.lora_A\.weight": unet has no weight for module "nowhere"/);
    bad({ [`unet.${toQ}.lora_A.weight`]: f32([2, 7]), [`unet.${toQ}.lora_B.weight`]: f32([8, 2]) }, /lora_A\.weight": down \[2, 7\] and up \[8, 2\] do not fit .*to_q\.weight \[8, 8\] \(input size\)/);
    bad({ [`unet.${toQ}.lora_A.weight`]: f32([2, 8]), [`unet.${toQ}.lora_B.weight`]: f32([8, 3]) }, /rank 2 in down, 3 in up/);
    bad({ [`unet.${toQ}.lora_A.weight`]: f32([2, 8]) }, /up tensor missing/);
    bad({ 'lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': f32([2, 32]), 'lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': f32([32, 2]) },
      /is for text_encoder_2, which this pipeline \(StableDiffusionPipeline\) does not have/);
    bad({ 'lora_unet_down_blocks_0_resnets_0_conv1.hada_w1_a': f32([2, 8]) }, /LyCORIS/);
    bad({ 'model.diffusion_model.out.2.weight': f32([2, 8]) }, /not a LoRA tensor name/);
    bad({ [`unet.${toQ}.alpha`]: f32([2]), [`unet.${toQ}.lora_A.weight`]: f32([2, 8]), [`unet.${toQ}.lora_B.weight`]: f32([8, 2]) }, /alpha must be a single number/);
    assert.throws(() => applyLoras(sd, [{ file: join(dir, 'missing.safetensors'), scale: 1 }], be), /LoRA .*missing\.safetensors: no such file/);
    writeFileSync(join(dir, 'junk.safetensors'), 'not safetensors');
    assert.throws(() => applyLoras(sd, [{ file: join(dir, 'junk.safetensors'), scale: 1 }], be), /LoRA .*junk\.safetensors: /);
    assert.throws(() => applyLoras(sd, [{ file: join(dir, 'bad.safetensors'), scale: NaN }], be), /scale must be a finite number/);
  });
});

describe('slipstream image --lora, serve --image-lora', () => {
  const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
  const work = mkdtempSync(join(tmpdir(), 'ss-lora-cli-'));
  const run = (args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, SLIPSTREAM_THREADS: '2' }, cwd: work });
      let stdout = '', stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  const c = cases.find((x) => x.name === 'sdxl-kohya-1')!;
  const args = ['-m', join(PIPES, 'sdxl'), '--variant', 'fp16', '-p', c.prompt, '--steps', String(c.steps), '--guidance', String(c.guidance), '--seed', String(c.seed), '--width', '32', '--height', '32', '--no-progress'];
  const diff = (a: Uint8Array, b: Uint8Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

  test('image: diffusers\' picture with the LoRA (default scale 1), "Lora: name:scale" in the PNG', async () => {
    const r = await run(['image', ...args, '--lora', join(DIR, 'sdxl-kohya.safetensors'), '-o', 'castle.png']);
    assert.equal(r.status, 0, r.stderr);
    const img = readImage(join(work, 'castle.png'));
    assert.ok(diff(img.data, new Uint8Array(readFileSync(join(DIR, 'sdxl-kohya-1.u8')))) <= 2);
    assert.ok(diff(img.data, new Uint8Array(readFileSync(join(DIR, 'sdxl-kohya-1.base.u8')))) > 4, 'the LoRA changes the picture');
    const text = pngText(readFileSync(join(work, 'castle.png')));
    assert.match(text.parameters!, /, Lora: sdxl-kohya:1$/);
    assert.deepEqual((JSON.parse(text.slipstream!) as { loras: unknown }).loras, [{ file: join(DIR, 'sdxl-kohya.safetensors'), scale: 1 }]);
  });

  test('several LoRAs in the parameters text', () => {
    const req = { prompt: 'p', steps: 2, guidance: 5, seed: 1, width: 32, height: 32 };
    assert.equal(parametersText(req, 'DDIMScheduler', 'sd1', [{ file: 'a.safetensors', scale: 0.6 }, { file: 'b.safetensors', scale: -0.9 }]).split('\n')[1],
      'Steps: 2, Sampler: DDIMScheduler, CFG scale: 5, Seed: 1, Size: 32x32, Model: sd1, Lora: "a:0.6, b:-0.9"');
  });

  test('bad --lora / --image-lora: one line each (flag mistakes exit 2, before any model is loaded)', async () => {
    const sd1 = join(PIPES, 'sd1');
    const shape = join(work, 'shape.safetensors');
    writeSafetensors(shape, [
      { name: 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight', tensor: Tensor.fromF32(new Float32Array(2 * 5), [2, 5]) },
      { name: 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight', tensor: Tensor.fromF32(new Float32Array(8 * 2), [8, 2]) },
    ]);
    const cases: [string[], RegExp, number][] = [
      [['image', '-m', sd1, '-p', 'x', '--lora', `${shape}:strong`], /--lora: LoRA ".*shape\.safetensors:strong": the scale after ':' must be a number/, 2],
      [['image', '-m', sd1, '-p', 'x', '--lora', join(work, 'nope.safetensors')], /--lora .*nope\.safetensors: no such file/, 2],
      [['image', '-m', sd1, '-p', 'x', '--steps', '1', '--lora', `${shape}:0.5`], /LoRA .*shape\.safetensors: "unet\..*to_q\.lora_A\.weight": down \[2, 5\] and up \[8, 2\] do not fit/, 1],
      [['serve', '--image-model', sd1, '--image-lora', `${shape}:x`, '--port', '0'], /--image-lora: LoRA .*the scale after ':' must be a number/, 2],
    ];
    for (const [a, re, code] of cases) {
      const r = await run(a);
      assert.equal(r.status, code, `${a.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });

  test('serve --image-lora: the Images API draws with the LoRA merged', async () => {
    const srv = await startServe(['--image-model', join(PIPES, 'sdxl'), '--image-variant', 'fp16', '--image-lora', `${join(DIR, 'sdxl-kohya.safetensors')}:0.5`, '--image-lora', `${join(DIR, 'sdxl-peft.safetensors')}:1.2`], { SLIPSTREAM_THREADS: '2' });
    try {
      const two = cases.find((x) => x.name === 'sdxl-kohya-peft')!;
      const res = await fetch(`${srv.url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: two.prompt, size: '32x32', steps: two.steps, guidance_scale: two.guidance, seed: two.seed, response_format: 'b64_json' }) });
      assert.equal(res.status, 200);
      const png = Buffer.from(((await res.json()) as { data: { b64_json: string }[] }).data[0]!.b64_json, 'base64');
      assert.ok(diff(decodeImage(png).data, new Uint8Array(readFileSync(join(DIR, 'sdxl-kohya-peft.u8')))) <= 2);
      assert.match(pngText(png).parameters!, /Lora: "sdxl-kohya:0\.5, sdxl-peft:1\.2"/);
    } finally {
      await srv.stop();
    }
  });
});

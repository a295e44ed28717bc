// Stable Diffusion single-file checkpoints (src/formats/sd-checkpoint.ts, src/diffusion/single-file.ts):
// the LDM / SGM key mapping on known names of each family (written out by hand from the original
// repositories' module names and diffusers' conversion), recognising SD 1 / SD 2 / SDXL, and the
// tiny pipeline fixtures written as single files by scripts/oracle/single_file.py (checked there
// with diffusers' own convert_ldm_unet_checkpoint / convert_ldm_vae_checkpoint): loading one gives
// the diffusers folder's tensors, and it draws diffusers' pictures, through the API and the CLI.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clipTextConfig } from '../src/diffusion/clip-text.ts';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { StableDiffusionPipeline } from '../src/diffusion/pipeline.ts';
import { loadStableDiffusionSingleFile, shippedClipTokenizer } from '../src/diffusion/single-file.ts';
import { unetConfig } from '../src/diffusion/unet.ts';
import { vaeConfig } from '../src/diffusion/vae.ts';
import { readImage } from '../src/formats/image.ts';
import { openSafetensorsCheckpoint, writeSafetensors } from '../src/formats/safetensors.ts';
import { detectSdFamily, mapSdKey, SdComponentCheckpoint, standardConfigs, STANDARD_LAYOUT, type SdMapped } from '../src/formats/sd-checkpoint.ts';
import { decodeImage } from '../src/formats/image.ts';
import { startServe } from '../src/server/process.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { assertDrawsFixture, pipelineCases, requestFor } from './helpers/sd-fixtures.ts';

const FIX = join(import.meta.dirname, 'fixtures', 'diffusion');
const PIPE = join(FIX, 'pipeline');
const SINGLE = join(FIX, 'single-file');
const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');

const one = (key: string): SdMapped => {
  const m = mapSdKey(key, STANDARD_LAYOUT);
  assert.ok(m && m.length === 1, `${key} maps to one tensor`);
  return m[0]!;
};
const U = 'model.diffusion_model.';
const V = 'first_stage_model.';

describe('single-file key mapping (standard layout: 2 resnets per UNet block, 4 VAE blocks)', () => {
  it('UNet: input/middle/output blocks to down/mid/up blocks', () => {
    const want: Record<string, string> = {
      'input_blocks.0.0.weight': 'conv_in.weight',
      'time_embed.0.weight': 'time_embedding.linear_1.weight',
      'time_embed.2.bias': 'time_embedding.linear_2.bias',
      'input_blocks.1.0.in_layers.0.weight': 'down_blocks.0.resnets.0.norm1.weight',
      'input_blocks.1.0.in_layers.2.weight': 'down_blocks.0.resnets.0.conv1.weight',
      'input_blocks.2.0.out_layers.3.bias': 'down_blocks.0.resnets.1.conv2.bias',
      'input_blocks.2.0.out_layers.0.weight': 'down_blocks.0.resnets.1.norm2.weight',
      'input_blocks.2.0.emb_layers.1.weight': 'down_blocks.0.resnets.1.time_emb_proj.weight',
      'input_blocks.1.1.proj_in.weight': 'down_blocks.0.attentions.0.proj_in.weight',
      'input_blocks.3.0.op.weight': 'down_blocks.0.downsamplers.0.conv.weight',
      'input_blocks.4.0.skip_connection.weight': 'down_blocks.1.resnets.0.conv_shortcut.weight',
      'input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight': 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight',
      'input_blocks.9.0.op.bias': 'down_blocks.2.downsamplers.0.conv.bias',
      'input_blocks.11.0.in_layers.2.bias': 'down_blocks.3.resnets.1.conv1.bias',
      'middle_block.0.in_layers.0.bias': 'mid_block.resnets.0.norm1.bias',
      'middle_block.1.transformer_blocks.0.ff.net.0.proj.weight': 'mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj.weight',
      'middle_block.2.emb_layers.1.bias': 'mid_block.resnets.1.time_emb_proj.bias',
      'output_blocks.0.0.skip_connection.weight': 'up_blocks.0.resnets.0.conv_shortcut.weight',
      'output_blocks.2.1.conv.weight': 'up_blocks.0.upsamplers.0.conv.weight',
      'output_blocks.3.1.norm.weight': 'up_blocks.1.attentions.0.norm.weight',
      'output_blocks.5.2.conv.bias': 'up_blocks.1.upsamplers.0.conv.bias',
      'output_blocks.11.1.proj_out.weight': 'up_blocks.3.attentions.2.proj_out.weight',
      'out.0.weight': 'conv_norm_out.weight',
      'out.2.bias': 'conv_out.bias',
    };
    for (const [ldm, hf] of Object.entries(want)) assert.deepEqual(one(U + ldm), { component: 'unet', name: hf, op: { kind: 'as-is' } }, ldm);
  });

  it('UNet: SDXL additions (label_emb, deep transformers, 3 blocks)', () => {
    assert.equal(one(`${U}label_emb.0.0.weight`).name, 'add_embedding.linear_1.weight');
    assert.equal(one(`${U}label_emb.0.2.bias`).name, 'add_embedding.linear_2.bias');
    assert.equal(one(`${U}input_blocks.7.1.transformer_blocks.9.ff.net.2.weight`).name, 'down_blocks.2.attentions.0.transformer_blocks.9.ff.net.2.weight');
    assert.equal(one(`${U}output_blocks.5.2.conv.weight`).name, 'up_blocks.1.upsamplers.0.conv.weight');
    assert.equal(one(`${U}output_blocks.8.0.skip_connection.weight`).name, 'up_blocks.2.resnets.2.conv_shortcut.weight');
  });

  it('VAE: decoder blocks counted top-down, attention 1x1 convs as linears', () => {
    const want: Record<string, [string, string]> = {
      'encoder.conv_in.weight': ['encoder.conv_in.weight', 'as-is'],
      'encoder.down.0.block.1.conv2.weight': ['encoder.down_blocks.0.resnets.1.conv2.weight', 'as-is'],
      'encoder.down.1.block.0.nin_shortcut.weight': ['encoder.down_blocks.1.resnets.0.conv_shortcut.weight', 'as-is'],
      'encoder.down.2.downsample.conv.weight': ['encoder.down_blocks.2.downsamplers.0.conv.weight', 'as-is'],
      'encoder.mid.block_1.norm1.weight': ['encoder.mid_block.resnets.0.norm1.weight', 'as-is'],
      'encoder.mid.attn_1.norm.bias': ['encoder.mid_block.attentions.0.group_norm.bias', 'as-is'],
      'encoder.mid.attn_1.q.weight': ['encoder.mid_block.attentions.0.to_q.weight', 'conv1x1-to-linear'],
      'encoder.mid.attn_1.q.bias': ['encoder.mid_block.attentions.0.to_q.bias', 'as-is'],
      'decoder.mid.attn_1.proj_out.weight': ['decoder.mid_block.attentions.0.to_out.0.weight', 'conv1x1-to-linear'],
      'decoder.mid.block_2.conv1.bias': ['decoder.mid_block.resnets.1.conv1.bias', 'as-is'],
      'encoder.norm_out.weight': ['encoder.conv_norm_out.weight', 'as-is'],
      'decoder.up.3.block.0.conv1.weight': ['decoder.up_blocks.0.resnets.0.conv1.weight', 'as-is'],
      'decoder.up.0.block.0.nin_shortcut.bias': ['decoder.up_blocks.3.resnets.0.conv_shortcut.bias', 'as-is'],
      'decoder.up.1.upsample.conv.weight': ['decoder.up_blocks.2.upsamplers.0.conv.weight', 'as-is'],
      'quant_conv.weight': ['quant_conv.weight', 'as-is'],
      'post_quant_conv.bias': ['post_quant_conv.bias', 'as-is'],
    };
    for (const [ldm, [hf, op]] of Object.entries(want)) assert.deepEqual(one(V + ldm), { component: 'vae', name: hf, op: { kind: op } }, ldm);
  });

  it('text encoders: CLIP as is, OpenCLIP renamed, in_proj split in three, text_projection transposed', () => {
    assert.deepEqual(one('cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight'), { component: 'text_encoder', name: 'text_model.encoder.layers.11.mlp.fc2.weight', op: { kind: 'as-is' } });
    assert.equal(one('cond_stage_model.transformer.embeddings.token_embedding.weight').name, 'text_model.embeddings.token_embedding.weight');
    assert.equal(mapSdKey('cond_stage_model.transformer.text_model.embeddings.position_ids'), null);
    const O = 'cond_stage_model.model.';
    assert.deepEqual(mapSdKey(`${O}transformer.resblocks.22.attn.in_proj_weight`), ['q', 'k', 'v'].map((x, part) => ({ component: 'text_encoder', name: `text_model.encoder.layers.22.self_attn.${x}_proj.weight`, op: { kind: 'split3', part } })));
    assert.equal(mapSdKey(`${O}transformer.resblocks.0.attn.in_proj_bias`)![2]!.name, 'text_model.encoder.layers.0.self_attn.v_proj.bias');
    assert.equal(one(`${O}transformer.resblocks.3.attn.out_proj.weight`).name, 'text_model.encoder.layers.3.self_attn.out_proj.weight');
    assert.equal(one(`${O}transformer.resblocks.3.ln_1.weight`).name, 'text_model.encoder.layers.3.layer_norm1.weight');
    assert.equal(one(`${O}transformer.resblocks.3.ln_2.bias`).name, 'text_model.encoder.layers.3.layer_norm2.bias');
    assert.equal(one(`${O}transformer.resblocks.3.mlp.c_fc.weight`).name, 'text_model.encoder.layers.3.mlp.fc1.weight');
    assert.equal(one(`${O}transformer.resblocks.3.mlp.c_proj.bias`).name, 'text_model.encoder.layers.3.mlp.fc2.bias');
    assert.equal(one(`${O}positional_embedding`).name, 'text_model.embeddings.position_embedding.weight');
    assert.equal(one(`${O}token_embedding.weight`).name, 'text_model.embeddings.token_embedding.weight');
    assert.equal(one(`${O}ln_final.bias`).name, 'text_model.final_layer_norm.bias');
    assert.equal(mapSdKey(`${O}text_projection`), null, "SD 2's CLIPTextModel has no projection");
    assert.equal(mapSdKey(`${O}logit_scale`), null);
    assert.deepEqual(one('conditioner.embedders.0.transformer.text_model.final_layer_norm.weight'), { component: 'text_encoder', name: 'text_model.final_layer_norm.weight', op: { kind: 'as-is' } });
    assert.deepEqual(one('conditioner.embedders.1.model.text_projection'), { component: 'text_encoder_2', name: 'text_projection.weight', op: { kind: 'transpose' } });
    assert.equal(one('conditioner.embedders.1.model.transformer.resblocks.31.mlp.c_fc.bias').name, 'text_model.encoder.layers.31.mlp.fc1.bias');
    for (const k of ['alphas_cumprod', 'model_ema.decay', 'model_ema.diffusion_modelinput_blocks00weight', 'lora_te_text_model_encoder_layers_0_mlp_fc1.alpha']) assert.equal(mapSdKey(k), null, k);
  });

  it('the standard configs are the diffusers repos\' and parse', () => {
    const sd1 = standardConfigs('sd1');
    assert.equal(unetConfig(sd1.unet).crossAttentionDim, 768);
    assert.equal(unetConfig(sd1.unet).sampleSize, 64);
    assert.equal(vaeConfig(sd1.vae).blockOutChannels.length, 4);
    assert.equal(clipTextConfig(sd1.textEncoder).layers, 12);
    assert.equal(sd1.scheduler._class_name, 'DDIMScheduler');
    assert.equal(sd1.scheduler.prediction_type, 'epsilon');
    const sd2 = standardConfigs('sd2');
    assert.equal(sd2.scheduler.prediction_type, 'v_prediction', 'diffusers takes SD 2.x for the 768-v model');
    assert.equal(unetConfig(sd2.unet).sampleSize, 96);
    assert.equal(clipTextConfig(sd2.textEncoder).layers, 23, 'the penultimate layer of OpenCLIP-H, as the diffusers repo');
    assert.equal(sd2.tokenizerConfig.pad_token, '!');
    const sd2base = standardConfigs('sd2', { predictionType: 'epsilon' });
    assert.equal(sd2base.scheduler.prediction_type, 'epsilon');
    assert.equal(unetConfig(sd2base.unet).sampleSize, 64);
    const xl = standardConfigs('sdxl');
    const u = unetConfig(xl.unet);
    assert.deepEqual(u.transformerLayers, [1, 2, 10]);
    assert.deepEqual(u.addTextTime, { timeEmbedDim: 256, inputDim: 2816 });
    assert.equal(clipTextConfig(xl.textEncoder2!).hiddenSize, 1280);
    assert.equal(xl.scheduler._class_name, 'EulerDiscreteScheduler');
    assert.equal(vaeConfig(xl.vae).scalingFactor, 0.13025);
    assert.throws(() => standardConfigs('sd1', { predictionType: 'sample' }), /epsilon or v_prediction/);
  });

  it('the shipped CLIP vocabulary tokenizes as CLIP (SD 1 pads with <|endoftext|>, SD 2 with "!")', () => {
    const cases = (JSON.parse(readFileSync(join(FIX, 'clip-tokenizer.json'), 'utf8')) as { cases: { prompt: string; ids: number[] }[] }).cases;
    const tok = shippedClipTokenizer(standardConfigs('sd1').tokenizerConfig);
    assert.equal(tok.vocabSize, 49408);
    for (const c of cases.slice(0, 20)) assert.deepEqual(tok.encode(c.prompt, { pad: false }).ids.slice(0, c.ids.length), c.ids.slice(0, 77), c.prompt);
    assert.equal(tok.encode('a cat').ids[5], 49407);
    assert.equal(shippedClipTokenizer(standardConfigs('sd2').tokenizerConfig).encode('a cat').ids[5], 0);
  });
});

const FAMILIES = [
  { name: 'sd1', variant: undefined },
  { name: 'sd2', variant: 'fp16' },
  { name: 'sdxl', variant: 'fp16' },
] as const;

describe('single-file fixtures', () => {
  for (const f of FAMILIES) {
    it(`${f.name}: recognised, and loads the diffusers folder's tensors (weights in place)`, () => {
      const file = join(SINGLE, `${f.name}.safetensors`);
      const ckpt = openSafetensorsCheckpoint(file);
      assert.equal(detectSdFamily(ckpt), f.name);
      const single = loadStableDiffusionSingleFile(file, { config: join(PIPE, f.name) });
      const folder = loadStableDiffusion(join(PIPE, f.name), { variant: f.variant });
      assert.equal(single.pipeline, folder.pipeline);
      const pairs = [
        [single.textEncoder, folder.textEncoder],
        [single.textEncoder2, folder.textEncoder2],
        [single.unet, folder.unet],
        [single.vae, folder.vae],
      ] as const;
      for (const [s, d] of pairs) {
        if (!d) {
          assert.equal(s, null);
          continue;
        }
        assert.deepEqual(s!.config, d.config);
        const names = d.params.ckpt.names().sort();
        assert.deepEqual(s!.params.ckpt.names().sort(), names, `${d.params.component}: the same tensor names`);
        for (const n of names) {
          const a = s!.params.ckpt.tensor(n), b = d.params.ckpt.tensor(n);
          assert.deepEqual(a.shape, b.shape, n);
          assert.equal(a.dtype, b.dtype, n);
          assert.ok(Buffer.from(a.data).equals(Buffer.from(b.data)), `${d.params.component} ${n}: same bytes`);
        }
      }
      // Weights are views of the file's mapping, not copies (bar the transposed text_projection).
      const view = single.unet.params.ckpt as SdComponentCheckpoint;
      const key = view.sourceKey('conv_in.weight')!;
      assert.ok(view.tensor('conv_in.weight').data.buffer === view.source.tensor(key).data.buffer, 'a view of the mapping');
      if (f.name !== 'sd1') {
        const te = single.textEncoder2 ?? single.textEncoder;
        const v = te.params.ckpt as SdComponentCheckpoint;
        assert.ok(v.tensor('text_model.encoder.layers.1.self_attn.k_proj.weight').data.buffer === v.source.tensor(v.sourceKey('text_model.encoder.layers.1.self_attn.k_proj.weight')!).data.buffer, 'the split in_proj is a view');
      }
    });
  }

  const cases = pipelineCases();
  for (const name of ['sd1-pndm-default', 'sd2-vpred-ddim', 'sdxl-euler-zeros', 'sdxl-negative-img2img']) {
    it(`${name}: the single file draws diffusers' picture`, () => {
      const c = cases.find((x) => x.name === name)!;
      const pipe = StableDiffusionPipeline.load(join(SINGLE, `${c.model}.safetensors`), cpuBackend(), { config: join(PIPE, c.model) });
      assertDrawsFixture(pipe.generate(requestFor(c)), c.name);
    });
  }
});

describe('slipstream image -m file.safetensors', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'ss-sd-single-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  const cli = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [bin, 'image', ...args], { env: { ...process.env, SLIPSTREAM_THREADS: '2', HF_HUB_OFFLINE: '1' }, cwd: root });
      let stdout = '', stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });

  it('with --config <fixture folder>: the picture of the diffusers folder', async () => {
    const r = await cli(['-m', join(SINGLE, 'sd1.safetensors'), '--config', join(PIPE, 'sd1'), '-p', 'a red fox in the snow, watercolor', '--negative-prompt', 'blurry, dark', '--steps', '4', '--scheduler', 'dpm++-2m-karras', '--seed', '1', '--width', '32', '--height', '32', '-n', '2', '-o', 'fox.png', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const want = new Uint8Array(readFileSync(join(PIPE, 'sd1-dpm-karras.u8')));
    for (let i = 0; i < 2; i++) {
      const img = readImage(join(root, `fox-${i + 1}.png`));
      let worst = 0;
      for (let j = 0; j < img.data.length; j++) worst = Math.max(worst, Math.abs(img.data[j]! - want[i * img.data.length + j]!));
      assert.ok(worst <= 2, `picture ${i + 1}: largest pixel difference ${worst}/255`);
    }
  });

  it("--prediction-type (diffusers' spelling v-prediction too) sets the scheduler's", async () => {
    const sd2 = join(SINGLE, 'sd2.safetensors');
    assert.equal(loadStableDiffusionSingleFile(sd2, { config: join(PIPE, 'sd2'), predictionType: 'epsilon' }).assets!.schedulerConfig.prediction_type, 'epsilon');
    const r = await cli(['-m', sd2, '--config', join(PIPE, 'sd2'), '--prediction-type', 'v-prediction', '-p', 'mountains at dawn', '--steps', '3', '--guidance', '4', '--seed', '5', '-o', 'm.png', '--no-progress']);
    assert.equal(r.status, 0, r.stderr);
    const img = readImage(join(root, 'm.png'));
    const want = new Uint8Array(readFileSync(join(PIPE, 'sd2-vpred-ddim.u8')));
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(img.data[i]! - want[i]!));
    assert.ok(worst <= 2, `largest pixel difference ${worst}/255`);
  });

  it('bad files and flags: one line naming the file and what is missing', async () => {
    const sd1 = join(SINGLE, 'sd1.safetensors');
    const cut = join(root, 'cut.safetensors');
    writeFileSync(cut, readFileSync(sd1).subarray(0, 100_000));
    const bytes = readFileSync(sd1);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    const noVae = join(root, 'novae.safetensors');
    {
      // The same file without its VAE tensors.
      const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
      for (const k of Object.keys(header)) if (k.startsWith('first_stage_model.')) delete header[k];
      const h = Buffer.from(JSON.stringify(header));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      writeFileSync(noVae, Buffer.concat([len, h, bytes.subarray(8 + headerLen)]));
    }
    const cases: [string[], RegExp, number][] = [
      [['-m', cut, '-p', 'x'], /cut\.safetensors: .*(truncated|size|bytes|short|end)/i, 1],
      [['-m', join(PIPE, 'sd1', 'unet', 'diffusion_pytorch_model.safetensors'), '-p', 'x'], /diffusion_pytorch_model\.safetensors: not a Stable Diffusion checkpoint: no UNet weights \(model\.diffusion_model\.\*\).*one component of a diffusers folder/, 1],
      [['-m', noVae, '-p', 'x'], /novae\.safetensors: has no VAE weights \(first_stage_model\.\*\)/, 1],
      [['-m', sd1, '-p', 'x'], /sd1\.safetensors: "model\.diffusion_model\.input_blocks\.0\.0\.weight" has 8 at dim 0, the standard SD 1\.x architecture has 320; pass --config/, 1],
      [['-m', sd1, '--config', join(PIPE, 'sdxl'), '-p', 'x'], /sd1\.safetensors: is an SD 1\.x checkpoint but .*sdxl describes an SDXL pipeline/, 1],
      [['-m', sd1, '--config', join(root, 'nowhere'), '-p', 'x'], /--config .*nowhere: not a folder/, 2],
      [['-m', sd1, '--prediction-type', 'sample', '-p', 'x'], /--prediction-type must be epsilon or v_prediction/, 2],
      [['-m', join(PIPE, 'sd1'), '--config', join(PIPE, 'sd1'), '-p', 'x'], /--config applies to single-file checkpoints/, 2],
      [['-m', sd1, '--variant', 'fp16', '-p', 'x'], /--variant picks the weights files of a diffusers folder; .*sd1\.safetensors is a single file/, 2],
    ];
    for (const [args, re, code] of cases) {
      const r = await cli([...args, '--steps', '1', '--no-progress']);
      assert.equal(r.status, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /unexpected|    at /);
    }
  });
});

describe('slipstream serve --image-model file.safetensors --image-config <dir>', () => {
  it('serves the single file: the SD 2 (v-prediction) picture of the diffusers folder', async () => {
    const srv = await startServe(['--image-model', join(SINGLE, 'sd2.safetensors'), '--image-config', join(PIPE, 'sd2')], { SLIPSTREAM_THREADS: '2' });
    try {
      const r = await fetch(`${srv.url}/v1/images/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'mountains at dawn', steps: 3, guidance_scale: 4, seed: 5, size: '32x32', response_format: 'b64_json' }),
      });
      assert.equal(r.status, 200, await r.clone().text());
      const body = (await r.json()) as { data: { b64_json: string }[] };
      const img = decodeImage(Buffer.from(body.data[0]!.b64_json, 'base64'));
      const want = new Uint8Array(readFileSync(join(PIPE, 'sd2-vpred-ddim.u8')));
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(img.data[i]! - want[i]!));
      assert.ok(worst <= 2, `largest pixel difference ${worst}/255`);
    } finally {
      await srv.stop();
    }
  });
});

describe('standard architectures without --config', () => {
  // Full-size checkpoints are gigabytes; these stand-ins hold only the tensors the loader looks at
  // before the first picture (zeros, in the standard shapes), which is enough to check what it builds
  // around them: the family's configs, the shipped tokenizer and diffusers' scheduler.
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'ss-sd-standard-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));
  const standIn = (name: string, shapes: Record<string, number[]>): string => {
    const path = join(root, name);
    writeSafetensors(path, Object.entries(shapes).map(([n, shape]) => ({ name: n, dtype: 'F16' as const, shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1) * 2) })));
    return path;
  };
  const unetVae = (ctx: number, attnKey: string, rows: number) => ({
    [`${U}input_blocks.0.0.weight`]: [320, 4, 3, 3],
    [`${U}out.2.weight`]: [4, 320, 3, 3],
    [`${U}${attnKey}`]: [rows, ctx],
    [`${V}encoder.conv_in.weight`]: [128, 3, 3, 3],
  });

  it('SD 1.x: 512 px, DDIM (epsilon), CLIP-L with the shipped vocabulary', () => {
    const f = standIn('sd15.safetensors', { ...unetVae(768, 'input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight', 320), 'cond_stage_model.transformer.text_model.final_layer_norm.weight': [768] });
    const pipe = StableDiffusionPipeline.load(f, cpuBackend());
    assert.equal(pipe.kind, 'sd');
    assert.equal(pipe.nativeSize, 512);
    assert.equal(pipe.scheduler().className, 'DDIMScheduler');
    assert.equal(pipe.sd.textEncoder.config.layers, 12);
    assert.equal(pipe.sd.assets!.tokenizer.vocabSize, 49408);
    assert.equal(pipe.sd.assets!.schedulerConfig.prediction_type, 'epsilon');
  });

  it('SD 2.x: v-prediction at 768 px unless --prediction-type epsilon (the 512 px base models)', () => {
    const f = standIn('sd21.safetensors', { ...unetVae(1024, 'input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight', 320), 'cond_stage_model.model.ln_final.weight': [1024] });
    const v = StableDiffusionPipeline.load(f, cpuBackend());
    assert.equal(v.nativeSize, 768);
    assert.equal(v.sd.assets!.schedulerConfig.prediction_type, 'v_prediction');
    assert.equal(v.sd.assets!.tokenizer.padId, 0, 'OpenCLIP pads with "!"');
    const eps = StableDiffusionPipeline.load(f, cpuBackend(), { predictionType: 'epsilon' });
    assert.equal(eps.nativeSize, 512);
    assert.equal(eps.sd.assets!.schedulerConfig.prediction_type, 'epsilon');
  });

  it('SDXL base: 1024 px, Euler, two encoders, zeroed empty negative prompts', () => {
    const f = standIn('sdxl.safetensors', {
      ...unetVae(2048, 'input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight', 640),
      'conditioner.embedders.0.transformer.text_model.final_layer_norm.weight': [768],
      'conditioner.embedders.1.model.ln_final.weight': [1280],
    });
    const pipe = StableDiffusionPipeline.load(f, cpuBackend());
    assert.equal(pipe.kind, 'sdxl');
    assert.equal(pipe.nativeSize, 1024);
    assert.equal(pipe.scheduler().className, 'EulerDiscreteScheduler');
    assert.equal(pipe.sd.textEncoder2!.config.layers, 32);
    assert.equal(pipe.sd.assets!.forceZerosForEmptyPrompt, true);
  });

  it('the SDXL refiner and other shapes are named, with the way out', () => {
    const refiner = standIn('refiner.safetensors', { ...unetVae(1280, 'input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight', 384), 'conditioner.embedders.0.model.ln_final.weight': [1280] });
    assert.throws(() => loadStableDiffusionSingleFile(refiner), /refiner\.safetensors: looks like the SDXL refiner/);
    const inpaint = standIn('inpaint.safetensors', { ...unetVae(768, 'input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight', 320), [`${U}input_blocks.0.0.weight`]: [320, 9, 3, 3], 'cond_stage_model.transformer.text_model.final_layer_norm.weight': [768] });
    assert.throws(() => loadStableDiffusionSingleFile(inpaint), /inpaint\.safetensors: .* has 9 at dim 1, the standard SD 1\.x architecture has 4 \(9 input channels: an inpainting or other special UNet\); pass --config/);
    const noText = standIn('notext.safetensors', unetVae(768, 'input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight', 320));
    assert.throws(() => loadStableDiffusionSingleFile(noText), /notext\.safetensors: has no text encoder weights/);
  });
});

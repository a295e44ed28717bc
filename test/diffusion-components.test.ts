// The Stable Diffusion networks against diffusers 0.27.2 (fixtures from
// scripts/oracle/components.py: tiny random SD 1.x, SD 2.x and SDXL pipelines in the diffusers
// folder layout, SD 2 and XL as fp16 variants). Each output must be within 1e-4 of the
// reference's scale (max |diff| / max |ref|), in f32, on the cpu backend; one small case also
// runs on the ref backend.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { clipTextForward, promptEmbeds } from '../src/diffusion/clip-text.ts';
import { componentWeightsFile, convWeightToNhwc, DiffusionLoadError, loadStableDiffusion, openUNet, type StableDiffusion } from '../src/diffusion/load.ts';
import { BackendDiffOps, fromNchw, nearestSources, toNchw } from '../src/diffusion/ops.ts';
import { unetConfig, unetForward, unetParamShapes } from '../src/diffusion/unet.ts';
import { latentDist, vaeDecode, vaeEncode } from '../src/diffusion/vae.ts';
import type { Backend } from '../src/tensor/backend.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { Tensor } from '../src/tensor/tensor.ts';

const ROOT = join(import.meta.dirname, 'fixtures', 'diffusion', 'components');
const TOL = 1e-4;

class Expected {
  readonly meta: Record<string, unknown>;
  constructor(readonly dir: string) {
    this.meta = JSON.parse(readFileSync(join(dir, 'expected', 'meta.json'), 'utf8')) as Record<string, unknown>;
  }
  shape(name: string): number[] {
    const s = this.meta[name];
    assert.ok(Array.isArray(s), `fixture ${name} is missing`);
    return s as number[];
  }
  get(name: string): Float32Array {
    const b = readFileSync(join(this.dir, 'expected', `${name}.f32`));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  /** An NCHW fixture as an NHWC tensor. */
  image(name: string): Tensor {
    return fromNchw(this.get(name), this.shape(name) as [number, number, number, number]);
  }
  tensor(name: string): Tensor {
    return Tensor.fromF32(this.get(name), this.shape(name));
  }
  ids(name: string): Int32Array {
    return Int32Array.from(this.get(name));
  }
}

function close(got: Float32Array, want: Float32Array, what: string): number {
  assert.equal(got.length, want.length, `${what}: ${got.length} values, want ${want.length}`);
  let scale = 0, err = 0;
  for (let i = 0; i < got.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  assert.ok(scale > 0, `${what}: the reference is all zeros`);
  if (process.env.SD_PRINT_ERR) console.log(`${what}: ${(err / scale).toExponential(2)}`);
  assert.ok(err / scale <= TOL, `${what}: max |diff| ${err.toExponential(3)} is ${(err / scale).toExponential(3)} of the scale ${scale.toExponential(3)}`);
  return err / scale;
}

const cases = [
  { name: 'sd1', variant: undefined, kind: 'sd' as const },
  { name: 'sd2', variant: 'fp16', kind: 'sd' as const },
  { name: 'sdxl', variant: 'fp16', kind: 'sdxl' as const },
];

for (const c of cases) {
  describe(`${c.name} against diffusers`, () => {
    const dir = join(ROOT, c.name);
    const ex = new Expected(dir);
    const sd: StableDiffusion = loadStableDiffusion(dir, { variant: c.variant });
    const o = new BackendDiffOps(cpuBackend());

    test('loads the folder: pipeline class, fp16 weights kept f16 in memory', () => {
      assert.equal(sd.pipeline, c.kind === 'sdxl' ? 'StableDiffusionXLPipeline' : 'StableDiffusionPipeline');
      assert.equal(sd.textEncoder2 !== null, c.kind === 'sdxl');
      const w = sd.unet.params.get('down_blocks.0.resnets.0.conv1.weight');
      assert.equal(w.dtype, c.variant ? 'f16' : 'f32');
      assert.equal(w.shape[1], 3); // [C_out, kh, kw, C_in]
    });

    test('unetParamShapes lists exactly the file\'s tensors and shapes', () => {
      const want = new Map(sd.unet.params.ckpt.names().map((n) => [n, [...sd.unet.params.ckpt.info(n).shape]]));
      const got = unetParamShapes(sd.unet.config);
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
      for (const [n, s] of got) assert.deepEqual(s, want.get(n), n);
    });

    for (const sub of ['text_encoder', 'text_encoder_2']) {
      if (sub === 'text_encoder_2' && c.kind !== 'sdxl') continue;
      test(`${sub}: hidden states, clip skip, pooled${sub === 'text_encoder_2' ? ' and projected' : ''}`, () => {
        const comp = sub === 'text_encoder' ? sd.textEncoder : sd.textEncoder2!;
        const ids = ex.ids(`${sub}.ids`);
        const out = clipTextForward(o, comp.config, comp.params, ids, 2);
        close(out.lastHiddenState.toF32(), ex.get(`${sub}.last`), `${sub} last_hidden_state`);
        close(out.hiddenStates.at(-2)!.toF32(), ex.get(`${sub}.penultimate`), `${sub} hidden_states[-2]`);
        close(promptEmbeds(o, comp.config, comp.params, out, 'sd', 1).toF32(), ex.get(`${sub}.penultimate_normed`), `${sub} clip_skip 1`);
        close(promptEmbeds(o, comp.config, comp.params, out, 'sdxl').toF32(), ex.get(`${sub}.penultimate`), `${sub} sdxl prompt embeds`);
        close(out.pooled.toF32(), ex.get(`${sub}.pooled`), `${sub} pooled`);
        if (comp.config.projectionDim !== null) close(out.textEmbeds!.toF32(), ex.get(`${sub}.text_embeds`), `${sub} text_embeds`);
      });
    }

    const unetRun = (be: Backend, ts: number[]) => {
      const ox = new BackendDiffOps(be);
      const extra = c.kind === 'sdxl' ? { textEmbeds: ex.tensor('unet.text_embeds'), timeIds: [...ex.get('unet.time_ids')] } : {};
      return unetForward(ox, sd.unet.config, sd.unet.params, { sample: ex.image('unet.sample'), timesteps: ts, context: ex.tensor('unet.context'), ...extra });
    };

    for (const t of ex.meta['unet.timesteps'] as number[]) {
      test(`unet at t=${t}, batch of 2`, () => {
        close(toNchw(unetRun(o.be, [t])), ex.get(`unet.out_t${t}`), `unet t=${t}`);
      });
    }
    test('unet with one timestep per batch item', () => {
      close(toNchw(unetRun(o.be, ex.meta['unet.timesteps'] as number[])), ex.get('unet.out_mixed'), 'unet mixed timesteps');
    });
    if (c.name === 'sd1') {
      test('unet on the ref backend too', () => {
        close(toNchw(unetRun(refBackend, [37])), ex.get('unet.out_t37'), 'unet ref t=37');
      });
    }

    test('vae decode', () => {
      close(toNchw(vaeDecode(o, sd.vae.config, sd.vae.params, ex.image('vae.latent'))), ex.get('vae.decoded'), 'vae decode');
    });
    test('vae encode: latent mean, std and a sample with given noise', () => {
      const d = latentDist(vaeEncode(o, sd.vae.config, sd.vae.params, ex.image('vae.image')), ex.image('vae.noise'));
      close(toNchw(d.mean), ex.get('vae.mean'), 'vae mean');
      close(toNchw(d.std), ex.get('vae.std'), 'vae std');
      close(toNchw(d.sample!), ex.get('vae.sample'), 'vae sample');
    });
  });
}

test('convWeightToNhwc: [Co, Ci, kh, kw] -> [Co, kh, kw, Ci] for f32, f16 and bf16, from aligned and unaligned bytes', () => {
  const [Co, Ci, KH, KW] = [3, 5, 3, 2];
  const n = Co * Ci * KH * KW;
  const v = Float32Array.from({ length: n }, (_, i) => i - 40.5); // exact in f16 and bf16
  for (const dtype of ['f32', 'f16', 'bf16'] as const) {
    const t = Tensor.from(v, [Co, Ci, KH, KW], dtype);
    for (const shift of [0, 1]) {
      const bytes = new Uint8Array(t.data.byteLength + shift);
      bytes.set(t.data, shift);
      const got = convWeightToNhwc(new Tensor(dtype, [Co, Ci, KH, KW], bytes.subarray(shift)));
      assert.deepEqual(got.shape, [Co, KH, KW, Ci]);
      const g = got.toF32();
      for (let co = 0; co < Co; co++)
        for (let ci = 0; ci < Ci; ci++)
          for (let k = 0; k < KH * KW; k++) assert.equal(g[(co * KH * KW + k) * Ci + ci], v[(co * Ci + ci) * KH * KW + k], `${dtype} shift ${shift}`);
    }
  }
});

describe('input errors', () => {
  const sd = loadStableDiffusion(join(ROOT, 'sdxl'));
  const ex = new Expected(join(ROOT, 'sdxl'));
  const o = new BackendDiffOps(cpuBackend());
  const base = { sample: ex.image('unet.sample'), timesteps: [1], context: ex.tensor('unet.context'), textEmbeds: ex.tensor('unet.text_embeds'), timeIds: [...ex.get('unet.time_ids')] };
  test('the UNet names a wrong context width, missing SDXL conditioning, a timestep count that does not fit', () => {
    assert.throws(() => unetForward(o, sd.unet.config, sd.unet.params, { ...base, context: Tensor.zeros([2, 77, 24]) }), /context \[2,77,24\] must be \[2, T, 40\]/);
    assert.throws(() => unetForward(o, sd.unet.config, sd.unet.params, { ...base, textEmbeds: undefined }), /needs textEmbeds and timeIds/);
    assert.throws(() => unetForward(o, sd.unet.config, sd.unet.params, { ...base, timesteps: [1, 2, 3] }), /3 timesteps for a batch of 2/);
  });
  test('the text encoder names ids outside the vocabulary and rows too long', () => {
    const te = sd.textEncoder;
    assert.throws(() => clipTextForward(o, te.config, te.params, new Int32Array([1, 2, 300]), 1), /token id 300 is outside the vocabulary of 300/);
    assert.throws(() => clipTextForward(o, te.config, te.params, new Int32Array(78), 1), /78 tokens per row, more than max_position_embeddings 77/);
  });
  test('config fields these models do not use are refused by name', () => {
    assert.throws(() => unetConfig({ ...JSON.parse(readFileSync(join(ROOT, 'sd1', 'unet', 'config.json'), 'utf8')), class_embed_type: 'timestep' }), /"class_embed_type": "timestep" is not supported/);
    assert.throws(() => loadStableDiffusion(join(ROOT, 'sd1'), { variant: 'bf16' }), /no weights file/);
  });
});

describe('loading errors', () => {
  test('a missing component folder, weights file or tensor is named', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'sd-load-'));
    try {
      cpSync(join(ROOT, 'sd1'), tmp, { recursive: true });
      rmSync(join(tmp, 'vae'), { recursive: true });
      assert.throws(() => loadStableDiffusion(tmp), (e: Error) => e instanceof DiffusionLoadError && /no "vae" folder/.test(e.message));
      assert.throws(() => componentWeightsFile(join(tmp, 'unet'), 'diffusion_pytorch_model', 'fp16'), /no weights file .*diffusion_pytorch_model\.fp16\.safetensors/);
      const sd2 = loadStableDiffusion(join(ROOT, 'sd2')); // no variant given: the fp16 files are the only ones
      assert.equal(sd2.unet.params.get('conv_in.weight').dtype, 'f16');
      assert.throws(() => sd2.unet.params.get('down_blocks.9.resnets.0.conv1.weight'), /unet: no tensor "down_blocks\.9\.resnets\.0\.conv1\.weight"/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

// Latents whose sides are not a multiple of 2^(levels - 1): the upsamplers resize to the skips'
// sizes as diffusers does (scripts/oracle/unet_odd_size.py; two-level SD 1 / SDXL UNets of the
// fixtures above and a three-level one, odd-size/unet).
describe('odd latent sizes against diffusers', () => {
  const ex = new Expected(join(ROOT, 'odd-size'));
  const unets = {
    sd1: loadStableDiffusion(join(ROOT, 'sd1')).unet,
    sdxl: loadStableDiffusion(join(ROOT, 'sdxl'), { variant: 'fp16' }).unet,
    unet3: openUNet(join(ROOT, 'odd-size')),
  };
  const o = new BackendDiffOps(cpuBackend());
  for (const key of Object.keys(ex.meta).filter((k) => k.endsWith('.out'))) {
    const tag = key.slice(0, -4), name = tag.split('.')[0] as keyof typeof unets;
    test(`${tag}: latents ${ex.shape(`${tag}.sample`).slice(2).join('x')}`, () => {
      const u = unets[name];
      const extra = name === 'sdxl' ? { textEmbeds: ex.tensor(`${tag}.text_embeds`), timeIds: [...ex.get(`${tag}.time_ids`)] } : {};
      const out = unetForward(o, u.config, u.params, { sample: ex.image(`${tag}.sample`), timesteps: [500], context: ex.tensor(`${tag}.context`), ...extra });
      close(toNchw(out), ex.get(key), `${tag} unet`);
    });
  }
  test('nearestSources picks PyTorch nearest-interpolation sources', () => {
    assert.deepEqual([...nearestSources(3, 5)], [0, 0, 1, 1, 2]); // floor(i * 0.6)
    assert.deepEqual([...nearestSources(9, 17)], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8]);
    assert.deepEqual([...nearestSources(4, 8)], [0, 0, 1, 1, 2, 2, 3, 3]);
    assert.deepEqual([...nearestSources(5, 5)], [0, 1, 2, 3, 4]);
  });
});

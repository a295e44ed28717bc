// The schedulers replayed against diffusers 0.27.2 (scripts/oracle/schedulers.py ->
// test/fixtures/diffusion/schedulers.{json,f32}): for every sampler on Stable Diffusion 1.5's,
// 2.1's (v-prediction), SDXL's, a zero-terminal-SNR trailing and a cosine config, plus img2img
// (strength) and other variants, the timesteps, sigmas and init_noise_sigma, and the latents after
// every step of a fake model `0.1 * sin(3x + t/100)`, with the initial and ancestral noise from our
// torch generator. Latents must agree within 2e-6 of the step's largest magnitude.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DDIMScheduler, SCHEDULER_NAMES, type Scheduler, SchedulerConfigError, createScheduler, img2imgTimesteps, loadScheduler,
} from '../src/diffusion/schedulers/index.ts';
import { TorchGenerator, randnTensor } from '../src/diffusion/torch-rng.ts';

const dir = join(import.meta.dirname, 'fixtures', 'diffusion');
interface Run {
  label: string; name: string; config: Record<string, unknown>; extra: Record<string, unknown>; steps: number; seed: number;
  strength?: number; eta: number | null; img2img_timesteps?: number[]; init_noise_sigma?: number;
  timesteps: number[]; sigmas: number[] | null; latents: number; n_steps_run: number;
}
const meta = JSON.parse(readFileSync(join(dir, 'schedulers.json'), 'utf8')) as { shape: number[]; runs: Run[] };
const raw = readFileSync(join(dir, 'schedulers.f32'));
const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
const SIZE = meta.shape.reduce((a, b) => a * b, 1);
const f = Math.fround;
const RTOL = 2e-6; // observed: under 1e-6 (a few float32 ulps) on every run

/** The fake model of the fixture script, in float32: 0.1 * sin(3x + t/100). */
function fakeModel(x: Float32Array, t: number): Float32Array {
  const tt = f(f(t) / 100);
  return x.map((v) => f(Math.sin(f(f(v * 3) + tt))) * f(0.1));
}

/** Max |got - want| over max |want| (the step's scale). */
function relErr(got: Float32Array, want: Float32Array): number {
  let scale = 0, err = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]!));
    err = Math.max(err, Math.abs(got[i]! - want[i]!));
  }
  return err / Math.max(scale, 1e-30);
}

/** Integer timesteps must be equal; fractional ones (Karras sigmas mapped back to t, which goes
 * through float32 logs and pow) within 1e-6 relative. */
function checkTimesteps(got: readonly number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.join(', ')} vs ${want.join(', ')}`);
  want.forEach((w, i) => {
    const ok = Number.isInteger(w) && Number.isInteger(got[i]) ? got[i] === w : Math.abs(got[i]! - w) <= 1e-6 * Math.max(1, Math.abs(w));
    assert.ok(ok, `${what} [${i}]: ${got[i]} vs ${w}`);
  });
}

function build(r: Run): Scheduler {
  if (r.eta !== null) return new DDIMScheduler({ ...r.config, ...r.extra }, { eta: r.eta });
  // A user name gets createScheduler(config, name); a class name with extra keys is the class on
  // the merged config (diffusers' from_config(config, **extra)).
  if (SCHEDULER_NAMES.includes(r.name)) return createScheduler({ ...r.config, ...r.extra }, r.name);
  return createScheduler({ ...r.config, ...r.extra }, r.name);
}

describe('schedulers against diffusers 0.27.2', () => {
  for (const r of meta.runs) {
    it(r.label, () => {
      const s = build(r);
      s.setTimesteps(r.steps);
      checkTimesteps(s.timesteps, r.timesteps, 'timesteps');
      if (r.sigmas) {
        assert.ok(s.sigmas, 'sigmas');
        assert.equal(s.sigmas.length, r.sigmas.length, 'number of sigmas');
        r.sigmas.forEach((want, i) => assert.ok(Math.abs(s.sigmas![i]! - want) <= 2e-6 * Math.max(1, Math.abs(want)), `sigma ${i}: ${s.sigmas![i]} vs ${want}`));
      }
      const g = new TorchGenerator(r.seed);
      let lat: Float32Array;
      let timesteps: readonly number[];
      const want0 = all.subarray(r.latents, r.latents + SIZE);
      if (r.strength === undefined) {
        assert.ok(Math.abs(s.initNoiseSigma - r.init_noise_sigma!) <= 1e-6 * r.init_noise_sigma!, `init_noise_sigma ${s.initNoiseSigma} vs ${r.init_noise_sigma}`);
        const sigma = f(s.initNoiseSigma);
        lat = randnTensor(meta.shape, g).map((v) => v * sigma);
        timesteps = s.timesteps;
      } else {
        const sel = img2imgTimesteps(s, r.steps, r.strength);
        timesteps = sel.timesteps;
        checkTimesteps(timesteps, r.img2img_timesteps!, 'img2img timesteps');
        const image = new Float32Array(SIZE).map((_, i) => f(Math.cos(f(i * f(0.37)))));
        const noise = randnTensor(meta.shape, g);
        lat = s.addNoise(image, noise, timesteps[0]!);
      }
      const e0 = relErr(lat, want0);
      assert.ok(e0 <= RTOL, `initial latents: relative error ${e0}`);
      // From here on the latents are our own: errors would accumulate over the steps.
      assert.equal(timesteps.length, r.n_steps_run);
      timesteps.forEach((t, k) => {
        const out = s.step(fakeModel(s.scaleModelInput(lat, t), t), t, lat, g);
        const want = all.subarray(r.latents + (k + 1) * SIZE, r.latents + (k + 2) * SIZE);
        const e = relErr(out, want);
        assert.ok(e <= RTOL, `step ${k} (t=${t}): relative error ${e.toExponential(2)}`);
        lat = out;
      });
    });
  }
});

describe('scheduler factory and configs', () => {
  const sd15 = meta.runs.find((r) => r.label === 'ddim / sd15')!.config;

  it('builds from _class_name, from user names and from class names', () => {
    assert.equal(createScheduler(sd15).className, 'PNDMScheduler');
    const expect: Record<string, string> = {
      ddim: 'DDIMScheduler', pndm: 'PNDMScheduler', euler: 'EulerDiscreteScheduler', 'euler-a': 'EulerAncestralDiscreteScheduler',
      'dpm++-2m': 'DPMSolverMultistepScheduler', 'dpm++-2m-karras': 'DPMSolverMultistepScheduler', unipc: 'UniPCMultistepScheduler', lcm: 'LCMScheduler',
    };
    assert.deepEqual([...SCHEDULER_NAMES].sort(), Object.keys(expect).sort());
    for (const [name, cls] of Object.entries(expect)) assert.equal(createScheduler(sd15, name).className, cls);
    assert.equal(createScheduler(sd15, 'dpm++-2m-karras').config['use_karras_sigmas'], true);
    assert.equal(createScheduler(sd15, 'EulerDiscreteScheduler').className, 'EulerDiscreteScheduler');
  });

  it('takes the keys the class knows and ignores the rest, as from_config does', () => {
    const e = createScheduler(sd15, 'euler');
    assert.equal(e.config['steps_offset'], 1);
    assert.equal(e.config['timestep_spacing'], 'linspace'); // Euler's default: SD 1.5's config has no such key
    assert.equal('skip_prk_steps' in e.config, false);
    const d = createScheduler({ ...sd15, clip_sample: false, _use_default_values: ['steps_offset'] }, 'ddim');
    assert.equal(d.config['steps_offset'], 0);
  });

  it('clear errors: unknown name (listing the known ones), unknown class, bad values', () => {
    assert.throws(() => createScheduler(sd15, 'heun'), (e: Error) => e instanceof SchedulerConfigError && /unknown scheduler "heun"; known samplers: ddim, pndm, euler, euler-a, dpm\+\+-2m, dpm\+\+-2m-karras, unipc, lcm/.test(e.message));
    assert.throws(() => createScheduler({ _class_name: 'KDPM2DiscreteScheduler' }), /"KDPM2DiscreteScheduler" \(from "_class_name"\) is not supported/);
    assert.throws(() => createScheduler({}), /no "_class_name"/);
    assert.throws(() => createScheduler({ ...sd15, beta_schedule: 'quadratic' }, 'ddim'), /"beta_schedule" is "quadratic"; supported: linear, scaled_linear, squaredcos_cap_v2/);
    assert.throws(() => createScheduler({ ...sd15, steps_offset: '1' }, 'ddim'), /"steps_offset" must be a number/);
    assert.throws(() => createScheduler({ ...sd15, timestep_spacing: 'middle' }, 'euler'), /"timestep_spacing" is "middle"/);
    assert.throws(() => createScheduler({ ...sd15, skip_prk_steps: false }), /skip_prk_steps = false/);
    assert.throws(() => createScheduler({ ...sd15, algorithm_type: 'sde-dpmsolver++' }, 'DPMSolverMultistepScheduler'), /SDE variants/);
    assert.throws(() => createScheduler({ ...sd15, prediction_type: 'sample' }, 'euler-a'), /"prediction_type" is "sample"; supported: epsilon, v_prediction/);
    const s = createScheduler(sd15, 'ddim');
    assert.throws(() => s.step(new Float32Array(4), 1, new Float32Array(4)), /call setTimesteps before step/);
    s.setTimesteps(10);
    assert.throws(() => s.step(new Float32Array(3), 901, new Float32Array(4)), /modelOutput has 3 values but the sample has 4/);
    assert.throws(() => s.setTimesteps(0), /num_inference_steps must be a positive integer, got 0/);
    assert.throws(() => s.setTimesteps(1001), /cannot be larger than num_train_timesteps 1000/);
    const e = createScheduler(sd15, 'euler-a');
    e.setTimesteps(5);
    assert.throws(() => e.step(new Float32Array(4), e.timesteps[0]!, new Float32Array(4)), /draws noise; pass a TorchGenerator/);
    assert.throws(() => img2imgTimesteps(e, 5, 1.5), /strength must be in \[0, 1\], got 1.5/);
  });

  it('loadScheduler reads <model>/scheduler/scheduler_config.json and names a bad file', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'slipstream-sched-'));
    try {
      mkdirSync(join(tmp, 'scheduler'));
      writeFileSync(join(tmp, 'scheduler', 'scheduler_config.json'), JSON.stringify(sd15));
      assert.equal(loadScheduler(tmp).className, 'PNDMScheduler');
      assert.equal(loadScheduler(tmp, 'unipc').className, 'UniPCMultistepScheduler');
      // Python's json writes DPM-Solver's default lambda_min_clipped as a bare -Infinity.
      writeFileSync(join(tmp, 'scheduler', 'scheduler_config.json'), JSON.stringify({ ...sd15, _class_name: 'DPMSolverMultistepScheduler', note: 'NaN -Infinity "x"' }).replace('{', '{"lambda_min_clipped": -Infinity, '));
      const dpm = loadScheduler(tmp);
      assert.equal(dpm.config['lambda_min_clipped'], -Infinity);
      dpm.setTimesteps(5);
      assert.deepEqual(dpm.timesteps, [999, 799, 599, 400, 200]);
      writeFileSync(join(tmp, 'scheduler', 'scheduler_config.json'), '{ nope');
      assert.throws(() => loadScheduler(tmp), /scheduler_config.json is not valid JSON/);
      assert.throws(() => loadScheduler(join(tmp, 'missing.json')), /cannot read scheduler config .*missing.json/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

// The diffusion schedulers: one interface (`Scheduler`, see common.ts) and a factory that builds one
// from a model's `scheduler/scheduler_config.json` (by its `_class_name`) or from a user's choice of
// sampler, configured by the model's config the way diffusers' `SomeScheduler.from_config(config)`
// does (the keys the chosen class knows are taken; the rest are ignored).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Scheduler, type SchedulerConfigJson, SchedulerConfigError } from './common.ts';
import { DDIMScheduler } from './ddim.ts';
import { DPMSolverMultistepScheduler } from './dpm-solver.ts';
import { EulerAncestralDiscreteScheduler, EulerDiscreteScheduler } from './euler.ts';
import { LCMScheduler } from './lcm.ts';
import { PNDMScheduler } from './pndm.ts';
import { UniPCMultistepScheduler } from './unipc.ts';

export type { Rng, Scheduler, SchedulerConfigJson } from './common.ts';
export { SchedulerConfigError } from './common.ts';
export { DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler, PNDMScheduler, UniPCMultistepScheduler };

type Ctor = new (config: SchedulerConfigJson) => Scheduler;

const BY_CLASS: Record<string, Ctor> = {
  DDIMScheduler,
  PNDMScheduler,
  EulerDiscreteScheduler,
  EulerAncestralDiscreteScheduler,
  DPMSolverMultistepScheduler,
  UniPCMultistepScheduler,
  LCMScheduler,
};

/** User-facing sampler names: the class, and the config keys the name fixes. */
const BY_NAME: Record<string, { cls: Ctor; overrides: SchedulerConfigJson }> = {
  ddim: { cls: DDIMScheduler, overrides: {} },
  // Stable Diffusion's own PNDM configs skip the Runge-Kutta warm-up; so does the name.
  pndm: { cls: PNDMScheduler, overrides: { skip_prk_steps: true } },
  euler: { cls: EulerDiscreteScheduler, overrides: {} },
  'euler-a': { cls: EulerAncestralDiscreteScheduler, overrides: {} },
  'dpm++-2m': { cls: DPMSolverMultistepScheduler, overrides: { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: false } },
  'dpm++-2m-karras': { cls: DPMSolverMultistepScheduler, overrides: { algorithm_type: 'dpmsolver++', solver_order: 2, use_karras_sigmas: true } },
  unipc: { cls: UniPCMultistepScheduler, overrides: {} },
  lcm: { cls: LCMScheduler, overrides: {} },
};

/** The names `createScheduler` accepts as a sampler. */
export const SCHEDULER_NAMES: readonly string[] = Object.keys(BY_NAME);
/** The diffusers classes it can build from a config's `_class_name`. */
export const SCHEDULER_CLASSES: readonly string[] = Object.keys(BY_CLASS);

/**
 * A scheduler from a config (`scheduler_config.json`'s contents). `name` picks the sampler (one of
 * SCHEDULER_NAMES, or a diffusers class name); without it, the config's `_class_name` does.
 */
export function createScheduler(config: SchedulerConfigJson, name?: string): Scheduler {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new SchedulerConfigError(`scheduler config must be a JSON object, got ${JSON.stringify(config)}`);
  }
  const known = `known samplers: ${SCHEDULER_NAMES.join(', ')} (or a diffusers class: ${SCHEDULER_CLASSES.join(', ')})`;
  if (name !== undefined) {
    const byName = BY_NAME[name.toLowerCase()];
    if (byName) return new byName.cls({ ...config, ...byName.overrides });
    const byClass = BY_CLASS[name];
    if (byClass) return new byClass(config);
    throw new SchedulerConfigError(`unknown scheduler ${JSON.stringify(name)}; ${known}`);
  }
  const cls = config['_class_name'];
  if (typeof cls !== 'string') throw new SchedulerConfigError(`scheduler config has no "_class_name"; name a sampler instead (${known})`);
  const ctor = BY_CLASS[cls];
  if (!ctor) throw new SchedulerConfigError(`scheduler class ${JSON.stringify(cls)} (from "_class_name") is not supported; ${known}`);
  return new ctor(config);
}

/** Reads `<modelDir>/scheduler/scheduler_config.json` (or a path to the file itself) and builds the scheduler. */
export function loadScheduler(path: string, name?: string): Scheduler {
  const file = existsSync(join(path, 'scheduler', 'scheduler_config.json')) ? join(path, 'scheduler', 'scheduler_config.json')
    : existsSync(join(path, 'scheduler_config.json')) ? join(path, 'scheduler_config.json') : path;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SchedulerConfigError(`cannot read scheduler config ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = parsePythonJson(text);
  } catch (e) {
    throw new SchedulerConfigError(`scheduler config ${file} is not valid JSON: ${(e as Error).message}`);
  }
  return createScheduler(json as SchedulerConfigJson, name);
}

const SPECIAL_NUMBERS: Record<string, number> = { '-Infinity': -Infinity, Infinity, NaN };

/** JSON as Python's json module writes it: bare NaN, Infinity and -Infinity are allowed (diffusers
 * saves DPM-Solver's default `"lambda_min_clipped": -Infinity` that way). */
export function parsePythonJson(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === '\\') { out += text[i + 1] ?? ''; i++; } else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') { inString = true; out += ch; continue; }
    const rest = text.slice(i, i + 9);
    const word = rest.startsWith('-Infinity') ? '-Infinity' : rest.startsWith('Infinity') ? 'Infinity' : rest.startsWith('NaN') ? 'NaN' : null;
    if (word) { out += JSON.stringify('\u0000' + word); i += word.length - 1; continue; }
    out += ch;
  }
  // The markers are strings starting with U+0000, which a JSON text cannot hold unescaped.
  return JSON.parse(out, (_k, v: unknown) => (typeof v === 'string' && v.startsWith('\u0000') && v.slice(1) in SPECIAL_NUMBERS ? SPECIAL_NUMBERS[v.slice(1)] : v));
}

/**
 * The timesteps diffusers' image-to-image pipelines run for a `strength` in [0, 1]
 * (StableDiffusionImg2ImgPipeline.get_timesteps): the last `floor(n * strength)` of the schedule.
 * Sets the scheduler's begin index as the pipeline does. Call after setTimesteps(n); noise the
 * encoded image with `scheduler.addNoise(latents, noise, timesteps[0])`.
 */
export function img2imgTimesteps(scheduler: Scheduler, numInferenceSteps: number, strength: number): { timesteps: number[]; numInferenceSteps: number } {
  if (!(strength >= 0 && strength <= 1)) throw new SchedulerConfigError(`strength must be in [0, 1], got ${strength}`);
  const init = Math.min(Math.floor(numInferenceSteps * strength), numInferenceSteps);
  const tStart = Math.max(numInferenceSteps - init, 0);
  const timesteps = scheduler.timesteps.slice(tStart * scheduler.order);
  scheduler.setBeginIndex(tStart * scheduler.order);
  return { timesteps, numInferenceSteps: numInferenceSteps - tStart };
}

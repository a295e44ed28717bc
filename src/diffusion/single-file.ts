// Loading a Stable Diffusion single-file checkpoint (the original LDM / SGM .safetensors, as
// from_single_file in diffusers 0.27.2 does): the key mapping and the standard configs live in
// src/formats/sd-checkpoint.ts; here they become the same StableDiffusion a diffusers folder gives.
//
// Where the configs, tokenizer and scheduler come from:
//   --config <diffusers folder>   (from_single_file(config=...)): unet/, vae/, text_encoder[_2]/
//                                 config.json, tokenizer[_2]/, scheduler/ and model_index.json of
//                                 that folder; only the weights come from the file. Any architecture.
//   no --config                   SD 1.x, SD 2.x and SDXL base are recognised from the keys and get
//                                 their diffusers repos' configs; the tokenizer is CLIP's BPE
//                                 vocabulary shipped in assets/clip/ (SD 1, 2 and XL share it; only
//                                 the padding token differs), the scheduler is what from_single_file
//                                 builds (DDIM for SD 1/2, Euler for SDXL).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { openSafetensorsCheckpoint, type Checkpoint } from '../formats/safetensors.ts';
import {
  checkStandardShapes,
  detectSdFamily,
  SdCheckpointError,
  SdComponentCheckpoint,
  SD_FAMILY_LABEL,
  standardConfigs,
  type SdComponent,
  type SdFamily,
  type SdLayout,
} from '../formats/sd-checkpoint.ts';
import { clipTextConfig } from './clip-text.ts';
import { ClipTokenizer } from './clip-tokenizer.ts';
import { ComponentParams, DiffusionLoadError, type Component, type StableDiffusion } from './load.ts';
import { unetConfig } from './unet.ts';
import { vaeConfig } from './vae.ts';

export interface SingleFileOptions {
  /** A diffusers folder whose configs, tokenizers and scheduler describe the checkpoint. */
  config?: string;
  /** 'epsilon' or 'v_prediction': overrides the scheduler's (diffusers' prediction_type=). */
  predictionType?: string;
}

/** The CLIP vocabulary shipped with slipstream (vocab.json.gz, merges.txt.gz). */
export const CLIP_ASSETS_DIR = fileURLToPath(new URL('../../assets/clip/', import.meta.url));

const vocabCache = new Map<string, { vocab: Record<string, number>; merges: string }>();

/** CLIP's tokenizer from the shipped vocabulary, with a tokenizer_config.json's settings. */
export function shippedClipTokenizer(tokenizerConfig: Record<string, unknown>, dir = CLIP_ASSETS_DIR): ClipTokenizer {
  let files = vocabCache.get(dir);
  if (!files) {
    const read = (name: string) => {
      const p = join(dir, name);
      try {
        return gunzipSync(readFileSync(p)).toString('utf8');
      } catch (e) {
        throw new DiffusionLoadError(`CLIP tokenizer: cannot read ${p} (${(e as Error).message}); pass --config <diffusers folder> with a tokenizer/ folder`);
      }
    };
    files = { vocab: JSON.parse(read('vocab.json.gz')) as Record<string, number>, merges: read('merges.txt.gz') };
    vocabCache.set(dir, files);
  }
  return new ClipTokenizer({ ...files, tokenizerConfig });
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DiffusionLoadError(`--config: cannot read ${path} (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new DiffusionLoadError(`--config: ${path} is not valid JSON (${(e as Error).message})`);
  }
}

interface Configs {
  modelIndex: Record<string, unknown>;
  unet: Record<string, unknown>;
  vae: Record<string, unknown>;
  textEncoder: Record<string, unknown>;
  textEncoder2: Record<string, unknown> | null;
  tokenizer: ClipTokenizer;
  tokenizer2: ClipTokenizer | null;
  scheduler: Record<string, unknown>;
}

function configsFromFolder(dir: string): Configs {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new DiffusionLoadError(`--config ${dir}: not a folder (expected a diffusers pipeline folder with model_index.json)`);
  const modelIndex = readJson(join(dir, 'model_index.json'));
  const listed = (k: string) => Array.isArray(modelIndex[k]) && (modelIndex[k] as unknown[])[0] !== null;
  const two = listed('text_encoder_2');
  return {
    modelIndex,
    unet: readJson(join(dir, 'unet', 'config.json')),
    vae: readJson(join(dir, 'vae', 'config.json')),
    textEncoder: readJson(join(dir, 'text_encoder', 'config.json')),
    textEncoder2: two ? readJson(join(dir, 'text_encoder_2', 'config.json')) : null,
    tokenizer: ClipTokenizer.load(join(dir, 'tokenizer')),
    tokenizer2: two ? ClipTokenizer.load(join(dir, existsSync(join(dir, 'tokenizer_2')) ? 'tokenizer_2' : 'tokenizer')) : null,
    scheduler: readJson(join(dir, 'scheduler', 'scheduler_config.json')),
  };
}

function standardFor(family: SdFamily, predictionType?: string): Configs {
  let c;
  try {
    c = standardConfigs(family, { predictionType });
  } catch (e) {
    throw new DiffusionLoadError(`--prediction-type: ${(e as Error).message}`);
  }
  return {
    modelIndex: c.modelIndex,
    unet: c.unet,
    vae: c.vae,
    textEncoder: c.textEncoder,
    textEncoder2: c.textEncoder2,
    tokenizer: shippedClipTokenizer(c.tokenizerConfig),
    tokenizer2: c.tokenizer2Config ? shippedClipTokenizer(c.tokenizer2Config) : null,
    scheduler: c.scheduler,
  };
}

/**
 * Opens a single-file checkpoint as a StableDiffusion. Errors name the file and what is missing:
 * not a Stable Diffusion checkpoint, a component without weights, a config that does not fit.
 */
export function loadStableDiffusionSingleFile(file: string, opts: SingleFileOptions = {}): StableDiffusion {
  let ckpt: Checkpoint;
  try {
    ckpt = openSafetensorsCheckpoint(file);
  } catch (e) {
    throw new DiffusionLoadError((e as Error).message);
  }
  const family = detectSdFamily(ckpt);
  if (!opts.config) checkStandardShapes(ckpt, family);
  const cfg = opts.config ? configsFromFolder(opts.config) : standardFor(family, opts.predictionType);
  if (opts.predictionType !== undefined) {
    if (opts.predictionType !== 'epsilon' && opts.predictionType !== 'v_prediction') throw new DiffusionLoadError(`--prediction-type must be epsilon or v_prediction, got "${opts.predictionType}"`);
    cfg.scheduler = { ...cfg.scheduler, prediction_type: opts.predictionType };
  }
  if (!!cfg.textEncoder2 !== (family === 'sdxl')) {
    throw new SdCheckpointError(file, `is an ${SD_FAMILY_LABEL[family]} checkpoint but ${opts.config} describes ${cfg.textEncoder2 ? 'an SDXL pipeline (two text encoders)' : 'a pipeline with one text encoder'}`);
  }

  const where = opts.config ? `${opts.config}/` : 'the standard config of ';
  const parse = <C>(what: string, fn: (j: Record<string, unknown>) => C, j: Record<string, unknown>): C => {
    try {
      return fn(j);
    } catch (e) {
      throw new DiffusionLoadError(`${where}${what}/config.json: ${(e as Error).message}`);
    }
  };
  const unet = parse('unet', unetConfig, cfg.unet);
  const vae = parse('vae', vaeConfig, cfg.vae);
  const layout: SdLayout = { unetLayersPerBlock: unet.layersPerBlock, vaeBlocks: vae.blockOutChannels.length };
  const component = <C>(sub: SdComponent, config: C, wants: string): Component<C> => {
    const view = new SdComponentCheckpoint(ckpt, sub, layout);
    if (view.names().length === 0) throw new SdCheckpointError(file, `has no ${sub} weights (${wants})`);
    return { dir: file, config, params: new ComponentParams(sub, view) };
  };
  const te1Keys = family === 'sd1' ? 'cond_stage_model.transformer.*' : family === 'sd2' ? 'cond_stage_model.model.*' : 'conditioner.embedders.0.transformer.*';
  return {
    root: file,
    pipeline: typeof cfg.modelIndex._class_name === 'string' ? cfg.modelIndex._class_name : family === 'sdxl' ? 'StableDiffusionXLPipeline' : 'StableDiffusionPipeline',
    textEncoder: component('text_encoder', parse('text_encoder', clipTextConfig, cfg.textEncoder), te1Keys),
    textEncoder2: cfg.textEncoder2 ? component('text_encoder_2', parse('text_encoder_2', clipTextConfig, cfg.textEncoder2), 'conditioner.embedders.1.model.*') : null,
    unet: component('unet', unet, 'model.diffusion_model.*'),
    vae: component('vae', vae, 'first_stage_model.*'),
    assets: {
      tokenizer: cfg.tokenizer,
      tokenizer2: cfg.tokenizer2,
      schedulerConfig: cfg.scheduler,
      forceZerosForEmptyPrompt: family === 'sdxl' && cfg.modelIndex.force_zeros_for_empty_prompt !== false,
    },
  };
}

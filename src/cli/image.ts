// `slipstream image`: text-to-image and image-to-image with a Stable Diffusion pipeline (a
// diffusers folder, or hf:org/name through the hub cache). A progress bar per denoising step on
// stderr; PNG files that carry the generation parameters in text chunks, as other Stable
// Diffusion tools write them ("parameters", readable by those tools), plus the exact request as
// JSON ("slipstream"), so a picture can be read back into the settings that made it.

import { existsSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { loraParameter, parseLoraSpec, type LoraSpec } from '../diffusion/lora.ts';
import { ImageRequestError, StableDiffusionPipeline, type ImageRequest } from '../diffusion/pipeline.ts';
import { readImage, writePng } from '../formats/image.ts';
import { downloadModel, parseModelSpec } from '../formats/hub.ts';
import { createProgress } from '../formats/progress.ts';
import { defaultImageModelDir, NO_DEFAULT_IMAGE_MODEL } from '../models/default.ts';
import { cpuBackend } from '../tensor/cpu.ts';
import { UsageError } from '../errors.ts';
import { numFlag } from './sampling-flags.ts';

export interface ImageCliOptions {
  model?: string;
  prompt: string;
  negativePrompt?: string;
  steps?: string;
  guidance?: string;
  guidanceRescale?: string;
  scheduler?: string;
  seed?: string;
  width?: string;
  height?: string;
  n?: string;
  initImage?: string;
  strength?: string;
  variant?: string;
  vaeTile?: string;
  /** Single-file checkpoints: a diffusers folder describing it. */
  config?: string;
  predictionType?: string;
  /** --lora file[:scale], repeatable. */
  lora?: string[];
  output?: string;
  threads?: string;
  progress?: boolean;
}

/** The files a diffusers pipeline needs from a hub repo: configs, tokenizers, and one weights variant. */
export function diffusersInclude(variant: string | undefined): (path: string) => boolean {
  return (p) => {
    if (p === 'model_index.json') return true;
    const [dir, file, ...rest] = p.split('/');
    if (!dir || !file || rest.length) return false;
    if (/^tokenizer(_2)?$/.test(dir)) return ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'].includes(file);
    if (dir === 'scheduler') return file === 'scheduler_config.json';
    if (!/^(text_encoder(_2)?|unet|vae)$/.test(dir)) return false;
    if (file === 'config.json') return true;
    const m = /^(model|diffusion_pytorch_model)(?:\.([a-z0-9]+))?\.safetensors$/.exec(file);
    return !!m && m[2] === variant;
  };
}

/** A1111-style "parameters" text: the prompt, then the settings on one line. */
export function parametersText(req: ImageRequest & { width: number; height: number }, scheduler: string, model: string, loras: readonly LoraSpec[] = []): string {
  const lines = [req.prompt];
  if (req.negativePrompt) lines.push(`Negative prompt: ${req.negativePrompt}`);
  const s = [`Steps: ${req.steps}`, `Sampler: ${scheduler}`, `CFG scale: ${req.guidance}`, `Seed: ${req.seed}`, `Size: ${req.width}x${req.height}`, `Model: ${model}`];
  if (req.guidanceRescale) s.push(`CFG rescale: ${req.guidanceRescale}`);
  if (req.initImage) s.push(`Denoising strength: ${req.strength}`);
  if (loras.length) s.push(loraParameter(loras));
  lines.push(s.join(', '));
  return lines.join('\n');
}

/** --lora / --image-lora values as LoRA specs; a bad scale or a missing file is a usage error naming the flag. */
export function loraFlags(values: readonly string[] | undefined, flag: string): LoraSpec[] {
  return (values ?? []).map((v) => {
    let s: LoraSpec;
    try {
      s = parseLoraSpec(v);
    } catch (e) {
      throw new UsageError(`${flag}: ${(e as Error).message}`);
    }
    if (!existsSync(s.file)) throw new UsageError(`${flag} ${v}: ${s.file}: no such file`);
    if (!statSync(s.file).isFile()) throw new UsageError(`${flag} ${v}: ${s.file} is not a file (expected a LoRA .safetensors)`);
    return s;
  });
}

/** out.png -> out.png (one picture) or out-1.png, out-2.png, ... */
export function outputNames(output: string, n: number): string[] {
  if (n === 1) return [output];
  const ext = extname(output) || '.png';
  const stem = output.slice(0, output.length - extname(output).length);
  return Array.from({ length: n }, (_, i) => `${stem}-${i + 1}${ext}`);
}

export async function imageCommand(o: ImageCliOptions): Promise<void> {
  // Flags first: a typo should not cost a model load.
  const steps = numFlag('steps', o.steps, 20, true);
  const guidance = numFlag('guidance', o.guidance, 7.5);
  const guidanceRescale = numFlag('guidance-rescale', o.guidanceRescale, 0);
  const seed = o.seed === undefined ? Math.floor(Math.random() * 2 ** 32) : numFlag('seed', o.seed, 0, true);
  const n = numFlag('n', o.n, 1, true);
  const width = o.width === undefined ? undefined : numFlag('width', o.width, 0, true);
  const height = o.height === undefined ? undefined : numFlag('height', o.height, 0, true);
  const strength = o.strength === undefined ? undefined : numFlag('strength', o.strength, 0);
  const vaeTile = numFlag('vae-tile', o.vaeTile, 0, true);
  if (strength !== undefined && !o.initImage) throw new UsageError('--strength needs --init-image (it says how much of the init image to change)');
  const output = o.output ?? 'image.png';
  if (extname(output).toLowerCase() !== '.png') throw new UsageError(`--output must name a .png file, got '${output}'`);
  const threads = o.threads === undefined ? undefined : numFlag('threads', o.threads, 0, true);
  if (threads !== undefined && (threads < 1 || threads > 1024)) throw new UsageError(`--threads must be in [1, 1024], got ${threads}`);
  const spec = o.model ?? defaultImageModelDir();
  if (!spec) throw new UsageError(`no image model given and ${NO_DEFAULT_IMAGE_MODEL} (-m: a diffusers folder with model_index.json, hf:org/name or a single-file .safetensors checkpoint)`);
  const predictionType = o.predictionType === 'v-prediction' ? 'v_prediction' : o.predictionType; // diffusers accepts both spellings
  if (predictionType !== undefined && predictionType !== 'epsilon' && predictionType !== 'v_prediction') throw new UsageError(`--prediction-type must be epsilon or v_prediction, got '${predictionType}'`);
  const initImage = o.initImage ? readImage(o.initImage) : undefined;
  const loras = loraFlags(o.lora, '--lora');

  const be = cpuBackend();
  if (threads !== undefined) be.setThreads(threads);
  let dir = spec;
  if (parseModelSpec(spec)) dir = await downloadModel(spec, { progress: o.progress !== false, include: diffusersInclude(o.variant) });
  else if (!existsSync(dir)) throw new UsageError(`${dir}: no such file or directory (expected a diffusers folder with model_index.json, or hf:org/name)`);
  const singleFile = statSync(dir, { throwIfNoEntry: false })?.isFile() === true;
  if (!singleFile && (o.config !== undefined || predictionType !== undefined)) throw new UsageError(`--${o.config !== undefined ? 'config' : 'prediction-type'} applies to single-file checkpoints; ${spec} is a diffusers folder, which has its own configs`);
  if (singleFile && o.variant !== undefined) throw new UsageError(`--variant picks the weights files of a diffusers folder; ${spec} is a single file`);
  if (o.config !== undefined && !statSync(o.config, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`--config ${o.config}: not a folder (expected a diffusers folder with model_index.json and the components' config.json)`);

  const t0 = performance.now();
  const pipe = StableDiffusionPipeline.load(dir, be, { variant: o.variant, config: o.config, predictionType, loras });
  const loadSeconds = (performance.now() - t0) / 1000;
  const req: ImageRequest = {
    prompt: o.prompt,
    negativePrompt: o.negativePrompt,
    steps,
    guidance,
    guidanceRescale,
    scheduler: o.scheduler,
    seed,
    width,
    height,
    n,
    initImage,
    strength,
    vaeTile,
  };
  let resolved: ReturnType<StableDiffusionPipeline['resolve']>;
  try {
    resolved = pipe.resolve(req);
  } catch (e) {
    if (e instanceof ImageRequestError) throw new UsageError(`--${e.field === 'image' ? 'init-image' : e.field.replace(/_/g, '-')}: ${e.message}`);
    throw e;
  }
  const total = initImage ? Math.min(Math.floor(steps * resolved.strength), steps) : steps;
  const bar = createProgress(`denoising ${resolved.width}x${resolved.height}${n > 1 ? ` x${n}` : ''}`, total, { unit: 'steps', enabled: o.progress === false ? false : undefined });
  const t1 = performance.now();
  const result = pipe.generate(req, (p) => bar.update(p.step), (w) => process.stderr.write(`slipstream: warning: ${w}\n`));
  bar.stop();
  const genSeconds = (performance.now() - t1) / 1000;
  const model = basename(dir.replace(/\/+$/, '')).replace(/\.safetensors$/, '');
  const params = parametersText(resolved, result.scheduler, model, loras);
  const names = outputNames(output, n);
  result.images.forEach((img, i) => {
    writePng(names[i]!, img, {
      parameters: params,
      slipstream: JSON.stringify({ model: o.model ?? 'default-image', prompt: req.prompt, negativePrompt: req.negativePrompt, steps, guidance, guidanceRescale, scheduler: result.scheduler, seed, width: resolved.width, height: resolved.height, n, index: i, initImage: o.initImage, strength: initImage ? resolved.strength : undefined, loras: loras.length ? loras : undefined }),
      Software: 'slipstream',
    });
    process.stdout.write(`${names[i]}\n`);
  });
  process.stderr.write(
    `slipstream: ${n} image${n > 1 ? 's' : ''} ${resolved.width}x${resolved.height}, ${result.timesteps.length} steps (${result.scheduler}), seed ${seed}: ` +
      `load ${loadSeconds.toFixed(1)} s, generation ${genSeconds.toFixed(1)} s (${(genSeconds / Math.max(1, result.timesteps.length)).toFixed(2)} s/step incl. encode and decode), ${be.threads} threads, ${be.isa}\n`,
  );
}

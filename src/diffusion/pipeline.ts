// Stable Diffusion text-to-image and image-to-image, step for step as diffusers 0.27.2's
// StableDiffusionPipeline, StableDiffusionImg2ImgPipeline and StableDiffusionXLPipeline (and their
// img2img sibling) compute them, so the same checkpoint, prompt, scheduler and seed give the same
// picture:
//
//   prompt ──tokenizer(s)──► text encoder(s) ──► context [2N, 77, D] (negative rows first)
//   seed ──torch generator──► noise [N, 4, h, w] × init_noise_sigma      (text-to-image)
//   image ──VAE encode, sample──► × scaling_factor ──add_noise(t_start)──►  (image-to-image)
//   for t in timesteps: ε = UNet(scale(x ++ x, t), t, context); ε = ε_u + g (ε_c − ε_u)
//                       [guidance_rescale]; x = scheduler.step(ε, t, x, generator)
//   x / scaling_factor ──VAE decode──► (x / 2 + 0.5).clamp(0, 1) × 255, rounded ──► RGB
//
// Latents travel between the scheduler and the networks as NCHW Float32Arrays (the layout of
// diffusers' tensors and of torch's generator); the networks run NHWC (src/diffusion/ops.ts).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RgbImage } from '../formats/image.ts';
import type { Backend } from '../tensor/backend.ts';
import { Tensor } from '../tensor/tensor.ts';
import { ClipTokenizer } from './clip-tokenizer.ts';
import { clipTextForward, promptEmbeds } from './clip-text.ts';
import { applyLoras, type LoraSpec } from './lora.ts';
import { DiffusionLoadError, loadStableDiffusion, type StableDiffusion } from './load.ts';
import { loadStableDiffusionSingleFile, type SingleFileOptions } from './single-file.ts';
import { BackendDiffOps, fromNchw, toNchw } from './ops.ts';
import { createScheduler, type Scheduler, type SchedulerConfigJson } from './schedulers/index.ts';
import { randnTensor, TorchGenerator } from './torch-rng.ts';
import { unetForward } from './unet.ts';
import { latentDist, vaeDecode, vaeEncode } from './vae.ts';
import { tiledDecode } from './tiling.ts';

/** A user's mistake in a generation request: the message names the field. */
export class ImageRequestError extends Error {
  override name = 'ImageRequestError';
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

export interface ImageRequest {
  prompt: string;
  /** Absent: "" (SD 1/2), zeros (SDXL with force_zeros_for_empty_prompt), as diffusers. */
  negativePrompt?: string;
  /** Denoising steps (img2img runs strength × steps of them). */
  steps: number;
  /** Classifier-free guidance scale; ≤ 1 turns guidance off (one UNet row per image). */
  guidance: number;
  /** diffusers' guidance_rescale (0: off). */
  guidanceRescale?: number;
  /** A sampler name (SCHEDULER_NAMES) or a diffusers class; absent: the model's own scheduler. */
  scheduler?: string;
  seed: number;
  /** Multiples of 8 (of the VAE's scale factor); absent: the UNet's native size. */
  width?: number;
  height?: number;
  /** Images for the prompt (diffusers' num_images_per_prompt; one generator draws them all). */
  n?: number;
  /**
   * Decode the latents in overlapping tiles of this many pixels (diffusers' vae.enable_tiling()),
   * bounding the decoder's memory by one tile's; 0 or absent: in one piece.
   */
  vaeTile?: number;
  /** Image-to-image: the starting picture (its size sets the output size) and how much to change it. */
  initImage?: RgbImage;
  strength?: number;
}

export interface StepProgress {
  step: number; // 1-based
  total: number;
  elapsedMs: number;
}

export interface ImageResult {
  images: RgbImage[];
  width: number;
  height: number;
  /** The timesteps the UNet ran at. */
  timesteps: number[];
  scheduler: string;
  /** The final latents [n, C, h, w] (NCHW), before the VAE. */
  latents?: Float32Array;
}

/** Reads a JSON file of a pipeline folder, or null when it is absent. */
function readJsonIf(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new DiffusionLoadError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export class StableDiffusionPipeline {
  readonly ops: BackendDiffOps;
  readonly kind: 'sd' | 'sdxl';
  /** 2^(VAE blocks - 1): pixels per latent. */
  readonly vaeScale: number;
  /** The UNet's native picture size in pixels. */
  readonly nativeSize: number;
  /** Sizes must be multiples of this: the VAE's factor. */
  readonly sizeMultiple: number;
  private readonly tokenizer: ClipTokenizer;
  private readonly tokenizer2: ClipTokenizer | null;
  private readonly schedulerConfig: SchedulerConfigJson;
  private readonly forceZerosForEmptyPrompt: boolean;

  private constructor(readonly sd: StableDiffusion, be: Backend) {
    this.ops = new BackendDiffOps(be);
    this.kind = sd.textEncoder2 ? 'sdxl' : 'sd';
    this.vaeScale = 2 ** (sd.vae.config.blockOutChannels.length - 1);
    this.nativeSize = sd.unet.config.sampleSize * this.vaeScale;
    // any multiple of the VAE's factor, as diffusers' pipelines take (the UNet sizes its
    // upsamplers to the skips when the latents are not a multiple of 2^(levels - 1))
    this.sizeMultiple = this.vaeScale;
    this.tokenizer = sd.assets?.tokenizer ?? ClipTokenizer.load(join(sd.root, 'tokenizer'));
    this.tokenizer2 = sd.assets ? sd.assets.tokenizer2 : sd.textEncoder2 ? ClipTokenizer.load(join(sd.root, 'tokenizer_2')) : null;
    const sched = sd.assets?.schedulerConfig ?? readJsonIf(join(sd.root, 'scheduler', 'scheduler_config.json'));
    if (!sched) throw new DiffusionLoadError(`${join(sd.root, 'scheduler', 'scheduler_config.json')}: missing (the pipeline's scheduler settings)`);
    this.schedulerConfig = sched;
    const index = sd.assets ? { force_zeros_for_empty_prompt: sd.assets.forceZerosForEmptyPrompt } : (readJsonIf(join(sd.root, 'model_index.json')) ?? {});
    this.forceZerosForEmptyPrompt = this.kind === 'sdxl' && index.force_zeros_for_empty_prompt !== false;
  }

  /**
   * A diffusers folder (model_index.json and its component folders), or a single-file checkpoint
   * (.safetensors in the original layout; `config`: a diffusers folder describing it). `loras` are
   * merged into the weights at load (lora.ts).
   */
  static load(root: string, be: Backend, opts: { variant?: string; loras?: readonly LoraSpec[] } & SingleFileOptions = {}): StableDiffusionPipeline {
    const sd = statSync(root, { throwIfNoEntry: false })?.isFile() ? loadStableDiffusionSingleFile(root, opts) : loadStableDiffusion(root, opts);
    if (opts.loras?.length) applyLoras(sd, opts.loras, be);
    return new StableDiffusionPipeline(sd, be);
  }

  /** The scheduler a request asks for, configured from the model's scheduler_config.json. */
  scheduler(name?: string): Scheduler {
    try {
      return createScheduler(this.schedulerConfig, name);
    } catch (e) {
      throw new ImageRequestError('scheduler', (e as Error).message);
    }
  }

  /** Checks a request and fills in its defaults; throws ImageRequestError naming the field. */
  resolve(req: ImageRequest): Required<Omit<ImageRequest, 'negativePrompt' | 'initImage' | 'scheduler'>> & ImageRequest {
    const intIn = (field: string, v: number, lo: number, hi: number) => {
      if (!Number.isInteger(v) || v < lo || v > hi) throw new ImageRequestError(field, `${field} must be an integer from ${lo} to ${hi}, got ${v}`);
    };
    if (typeof req.prompt !== 'string') throw new ImageRequestError('prompt', 'prompt must be a string');
    intIn('steps', req.steps, 1, 1000);
    if (!Number.isFinite(req.guidance) || req.guidance < 0) throw new ImageRequestError('guidance', `guidance must be a number ≥ 0, got ${req.guidance}`);
    const rescale = req.guidanceRescale ?? 0;
    if (!Number.isFinite(rescale) || rescale < 0 || rescale > 1) throw new ImageRequestError('guidance_rescale', `guidance_rescale must be from 0 to 1, got ${rescale}`);
    intIn('seed', req.seed, 0, Number.MAX_SAFE_INTEGER);
    if (req.scheduler !== undefined) this.scheduler(req.scheduler); // an unknown name is an error now, not after the prompt is encoded
    const n = req.n ?? 1;
    intIn('n', n, 1, 16);
    let width = req.width ?? this.nativeSize, height = req.height ?? this.nativeSize;
    const tile = req.vaeTile ?? 0;
    if (!Number.isInteger(tile) || tile < 0 || (tile > 0 && (tile % this.vaeScale || tile < 4 * this.vaeScale))) {
      throw new ImageRequestError('vae_tile', `vae_tile must be 0 (off) or a multiple of ${this.vaeScale} of at least ${4 * this.vaeScale} pixels, got ${tile}`);
    }
    if (req.initImage) {
      // diffusers takes the picture's own size, rounded down to a multiple of the VAE's factor.
      width = req.initImage.width - (req.initImage.width % this.vaeScale);
      height = req.initImage.height - (req.initImage.height % this.vaeScale);
      if (width < this.vaeScale || height < this.vaeScale) throw new ImageRequestError('image', `the init image is ${req.initImage.width}x${req.initImage.height}; it must be at least ${this.vaeScale} pixels each way`);
      const s = req.strength ?? 0.8;
      if (!Number.isFinite(s) || s <= 0 || s > 1) throw new ImageRequestError('strength', `strength must be in (0, 1], got ${s}`);
      if (Math.min(Math.floor(req.steps * s), req.steps) < 1) throw new ImageRequestError('strength', `strength ${s} with ${req.steps} steps leaves no denoising step; raise one of them`);
    }
    const f = this.sizeMultiple;
    for (const [field, v] of [['width', width], ['height', height]] as const) {
      intIn(field, v, f, 4096);
      if (v % f) throw new ImageRequestError(field, `${field} must be a multiple of ${f}, got ${v}`);
    }
    return { ...req, guidanceRescale: rescale, n, width, height, strength: req.strength ?? 0.8, vaeTile: tile };
  }

  /** Token ids [77] of a prompt; warns (as diffusers does) when it had to cut the prompt. */
  private tokens(tok: ClipTokenizer, text: string, warn: (msg: string) => void): Int32Array {
    const r = tok.encode(text, { onTruncate: (removed) => warn(`the prompt was cut to CLIP's ${tok.maxLength} tokens; this part was dropped: "${removed}"`) });
    return Int32Array.from(r.ids);
  }

  /** The UNet's context [rows, 77, D] for one prompt (SD: last hidden state; SDXL: both encoders' penultimate) and SDXL's pooled embedding. */
  private encode(text: string, warn: (msg: string) => void): { context: Float32Array; pooled: Float32Array | null; T: number; D: number } {
    const o = this.ops;
    const enc = this.sd.textEncoder;
    const ids = this.tokens(this.tokenizer, text, warn);
    const out = clipTextForward(o, enc.config, enc.params, ids, 1);
    const e1 = promptEmbeds(o, enc.config, enc.params, out, this.kind);
    if (this.kind === 'sd') {
      const [, T, D] = e1.shape as [number, number, number];
      return { context: e1.toF32(), pooled: null, T, D };
    }
    const enc2 = this.sd.textEncoder2!;
    const ids2 = this.tokens(this.tokenizer2!, text, warn);
    const out2 = clipTextForward(o, enc2.config, enc2.params, ids2, 1);
    const e2 = promptEmbeds(o, enc2.config, enc2.params, out2, 'sdxl');
    const cat = o.concat(e1, e2);
    const [, T, D] = cat.shape as [number, number, number];
    return { context: cat.toF32(), pooled: out2.textEmbeds!.toF32(), T, D };
  }

  /**
   * Generates req.n images. `onStep` is called after every denoising step; `warn` receives
   * non-fatal notes (a truncated prompt).
   */
  generate(request: ImageRequest, onStep?: (p: StepProgress) => void, warn: (msg: string) => void = () => {}): ImageResult {
    const req = this.resolve(request);
    const o = this.ops;
    const { n, width, height } = req;
    const cfg = req.guidance > 1;
    const t0 = performance.now();
    const scheduler = this.scheduler(req.scheduler);

    // Prompt embeddings: negative rows first, as diffusers concatenates them.
    const pos = this.encode(req.prompt, warn);
    let neg: typeof pos | null = null;
    if (cfg) {
      if (this.kind === 'sdxl' && req.negativePrompt === undefined && this.forceZerosForEmptyPrompt) {
        neg = { context: new Float32Array(pos.context.length), pooled: new Float32Array(pos.pooled!.length), T: pos.T, D: pos.D };
      } else neg = this.encode(req.negativePrompt ?? '', warn);
    }
    const rows = cfg ? 2 * n : n;
    const ctx = new Float32Array(rows * pos.T * pos.D);
    for (let i = 0; i < n; i++) {
      if (neg) ctx.set(neg.context, i * neg.context.length);
      ctx.set(pos.context, (cfg ? n + i : i) * pos.context.length);
    }
    const context = Tensor.fromF32(ctx, [rows, pos.T, pos.D]);
    let textEmbeds: Tensor | undefined, timeIds: number[] | undefined;
    if (this.kind === 'sdxl') {
      const P = pos.pooled!.length;
      const pooled = new Float32Array(rows * P);
      for (let i = 0; i < n; i++) {
        if (neg) pooled.set(neg.pooled!, i * P);
        pooled.set(pos.pooled!, (cfg ? n + i : i) * P);
      }
      textEmbeds = Tensor.fromF32(pooled, [rows, P]);
      // original size, crop top-left, target size: (height, width), (0, 0), (height, width)
      timeIds = Array.from({ length: rows }, () => [height, width, 0, 0, height, width]).flat();
    }

    // Initial latents.
    const C = this.sd.unet.config.inChannels;
    const h = height / this.vaeScale, w = width / this.vaeScale;
    const shape = [n, C, h, w] as const;
    const gen = new TorchGenerator(req.seed);
    scheduler.setTimesteps(req.steps);
    let timesteps = [...scheduler.timesteps];
    let x: Float32Array;
    if (req.initImage) {
      const init = this.initLatents(req.initImage, width, height, gen);
      const initSteps = Math.min(Math.floor(req.steps * req.strength), req.steps);
      const tStart = Math.max(req.steps - initSteps, 0);
      timesteps = timesteps.slice(tStart * scheduler.order);
      scheduler.setBeginIndex(tStart * scheduler.order);
      const per = init.length;
      const batch = new Float32Array(n * per);
      for (let i = 0; i < n; i++) batch.set(init, i * per);
      const noise = randnTensor(shape, gen);
      x = scheduler.addNoise(batch, noise, timesteps[0]!);
    } else {
      const noise = randnTensor(shape, gen);
      const s = Math.fround(scheduler.initNoiseSigma);
      x = noise.map((v) => Math.fround(v * s));
    }

    // Denoising.
    const per = C * h * w;
    for (let i = 0; i < timesteps.length; i++) {
      const t = timesteps[i]!;
      let input = x;
      if (cfg) {
        input = new Float32Array(2 * n * per);
        input.set(x, 0);
        input.set(x, n * per);
      }
      const scaled = scheduler.scaleModelInput(input, t);
      const eps = toNchw(unetForward(o, this.sd.unet.config, this.sd.unet.params, { sample: fromNchw(scaled, [rows, C, h, w]), timesteps: [t], context, textEmbeds, timeIds }));
      let pred: Float32Array;
      if (cfg) {
        const g = Math.fround(req.guidance);
        const u = eps.subarray(0, n * per), c = eps.subarray(n * per);
        pred = new Float32Array(n * per);
        for (let k = 0; k < pred.length; k++) pred[k] = Math.fround(u[k]! + Math.fround(g * Math.fround(c[k]! - u[k]!)));
        if (req.guidanceRescale > 0) rescaleNoiseCfg(pred, c, n, req.guidanceRescale);
      } else pred = eps;
      x = scheduler.step(pred, t, x, gen);
      onStep?.({ step: i + 1, total: timesteps.length, elapsedMs: performance.now() - t0 });
    }

    // Decoding.
    const sf = Math.fround(this.sd.vae.config.scalingFactor);
    const z = x.map((v) => Math.fround(v / sf));
    const img = this.decode(z, [n, C, h, w], req.vaeTile ?? 0);
    const images: RgbImage[] = [];
    const HW = height * width;
    for (let b = 0; b < n; b++) {
      const data = new Uint8Array(HW * 3);
      for (let c = 0; c < 3; c++) {
        const src = img.subarray((b * 3 + c) * HW, (b * 3 + c + 1) * HW);
        for (let p = 0; p < HW; p++) data[p * 3 + c] = toByte(src[p]!);
      }
      images.push({ width, height, data });
    }
    return { images, width, height, timesteps, scheduler: scheduler.className, latents: x };
  }

  /** Latents (already / scaling_factor) -> NCHW pixels in [-1, 1], in tiles when the picture is larger than one. */
  decode(z: Float32Array, shape: readonly [number, number, number, number], tilePx: number): Float32Array {
    const o = this.ops, cfg = this.sd.vae.config, p = this.sd.vae.params;
    const one = (zz: Float32Array, s: readonly [number, number, number, number]) => toNchw(vaeDecode(o, cfg, p, fromNchw(zz, s)));
    const tileLatent = Math.trunc(tilePx / this.vaeScale);
    if (tilePx > 0 && (shape[2] > tileLatent || shape[3] > tileLatent)) {
      return tiledDecode(z, shape, tilePx, this.vaeScale, (zz, s) => ({ data: one(zz, s), shape: [s[0], 3, s[2] * this.vaeScale, s[3] * this.vaeScale] })).data;
    }
    return one(z, shape);
  }

  /** The init image's latents [1, C, h, w] × scaling_factor (one draw from the encoder's distribution). */
  private initLatents(image: RgbImage, width: number, height: number, gen: TorchGenerator): Float32Array {
    const o = this.ops;
    const px = resizeTo(image, width, height);
    const nhwc = new Float32Array(width * height * 3);
    for (let i = 0; i < nhwc.length; i++) nhwc[i] = Math.fround(Math.fround(px.data[i]! / 255) * 2 - 1);
    const moments = vaeEncode(o, this.sd.vae.config, this.sd.vae.params, Tensor.fromF32(nhwc, [1, height, width, 3]));
    const [, h, w, C2] = moments.shape as [number, number, number, number];
    const C = C2 / 2;
    const noise = randnTensor([1, C, h, w], gen);
    const { sample } = latentDist(moments, fromNchw(noise, [1, C, h, w]));
    const sf = Math.fround(this.sd.vae.config.scalingFactor);
    return toNchw(sample!).map((v) => Math.fround(sf * v));
  }
}

/** diffusers' postprocess: (x / 2 + 0.5).clamp(0, 1), × 255, rounded half to even (numpy). */
function toByte(v: number): number {
  let y = Math.fround(Math.fround(v / 2) + 0.5);
  y = y < 0 ? 0 : y > 1 ? 1 : y;
  const s = Math.fround(y * 255);
  const r = Math.round(s);
  return r - s === 0.5 && r % 2 === 1 ? r - 1 : r;
}

/** rescale_noise_cfg (arXiv 2305.08891 §3.4): per image, cfg × std(text) / std(cfg), mixed by `phi`. */
function rescaleNoiseCfg(cfg: Float32Array, text: Float32Array, n: number, phi: number): void {
  const per = cfg.length / n;
  const std = (a: Float32Array) => {
    let m = 0;
    for (const v of a) m += v;
    m /= a.length;
    let s = 0;
    for (const v of a) s += (v - m) ** 2;
    return Math.sqrt(s / (a.length - 1)); // torch.std: unbiased
  };
  for (let b = 0; b < n; b++) {
    const c = cfg.subarray(b * per, (b + 1) * per), t = text.subarray(b * per, (b + 1) * per);
    const ratio = Math.fround(std(t) / std(c));
    for (let k = 0; k < per; k++) c[k] = Math.fround(phi * Math.fround(c[k]! * ratio) + (1 - phi) * c[k]!);
  }
}

/**
 * The picture at width x height: as is when it already has that size; otherwise resized with
 * bilinear filtering (diffusers resizes with PIL's Lanczos: pass a picture whose sides are
 * multiples of 8 to match it exactly).
 */
function resizeTo(img: RgbImage, width: number, height: number): RgbImage {
  if (img.width === width && img.height === height) return img;
  const out = new Uint8Array(width * height * 3);
  const sx = img.width / width, sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5), y0 = Math.floor(fy), y1 = Math.min(img.height - 1, y0 + 1), ay = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5), x0 = Math.floor(fx), x1 = Math.min(img.width - 1, x0 + 1), ax = fx - x0;
      for (let c = 0; c < 3; c++) {
        const p = (yy: number, xx: number) => img.data[(yy * img.width + xx) * 3 + c]!;
        const v = (1 - ay) * ((1 - ax) * p(y0, x0) + ax * p(y0, x1)) + ay * ((1 - ax) * p(y1, x0) + ax * p(y1, x1));
        out[(y * width + x) * 3 + c] = Math.round(v);
      }
    }
  }
  return { width, height, data: out };
}

// The frozen halves of a training step, computed once per dataset: the VAE's latent distribution
// of every picture and the text encoder's embeddings of every distinct caption, with the
// inference networks (BackendDiffOps on the native backend, the very code `slipstream image`
// runs). They are written to <run>/cache/<key>.safetensors, the key a hash of the dataset's
// contents, the frozen weights' files, the resolution and this format's version, so a resumed
// run (or a second run on the same data) reads them back instead of recomputing.
//
//   latent_mean, latent_std  [N, h, w, C]   NHWC, unscaled (the trainer multiplies by scaling_factor
//                                           after taking the mean or a sample, as diffusers does)
//   context                  [U, T, D]      (absent when the text encoder is trained) row 0: the empty caption "" (caption dropout); then each
//                                           distinct caption. SD: last_hidden_state; SDXL: both encoders' penultimate
//                                           hidden states concatenated (pipeline.ts' encode)
//   pooled                   [U, P]         SDXL: text_encoder_2's text_embeds
//   ids, ids_2               [U, T]         the token ids (for training the text encoder)
//   caption                  [N]            the caption row of each picture
//   time_ids                 [N, 6]         SDXL: original size, crop top-left, target size

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensorsCheckpoint, writeSafetensors } from '../../formats/safetensors.ts';
import { readImage } from '../../formats/image.ts';
import type { Backend } from '../../tensor/backend.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { TrainError } from '../../train/errors.ts';
import { clipTextForward, promptEmbeds } from '../clip-text.ts';
import { ClipTokenizer } from '../clip-tokenizer.ts';
import type { StableDiffusion } from '../load.ts';
import { BackendDiffOps } from '../ops.ts';
import { latentDist, vaeEncode } from '../vae.ts';
import { centerCropResize, datasetHash, imageToUnit, type ImageDataset } from './data.ts';

const CACHE_VERSION = 2;
const ENCODE_BATCH = 8;

export interface DatasetCache {
  N: number;
  /** Latent grid [h, w, C]. */
  h: number;
  w: number;
  C: number;
  mean: Float32Array;
  std: Float32Array;
  /** Distinct captions. */
  U: number;
  T: number;
  D: number;
  /** null when the text encoder is trained (the ids are used instead). */
  context: Float32Array | null;
  pooled: Float32Array | null;
  P: number;
  ids: Int32Array;
  ids2: Int32Array | null;
  caption: Int32Array;
  timeIds: Float32Array | null;
  /** The cache file. */
  file: string;
  /** True when it was read from disk rather than computed. */
  reused: boolean;
}

/** The tokenizers of a pipeline, as pipeline.ts finds them. */
export function pipelineTokenizers(sd: StableDiffusion): { tok: ClipTokenizer; tok2: ClipTokenizer | null } {
  const tok = sd.assets?.tokenizer ?? ClipTokenizer.load(join(sd.root, 'tokenizer'));
  const tok2 = sd.assets ? sd.assets.tokenizer2 : sd.textEncoder2 ? ClipTokenizer.load(join(sd.root, 'tokenizer_2')) : null;
  return { tok, tok2 };
}

/** What the cache depends on besides the dataset: the frozen weights' files (path, size, mtime). */
function modelIdentity(sd: StableDiffusion): string {
  const files = [...sd.vae.params.ckpt.files, ...sd.textEncoder.params.ckpt.files, ...(sd.textEncoder2?.params.ckpt.files ?? [])];
  return files.map((f) => {
    const s = statSync(f);
    return `${f}:${s.size}:${s.mtimeMs}`;
  }).join('|');
}

export function cacheKey(ds: ImageDataset, sd: StableDiffusion, resolution: number, embeddings = true): string {
  return createHash('sha256').update(JSON.stringify({ v: CACHE_VERSION, data: datasetHash(ds), model: modelIdentity(sd), resolution, embeddings })).digest('hex').slice(0, 20);
}

/** Reads the cache for this dataset, model and resolution, or computes and writes it. */
export function datasetCache(runDir: string, ds: ImageDataset, sd: StableDiffusion, resolution: number, be: Backend, onProgress?: (done: number, total: number) => void, embeddings = true): DatasetCache {
  const f = 2 ** (sd.vae.config.blockOutChannels.length - 1);
  const mult = f * 2 ** (sd.unet.config.blockOutChannels.length - 1);
  if (!Number.isInteger(resolution) || resolution < mult || resolution % mult) throw new TrainError(`--resolution must be a positive multiple of ${mult} for this model, got ${resolution}`);
  const dir = join(runDir, 'cache');
  const file = join(dir, `${cacheKey(ds, sd, resolution, embeddings)}.safetensors`);
  if (existsSync(file)) return readCache(file);
  const c = computeCache(ds, sd, resolution, be, onProgress, embeddings);
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const b = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const e = (name: string, shape: number[], a: Float32Array) => ({ name, dtype: 'F32' as const, shape, data: b(a) });
  const ents = [
    e('latent_mean', [c.N, c.h, c.w, c.C], c.mean),
    e('latent_std', [c.N, c.h, c.w, c.C], c.std),
    e('ids', [c.U, c.T], Float32Array.from(c.ids)),
    e('caption', [c.N], Float32Array.from(c.caption)),
  ];
  if (c.context) ents.push(e('context', [c.U, c.T, c.D], c.context));
  if (c.pooled) ents.push(e('pooled', [c.U, c.P], c.pooled));
  if (c.ids2) ents.push(e('ids_2', [c.U, c.T], Float32Array.from(c.ids2)));
  if (c.timeIds) ents.push(e('time_ids', [c.N, 6], c.timeIds));
  try {
    writeSafetensors(tmp, ents, { format: 'pt', slipstream_cache: String(CACHE_VERSION) });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return { ...c, file, reused: false };
}

function readCache(file: string): DatasetCache {
  const ck = openSafetensorsCheckpoint(file);
  const f32 = (n: string) => ck.tensor(n).toF32().slice();
  const shape = (n: string) => ck.info(n).shape;
  const [N, h, w, C] = shape('latent_mean') as [number, number, number, number];
  const [U, T] = shape('ids') as [number, number];
  const D = ck.has('context') ? shape('context')[2]! : 0;
  const pooled = ck.has('pooled') ? f32('pooled') : null;
  return {
    N, h, w, C, U, T, D,
    mean: f32('latent_mean'),
    std: f32('latent_std'),
    context: ck.has('context') ? f32('context') : null,
    pooled,
    P: pooled ? shape('pooled')[1]! : 0,
    ids: Int32Array.from(f32('ids')),
    ids2: ck.has('ids_2') ? Int32Array.from(f32('ids_2')) : null,
    caption: Int32Array.from(f32('caption')),
    timeIds: ck.has('time_ids') ? f32('time_ids') : null,
    file,
    reused: true,
  };
}

function computeCache(ds: ImageDataset, sd: StableDiffusion, resolution: number, be: Backend, onProgress: ((done: number, total: number) => void) | undefined, embeddings: boolean): Omit<DatasetCache, 'file' | 'reused'> {
  const o = new BackendDiffOps(be);
  const sdxl = sd.textEncoder2 !== null;
  const N = ds.items.length;
  let mean: Float32Array | null = null, std: Float32Array | null = null;
  let h = 0, w = 0, C = 0;
  const timeIds = sdxl ? new Float32Array(N * 6) : null;
  const total = N + (embeddings ? new Set(['', ...ds.items.map((i) => i.caption)]).size : 0);
  let done = 0;
  // the encoder runs on ENCODE_BATCH pictures at a time (fewer, larger GEMMs: ~1.6x faster)
  const px = resolution * resolution * 3;
  for (let n0 = 0; n0 < N; n0 += ENCODE_BATCH) {
    const nb = Math.min(ENCODE_BATCH, N - n0);
    const batch = new Float32Array(nb * px);
    for (let j = 0; j < nb; j++) {
      const it = ds.items[n0 + j]!;
      let img;
      try {
        img = readImage(it.file);
      } catch (e) {
        throw new TrainError(`cannot use training image ${it.file}: ${(e as Error).message}`);
      }
      batch.set(imageToUnit(centerCropResize(img, resolution)), j * px);
      if (timeIds) {
        // diffusers' train_text_to_image_sdxl: original size, the crop's top-left after resizing the short side
        const s = Math.min(img.width, img.height), k = resolution / s;
        timeIds.set([img.height, img.width, Math.round(((img.height - s) / 2) * k), Math.round(((img.width - s) / 2) * k), resolution, resolution], (n0 + j) * 6);
      }
    }
    const d = latentDist(vaeEncode(o, sd.vae.config, sd.vae.params, Tensor.fromF32(batch, [nb, resolution, resolution, 3])));
    [, h, w, C] = d.mean.shape as [number, number, number, number];
    mean ??= new Float32Array(N * h * w * C);
    std ??= new Float32Array(N * h * w * C);
    mean.set(d.mean.toF32(), n0 * h * w * C);
    std.set(d.std.toF32(), n0 * h * w * C);
    done += nb;
    onProgress?.(done, total);
  }
  // row 0 is the empty caption, what caption dropout trains on (classifier-free guidance)
  const captions: string[] = [''];
  const row = new Map<string, number>([['', 0]]);
  const caption = Int32Array.from(ds.items.map((it) => {
    let r = row.get(it.caption);
    if (r === undefined) {
      r = captions.length;
      row.set(it.caption, r);
      captions.push(it.caption);
    }
    return r;
  }));
  const { tok, tok2 } = pipelineTokenizers(sd);
  const U = captions.length, T = tok.maxLength;
  const ids = new Int32Array(U * T), ids2 = tok2 ? new Int32Array(U * T) : null;
  let context: Float32Array | null = null, pooled: Float32Array | null = null;
  let D = 0, P = 0;
  captions.forEach((text, u) => {
    if (!embeddings) {
      ids.set(tok.encode(text).ids, u * T);
      if (ids2) ids2.set(tok2!.encode(text).ids, u * T);
      return;
    }
    const e = encodeCaption(o, sd, tok, tok2, text);
    ids.set(e.ids, u * T);
    if (ids2) ids2.set(e.ids2!, u * T);
    D = e.context.length / T;
    context ??= new Float32Array(U * T * D);
    context.set(e.context, u * T * D);
    if (e.pooled) {
      P = e.pooled.length;
      pooled ??= new Float32Array(U * P);
      pooled.set(e.pooled, u * P);
    }
    onProgress?.(++done, total);
  });
  return { N, h, w, C, mean: mean!, std: std!, U, T, D, context, pooled, P, ids, ids2, caption, timeIds };
}

/** One caption's token ids and embeddings, as the pipeline computes them for a prompt. */
export function encodeCaption(o: BackendDiffOps, sd: StableDiffusion, tok: ClipTokenizer, tok2: ClipTokenizer | null, text: string): { ids: Int32Array; ids2: Int32Array | null; context: Float32Array; pooled: Float32Array | null } {
  const kind = sd.textEncoder2 ? 'sdxl' : 'sd';
  const ids = Int32Array.from(tok.encode(text).ids);
  const enc = sd.textEncoder;
  const e1 = promptEmbeds(o, enc.config, enc.params, clipTextForward(o, enc.config, enc.params, ids, 1), kind);
  if (kind === 'sd') return { ids, ids2: null, context: e1.toF32(), pooled: null };
  const enc2 = sd.textEncoder2!;
  const ids2 = Int32Array.from(tok2!.encode(text).ids);
  const out2 = clipTextForward(o, enc2.config, enc2.params, ids2, 1);
  const e2 = promptEmbeds(o, enc2.config, enc2.params, out2, 'sdxl');
  return { ids, ids2, context: o.concat(e1, e2).toF32(), pooled: out2.textEmbeds!.toF32() };
}

// The image-caption dataset of `slipstream train-image`: a folder of PNG / JPEG pictures with
// their captions, in one of two layouts (both as people already keep them):
//
//   metadata.jsonl        one {"file_name": "a.png", "text": "a red circle"} per line: Hugging Face
//                         datasets' imagefolder layout (file_name relative to the folder)
//   a.png + a.txt         a caption file beside each picture (kohya / sd-scripts style)
//
// and DreamBooth's instance prompt: `instancePrompt` is the caption of every picture that has
// none (a folder of pictures of one subject needs no caption files at all).
//
// Every picture becomes a square of `resolution` pixels: the largest centred square is cut out
// (diffusers' train scripts resize the short side then CenterCrop: the same pixels) and resized
// with a triangle (bilinear, antialiased when shrinking) filter, as PIL's BILINEAR does. No
// aspect bucketing: one resolution per run keeps every batch one shape.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { readImage, type RgbImage } from '../../formats/image.ts';
import { TrainError } from '../../train/errors.ts';

export interface ImageItem {
  /** Absolute path of the picture. */
  file: string;
  caption: string;
}

export interface ImageDataset {
  dir: string;
  items: ImageItem[];
  /** How the captions were found: 'metadata.jsonl', 'txt', 'instance-prompt' or a mix. */
  source: string;
}

export interface DatasetOptions {
  /** DreamBooth: the caption of every picture without one. */
  instancePrompt?: string;
  /** The metadata.jsonl field holding the caption (default "text"). */
  captionColumn?: string;
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg']);

/** Lists a dataset folder's pictures and their captions; errors name the folder, line or picture. */
export function loadImageDataset(dir: string, opts: DatasetOptions = {}): ImageDataset {
  const st = statSync(dir, { throwIfNoEntry: false });
  if (!st) throw new TrainError(`--data ${dir}: no such folder`);
  if (!st.isDirectory()) throw new TrainError(`--data ${dir}: not a folder (expected a folder of images with metadata.jsonl or .txt captions)`);
  const col = opts.captionColumn ?? 'text';
  const prompt = opts.instancePrompt;
  const sources = new Set<string>();
  const items: ImageItem[] = [];
  const meta = join(dir, 'metadata.jsonl');
  if (existsSync(meta)) {
    const lines = readFileSync(meta, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      const where = `${meta} line ${i + 1}`;
      let j: unknown;
      try {
        j = JSON.parse(line);
      } catch (e) {
        throw new TrainError(`${where}: not valid JSON (${(e as Error).message})`);
      }
      if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new TrainError(`${where}: expected an object {"file_name": ..., "${col}": ...}`);
      const r = j as Record<string, unknown>;
      if (typeof r.file_name !== 'string' || r.file_name === '') throw new TrainError(`${where}: "file_name" must be a non-empty string`);
      const file = join(dir, r.file_name);
      if (!existsSync(file)) throw new TrainError(`${where}: image ${r.file_name} not found in ${dir}`);
      let caption = r[col];
      if (caption === undefined || caption === null || caption === '') {
        if (prompt === undefined) throw new TrainError(`${where}: image ${r.file_name} has no caption ("${col}"); add one, or give --instance-prompt`);
        caption = prompt;
        sources.add('instance-prompt');
      } else sources.add('metadata.jsonl');
      if (typeof caption !== 'string') throw new TrainError(`${where}: "${col}" must be a string`);
      items.push({ file, caption });
    });
  } else {
    const names = readdirSync(dir).filter((n) => IMAGE_EXT.has(extname(n).toLowerCase())).sort();
    for (const n of names) {
      const file = join(dir, n);
      const txt = join(dir, basename(n, extname(n)) + '.txt');
      if (existsSync(txt)) {
        items.push({ file, caption: readFileSync(txt, 'utf8').trim() });
        sources.add('txt');
      } else if (prompt !== undefined) {
        items.push({ file, caption: prompt });
        sources.add('instance-prompt');
      } else {
        throw new TrainError(`${file}: no caption (no ${basename(txt)} beside it and no metadata.jsonl in ${dir}); add one, or give --instance-prompt`);
      }
    }
  }
  if (items.length === 0) throw new TrainError(`--data ${dir}: no images (.png, .jpg, .jpeg) found`);
  return { dir, items, source: [...sources].join('+') };
}

/** Reads and prepares one picture: an error names the file. */
export function loadTrainImage(file: string, resolution: number): RgbImage {
  let img: RgbImage;
  try {
    img = readImage(file);
  } catch (e) {
    throw new TrainError(`cannot use training image ${file}: ${(e as Error).message}`);
  }
  return centerCropResize(img, resolution);
}

/** The largest centred square, resized to size x size with a triangle filter (antialiased when shrinking). */
export function centerCropResize(img: RgbImage, size: number): RgbImage {
  const s = Math.min(img.width, img.height);
  const x0 = Math.floor((img.width - s) / 2), y0 = Math.floor((img.height - s) / 2);
  // rows then columns, each a 1-D resample of the cropped square
  const scale = s / size, support = Math.max(1, scale);
  const weights = (o: number): { start: number; w: number[] } => {
    const c = (o + 0.5) * scale;
    const start = Math.max(0, Math.floor(c - support)), end = Math.min(s, Math.ceil(c + support));
    const w: number[] = [];
    let sum = 0;
    for (let i = start; i < end; i++) {
      const v = Math.max(0, 1 - Math.abs((i + 0.5 - c) / support));
      w.push(v);
      sum += v;
    }
    return { start, w: w.map((v) => v / sum) };
  };
  const taps = Array.from({ length: size }, (_, o) => weights(o));
  const tmp = new Float64Array(s * size * 3); // [s rows, size cols]
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < size; x++) {
      const { start, w } = taps[x]!;
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < w.length; k++) acc += w[k]! * img.data[((y0 + y) * img.width + x0 + start + k) * 3 + c]!;
        tmp[(y * size + x) * 3 + c] = acc;
      }
    }
  }
  const out = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    const { start, w } = taps[y]!;
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = 0; k < w.length; k++) acc += w[k]! * tmp[((start + k) * size + x) * 3 + c]!;
        out[(y * size + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  }
  return { width: size, height: size, data: out };
}

/** RGB bytes -> NHWC floats in [-1, 1] (diffusers' Normalize([0.5], [0.5])). */
export function imageToUnit(img: RgbImage): Float32Array {
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(Math.fround(img.data[i]! / 255) * 2 - 1);
  return out;
}

/** A hash of the dataset's contents (pictures' bytes and captions, in order). */
export function datasetHash(ds: ImageDataset): string {
  const h = createHash('sha256');
  for (const it of ds.items) {
    h.update(basename(it.file)).update('\0').update(it.caption).update('\0');
    try {
      h.update(readFileSync(it.file));
    } catch (e) {
      throw new TrainError(`cannot read training image ${it.file}: ${(e as Error).message}`);
    }
  }
  return h.digest('hex');
}

/**
 * The order of the pictures in an epoch: a Fisher-Yates shuffle seeded by (seed, epoch), so any
 * position (epoch, index) is reproduced after a resume without storing the permutation.
 */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  // splitmix32 on (seed, epoch): independent of the training RNG
  let s = (Math.imul(seed >>> 0, 0x9e3779b9) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 4294967296;
  };
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

// LoRA files for Stable Diffusion (the UNet and the text encoders), merged into the weights at
// load, as diffusers' fuse_lora computes it (models/lora.py, _fuse_lora):
//
//   W' = W + Σ_i scale_i × (alpha_i / r_i) × up_i · down_i        (alpha absent: alpha = r)
//
// one term per file that touches W, accumulated in f32 on the torch layout ([out, in] or
// [C_out, C_in, kh, kw]: up [C_out, r(,1,1)] · down [r, C_in·kh·kw]), rounded once to the
// weight's own dtype (f16 / bf16 / f32, as fuse_lora casts back), then laid out as load.ts lays
// out that weight (convolutions NHWC). The merged tensors replace the originals in the
// component's parameters; every other weight stays memory-mapped. After the merge the networks run
// at the base model's speed.
//
// The namings (kohya, diffusers, PEFT) are read in src/formats/sd-lora-keys.ts. Every tensor of a
// file must be used: a name that is no LoRA tensor, a module the pipeline lacks, a down without its
// up, or a shape that does not fit the weight is an error naming the file and the tensor. (No key
// is silently skipped: a LoRA that only partly applies gives a picture nobody asked for.)

import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { openSafetensorsCheckpoint, type Checkpoint } from '../formats/safetensors.ts';
import { kohyaFlatten, parseLoraKey, sgmToDiffusers, unknownKeyReason, type LoraComponent } from '../formats/sd-lora-keys.ts';
import type { Backend } from '../tensor/backend.ts';
import { convertTensor } from '../tensor/convert.ts';
import { Tensor } from '../tensor/tensor.ts';
import { convWeightToNhwc, DiffusionLoadError, type Component, type StableDiffusion } from './load.ts';

/** One --lora: a .safetensors file and its strength. */
export interface LoraSpec {
  file: string;
  scale: number;
}

/**
 * "file[:scale]" (scale 1 when absent). The scale is what follows the last ':' when the whole
 * string is not itself an existing file; it must be a finite number.
 */
export function parseLoraSpec(s: string): LoraSpec {
  const i = s.lastIndexOf(':');
  if (i < 0 || existsSync(s)) return { file: s, scale: 1 };
  const file = s.slice(0, i), t = s.slice(i + 1).trim();
  const scale = Number(t);
  if (t === '' || !Number.isFinite(scale)) throw new DiffusionLoadError(`LoRA "${s}": the scale after ':' must be a number (file[:scale], e.g. style.safetensors:0.8), got "${t}"`);
  if (file === '') throw new DiffusionLoadError(`LoRA "${s}": no file before ':'`);
  return { file, scale };
}

/** One low-rank pair, resolved to the weight it modifies. */
export interface LoraPair {
  component: LoraComponent;
  /** The modified weight's name (down_blocks.0.attentions.0.proj_in.weight). */
  weight: string;
  /** [r, in] or [r, C_in, kh, kw] */
  down: Tensor;
  /** [out, r] or [out, r, 1, 1] */
  up: Tensor;
  alpha: number | null;
  /** The file's name for the down tensor, for messages. */
  key: string;
}

export interface LoraFile {
  file: string;
  naming: string;
  pairs: LoraPair[];
}

const COMPONENTS: Record<LoraComponent, (sd: StableDiffusion) => Component<unknown> | null> = {
  unet: (sd) => sd.unet,
  text_encoder: (sd) => sd.textEncoder,
  text_encoder_2: (sd) => sd.textEncoder2,
};

/** flattened module path -> dotted weight name, for kohya names. */
function flatIndex(ck: Checkpoint): Map<string, string> {
  const m = new Map<string, string>();
  for (const n of ck.names()) if (n.endsWith('.weight') && ck.info(n).shape.length >= 2) m.set(kohyaFlatten(n.slice(0, -'.weight'.length)), n);
  return m;
}

/** Reads a LoRA file and resolves each of its pairs to a weight of `sd`; errors name the file and tensor. */
export function readSdLora(file: string, sd: StableDiffusion): LoraFile {
  if (!existsSync(file)) throw new DiffusionLoadError(`LoRA ${file}: no such file`);
  if (!statSync(file).isFile()) throw new DiffusionLoadError(`LoRA ${file}: not a file (expected a .safetensors LoRA)`);
  let ck: Checkpoint;
  try {
    ck = openSafetensorsCheckpoint(file);
  } catch (e) {
    throw new DiffusionLoadError(`LoRA ${file}: ${(e as Error).message}`);
  }
  const err = (msg: string) => new DiffusionLoadError(`LoRA ${file}: ${msg}`);
  const flat = new Map<LoraComponent, Map<string, string>>();
  const groups = new Map<string, { component: LoraComponent; module: string; flat: boolean; down?: string; up?: string; alpha?: string }>();
  const namings = new Set<string>();
  for (const key of ck.names()) {
    const k = parseLoraKey(key);
    if (!k) throw err(unknownKeyReason(key));
    namings.add(k.naming);
    const id = `${k.component}\0${k.module}`;
    const g = groups.get(id) ?? { component: k.component, module: k.module, flat: k.flat };
    g[k.part] = key;
    groups.set(id, g);
  }
  if (groups.size === 0) throw err('no LoRA tensors in the file');
  const pairs: LoraPair[] = [];
  for (const g of groups.values()) {
    const comp = COMPONENTS[g.component](sd);
    const first = g.down ?? g.up ?? g.alpha!;
    if (!comp) throw err(`"${first}" is for ${g.component}, which this pipeline (${sd.pipeline}) does not have`);
    if (!g.down || !g.up) throw err(`"${first}": ${g.down ? 'up' : 'down'} tensor missing (a LoRA pair needs both)`);
    const ckW = comp.params.ckpt;
    let weight: string | undefined;
    if (g.flat) {
      if (!flat.has(g.component)) flat.set(g.component, flatIndex(ckW));
      const idx = flat.get(g.component)!;
      const lpb = g.component === 'unet' ? ((sd.unet.config as { layersPerBlock: number }).layersPerBlock) : 0;
      weight = idx.get(g.module) ?? (g.component === 'unet' ? idx.get(sgmToDiffusers(g.module, lpb)) : undefined);
    } else if (ckW.has(`${g.module}.weight`)) weight = `${g.module}.weight`;
    if (!weight) throw err(`"${g.down}": ${g.component} has no weight for module "${g.module}"`);
    const down = ck.tensor(g.down), up = ck.tensor(g.up);
    let alpha: number | null = null;
    if (g.alpha) {
      const a = ck.tensor(g.alpha);
      if (a.numel !== 1) throw err(`"${g.alpha}": alpha must be a single number, got shape [${a.shape.join(', ')}]`);
      alpha = a.toF32()[0]!;
    }
    const wShape = ckW.info(weight).shape;
    checkShapes(g.down, down.shape, up.shape, wShape, weight, err);
    pairs.push({ component: g.component, weight, down, up, alpha, key: g.down });
  }
  return { file, naming: [...namings].join('+'), pairs };
}

function checkShapes(key: string, d: readonly number[], u: readonly number[], w: readonly number[], weight: string, err: (m: string) => Error): void {
  const bad = (why: string) => err(`"${key}": down [${d.join(', ')}] and up [${u.join(', ')}] do not fit ${weight} [${w.join(', ')}] (${why})`);
  if ((d.length !== 2 && d.length !== 4) || (u.length !== 2 && u.length !== 4)) throw bad('down and up must be 2-D or 4-D');
  const r = d[0]!;
  if (u[1] !== r) throw bad(`rank ${r} in down, ${u[1]} in up`);
  if (u.length === 4 && (u[2] !== 1 || u[3] !== 1)) throw bad('up must be a 1x1 convolution');
  if (u[0] !== w[0]) throw bad('output size');
  const dIn = d.slice(1).reduce((a, b) => a * b, 1), wIn = w.slice(1).reduce((a, b) => a * b, 1);
  if (dIn !== wIn) throw bad('input size');
  if (d.length === 4 && w.length === 4 && (d[2] !== w[2] || d[3] !== w[3])) throw bad('kernel size');
}

/** What was merged, for logs. */
export interface LoraSummary {
  file: string;
  scale: number;
  naming: string;
  weights: number;
}

/**
 * Reads every LoRA file and merges them into `sd`'s weights (see the top of this file). All
 * files are read and checked before anything is merged.
 */
export function applyLoras(sd: StableDiffusion, specs: readonly LoraSpec[], be: Backend): LoraSummary[] {
  const files = specs.map((s) => {
    if (!Number.isFinite(s.scale)) throw new DiffusionLoadError(`LoRA ${s.file}: scale must be a finite number, got ${s.scale}`);
    return readSdLora(s.file, sd);
  });
  // weight -> the terms to add
  const byWeight = new Map<string, { comp: Component<unknown>; weight: string; terms: { pair: LoraPair; s: number }[] }>();
  files.forEach((f, i) => {
    for (const pair of f.pairs) {
      const id = `${pair.component}\0${pair.weight}`;
      const e = byWeight.get(id) ?? { comp: COMPONENTS[pair.component](sd)!, weight: pair.weight, terms: [] };
      const r = pair.down.shape[0]!;
      e.terms.push({ pair, s: specs[i]!.scale * (pair.alpha === null ? 1 : pair.alpha / r) });
      byWeight.set(id, e);
    }
  });
  for (const { comp, weight, terms } of byWeight.values()) {
    const w = comp.params.ckpt.tensor(weight);
    const out = w.shape[0]!, inner = w.numel / out;
    const acc = w.toF32().slice(); // [out, in·kh·kw], torch layout
    for (const { pair, s } of terms) {
      if (s === 0) continue;
      const r = pair.down.shape[0]!;
      // delta[out, K] = up[out, r] · down[r, K] = up · (downᵀ)ᵀ: the backend's x · wᵀ with w = downᵀ [K, r]
      const dn = pair.down.toF32(), dT = new Float32Array(inner * r);
      for (let j = 0; j < r; j++) for (let k = 0; k < inner; k++) dT[k * r + j] = dn[j * inner + k]!;
      const delta = Tensor.zeros([out, inner]);
      be.matmul(Tensor.fromF32(pair.up.toF32().slice(), [out, r]), Tensor.fromF32(dT, [inner, r]), delta);
      const dv = delta.toF32();
      for (let k = 0; k < acc.length; k++) acc[k] = Math.fround(acc[k]! + Math.fround(s * dv[k]!));
    }
    // Back to the file's dtype, as diffusers' fuse_lora casts the fused weight to the model's
    // (f16 stays f16: the memory of the base model, and its matmul kernels).
    let merged = Tensor.fromF32(acc, w.shape);
    if (w.dtype !== 'f32') merged = convertTensor(merged, w.dtype);
    if (merged.ndim === 4) merged = convWeightToNhwc(merged);
    comp.params.replace(weight, merged);
  }
  return files.map((f, i) => ({ file: f.file, scale: specs[i]!.scale, naming: f.naming, weights: f.pairs.length }));
}

/**
 * The "Lora: …" entry of a PNG's parameters text (empty without LoRAs): name:scale, several
 * separated by ", " and quoted, as A1111 writes values that hold commas.
 */
export function loraParameter(loras: readonly LoraSpec[]): string {
  if (!loras.length) return '';
  const v = loras.map(loraLabel).join(', ');
  return `Lora: ${loras.length > 1 ? JSON.stringify(v) : v}`;
}

/** "name:scale" as the PNG parameters text records a LoRA (the file's name without .safetensors). */
export function loraLabel(s: LoraSpec): string {
  return `${basename(s.file).replace(/\.safetensors$/i, '')}:${s.scale}`;
}

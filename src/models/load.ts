// Loading a model from what users bring: a Hugging Face directory (config.json + safetensors +
// tokenizer.json), a GGUF file, or `hf:org/name[@revision]` (downloaded into the local cache).
// Weights stay memory-mapped where their dtype runs as is; layout conversions come from
// src/formats/layout.ts.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../formats/errors.ts';
import { readJson } from '../formats/json.ts';
import { readGguf, ggufTensor, type GgufFile } from '../formats/gguf.ts';
import { gemmaNormToGguf, hfLayoutChange, hfToGgufName, ropeFreqsToScaling, transposeBytes } from '../formats/layout.ts';
import { configFromGguf, configFromHf, longRopeFromGguf, type ModelConfig } from '../formats/model-config.ts';
import { openSafetensorsCheckpoint, type Checkpoint } from '../formats/safetensors.ts';
import { Tokenizer } from '../formats/tokenizer.ts';
import { tokenizerFromGguf } from '../formats/gguf-tokenizer.ts';
import { downloadModel, parseModelSpec, type HubOptions } from '../formats/hub.ts';
import type { Backend } from '../tensor/backend.ts';
import { convertTensor } from '../tensor/convert.ts';
import { bytesFor } from '../tensor/dtype.ts';
import { allocResident, dropPages } from '../tensor/runtime.ts';
import { Tensor } from '../tensor/tensor.ts';
import { FORWARD } from './families.ts';
import { Model, type LayerWeights, type Weights } from './model.ts';
import { buildWeights, type WeightSource } from './weights.ts';
import { type LoraAdapter, mergeLora, readLoraAdapter } from './lora.ts';

export interface LoadOptions {
  /**
   * Quantize f32/f16/bf16 weight matrices at load: q8_0 (every matrix whose rows are whole blocks
   * of 32; a GGUF's other quantized types are requantized to q8_0 too), or q4_k (llama.cpp's
   * reference Q4_K quantizer; the LM head, output.weight or the tied token_embd, in Q6_K as in every
   * llama.cpp k-quant mix; rows that are not whole super-blocks of 256 in q8_0; a GGUF's quantized
   * tensors stay as stored).
   */
  quantize?: LoadQuant;
  /**
   * Weight matrices stay in the file mapping (true, the default: no copy, the page cache is
   * shared between processes) or are copied into one block of anonymous memory with huge pages
   * requested, the mapped pages given back (false, `--no-mmap`). Which streams faster depends on
   * where the kernel put the pages: on our VMs a freshly allocated block was up to 25% faster
   * than page-cache pages that had been resident for a long time, and equal otherwise. The copy
   * costs load time (first-touch of new memory is slow on a VM).
   */
  mmap?: boolean;
  hub?: HubOptions;
  /** A PEFT LoRA adapter directory merged into the weights at load (Hugging Face bases only). */
  lora?: string;
}

export type LoadQuant = 'q8_0' | 'q4_k';
export const LOAD_QUANTS: readonly LoadQuant[] = ['q8_0', 'q4_k'];

export interface GenerationDefaults {
  temperature?: number;
  topK?: number;
  topP?: number;
}

export interface LoadedModel {
  model: Model;
  tokenizer: Tokenizer;
  config: ModelConfig;
  /** The file or directory the weights came from. */
  path: string;
  format: 'safetensors' | 'gguf';
  generation: GenerationDefaults;
  /** Bytes of weights (as held in memory: mapped or converted). */
  weightBytes: number;
}

export { FORWARD };
export { readJson };

const isMatrixName = (name: string) => name.endsWith('.weight') && !/norm\.weight$/.test(name) && name !== 'position_embd.weight' && !name.endsWith('ffn_gate_inp.weight');

/**
 * Norms and biases become f32 copies; matrices stay as stored unless quantized at load. `lmHead`:
 * the tensor is the LM head (output.weight, or token_embd.weight when the output is tied to it).
 */
function finish(name: string, t: Tensor, opts: LoadOptions, lmHead: boolean): Tensor {
  if (t.shape.length === 1) return t.dtype === 'f32' && t.data.byteOffset % 4 === 0 ? t : convertTensor(t, 'f32');
  const cols = t.shape[t.shape.length - 1]!;
  if (opts.quantize === 'q8_0' && isMatrixName(name) && t.dtype !== 'q8_0' && cols % 32 === 0) return convertTensor(t, 'q8_0');
  if (opts.quantize === 'q4_k' && isMatrixName(name) && (t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'bf16')) {
    if (cols % 256 === 0) return convertTensor(t, lmHead ? 'q6_k' : 'q4_k');
    if (cols % 32 === 0) return convertTensor(t, 'q8_0');
  }
  return t;
}

export class HfSource implements WeightSource {
  readonly file: string;
  private readonly map = new Map<string, string>(); // internal name (#expert) -> HF name
  constructor(
    private readonly ckpt: Checkpoint,
    private readonly cfg: ModelConfig,
    private readonly opts: LoadOptions,
    private readonly lora: LoraAdapter | null = null,
  ) {
    this.file = ckpt.path;
    if (lora) {
      for (const name of lora.deltas.keys()) {
        if (!ckpt.has(name)) throw new FormatError(lora.dir, `the adapter targets ${name}, which the base model (${ckpt.path}) does not have: is it an adapter for another model?`);
      }
    }
    for (const hf of ckpt.names()) {
      let m;
      try {
        m = hfToGgufName(cfg.arch, hf);
      } catch (e) {
        throw new FormatError(ckpt.path, (e as Error).message);
      }
      if (m) this.map.set(m.expert === undefined ? m.name : `${m.name}#${m.expert}`, hf);
    }
  }
  has(name: string): boolean {
    return this.map.has(name) || this.map.has(`${name}#0`);
  }
  /** Internal names present (experts collapsed), with the expert count of stacked tensors. */
  names(): Map<string, number> {
    const out = new Map<string, number>();
    for (const k of this.map.keys()) {
      const [n, e] = k.split('#') as [string, string | undefined];
      out.set(n, e === undefined ? 0 : Math.max(out.get(n) ?? 0, Number(e) + 1));
    }
    return out;
  }
  get(name: string, expert?: number): Tensor | undefined {
    const hf = this.map.get(expert === undefined ? name : `${name}#${expert}`);
    if (!hf) return undefined;
    let t = this.ckpt.tensor(hf);
    const { arch } = this.cfg;
    const delta = this.lora?.deltas.get(hf);
    if (delta) t = mergeLora(t, delta, this.lora!.scale, hf, this.lora!.dir);
    const change = hfLayoutChange(arch, name, t.shape.length);
    if (change.transpose) {
      // Conv1D stores [in, out]; Slipstream's linear weights are [out, in].
      const [rows, cols] = t.shape as [number, number];
      t = new Tensor(t.dtype, [cols, rows], transposeBytes(t.data, rows, cols, bytesFor(t.dtype, 1)));
    }
    if (change.gemmaNorm) {
      t = Tensor.fromF32(gemmaNormToGguf(t.toF32()), t.shape);
    }
    return finish(name, t, this.opts, name === 'output.weight' || (name === 'token_embd.weight' && !this.has('output.weight')));
  }
}

class GgufSource implements WeightSource {
  readonly file: string;
  private readonly decoded = new Map<string, Tensor>();
  constructor(
    private readonly g: GgufFile,
    private readonly opts: LoadOptions,
  ) {
    this.file = g.path;
  }
  has(name: string): boolean {
    return this.g.tensors.has(name);
  }
  get(name: string, expert?: number): Tensor | undefined {
    if (!this.g.tensors.has(name)) return undefined;
    // Stacked experts are asked for once per expert: decode a Q4 tensor once, not E times.
    let t = this.decoded.get(name);
    if (!t) this.decoded.set(name, (t = ggufTensor(this.g, name, { q8: this.opts.quantize === 'q8_0' })));
    if (expert !== undefined) {
      // Experts stacked as [n_experts, rows, cols]: a zero-copy view of one.
      const [E, r, c] = t.shape as [number, number, number];
      if (t.shape.length !== 3 || expert >= E) throw new FormatError(this.g.path, `tensor ${name} of shape [${t.shape.join(', ')}] has no expert ${expert}`);
      t = t.view([r, c], undefined, expert * r * c);
    }
    return finish(name, t, this.opts, name === 'output.weight' || (name === 'token_embd.weight' && !this.has('output.weight')));
  }
}

/** Every distinct weight tensor of a model, with a setter to replace it. */
function weightSlots(w: Weights): { t: Tensor; set: (t: Tensor) => void }[] {
  const out: { t: Tensor; set: (t: Tensor) => void }[] = [];
  const slot = <O extends object>(o: O, k: keyof O) => {
    const t = o[k] as unknown as Tensor | undefined;
    if (t instanceof Tensor) out.push({ t, set: (v) => ((o[k] as unknown as Tensor) = v) });
  };
  slot(w, 'tokEmbd'); slot(w, 'posEmbd'); slot(w, 'outNorm'); slot(w, 'outNormB'); slot(w, 'output');
  for (const L of w.layers) {
    for (const k of Object.keys(L) as (keyof LayerWeights)[]) if (k !== 'experts') slot(L, k);
    for (const e of L.experts ?? []) (slot(e, 'gate'), slot(e, 'up'), slot(e, 'down'));
  }
  return out;
}

/**
 * Copies the weight matrices that still live in a file mapping into one anonymous block (huge
 * pages requested), then drops the mapped pages from this process, so resident memory is the
 * weights once. Tensors already in memory (converted or quantized at load) stay where they are.
 */
function makeResident(w: Weights): void {
  const slots = weightSlots(w).filter((s) => s.t.shape.length >= 2 && s.t.isContiguous());
  const unique = [...new Set(slots.map((s) => s.t))];
  const align = 64;
  let total = 0;
  for (const t of unique) total += Math.ceil(bytesFor(t.dtype, t.numel) / align) * align;
  if (total === 0) return;
  const arena = new Uint8Array(allocResident(total, true));
  const moved = new Map<Tensor, Tensor>();
  let off = 0;
  for (const t of unique) {
    const n = bytesFor(t.dtype, t.numel);
    const dst = arena.subarray(off, off + n);
    dst.set(t.data.subarray(0, n));
    dropPages(t.data.subarray(0, n));
    moved.set(t, new Tensor(t.dtype, t.shape, dst));
    off += Math.ceil(n / align) * align;
  }
  for (const s of slots) s.set(moved.get(s.t)!);
}

/**
 * Gives the backend each weight matrix once, so that one that repacks weights at first use (the
 * cpu backend's prepacked q4_k on AVX2) does it now rather than inside the first request: the
 * server calls this before it reports ready. Returns the number of matrices the backend packed
 * and the seconds it took; a no-op on backends that keep weights as they are.
 */
export function prepareWeights(m: Model, be: Backend): { matrices: number; seconds: number } {
  if (!be.prepareWeight) return { matrices: 0, seconds: 0 };
  const t0 = performance.now();
  let matrices = 0;
  const w = m.weights;
  for (const t of new Set(weightSlots(w).map((s) => s.t))) {
    // the embedding tables are gathered from, not multiplied (unless tied to the output)
    if ((t === w.tokEmbd || t === w.posEmbd) && t !== w.output) continue;
    if (t.shape.length === 2 && be.prepareWeight(t)) matrices++;
  }
  return { matrices, seconds: (performance.now() - t0) / 1000 };
}

function weightBytesOf(m: Model): number {
  let n = 0;
  for (const t of new Set(weightSlots(m.weights).map((s) => s.t))) n += bytesFor(t.dtype, t.numel);
  return n;
}

/** Loads a model directory, a .gguf file, or an hf:org/name[@rev] spec. */
export async function loadModel(spec: string, be: Backend, opts: LoadOptions = {}): Promise<LoadedModel> {
  let path = spec;
  if (parseModelSpec(spec)) path = await downloadModel(spec, { progress: true, ...opts.hub });
  return loadModelSync(path, be, opts);
}

export function loadModelSync(path: string, be: Backend, opts: LoadOptions = {}): LoadedModel {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new FormatError(path, 'no such file or directory (expected a model directory, a .gguf file or hf:org/name)');
  if (st.isFile()) {
    if (!path.endsWith('.gguf')) throw new FormatError(path, 'not a .gguf file (a Hugging Face model is loaded from its directory)');
    return loadGguf(path, be, opts);
  }
  return loadHfDir(path, be, opts);
}

function loadHfDir(dir: string, be: Backend, opts: LoadOptions): LoadedModel {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new FormatError(dir, 'no config.json: not a Hugging Face model directory');
  const genPath = join(dir, 'generation_config.json');
  const gen = existsSync(genPath) ? readJson(genPath) : undefined;
  const config = configFromHf(readJson(cfgPath), cfgPath, gen);
  const tokenizer = Tokenizer.fromDir(dir);
  const ckpt = openSafetensorsCheckpoint(dir);
  const lora = opts.lora ? readLoraAdapter(opts.lora) : null;
  const weights = buildWeights(config, new HfSource(ckpt, config, opts, lora));
  if (opts.mmap === false) makeResident(weights);
  mergeSpecialIds(config, tokenizer);
  checkVocab(config, tokenizer, dir);
  const model = new Model(config, weights, be, FORWARD[config.arch]);
  const generation: GenerationDefaults = {};
  if (gen) {
    if (typeof gen.temperature === 'number') generation.temperature = gen.temperature;
    if (typeof gen.top_k === 'number') generation.topK = gen.top_k;
    if (typeof gen.top_p === 'number') generation.topP = gen.top_p;
    if (gen.do_sample === false) generation.temperature = 0;
  }
  return { model, tokenizer, config, path: dir, format: 'safetensors', generation, weightBytes: weightBytesOf(model) };
}

function loadGguf(path: string, be: Backend, opts: LoadOptions): LoadedModel {
  if (opts.lora) throw new FormatError(opts.lora, `LoRA adapters are merged into Hugging Face model directories; ${path} is a GGUF (convert it with \`slipstream convert\` first)`);
  const g = readGguf(path);
  const config = configFromGguf(g.metadata, path);
  config.tieEmbeddings = !g.tensors.has('output.weight');
  if (g.tensors.has('rope_freqs.weight') && config.rope) {
    const f = ggufTensor(g, 'rope_freqs.weight').toF32();
    try {
      config.rope.scaling = ropeFreqsToScaling(f, config.rope.theta, config.rope.dim);
    } catch (e) {
      throw new FormatError(path, (e as Error).message);
    }
  }
  if (g.tensors.has('rope_factors_short.weight') && config.rope) {
    if (!g.tensors.has('rope_factors_long.weight')) throw new FormatError(path, 'rope_factors_short without rope_factors_long');
    config.rope.scaling = longRopeFromGguf(g.metadata, config, ggufTensor(g, 'rope_factors_short.weight').toF32(), ggufTensor(g, 'rope_factors_long.weight').toF32());
  }
  const tokenizer = tokenizerFromGguf(g.metadata, path);
  const weights = buildWeights(config, new GgufSource(g, opts));
  if (opts.mmap === false) makeResident(weights);
  mergeSpecialIds(config, tokenizer);
  checkVocab(config, tokenizer, path);
  const model = new Model(config, weights, be, FORWARD[config.arch]);
  return { model, tokenizer, config, path, format: 'gguf', generation: {}, weightBytes: weightBytesOf(model) };
}

function mergeSpecialIds(cfg: ModelConfig, tok: Tokenizer): void {
  cfg.eosIds = [...new Set([...cfg.eosIds, ...tok.eosIds])];
  if (cfg.bosId === null) cfg.bosId = tok.bosId;
}

function checkVocab(cfg: ModelConfig, tok: Tokenizer, file: string): void {
  // Embedding tables are often padded past the tokenizer's vocabulary; the reverse is an error.
  if (tok.vocabSize > cfg.vocabSize) {
    throw new FormatError(file, `the tokenizer has ${tok.vocabSize} tokens but the model's vocabulary is ${cfg.vocabSize}`);
  }
}

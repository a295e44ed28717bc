// Checkpoint conversion both ways:
//   Hugging Face directory -> GGUF with llama.cpp's tensor names, metadata and RoPE permutation
//   (so llama.cpp loads what we write), weight matrices in f32, f16, q8_0, or llama.cpp's
//   k-quant mixes q4_k_m / q5_k_m / q6_k (per-tensor rules in quant-mix.ts);
//   GGUF -> Hugging Face directory (config.json, tokenizer files, safetensors in f32/f16/bf16).
// The layout changes themselves live in src/formats/layout.ts.

import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FormatError } from '../formats/errors.ts';
import { GGML_TYPE, ggufTensor, readGguf, writeGguf, type GgufWriteTensor } from '../formats/gguf.ts';
import { ggufTokenizerMetadata, tokenizerFromGguf } from '../formats/gguf-tokenizer.ts';
import {
  gemmaNormFromGguf, ggufToHfName, isGemmaArch, llama3RopeFreqs, permuteForInterleavedRope, ropeFreqsToScaling, shapeToGgufDims, transposeBytes,
  unpermuteFromInterleavedRope,
} from '../formats/layout.ts';
import {
  configFromGguf, configFromHf, configToGgufMetadata, configToHf, ggufArchName, hfConfigJson, longRopeFromGguf, type ModelConfig,
} from '../formats/model-config.ts';
import { createProgress } from '../formats/progress.ts';
import { openSafetensorsCheckpoint, writeShardedSafetensors, type StWriteInput } from '../formats/safetensors.ts';
import { Tokenizer } from '../formats/tokenizer.ts';
import { convertTensor } from '../tensor/convert.ts';
import { bytesFor, isKQuant, isLegacyQuant, type DType } from '../tensor/dtype.ts';
import { Tensor } from '../tensor/tensor.ts';
import { HfSource, readJson } from './load.ts';

import { FILE_TYPE, ggufTensorDType, type GgufOutType, type MixModel } from './quant-mix.ts';

export type { GgufOutType } from './quant-mix.ts';
const GGML_OF: Record<DType, number> = { f32: GGML_TYPE.F32, f16: GGML_TYPE.F16, bf16: GGML_TYPE.BF16, q8_0: GGML_TYPE.Q8_0, q4_k: GGML_TYPE.Q4_K, q5_k: GGML_TYPE.Q5_K, q6_k: GGML_TYPE.Q6_K, q4_0: GGML_TYPE.Q4_0, q4_1: GGML_TYPE.Q4_1, q5_0: GGML_TYPE.Q5_0, q5_1: GGML_TYPE.Q5_1, iq4_nl: GGML_TYPE.IQ4_NL, q2_k: GGML_TYPE.Q2_K, q3_k: GGML_TYPE.Q3_K, iq4_xs: GGML_TYPE.IQ4_XS };

/** llama.cpp's "llama" architecture rotates interleaved pairs: its q/k rows are permuted. */
function permutesRope(c: ModelConfig): boolean {
  return ggufArchName(c.arch) === 'llama';
}

function rowPermute(c: ModelConfig, name: string, t: Tensor, inverse: boolean): Tensor {
  const m = /attn_(q|k)\.(weight|bias)$/.exec(name);
  if (!m || !permutesRope(c)) return t;
  const heads = m[1] === 'q' ? c.nHeads : c.nKvHeads;
  const rows = t.shape[0]!;
  const rowBytes = bytesFor(t.dtype, t.shape.length > 1 ? t.shape[1]! : 1);
  const f = inverse ? unpermuteFromInterleavedRope : permuteForInterleavedRope;
  return new Tensor(t.dtype, t.shape, f(t.data, rows, rowBytes, heads));
}

/** Which dtype a tensor is written in (quant-mix.ts): 1-D tensors and the MoE router stay f32 (as llama.cpp does). */
function outDType(name: string, shape: readonly number[], type: GgufOutType, mix: MixModel): DType {
  return ggufTensorDType(name, shape, type, mix);
}

export interface ConvertOptions {
  type: GgufOutType;
  progress?: boolean;
}

/** Hugging Face directory -> GGUF file. */
export function hfToGguf(dir: string, out: string, opts: ConvertOptions): { tensors: number; bytes: number } {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new FormatError(dir, 'no config.json: not a Hugging Face model directory');
  const genPath = join(dir, 'generation_config.json');
  const cfg = configFromHf(readJson(cfgPath), cfgPath, existsSync(genPath) ? readJson(genPath) : undefined);
  const tok = Tokenizer.fromDir(dir);
  const src = new HfSource(openSafetensorsCheckpoint(dir), cfg, {});

  const md = configToGgufMetadata(cfg, basename(dir), FILE_TYPE[opts.type]);
  for (const [k, v] of ggufTokenizerMetadata(tok, { vocabSize: cfg.vocabSize })) md.set(k, v);

  const mix: MixModel = { nLayers: cfg.nLayers, tiedEmbeddings: cfg.tieEmbeddings || !src.has('output.weight'), nExperts: cfg.nExperts, nGqa: Math.floor(cfg.nHeads / cfg.nKvHeads) };
  const tensors: GgufWriteTensor[] = [];
  const add = (name: string, shape: number[], dtype: DType, make: () => Uint8Array) =>
    tensors.push({ name, type: GGML_OF[dtype], dims: shapeToGgufDims(shape), data: make });

  if (cfg.rope?.scaling?.type === 'llama3') {
    const f = llama3RopeFreqs(cfg.rope.scaling, cfg.rope.theta, cfg.rope.dim);
    add('rope_freqs.weight', [f.length], 'f32', () => new Uint8Array(f.buffer));
  }
  if (cfg.rope?.scaling?.type === 'longrope') {
    // Phi-3: llama.cpp reads LongRoPE's per-pair divisors as two tensors (short below the original context, long past it)
    const short = Float32Array.from(cfg.rope.scaling.shortFactor), long = Float32Array.from(cfg.rope.scaling.longFactor);
    add('rope_factors_long.weight', [long.length], 'f32', () => new Uint8Array(long.buffer));
    add('rope_factors_short.weight', [short.length], 'f32', () => new Uint8Array(short.buffer));
  }
  for (const [name, experts] of src.names()) {
    if (cfg.tieEmbeddings && name === 'output.weight') continue;
    if (experts > 0) {
      // Mixtral: experts stacked into one [n_experts, rows, cols] tensor.
      const first = src.get(name, 0)!;
      const dt = outDType(name, [experts, ...first.shape], opts.type, mix);
      add(name, [experts, ...first.shape], dt, () => {
        const parts = Array.from({ length: experts }, (_, e) => convertTensor(src.get(name, e)!, dt).data);
        const buf = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
        let o = 0;
        for (const p of parts) (buf.set(p, o), (o += p.byteLength));
        return buf;
      });
      continue;
    }
    const t0 = src.get(name)!;
    const dt = outDType(name, t0.shape, opts.type, mix);
    add(name, [...t0.shape], dt, () => convertTensor(rowPermute(cfg, name, src.get(name)!, false), dt).data);
  }
  // Progress in bytes written; the bar is created once the writer knows the total.
  let bar: ReturnType<typeof createProgress> | null = null;
  let bytes = 0;
  writeGguf(out, md, tensors, {
    onProgress: (done, all) => {
      bytes = all;
      bar ??= createProgress(`convert ${basename(out)}`, all, { enabled: opts.progress ? undefined : false });
      bar.update(done);
    },
  });
  (bar as ReturnType<typeof createProgress> | null)?.stop();
  return { tensors: tensors.length, bytes };
}

/** GGUF file -> Hugging Face directory (f32 for quantized tensors, f32/f16/bf16 kept as stored). */
export function ggufToHf(file: string, outDir: string, opts: { progress?: boolean } = {}): { tensors: number } {
  const g = readGguf(file);
  const cfg = configFromGguf(g.metadata, file);
  cfg.tieEmbeddings = !g.tensors.has('output.weight');
  if (g.tensors.has('rope_freqs.weight') && cfg.rope) {
    cfg.rope.scaling = ropeFreqsToScaling(ggufTensor(g, 'rope_freqs.weight').toF32(), cfg.rope.theta, cfg.rope.dim);
  }
  if (g.tensors.has('rope_factors_short.weight') && cfg.rope) {
    cfg.rope.scaling = longRopeFromGguf(g.metadata, cfg, ggufTensor(g, 'rope_factors_short.weight').toF32(), ggufTensor(g, 'rope_factors_long.weight').toF32());
  }
  const tok = tokenizerFromGguf(g.metadata, file);
  mkdirSync(outDir, { recursive: true });
  const out: StWriteInput[] = [];
  const bar = createProgress(`export ${basename(outDir)}`, g.tensors.size, { unit: 'items', enabled: opts.progress ? undefined : false });
  for (const name of g.tensors.keys()) {
    bar.increment(1);
    if (name === 'rope_freqs.weight' || name.startsWith('rope_factors_')) continue;
    let t = ggufTensor(g, name);
    if (t.dtype === 'q8_0' || isKQuant(t.dtype) || isLegacyQuant(t.dtype)) t = convertTensor(t, 'f32');
    t = rowPermute(cfg, name, t, true);
    if (isGemmaArch(cfg.arch) && name.endsWith('norm.weight')) t = Tensor.fromF32(gemmaNormFromGguf(t.toF32()), t.shape);
    if (cfg.arch === 'gpt2' && t.shape.length === 2 && /attn_qkv|attn_output|ffn_up|ffn_down/.test(name)) {
      const [rows, cols] = t.shape as [number, number];
      t = new Tensor(t.dtype, [cols, rows], transposeBytes(t.data, rows, cols, bytesFor(t.dtype, 1)));
    }
    if (t.shape.length === 3) {
      const [E, r, c] = t.shape as [number, number, number];
      for (let e = 0; e < E; e++) out.push({ name: ggufToHfName(cfg.arch, name, e)!, tensor: t.view([r, c], undefined, e * r * c) });
      continue;
    }
    const hf = ggufToHfName(cfg.arch, name);
    if (hf) out.push({ name: hf, tensor: t });
  }
  bar.stop();
  writeFileSync(join(outDir, 'config.json'), hfConfigJson(configToHf(cfg)));
  writeFileSync(join(outDir, 'tokenizer.json'), JSON.stringify(tok.json));
  const tcfg: Record<string, unknown> = { ...(tok.config as Record<string, unknown>) };
  if (tok.chatTemplate && !tcfg.chat_template) tcfg.chat_template = tok.chatTemplate;
  writeFileSync(join(outDir, 'tokenizer_config.json'), JSON.stringify(tcfg, null, 2) + '\n');
  writeShardedSafetensors(outDir, out, 4 * 1024 ** 3);
  return { tensors: out.length };
}

// LoRA adapters in PEFT's layout (adapter_config.json + adapter_model.safetensors), merged into
// the base weights at load: W' = W + (alpha / r) B A (alpha / sqrt(r) with use_rslora). Merged
// weights run at exactly the base model's speed; the adapter's names and shapes are checked
// against the base before anything is merged.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../formats/errors.ts';
import { openSafetensorsCheckpoint } from '../formats/safetensors.ts';
import { Tensor } from '../tensor/tensor.ts';
import { readJson } from '../formats/json.ts';

export interface LoraDelta {
  /** [r, in] */
  A: Float32Array;
  /** [out, r] */
  B: Float32Array;
  r: number;
  inDim: number;
  outDim: number;
}

export interface LoraAdapter {
  dir: string;
  scale: number;
  /** By the HF name of the base weight (model.layers.0.self_attn.q_proj.weight). */
  deltas: Map<string, LoraDelta>;
}

export function readLoraAdapter(dir: string): LoraAdapter {
  const cfgPath = join(dir, 'adapter_config.json');
  if (!existsSync(cfgPath)) throw new FormatError(dir, 'no adapter_config.json: not a PEFT LoRA adapter directory');
  const cfg = readJson(cfgPath);
  if (cfg.peft_type !== undefined && cfg.peft_type !== 'LORA') throw new FormatError(cfgPath, `peft_type is ${JSON.stringify(cfg.peft_type)}; only LORA adapters are supported`);
  const r = cfg.r;
  const alpha = cfg.lora_alpha ?? r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new FormatError(cfgPath, `"r" must be a positive integer, got ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw new FormatError(cfgPath, `"lora_alpha" must be a number, got ${JSON.stringify(alpha)}`);
  if (cfg.fan_in_fan_out === true) throw new FormatError(cfgPath, 'fan_in_fan_out adapters (GPT-2 Conv1D) are not supported');
  const scale = cfg.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r;
  const file = join(dir, 'adapter_model.safetensors');
  if (!existsSync(file)) throw new FormatError(dir, 'no adapter_model.safetensors');
  const ck = openSafetensorsCheckpoint(file);
  const deltas = new Map<string, LoraDelta>();
  const parts = new Map<string, { A?: Tensor; B?: Tensor }>();
  for (const name of ck.names()) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    if (!m) throw new FormatError(file, `unexpected tensor ${name} (expected base_model.model.<module>.lora_A.weight / lora_B.weight)`);
    const key = `${m[1]}.weight`;
    const p = parts.get(key) ?? {};
    p[m[2] as 'A' | 'B'] = ck.tensor(name);
    parts.set(key, p);
  }
  for (const [key, p] of parts) {
    if (!p.A || !p.B) throw new FormatError(file, `${key}: lora_A and lora_B must both be present`);
    const [ra, inDim] = p.A.shape as [number, number];
    const [outDim, rb] = p.B.shape as [number, number];
    if (p.A.shape.length !== 2 || p.B.shape.length !== 2 || ra !== r || rb !== r) {
      throw new FormatError(file, `${key}: lora_A is [${p.A.shape}] and lora_B is [${p.B.shape}], expected [${r}, in] and [out, ${r}]`);
    }
    deltas.set(key, { A: p.A.toF32().slice(), B: p.B.toF32().slice(), r, inDim, outDim });
  }
  if (deltas.size === 0) throw new FormatError(file, 'the adapter holds no LoRA tensors');
  return { dir, scale, deltas };
}

/** W + scale * B A, as an f32 tensor (W of any float dtype, [out, in]). */
export function mergeLora(w: Tensor, d: LoraDelta, scale: number, name: string, file: string): Tensor {
  if (w.shape.length !== 2 || w.shape[0] !== d.outDim || w.shape[1] !== d.inDim) {
    throw new FormatError(file, `${name}: the adapter is for a [${d.outDim}, ${d.inDim}] weight but the base model's is [${w.shape.join(', ')}]`);
  }
  const m = w.toF32().slice();
  addLowRank(m, d, scale);
  return Tensor.fromF32(m, w.shape);
}

/** w[out, in] += scale * B[out, r] A[r, in], in place. */
export function addLowRank(w: Float32Array, d: LoraDelta, scale: number): void {
  const { A, B, r, inDim, outDim } = d;
  for (let o = 0; o < outDim; o++) {
    const row = w.subarray(o * inDim, (o + 1) * inDim);
    for (let j = 0; j < r; j++) {
      const c = scale * B[o * r + j]!;
      if (c === 0) continue;
      const a = A.subarray(j * inDim, (j + 1) * inDim);
      for (let i = 0; i < inDim; i++) row[i]! += c * a[i]!;
    }
  }
}

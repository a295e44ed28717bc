// The benchmark models: random-weight Llamas in the stories110M, TinyLlama-1.1B and Llama-3-8B
// shapes, made once into bench/out/models/ (no weights can be downloaded here). Types: q8_0 and
// f16, the simple quant types, and llama.cpp's k-quant mixes (q4_k_m: Q4_K with Q6_K for the
// output and some attn_v / ffn_down, as a published Q4_K_M file has them).

import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createProgress, type Progress } from '../src/formats/progress.ts';
import { writeRandomGguf, type RandomModelSpec } from '../src/models/random.ts';

export const SHAPES: Record<string, RandomModelSpec> = {
  tinyllama: { arch: 'llama', vocabSize: 32000, dim: 2048, nLayers: 22, nHeads: 32, nKvHeads: 4, ffnDim: 5632, maxPosition: 2048 },
  stories110m: { arch: 'llama', vocabSize: 32000, dim: 768, nLayers: 12, nHeads: 12, nKvHeads: 12, ffnDim: 2048, maxPosition: 1024 },
  // Llama-3-8B: 128k vocabulary, GQA 4:1, untied LM head (maxPosition bounds the KV cache the
  // engines allocate, not the model)
  'llama3-8b': { arch: 'llama', vocabSize: 128256, dim: 4096, nLayers: 32, nHeads: 32, nKvHeads: 8, ffnDim: 14336, maxPosition: 2048, ropeTheta: 500000, tie: false },
};

export const BENCH_TYPES = ['q8_0', 'f16', 'q4_0', 'q4_k_m', 'q5_k_m', 'q6_k'] as const;
export type BenchType = (typeof BENCH_TYPES)[number];

export function benchModelFile(name: string, type: BenchType): string {
  if (!SHAPES[name]) throw new Error(`unknown model '${name}' (${Object.keys(SHAPES).join(', ')})`);
  if (!BENCH_TYPES.includes(type)) throw new Error(`unknown type '${type}' (${BENCH_TYPES.join(', ')})`);
  const dir = join(import.meta.dirname, 'out', 'models');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${name}-random-${type}.gguf`);
  if (!existsSync(f)) {
    process.stderr.write(`making ${f} (random weights, once)...\n`);
    let bar: Progress | null = null;
    writeRandomGguf(f + '.tmp', SHAPES[name]!, type, 1, (done, total) => {
      bar ??= createProgress(`${name} ${type}: tensors`, total, { unit: 'items' });
      bar.update(done);
    });
    (bar as Progress | null)?.stop();
    renameSync(f + '.tmp', f);
  }
  return f;
}

// The benchmark models: random-weight Llamas in the TinyLlama-1.1B and stories110M shapes, made
// once into bench/out/models/ (no weights can be downloaded here).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeRandomGguf, type RandomModelSpec } from '../src/models/random.ts';

export const SHAPES: Record<string, RandomModelSpec> = {
  tinyllama: { arch: 'llama', vocabSize: 32000, dim: 2048, nLayers: 22, nHeads: 32, nKvHeads: 4, ffnDim: 5632, maxPosition: 2048 },
  stories110m: { arch: 'llama', vocabSize: 32000, dim: 768, nLayers: 12, nHeads: 12, nKvHeads: 12, ffnDim: 2048, maxPosition: 1024 },
};

export function benchModelFile(name: string, type: 'q8_0' | 'f16'): string {
  if (!SHAPES[name]) throw new Error(`unknown model '${name}' (${Object.keys(SHAPES).join(', ')})`);
  const dir = join(import.meta.dirname, 'out', 'models');
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `${name}-random-${type}.gguf`);
  if (!existsSync(f)) {
    process.stderr.write(`making ${f} (random weights, once)...\n`);
    writeRandomGguf(f, SHAPES[name]!, type, 1);
  }
  return f;
}

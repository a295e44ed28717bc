// Writes the tiny random Hugging Face checkpoints whose reference logits scripts/hf_reference.py
// computes with transformers (one directory per family, plus the prompts to run).
//   node --import tsx scripts/make-hf-fixtures.ts test/fixtures/hf
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Arch } from '../src/formats/model-config.ts';
import { writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';

const root = process.argv[2] ?? 'test/fixtures/hf';
const SPECS: Record<Arch, RandomModelSpec> = {
  llama: { arch: 'llama', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 256 },
  mistral: { arch: 'mistral', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 1, ffnDim: 96, maxPosition: 256, slidingWindow: 8 },
  mixtral: { arch: 'mixtral', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 64, maxPosition: 256, nExperts: 4 },
  gemma: { arch: 'gemma', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 2, nKvHeads: 1, headDim: 32, ffnDim: 128, maxPosition: 256 },
  gemma2: { arch: 'gemma2', vocabSize: 320, dim: 64, nLayers: 3, nHeads: 4, nKvHeads: 2, headDim: 16, ffnDim: 128, maxPosition: 256, slidingWindow: 6 },
  qwen2: { arch: 'qwen2', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 96, maxPosition: 256 },
  gpt2: { arch: 'gpt2', vocabSize: 320, dim: 64, nLayers: 2, nHeads: 4, ffnDim: 256, maxPosition: 64 },
};
const PROMPTS = [[1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17], [1, 3, 99]];
for (const [arch, spec] of Object.entries(SPECS)) {
  const dir = join(root, arch);
  mkdirSync(dir, { recursive: true });
  writeRandomHfModel(dir, spec, 3);
  writeFileSync(join(dir, 'prompts.json'), JSON.stringify(PROMPTS));
  console.log(`wrote ${dir}`);
}

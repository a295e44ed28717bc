// Writes the tiny random Hugging Face checkpoints whose reference logits scripts/hf_reference.py
// computes with transformers (one directory per family, plus the prompts to run).
//   node --import tsx scripts/make-hf-fixtures.ts test/fixtures/hf
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';

const root = process.argv[2] ?? 'test/fixtures/hf';
const PROMPTS = [[1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17], [1, 3, 99]];
for (const [arch, spec] of Object.entries(TINY_SPECS)) {
  const dir = join(root, arch);
  mkdirSync(dir, { recursive: true });
  writeRandomHfModel(dir, spec, 3);
  writeFileSync(join(dir, 'prompts.json'), JSON.stringify(PROMPTS));
  console.log(`wrote ${dir}`);
}

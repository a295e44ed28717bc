// Rebuilds Slipstream's embedded default model from nothing but this repository:
//
//   npm run recipe:default-model          (all four stages)
//   node --import tsx recipes/default-model/build.ts [--stage corpus|tokenizer|train|export|all]
//
// `npx slipstream train --config recipes/default-model/train.json` also works on its own: the
// config names stages.ts as its "prepare" step, which builds the corpus and the tokenizer first
// when they are missing.
//
//   1. corpus     out/corpus.jsonl: procedurally generated children's stories (corpus.ts; no
//                 downloads, no copied text: license-clean by construction)
//   2. tokenizer  out/tokenizer: a 4,096-token byte-level BPE trained on that corpus
//   3. train      out/run: train.json (a 6-layer Llama, 256 wide) with `slipstream train`;
//                 resumable: rerun after an interruption and it continues from the last checkpoint
//   4. export     models/default: the weights as f16 safetensors + config + tokenizer (what
//                 `slipstream serve` and `slipstream generate` load when no --model is given),
//                 the loss curve (loss.png) and a sample (SAMPLE.md)
//
// Every stage is deterministic for the seeds in this folder, so a rerun gives a model of the
// same quality (bit-identical on the same machine and thread count).

import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CORPUS_PATH, CORPUS_SEED, CORPUS_STORIES, OUT_DIR, RECIPE_DIR, TOKENIZER_DIR, VOCAB_SIZE, buildCorpus, buildTokenizer } from './stages.ts';

const here = RECIPE_DIR;
const root = join(here, '..', '..');
const out = OUT_DIR;
export const DEFAULT_MODEL_DIR = join(root, 'models', 'default');
export { CORPUS_SEED, CORPUS_STORIES, VOCAB_SIZE };

const { values } = parseArgs({ options: { stage: { type: 'string', default: 'all' }, threads: { type: 'string' } } });
const stage = values.stage!;
const want = (s: string) => stage === 'all' || stage === s;

if (want('corpus')) buildCorpus(CORPUS_PATH, { stories: CORPUS_STORIES, seed: CORPUS_SEED });
if (want('tokenizer')) await buildTokenizer(CORPUS_PATH, TOKENIZER_DIR, VOCAB_SIZE);

if (want('train')) {
  const { loadTrainConfig } = await import('../../src/train/config.ts');
  const { runWithProgress } = await import('../../src/cli/train.ts');
  const r = await runWithProgress(loadTrainConfig(join(here, 'train.json')), join(out, 'loss.png'), values.threads);
  if (r === null || r.stoppedAt !== undefined) process.exit(0); // stopped by a signal: resume with the same command
}

if (want('export')) {
  const { exportDefaultModel } = await import('./export.ts');
  await exportDefaultModel(join(out, 'run'), DEFAULT_MODEL_DIR, join(out, 'loss.png'));
}


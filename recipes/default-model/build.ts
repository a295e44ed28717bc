// Rebuilds Slipstream's embedded default model from nothing but this repository:
//
//   node --import tsx recipes/default-model/build.ts [--stage corpus|tokenizer|train|export|all]
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

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateCorpus } from './corpus.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(here, 'out');
export const DEFAULT_MODEL_DIR = join(root, 'models', 'default');
export const CORPUS_STORIES = 50_000;
export const CORPUS_SEED = 1;
export const VOCAB_SIZE = 4096;

const { values } = parseArgs({ options: { stage: { type: 'string', default: 'all' }, threads: { type: 'string' } } });
const stage = values.stage!;
const want = (s: string) => stage === 'all' || stage === s;
mkdirSync(out, { recursive: true });

const corpusPath = join(out, 'corpus.jsonl');
if (want('corpus')) {
  const t0 = Date.now();
  const stories = generateCorpus({ stories: CORPUS_STORIES, seed: CORPUS_SEED });
  writeFileSync(corpusPath, stories.map((s) => JSON.stringify({ text: s })).join('\n') + '\n');
  console.log(`corpus: ${stories.length} stories -> ${corpusPath} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

const tokDir = join(out, 'tokenizer');
if (want('tokenizer')) {
  const { trainBpe, writeBpeTokenizer } = await import('../../src/train/bpe.ts');
  const t0 = Date.now();
  const { readTextDocuments } = await import('../../src/train/data.ts');
  const texts = readTextDocuments(corpusPath);
  mkdirSync(tokDir, { recursive: true });
  writeBpeTokenizer(tokDir, trainBpe(texts, { vocabSize: VOCAB_SIZE }), { bos: '<s>', eos: '</s>' });
  console.log(`tokenizer: ${VOCAB_SIZE} tokens -> ${tokDir} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

if (want('train')) {
  const { loadTrainConfig } = await import('../../src/train/config.ts');
  const { runWithProgress } = await import('../../src/cli/train.ts');
  await runWithProgress(loadTrainConfig(join(here, 'train.json')), join(out, 'loss.png'), values.threads);
}

if (want('export')) {
  const { exportDefaultModel } = await import('./export.ts');
  await exportDefaultModel(join(out, 'run'), DEFAULT_MODEL_DIR, join(out, 'loss.png'));
}


// The default-model recipe's first two stages as functions, so that `slipstream train --config
// recipes/default-model/train.json` can run them itself: train.json names this module as its
// "prepare" step, and `train` calls prepare() when the corpus or the tokenizer is missing.
//
//   corpus     out/corpus.jsonl: procedurally generated children's stories (corpus.ts)
//   tokenizer  out/tokenizer: a 4,096-token byte-level BPE trained on that corpus
//
// Each stage writes to a temporary name and renames at the end, so an interrupted stage leaves
// nothing that a later run would mistake for a finished one.

import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCorpus } from './corpus.ts';

export const RECIPE_DIR = dirname(fileURLToPath(import.meta.url));
export const OUT_DIR = join(RECIPE_DIR, 'out');
export const CORPUS_PATH = join(OUT_DIR, 'corpus.jsonl');
export const TOKENIZER_DIR = join(OUT_DIR, 'tokenizer');
export const CORPUS_STORIES = 50_000;
export const CORPUS_SEED = 1;
export const VOCAB_SIZE = 4096;

type Log = (msg: string) => void;

/** Stage 1: `stories` generated stories as JSONL ({"text": ...} per line). */
export function buildCorpus(path: string, o: { stories: number; seed: number }, log: Log = console.log): void {
  const t0 = Date.now();
  const stories = generateCorpus({ stories: o.stories, seed: o.seed });
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path + '.tmp', stories.map((s) => JSON.stringify({ text: s })).join('\n') + '\n');
  renameSync(path + '.tmp', path);
  log(`corpus: ${stories.length} stories -> ${path} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** Stage 2: a byte-level BPE tokenizer of `vocabSize` tokens trained on the corpus. */
export async function buildTokenizer(corpus: string, dir: string, vocabSize: number, log: Log = console.log): Promise<void> {
  const { trainBpe, writeBpeTokenizer } = await import('../../src/train/bpe.ts');
  const { readTextDocuments } = await import('../../src/train/data.ts');
  const t0 = Date.now();
  const tmp = dir + '.tmp';
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeBpeTokenizer(tmp, trainBpe(readTextDocuments(corpus), { vocabSize }), { bos: '<s>', eos: '</s>' });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  log(`tokenizer: ${vocabSize} tokens -> ${dir} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

export interface PrepareOptions {
  corpus?: string;
  tokenizer?: string;
  stories?: number;
  seed?: number;
  vocabSize?: number;
  log?: Log;
}

/**
 * Runs the stages whose output is missing (a tokenizer is retrained when the corpus had to be
 * regenerated). Returns the stages it ran. `slipstream train` calls it with no options.
 */
export async function prepare(o: PrepareOptions = {}): Promise<string[]> {
  const corpus = o.corpus ?? CORPUS_PATH, tok = o.tokenizer ?? TOKENIZER_DIR, log = o.log ?? console.log;
  const ran: string[] = [];
  if (!existsSync(corpus)) {
    buildCorpus(corpus, { stories: o.stories ?? CORPUS_STORIES, seed: o.seed ?? CORPUS_SEED }, log);
    ran.push('corpus');
  }
  if (ran.includes('corpus') || !existsSync(join(tok, 'tokenizer.json'))) {
    await buildTokenizer(corpus, tok, o.vocabSize ?? VOCAB_SIZE, log);
    ran.push('tokenizer');
  }
  return ran;
}

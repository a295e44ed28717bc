// Writes what scripts/hf_reference.py feeds to Hugging Face transformers (see
// test/helpers/hf-fixtures.ts): one tiny random checkpoint per fixture with its prompts, a
// LoRA adapter, a tokenizer trained by our BPE trainer, and cases.json (strings to tokenize,
// chat templates, the BPE training corpus and options).
//   node --import tsx scripts/make-hf-fixtures.ts hf-in
//   python3 scripts/hf_reference.py hf-in test/fixtures/hf-reference.json models/default   (PyTorch, transformers, peft)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeBpeTokenizer } from '../src/train/bpe.ts';
import {
  BPE_OPTIONS, CHAT_CASES, HF_FIXTURES, HF_GRAD_PROMPT, HF_PROMPTS, HF_TEXTS, bpeCorpus, fixtureBpe, LORA_BASE, writeHfFixture, writeLoraFixture,
} from '../test/helpers/hf-fixtures.ts';

const root = process.argv[2];
if (!root) {
  console.error('usage: node --import tsx scripts/make-hf-fixtures.ts OUT_DIR');
  process.exit(2);
}
mkdirSync(join(root, 'models'), { recursive: true });
for (const f of HF_FIXTURES) {
  const dir = join(root, 'models', f.name);
  writeHfFixture(dir, f);
  writeFileSync(join(dir, 'prompts.json'), JSON.stringify({ prompts: HF_PROMPTS, gradPrompt: HF_GRAD_PROMPT }));
  console.log(`wrote ${dir}`);
}
writeLoraFixture(join(root, 'models', LORA_BASE), join(root, 'lora'));
writeBpeTokenizer(join(root, 'bpe'), fixtureBpe());
writeFileSync(join(root, 'cases.json'), JSON.stringify({ texts: HF_TEXTS, chat: CHAT_CASES, bpe: { ...BPE_OPTIONS, corpus: bpeCorpus() } }));
console.log(`wrote ${join(root, 'bpe')} and ${join(root, 'cases.json')}`);

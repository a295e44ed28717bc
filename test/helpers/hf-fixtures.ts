// What scripts/hf_reference.py runs through Hugging Face transformers, and what
// test/hf-reference.test.ts checks Slipstream against: tiny random checkpoints of every family
// (plus variants for RoPE scaling and Gemma 2's query scale), the prompts they are run on, strings
// to tokenize, chat templates to render, and a corpus to train a byte-level BPE tokenizer on.
//
// The checkpoints are not committed: both sides rebuild them from these definitions (the random
// weights are seeded, src/models/random.ts). Only transformers' answers are committed, in
// test/fixtures/hf-reference.json.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateCorpus } from '../../recipes/default-model/corpus.ts';
import { TINY_SPECS, writeRandomHfModel, type RandomModelSpec } from '../../src/models/random.ts';
import { readJson } from '../../src/formats/json.ts';
import { configFromHf, hfConfigJson, type Arch, type ModelConfig } from '../../src/formats/model-config.ts';
import { trainBpe, type BpeModel } from '../../src/train/bpe.ts';
import { LORA_TARGETS, TrainModel, readHfWeights } from '../../src/train/model.ts';
import { TrainRng } from '../../src/train/rng.ts';

export interface HfFixture {
  name: string;
  spec: RandomModelSpec;
  seed: number;
  /** Merged into the generated config.json. */
  config?: Record<string, unknown>;
}

export const HF_FIXTURES: readonly HfFixture[] = [
  ...(Object.keys(TINY_SPECS) as Arch[]).map((a) => ({ name: a, spec: TINY_SPECS[a], seed: 3 })),
  // Llama 3.1 scaling: with head dim 16 and theta 1e4 the wavelengths run from 6.3 to 2e4
  // positions, so an original context of 32 (high/low thresholds 8 and 32) puts frequencies in
  // all three regimes: kept, interpolated, divided by the factor.
  {
    name: 'llama-rope-llama3',
    spec: TINY_SPECS.llama,
    seed: 4,
    config: { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } },
  },
  { name: 'llama-rope-linear', spec: TINY_SPECS.llama, seed: 5, config: { rope_scaling: { rope_type: 'linear', factor: 4 } } },
  // Gemma 2 27B scales queries by 1/sqrt(dim / heads), not 1/sqrt(head_dim).
  { name: 'gemma2-query-scale', spec: TINY_SPECS.gemma2, seed: 6, config: { query_pre_attn_scalar: 24 } },
];

/** Token ids to run (vocabulary 320). The third runs past every sliding window of the fixtures. */
export const HF_PROMPTS: readonly (readonly number[])[] = [
  [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17],
  [1, 3, 99],
  [1, 7, 311, 64, 64, 64, 128, 5, 19, 250, 250, 3, 88, 147, 200, 31, 2, 9, 301, 47, 47, 100, 6, 72, 219, 15, 160, 44, 4, 290, 12, 77],
];
/** The prompt whose mean next-token cross-entropy gradients are compared. */
export const HF_GRAD_PROMPT = 2;

/** A model directory's config as the trainer needs it (no weights loaded). */
export function fixtureConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  return configFromHf(readJson(file), file);
}

export function writeHfFixture(dir: string, f: HfFixture): void {
  writeRandomHfModel(dir, f.spec, f.seed);
  if (f.config) {
    const file = join(dir, 'config.json');
    writeFileSync(file, hfConfigJson({ ...JSON.parse(readFileSync(file, 'utf8')), ...f.config }));
  }
}

/**
 * A rank-4 LoRA adapter on every projection of a fixture's model, written by our trainer's
 * writeAdapter (PEFT's layout). B is random (training starts it at zero, which would test nothing).
 */
export const LORA_BASE = 'llama';
export function writeLoraFixture(baseDir: string, adapterDir: string): void {
  const m = new TrainModel(fixtureConfig(baseDir), readHfWeights(baseDir));
  const rng = new TrainRng(17);
  m.addLora({ rank: 4, alpha: 8, dropout: 0, targets: LORA_TARGETS }, rng, false);
  for (const a of m.lora.values()) rng.fillNormal(a.B.data, 0.05);
  m.writeAdapter(adapterDir, LORA_BASE);
}

/** Strings tokenized by every fixture's tokenizer, the default model's and the trained BPE one. */
export const HF_TEXTS: readonly string[] = [
  'Hello world',
  'Once upon a time, there was a little girl named Lily.',
  '  leading spaces and trailing  ',
  'line one\nline two\n\n\ttabbed',
  'numbers 12345 and 3.14159, symbols #@!$%^&*()',
  'naïve café – “quotes” 日本語 🙂',
  "don't won't it's we'll",
  '</s> inside text <s>',
  '',
];

export interface ChatCase {
  name: string;
  template: string;
  messages: { role: string; content: string }[];
  addGenerationPrompt: boolean;
  tools?: unknown[];
}

const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Llama 2's shape written out: system folded into the first user turn, roles must alternate,
// trim_blocks / lstrip_blocks decide the whitespace between the block tags.
const INST = `{{ bos_token }}
{% if messages[0]['role'] == 'system' %}
    {% set sys = messages[0]['content'] %}
    {% set msgs = messages[1:] %}
{% else %}
    {% set sys = '' %}
    {% set msgs = messages %}
{% endif %}
{% for m in msgs %}
    {% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {% endif %}
    {% if m['role'] == 'user' %}
        {{ '[INST] ' + (('<<SYS>>\\n' + sys + '\\n<</SYS>>\\n\\n') if loop.first and sys else '') + m['content'].strip() + ' [/INST]' }}
    {% else %}
        {{ ' ' + m['content'].strip() + ' ' + eos_token }}
    {% endif %}
{% endfor %}`;

// Tools rendered with tojson, a namespace counter and loop.last, as tool-calling templates do.
const TOOLS = `{% set ns = namespace(n=0) %}
{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% if not loop.last %}, {% endif %}{% endfor %}</tools>
{% endif %}
{% for m in messages %}
{% set ns.n = ns.n + 1 %}
{{ ns.n }}. {{ m.role | upper }}: {{ m.content }}
{% endfor %}
{% if add_generation_prompt %}{{ ns.n + 1 }}. ASSISTANT:{% endif %}`;

const CONVERSATION = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: '  What is 2+2?  ' },
  { role: 'assistant', content: 'Four.' },
  { role: 'user', content: 'And "3+3"?\nThanks – ✓' },
];

export const CHAT_CASES: readonly ChatCase[] = [
  { name: 'chatml', template: CHATML, messages: CONVERSATION, addGenerationPrompt: true },
  { name: 'chatml-no-prompt', template: CHATML, messages: CONVERSATION.slice(1, 3), addGenerationPrompt: false },
  { name: 'inst-system', template: INST, messages: CONVERSATION, addGenerationPrompt: false },
  { name: 'inst-no-system', template: INST, messages: CONVERSATION.slice(1), addGenerationPrompt: false },
  { name: 'inst-rejects', template: INST, messages: [CONVERSATION[1]!, CONVERSATION[1]!], addGenerationPrompt: false },
  {
    name: 'tools',
    template: TOOLS,
    messages: CONVERSATION.slice(1, 2),
    addGenerationPrompt: true,
    tools: [
      { type: 'function', function: { name: 'add', description: 'Add two numbers — exactly.', parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'integer' } }, required: ['a', 'b'] } } },
      { type: 'function', function: { name: 'now', parameters: {} } },
    ],
  },
];

/**
 * The corpus a byte-level BPE tokenizer is trained on by us and by the `tokenizers` crate. No
 * special-token text in it: we split training text around special tokens, the crate's trainer
 * does not (it adds them to the vocabulary after training).
 */
export const BPE_OPTIONS = { vocabSize: 600, minFrequency: 2, specialTokens: ['<s>', '</s>'] };
export function bpeCorpus(): string[] {
  return [...generateCorpus({ stories: 150, seed: 11 }), ...HF_TEXTS.filter((t) => !t.includes('<s>'))];
}
let bpe: BpeModel | undefined;
/** Our trainer's tokenizer on bpeCorpus() (trained once per process). */
export function fixtureBpe(): BpeModel {
  return (bpe ??= trainBpe(bpeCorpus(), BPE_OPTIONS));
}

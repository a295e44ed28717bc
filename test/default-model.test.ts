// The embedded default model (models/default, trained by recipes/default-model): small enough
// to ship, a Llama that the normal loader reads, and it writes English, not noise: the words
// it generates are the corpus's words, in sentences.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateCorpus, wordsOf } from '../recipes/default-model/corpus.ts';
import { Sequence, generate } from '../src/engine/generate.ts';
import { applyChatTemplate } from '../src/formats/chat-template.ts';
import { defaultModelDir } from '../src/models/default.ts';
import { loadModelSync } from '../src/models/load.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const dir = defaultModelDir();

describe('embedded default model', () => {
  it('is at most 25 MB with its tokenizer, and loads as a Llama', () => {
    const bytes = readdirSync(dir).filter((f) => f.endsWith('.json') || f.endsWith('.safetensors')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    assert.ok(bytes <= 25e6, `${bytes} bytes`);
    const lm = loadModelSync(dir, cpuBackend());
    assert.equal(lm.config.arch, 'llama');
    assert.ok(lm.tokenizer.chatTemplate);
  });

  it('writes sentences of English words (greedy and sampled)', () => {
    const lm = loadModelSync(dir, cpuBackend());
    const known = new Set<string>();
    for (const s of generateCorpus({ stories: 4000, seed: 99 })) for (const w of wordsOf(s)) known.add(w.toLowerCase());
    for (const [prompt, temperature] of [['Once upon a time', 0], ['Lily and her dog', 0.7], ['One rainy morning, a little fox', 0.7]] as const) {
      const ids = lm.tokenizer.encode(prompt, { addSpecialTokens: true });
      const sampling = { temperature, topK: 40, topP: 0.95, minP: 0, seed: 5, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, maxTokens: 160, stop: [], stopTokenIds: [], ignoreEos: false, n: 1 };
      const { text } = generate(lm.model, lm.tokenizer, ids, { sampling });
      const words = wordsOf(text).map((w) => w.toLowerCase());
      assert.ok(words.length >= 40, `only ${words.length} words: ${text}`);
      const unknown = words.filter((w) => !known.has(w));
      assert.ok(unknown.length <= words.length * 0.05, `${unknown.length}/${words.length} words are not English corpus words (${unknown.slice(0, 10).join(', ')}): ${text}`);
      const sentences = (prompt + text).match(/[A-Z][^.!?]*[a-z][^.!?]*[.!?]/g) ?? [];
      assert.ok(sentences.length >= 3, `only ${sentences.length} sentences: ${text}`);
    }
  });

  it('`slipstream generate` without --model runs it (the README\'s main command)', () => {
    // It prints this model's greedy continuation: the text of the tokens that greedy decoding
    // with the library gives for the same prompt (not a copy of an earlier run's output).
    const prompt = 'Once upon a time';
    const lm = loadModelSync(dir, cpuBackend());
    const ids = lm.tokenizer.encode(prompt, { addSpecialTokens: true });
    // greedy by hand on the bare model (no engine, no sampler): argmax of each step's logits
    const seq = new Sequence(lm.model, { maxContext: ids.length + 24 });
    const argmax = (row: Float32Array): number => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);
    const tokens = [argmax(seq.prefill(ids))];
    while (tokens.length < 24) tokens.push(argmax(seq.decode(tokens.at(-1)!)));
    assert.ok(!tokens.some((t) => lm.config.eosIds.includes(t)), 'the greedy continuation reaches 24 tokens without an end-of-sequence token');
    const before = lm.tokenizer.decode(ids, { skipSpecialTokens: true });
    const after = lm.tokenizer.decode([...ids, ...tokens], { skipSpecialTokens: true });
    assert.ok(after.startsWith(before));
    const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
    const r = spawnSync(process.execPath, [bin, 'generate', '-p', prompt, '-n', '24', '--temperature', '0'], {
      encoding: 'utf8',
      env: { ...process.env, SLIPSTREAM_THREADS: '2' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, after.slice(before.length) + '\n');
    assert.match(r.stderr, /generated 24 tokens/);
  });

  it('its chat template turns a conversation into one running story', () => {
    const lm = loadModelSync(dir, cpuBackend());
    const text = applyChatTemplate(lm.tokenizer.chatTemplate!, [
      { role: 'user', content: 'Once upon a time, a fox' },
      { role: 'assistant', content: 'lived in a den.' },
      { role: 'user', content: 'One day ' },
    ], { addGenerationPrompt: true, bosToken: '<s>' });
    // the generation prompt is a blank line: the reply is the story's next paragraph, so it
    // starts with a word instead of continuing the user's sentence after a space (issue 19)
    assert.equal(text, '<s>Once upon a time, a fox\n\nlived in a den.\n\nOne day\n\n');
    const noPrompt = applyChatTemplate(lm.tokenizer.chatTemplate!, [{ role: 'user', content: 'Once upon a time' }], { addGenerationPrompt: false, bosToken: '<s>' });
    assert.equal(noPrompt, '<s>Once upon a time');
  });
});

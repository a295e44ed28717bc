// Byte-level BPE training (src/train/bpe.ts): trained tokenizers load through the project's
// Tokenizer, round-trip any text, add BOS once, and training matches a naive trainer that
// recounts every pair at every step.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Tokenizer } from '../src/formats/tokenizer.ts';
import { BYTE_TO_UNICODE, bpeTokenizerJson, trainBpe, writeBpeTokenizer, type BpeModel } from '../src/train/bpe.ts';

const PARAGRAPHS = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps while the fox runs through the forest.',
  'Tokenizers split text into pieces; the pieces that appear most often become single tokens in the vocabulary.',
  "It's what they're saying: we'll see whether the theory holds, isn't it? They'd rather not say.",
  'In 2024 the model read 12345 documents, 678 of them twice, and wrote 90 summaries.\n\nThen it stopped.',
  'def hello(name):\n    return "hello, " + name\n\nprint(hello("world"))\n',
  'Café au lait, naïve résumé, crème brûlée — façade and jalapeño, über-straße.',
  '東京は日本の首都です。中文字符也在这里。한국어 문장도 있습니다.',
  'Emoji: 🎉🎉 party, 👍 ok, 🚀 launch, 👩‍💻 coder, ❤️ love.',
];

/** A few dozen KB: each paragraph many times, with numbered variations so counts differ. */
function corpus(): string[] {
  const out: string[] = [];
  for (let i = 0; i < 60; i++) {
    for (let j = 0; j < PARAGRAPHS.length; j++) {
      if ((i + j) % 3 === 0) out.push(`${PARAGRAPHS[j]} (copy ${i})`);
      else out.push(PARAGRAPHS[j]!);
    }
  }
  return out;
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bpe-test-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const VOCAB = 600;
let cached: { model: BpeModel; dir: string; tok: Tokenizer } | null = null;
function trained(): { model: BpeModel; dir: string; tok: Tokenizer } {
  if (cached) return cached;
  const model = trainBpe(corpus(), { vocabSize: VOCAB });
  const dir = tempDir();
  writeBpeTokenizer(dir, model, { chatTemplate: '{% for m in messages %}{{ m.content }}{% endfor %}' });
  cached = { model, dir, tok: Tokenizer.fromDir(dir) };
  return cached;
}

/**
 * Naive trainer: recount all pairs each step; highest count, ties by the smaller (left, right) in
 * the tokenizers crate's id order (byte symbols by code point, then merged tokens by age).
 */
function naiveMerges(texts: string[], vocabSize: number, nSpecial: number, minFrequency: number): [string, string][] {
  const re = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const enc = new TextEncoder();
  const counts = new Map<string, number>();
  for (const t of texts) for (const p of t.match(re) ?? []) counts.set(p, (counts.get(p) ?? 0) + 1);
  const words = [...counts].map(([p, c]) => ({ syms: Array.from(enc.encode(p), (b) => BYTE_TO_UNICODE[b]!), c }));
  const vocab = new Set<string>(BYTE_TO_UNICODE);
  const merges: [string, string][] = [];
  const order: string[] = []; // merged tokens, oldest first
  const done = new Set<string>();
  while (vocab.size + nSpecial < vocabSize) {
    const pc = new Map<string, { a: string; b: string; n: number }>();
    for (const { syms, c } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = `${syms[i]}\u0000${syms[i + 1]}`;
        const e = pc.get(k);
        if (e) e.n += c;
        else pc.set(k, { a: syms[i]!, b: syms[i + 1]!, n: c });
      }
    }
    // single characters are byte symbols (merged tokens are longer), ranked below every merge
    const rank = (t: string): number => (t.length === 1 ? t.codePointAt(0)! : 0x200 + order.indexOf(t));
    const earlier = (x: { a: string; b: string }, y: { a: string; b: string }): boolean =>
      rank(x.a) !== rank(y.a) ? rank(x.a) < rank(y.a) : rank(x.b) < rank(y.b);
    let best: { k: string; a: string; b: string; n: number } | null = null;
    for (const [k, e] of pc) if (!best || e.n > best.n || (e.n === best.n && earlier(e, best))) best = { k, ...e };
    if (!best || best.n < minFrequency) break;
    if (!done.has(best.k)) {
      done.add(best.k);
      merges.push([best.a, best.b]);
      if (!vocab.has(best.a + best.b)) order.push(best.a + best.b);
      vocab.add(best.a + best.b);
    }
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === best.a && w.syms[i + 1] === best.b) {
          out.push(best.a + best.b);
          i++;
        } else out.push(w.syms[i]!);
      }
      w.syms = out;
    }
  }
  return merges;
}

describe('trainBpe', () => {
  it('reaches the vocabulary size exactly, specials first, then the 256 bytes', () => {
    const { model, dir, tok } = trained();
    assert.equal(model.vocab.size, VOCAB);
    assert.equal(tok.vocabSize, VOCAB);
    assert.deepEqual(model.specialTokens, ['<s>', '</s>']);
    assert.equal(model.vocab.get('<s>'), 0);
    assert.equal(model.vocab.get('</s>'), 1);
    for (let b = 0; b < 256; b++) assert.equal(model.vocab.get(BYTE_TO_UNICODE[b]!), 2 + b);
    const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const ids = Object.values(json.model.vocab as Record<string, number>).sort((a, b) => a - b);
    assert.deepEqual(ids, Array.from({ length: VOCAB }, (_, i) => i));
    assert.deepEqual(
      json.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t.content, t.special]),
      [
        [0, '<s>', true],
        [1, '</s>', true],
      ],
    );
    assert.equal(json.model.type, 'BPE');
    assert.equal(json.model.byte_fallback, false);
    assert.equal(json.model.unk_token, null);
    assert.deepEqual(json.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
    assert.equal(json.decoder.type, 'ByteLevel');
  });

  it('turns frequent words into single tokens', () => {
    const { tok } = trained();
    for (const w of [' the', ' fox', 'The', ' hello', ' pieces', ' dog']) {
      assert.equal(tok.encode(w, { addSpecialTokens: false }).length, 1, `${JSON.stringify(w)} should be one token`);
    }
    // Multi-byte text that recurs merges too: "🎉" (4 bytes) becomes one token.
    assert.equal(tok.encode('🎉', { addSpecialTokens: false }).length, 1);
  });

  it('round-trips arbitrary Unicode exactly', () => {
    const { tok } = trained();
    const samples = [
      'The quick brown fox',
      '   leading spaces and trailing   ',
      '\n\nnewlines\r\nand\ttabs\n',
      'emoji 👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 never seen in training 🦄',
      'CJK 漢字かなカナ 한글, Arabic مرحبا, Hindi नमस्ते, Greek Ωμέγα',
      'combining e\u0301 vs é, zero width\u200bspace, NUL\u0000byte, \u{10FFFF}',
      " 'll 've 's  12345678901234567890 ... !!! ???",
      '<s> looks special, </s> too',
    ];
    for (const s of samples) {
      const ids = tok.encode(s, { addSpecialTokens: false });
      assert.equal(tok.decode(ids), s, `round trip of ${JSON.stringify(s)}`);
    }
    // Literal special-token text encodes to the special ids, as at training.
    const ids = tok.encode('a</s>b', { addSpecialTokens: false });
    assert.ok(ids.includes(1));
  });

  it('adds BOS exactly once, and only with special tokens', () => {
    const { dir, tok } = trained();
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(cfg.bos_token, '<s>');
    assert.equal(cfg.eos_token, '</s>');
    assert.equal(cfg.add_bos_token, true);
    assert.equal(cfg.chat_template, '{% for m in messages %}{{ m.content }}{% endfor %}');
    assert.equal(tok.bosId, 0);
    assert.deepEqual(tok.eosIds, [1]);
    assert.equal(tok.chatTemplate, cfg.chat_template);

    const text = 'hello world';
    const plain = tok.encode(text, { addSpecialTokens: false });
    assert.deepEqual(tok.encode(text), [0, ...plain]);
    assert.ok(!plain.includes(0));
    assert.equal(tok.decode(tok.encode(text), { skipSpecialTokens: true }), text);

    // The tokenizer.json post-processor alone (no config) also adds it once.
    const bare = Tokenizer.fromJson(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')));
    assert.deepEqual(bare.encode(text), [0, ...plain]);
    // addBos false: no BOS from either file.
    const noBos = tempDir();
    writeBpeTokenizer(noBos, trained().model, { addBos: false });
    assert.deepEqual(Tokenizer.fromDir(noBos).encode(text), plain);
    assert.deepEqual(Tokenizer.fromJson(bpeTokenizerJson(trained().model, { addBos: false })).encode(text), plain);
  });

  it('is deterministic: two trainings (one on shuffled input) write identical files', () => {
    const texts = corpus();
    const a = tempDir();
    const b = tempDir();
    writeBpeTokenizer(a, trainBpe(texts, { vocabSize: 400 }));
    writeBpeTokenizer(b, trainBpe([...texts].reverse(), { vocabSize: 400 }));
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      assert.equal(readFileSync(join(a, f), 'utf8'), readFileSync(join(b, f), 'utf8'), f);
    }
  });

  it('learns the same merges as a naive recount-everything trainer', () => {
    const texts = corpus().slice(0, 120);
    for (const minFrequency of [1, 2]) {
      const model = trainBpe(texts, { vocabSize: 500, minFrequency });
      assert.deepEqual(model.merges, naiveMerges(texts, 500, 2, minFrequency), `minFrequency ${minFrequency}`);
    }
  });

  it('handles repeated symbols (aaaa, abab) and stops when the corpus runs out of pairs', () => {
    const texts = ['aaaaaaa abababab aaaa abab', 'aaaaaaa abababab'];
    const progress: [number, number][] = [];
    const model = trainBpe(texts, { vocabSize: 1000, minFrequency: 1, onProgress: (d, t) => progress.push([d, t]) });
    assert.deepEqual(model.merges, naiveMerges(texts, 1000, 2, 1));
    assert.ok(model.vocab.size < 1000);
    const last = progress[progress.length - 1]!;
    assert.deepEqual(last, [model.vocab.size - 258, 1000 - 258]);
    const tok = Tokenizer.fromJson(bpeTokenizerJson(model));
    for (const t of texts) assert.equal(tok.decode(tok.encode(t, { addSpecialTokens: false })), t);
  });

  it('supports custom special tokens and a single <|endoftext|> as bos and eos', () => {
    const model = trainBpe(corpus().slice(0, 40), { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
    assert.equal(model.vocab.get('<|endoftext|>'), 0);
    const dir = tempDir();
    writeBpeTokenizer(dir, model);
    const tok = Tokenizer.fromDir(dir);
    assert.equal(tok.bosId, 0);
    assert.deepEqual(tok.eosIds, [0]);
    assert.throws(() => writeBpeTokenizer(tempDir(), model, { bos: '<s>' }), /bos token "<s>" is not one of the model's special tokens/);
  });

  it('rejects an empty corpus and a too-small vocabSize', () => {
    assert.throws(() => trainBpe([], { vocabSize: 300 }), /corpus is empty/);
    assert.throws(() => trainBpe(['', ''], { vocabSize: 300 }), /corpus is empty/);
    assert.throws(() => trainBpe(['hello'], { vocabSize: 257 }), /vocabSize 257 is too small: it must be an integer of at least 258/);
    assert.throws(() => trainBpe(['hello'], { vocabSize: 4.5 }), /vocabSize 4.5/);
    assert.throws(() => trainBpe(['hello'], { vocabSize: 300, specialTokens: ['<s>', '<s>'] }), /listed twice/);
    assert.throws(() => trainBpe(['hello'], { vocabSize: 300, specialTokens: ['!'] }), /spelled like a byte symbol/);
    // The bytes alone are a valid (merge-free) vocabulary.
    const bytesOnly = trainBpe(['hello hello'], { vocabSize: 256, specialTokens: [] });
    assert.equal(bytesOnly.vocab.size, 256);
    assert.equal(bytesOnly.merges.length, 0);
  });
});

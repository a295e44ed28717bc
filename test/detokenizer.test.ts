// Incremental detokenizer: streaming one token at a time gives exactly the text of decoding all
// tokens at once, never shows half a character, and handles SentencePiece's leading space.
//
// Three small tokenizers: a SentencePiece-style vocabulary (GGUF "llama": scores, <0xNN> byte
// fallback, U+2581 spaces), the same with a per-token Metaspace decoder, and a GPT-2 byte-level
// BPE (GGUF "gpt2"), where emoji and CJK characters span several tokens too.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IncrementalDetokenizer } from '../src/engine/detokenizer.ts';
import { tokenizerFromGguf } from '../src/formats/gguf-tokenizer.ts';
import { meta } from '../src/formats/gguf-types.ts';
import { Tokenizer } from '../src/formats/tokenizer.ts';

const hex = (b: number) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** SentencePiece vocabulary: specials, 256 bytes, merged pieces by descending score, characters. */
function spmTokenizer(): Tokenizer {
  const pieces = ['▁t', 'he', '▁the', '▁a', 'in', '▁w', 'or', 'ld', '▁wor', '▁world', 'll', 'llo', '▁he', '▁hello', '▁c', 'af', '▁caf', '▁café', '▁▁', '▁▁▁▁', 'er', '▁o', '▁over', 'an', '▁an', '▁and', '12', '123'];
  const chars = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:\'"()-é▁'];
  const tokens = ['<unk>', '<s>', '</s>', ...Array.from({ length: 256 }, (_, b) => hex(b)), ...pieces, ...chars, '<|im_end|>'];
  const types = tokens.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : t === '<|im_end|>' ? 3 : 1));
  const scores = tokens.map((_, i) => (i < 259 ? 0 : -(i - 259)));
  return tokenizerFromGguf(
    new Map([
      ['tokenizer.ggml.model', meta.str('llama')],
      ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
      ['tokenizer.ggml.scores', meta.arr('f32', scores)],
      ['tokenizer.ggml.token_type', meta.arr('i32', types)],
      ['tokenizer.ggml.bos_token_id', meta.u32(1)],
      ['tokenizer.ggml.eos_token_id', meta.u32(2)],
      ['tokenizer.ggml.unknown_token_id', meta.u32(0)],
    ]),
    'spm.gguf',
  );
}

/** The same vocabulary with a decoder that strips the space of the first token only (Metaspace). */
function metaspaceTokenizer(spm: Tokenizer): Tokenizer {
  const json = { ...(spm.json as Record<string, unknown>) };
  json.decoder = { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] };
  return Tokenizer.fromJson(json, spm.config);
}

/** GPT-2 byte-level BPE with a handful of merges. */
function byteLevelTokenizer(): Tokenizer {
  const chars: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    chars[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  const merges = ['Ġ t', 'h e', 'Ġt he', 'Ġ w', 'o r', 'l d', 'Ġw or', 'Ġwor ld', 'l l', 'e ll', 'h ell', 'hell o', 'Ġ h', 'Ġh ello', 'ä ¸', 'Ã ©', 'ð Ł', 'Ġ Ġ', 'ĠĠ ĠĠ', 'Ċ Ċ'];
  const tokens = [...chars];
  for (const m of merges) tokens.push(m.replace(' ', ''));
  tokens.push('<|endoftext|>', '<|im_end|>');
  const types = tokens.map((t) => (t.startsWith('<|') ? 3 : 1));
  return tokenizerFromGguf(
    new Map([
      ['tokenizer.ggml.model', meta.str('gpt2')],
      ['tokenizer.ggml.pre', meta.str('gpt-2')],
      ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
      ['tokenizer.ggml.token_type', meta.arr('i32', types)],
      ['tokenizer.ggml.merges', meta.arr('string', merges)],
      ['tokenizer.ggml.eos_token_id', meta.u32(tokens.length - 2)],
    ]),
    'bpe.gguf',
  );
}

const STRINGS = [
  'hello world',
  'the world over and over',
  ' leading space',
  '   three leading spaces',
  'trailing  ',
  'line one\nline two\n\n  indented',
  'café, café au lait',
  '中文字符测试',
  'emoji 😀🎉 and 👩‍👩‍👧 family',
  'mixed 12345 digits 3.14',
  'é',
  '😀',
  ' ',
  'a<|im_end|>b',
];

/** Push every id, then flush; returns the chunks. */
function stream(tok: Tokenizer, ids: number[], prompt: number[] = [], skipSpecialTokens = true): string[] {
  const d = new IncrementalDetokenizer(tok, prompt, { skipSpecialTokens });
  const chunks = ids.map((id) => d.push(id));
  chunks.push(d.flush());
  return chunks;
}

function checkStream(tok: Tokenizer, ids: number[], label: string): void {
  for (const skip of [true, false]) {
    const full = tok.decode(ids, { skipSpecialTokens: skip });
    const chunks = stream(tok, ids, [], skip);
    assert.equal(chunks.join(''), full, `${label} skip=${skip}: ${JSON.stringify(chunks)}`);
    if (!full.includes('\uFFFD')) {
      for (const c of chunks) assert.ok(!c.includes('\uFFFD'), `${label}: chunk ${JSON.stringify(c)} has U+FFFD`);
    }
  }
}

/** Deterministic pseudo-random integers. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0;
  return (n) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
}

describe('IncrementalDetokenizer', () => {
  const spm = spmTokenizer();
  const tokenizers: [string, Tokenizer][] = [
    ['sentencepiece', spm],
    ['metaspace', metaspaceTokenizer(spm)],
    ['byte-level', byteLevelTokenizer()],
  ];

  for (const [name, tok] of tokenizers) {
    it(`${name}: streamed text equals decode() of all ids`, () => {
      for (const s of STRINGS) {
        checkStream(tok, tok.encode(s), JSON.stringify(s));
        checkStream(tok, tok.encode(s, { addSpecialTokens: false }), JSON.stringify(s));
      }
      // Several texts in a row, with end-of-turn tokens between them.
      const many = STRINGS.flatMap((s) => [...tok.encode(s, { addSpecialTokens: false }), tok.tokenToId('<|im_end|>')!]);
      checkStream(tok, many, 'concatenated');
    });

    it(`${name}: with prompt ids, only the new text comes out, in context`, () => {
      for (const s of STRINGS) {
        const ids = tok.encode(s);
        for (let k = 0; k <= ids.length; k++) {
          const prompt = ids.slice(0, k);
          const before = tok.decode(prompt, { skipSpecialTokens: true });
          const all = tok.decode(ids, { skipSpecialTokens: true });
          if (before.endsWith('\uFFFD') || !all.startsWith(before)) continue; // prompt ends inside a character
          assert.equal(stream(tok, ids.slice(k), prompt).join(''), all.slice(before.length), `${JSON.stringify(s)} split at ${k}`);
        }
      }
    });

    it(`${name}: random token sequences stream to their decode()`, () => {
      const r = rng(name.length * 7919);
      for (let trial = 0; trial < 60; trial++) {
        const ids = Array.from({ length: 1 + r(24) }, () => r(tok.vocabSize));
        checkStream(tok, ids, `random ${ids.join(',')}`);
      }
    });
  }

  it('a character split over byte tokens comes out whole, once complete', () => {
    const ids = spm.encode('中', { addSpecialTokens: false }); // ▁ <0xE4> <0xB8> <0xAD>
    assert.deepEqual(ids.map((i) => spm.idToToken(i)), ['▁', '<0xE4>', '<0xB8>', '<0xAD>']);
    assert.deepEqual(stream(spm, ids), ['', '', '', '中', '']);
    const bl = tokenizers[2]![1];
    const e = bl.encode('😀!', { addSpecialTokens: false });
    assert.ok(e.length >= 3, 'emoji spans several byte-level tokens');
    const chunks = stream(bl, e);
    assert.deepEqual(chunks.filter((c) => c !== ''), ['😀', '!']);
  });

  it('SentencePiece word-initial spaces are kept after the first token', () => {
    const ids = spm.encode('hello world', { addSpecialTokens: false });
    assert.deepEqual(ids.map((i) => spm.idToToken(i)), ['▁hello', '▁world']);
    // Decoding token by token would lose the space: "world" alone decodes without it.
    assert.equal(spm.decode([ids[1]!]), 'world');
    assert.deepEqual(stream(spm, ids), ['hello', ' world', '']);
    // With BOS in front the first word has no leading space either (skipped special token).
    assert.deepEqual(stream(spm, spm.encode('hello world')), ['', 'hello', ' world', '']);
    // After a prompt, the first generated word keeps its space.
    assert.deepEqual(stream(spm, [ids[1]!], [1, ids[0]!]), [' world', '']);
  });

  it('an incomplete character at the end is held back until flush()', () => {
    const e4 = spm.tokenToId('<0xE4>')!;
    const b8 = spm.tokenToId('<0xB8>')!;
    const a = spm.tokenToId('a')!;
    const d = new IncrementalDetokenizer(spm);
    assert.equal(d.push(a), 'a');
    assert.equal(d.push(e4), '');
    assert.equal(d.push(b8), '');
    assert.equal(d.flush(), spm.decode([a, e4, b8]).slice(1));
    assert.ok(spm.decode([a, e4, b8]).endsWith('\uFFFD'));
    // An invalid byte followed by text is emitted as U+FFFD, like decode().
    const d2 = new IncrementalDetokenizer(spm);
    assert.equal(d2.push(e4) + d2.push(a) + d2.flush(), spm.decode([e4, a]));
  });

  it('special tokens are skipped by default and kept on request', () => {
    const ids = spm.encode('hello');
    assert.equal(stream(spm, ids).join(''), 'hello');
    assert.equal(stream(spm, ids, [], false).join(''), '<s> hello');
    assert.throws(() => new IncrementalDetokenizer(spm).push(-3), /bad token id -3/);
  });
});

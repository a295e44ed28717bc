// Tokenizers, GGUF tokenizer conversion and chat templates.
//
// The tokenizers are built here from a small corpus: a byte-level BPE (GPT-2 style, and a
// Llama-3 style variant) and a SentencePiece-style BPE with <0xNN> byte fallback, each trained
// with a few dozen merges. A reference implementation of llama.cpp's SentencePiece tokenizer
// (merge the highest-score adjacent pair, byte-fallback what is left) checks that the
// tokenizer we build from GGUF metadata tokenizes as llama.cpp would.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { applyChatTemplate, ChatTemplateError, type ChatMessage } from '../src/formats/chat-template.ts';
import { FormatError } from '../src/formats/errors.ts';
import { ggufTokenizerMetadata, tokenizerFromGguf, TokenType } from '../src/formats/gguf-tokenizer.ts';
import { meta, type GgufMetaEntry, type GgufMetadata } from '../src/formats/gguf-types.ts';
import { Tokenizer } from '../src/formats/tokenizer.ts';

// ---------------------------------------------------------------------------------------------
// Building tiny tokenizers

const CORPUS = [
  'the quick brown fox jumps over the lazy dog. the dog sleeps; the fox runs!',
  'hello world, hello there. they say the theory is there and then the other one.',
  'café au lait, naïve résumé, café crème. 12345 + 678 = 13023, 2024-01-01',
  'print("hello")  # comment\n    indented  code\n\tlines with tabs\n\nand blank lines',
  "it's what they're saying: we'll see, isn't it? THE END",
].join('\n');

/** One training step at a time: the most frequent adjacent pair (ties: smallest pair text). */
function trainMerges(words: Map<string, number>, split: (w: string) => string[], nMerges: number): [string, string][] {
  const seqs = [...words].map(([w, c]) => ({ syms: split(w), count: c }));
  const merges: [string, string][] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, { pair: [string, string]; n: number }>();
    for (const { syms, count } of seqs) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = `${syms[i]}\u0000${syms[i + 1]}`;
        const e = counts.get(key);
        if (e) e.n += count;
        else counts.set(key, { pair: [syms[i]!, syms[i + 1]!], n: count });
      }
    }
    let best: { key: string; pair: [string, string]; n: number } | null = null;
    for (const [key, e] of counts) {
      if (!best || e.n > best.n || (e.n === best.n && key < best.key)) best = { key, ...e };
    }
    if (!best) break;
    merges.push(best.pair);
    const [a, b] = best.pair;
    for (const s of seqs) {
      const out: string[] = [];
      for (let i = 0; i < s.syms.length; i++) {
        if (i + 1 < s.syms.length && s.syms[i] === a && s.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(s.syms[i]!);
      }
      s.syms = out;
    }
  }
  return merges;
}

function countWords(pieces: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of pieces) m.set(p, (m.get(p) ?? 0) + 1);
  return m;
}

/** GPT-2's byte -> printable character table. */
const BYTE_CHARS: string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const out: string[] = new Array(256);
  for (const b of bs) out[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (out[b] === undefined) out[b] = String.fromCharCode(256 + n++);
  return out;
})();
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const byteLevel = (s: string): string => Array.from(new TextEncoder().encode(s), (b) => BYTE_CHARS[b]).join('');

/** A GPT-2 style byte-level BPE tokenizer.json (or, with llama3, one shaped like Llama 3's). */
function byteLevelJson(llama3 = false): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const pieces = (CORPUS.match(GPT2_SPLIT) ?? []).map(byteLevel);
  const merges = trainMerges(countWords(pieces), (w) => Array.from(w), 50);
  const vocab: Record<string, number> = {};
  BYTE_CHARS.forEach((c, i) => (vocab[c] = i));
  for (const [a, b] of merges) if (vocab[a + b] === undefined) vocab[a + b] = Object.keys(vocab).length;
  const n = Object.keys(vocab).length;
  const bosText = llama3 ? '<|begin_of_text|>' : '<|endoftext|>';
  const added = [
    { id: n, content: bosText, special: true },
    { id: n + 1, content: '<|im_start|>', special: true },
    { id: n + 2, content: '<|im_end|>', special: true },
    { id: n + 3, content: '<think>', special: false },
  ].map((t) => ({ single_word: false, lstrip: false, rstrip: false, normalized: false, ...t }));
  const json: Record<string, unknown> = {
    version: '1.0',
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: llama3
      ? {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: LLAMA3_REGEX }, behavior: 'Isolated', invert: false },
            { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
          ],
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: llama3
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: bosText, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: bosText, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: bosText, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [bosText]: { id: bosText, ids: [n], tokens: [bosText] } },
        }
      : { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: llama3,
      vocab,
      merges: llama3 ? merges : merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config: Record<string, unknown> = llama3
    ? { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: bosText, eos_token: '<|im_end|>', clean_up_tokenization_spaces: true }
    : { tokenizer_class: 'GPT2Tokenizer', bos_token: bosText, eos_token: bosText, unk_token: bosText };
  return { json, config };
}

interface SpmVocab {
  tokens: string[];
  scores: number[];
  types: number[];
}

/**
 * A SentencePiece BPE vocabulary as sentencepiece would ship it: <unk> <s> </s>, 256 byte
 * tokens, merged pieces (score -k for the k-th merge), then single characters (lowest scores).
 * "中", "文" and emoji are left out so they go through byte fallback.
 */
function spmVocab(): SpmVocab {
  const text = CORPUS.split('\n').map((l) => '▁' + l.replace(/ /g, '▁'));
  const words = countWords(text.flatMap((l) => l.match(/▁[^▁]*|[^▁]+/gu) ?? []));
  const merges = trainMerges(words, (w) => Array.from(w), 60);
  const tokens = ['<unk>', '<s>', '</s>'];
  const scores = [0, 0, 0];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    scores.push(0);
    types.push(TokenType.BYTE);
  }
  const seen = new Set(tokens);
  merges.forEach(([a, b], k) => {
    if (seen.has(a + b)) return;
    seen.add(a + b);
    tokens.push(a + b);
    scores.push(-k);
    types.push(TokenType.NORMAL);
  });
  const chars = [...new Set(Array.from(text.join('')))].filter((c) => c !== '\n' && !seen.has(c)).sort();
  chars.forEach((c, j) => {
    tokens.push(c);
    scores.push(-(merges.length + j));
    types.push(TokenType.NORMAL);
  });
  tokens.push('<|tool|>');
  scores.push(0);
  types.push(TokenType.USER_DEFINED);
  return { tokens, scores, types };
}

/** The tokenizer.json transformers' converter makes from such a vocabulary (legacy Llama layout). */
function spmJson(v: SpmVocab): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  v.tokens.forEach((t, i) => (vocab[t] = i));
  const merges: { l: string; r: string; s: number; id: number }[] = [];
  v.tokens.forEach((t, id) => {
    if (v.types[id] !== TokenType.NORMAL) return;
    const cs = Array.from(t);
    for (let k = 1; k < cs.length; k++) {
      const l = cs.slice(0, k).join('');
      const r = cs.slice(k).join('');
      if (vocab[l] !== undefined && vocab[r] !== undefined) merges.push({ l, r, s: v.scores[id]!, id });
    }
  });
  merges.sort((a, b) => b.s - a.s || a.id - b.id);
  const added = v.tokens
    .map((t, id) => ({ t, id }))
    .filter(({ id }) => v.types[id] === TokenType.CONTROL || v.types[id] === TokenType.UNKNOWN || v.types[id] === TokenType.USER_DEFINED)
    .map(({ t, id }) => ({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: v.types[id] !== TokenType.USER_DEFINED }));
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map((m) => `${m.l} ${m.r}`),
    },
  };
}

const SPM_CONFIG = { tokenizer_class: 'LlamaTokenizer', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', add_bos_token: true, add_eos_token: false, clean_up_tokenization_spaces: false, legacy: true };

/** GGUF metadata as llama.cpp's converter writes it for a SentencePiece vocabulary. */
function spmMetadata(v: SpmVocab): GgufMetadata {
  return new Map([
    ['tokenizer.ggml.model', meta.str('llama')],
    ['tokenizer.ggml.tokens', meta.arr('string', v.tokens)],
    ['tokenizer.ggml.scores', meta.arr('f32', v.scores)],
    ['tokenizer.ggml.token_type', meta.arr('i32', v.types)],
    ['tokenizer.ggml.bos_token_id', meta.u32(1)],
    ['tokenizer.ggml.eos_token_id', meta.u32(2)],
    ['tokenizer.ggml.unknown_token_id', meta.u32(0)],
    ['tokenizer.ggml.add_bos_token', meta.bool(true)],
    ['tokenizer.ggml.add_eos_token', meta.bool(false)],
  ]);
}

/**
 * llama.cpp's SPM tokenizer (llm_tokenizer_spm_session), written from its description: UTF-8
 * characters as symbols; repeatedly merge the adjacent pair whose concatenation is a token
 * with the highest score (ties: leftmost); symbols that are not tokens become <0xNN> bytes.
 * Control and user-defined tokens in the text are not handled here (plain text only).
 */
function llamaCppSpm(v: SpmVocab, text: string, addBos: boolean): number[] {
  const id = new Map(v.tokens.map((t, i) => [t, i]));
  const out: number[] = addBos ? [1] : [];
  if (text === '') return out;
  const syms = Array.from(('▁' + text).replace(/ /g, '▁'));
  for (;;) {
    let best = -1;
    let bestScore = -Infinity;
    for (let i = 0; i + 1 < syms.length; i++) {
      const t = id.get(syms[i]! + syms[i + 1]!);
      if (t !== undefined && v.scores[t]! > bestScore) {
        best = i;
        bestScore = v.scores[t]!;
      }
    }
    if (best < 0) break;
    syms.splice(best, 2, syms[best]! + syms[best + 1]!);
  }
  for (const s of syms) {
    const t = id.get(s);
    if (t !== undefined) out.push(t);
    else for (const b of new TextEncoder().encode(s)) out.push(3 + b);
  }
  return out;
}

const TEXTS = [
  'hello world',
  'the quick brown fox jumps over the lazy dog.',
  ' leading space',
  '  two leading spaces',
  'trailing space ',
  'multiple   spaces   inside',
  'line one\nline two\n\nline four\n',
  '\ttab\tseparated\t',
  'digits 1234567890 and 3.14159, 2024-01-01',
  'café au lait, naïve résumé',
  '中文字符测试',
  'emoji 😀🎉 and a family 👩‍👩‍👧',
  "it's what they're saying: we'LL see",
  'MiXeD CaSe WORDS',
  'print("hello")  # comment\n    indented',
  '',
  ' ',
  '\n',
  'x',
];

// ---------------------------------------------------------------------------------------------

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-tok-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeDir(name: string, files: Record<string, unknown>): string {
  const d = join(dir, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  for (const [f, v] of Object.entries(files)) writeFileSync(join(d, f), typeof v === 'string' ? v : JSON.stringify(v));
  return d;
}

describe('Tokenizer (tokenizer.json)', () => {
  const spm = spmVocab();
  const spmTok = Tokenizer.fromJson(spmJson(spm), SPM_CONFIG, 'spm/tokenizer.json');
  const bl = byteLevelJson();
  const blTok = Tokenizer.fromJson(bl.json, bl.config, 'bl/tokenizer.json');

  it('SentencePiece-style BPE tokenizes like llama.cpp and adds <s>', () => {
    for (const t of TEXTS) {
      assert.deepEqual(spmTok.encode(t), llamaCppSpm(spm, t, true), JSON.stringify(t));
      assert.deepEqual(spmTok.encode(t, { addSpecialTokens: false }), llamaCppSpm(spm, t, false), JSON.stringify(t));
    }
    // Merged pieces are really used, and missing characters go through bytes.
    const ids = spmTok.encode('the fox', { addSpecialTokens: false });
    assert.ok(ids.length < 7, `expected merges in ${ids}`);
    const zh = spmTok.encode('中', { addSpecialTokens: false }).map((i) => spmTok.idToToken(i));
    assert.deepEqual(zh, ['▁', '<0xE4>', '<0xB8>', '<0xAD>']);
  });

  it('decode inverts encode (spaces, newlines, bytes, emoji)', () => {
    for (const tok of [spmTok, blTok]) {
      for (const t of TEXTS) assert.equal(tok.decode(tok.encode(t, { addSpecialTokens: false })), t, JSON.stringify(t));
    }
    assert.equal(spmTok.decode(spmTok.encode('hello world')), '<s> hello world');
    assert.equal(spmTok.decode(spmTok.encode('hello world'), { skipSpecialTokens: true }), 'hello world');
  });

  it('special tokens in text become single ids; skipSpecialTokens drops them', () => {
    const ids = blTok.encode('<|im_start|>user\nhi<|im_end|><think>');
    assert.equal(ids[0], blTok.tokenToId('<|im_start|>'));
    assert.equal(ids.at(-2), blTok.tokenToId('<|im_end|>'));
    assert.equal(ids.at(-1), blTok.tokenToId('<think>'));
    assert.equal(blTok.decode(ids), '<|im_start|>user\nhi<|im_end|><think>');
    // <think> is an added token but not special: it stays.
    assert.equal(blTok.decode(ids, { skipSpecialTokens: true }), 'user\nhi<think>');
    assert.equal(blTok.isSpecial(blTok.tokenToId('<|im_end|>')!), true);
    assert.equal(blTok.isSpecial(blTok.tokenToId('<think>')!), false);
    assert.equal(blTok.isSpecial(blTok.encode('hi')[0]!), false);
    const s = spmTok.encode('a</s>b', { addSpecialTokens: false });
    assert.ok(s.includes(2));
    assert.deepEqual(spmTok.encode('<|tool|>', { addSpecialTokens: false }), [spm.tokens.indexOf('<|tool|>')]);
  });

  it('byte-level BPE has no BOS unless its files say so; Llama-3 style adds <|begin_of_text|>', () => {
    assert.deepEqual(blTok.encode('hello'), blTok.encode('hello', { addSpecialTokens: false }));
    const l3 = byteLevelJson(true);
    const l3Tok = Tokenizer.fromJson(l3.json, l3.config);
    const bos = l3Tok.tokenToId('<|begin_of_text|>')!;
    assert.equal(l3Tok.bosId, bos);
    assert.deepEqual(l3Tok.encode('hello'), [bos, ...l3Tok.encode('hello', { addSpecialTokens: false })]);
    assert.deepEqual(l3Tok.encode(''), [bos]);
    // Llama 3's regex keeps digits in groups of at most three, and a space before a digit alone.
    const pieces = l3Tok.encode('12345', { addSpecialTokens: false }).map((i) => l3Tok.idToToken(i)).join('|');
    assert.ok(!pieces.includes('1234'), pieces);
  });

  it('add_bos_token / add_eos_token override the post-processor as in transformers', () => {
    const json = spmJson(spm);
    const plain = spmTok.encode('hi', { addSpecialTokens: false });
    // Explicit add_bos_token: false wins over the TemplateProcessing that adds <s>.
    assert.deepEqual(Tokenizer.fromJson(json, { ...SPM_CONFIG, add_bos_token: false }).encode('hi'), plain);
    assert.deepEqual(Tokenizer.fromJson(json, { ...SPM_CONFIG, add_eos_token: true }).encode('hi'), [1, ...plain, 2]);
    // A Llama tokenizer class adds BOS by default even with no post-processor in tokenizer.json.
    const noPost = { ...json, post_processor: null };
    assert.deepEqual(Tokenizer.fromJson(noPost, { tokenizer_class: 'LlamaTokenizerFast', bos_token: '<s>', eos_token: '</s>' }).encode('hi'), [1, ...plain]);
    // Other classes keep tokenizer.json's post-processor (here: none -> no BOS, and TemplateProcessing -> BOS).
    assert.deepEqual(Tokenizer.fromJson(noPost, { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>' }).encode('hi'), plain);
    assert.deepEqual(Tokenizer.fromJson(json, { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>' }).encode('hi'), [1, ...plain]);
    // addSpecialTokens: false never adds them.
    assert.deepEqual(Tokenizer.fromJson(json, { ...SPM_CONFIG, add_eos_token: true }).encode('hi', { addSpecialTokens: false }), plain);
  });

  it('decode: empty, unknown ids skipped, bad ids rejected, clean_up_tokenization_spaces honoured', () => {
    assert.equal(spmTok.decode([]), '');
    const ids = spmTok.encode('hello', { addSpecialTokens: false });
    assert.equal(spmTok.decode([...ids, 999999]), 'hello');
    assert.throws(() => spmTok.decode([-1]), /bad token id -1/);
    assert.throws(() => spmTok.decode([1.5]), /bad token id 1.5/);
    const l3 = byteLevelJson(true); // its config sets clean_up_tokenization_spaces: true
    const l3Tok = Tokenizer.fromJson(l3.json, l3.config);
    const e = l3Tok.encode('a , b', { addSpecialTokens: false });
    assert.equal(l3Tok.decode(e), 'a, b');
    assert.equal(l3Tok.decode(e, { cleanUpSpaces: false }), 'a , b');
    assert.equal(blTok.decode(blTok.encode('a , b')), 'a , b');
  });

  it('metadata: vocab size, special ids, token lookups', () => {
    assert.equal(spmTok.vocabSize, spm.tokens.length);
    assert.equal(spmTok.bosId, 1);
    assert.deepEqual(spmTok.eosIds, [2]);
    assert.equal(spmTok.padId, null);
    assert.equal(spmTok.unkId, 0);
    assert.equal(spmTok.tokenToId('<0x41>'), 3 + 0x41);
    assert.equal(spmTok.idToToken(3 + 0x41), '<0x41>');
    assert.equal(spmTok.idToToken(10 ** 6), undefined);
    assert.equal(spmTok.tokenToId('no such token'), undefined);
    assert.equal(spmTok.isSpecial(1), true);
    assert.equal(spmTok.isSpecial(0), true);
    assert.equal(spmTok.isSpecial(3 + 0x41), false);
    assert.equal(blTok.vocabSize, Object.keys((bl.json.model as { vocab: object }).vocab).length + 4);
  });

  it('fromDir reads the config, special_tokens_map, generation_config and chat_template.jinja', () => {
    const d = writeDir('llama', {
      'tokenizer.json': spmJson(spm),
      'tokenizer_config.json': { tokenizer_class: 'LlamaTokenizer', bos_token: { __type: 'AddedToken', content: '<s>' }, add_bos_token: true },
      'special_tokens_map.json': { eos_token: '</s>', pad_token: '<unk>' },
      'generation_config.json': { bos_token_id: 1, eos_token_id: [2, 5] },
      'chat_template.jinja': '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}',
    });
    const t = Tokenizer.fromDir(d);
    assert.equal(t.bosId, 1);
    assert.deepEqual(t.eosIds, [2, 5]);
    assert.equal(t.padId, 0);
    assert.equal(t.chatTemplate, '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}');
    assert.equal(t.bosToken, '<s>');
    assert.equal(t.eosToken, '</s>');
    assert.deepEqual(t.config, { tokenizer_class: 'LlamaTokenizer', bos_token: { __type: 'AddedToken', content: '<s>' }, add_bos_token: true });
    assert.deepEqual(t.encode('hi'), spmTok.encode('hi'));
    assert.equal(t.isSpecial(5), true); // listed as an eos id
  });

  it('chat_template as a list of named templates picks "default"', () => {
    const t = Tokenizer.fromJson(spmJson(spm), { ...SPM_CONFIG, chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] });
    assert.equal(t.chatTemplate, 'D');
    assert.equal(Tokenizer.fromJson(spmJson(spm), SPM_CONFIG).chatTemplate, null);
  });

  it('errors name the folder or file', () => {
    const empty = writeDir('empty', {});
    assert.throws(
      () => Tokenizer.fromDir(empty),
      (e: unknown) => e instanceof FormatError && e.message.startsWith(empty) && /tokenizer is missing/.test(e.message),
    );
    const bad = writeDir('bad', { 'tokenizer.json': '{"model": ' });
    assert.throws(
      () => Tokenizer.fromDir(bad),
      (e: unknown) => e instanceof FormatError && e.message.includes(join(bad, 'tokenizer.json')) && /invalid JSON/.test(e.message),
    );
    const badCfg = writeDir('badcfg', { 'tokenizer.json': spmJson(spm), 'tokenizer_config.json': '[1, 2' });
    assert.throws(() => Tokenizer.fromDir(badCfg), (e: unknown) => e instanceof FormatError && e.message.includes('tokenizer_config.json'));
    assert.throws(() => Tokenizer.fromJson({ version: '1.0' }, {}, 'x/tokenizer.json'), (e: unknown) => e instanceof FormatError && /x\/tokenizer.json: .*"model"/.test(e.message));
    assert.throws(
      () => Tokenizer.fromJson({ model: { type: 'NoSuchModel', vocab: 5 } }, {}, 'y.json'),
      (e: unknown) => e instanceof FormatError && /y.json: unsupported tokenizer model type "NoSuchModel"/.test(e.message),
    );
    assert.throws(
      () => Tokenizer.fromJson({ model: { type: 'BPE', vocab: {}, merges: 3 } }, {}, 'z.json'),
      (e: unknown) => e instanceof FormatError && /z.json: BPE model needs a "merges" list/.test(e.message),
    );
    assert.throws(
      () => Tokenizer.fromJson({ model: { type: 'BPE', vocab: {}, merges: [] }, decoder: { type: 'Nope' } }, {}, 'w.json'),
      (e: unknown) => e instanceof FormatError && /w.json: unsupported or malformed tokenizer: .*Nope/.test(e.message),
    );
    assert.throws(
      () => Tokenizer.fromJson({ model: { type: 'BPE', vocab: {}, merges: [] }, added_tokens: [{ id: 'x' }] }, {}, 'v.json'),
      (e: unknown) => e instanceof FormatError && /v.json: bad entry in "added_tokens"/.test(e.message),
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('GGUF tokenizer metadata', () => {
  const spm = spmVocab();

  it('a "llama" vocabulary tokenizes exactly as llama.cpp does', () => {
    const tok = tokenizerFromGguf(spmMetadata(spm), 'model.gguf');
    for (const t of TEXTS) assert.deepEqual(tok.encode(t), llamaCppSpm(spm, t, true), JSON.stringify(t));
    // Longer text made of the corpus, where many merges compete.
    const long = CORPUS.replace(/\n/g, ' ');
    assert.deepEqual(tok.encode(long), llamaCppSpm(spm, long, true));
    for (const t of TEXTS) assert.equal(tok.decode(tok.encode(t, { addSpecialTokens: false })), t);
    assert.equal(tok.bosId, 1);
    assert.deepEqual(tok.eosIds, [2]);
  });

  it('merge order follows scores, not token ids', () => {
    // Same pieces and scores, ids of everything after the byte tokens reversed.
    const head = 3 + 256;
    const order = [...spm.tokens.keys()].slice(0, head).concat([...spm.tokens.keys()].slice(head).reverse());
    const shuffled: SpmVocab = { tokens: order.map((i) => spm.tokens[i]!), scores: order.map((i) => spm.scores[i]!), types: order.map((i) => spm.types[i]!) };
    const tok = tokenizerFromGguf(spmMetadata(shuffled), 'shuffled.gguf');
    for (const t of [...TEXTS, CORPUS.replace(/\n/g, ' ')]) assert.deepEqual(tok.encode(t), llamaCppSpm(shuffled, t, true), JSON.stringify(t));
  });

  it('add_space_prefix = false (Gemma) leaves the text unprefixed', () => {
    const md = spmMetadata(spm);
    md.set('tokenizer.ggml.add_space_prefix', meta.bool(false));
    const tok = tokenizerFromGguf(md, 'gemma.gguf');
    const ids = tok.encode('hello world', { addSpecialTokens: false });
    assert.notEqual(tok.idToToken(ids[0]!)!.startsWith('▁'), true);
    assert.equal(tok.decode(ids), 'hello world');
    assert.equal(tok.decode(tok.encode(' x', { addSpecialTokens: false })), ' x');
  });

  const roundTrip = (name: string, hf: Tokenizer, specials: string[]) => {
    it(`${name}: HF -> GGUF metadata -> Tokenizer encodes and decodes identically`, () => {
      const md = ggufTokenizerMetadata(hf);
      const back = tokenizerFromGguf(md, `${name}.gguf`);
      assert.equal(back.vocabSize, hf.vocabSize);
      assert.equal(back.bosId, hf.bosId);
      assert.equal(back.eosIds[0], hf.eosIds[0]);
      const texts = [...TEXTS, ...specials, `a${specials[0]}b ${specials.join(' x ')} end`];
      for (const t of texts) {
        for (const addSpecialTokens of [true, false]) {
          const ids = hf.encode(t, { addSpecialTokens });
          assert.deepEqual(back.encode(t, { addSpecialTokens }), ids, `${JSON.stringify(t)} add=${addSpecialTokens}`);
          assert.equal(back.decode(ids), hf.decode(ids));
          assert.equal(back.decode(ids, { skipSpecialTokens: true }), hf.decode(ids, { skipSpecialTokens: true }));
        }
      }
      for (let id = 0; id < hf.vocabSize; id++) {
        assert.equal(back.idToToken(id), hf.idToToken(id));
        assert.equal(back.isSpecial(id), hf.isSpecial(id), `special ${id} ${hf.idToToken(id)}`);
      }
    });
  };
  const bl = byteLevelJson();
  const l3 = byteLevelJson(true);
  roundTrip('sentencepiece', Tokenizer.fromJson(spmJson(spm), SPM_CONFIG), ['<s>', '</s>', '<|tool|>']);
  roundTrip('gpt2', Tokenizer.fromJson(bl.json, bl.config), ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>']);
  roundTrip('llama3', Tokenizer.fromJson(l3.json, { ...l3.config, clean_up_tokenization_spaces: false }), ['<|begin_of_text|>', '<|im_start|>', '<|im_end|>', '<think>']);

  it('writes what llama.cpp expects for a SentencePiece vocabulary', () => {
    const hf = Tokenizer.fromJson(spmJson(spm), SPM_CONFIG);
    const md = ggufTokenizerMetadata(hf, { vocabSize: spm.tokens.length + 3 });
    const get = (k: string) => md.get(k)?.value;
    assert.equal(get('tokenizer.ggml.model'), 'llama');
    assert.equal(md.has('tokenizer.ggml.pre'), false);
    assert.equal(md.has('tokenizer.ggml.merges'), false);
    assert.deepEqual(md.get('tokenizer.ggml.token_type')?.itemType, 'i32');
    assert.deepEqual(md.get('tokenizer.ggml.scores')?.itemType, 'f32');
    const tokens = get('tokenizer.ggml.tokens') as string[];
    const types = get('tokenizer.ggml.token_type') as number[];
    const scores = get('tokenizer.ggml.scores') as number[];
    assert.equal(tokens.length, spm.tokens.length + 3);
    assert.deepEqual(tokens.slice(0, spm.tokens.length), spm.tokens);
    assert.deepEqual(types.slice(0, spm.tokens.length), spm.types);
    assert.deepEqual(tokens.slice(-3), [`[PAD${spm.tokens.length}]`, `[PAD${spm.tokens.length + 1}]`, `[PAD${spm.tokens.length + 2}]`]);
    assert.deepEqual(types.slice(-3), [TokenType.UNUSED, TokenType.UNUSED, TokenType.UNUSED]);
    // Scores keep the merge order of the original vocabulary.
    const merged = spm.tokens.map((_, i) => i).filter((i) => spm.types[i] === TokenType.NORMAL && Array.from(spm.tokens[i]!).length > 1);
    for (let k = 1; k < merged.length; k++) assert.ok(scores[merged[k - 1]!]! > scores[merged[k]!]!, `score order at ${spm.tokens[merged[k]!]}`);
    assert.equal(get('tokenizer.ggml.bos_token_id'), 1);
    assert.equal(get('tokenizer.ggml.eos_token_id'), 2);
    assert.equal(get('tokenizer.ggml.unknown_token_id'), 0);
    assert.equal(get('tokenizer.ggml.add_bos_token'), true);
    assert.equal(get('tokenizer.ggml.add_eos_token'), false);
    assert.equal(get('tokenizer.ggml.add_space_prefix'), true);
    assert.equal(md.get('tokenizer.ggml.bos_token_id')?.type, 'u32');
  });

  it('writes what llama.cpp expects for byte-level BPE, guessing tokenizer.ggml.pre', () => {
    const hf = Tokenizer.fromJson(bl.json, bl.config);
    const md = ggufTokenizerMetadata(hf);
    assert.equal(md.get('tokenizer.ggml.model')?.value, 'gpt2');
    assert.equal(md.get('tokenizer.ggml.pre')?.value, 'gpt-2');
    const merges = md.get('tokenizer.ggml.merges')?.value as string[];
    assert.deepEqual(merges, (bl.json.model as { merges: string[] }).merges);
    const types = md.get('tokenizer.ggml.token_type')?.value as number[];
    assert.equal(types[hf.tokenToId('<|im_end|>')!], TokenType.CONTROL);
    assert.equal(types[hf.tokenToId('<think>')!], TokenType.USER_DEFINED);
    assert.equal(types[hf.tokenToId('Ġ')!], TokenType.NORMAL);
    assert.equal(md.has('tokenizer.ggml.scores'), false);
    assert.equal(md.get('tokenizer.ggml.add_bos_token')?.value, false);

    const l3md = ggufTokenizerMetadata(Tokenizer.fromJson(l3.json, l3.config));
    assert.equal(l3md.get('tokenizer.ggml.pre')?.value, 'llama-bpe');
    assert.equal(l3md.get('tokenizer.ggml.add_bos_token')?.value, true);
    const noIgnore = { ...l3.json, model: { ...(l3.json.model as object), ignore_merges: false } };
    assert.equal(ggufTokenizerMetadata(Tokenizer.fromJson(noIgnore, l3.config)).get('tokenizer.ggml.pre')?.value, 'smaug-bpe');
    // Chat template travels with the tokenizer.
    const withChat = ggufTokenizerMetadata(Tokenizer.fromJson(bl.json, { ...bl.config, chat_template: 'X' }));
    assert.equal(withChat.get('tokenizer.chat_template')?.value, 'X');
    assert.equal(tokenizerFromGguf(withChat, 'c.gguf').chatTemplate, 'X');
  });

  it('tokenizer.ggml.pre picks the pre-tokenizer regex', () => {
    const md = ggufTokenizerMetadata(Tokenizer.fromJson(bl.json, bl.config));
    const pieces = (pre: string | null, text: string): string[] => {
      const m = new Map(md);
      if (pre === null) m.delete('tokenizer.ggml.pre');
      else m.set('tokenizer.ggml.pre', meta.str(pre));
      const t = tokenizerFromGguf(m, `${pre}.gguf`);
      return t.encode(text, { addSpecialTokens: false }).map((i) => t.decode([i]));
    };
    // Digit runs with merges "3 4" then "1 2": GPT-2 keeps "1234" as one pre-token, Llama 3 cuts
    // it into "123" + "4", Qwen2 and StarCoder into single digits, llama.cpp's default into "123" + "4".
    const digits = new Map<string, GgufMetaEntry>([
      ['tokenizer.ggml.model', meta.str('gpt2')],
      ['tokenizer.ggml.tokens', meta.arr('string', [...BYTE_CHARS, '34', '12'])],
      ['tokenizer.ggml.merges', meta.arr('string', ['3 4', '1 2'])],
    ]);
    const split = (pre: string, text: string): string[] => {
      const t = tokenizerFromGguf(new Map([...digits, ['tokenizer.ggml.pre', meta.str(pre)]]), 'd.gguf');
      return t.encode(text, { addSpecialTokens: false }).map((i) => t.idToToken(i)!);
    };
    assert.deepEqual(split('gpt-2', '1234'), ['12', '34']);
    assert.deepEqual(split('llama-bpe', '1234'), ['12', '3', '4']);
    assert.deepEqual(split('qwen2', '1234'), ['1', '2', '3', '4']);
    assert.deepEqual(split('starcoder', '1234'), ['1', '2', '3', '4']);
    assert.deepEqual(split('default', '1234'), ['12', '3', '4']);
    // Every pre-tokenizer llama.cpp names compiles and keeps text intact.
    const sample = "Hello WORLD, it's 2024: naïve café 中文 😀\n\n  x+=1; DON'T stop/go\r\n";
    for (const pre of ['default', 'gpt2', 'gpt-2', 'llama-bpe', 'llama3', 'dbrx', 'smaug-bpe', 'qwen2', 'deepseek-r1-qwen', 'starcoder', 'refact', 'command-r', 'smollm', 'falcon', 'tekken', 'gpt-4o', 'llama4', 'olmo', 'mpt']) {
      const m = new Map(md);
      m.set('tokenizer.ggml.pre', meta.str(pre));
      const t = tokenizerFromGguf(m, `${pre}.gguf`);
      assert.equal(t.decode(t.encode(sample)), sample, pre);
    }
    // llama.cpp's "default" also splits punctuation runs from words.
    assert.equal(pieces(null, "x+=1; it's").join(''), "x+=1; it's");
    // Unknown names fall back to GPT-2 with one warning.
    const warn = console.warn;
    const warnings: string[] = [];
    console.warn = (m: string) => warnings.push(m);
    try {
      assert.deepEqual(pieces('no-such-pre', 'hello world'), pieces('gpt2', 'hello world'));
      pieces('no-such-pre', 'again');
    } finally {
      console.warn = warn;
    }
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /no-such-pre\.gguf: unknown tokenizer\.ggml\.pre "no-such-pre"/);
  });

  it('end-of-generation tokens include eot/eom keys and llama.cpp\'s known end-of-turn texts', () => {
    const md = ggufTokenizerMetadata(Tokenizer.fromJson(bl.json, { ...bl.config, eos_token: '<|endoftext|>' }));
    const t = tokenizerFromGguf(md, 'q.gguf');
    const imEnd = t.tokenToId('<|im_end|>')!;
    assert.ok(t.eosIds.includes(t.tokenToId('<|endoftext|>')!));
    assert.ok(t.eosIds.includes(imEnd));
    md.set('tokenizer.ggml.eot_token_id', meta.u32(5));
    assert.ok(tokenizerFromGguf(md, 'q.gguf').eosIds.includes(5));
  });

  it('bad or missing metadata raises FormatError naming the file and key', () => {
    const err = (md: GgufMetadata, re: RegExp) =>
      assert.throws(() => tokenizerFromGguf(md, 'm.gguf'), (e: unknown) => e instanceof FormatError && e.message.startsWith('m.gguf: ') && re.test(e.message));
    const base = spmMetadata(spm);
    err(new Map(), /has no tokenizer\.ggml\.tokens: no embedded tokenizer/);
    const noModel = new Map(base);
    noModel.delete('tokenizer.ggml.model');
    err(noModel, /tokenizer\.ggml\.model/);
    err(new Map([...base, ['tokenizer.ggml.model', meta.str('t5')]]), /tokenizer\.ggml\.model "t5" is not supported/);
    err(new Map([...base, ['tokenizer.ggml.tokens', meta.str('oops')]]), /tokenizer\.ggml\.tokens must be an array of string/);
    err(new Map([...base, ['tokenizer.ggml.tokens', meta.arr('string', ['a', 'b', 'a'])]]), /duplicate token/);
    err(new Map([...base, ['tokenizer.ggml.scores', meta.arr('f32', [0, 1])]]), /tokenizer\.ggml\.scores has 2 entries/);
    const noScores = new Map(base);
    noScores.delete('tokenizer.ggml.scores');
    err(noScores, /has no tokenizer\.ggml\.scores/);
    err(new Map([...base, ['tokenizer.ggml.model', meta.str('gpt2')]]), /has no tokenizer\.ggml\.merges/);
    err(new Map([...base, ['tokenizer.ggml.bos_token_id', meta.str('1')]]), /tokenizer\.ggml\.bos_token_id must be an integer/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('chat templates', () => {
  // Written out from the models' tokenizer_config.json files.
  const LLAMA2 = String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`;
  const QWEN2 = String.raw`{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`;
  const GEMMA = String.raw`{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}`;
  const LLAMA3 = String.raw`{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`;
  // Zephyr's multi-line template relies on trim_blocks / lstrip_blocks.
  const ZEPHYR = [
    '{% for message in messages %}',
    "{% if message['role'] == 'user' %}",
    "{{ '<|user|>\\n' + message['content'] + eos_token }}",
    "{% elif message['role'] == 'system' %}",
    "{{ '<|system|>\\n' + message['content'] + eos_token }}",
    "{% elif message['role'] == 'assistant' %}",
    "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}",
    '{% endif %}',
    '{% if loop.last and add_generation_prompt %}',
    "{{ '<|assistant|>' }}",
    '{% endif %}',
    '{% endfor %}',
  ].join('\n');

  const chat: ChatMessage[] = [
    { role: 'user', content: 'Hi there' },
    { role: 'assistant', content: ' Hello! ' },
    { role: 'user', content: 'How are you?' },
  ];
  const withSystem: ChatMessage[] = [{ role: 'system', content: 'You are terse.' }, ...chat];

  it('Llama 2 [INST]', () => {
    assert.equal(
      applyChatTemplate(LLAMA2, withSystem, { bosToken: '<s>', eosToken: '</s>' }),
      '<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello! </s><s>[INST] How are you? [/INST]',
    );
    assert.throws(
      () => applyChatTemplate(LLAMA2, [chat[0]!, chat[0]!], { bosToken: '<s>', eosToken: '</s>' }),
      (e: unknown) => e instanceof ChatTemplateError && e.kind === 'rejected' && /Conversation roles must alternate user\/assistant/.test(e.message),
    );
  });

  it('ChatML (Qwen2)', () => {
    assert.equal(
      applyChatTemplate(QWEN2, [chat[0]!], { addGenerationPrompt: true }),
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
    );
    assert.equal(
      applyChatTemplate(QWEN2, withSystem.slice(0, 2)),
      '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n',
    );
  });

  it('Gemma <start_of_turn>', () => {
    assert.equal(
      applyChatTemplate(GEMMA, chat, { addGenerationPrompt: true, bosToken: '<bos>', eosToken: '<eos>' }),
      '<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n',
    );
    assert.throws(
      () => applyChatTemplate(GEMMA, withSystem, { bosToken: '<bos>' }),
      (e: unknown) => e instanceof ChatTemplateError && e.kind === 'rejected' && e.message === 'chat template rejected the conversation: System role not supported',
    );
  });

  it('Llama 3 <|start_header_id|>', () => {
    assert.equal(
      applyChatTemplate(LLAMA3, withSystem.slice(0, 2), { addGenerationPrompt: true, bosToken: '<|begin_of_text|>' }),
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });

  it('Zephyr (multi-line, trim_blocks)', () => {
    assert.equal(
      applyChatTemplate(ZEPHYR, withSystem.slice(0, 2), { addGenerationPrompt: true, eosToken: '</s>' }),
      '<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n',
    );
  });

  it('extra variables reach the template; reserved names and bad templates are errors', () => {
    assert.equal(applyChatTemplate('{{ greeting }} {{ messages|length }}', chat, { extra: { greeting: 'hey' } }), 'hey 3');
    assert.throws(() => applyChatTemplate('x', chat, { extra: { raise_exception: 1 } }), (e: unknown) => e instanceof ChatTemplateError && /reserved/.test(e.message));
    assert.throws(
      () => applyChatTemplate('{% for m in messages %}{{ m.content }', chat),
      (e: unknown) => e instanceof ChatTemplateError && e.kind === 'syntax' && /^chat template does not parse: /.test(e.message),
    );
    assert.throws(
      () => applyChatTemplate('{{ messages | no_such_filter }}', chat),
      (e: unknown) => e instanceof ChatTemplateError && e.kind === 'render' && /no_such_filter/.test(e.message),
    );
  });
});

// Byte-level BPE tokenizer training (GPT-2 style), written out as a Hugging Face tokenizer.json +
// tokenizer_config.json that src/formats/tokenizer.ts (and transformers / the Rust crate) load.
//
// Training follows the `tokenizers` crate's BpeTrainer: split text with the GPT-2 regex (what the
// ByteLevel pre-tokenizer with use_regex does at encode time), count unique pieces, spell each
// piece in bytes, then repeatedly merge the most frequent adjacent pair. Pair counts are kept
// incrementally: each pair remembers which words contain it, a merge rewrites only those words and
// applies the count deltas, and a max-heap with lazy invalidation picks the next pair.
//
// Vocabulary layout: special tokens 0..S-1, byte b at id S+b (all 256, so any string encodes
// without an unk token), then merged tokens in merge order.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { byteLevelBpeJson } from '../formats/gguf-tokenizer.ts';

export interface BpeOptions {
  /** Final vocabulary size, special tokens and the 256 byte tokens included. */
  vocabSize: number;
  /** A pair seen fewer times than this is never merged (default 2: a pair seen once is memorization). */
  minFrequency?: number;
  /**
   * Special tokens, given ids 0.. in this order (default ['<s>', '</s>']: BOS and EOS for
   * Llama-style training). They are never merged with text, and training text is split around them.
   */
  specialTokens?: string[];
  /** Called as merges are learned: done merges of the planned total (vocabSize - base tokens). */
  onProgress?: (done: number, total: number) => void;
}

export interface BpeModel {
  /** token -> id (special tokens, then byte symbols, then merged tokens). */
  vocab: Map<string, number>;
  /** Merge rules in rank order, as pairs of byte-level token strings. */
  merges: [string, string][];
  /** The special tokens, ids 0..specialTokens.length-1. */
  specialTokens: string[];
}

export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ['<s>', '</s>'];

/** The GPT-2 pre-tokenization regex, exactly as the ByteLevel pre-tokenizer (use_regex) applies it. */
const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte -> printable character table (bytes_to_unicode). */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const out: string[] = new Array(256);
  const printable = (b: number): boolean => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return out;
})();

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Each byte symbol's position when the 256 are sorted by code point (the crate's id order). */
const BYTE_RANK: Int32Array = (() => {
  const order = Array.from({ length: 256 }, (_, b) => b).sort((x, y) => BYTE_TO_UNICODE[x]!.codePointAt(0)! - BYTE_TO_UNICODE[y]!.codePointAt(0)!);
  const r = new Int32Array(256);
  order.forEach((b, i) => (r[b] = i));
  return r;
})();

/** Max-heap of pairs: highest count first, ties by the `before` order. */
class PairHeap {
  private readonly cnt: number[] = [];
  private readonly key: number[] = [];
  constructor(private readonly before: (k1: number, k2: number) => boolean) {}

  get size(): number {
    return this.cnt.length;
  }

  private less(i: number, j: number): boolean {
    // "i comes out before j"
    const ci = this.cnt[i]!;
    const cj = this.cnt[j]!;
    return ci > cj || (ci === cj && this.before(this.key[i]!, this.key[j]!));
  }

  private swap(i: number, j: number): void {
    const c = this.cnt[i]!;
    this.cnt[i] = this.cnt[j]!;
    this.cnt[j] = c;
    const k = this.key[i]!;
    this.key[i] = this.key[j]!;
    this.key[j] = k;
  }

  push(count: number, key: number): void {
    this.cnt.push(count);
    this.key.push(key);
    let i = this.cnt.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Remove the top; returns [count, key]. Only call when size > 0. */
  pop(): [number, number] {
    const top: [number, number] = [this.cnt[0]!, this.key[0]!];
    const lastC = this.cnt.pop()!;
    const lastK = this.key.pop()!;
    const n = this.cnt.length;
    if (n > 0) {
      this.cnt[0] = lastC;
      this.key[0] = lastK;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.less(l, m)) m = l;
        if (r < n && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

function checkOptions(opts: BpeOptions): { specials: string[]; minFrequency: number } {
  const specials = opts.specialTokens ? [...opts.specialTokens] : [...DEFAULT_SPECIAL_TOKENS];
  const seen = new Set<string>();
  for (const s of specials) {
    if (typeof s !== 'string' || s.length === 0) throw new Error(`trainBpe: specialTokens must be non-empty strings, got ${JSON.stringify(s)}`);
    if (seen.has(s)) throw new Error(`trainBpe: special token ${JSON.stringify(s)} is listed twice`);
    // Byte symbols need their own ids, or some strings would not encode.
    if (BYTE_TO_UNICODE.includes(s)) throw new Error(`trainBpe: special token ${JSON.stringify(s)} is spelled like a byte symbol; use a longer name`);
    seen.add(s);
  }
  const base = 256 + specials.length;
  const v = opts.vocabSize;
  if (!Number.isInteger(v) || v < base) {
    throw new Error(`trainBpe: vocabSize ${v} is too small: it must be an integer of at least ${base} (256 byte tokens + ${specials.length} special tokens)`);
  }
  // Pair keys are left * vocabSize + right and must stay exact doubles.
  if (v > 1 << 26) throw new Error(`trainBpe: vocabSize ${v} is too large (at most ${1 << 26})`);
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`trainBpe: minFrequency must be a positive integer, got ${minFrequency}`);
  return { specials, minFrequency };
}

/** Count the GPT-2 pre-tokenizer pieces of the corpus (text between special tokens only). */
function countPieces(texts: Iterable<string>, specials: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  // Longest first, so a special token that contains another wins (as the added-token matcher does).
  const specialRe = specials.length > 0 ? new RegExp([...specials].sort((a, b) => b.length - a.length).map(escapeRegex).join('|'), 'u') : null;
  let sawText = false;
  const add = (text: string): void => {
    const pieces = text.match(GPT2_PATTERN);
    if (pieces === null) return;
    for (const p of pieces) counts.set(p, (counts.get(p) ?? 0) + 1);
  };
  for (const text of texts) {
    if (typeof text !== 'string') throw new Error(`trainBpe: the corpus must yield strings, got ${typeof text}`);
    if (text.length === 0) continue;
    sawText = true;
    if (specialRe !== null && specialRe.test(text)) {
      for (const part of text.split(specialRe)) add(part);
    } else {
      add(text);
    }
  }
  if (!sawText) throw new Error('trainBpe: the corpus is empty (no text to train on)');
  return counts;
}

export function trainBpe(texts: Iterable<string>, opts: BpeOptions): BpeModel {
  const { specials, minFrequency } = checkOptions(opts);
  const vocabSize = opts.vocabSize;
  const S = specials.length;
  const base = S + 256;

  // id -> token string, and the reverse map.
  const tokens: string[] = [...specials];
  for (let b = 0; b < 256; b++) tokens.push(BYTE_TO_UNICODE[b]!);
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i));

  const pieceCounts = countPieces(texts, specials);

  // Words as byte-symbol runs in one buffer; a merge rewrites a word in place (it only shrinks).
  // Single-byte words hold no pair and are left out.
  const enc = new TextEncoder();
  let totalSyms = 0;
  const kept: [Uint8Array, number][] = [];
  for (const [piece, c] of pieceCounts) {
    const bytes = enc.encode(piece);
    if (bytes.length < 2) continue;
    kept.push([bytes, c]);
    totalSyms += bytes.length;
  }
  pieceCounts.clear();
  const nWords = kept.length;
  const syms = new Int32Array(totalSyms);
  const wStart = new Int32Array(nWords);
  const wLen = new Int32Array(nWords);
  const wCount = new Float64Array(nWords);
  {
    let pos = 0;
    for (let w = 0; w < nWords; w++) {
      const [bytes, c] = kept[w]!;
      wStart[w] = pos;
      wLen[w] = bytes.length;
      wCount[w] = c;
      for (let i = 0; i < bytes.length; i++) syms[pos++] = S + bytes[i]!;
    }
  }
  kept.length = 0;

  // Pair key: left * K + right (ids are < vocabSize).
  const K = vocabSize;
  const pairCount = new Map<number, number>();
  // Words that contained the pair when it was counted; may hold stale words and repeats, which a
  // merge skips (a stale word just has nothing to merge).
  const pairWords = new Map<number, number[]>();
  const noteWord = (key: number, w: number): void => {
    const arr = pairWords.get(key);
    if (arr === undefined) pairWords.set(key, [w]);
    else if (arr[arr.length - 1] !== w) arr.push(w);
  };
  for (let w = 0; w < nWords; w++) {
    const s = wStart[w]!;
    const e = s + wLen[w]!;
    const c = wCount[w]!;
    for (let i = s; i + 1 < e; i++) {
      const key = syms[i]! * K + syms[i + 1]!;
      pairCount.set(key, (pairCount.get(key) ?? 0) + c);
      noteWord(key, w);
    }
  }

  // Count ties go to the smaller (left, right) pair of ids in the tokenizers crate's layout:
  // special tokens, the 256 byte symbols in code-point order, then merged tokens in the order
  // they were made. Ours keeps the byte symbols in byte order, so only they need re-ranking.
  const rank = (id: number): number => (id >= S && id < base ? S + BYTE_RANK[id - S]! : id);
  const pairBefore = (k1: number, k2: number): boolean => {
    const a1 = rank(Math.floor(k1 / K));
    const a2 = rank(Math.floor(k2 / K));
    if (a1 !== a2) return a1 < a2;
    return rank(k1 % K) < rank(k2 % K);
  };
  const heap = new PairHeap(pairBefore);
  for (const [key, c] of pairCount) heap.push(c, key);

  const merges: [string, string][] = [];
  // Pair -> the id it merged into. A pair can come back after its merge when a later merge
  // re-creates one of its sides under the same string (e.g. "ab"+"c" then "a"+"bc"); it is then
  // merged again without a second rule, as the encoder's rule would merge it too.
  const merged = new Map<number, number>();
  const blocked = new Set<number>();
  const stamp = new Int32Array(nWords).fill(-1);
  const total = vocabSize - base;
  const step = Math.max(1, Math.ceil(total / 200));
  let lastReported = -1;
  const report = (): void => {
    const done = vocab.size - base;
    if (opts.onProgress && done !== lastReported) {
      lastReported = done;
      opts.onProgress(done, total);
    }
  };
  let round = 0;

  while (tokens.length < vocabSize && heap.size > 0) {
    const [stored, key] = heap.pop();
    if (blocked.has(key)) continue;
    const current = pairCount.get(key) ?? 0;
    if (stored !== current) {
      // Stale entry: the count dropped since it was pushed (raises push a fresh entry).
      if (current > 0 && current < stored) heap.push(current, key);
      continue;
    }
    if (current < minFrequency) break;

    const A = Math.floor(key / K);
    const B = key % K;
    let N = merged.get(key);
    if (N === undefined) {
      const str = tokens[A]! + tokens[B]!;
      N = vocab.get(str);
      if (N !== undefined && N < S) {
        // The merge would spell a special token (one written in byte-level characters, e.g.
        // "Ġx"): never merge this pair, so text cannot turn into a special token.
        blocked.add(key);
        pairCount.delete(key);
        pairWords.delete(key);
        continue;
      }
      if (N === undefined) {
        N = tokens.length;
        tokens.push(str);
        vocab.set(str, N);
      }
      merged.set(key, N);
      merges.push([tokens[A]!, tokens[B]!]);
    }

    // Rewrite every word holding A B, collecting count deltas. Using the already-rewritten left
    // neighbour (out - 1) makes back-to-back merges ("A B A B" -> "N N") net out correctly.
    const delta = new Map<number, number>();
    const addDelta = (k: number, d: number): void => {
      delta.set(k, (delta.get(k) ?? 0) + d);
    };
    const words = pairWords.get(key) ?? [];
    for (const w of words) {
      if (stamp[w] === round) continue;
      stamp[w] = round;
      const s = wStart[w]!;
      const e = s + wLen[w]!;
      const c = wCount[w]!;
      let out = s;
      let i = s;
      while (i < e) {
        const x = syms[i]!;
        if (x === A && i + 1 < e && syms[i + 1] === B) {
          addDelta(key, -c);
          if (out > s) {
            const p = syms[out - 1]!;
            addDelta(p * K + A, -c);
            addDelta(p * K + N, c);
            noteWord(p * K + N, w);
          }
          if (i + 2 < e) {
            const nx = syms[i + 2]!;
            addDelta(B * K + nx, -c);
            addDelta(N * K + nx, c);
            noteWord(N * K + nx, w);
          }
          syms[out++] = N;
          i += 2;
        } else {
          syms[out++] = x;
          i++;
        }
      }
      wLen[w] = out - s;
    }
    round++;

    for (const [k, d] of delta) {
      if (d === 0) continue;
      const c = (pairCount.get(k) ?? 0) + d;
      if (c <= 0) {
        pairCount.delete(k);
        pairWords.delete(k);
      } else {
        pairCount.set(k, c);
        if (d > 0) heap.push(c, k);
      }
    }
    // Every occurrence was merged (occurrences of A B never overlap unless A = B, and the
    // left-to-right scan takes all of those), so the pair is gone.
    pairCount.delete(key);
    pairWords.delete(key);

    if ((vocab.size - base) % step === 0) report();
  }
  report();

  return { vocab, merges, specialTokens: specials };
}

function addedToken(id: number, content: string): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

function specialId(model: BpeModel, tok: string, what: string): number {
  const i = model.specialTokens.indexOf(tok);
  if (i < 0) throw new Error(`${what} ${JSON.stringify(tok)} is not one of the model's special tokens (${model.specialTokens.map((s) => JSON.stringify(s)).join(', ') || 'none'})`);
  return model.vocab.get(tok)!;
}

/**
 * The tokenizer.json object for a trained model. With addBos (default: true when the model has a
 * special token), the post-processor prepends `bos` (default: the first special token).
 */
export function bpeTokenizerJson(model: BpeModel, opts: { addBos?: boolean; bos?: string } = {}): object {
  // Null prototype: a byte-level token may well be spelled "__proto__".
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  const byId = [...model.vocab].sort((a, b) => a[1] - b[1]);
  for (const [t, id] of byId) vocab[t] = id;

  const bos = opts.bos ?? model.specialTokens[0];
  const addBos = opts.addBos ?? bos !== undefined;
  let postProcessor: Record<string, unknown>;
  if (addBos) {
    if (bos === undefined) throw new Error('bpeTokenizerJson: addBos needs a bos token, and the model has no special tokens');
    const bosId = specialId(model, bos, 'bpeTokenizerJson: bos token');
    postProcessor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    };
  } else {
    postProcessor = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  }

  return byteLevelBpeJson({
    vocab,
    // "left right": byte-level symbols never contain a space (it is "Ġ"), and every
    // tokenizers version reads this form.
    merges: model.merges.map(([a, b]) => `${a} ${b}`),
    added: model.specialTokens.map((t) => addedToken(model.vocab.get(t)!, t)),
    preTokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    postProcessor,
    ignoreMerges: false,
  });
}

/**
 * Write tokenizer.json and tokenizer_config.json into `dir` (created if missing). bos / eos
 * default to the first and second special tokens (eos = bos when there is only one). BOS is added
 * once on encode: tokenizer_config sets add_bos_token, which the loader (like transformers) turns
 * into a "[bos] $A" post-processor, and tokenizer.json's own post-processor says the same.
 */
export function writeBpeTokenizer(
  dir: string,
  model: BpeModel,
  opts: { bos?: string; eos?: string; chatTemplate?: string; addBos?: boolean } = {},
): void {
  const bos = opts.bos ?? model.specialTokens[0];
  const eos = opts.eos ?? model.specialTokens[1] ?? model.specialTokens[0];
  if (bos !== undefined) specialId(model, bos, 'writeBpeTokenizer: bos token');
  if (eos !== undefined) specialId(model, eos, 'writeBpeTokenizer: eos token');
  const addBos = (opts.addBos ?? true) && bos !== undefined;

  const json = bpeTokenizerJson(model, { addBos, ...(bos !== undefined ? { bos } : {}) });
  const addedDecoder: Record<string, unknown> = {};
  for (const t of model.specialTokens) {
    const { id, ...rest } = addedToken(model.vocab.get(t)!, t);
    addedDecoder[String(id)] = rest;
  }
  const config: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: addBos,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: addedDecoder,
  };
  if (bos !== undefined) config.bos_token = bos;
  if (eos !== undefined) config.eos_token = eos;
  if (opts.chatTemplate !== undefined) config.chat_template = opts.chatTemplate;

  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
}

// The CLIP BPE tokenizer of Stable Diffusion's text encoders, from a checkpoint's tokenizer/ folder
// (vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json).
//
// Two front ends, one BPE:
//   - 'transformers' (default): what diffusers gets from transformers' CLIPTokenizer in a default
//     install (without the optional ftfy package): the special tokens (bos, eos, pad, unk) are split
//     out of the text first and map straight to their ids (so SD 2.x's and SDXL's tokenizer_2, whose
//     pad token is "!", turn every "!" into id 0: diffusers issue 4153); each other piece goes through
//     BERT's BasicTokenizer rules: control and format characters (Unicode C*) dropped, whitespace to
//     spaces, spaces around CJK ideographs, NFC, split on whitespace, lower-cased.
//   - 'openai': OpenAI's simple_tokenizer.py (what transformers does with ftfy installed, minus ftfy's
//     repairs other than NFC): NFC, HTML entities unescaped twice, whitespace runs to one space,
//     trimmed, lower-cased.
// Then both: OpenAI's pattern (<|startoftext|> | <|endoftext|> | 's 't 're 've 'm 'll 'd | letters+ |
// one digit | other non-space characters+), each word's UTF-8 bytes as GPT-2's printable byte
// symbols with "</w>" glued to the last one, and BPE merges by rank.
//
// encode() does what diffusers' pipelines ask (`padding="max_length", truncation=True`):
// <|startoftext|> ids <|endoftext|>, cut to model_max_length (77) with a warning callback carrying the
// removed text, padded with the config's pad token (SD 1.x: <|endoftext|>; SD 2.x and SDXL's second
// tokenizer: "!", id 0).
//
// Not reproduced in 'openai' mode: HTML's full named-entity table (numeric references and the common
// named entities are unescaped; see unescapeHtml).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export class ClipTokenizerError extends Error {
  override name = 'ClipTokenizerError';
}

/** GPT-2 / CLIP's byte -> printable character table (bytes_to_unicode). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCodePoint(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCodePoint(256 + n++);
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));
const UTF8 = new TextEncoder();

// Python's whitespace: `\s` of the regex module (Unicode White_Space) for whitespace_clean, and
// str.isspace (which adds \x1c-\x1f) for strip().
const WS = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS_RUN = new RegExp(`[${WS}]+`, 'gu');
const STRIP = new RegExp(`^[${WS}\\x1c-\\x1f]+|[${WS}\\x1c-\\x1f]+$`, 'gu');
const PATTERN = new RegExp(`<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WS}\\p{L}\\p{N}]+`, 'giu');

// Python's html.unescape for the entities prompts use; numeric references fully (including the
// HTML5 remapping of 0x80-0x9f and invalid code points).
const NAMED: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '\u00a9', reg: '\u00ae', trade: '\u2122',
  hellip: '\u2026', mdash: '\u2014', ndash: '\u2013', lsquo: '\u2018', rsquo: '\u2019', ldquo: '\u201c', rdquo: '\u201d',
  laquo: '\u00ab', raquo: '\u00bb', deg: '\u00b0', middot: '\u00b7', times: '\u00d7', divide: '\u00f7', plusmn: '\u00b1',
  euro: '\u20ac', pound: '\u00a3', yen: '\u00a5', cent: '\u00a2', sect: '\u00a7', para: '\u00b6', bull: '\u2022',
  hearts: '\u2665', eacute: '\u00e9', egrave: '\u00e8', agrave: '\u00e0', aacute: '\u00e1', ccedil: '\u00e7',
  ouml: '\u00f6', uuml: '\u00fc', auml: '\u00e4', szlig: '\u00df', ntilde: '\u00f1',
};
// Entities HTML5 also accepts without the semicolon (a subset of those above).
const LEGACY = new Set(['amp', 'lt', 'gt', 'quot', 'nbsp', 'copy', 'reg', 'laquo', 'raquo', 'deg', 'middot', 'times', 'divide',
  'plusmn', 'pound', 'yen', 'cent', 'sect', 'para', 'eacute', 'egrave', 'agrave', 'aacute', 'ccedil', 'ouml', 'uuml', 'auml', 'szlig', 'ntilde']);
const CP1252: Record<number, number> = {
  0x80: 0x20ac, 0x82: 0x201a, 0x83: 0x0192, 0x84: 0x201e, 0x85: 0x2026, 0x86: 0x2020, 0x87: 0x2021, 0x88: 0x02c6,
  0x89: 0x2030, 0x8a: 0x0160, 0x8b: 0x2039, 0x8c: 0x0152, 0x8e: 0x017d, 0x91: 0x2018, 0x92: 0x2019, 0x93: 0x201c,
  0x94: 0x201d, 0x95: 0x2022, 0x96: 0x2013, 0x97: 0x2014, 0x98: 0x02dc, 0x99: 0x2122, 0x9a: 0x0161, 0x9b: 0x203a,
  0x9c: 0x0153, 0x9e: 0x017e, 0x9f: 0x0178, 0x0d: 0x0d, 0x81: 0x81, 0x8d: 0x8d, 0x8f: 0x8f, 0x90: 0x90, 0x9d: 0x9d,
};
const ENTITY = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z][A-Za-z0-9]*;?)/g;

/** html.unescape (numeric references and the common named entities). */
export function unescapeHtml(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(ENTITY, (whole, body: string) => {
    if (body.startsWith('#')) {
      const hex = body[1] === 'x' || body[1] === 'X';
      const digits = body.slice(hex ? 2 : 1).replace(/;$/, '');
      const cp = parseInt(digits, hex ? 16 : 10);
      if (cp in CP1252) return String.fromCodePoint(CP1252[cp]!);
      if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || cp === 0) return '\ufffd';
      if ((cp >= 0x1 && cp <= 0x8) || (cp >= 0xe && cp <= 0x1f) || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe || cp === 0xb) return '';
      return String.fromCodePoint(cp);
    }
    if (body.endsWith(';')) {
      const v = NAMED[body.slice(0, -1)];
      if (v !== undefined) return v;
    }
    // Without a semicolon, HTML5 takes the longest legacy entity that prefixes the name.
    const name = body.replace(/;$/, '');
    for (let k = name.length; k >= 2; k--) {
      const head = name.slice(0, k);
      if (LEGACY.has(head)) return NAMED[head]! + body.slice(k);
    }
    return whole;
  });
}

/** OpenAI's basic_clean + whitespace_clean + lower(): the text the BPE sees. */
export function normalizeClipText(text: string): string {
  let t = text.normalize('NFC');
  t = unescapeHtml(unescapeHtml(t));
  t = t.replace(STRIP, '');
  t = t.replace(WS_RUN, ' ').replace(STRIP, '');
  return t.toLowerCase();
}

// transformers' BasicTokenizer rules (the no-ftfy path of CLIPTokenizer).
const CONTROL = /\p{C}/u; // Cc, Cf, Cs, Co, Cn: what BERT's _is_control counts (tab, newline, CR aside)
const SPACE_SEP = /\p{Zs}/u;
// Python's str.split(): splits on str.isspace characters.
const PY_SPACE_RUN = new RegExp(`[${WS}\\x1c-\\x1f]+`, 'u');

/** CJK Unified Ideographs blocks (and compatibility ideographs), which BERT surrounds with spaces. */
function isCjkIdeograph(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df)
    || (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b820 && cp <= 0x2ceaf)
    || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** transformers' CLIPTokenizer text clean-up without ftfy (BasicTokenizer with strip_accents=False,
 * do_split_on_punc=False), words joined by single spaces. */
export function basicCleanClipText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd) continue;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEP.test(ch)) { out += ' '; continue; }
    if (CONTROL.test(ch)) continue;
    out += isCjkIdeograph(cp) ? ` ${ch} ` : ch;
  }
  return out.normalize('NFC').split(PY_SPACE_RUN).filter((w) => w !== '').map((w) => w.toLowerCase()).join(' ');
}

/** Which text front end the tokenizer reproduces (see the file comment). */
export type ClipTokenizerMode = 'transformers' | 'openai';

export interface ClipTokenizerFiles {
  /** vocab.json's contents: token -> id. */
  vocab: Record<string, number>;
  /** merges.txt's contents ("#version" header optional), one "a b" merge per line, by rank. */
  merges: string;
  /** tokenizer_config.json's contents, if any. */
  tokenizerConfig?: Record<string, unknown>;
  /** special_tokens_map.json's contents, if any. */
  specialTokensMap?: Record<string, unknown>;
  /** Default 'transformers' (diffusers' behaviour in a default install). */
  mode?: ClipTokenizerMode;
}

export interface ClipEncodeOptions {
  /** Pad to the max length (default true, as diffusers' `padding="max_length"`). */
  pad?: boolean;
  /** Called when the prompt is cut to the max length, with the removed text and ids (diffusers logs
   * "The following part of your input was truncated because CLIP can only handle sequences up to
   * 77 tokens: ..."). */
  onTruncate?: (removedText: string, removedIds: number[]) => void;
}

export interface ClipEncoding {
  /** <|startoftext|> tokens <|endoftext|> [pad...]: maxLength ids when padded. */
  ids: number[];
  /** 1 for real tokens (bos, text, eos), 0 for padding. */
  attentionMask: number[];
  /** Whether the prompt was cut to fit. */
  truncated: boolean;
}

/** A special token's text from a config value (a string, or an AddedToken object with `content`). */
function tokenText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly mode: ClipTokenizerMode;
  /** The special tokens split out of the text in 'transformers' mode, longest first. */
  private readonly specials: string[];
  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();

  constructor(files: ClipTokenizerFiles) {
    if (!files.vocab || typeof files.vocab !== 'object') throw new ClipTokenizerError('vocab.json must be a JSON object of token -> id');
    this.encoder = new Map();
    this.decoder = new Map();
    for (const [tok, id] of Object.entries(files.vocab)) {
      if (!Number.isInteger(id) || id < 0) throw new ClipTokenizerError(`vocab.json: id of ${JSON.stringify(tok)} must be a non-negative integer, got ${JSON.stringify(id)}`);
      this.encoder.set(tok, id);
      this.decoder.set(id, tok);
    }
    this.ranks = new Map();
    const lines = files.merges.split('\n');
    let rank = 0;
    lines.forEach((raw, i) => {
      const line = raw.replace(/\r$/, '');
      if (line === '' || (i === 0 && line.startsWith('#version'))) return;
      const parts = line.split(' ');
      if (parts.length !== 2 || !parts[0] || !parts[1]) throw new ClipTokenizerError(`merges.txt line ${i + 1}: expected two symbols separated by a space, got ${JSON.stringify(line)}`);
      const key = `${parts[0]} ${parts[1]}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
      rank++;
    });
    const cfg = files.tokenizerConfig ?? {};
    const map = files.specialTokensMap ?? {};
    const pick = (key: string, fallback: string): string => tokenText(cfg[key]) ?? tokenText(map[key]) ?? fallback;
    this.bosToken = pick('bos_token', '<|startoftext|>');
    this.eosToken = pick('eos_token', '<|endoftext|>');
    this.padToken = pick('pad_token', pick('unk_token', '<|endoftext|>'));
    const maxLen = cfg['model_max_length'];
    // transformers stores "no limit" as a huge number (1e30); CLIP's text models take 77 positions.
    this.maxLength = typeof maxLen === 'number' && Number.isInteger(maxLen) && maxLen >= 2 && maxLen < 1e6 ? maxLen : 77;
    const idOf = (tok: string, what: string): number => {
      const id = this.encoder.get(tok);
      if (id === undefined) throw new ClipTokenizerError(`${what} ${JSON.stringify(tok)} is not in vocab.json`);
      return id;
    };
    this.bosId = idOf(this.bosToken, 'bos_token');
    this.eosId = idOf(this.eosToken, 'eos_token');
    this.padId = idOf(this.padToken, 'pad_token');
    for (const s of ['<|startoftext|>', '<|endoftext|>']) if (this.encoder.has(s)) this.cache.set(s, [s]);
    this.mode = files.mode ?? 'transformers';
    if (this.mode !== 'transformers' && this.mode !== 'openai') throw new ClipTokenizerError(`mode must be 'transformers' or 'openai', got ${JSON.stringify(this.mode)}`);
    const unk = pick('unk_token', '<|endoftext|>');
    this.specials = [...new Set([this.bosToken, this.eosToken, this.padToken, unk])]
      .filter((t) => t !== '' && this.encoder.has(t))
      .sort((a, b) => b.length - a.length);
  }

  /**
   * Loads a tokenizer folder (`<model>/tokenizer`, `<model>/tokenizer_2`), or a model folder (its
   * `tokenizer/` subfolder): vocab.json and merges.txt, and tokenizer_config.json /
   * special_tokens_map.json when present.
   */
  static load(dir: string, options: { mode?: ClipTokenizerMode } = {}): ClipTokenizer {
    const base = !existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'tokenizer', 'vocab.json')) ? join(dir, 'tokenizer') : dir;
    const readJson = (name: string, required: boolean): Record<string, unknown> | undefined => {
      const p = join(base, name);
      if (!existsSync(p)) {
        if (required) throw new ClipTokenizerError(`CLIP tokenizer: ${p} not found (expected vocab.json and merges.txt in ${base})`);
        return undefined;
      }
      try {
        return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new ClipTokenizerError(`CLIP tokenizer: ${p} is not valid JSON: ${(e as Error).message}`);
      }
    };
    const vocab = readJson('vocab.json', true) as Record<string, number>;
    const mergesPath = join(base, 'merges.txt');
    if (!existsSync(mergesPath)) throw new ClipTokenizerError(`CLIP tokenizer: ${mergesPath} not found`);
    return new ClipTokenizer({
      vocab,
      merges: readFileSync(mergesPath, 'utf8'),
      tokenizerConfig: readJson('tokenizer_config.json', false),
      specialTokensMap: readJson('special_tokens_map.json', false),
      mode: options.mode,
    });
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  /** BPE of one pre-tokenized word (already byte-encoded), with "</w>" on its last symbol. */
  private bpe(word: string): string[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const chars = Array.from(word);
    let parts = [...chars.slice(0, -1), chars[chars.length - 1] + '</w>'];
    while (parts.length > 1) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      const first = parts[best]!, second = parts[best + 1]!;
      const next: string[] = [];
      for (let i = 0; i < parts.length;) {
        if (i < parts.length - 1 && parts[i] === first && parts[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(parts[i]!);
          i++;
        }
      }
      parts = next;
    }
    if (this.cache.size < 50_000) this.cache.set(word, parts);
    return parts;
  }

  /** The BPE tokens of a text (no special tokens added; those in the text are kept as they are). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    if (this.mode === 'openai') {
      this.bpeWords(normalizeClipText(text), out);
      return out;
    }
    // transformers: split out the special tokens (leftmost, longest), clean and BPE the pieces between.
    let piece = '';
    for (let i = 0; i < text.length;) {
      const hit = this.specials.find((s) => text.startsWith(s, i));
      if (hit) {
        this.bpeWords(basicCleanClipText(piece), out);
        piece = '';
        out.push(hit);
        i += hit.length;
      } else {
        piece += text[i];
        i++;
      }
    }
    this.bpeWords(basicCleanClipText(piece), out);
    return out;
  }

  /** Pre-tokenizes normalized text with OpenAI's pattern and appends each word's BPE symbols. */
  private bpeWords(normalized: string, out: string[]): void {
    if (normalized === '') return;
    for (const m of normalized.matchAll(PATTERN)) {
      let word = '';
      for (const b of UTF8.encode(m[0])) word += BYTE_ENCODER[b];
      out.push(...this.bpe(word));
    }
  }

  /** The ids of a text, without <|startoftext|>/<|endoftext|>, untruncated. */
  encodeText(text: string): number[] {
    return this.tokenize(text).map((t) => this.encoder.get(t) ?? this.encoder.get(this.eosToken)!);
  }

  /**
   * `tokenizer(prompt, padding="max_length", max_length=77, truncation=True)`: bos, the text's ids
   * (cut so that bos + ids + eos fit), eos, then pad ids up to maxLength.
   */
  encode(text: string, options: ClipEncodeOptions = {}): ClipEncoding {
    const body = this.encodeText(text);
    const room = this.maxLength - 2;
    const truncated = body.length > room;
    const kept = truncated ? body.slice(0, room) : body;
    if (truncated && options.onTruncate) {
      const removed = body.slice(room);
      options.onTruncate(this.decode(removed), removed);
    }
    const ids = [this.bosId, ...kept, this.eosId];
    const attentionMask = ids.map(() => 1);
    if (options.pad ?? true) {
      while (ids.length < this.maxLength) {
        ids.push(this.padId);
        attentionMask.push(0);
      }
    }
    return { ids, attentionMask, truncated };
  }

  /** Ids back to text ("</w>" becomes a space, as transformers' CLIPTokenizer decodes). */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const specials = new Set([this.bosId, this.eosId, this.padId]);
    let text = '';
    for (const id of ids) {
      // As transformers: every special id is skipped, the pad token too (even SD 2.x's "!").
      if (options.skipSpecialTokens && specials.has(id)) continue;
      const tok = this.decoder.get(id);
      if (tok === undefined) throw new ClipTokenizerError(`decode: id ${id} is not in the vocabulary (size ${this.encoder.size})`);
      text += tok;
    }
    const bytes: number[] = [];
    const chunks: string[] = [];
    const dec = new TextDecoder('utf-8');
    const flush = (): void => {
      if (bytes.length) chunks.push(dec.decode(new Uint8Array(bytes)));
      bytes.length = 0;
    };
    for (const ch of text) {
      const b = BYTE_DECODER.get(ch);
      if (b === undefined) { flush(); chunks.push(ch); } else bytes.push(b);
    }
    flush();
    return chunks.join('').replaceAll('</w>', ' ').trim();
  }
}

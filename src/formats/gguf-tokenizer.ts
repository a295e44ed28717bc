// GGUF tokenizer metadata <-> Hugging Face tokenizer.json.
//
// llama.cpp embeds the vocabulary in the GGUF metadata (tokenizer.ggml.*). Two vocab kinds
// cover the models we serve:
//
//  - "llama" (SentencePiece): tokens with scores and types. llama.cpp tokenizes it by SPM
//    "BPE by score": start from UTF-8 characters, repeatedly merge the adjacent pair whose
//    concatenation is a vocabulary token with the highest score (ties: leftmost), and spell
//    characters missing from the vocabulary as <0xNN> byte tokens. A Hugging Face BPE model
//    reproduces this when its merge list holds, for every token, each split into two
//    vocabulary tokens, ranked by the merged token's score: at any moment the lowest-rank
//    applicable merge is the highest-score applicable concatenation. This is what transformers
//    does for SentencePiece and GGUF tokenizers too. The two can differ only when distinct tokens
//    share a score (llama.cpp then takes the leftmost pair, BPE the lower rank), which trained
//    vocabularies avoid. We choose BPE over Unigram because Unigram's Viterbi search picks the
//    most probable segmentation, which is not what llama.cpp computes for these vocabularies.
//    Spaces become U+2581 (normalizer), and the decoder undoes it, fuses bytes and strips the
//    space the normalizer prepended, as Hugging Face's legacy Llama tokenizer.json does.
//
//  - "gpt2" (byte-level BPE): tokens in GPT-2's byte-to-unicode alphabet plus merges. The only
//    model-specific part is the pre-tokenizer regex, named by tokenizer.ggml.pre; the table below
//    carries llama.cpp's regexes (as JavaScript-compatible spellings: (?i:'s|...) is written
//    '[sS]|...), each list applied in turn with matches and the text between them kept, as
//    llama.cpp's unicode_regex_split does.

import { FormatError } from './errors.ts';
import { meta, type GgufMetadata, type GgufMetaEntry, type GgufValue } from './gguf-types.ts';
import { templateProcessing, Tokenizer } from './tokenizer.ts';

type Json = Record<string, unknown>;

/** llama.cpp's token types (tokenizer.ggml.token_type). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// ---- pre-tokenizer regexes (llama.cpp llm_tokenizer_bpe) ----

const GPT2_RE = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const CONTRACTIONS = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const LLAMA3_RE = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const QWEN2_RE = `${CONTRACTIONS}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const UPPER = '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]';
const LOWER = '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]';
const TEKKEN_RE = `[^\\r\\n\\p{L}\\p{N}]?${UPPER}*${LOWER}+|[^\\r\\n\\p{L}\\p{N}]?${UPPER}+${LOWER}*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;
const GPT4O_RE = `[^\\r\\n\\p{L}\\p{N}]?${UPPER}*${LOWER}+${CONTRACTIONS}?|[^\\r\\n\\p{L}\\p{N}]?${UPPER}+${LOWER}*${CONTRACTIONS}?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+`;

interface PreSpec {
  regexes: string[];
  /** llama.cpp takes a whole pre-token from the vocabulary before merging (Llama 3, Tekken). */
  ignoreMerges?: boolean;
  /** llama.cpp's add_bos default for this pre-tokenizer (the GGUF key overrides it). */
  addBos?: boolean;
}

const PRE: Record<string, PreSpec> = {};
const define = (names: string[], spec: PreSpec): void => {
  for (const n of names) PRE[n] = spec;
};
// "default" is what llama.cpp uses when tokenizer.ggml.pre is absent or "default".
define(['default'], { regexes: ['[\\p{P}\\$\\+<=>\\^~\\|]+', GPT2_RE, '\\p{N}+', '[0-9][0-9][0-9]'] });
define(['gpt2', 'gpt-2', 'mpt', 'olmo', 'jais', 'phi-2', 'jina-es', 'jina-de', 'jina-v2-es', 'jina-v2-de', 'exaone4', 'trillion'], { regexes: [GPT2_RE] });
define(['llama3', 'llama-v3', 'llama-bpe', 'falcon3', 'falcon-h1', 'pixtral'], { regexes: [LLAMA3_RE], ignoreMerges: true, addBos: true });
define(['dbrx', 'smaug-bpe'], { regexes: [LLAMA3_RE] });
define(['qwen2', 'deepseek-r1-qwen', 'megrez', 'stablelm2', 'hunyuan'], { regexes: [QWEN2_RE] });
define(['starcoder', 'refact', 'command-r', 'smollm', 'codeshell', 'exaone', 'minerva-7b'], { regexes: ['\\p{N}', GPT2_RE] });
define(['falcon'], { regexes: ['[\\p{P}\\$\\+<=>\\^~\\|`]+', GPT2_RE, '[0-9][0-9][0-9]'] });
define(['tekken'], { regexes: [TEKKEN_RE], ignoreMerges: true, addBos: true });
define(['gpt-4o', 'llama4'], { regexes: [GPT4O_RE] });

const warnedPre = new Set<string>();

// Tokens llama.cpp treats as end-of-generation by their text (besides the eos/eot/eom keys).
const EOG_TEXTS = ['<|eot_id|>', '<|eom_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>', '<｜end▁of▁sentence｜>', '<end_of_utterance>'];

// ---- reading GGUF metadata ----

class MetaReader {
  constructor(
    private readonly md: GgufMetadata,
    private readonly file: string,
  ) {}

  has(key: string): boolean {
    return this.md.has(key);
  }

  string(key: string): string | undefined {
    const e = this.md.get(key);
    if (e === undefined) return undefined;
    if (e.type !== 'string' || typeof e.value !== 'string') throw new FormatError(this.file, `${key} must be a string, got ${e.type}`);
    return e.value;
  }

  bool(key: string): boolean | undefined {
    const e = this.md.get(key);
    if (e === undefined) return undefined;
    if (typeof e.value === 'boolean') return e.value;
    if (typeof e.value === 'number' && e.type !== 'array') return e.value !== 0;
    throw new FormatError(this.file, `${key} must be a bool, got ${e.type}`);
  }

  /** A token id: an integer in [0, n). Out-of-range ids are ignored, as llama.cpp does (with a warning). */
  id(key: string, n: number): number | null {
    const e = this.md.get(key);
    if (e === undefined) return null;
    const v = typeof e.value === 'bigint' ? Number(e.value) : e.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || e.type === 'array') throw new FormatError(this.file, `${key} must be an integer token id, got ${e.type}`);
    return v >= 0 && v < n ? v : null;
  }

  array(key: string, itemTypes: string[]): GgufValue[] | undefined {
    const e = this.md.get(key);
    if (e === undefined) return undefined;
    if (e.type !== 'array' || !Array.isArray(e.value) || !itemTypes.includes(e.itemType ?? '')) {
      throw new FormatError(this.file, `${key} must be an array of ${itemTypes.join(' or ')}, got ${e.type === 'array' ? `an array of ${e.itemType}` : e.type}`);
    }
    return e.value;
  }
}

/**
 * Build the tokenizer a GGUF file embeds. Supports tokenizer.ggml.model "llama" (SentencePiece)
 * and "gpt2" (byte-level BPE); see the header of this file for how each maps to tokenizer.json.
 */
export function tokenizerFromGguf(md: GgufMetadata, file: string): Tokenizer {
  const r = new MetaReader(md, file);
  const tokensRaw = r.array('tokenizer.ggml.tokens', ['string']);
  if (tokensRaw === undefined) throw new FormatError(file, 'has no tokenizer.ggml.tokens: no embedded tokenizer');
  const model = r.string('tokenizer.ggml.model');
  if (model === undefined) throw new FormatError(file, 'has no tokenizer.ggml.model: cannot tell how to tokenize');
  if (model !== 'llama' && model !== 'gpt2') {
    throw new FormatError(file, `tokenizer.ggml.model "${model}" is not supported (supported: "llama" SentencePiece, "gpt2" byte-level BPE)`);
  }
  const n = tokensRaw.length;
  if (n === 0) throw new FormatError(file, 'tokenizer.ggml.tokens is empty');

  const tokens: string[] = new Array(n);
  const vocab: Record<string, number> = Object.create(null);
  for (let i = 0; i < n; i++) {
    let t = tokensRaw[i] as string;
    if (t === '') t = `[EMPTY_${i}]`; // as llama.cpp: an empty token cannot be looked up
    if (vocab[t] !== undefined) throw new FormatError(file, `duplicate token in tokenizer.ggml.tokens: ${JSON.stringify(t)} has ids ${vocab[t]} and ${i}`);
    vocab[t] = i;
    tokens[i] = t;
  }

  const typesRaw = r.array('tokenizer.ggml.token_type', ['i32', 'u32', 'i8', 'u8', 'i16', 'u16']);
  if (typesRaw !== undefined && typesRaw.length < n) throw new FormatError(file, `tokenizer.ggml.token_type has ${typesRaw.length} entries for ${n} tokens`);
  const types: number[] = tokens.map((_, i) => (typesRaw ? Number(typesRaw[i]) : TokenType.NORMAL));

  const bosId = r.id('tokenizer.ggml.bos_token_id', n);
  const eosId = r.id('tokenizer.ggml.eos_token_id', n);
  const padId = r.id('tokenizer.ggml.padding_token_id', n);
  let unkId = r.id('tokenizer.ggml.unknown_token_id', n);
  if (unkId === null) {
    const u = types.indexOf(TokenType.UNKNOWN);
    if (u >= 0) unkId = u;
  }

  // Added tokens: control (and unknown) tokens are special; user-defined tokens are matched in
  // raw text but are not special. Both are matched before normalization, as llama.cpp does.
  const added: Json[] = [];
  for (let i = 0; i < n; i++) {
    const ty = types[i];
    if (ty === TokenType.CONTROL || ty === TokenType.UNKNOWN || ty === TokenType.USER_DEFINED) {
      const special = ty !== TokenType.USER_DEFINED;
      added.push({ id: i, content: tokens[i], single_word: false, lstrip: false, rstrip: false, normalized: false, special });
    }
  }

  let addBosDefault: boolean;
  let json: Json;
  if (model === 'llama') {
    const scoresRaw = r.array('tokenizer.ggml.scores', ['f32', 'f64', 'i32']);
    if (scoresRaw === undefined) throw new FormatError(file, 'has no tokenizer.ggml.scores: a "llama" (SentencePiece) vocabulary needs token scores');
    if (scoresRaw.length < n) throw new FormatError(file, `tokenizer.ggml.scores has ${scoresRaw.length} entries for ${n} tokens`);
    const scores = scoresRaw.slice(0, n).map(Number);
    const addSpacePrefix = r.bool('tokenizer.ggml.add_space_prefix') ?? true;
    addBosDefault = true;
    json = spmTokenizerJson(tokens, scores, types, vocab, added, unkId, addSpacePrefix);
  } else {
    const mergesRaw = r.array('tokenizer.ggml.merges', ['string']);
    if (mergesRaw === undefined) throw new FormatError(file, 'has no tokenizer.ggml.merges: a "gpt2" (byte-level BPE) vocabulary needs merges');
    const merges = parseMerges(mergesRaw, file, 'tokenizer.ggml.merges');
    const pre = r.string('tokenizer.ggml.pre') ?? 'default';
    let preSpec = PRE[pre];
    if (preSpec === undefined) {
      if (!warnedPre.has(pre)) {
        warnedPre.add(pre);
        console.warn(`${file}: unknown tokenizer.ggml.pre "${pre}", pre-tokenizing with the GPT-2 regex; tokens may differ from llama.cpp's`);
      }
      preSpec = PRE['gpt2']!;
    }
    addBosDefault = preSpec.addBos ?? false;
    json = byteLevelTokenizerJson(vocab, merges, added, preSpec);
  }

  let addBos = r.bool('tokenizer.ggml.add_bos_token') ?? addBosDefault;
  let addEos = r.bool('tokenizer.ggml.add_eos_token') ?? false;
  if (bosId === null) addBos = false;
  if (eosId === null) addEos = false;

  // Written into tokenizer.json, not only as the config's add_bos_token: transformers 5.17 loaded
  // such a PreTrainedTokenizerFast (no post-processor, add_bos_token true) without adding BOS
  // (test/hf-reference.test.ts).
  json.post_processor = addBos || addEos ? templateProcessing(addBos ? tokens[bosId!]! : null, bosId, addEos ? tokens[eosId!]! : null, eosId) : null;

  const eos: number[] = [];
  for (const id of [eosId, r.id('tokenizer.ggml.eot_token_id', n), r.id('tokenizer.ggml.eom_token_id', n)]) {
    if (id !== null && !eos.includes(id)) eos.push(id);
  }
  for (const t of EOG_TEXTS) {
    const id = vocab[t];
    if (id !== undefined && !eos.includes(id)) eos.push(id);
  }

  const config: Json = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    clean_up_tokenization_spaces: false,
    add_bos_token: addBos,
    add_eos_token: addEos,
  };
  if (bosId !== null) config.bos_token = tokens[bosId];
  if (eosId !== null) config.eos_token = tokens[eosId];
  if (unkId !== null) config.unk_token = tokens[unkId];
  if (padId !== null) config.pad_token = tokens[padId];
  const chat = r.string('tokenizer.chat_template');
  if (chat !== undefined) config.chat_template = chat;
  return Tokenizer.fromJson(json, config, file, { eos_token_id: eos });
}

function spmTokenizerJson(
  tokens: string[],
  scores: number[],
  types: number[],
  vocab: Record<string, number>,
  added: Json[],
  unkId: number | null,
  addSpacePrefix: boolean,
): Json {
  // Every split of a mergeable token into two vocabulary tokens, ranked by the token's score
  // (ties: lower token id, then higher-scoring left and right pieces, as transformers orders them).
  // (Start-up cost: 174 ms for a 32,000-token vocabulary with Array.from and join per split point
  // and objects per merge; 48 ms slicing at code-point boundaries, looking up in a Map and sorting
  // indices into three parallel arrays.)
  const ids = new Map<string, number>();
  for (const k in vocab) ids.set(k, vocab[k]!);
  const ml: number[] = [], mr: number[] = [], mid: number[] = [];
  for (let id = 0; id < tokens.length; id++) {
    const ty = types[id];
    if (ty !== TokenType.NORMAL && ty !== TokenType.USER_DEFINED) continue;
    const tok = tokens[id]!;
    // split points between code points (a surrogate pair is one character)
    for (let k = tok.codePointAt(0)! > 0xffff ? 2 : 1; k < tok.length; k += tok.codePointAt(k)! > 0xffff ? 2 : 1) {
      const l = ids.get(tok.slice(0, k));
      if (l === undefined) continue;
      const r = ids.get(tok.slice(k));
      if (r !== undefined) ml.push(l), mr.push(r), mid.push(id);
    }
  }
  const order = Array.from(mid.keys());
  order.sort((a, b) => scores[mid[b]!]! - scores[mid[a]!]! || mid[a]! - mid[b]! || scores[ml[b]!]! - scores[ml[a]!]! || scores[mr[b]!]! - scores[mr[a]!]!);
  const merges = order.map((i) => ({ l: ml[i]!, r: mr[i]!, id: mid[i]! }));

  const replaceSpace = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
  const decoders: Json[] = [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }];
  if (addSpacePrefix) decoders.push({ type: 'Strip', content: ' ', start: 1, stop: 0 });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: addSpacePrefix ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, replaceSpace] } : replaceSpace,
    pre_tokenizer: null,
    post_processor: null, // set by tokenizerFromGguf from add_bos_token/add_eos_token
    decoder: { type: 'Sequence', decoders },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unkId !== null ? tokens[unkId] : null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => [tokens[m.l], tokens[m.r]]),
    },
  };
}

function byteLevelTokenizerJson(vocab: Record<string, number>, merges: [string, string][], added: Json[], pre: PreSpec): Json {
  const splits = pre.regexes.map((re) => ({ type: 'Split', pattern: { Regex: re }, behavior: 'Isolated', invert: false }));
  return byteLevelBpeJson({
    vocab,
    merges,
    added,
    preTokenizer: { type: 'Sequence', pretokenizers: [...splits, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    postProcessor: null, // set by tokenizerFromGguf from add_bos_token/add_eos_token
    ignoreMerges: pre.ignoreMerges ?? false,
  });
}

/** A byte-level BPE tokenizer.json (GPT-2 style model and decoder) from its parts. */
export function byteLevelBpeJson(o: {
  vocab: Record<string, number>;
  /** [left, right] pairs or "left right" strings */
  merges: readonly unknown[];
  added: readonly unknown[];
  preTokenizer: unknown;
  postProcessor: unknown;
  ignoreMerges: boolean;
}): Json {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: o.added,
    normalizer: null,
    pre_tokenizer: o.preTokenizer,
    post_processor: o.postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: o.ignoreMerges,
      vocab: o.vocab,
      merges: o.merges,
    },
  };
}

// ---- writing GGUF metadata from a tokenizer.json ----

export interface GgufTokenizerOptions {
  /** Pad the vocabulary to this many tokens ("[PAD<i>]", type unused), e.g. the embedding rows. */
  vocabSize?: number;
}

/** "left right" merge strings (split at the first space after the first character, as llama.cpp does). */
function parseMerges(m: unknown, file: string, what = 'merges'): [string, string][] {
  if (!Array.isArray(m)) throw new FormatError(file, 'BPE model has no "merges" list');
  return m.map((x, i) => {
    if (typeof x === 'string') {
      const sp = x.indexOf(' ', 1);
      if (sp < 0) throw new FormatError(file, `${what}[${i}] ${JSON.stringify(x)} is not "left right"`);
      return [x.slice(0, sp), x.slice(sp + 1)];
    }
    if (Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && typeof x[1] === 'string') return [x[0], x[1]];
    throw new FormatError(file, `${what}[${i}] is neither "left right" nor ["left", "right"]`);
  });
}

function collectTypes(node: unknown, out: Json[]): void {
  if (typeof node !== 'object' || node === null) return;
  const o = node as Json;
  if (typeof o.type === 'string') out.push(o);
  for (const k of ['normalizers', 'pretokenizers', 'decoders', 'processors']) {
    if (Array.isArray(o[k])) for (const c of o[k] as unknown[]) collectTypes(c, out);
  }
}

/** Normalise a pre-tokenizer regex so llama.cpp's and Hugging Face's spellings compare equal. */
function canonRegex(re: string): string {
  return re.replace(/\(\?i:'s\|'t\|'re\|'ve\|'m\|'ll\|'d\)/g, CONTRACTIONS).replace(/\|\\s\+$/, '');
}

/** Guess llama.cpp's tokenizer.ggml.pre from a byte-level tokenizer.json's pre-tokenizer. */
function guessPre(json: Json): { pre: string; exact: boolean } {
  const nodes: Json[] = [];
  collectTypes(json.pre_tokenizer, nodes);
  const splits = nodes.filter((n) => n.type === 'Split').map((n) => (n.pattern as Json | undefined)?.Regex).filter((x): x is string => typeof x === 'string');
  const byteLevel = nodes.find((n) => n.type === 'ByteLevel');
  const digits = nodes.find((n) => n.type === 'Digits');
  if (splits.length === 1) {
    const c = canonRegex(splits[0]!);
    for (const [name, re] of [['llama-bpe', LLAMA3_RE], ['qwen2', QWEN2_RE], ['tekken', TEKKEN_RE], ['gpt-4o', GPT4O_RE], ['gpt-2', GPT2_RE]] as const) {
      if (c !== canonRegex(re)) continue;
      // llama.cpp's "llama-bpe" also takes whole words from the vocabulary (ignore_merges);
      // "smaug-bpe" is the same regex without that.
      if (name === 'llama-bpe' && (json.model as Json).ignore_merges !== true) return { pre: 'smaug-bpe', exact: true };
      return { pre: name, exact: true };
    }
  }
  if (splits.length === 0 && byteLevel && byteLevel.use_regex !== false) {
    if (digits && digits.individual_digits === true) return { pre: 'starcoder', exact: true };
    if (!digits) return { pre: 'gpt-2', exact: true };
  }
  return { pre: 'default', exact: false };
}

/**
 * The tokenizer.* metadata llama.cpp expects, from a Hugging Face tokenizer: "llama" for
 * SentencePiece-style BPE with byte fallback (scores from merge ranks: the token made by merge
 * rank k scores -k, so llama.cpp's merge-by-score follows the same order), "gpt2" for byte-level
 * BPE (merges as "left right", tokenizer.ggml.pre guessed from the pre-tokenizer regex).
 */
export function ggufTokenizerMetadata(tok: Tokenizer, opts: GgufTokenizerOptions = {}): GgufMetadata {
  const json = tok.json as Json;
  const model = json.model as Json;
  const file = tok.file;
  const type = model.type ?? (Array.isArray(model.merges) ? 'BPE' : undefined);
  if (type !== 'BPE') {
    throw new FormatError(file, `cannot write a ${String(type ?? 'untyped')} tokenizer to GGUF: only BPE tokenizers (SentencePiece-style with byte_fallback, or byte-level) are supported`);
  }
  const nodes: Json[] = [];
  collectTypes(json.normalizer, nodes);
  collectTypes(json.pre_tokenizer, nodes);
  collectTypes(json.decoder, nodes);
  const spm = model.byte_fallback === true || nodes.some((n) => n.type === 'Metaspace' || n.type === 'ByteFallback');
  const byteLevel = nodes.some((n) => n.type === 'ByteLevel');
  if (!spm && !byteLevel) {
    throw new FormatError(file, 'cannot write this BPE tokenizer to GGUF: it is neither SentencePiece-style (byte_fallback / U+2581 spaces) nor byte-level');
  }

  const n = Math.max(tok.vocabSize, opts.vocabSize ?? 0);
  const tokens: string[] = new Array(n);
  const types: number[] = new Array(n);
  const added = tok.addedTokens();
  const unkId = tok.unkId;
  for (let i = 0; i < n; i++) {
    const t = tok.idToToken(i);
    if (t === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TokenType.UNUSED;
      continue;
    }
    tokens[i] = t;
    if (i === unkId) types[i] = TokenType.UNKNOWN;
    else if (spm && /^<0x[0-9A-Fa-f]{2}>$/.test(t)) types[i] = TokenType.BYTE;
    else if (tok.isSpecial(i)) types[i] = TokenType.CONTROL;
    else if (added.has(i)) types[i] = TokenType.USER_DEFINED;
    else types[i] = TokenType.NORMAL;
  }

  const merges = parseMerges(model.merges, file);
  const md: GgufMetadata = new Map<string, GgufMetaEntry>();
  md.set('tokenizer.ggml.model', meta.str(spm ? 'llama' : 'gpt2'));
  if (!spm) {
    const g = guessPre(json);
    if (!g.exact) console.warn(`${file}: unrecognised byte-level pre-tokenizer, writing tokenizer.ggml.pre = "default"; llama.cpp may split text differently`);
    md.set('tokenizer.ggml.pre', meta.str(g.pre));
  }
  md.set('tokenizer.ggml.tokens', meta.arr('string', tokens));
  if (spm) {
    const rank = new Map<string, number>();
    merges.forEach(([a, b], k) => {
      const t = a + b;
      if (!rank.has(t)) rank.set(t, k);
    });
    const scores = tokens.map((t, i) => {
      if (types[i] !== TokenType.NORMAL && types[i] !== TokenType.USER_DEFINED) return 0;
      const k = rank.get(t);
      // Tokens no merge makes (single characters) rank after every merge.
      return k !== undefined ? -k : -(merges.length + i);
    });
    md.set('tokenizer.ggml.scores', meta.arr('f32', scores));
  }
  md.set('tokenizer.ggml.token_type', meta.arr('i32', types));
  if (!spm) {
    // gguf-py writes a space inside a merge piece as U+0120 (byte-level vocabularies have none).
    const enc = (s: string): string => s.replace(/ /g, '\u0120');
    md.set('tokenizer.ggml.merges', meta.arr('string', merges.map(([a, b]) => `${enc(a)} ${enc(b)}`)));
  }
  if (spm) md.set('tokenizer.ggml.add_space_prefix', meta.bool(addsSpacePrefix(json)));

  if (tok.bosId !== null) md.set('tokenizer.ggml.bos_token_id', meta.u32(tok.bosId));
  if (tok.eosIds.length > 0) md.set('tokenizer.ggml.eos_token_id', meta.u32(tok.eosIds[0]!));
  if (unkId !== null) md.set('tokenizer.ggml.unknown_token_id', meta.u32(unkId));
  if (tok.padId !== null) md.set('tokenizer.ggml.padding_token_id', meta.u32(tok.padId));

  // Whether encode() adds BOS/EOS, read off its behaviour (whatever decided it).
  const withSpecial = tok.encode('a');
  const without = tok.encode('a', { addSpecialTokens: false });
  const addBos = tok.bosId !== null && withSpecial.length > without.length && withSpecial[0] === tok.bosId && without[0] !== tok.bosId;
  const eos0 = tok.eosIds[0];
  const addEos = eos0 !== undefined && withSpecial.length > without.length && withSpecial[withSpecial.length - 1] === eos0 && without[without.length - 1] !== eos0;
  md.set('tokenizer.ggml.add_bos_token', meta.bool(addBos));
  md.set('tokenizer.ggml.add_eos_token', meta.bool(addEos));
  if (tok.chatTemplate !== null) md.set('tokenizer.chat_template', meta.str(tok.chatTemplate));
  return md;
}

/** SentencePiece-style tokenizers prepend U+2581 either by a Prepend normalizer or a Metaspace pre-tokenizer. */
function addsSpacePrefix(json: Json): boolean {
  const nodes: Json[] = [];
  collectTypes(json.normalizer, nodes);
  collectTypes(json.pre_tokenizer, nodes);
  for (const n of nodes) {
    if (n.type === 'Prepend' && n.prepend === '▁') return true;
    if (n.type === 'Metaspace') {
      const scheme = n.prepend_scheme ?? (n.add_prefix_space === false ? 'never' : 'always');
      return scheme !== 'never';
    }
  }
  return false;
}

// Tokenizer: a Hugging Face tokenizer.json (+ tokenizer_config.json) behind a small API.
//
// Tokenization itself is @huggingface/tokenizers (a pure-JS port of the Rust `tokenizers`
// crate). What this file adds is the part transformers does around it:
//   - which special tokens exist (bos/eos/pad, from tokenizer_config.json, special_tokens_map.json
//     and generation_config.json, whose eos_token_id may be a list: Llama 3 stops on several);
//   - whether encode() adds BOS/EOS. tokenizer.json's post_processor decides by default, but
//     transformers rebuilds it from tokenizer_config's add_bos_token/add_eos_token when either is
//     set explicitly, and the Llama-family classes default to add_bos_token=true (see
//     `specialTokenPolicy`);
//   - decode() that returns '' for no ids, skips ids the vocabulary lacks (as the Rust crate does)
//     and does not apply clean_up_tokenization_spaces unless the config asks for it.

import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { FormatError } from './errors.ts';

type Json = Record<string, unknown>;

export interface EncodeOptions {
  /** Add BOS/EOS as the model's files say (default true, as in transformers). */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (bos/eos/pad/control tokens) from the text (default false). */
  skipSpecialTokens?: boolean;
  /** transformers' clean_up_tokenization_spaces (" ." -> "."); default: the config's value, else false. */
  cleanUpSpaces?: boolean;
}

// Tokenizer classes whose transformers implementation rebuilds the post-processor from
// add_bos_token (default true) / add_eos_token (default false) whatever tokenizer.json says.
const BOS_BY_DEFAULT_CLASSES = /^(Llama|CodeLlama|Gemma|Cohere)Tokenizer(Fast)?$/;

// Config keys naming special tokens (transformers' SPECIAL_TOKENS_ATTRIBUTES).
const SPECIAL_TOKEN_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A special token in a config is a string or an AddedToken dict {content, ...}. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

function readJson(file: string, required: boolean): Json | null {
  if (!existsSync(file)) {
    if (required) throw new FormatError(file, 'file not found');
    return null;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FormatError(file, `cannot read: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `invalid JSON: ${(e as Error).message}`);
  }
  if (!isObject(parsed)) throw new FormatError(file, 'expected a JSON object at the top level');
  return parsed;
}

/** chat_template is a string, or a list of {name, template} of which "default" is the chat one. */
function pickChatTemplate(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    for (const t of v) {
      if (isObject(t) && t.name === 'default' && typeof t.template === 'string') return t.template;
    }
  }
  return null;
}

/** tokenizer.json's post-processor that adds `bos` before and `eos` after the text (either may be null). */
export function templateProcessing(bos: string | null, bosId: number | null, eos: string | null, eosId: number | null): Json {
  const addBos = bos !== null && bosId !== null;
  const addEos = eos !== null && eosId !== null;
  const seq = (id: 'A' | 'B', typeId: number): Json => ({ Sequence: { id, type_id: typeId } });
  const special = (tok: string, typeId: number): Json => ({ SpecialToken: { id: tok, type_id: typeId } });
  const single: Json[] = [];
  const pair: Json[] = [];
  if (addBos) single.push(special(bos, 0));
  single.push(seq('A', 0));
  if (addEos) single.push(special(eos, 0));
  pair.push(...single);
  if (addBos) pair.push(special(bos, 1));
  pair.push(seq('B', 1));
  if (addEos) pair.push(special(eos, 1));
  const specialTokens: Json = {};
  if (addBos) specialTokens[bos] = { id: bos, ids: [bosId], tokens: [bos] };
  if (addEos) specialTokens[eos] = { id: eos, ids: [eosId], tokens: [eos] };
  return { type: 'TemplateProcessing', single, pair, special_tokens: specialTokens };
}

export class Tokenizer {
  /** The tokenizer.json object as given (for export). */
  readonly json: object;
  /** The tokenizer_config.json object as given (for export); {} when there was none. */
  readonly config: object;
  /** Where the tokenizer came from, for error messages. */
  readonly file: string;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: number[];
  readonly padId: number | null;
  readonly unkId: number | null;
  readonly chatTemplate: string | null;
  /** The bos/eos token strings, as chat templates want them ('' when the model has none). */
  readonly bosToken: string;
  readonly eosToken: string;

  private readonly hf: HfTokenizer;
  private readonly special: Set<number>;
  private readonly added: Map<number, { content: string; special: boolean }>;
  private readonly cleanUp: boolean;

  /**
   * Load tokenizer.json and tokenizer_config.json from a model folder. special_tokens_map.json
   * fills special tokens the config lacks, generation_config.json adds eos ids (Llama 3 lists
   * several), chat_template.jinja / chat_template.json supply the chat template when the config
   * has none (newer transformers saves it there).
   */
  static fromDir(dir: string): Tokenizer {
    const tokFile = join(dir, 'tokenizer.json');
    if (!existsSync(tokFile)) {
      throw new FormatError(dir, 'tokenizer is missing: no tokenizer.json in this folder (only tokenizer.json tokenizers are supported)');
    }
    const json = readJson(tokFile, true)!;
    const config = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
    const merged: Json = { ...config };
    const stm = readJson(join(dir, 'special_tokens_map.json'), false);
    if (stm) {
      for (const k of [...SPECIAL_TOKEN_KEYS, 'additional_special_tokens']) {
        if (merged[k] === undefined && stm[k] !== undefined) merged[k] = stm[k];
      }
    }
    if (pickChatTemplate(merged.chat_template) === null) {
      const jinja = join(dir, 'chat_template.jinja');
      if (existsSync(jinja)) {
        merged.chat_template = readFileSync(jinja, 'utf8');
      } else {
        const ct = readJson(join(dir, 'chat_template.json'), false);
        if (ct && ct.chat_template !== undefined) merged.chat_template = ct.chat_template;
      }
    }
    const gen = readJson(join(dir, 'generation_config.json'), false) ?? undefined;
    return new Tokenizer(json, config, merged, tokFile, gen);
  }

  /**
   * Build from already-parsed files. `generationConfig` is generation_config.json (its
   * eos_token_id / bos_token_id / pad_token_id complete the config's special tokens).
   */
  static fromJson(tokenizerJson: object, config?: object, file = 'tokenizer.json', generationConfig?: object): Tokenizer {
    if (!isObject(tokenizerJson)) throw new FormatError(file, 'expected a JSON object');
    if (config !== undefined && !isObject(config)) throw new FormatError(file, 'tokenizer config must be a JSON object');
    const cfg = (config ?? {}) as Json;
    return new Tokenizer(tokenizerJson, cfg, { ...cfg }, file, generationConfig as Json | undefined);
  }

  private constructor(json: Json, rawConfig: Json, config: Json, file: string, gen: Json | undefined) {
    this.json = json;
    this.config = rawConfig;
    this.file = file;
    if (!isObject(json.model)) throw new FormatError(file, 'tokenizer.json has no "model" object');
    // The library guesses a model from whatever it is given; check the shape ourselves.
    const m = json.model;
    const mtype = m.type ?? (Array.isArray(m.vocab) ? 'Unigram' : Array.isArray(m.merges) ? 'BPE' : 'WordPiece');
    if (mtype === 'BPE' || mtype === 'WordPiece') {
      if (!isObject(m.vocab)) throw new FormatError(file, `${mtype} model needs a "vocab" object`);
      if (mtype === 'BPE' && !Array.isArray(m.merges)) throw new FormatError(file, 'BPE model needs a "merges" list');
    } else if (mtype === 'Unigram') {
      if (!Array.isArray(m.vocab)) throw new FormatError(file, 'Unigram model needs a "vocab" list');
    } else {
      throw new FormatError(file, `unsupported tokenizer model type ${JSON.stringify(mtype)} (supported: BPE, WordPiece, Unigram)`);
    }
    if (json.added_tokens !== undefined && !Array.isArray(json.added_tokens)) {
      throw new FormatError(file, '"added_tokens" must be a list');
    }

    // The library insists on these keys being present (null when unused).
    const lib: Json = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...json,
      added_tokens: json.added_tokens ?? [],
    };

    // Added tokens by id, and the ids of every special token.
    this.added = new Map();
    for (const t of lib.added_tokens as unknown[]) {
      if (!isObject(t) || typeof t.content !== 'string' || !Number.isInteger(t.id) || (t.id as number) < 0) {
        throw new FormatError(file, `bad entry in "added_tokens": ${JSON.stringify(t)}`);
      }
      this.added.set(t.id as number, { content: t.content, special: t.special === true });
    }

    // First pass: token -> id without the library, to place BOS/EOS in the post-processor.
    const vocabId = (tok: string): number | undefined => {
      for (const [id, a] of this.added) if (a.content === tok) return id;
      const v = (lib.model as Json).vocab;
      if (isObject(v)) {
        const id = Object.hasOwn(v, tok) ? v[tok] : undefined;
        return typeof id === 'number' ? id : undefined;
      }
      if (Array.isArray(v)) {
        // Unigram: [[piece, score], ...]
        const i = v.findIndex((e) => Array.isArray(e) && e[0] === tok);
        return i >= 0 ? i : undefined;
      }
      return undefined;
    };

    const bosTok = tokenContent(config.bos_token);
    const eosTok = tokenContent(config.eos_token);
    const policy = specialTokenPolicy(config);
    if (policy) {
      const bosId = policy.addBos && bosTok !== null ? vocabId(bosTok) ?? null : null;
      const eosId = policy.addEos && eosTok !== null ? vocabId(eosTok) ?? null : null;
      lib.post_processor = templateProcessing(bosId !== null ? bosTok : null, bosId, eosId !== null ? eosTok : null, eosId);
    }

    try {
      this.hf = new HfTokenizer(lib, config);
    } catch (e) {
      throw new FormatError(file, `unsupported or malformed tokenizer: ${(e as Error).message}`);
    }

    let maxId = -1;
    for (const [, id] of this.hf.get_vocab(true)) if (id > maxId) maxId = id;
    for (const id of this.added.keys()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    const idOf = (v: unknown): number | null => {
      const c = tokenContent(v);
      if (c === null) return null;
      return this.hf.token_to_id(c) ?? null;
    };
    const genId = (v: unknown): number | null => (Number.isInteger(v) && (v as number) >= 0 && (v as number) < this.vocabSize ? (v as number) : null);

    this.bosId = idOf(config.bos_token) ?? genId(gen?.bos_token_id);
    this.padId = idOf(config.pad_token) ?? genId(gen?.pad_token_id);
    this.unkId = idOf(config.unk_token) ?? (typeof (lib.model as Json).unk_token === 'string' ? this.hf.token_to_id((lib.model as Json).unk_token as string) ?? null : null);
    const eos: number[] = [];
    const pushEos = (id: number | null): void => {
      if (id !== null && !eos.includes(id)) eos.push(id);
    };
    pushEos(idOf(config.eos_token));
    const ge = gen?.eos_token_id;
    if (Array.isArray(ge)) for (const e of ge) pushEos(genId(e));
    else pushEos(genId(ge));
    this.eosIds = eos;
    this.bosToken = this.bosId !== null ? this.hf.id_to_token(this.bosId) ?? '' : '';
    this.eosToken = eos.length > 0 ? this.hf.id_to_token(eos[0]!) ?? '' : '';

    // Special = added tokens flagged special + every token the config names as special.
    this.special = new Set();
    for (const [id, a] of this.added) if (a.special) this.special.add(id);
    for (const k of SPECIAL_TOKEN_KEYS) {
      const id = idOf(config[k]);
      if (id !== null) this.special.add(id);
    }
    if (Array.isArray(config.additional_special_tokens)) {
      for (const t of config.additional_special_tokens) {
        const id = idOf(t);
        if (id !== null) this.special.add(id);
      }
    }
    for (const id of eos) this.special.add(id);

    this.chatTemplate = pickChatTemplate(config.chat_template);
    this.cleanUp = config.clean_up_tokenization_spaces === true;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new Error(`Tokenizer.encode: expected a string, got ${typeof text}`);
    const ids: (number | undefined)[] = this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
    // A piece missing from the vocabulary with no unk token to stand for it comes back undefined.
    if (ids.some((id) => id === undefined)) throw new FormatError(this.file, `cannot encode ${JSON.stringify(text.slice(0, 40))}: a piece is not in the vocabulary and there is no unk token`);
    return ids as number[];
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const keep: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new Error(`Tokenizer.decode: bad token id ${id}`);
      // Ids past the vocabulary (embedding rows are often padded) decode to nothing, as in the
      // Rust crate.
      if (this.hf.id_to_token(id) === undefined) continue;
      if (opts.skipSpecialTokens && this.special.has(id)) continue;
      keep.push(id);
    }
    if (keep.length === 0) return '';
    return this.hf.decode(keep, { skip_special_tokens: false, clean_up_tokenization_spaces: opts.cleanUpSpaces ?? this.cleanUp });
  }

  tokenToId(tok: string): number | undefined {
    return this.hf.token_to_id(tok);
  }

  idToToken(id: number): string | undefined {
    if (!Number.isInteger(id) || id < 0) return undefined;
    return this.hf.id_to_token(id);
  }

  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  /** Ids of the tokens listed in tokenizer.json's added_tokens, with their special flag. */
  addedTokens(): ReadonlyMap<number, { content: string; special: boolean }> {
    return this.added;
  }
}

/**
 * Whether to replace tokenizer.json's post-processor by "[bos] $A [eos]", as transformers does:
 * when tokenizer_config sets add_bos_token or add_eos_token (the unset one then defaults to false),
 * and always for the Llama-family classes (where add_bos_token defaults to true). Returns null to
 * keep tokenizer.json's post-processor.
 */
function specialTokenPolicy(config: Json): { addBos: boolean; addEos: boolean } | null {
  const bos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined;
  const eos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : undefined;
  const cls = typeof config.tokenizer_class === 'string' ? config.tokenizer_class : '';
  if (BOS_BY_DEFAULT_CLASSES.test(cls)) return { addBos: bos ?? true, addEos: eos ?? false };
  if (bos !== undefined || eos !== undefined) return { addBos: bos ?? false, addEos: eos ?? false };
  return null;
}

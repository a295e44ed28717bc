// Training data: read a corpus, tokenize it, pack it into fixed-length sequences, and serve
// batches in a deterministic, resumable order.
//
// Input formats (DataOptions.format applies to every file):
//   text   A UTF-8 file is one document, unless it has lines holding only `<|endoftext|>`
//          (surrounding spaces/tabs allowed): those separate documents, GPT-2 dump style. The
//          newline ending the line before a separator belongs to the separator. Blank lines do
//          not separate documents: they are paragraph breaks inside one. Whitespace-only
//          documents are skipped.
//   jsonl  One JSON object per line with a string field (`textField`, default "text"). Blank
//          lines are skipped, as are objects whose text is "".
//   chat   One JSON object per line for supervised fine-tuning: {"messages": [{role, content},
//          ...]} (roles system/user/assistant) rendered with the chat template, loss on the
//          assistant turns only; or {"prompt", "completion"}, loss on the completion and EOS.
//
// A text/jsonl document becomes [bos] + ids + [eos] (bos/eos when the tokenizer has them), loss
// on every token after the first. A chat conversation becomes exactly the tokens of the
// rendered template (the template places bos/eos itself, as transformers' apply_chat_template
// with tokenize=True does).
//
// Packing: all documents, in corpus order, form one stream that is cut into sequences of seqLen
// tokens. Sequence k holds stream tokens [k*seqLen, (k+1)*seqLen) as inputs, and its targets are
// the tokens one further on, so the token at a cut is the last target of one sequence and the
// first input of the next: every stream token after the first is predicted exactly once. A
// target is -1 when the next token starts another document, is not a loss token (SFT), or lies
// past the end of the stream. Attention is restricted to a segment (one document within one
// sequence), so positions restart at 0 at every document start and at every sequence start (a
// document continued from the previous sequence cannot see its beginning). The last sequence is
// padded (pad id, else eos, else 0) with targets -1. Sequences without a single loss target are
// dropped: they would cost compute and teach nothing.
//
// Held-out split: by SEQUENCE. A seeded choice of round(evalFraction * n) sequences (at least 1
// when evalFraction > 0 and there are at least 2, never all of them) goes to `eval`. Splitting
// sequences rather than documents guarantees an eval set even for a corpus of one long document;
// the price is that a document cut at a sequence boundary may have halves on both sides.

import { readFileSync, statSync } from 'node:fs';
import { FormatError } from '../formats/errors.ts';
import type { Tokenizer } from '../formats/tokenizer.ts';
import { applyChatTemplate, ChatTemplateError, type ChatMessage } from '../formats/chat-template.ts';

/** One packed sequence (all four arrays have seqLen entries). */
export interface Packed {
  tokens: Int32Array;
  /** Next token of the same document when it carries loss, else -1. */
  targets: Int32Array;
  /** Segment id within the sequence (0, 1, ...): equal ids = same document. */
  seg: Int32Array;
  /** Position within the segment, from 0. */
  positions: Int32Array;
}

export interface DataOptions {
  seqLen: number;
  format: 'text' | 'jsonl' | 'chat';
  /** JSONL field holding the text (default "text"). */
  textField?: string;
  /** Share of the sequences held out for evaluation, in [0, 1) (default 0.01). */
  evalFraction?: number;
  /** Seed of the held-out choice (default 0). The batch order is seeded by DataPosition.seed. */
  seed?: number;
  /** Chat template (Jinja) for format "chat"; default: the tokenizer's. */
  chatTemplate?: string;
}

/** B rows of T tokens, row-major. */
export interface Batch {
  B: number;
  T: number;
  tokens: Int32Array;
  targets: Int32Array;
  /** Segment ids, unique per (row, document): row r's ids are r*T + local id. */
  seg: Int32Array;
  positions: Int32Array;
}

/**
 * Where the batch stream stands: the next batch starts at sequence `index` of epoch `epoch`'s
 * order, a deterministic shuffle of (seed, epoch). JSON-serialisable, for checkpoints.
 */
export interface DataPosition {
  epoch: number;
  index: number;
  seed: number;
}

/** A tokenized document: ids, and optionally which of them carry loss (1 = predicting it counts). */
export interface TokenDoc {
  ids: ArrayLike<number>;
  /** Per id; default: every id but the first. Entry 0 is ignored (nothing predicts a document's first token). */
  loss?: ArrayLike<number>;
}

export interface DataStats {
  files: number;
  documents: number;
  /** Tokens in the packed stream (all documents, before the split). */
  streamTokens: number;
  trainSequences: number;
  evalSequences: number;
  /** Sequences dropped because none of their targets carries loss. */
  droppedSequences: number;
  /** Seconds spent reading and tokenizing (0 for fromDocs). */
  seconds: number;
}

/** A corpus problem, naming the file and (when there is one) the line. */
export class DataError extends FormatError {
  readonly line: number | null;
  constructor(file: string, line: number | null, problem: string) {
    super(file, line === null ? problem : `line ${line}: ${problem}`);
    this.name = 'DataError';
    this.line = line;
  }
}

const ROLES = new Set(['system', 'user', 'assistant']);
const DOC_SEPARATOR = /^[ \t]*<\|endoftext\|>[ \t]*$/;

// ---- the token stream ------------------------------------------------------------------------

/** Growable stream of tokens with a loss flag and a document id per token. */
class StreamBuilder {
  tokens = new Int32Array(1 << 16);
  loss = new Uint8Array(1 << 16);
  doc = new Int32Array(1 << 16);
  length = 0;
  documents = 0;

  push(ids: ArrayLike<number>, loss: ArrayLike<number> | null): void {
    const n = ids.length;
    if (n === 0) return;
    if (this.length + n > this.tokens.length) {
      let cap = this.tokens.length;
      while (cap < this.length + n) cap *= 2;
      const grow = <A extends Int32Array | Uint8Array>(a: A, make: (n: number) => A): A => {
        const b = make(cap);
        b.set(a.subarray(0, this.length));
        return b;
      };
      this.tokens = grow(this.tokens, (c) => new Int32Array(c));
      this.loss = grow(this.loss, (c) => new Uint8Array(c));
      this.doc = grow(this.doc, (c) => new Int32Array(c));
    }
    const d = this.documents++;
    const at = this.length;
    for (let i = 0; i < n; i++) {
      this.tokens[at + i] = ids[i]!;
      this.loss[at + i] = i === 0 ? 0 : loss === null ? 1 : loss[i] ? 1 : 0;
      this.doc[at + i] = d;
    }
    this.length += n;
  }
}

// ---- deterministic randomness ------------------------------------------------------------------

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** mulberry32: small, fast, and the same sequence on every platform. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  const r = rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Seed of an epoch's order; seeds are taken modulo 2^32. */
const epochSeed = (seed: number, epoch: number): number => mix32(mix32(seed >>> 0) ^ mix32((epoch >>> 0) + 0x9e3779b9));

// ---- packing -----------------------------------------------------------------------------------

interface PackOptions {
  seqLen: number;
  evalFraction: number;
  seed: number;
  padId: number;
}

function pack(s: StreamBuilder, o: PackOptions): { train: Packed[]; eval: Packed[]; dropped: number } {
  const L = o.seqLen;
  const n = s.length;
  // Every sequence needs at least one target, i.e. a token after its first input.
  const count = n <= 1 ? 0 : Math.ceil((n - 1) / L);
  const tokens = new Int32Array(count * L);
  const targets = new Int32Array(count * L);
  const seg = new Int32Array(count * L);
  const positions = new Int32Array(count * L);
  const kept: Packed[] = [];
  let dropped = 0;
  for (let k = 0; k < count; k++) {
    let withLoss = 0;
    let sg = 0;
    let pos = 0;
    let prevDoc = 0;
    for (let t = 0; t < L; t++) {
      const g = k * L + t; // stream index, and index into the flat arrays
      const d = g < n ? s.doc[g]! : -1; // padding is one document of its own
      if (t > 0) {
        if (d !== prevDoc) {
          sg++;
          pos = 0;
        } else pos++;
      }
      prevDoc = d;
      tokens[g] = g < n ? s.tokens[g]! : o.padId;
      const next = g + 1;
      const tgt = g < n && next < n && s.doc[next] === d && s.loss[next] === 1 ? s.tokens[next]! : -1;
      targets[g] = tgt;
      if (tgt >= 0) withLoss++;
      seg[g] = sg;
      positions[g] = pos;
    }
    if (withLoss === 0) {
      dropped++;
      continue;
    }
    const a = k * L;
    kept.push({
      tokens: tokens.subarray(a, a + L),
      targets: targets.subarray(a, a + L),
      seg: seg.subarray(a, a + L),
      positions: positions.subarray(a, a + L),
    });
  }
  const N = kept.length;
  let nEval = 0;
  if (o.evalFraction > 0 && N >= 2) nEval = Math.min(N - 1, Math.max(1, Math.round(N * o.evalFraction)));
  const isEval = new Uint8Array(N);
  const perm = permutation(N, mix32((o.seed >>> 0) ^ 0x5bd1e995));
  for (let i = 0; i < nEval; i++) isEval[perm[i]!] = 1;
  return { train: kept.filter((_, i) => !isEval[i]), eval: kept.filter((_, i) => isEval[i]), dropped };
}

// ---- reading -----------------------------------------------------------------------------------

/** The file as text; a byte sequence that is not UTF-8 is an error naming its line. */
function readUtf8(file: string): { text: string; bytes: number } {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    throw new DataError(file, null, `cannot read (${(e as Error).message})`);
  }
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(buf), bytes: buf.byteLength };
  } catch {
    // Find the offending line: decode line by line (only on this error path).
    const dec = new TextDecoder('utf-8', { fatal: true });
    let line = 1;
    let start = 0;
    for (let i = 0; i <= buf.byteLength; i++) {
      if (i === buf.byteLength || buf[i] === 0x0a) {
        try {
          dec.decode(buf.subarray(start, i));
        } catch {
          throw new DataError(file, line, 'is not valid UTF-8');
        }
        line++;
        start = i + 1;
      }
    }
    throw new DataError(file, null, 'is not valid UTF-8');
  }
}

/** Lines with 1-based numbers, blank ones left out. */
function* lines(text: string): Generator<{ line: number; text: string; offset: number }> {
  let start = 0;
  let line = 1;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const s = text.slice(start, end);
    if (s.trim() !== '') yield { line, text: s, offset: start };
    start = end + 1;
    line++;
  }
}

/** A text file's documents (see the header for the rule). */
/** The string field of a JSONL object, or an error naming file, line and field. */
function fieldText(file: string, line: number, obj: Record<string, unknown>, field: string): string {
  const v = obj[field];
  if (typeof v !== 'string') throw new DataError(file, line, `field "${field}" is ${v === undefined ? 'missing' : 'not a string'}`);
  return v;
}

/**
 * The documents of a text file (.txt: split as splitTextDocuments does) or of a JSONL file's
 * `field`, untokenized, with the loader's errors (missing file, non-UTF-8, bad line): what a
 * tokenizer is trained on.
 */
export function readTextDocuments(file: string, field = 'text'): string[] {
  const { text } = readUtf8(file);
  if (!file.endsWith('.jsonl')) return splitTextDocuments(text);
  const out: string[] = [];
  for (const l of lines(text)) {
    const v = fieldText(file, l.line, parseLine(file, l.line, l.text), field);
    if (v !== '') out.push(v);
  }
  return out;
}

export function splitTextDocuments(text: string): string[] {
  const docs: string[] = [];
  let cur: string[] = [];
  const flush = () => {
    const d = cur.join('\n');
    if (d.trim() !== '') docs.push(d);
    cur = [];
  };
  const all = text.split('\n');
  for (let i = 0; i < all.length; i++) {
    const l = all[i]!;
    if (DOC_SEPARATOR.test(l.endsWith('\r') ? l.slice(0, -1) : l)) flush();
    else cur.push(l);
  }
  flush();
  return docs;
}

function parseLine(file: string, line: number, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DataError(file, line, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new DataError(file, line, 'expected a JSON object');
  return v as Record<string, unknown>;
}

const startsWith = (a: ArrayLike<number>, prefix: ArrayLike<number>): boolean => {
  if (prefix.length > a.length) return false;
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
};

interface Encoder {
  tok: Tokenizer;
  bos: number | null;
  eos: number | null;
  template: string | null;
}

const encodeText = (e: Encoder, text: string): number[] => e.tok.encode(text, { addSpecialTokens: false });

/** [bos] + text + [eos], loss on all but the first token. */
function plainDoc(e: Encoder, text: string): number[] {
  const ids = encodeText(e, text);
  if (e.bos !== null) ids.unshift(e.bos);
  if (e.eos !== null) ids.push(e.eos);
  return ids;
}

/**
 * [bos] + prompt + completion + [eos], loss on the completion and eos. The completion's tokens
 * are those of prompt+completion beyond the prompt's when the prompt tokenizes to a prefix of
 * the whole (so a boundary inside a word tokenizes naturally), else the completion alone.
 */
function promptCompletionDoc(e: Encoder, prompt: string, completion: string): TokenDoc {
  const p = encodeText(e, prompt);
  const whole = encodeText(e, prompt + completion);
  const c = startsWith(whole, p) ? whole.slice(p.length) : encodeText(e, completion);
  const ids: number[] = [];
  const loss: number[] = [];
  if (e.bos !== null) {
    ids.push(e.bos);
    loss.push(0);
  }
  for (const id of p) {
    ids.push(id);
    loss.push(0);
  }
  for (const id of c) {
    ids.push(id);
    loss.push(1);
  }
  if (e.eos !== null) {
    ids.push(e.eos);
    loss.push(1);
  }
  return { ids, loss };
}

/**
 * A conversation rendered by the template, loss on each assistant turn: for turn i, the tokens
 * of render(messages[0..i]) beyond those of render(messages[0..i), generation prompt). The
 * document ends with the last assistant turn (later messages would carry no loss).
 */
function chatDoc(e: Encoder, file: string, line: number, messages: ChatMessage[]): TokenDoc {
  const template = e.template;
  if (template === null) throw new DataError(file, line, 'a "messages" conversation needs a chat template, and the tokenizer has none (set data.chatTemplate)');
  const render = (msgs: ChatMessage[], gen: boolean): string => {
    try {
      return applyChatTemplate(template, msgs, { addGenerationPrompt: gen, bosToken: e.tok.bosToken, eosToken: e.tok.eosToken });
    } catch (err) {
      if (err instanceof ChatTemplateError) throw new DataError(file, line, err.message);
      throw err;
    }
  };
  const turns: number[] = [];
  messages.forEach((m, i) => m.role === 'assistant' && turns.push(i));
  if (turns.length === 0) throw new DataError(file, line, 'the conversation has no assistant message, so nothing to learn from');
  const spans: [number[], number[]][] = [];
  for (const i of turns) {
    const prefixText = render(messages.slice(0, i), true);
    const fullText = render(messages.slice(0, i + 1), false);
    const why = `the chat template's rendering up to assistant turn messages[${i}] does not start with its rendering of the conversation before it plus the generation prompt, so the answer's tokens cannot be told apart`;
    if (!fullText.startsWith(prefixText)) throw new DataError(file, line, why);
    const prefix = encodeText(e, prefixText);
    const full = encodeText(e, fullText);
    if (!startsWith(full, prefix)) throw new DataError(file, line, `${why} (as tokens)`);
    spans.push([prefix, full]);
  }
  const ids = spans[spans.length - 1]![1];
  const loss = new Uint8Array(ids.length);
  for (const [prefix, full] of spans) {
    if (!startsWith(ids, full)) {
      throw new DataError(file, line, 'the chat template renders an earlier part of the conversation differently once later turns follow, so the answers\' tokens cannot be told apart');
    }
    loss.fill(1, prefix.length, full.length);
  }
  return { ids, loss };
}

function chatLine(e: Encoder, file: string, line: number, obj: Record<string, unknown>): TokenDoc {
  if ('messages' in obj) {
    const msgs = obj.messages;
    if (!Array.isArray(msgs)) throw new DataError(file, line, '"messages" must be a list');
    if (msgs.length === 0) throw new DataError(file, line, '"messages" is empty');
    const out: ChatMessage[] = [];
    msgs.forEach((m, i) => {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new DataError(file, line, `messages[${i}] must be an object`);
      const { role, content } = m as Record<string, unknown>;
      if (typeof role !== 'string') throw new DataError(file, line, `messages[${i}].role is ${role === undefined ? 'missing' : 'not a string'}`);
      if (!ROLES.has(role)) throw new DataError(file, line, `messages[${i}].role ${JSON.stringify(role)} is not one of system, user, assistant`);
      if (typeof content !== 'string') throw new DataError(file, line, `messages[${i}].content is ${content === undefined ? 'missing' : 'not a string'}`);
      out.push({ ...(m as object), role, content });
    });
    return chatDoc(e, file, line, out);
  }
  if ('prompt' in obj || 'completion' in obj) {
    for (const k of ['prompt', 'completion']) {
      if (typeof obj[k] !== 'string') throw new DataError(file, line, `"${k}" is ${obj[k] === undefined ? 'missing' : 'not a string'}`);
    }
    return promptCompletionDoc(e, obj.prompt as string, obj.completion as string);
  }
  throw new DataError(file, line, 'expected a "messages" list or "prompt" and "completion" strings');
}

// ---- the data set ------------------------------------------------------------------------------

export class TrainData {
  readonly seqLen: number;
  readonly train: Packed[];
  readonly eval: Packed[];
  /** Train targets that carry loss (targets >= 0 over all train sequences). */
  readonly tokens: number;
  readonly stats: DataStats;

  // The last epoch order computed: nextBatch is called with consecutive positions.
  private orderCache: { seed: number; epoch: number; order: Uint32Array } | null = null;

  private constructor(seqLen: number, train: Packed[], evalSeqs: Packed[], stats: DataStats) {
    this.seqLen = seqLen;
    this.train = train;
    this.eval = evalSeqs;
    let n = 0;
    for (const p of train) for (let i = 0; i < p.targets.length; i++) if (p.targets[i]! >= 0) n++;
    this.tokens = n;
    this.stats = stats;
  }

  /**
   * Reads, tokenizes and packs `files`. `onProgress(doneBytes, totalBytes)` is called after each
   * file and every 1000 documents.
   */
  static load(files: string[], tok: Tokenizer, opts: DataOptions, onProgress?: (done: number, total: number) => void): TrainData {
    const o = checkOptions(opts);
    if (!Array.isArray(files) || files.length === 0) throw new Error('TrainData.load: no training files given');
    if (o.format !== 'text' && o.format !== 'jsonl' && o.format !== 'chat') throw new Error(`TrainData.load: unknown format ${JSON.stringify(o.format)} (text, jsonl or chat)`);
    const textField = opts.textField ?? 'text';
    const started = performance.now();
    const enc: Encoder = {
      tok,
      bos: tok.bosId,
      eos: tok.eosIds.length > 0 ? tok.eosIds[0]! : null,
      template: opts.chatTemplate ?? tok.chatTemplate,
    };
    const sizes = files.map((f) => {
      const st = statSync(f, { throwIfNoEntry: false });
      if (!st) throw new DataError(f, null, 'no such file');
      if (!st.isFile()) throw new DataError(f, null, 'not a regular file');
      return st.size;
    });
    const total = sizes.reduce((a, b) => a + b, 0);
    const stream = new StreamBuilder();
    let doneBefore = 0;
    let sinceReport = 0;
    files.forEach((file, fi) => {
      const { text, bytes } = readUtf8(file);
      const docsBefore = stream.documents;
      // `fraction`: how far into this file the documents done so far reach.
      const tick = (fraction: number) => {
        if (onProgress && ++sinceReport >= 1000) {
          sinceReport = 0;
          onProgress(doneBefore + Math.round(fraction * bytes), total);
        }
      };
      if (o.format === 'text') {
        const docs = splitTextDocuments(text);
        docs.forEach((d, i) => {
          stream.push(plainDoc(enc, d), null);
          tick((i + 1) / docs.length);
        });
      } else {
        for (const l of lines(text)) {
          const obj = parseLine(file, l.line, l.text);
          if (o.format === 'jsonl') {
            const v = fieldText(file, l.line, obj, textField);
            if (v !== '') stream.push(plainDoc(enc, v), null);
          } else {
            const d = chatLine(enc, file, l.line, obj);
            stream.push(d.ids, d.loss ?? null);
          }
          tick((l.offset + l.text.length) / text.length);
        }
      }
      if (stream.documents === docsBefore) throw new DataError(file, null, text.trim() === '' ? 'the file is empty: no documents' : 'no documents in this file');
      doneBefore += sizes[fi]!;
      onProgress?.(doneBefore, total);
    });
    const seconds = (performance.now() - started) / 1000;
    return TrainData.fromStream(stream, o, tok.padId ?? enc.eos ?? 0, files.length, seconds, files.join(', '));
  }

  /** Packs already tokenized documents (tests, synthetic data). `padId` fills the last sequence. */
  static fromDocs(docs: TokenDoc[], opts: { seqLen: number; evalFraction?: number; seed?: number; padId?: number }): TrainData {
    const o = checkOptions({ ...opts, format: 'text' });
    const stream = new StreamBuilder();
    for (const d of docs) {
      if (d.loss !== undefined && d.loss.length !== d.ids.length) throw new Error(`TrainData.fromDocs: loss has ${d.loss.length} entries for ${d.ids.length} ids`);
      stream.push(d.ids, d.loss ?? null);
    }
    return TrainData.fromStream(stream, o, opts.padId ?? 0, 0, 0, 'the given documents');
  }

  private static fromStream(stream: StreamBuilder, o: Required<Pick<DataOptions, 'seqLen' | 'evalFraction' | 'seed'>>, padId: number, files: number, seconds: number, what: string): TrainData {
    const { train, eval: ev, dropped } = pack(stream, { seqLen: o.seqLen, evalFraction: o.evalFraction, seed: o.seed, padId });
    if (train.length === 0) throw new DataError(what, null, 'the corpus has no tokens to learn from (no document has a token with loss after its first)');
    return new TrainData(o.seqLen, train, ev, {
      files,
      documents: stream.documents,
      streamTokens: stream.length,
      trainSequences: train.length,
      evalSequences: ev.length,
      droppedSequences: dropped,
      seconds,
    });
  }

  /** Where a run starts. */
  static startPosition(seed = 0): DataPosition {
    return { epoch: 0, index: 0, seed };
  }

  /**
   * The B sequences after `pos` and the position after them. A pure function of (data, pos):
   * resuming from a saved position draws exactly the batches the run would have drawn. An
   * epoch's order is a shuffle seeded by (pos.seed, epoch); a batch may span two epochs.
   */
  nextBatch(B: number, pos: DataPosition): { batch: Batch; pos: DataPosition } {
    if (!Number.isInteger(B) || B < 1) throw new Error(`nextBatch: batch size ${B} must be an integer >= 1`);
    const N = this.train.length;
    const ok = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
    if (!pos || !ok(pos.epoch) || !ok(pos.index) || !Number.isSafeInteger(pos.seed)) {
      throw new Error(`nextBatch: bad data position ${JSON.stringify(pos)}`);
    }
    if (pos.index >= N) throw new Error(`nextBatch: data position index ${pos.index} is past the end of an epoch (${N} sequences): was the position saved with different data?`);
    let { epoch, index } = pos;
    const rows: Packed[] = [];
    while (rows.length < B) {
      rows.push(this.train[this.order(pos.seed, epoch)[index]!]!);
      if (++index === N) {
        epoch++;
        index = 0;
      }
    }
    return { batch: this.assemble(rows), pos: { epoch, index, seed: pos.seed } };
  }

  /** The eval sequences in batches of B rows, in a fixed order; the last one may have fewer rows. */
  evalBatches(B: number): Batch[] {
    if (!Number.isInteger(B) || B < 1) throw new Error(`evalBatches: batch size ${B} must be an integer >= 1`);
    const out: Batch[] = [];
    for (let i = 0; i < this.eval.length; i += B) out.push(this.assemble(this.eval.slice(i, i + B)));
    return out;
  }

  private order(seed: number, epoch: number): Uint32Array {
    const c = this.orderCache;
    if (c && c.seed === seed && c.epoch === epoch) return c.order;
    const order = permutation(this.train.length, epochSeed(seed, epoch));
    this.orderCache = { seed, epoch, order };
    return order;
  }

  private assemble(rows: Packed[]): Batch {
    const T = this.seqLen;
    const B = rows.length;
    const b: Batch = { B, T, tokens: new Int32Array(B * T), targets: new Int32Array(B * T), seg: new Int32Array(B * T), positions: new Int32Array(B * T) };
    rows.forEach((p, r) => {
      b.tokens.set(p.tokens, r * T);
      b.targets.set(p.targets, r * T);
      b.positions.set(p.positions, r * T);
      for (let t = 0; t < T; t++) b.seg[r * T + t] = r * T + p.seg[t]!;
    });
    return b;
  }
}

function checkOptions(opts: Partial<DataOptions>): DataOptions & { evalFraction: number; seed: number } {
  const { seqLen } = opts;
  if (!Number.isInteger(seqLen) || (seqLen as number) < 2) throw new Error(`data: seqLen ${seqLen} must be an integer >= 2`);
  const evalFraction = opts.evalFraction ?? 0.01;
  if (typeof evalFraction !== 'number' || !(evalFraction >= 0 && evalFraction < 1)) throw new Error(`data: evalFraction ${evalFraction} must be in [0, 1)`);
  const seed = opts.seed ?? 0;
  if (!Number.isSafeInteger(seed)) throw new Error(`data: seed ${seed} must be an integer`);
  return { ...(opts as DataOptions), evalFraction, seed };
}

// Benchmark prompts: synthetic ones of a requested token length (as vLLM's random dataset) and
// ShareGPT conversations (as vLLM's ShareGPT dataset), plus an optional shared system prompt of
// ~L tokens that every request carries, to exercise prefix caching.
//
// Token lengths without a tokenizer: a synthetic prompt is N words drawn from a list of common
// short English words, each of which is one token (with its leading space) in the BPE vocabularies
// of Llama, Mistral, Qwen and GPT-2 alike, so N words ~ N tokens (the server may add a BOS).
// When the server answers POST /tokenize, the real length is measured and the word count
// corrected, so the recorded prompt lengths are the server's own. ShareGPT turns without a
// tokenizer count as ceil(words * 1.3) tokens, the usual English ratio.

import { readFile } from 'node:fs/promises';
import { FormatError } from '../formats/errors.ts';
import { UsageError } from '../errors.ts';
import type { BenchRng } from './arrivals.ts';

export interface BenchRequest {
  /** The shared system prompt (--shared-prefix-len), sent as the system message for chat. */
  prefix?: string;
  prompt: string;
  /** Prompt tokens including the prefix: measured by the server's /tokenize when `measured`, else estimated. */
  promptLen: number;
  measured: boolean;
  /** max_tokens for the request. */
  outputLen: number;
}

/** Counts tokens of a text (the server's /tokenize); undefined when it cannot. */
export type TokenCounter = (text: string) => Promise<number | undefined>;

// Common words that are single tokens in the usual BPE vocabularies.
const WORDS = (
  'the of and to in is was for that on with as by at from his her he she it they we you are be this had have not but ' +
  'or an were which their one all would there been has more when will who if out so up into time them can some what ' +
  'only other new about my than then its over also two after first way now may any like just where most people years ' +
  'year these could no made well back many before through much down should each because good man used even world ' +
  'long did life same work own our make still under very last while city state day great part end old small large ' +
  'high place home water house found school right might far hand place three four five six old best side week early ' +
  'line game book light night family story power money name area book open free local point group play river road ' +
  'king war team field party south north west east music child room white black red green blue sea land air fire ' +
  'rock tree food door face word car town love art city paper short set case hard real mind body start show run'
).split(' ');
const WORDS_TO_TOKENS = 1.3;

/** `n` random words joined by spaces (about n tokens). */
export function randomWords(n: number, rng: BenchRng): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(WORDS[rng.int(0, WORDS.length - 1)]!);
  return out.join(' ');
}

/** Lengths uniform in [floor(L*(1-r)), ceil(L*(1+r))], as vLLM's random dataset, at least `min`. */
export function sampleLength(len: number, ratio: number, rng: BenchRng, min = 1): number {
  const lo = Math.max(min, Math.floor(len * (1 - ratio)));
  const hi = Math.max(lo, Math.ceil(len * (1 + ratio)));
  return rng.int(lo, hi);
}

export interface RandomDatasetOptions {
  num: number;
  inputLen: number;
  outputLen: number;
  rangeRatio: number;
  sharedPrefixLen: number;
}

/** Synthetic prompts: input and output lengths uniform within ±rangeRatio; the prefix adds to the input length (as vLLM's random_prefix_len). */
export function randomDataset(o: RandomDatasetOptions, rng: BenchRng): BenchRequest[] {
  if (!(o.rangeRatio >= 0 && o.rangeRatio < 1)) throw new UsageError(`--range-ratio must be in [0, 1), got ${o.rangeRatio}`);
  const prefix = o.sharedPrefixLen > 0 ? randomWords(o.sharedPrefixLen, rng) : undefined;
  const out: BenchRequest[] = [];
  for (let i = 0; i < o.num; i++) {
    const inLen = sampleLength(o.inputLen, o.rangeRatio, rng);
    const outLen = sampleLength(o.outputLen, o.rangeRatio, rng);
    out.push({ prefix, prompt: randomWords(inLen, rng), promptLen: inLen + o.sharedPrefixLen, measured: false, outputLen: outLen });
  }
  return out;
}

export function estimateTokens(text: string): number {
  const words = text.split(/\s+/).filter((w) => w !== '').length;
  return Math.ceil(words * WORDS_TO_TOKENS);
}

export interface ShareGptOptions {
  num: number;
  /** Fixed max_tokens for every request instead of the gpt turn's length (vLLM's --sharegpt-output-len). */
  outputLen?: number;
  sharedPrefixLen: number;
  counter?: TokenCounter;
}

// vLLM's ShareGPT filter: drop pairs with a prompt or reply under 4 tokens, a prompt over 1024,
// or prompt + reply over 2048.
const MIN_LEN = 4;
const MAX_PROMPT = 1024;
const MAX_TOTAL = 2048;

/**
 * ShareGPT-format JSON: an array of { conversations: [{ from, value }, ...] }. The first turn
 * is the prompt, the second (the reply) gives the output length. Entries are shuffled with the
 * seed and the first `num` valid ones kept, as vLLM does.
 */
export async function loadShareGpt(path: string, o: ShareGptOptions, rng: BenchRng): Promise<BenchRequest[]> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    throw new FormatError(path, `cannot read the dataset: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch (e) {
    throw new FormatError(path, `not valid JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(data)) throw new FormatError(path, 'expected a JSON array of { "conversations": [{ "from", "value" }, ...] } (ShareGPT format)');
  const pairs: [string, string][] = [];
  for (const entry of data as unknown[]) {
    const conv = (entry as { conversations?: unknown } | null)?.conversations;
    if (!Array.isArray(conv) || conv.length < 2) continue;
    const p = (conv[0] as { value?: unknown } | null)?.value;
    const c = (conv[1] as { value?: unknown } | null)?.value;
    if (typeof p === 'string' && typeof c === 'string') pairs.push([p, c]);
  }
  if (pairs.length === 0) throw new FormatError(path, 'no entry has two conversation turns with string "value"s (ShareGPT format)');
  rng.shuffle(pairs);

  const count = async (t: string) => (o.counter ? ((await o.counter(t)) ?? estimateTokens(t)) : estimateTokens(t));
  const prefix = o.sharedPrefixLen > 0 ? randomWords(o.sharedPrefixLen, rng) : undefined;
  const out: BenchRequest[] = [];
  for (const [prompt, reply] of pairs) {
    if (out.length >= o.num) break;
    const promptLen = await count(prompt);
    const replyLen = o.outputLen ?? (await count(reply));
    if (promptLen < MIN_LEN || promptLen > MAX_PROMPT) continue;
    if (o.outputLen === undefined && replyLen < MIN_LEN) continue;
    if (promptLen + replyLen > MAX_TOTAL) continue;
    out.push({ prefix, prompt, promptLen: promptLen + o.sharedPrefixLen, measured: o.counter !== undefined, outputLen: replyLen });
  }
  if (out.length === 0) throw new FormatError(path, `no conversation passes the length filter (prompt and reply >= ${MIN_LEN} tokens, prompt <= ${MAX_PROMPT}, total <= ${MAX_TOTAL})`);
  return out;
}

/**
 * Measures synthetic prompts with the server's tokenizer and corrects their word counts so
 * each hits its target length (a word is now and then two tokens). Lengths become the measured ones.
 */
export async function fitRandomPrompts(reqs: BenchRequest[], counter: TokenCounter, rng: BenchRng, sharedPrefixLen: number): Promise<boolean> {
  const fit = async (text: string, target: number): Promise<[string, number] | undefined> => {
    let words = text.split(' ');
    let n = await counter(text);
    if (n === undefined) return undefined;
    for (let round = 0; round < 3 && n !== target; round++) {
      const want = Math.max(1, Math.round((words.length * target) / Math.max(1, n)));
      if (want === words.length) break;
      words = want < words.length ? words.slice(0, want) : words.concat(randomWords(want - words.length, rng).split(' '));
      n = await counter(words.join(' '));
      if (n === undefined) return undefined;
    }
    return [words.join(' '), n];
  };
  let prefixLen = 0;
  const prefix0 = reqs[0]?.prefix;
  let prefix = prefix0;
  if (prefix0 !== undefined) {
    const r = await fit(prefix0, sharedPrefixLen);
    if (!r) return false;
    [prefix, prefixLen] = r;
  }
  // Several at a time: a few round trips each, not one long serial chain.
  const width = 8;
  let failed = false;
  for (let i = 0; i < reqs.length && !failed; i += width) {
    await Promise.all(
      reqs.slice(i, i + width).map(async (q) => {
        const r = await fit(q.prompt, q.promptLen - sharedPrefixLen);
        if (!r) {
          failed = true;
          return;
        }
        q.prompt = r[0];
        q.promptLen = r[1] + prefixLen;
        q.prefix = prefix;
        q.measured = true;
      }),
    );
  }
  return !failed;
}

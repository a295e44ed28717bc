// Request validation at the edge: every field the server reads is type- and range-checked here,
// and a bad one becomes a 400 naming it (OpenAI's `param`). Unknown fields are ignored, as OpenAI
// clients send extras; `null` counts as absent, as the OpenAI SDKs send it for unset options.

import { EngineError, type EngineClient, type SamplingOptions } from '../engine/api.ts';
import { ApiError, badRequest, toApiError } from './errors.ts';
import { ConstraintError, engineFor, type ConstraintSpec, type ToolCallFormat } from '../structured/index.ts';
import { messagesForTemplate, parseMessageToolCalls, parseTools } from './tools.ts';

export type Body = Record<string, unknown>;

export function isObject(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

interface NumRule {
  min?: number;
  max?: number;
  /** Exclusive lower bound. */
  above?: number;
  int?: boolean;
}

export function optNumber(b: Body, name: string, rule: NumRule): number | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number') throw badRequest(`'${name}' must be a number, got ${typeName(v)}`, name, 'invalid_type');
  if (!Number.isFinite(v)) throw badRequest(`'${name}' must be finite`, name);
  if (rule.int && !Number.isSafeInteger(v)) throw badRequest(`'${name}' must be an integer, got ${v}`, name, 'invalid_type');
  if (rule.min !== undefined && v < rule.min) throw badRequest(`'${name}' must be >= ${rule.min}, got ${v}`, name);
  if (rule.above !== undefined && v <= rule.above) throw badRequest(`'${name}' must be > ${rule.above}, got ${v}`, name);
  if (rule.max !== undefined && v > rule.max) throw badRequest(`'${name}' must be <= ${rule.max}, got ${v}`, name);
  return v;
}

export function optBool(b: Body, name: string): boolean | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`'${name}' must be a boolean, got ${typeName(v)}`, name, 'invalid_type');
  return v;
}

function optString(b: Body, name: string): string | undefined {
  const v = b[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest(`'${name}' must be a string, got ${typeName(v)}`, name, 'invalid_type');
  return v;
}

function isTokenId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 31;
}

/** A list of token ids (prompt ids, stop_token_ids, /detokenize tokens). */
export function tokenList(v: unknown, name: string): number[] {
  if (!Array.isArray(v)) throw badRequest(`'${name}' must be an array of token ids, got ${typeName(v)}`, name, 'invalid_type');
  for (const t of v) if (!isTokenId(t)) throw badRequest(`'${name}' must contain non-negative integer token ids, got ${JSON.stringify(t)}`, name);
  return v as number[];
}

/** `model` may be absent; when present it must be the served model's name (404 otherwise). */
export function checkModel(b: Body, servedName: string): void {
  const m = optString(b, 'model');
  if (m !== undefined && m !== servedName) {
    throw new ApiError(404, `the model '${m}' does not exist; this server serves '${servedName}'`, 'model', 'model_not_found');
  }
}

/** Runs a tokenizer-side engine call; its failures are the request's fault (400 on `param`). */
export function engineCall<T>(param: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof EngineError && e.code !== 'bad_request') throw toApiError(e, param);
    throw badRequest(e instanceof Error ? e.message : String(e), param);
  }
}

/** A chat message: role and text; tool turns also carry tool_calls / tool_call_id / name. */
export interface ChatMessage {
  role: string;
  content: string;
  [extra: string]: unknown;
}

/** The roles OpenAI's chat API accepts ('developer' is the newer name of 'system'). */
const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

export function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v) || v.length === 0) throw badRequest(`'messages' must be a non-empty array`, 'messages', 'invalid_type');
  return v.map((m, i) => {
    const at = `messages[${i}]`;
    if (!isObject(m)) throw badRequest(`'${at}' must be an object`, at, 'invalid_type');
    if (typeof m.role !== 'string') throw badRequest(`'${at}.role' must be one of ${ROLES.map((r) => `'${r}'`).join(', ')}, got ${typeName(m.role)}`, `${at}.role`, 'invalid_type');
    if (!ROLES.includes(m.role)) throw badRequest(`'${at}.role' must be one of ${ROLES.map((r) => `'${r}'`).join(', ')}, got ${JSON.stringify(m.role)}`, `${at}.role`);
    const c = m.content;
    const toolCalls = m.role === 'assistant' && m.tool_calls !== undefined && m.tool_calls !== null ? parseMessageToolCalls(m.tool_calls, at) : undefined;
    let content: string;
    if (c === undefined || c === null) {
      // Only an assistant message that carries tool_calls may have no content.
      if (!toolCalls?.length) throw badRequest(`'${at}.content' is required (a string or an array of text parts), got ${typeName(c)}`, `${at}.content`, c === undefined ? 'missing' : 'invalid_type');
      content = '';
    } else if (typeof c === 'string') content = c;
    else if (Array.isArray(c)) {
      // Content parts: only text is supported; the parts are joined.
      content = c
        .map((p, j) => {
          if (!isObject(p) || p.type !== 'text' || typeof p.text !== 'string') {
            throw badRequest(`'${at}.content[${j}]' must be a text part {type: 'text', text}`, `${at}.content`);
          }
          return p.text;
        })
        .join('');
    } else throw badRequest(`'${at}.content' must be a string or an array of text parts`, `${at}.content`, 'invalid_type');
    const out: ChatMessage = { role: m.role, content };
    if (toolCalls?.length) out.tool_calls = toolCalls;
    if (m.role === 'tool') {
      if (typeof m.tool_call_id !== 'string' || m.tool_call_id === '') throw badRequest(`'${at}.tool_call_id' must be the id of the call this message answers`, `${at}.tool_call_id`, m.tool_call_id === undefined ? 'missing' : 'invalid_type');
      out.tool_call_id = m.tool_call_id;
    }
    if (m.name !== undefined && m.name !== null) {
      if (typeof m.name !== 'string') throw badRequest(`'${at}.name' must be a string`, `${at}.name`, 'invalid_type');
      out.name = m.name;
    }
    return out;
  });
}

/** A completion or chat request, checked and tokenized, ready for the engine. */
export interface ParsedGenerate {
  promptIds: number[];
  sampling: SamplingOptions;
  stream: boolean;
  includeUsage: boolean;
  /** Chat: logprobs were asked for (sampling.logprobs holds top_logprobs). */
  chatLogprobs: boolean;
  promptParam: 'prompt' | 'messages';
  /** Chat with tools: the answer is parsed for calls in this syntax (absent: plain content). */
  toolFormat?: ToolCallFormat;
}

function rejectUnsupported(b: Body): void {
  if (b.suffix !== undefined && b.suffix !== null) throw badRequest(`'suffix' is not supported`, 'suffix', 'unsupported');
  if (isObject(b.logit_bias) && Object.keys(b.logit_bias).length > 0) throw badRequest(`'logit_bias' is not supported`, 'logit_bias', 'unsupported');
}

/** Sampling fields shared by both endpoints, except logprobs and max_tokens. */
function parseSamplingFields(b: Body): Omit<SamplingOptions, 'maxTokens' | 'logprobs'> {
  const temperature = optNumber(b, 'temperature', { min: 0, max: 2 }) ?? 1;
  const topP = optNumber(b, 'top_p', { above: 0, max: 1 }) ?? 1;
  const topK = optNumber(b, 'top_k', { min: -1, int: true }) ?? 0; // -1 (vLLM) and 0 both mean off
  const minP = optNumber(b, 'min_p', { min: 0, max: 1 }) ?? 0;
  const repetitionPenalty = optNumber(b, 'repetition_penalty', { above: 0, max: 10 }) ?? 1;
  const presencePenalty = optNumber(b, 'presence_penalty', { min: -2, max: 2 }) ?? 0;
  const frequencyPenalty = optNumber(b, 'frequency_penalty', { min: -2, max: 2 }) ?? 0;
  const seed = optNumber(b, 'seed', { int: true });
  const n = optNumber(b, 'n', { min: 1, max: 16, int: true }) ?? 1;
  const bestOf = optNumber(b, 'best_of', { min: 1, int: true });
  if (bestOf !== undefined && bestOf !== n) throw badRequest(`'best_of' must equal 'n' (ranking candidates is not supported)`, 'best_of', 'unsupported');

  let stop: string[] = [];
  const s = b.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s)) stop = s as string[];
  else if (s !== undefined && s !== null) throw badRequest(`'stop' must be a string or an array of strings, got ${typeName(s)}`, 'stop', 'invalid_type');
  if (stop.length > 16) throw badRequest(`'stop' may hold at most 16 strings`, 'stop');
  for (const x of stop) if (typeof x !== 'string' || x === '') throw badRequest(`'stop' must contain non-empty strings`, 'stop');

  const stopTokenIds = b.stop_token_ids === undefined || b.stop_token_ids === null ? [] : tokenList(b.stop_token_ids, 'stop_token_ids');
  const ignoreEos = optBool(b, 'ignore_eos') ?? false;
  optString(b, 'user'); // accepted and ignored, but must have the right type
  const constraint = parseConstraint(b);
  return { temperature, topP, topK: topK < 0 ? 0 : topK, minP, repetitionPenalty, presencePenalty, frequencyPenalty, seed, stop, stopTokenIds, ignoreEos, n, ...(constraint ? { constraint } : {}) };
}

/**
 * Structured output: OpenAI's `response_format` (json_object, json_schema) or one of vLLM's
 * guided_json / guided_regex / guided_choice / guided_grammar (GBNF). The constraint is compiled
 * here once (cached by spec) so that an unsupported schema keyword or a bad grammar is a 400
 * naming it; the engine compiles it over the vocabulary from the same cache.
 */
function parseConstraint(b: Body): ConstraintSpec | undefined {
  const found: [string, ConstraintSpec][] = [];
  const rf = b.response_format;
  if (rf !== undefined && rf !== null) {
    if (!isObject(rf)) throw badRequest(`'response_format' must be an object`, 'response_format', 'invalid_type');
    if (rf.type === 'json_object') found.push(['response_format', { type: 'json_object' }]);
    else if (rf.type === 'json_schema') {
      const js = rf.json_schema;
      if (!isObject(js)) throw badRequest(`'response_format.json_schema' must be an object {name, schema, strict}`, 'response_format.json_schema', 'invalid_type');
      if (typeof js.name !== 'string' || js.name === '') throw badRequest(`'response_format.json_schema.name' must be a non-empty string`, 'response_format.json_schema.name', 'invalid_type');
      if (js.strict !== undefined && js.strict !== null && typeof js.strict !== 'boolean') throw badRequest(`'response_format.json_schema.strict' must be a boolean`, 'response_format.json_schema.strict', 'invalid_type');
      const schema = js.schema ?? {};
      if (!isObject(schema) && typeof schema !== 'boolean') throw badRequest(`'response_format.json_schema.schema' must be a JSON schema object`, 'response_format.json_schema.schema', 'invalid_type');
      found.push(['response_format', { type: 'json_schema', schema }]);
    } else if (rf.type !== 'text') {
      throw badRequest(`'response_format.type' must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(rf.type)}`, 'response_format.type');
    }
  }
  const gj = b.guided_json;
  if (gj !== undefined && gj !== null) {
    let schema: unknown = gj;
    if (typeof gj === 'string') {
      try {
        schema = JSON.parse(gj);
      } catch {
        throw badRequest(`'guided_json' is a string but not JSON`, 'guided_json');
      }
    }
    if (!isObject(schema) && typeof schema !== 'boolean') throw badRequest(`'guided_json' must be a JSON schema object`, 'guided_json', 'invalid_type');
    found.push(['guided_json', { type: 'json_schema', schema }]);
  }
  const gr = optString(b, 'guided_regex');
  if (gr !== undefined) found.push(['guided_regex', { type: 'regex', pattern: gr }]);
  const gc = b.guided_choice;
  if (gc !== undefined && gc !== null) {
    if (!Array.isArray(gc) || gc.length === 0 || gc.some((c) => typeof c !== 'string')) throw badRequest(`'guided_choice' must be a non-empty array of strings`, 'guided_choice', 'invalid_type');
    found.push(['guided_choice', { type: 'choice', choices: gc as string[] }]);
  }
  const gg = optString(b, 'guided_grammar');
  if (gg !== undefined) found.push(['guided_grammar', { type: 'grammar', gbnf: gg }]);
  if (found.length > 1) throw badRequest(`only one of ${found.map(([p]) => `'${p}'`).join(' and ')} may be given`, found[1]![0]);
  if (found.length === 0) return undefined;
  const [param, spec] = found[0]!;
  try {
    engineFor(spec);
  } catch (e) {
    if (e instanceof ConstraintError) throw badRequest(`'${param}': ${e.message}`, param);
    throw e;
  }
  return spec;
}

function parseStream(b: Body): { stream: boolean; includeUsage: boolean } {
  const stream = optBool(b, 'stream') ?? false;
  let includeUsage = false;
  const so = b.stream_options;
  if (so !== undefined && so !== null) {
    if (!isObject(so)) throw badRequest(`'stream_options' must be an object`, 'stream_options', 'invalid_type');
    const iu = so.include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') throw badRequest(`'stream_options.include_usage' must be a boolean`, 'stream_options.include_usage', 'invalid_type');
    includeUsage = iu === true;
  }
  return { stream, includeUsage };
}

/**
 * max_tokens against the context: prompt + max_tokens must fit. Without max_tokens a completion
 * gets 16 tokens (OpenAI's default) and a chat the rest of the context (vLLM's choice).
 */
function resolveMaxTokens(
  requested: number | undefined,
  maxParam: string,
  promptLen: number,
  maxContext: number,
  promptParam: string,
  fallback: number | 'rest',
): number {
  if (promptLen === 0) throw badRequest(`the ${promptParam === 'messages' ? 'chat prompt' : 'prompt'} is empty`, promptParam);
  if (promptLen >= maxContext) {
    throw new ApiError(400, `the prompt has ${promptLen} tokens; the model's context is ${maxContext} tokens`, promptParam, 'context_length_exceeded');
  }
  const rest = maxContext - promptLen;
  if (requested === undefined) return fallback === 'rest' ? rest : Math.min(fallback, rest);
  if (requested > rest) {
    throw new ApiError(
      400,
      `'${maxParam}' is ${requested} but the prompt has ${promptLen} tokens and the model's context is ${maxContext}: at most ${rest} tokens can be generated`,
      maxParam,
      'context_length_exceeded',
    );
  }
  return requested;
}

export function parseCompletion(b: Body, engine: EngineClient): ParsedGenerate {
  rejectUnsupported(b);
  if (Array.isArray(b.tools) && b.tools.length > 0) throw badRequest(`'tools' are for /v1/chat/completions`, 'tools', 'unsupported');
  if (optBool(b, 'echo') === true) throw badRequest(`'echo' is not supported`, 'echo', 'unsupported');
  const base = parseSamplingFields(b);
  const logprobs = optNumber(b, 'logprobs', { min: 0, max: 20, int: true });
  const maxTokens = optNumber(b, 'max_tokens', { min: 1, int: true });
  const { stream, includeUsage } = parseStream(b);

  // prompt: a string, token ids, or a batch of exactly one of those.
  let p = b.prompt;
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  let promptIds: number[];
  if (typeof p === 'string') promptIds = engineCall('prompt', () => engine.encode(p as string, true));
  else if (Array.isArray(p)) {
    if (p.length > 0 && (typeof p[0] === 'string' || Array.isArray(p[0]))) throw badRequest(`batched prompts are not supported; send one prompt per request`, 'prompt', 'unsupported');
    promptIds = tokenList(p, 'prompt');
  } else if (p === undefined || p === null) throw badRequest(`'prompt' is required`, 'prompt', 'missing');
  else throw badRequest(`'prompt' must be a string or an array of token ids, got ${typeName(p)}`, 'prompt', 'invalid_type');

  const max = resolveMaxTokens(maxTokens, 'max_tokens', promptIds.length, engine.maxContext, 'prompt', 16);
  return { promptIds, sampling: { ...base, maxTokens: max, logprobs }, stream, includeUsage, chatLogprobs: false, promptParam: 'prompt' };
}

export function parseChat(b: Body, engine: EngineClient, modelName: string = engine.modelName): ParsedGenerate {
  rejectUnsupported(b);
  const messages = parseMessages(b.messages);
  const base = parseSamplingFields(b);
  const tools = parseTools(b, engine.toolSupport?.() ?? { tools: false, format: null }, modelName);
  if (tools?.constraint) {
    if (base.constraint) {
      const other = ['response_format', 'guided_json', 'guided_regex', 'guided_choice', 'guided_grammar'].find((k) => b[k] !== undefined && b[k] !== null && !(k === 'response_format' && isObject(b[k]) && (b[k] as Body).type === 'text'));
      throw badRequest(`'${other}' cannot be combined with tool_choice '${typeof tools.choice === 'string' ? tools.choice : tools.choice.name}': the answer is the tool call`, other ?? 'tool_choice');
    }
    base.constraint = tools.constraint;
  }
  const lp = optBool(b, 'logprobs') ?? false;
  const top = optNumber(b, 'top_logprobs', { min: 0, max: 20, int: true });
  if (top !== undefined && top > 0 && !lp) throw badRequest(`'top_logprobs' needs 'logprobs': true`, 'top_logprobs');
  const mct = optNumber(b, 'max_completion_tokens', { min: 1, int: true });
  const mt = optNumber(b, 'max_tokens', { min: 1, int: true });
  const { stream, includeUsage } = parseStream(b);
  const addGenerationPrompt = optBool(b, 'add_generation_prompt') ?? true;

  const text = engineCall('messages', () =>
    engine.applyChatTemplate(messagesForTemplate(messages, tools?.format ?? engine.toolSupport?.().format ?? null), addGenerationPrompt, tools?.templateTools ? { tools: tools.templateTools } : undefined),
  );
  const promptIds = engineCall('messages', () => engine.encode(text, false));
  const maxParam = mct !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const max = resolveMaxTokens(mct ?? mt, maxParam, promptIds.length, engine.maxContext, 'messages', 'rest');
  return {
    promptIds,
    sampling: { ...base, maxTokens: max, logprobs: lp ? (top ?? 0) : undefined },
    stream,
    includeUsage,
    chatLogprobs: lp,
    promptParam: 'messages',
    ...(tools?.format ? { toolFormat: tools.format } : {}),
  };
}

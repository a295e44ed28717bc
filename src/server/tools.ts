// Tool calling on /v1/chat/completions (issue 23): the request fields (tools, tool_choice,
// parallel_tool_calls) checked at the edge, tool turns of the conversation made ready for the
// chat template, and the model's own call syntax parsed back into OpenAI's `tool_calls`, both
// whole and as stream deltas, by one incremental parser (so the two can never disagree).
//
// The call syntax is the one the model's chat template teaches (templateToolSupport):
//   hermes  (Qwen2.5, Hermes 2/3):  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>, any number
//   llama3  (Llama 3.1 / 3.2):      the whole answer is {"name": "f", "parameters": {...}}, possibly after
//                                   <|python_tag|>; more calls may follow after ';'
//   mistral (Mistral v0.3):         [TOOL_CALLS][{"name": "f", "arguments": {...}}, ...]; [TOOL_CALLS] is a
//                                   special token the detokenizer drops, so an answer that opens with
//                                   the array counts too
// tool_choice 'required' or a named function constrains decoding to exactly that syntax around
// arguments valid for the function's schema (src/structured/tools.ts); 'auto' leaves the model
// free and parses what it writes; 'none' parses nothing.
//
// Streaming holds text back only while it may still be the start of a call (a prefix of
// '<tool_call>', or an answer that so far is whitespace or opens like a call), and releases
// it as content as soon as it cannot be. Arguments stream as the model writes them once the
// call's name is known; a call the model leaves unfinished (max_tokens) keeps what it wrote.

import { randomBytes } from 'node:crypto';
import { badRequest } from './errors.ts';
import { ConstraintError, engineFor, NO_PARAMETERS, type ToolCallFormat, type ToolCallSpec } from '../structured/index.ts';
import type { ToolTemplateSupport } from '../engine/api.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const typeName = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

// ---- request fields ----

export interface ToolDef {
  name: string;
  description?: string;
  parameters?: Obj;
}

export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

export interface ParsedTools {
  tools: ToolDef[];
  choice: ToolChoice;
  parallel: boolean;
  /** The call syntax to parse the answer with; null: leave the answer as content (tool_choice 'none'). */
  format: ToolCallFormat | null;
  /** The `tools` variable for the chat template (transformers' shape); undefined: do not pass tools. */
  templateTools?: Obj[];
  /** The decoding constraint for 'required' / a named function. */
  constraint?: ToolCallSpec;
}

/** OpenAI's rule for function names. */
const NAME_RE = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * tools / tool_choice / parallel_tool_calls of a chat request, or undefined when it has no tools.
 * `support` is what the model's chat template does with tools; `modelName` is for messages.
 */
export function parseTools(b: Obj, support: ToolTemplateSupport, modelName: string): ParsedTools | undefined {
  const raw = b.tools;
  const tc = b.tool_choice;
  const ptc = b.parallel_tool_calls;
  if (ptc !== undefined && ptc !== null && typeof ptc !== 'boolean') throw badRequest(`'parallel_tool_calls' must be a boolean, got ${typeName(ptc)}`, 'parallel_tool_calls', 'invalid_type');
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    if (tc !== undefined && tc !== null && tc !== 'none' && tc !== 'auto') throw badRequest(`'tool_choice' needs 'tools'`, 'tool_choice');
    return undefined;
  }
  if (!Array.isArray(raw)) throw badRequest(`'tools' must be an array of {type: 'function', function: {name, description, parameters}}, got ${typeName(raw)}`, 'tools', 'invalid_type');
  if (raw.length > 128) throw badRequest(`'tools' may hold at most 128 functions`, 'tools');
  const seen = new Set<string>();
  const tools = raw.map((t, i): ToolDef => {
    const at = `tools[${i}]`;
    if (!isObj(t)) throw badRequest(`'${at}' must be an object {type: 'function', function}`, at, 'invalid_type');
    if (t.type !== 'function') throw badRequest(`'${at}.type' must be 'function', got ${JSON.stringify(t.type)}`, `${at}.type`);
    const f = t.function;
    if (!isObj(f)) throw badRequest(`'${at}.function' must be an object {name, description, parameters}`, `${at}.function`, 'invalid_type');
    if (typeof f.name !== 'string' || !NAME_RE.test(f.name)) {
      throw badRequest(`'${at}.function.name' must be 1 to 64 letters, digits, '_' or '-', got ${JSON.stringify(f.name)}`, `${at}.function.name`, typeof f.name === 'string' ? 'invalid_value' : 'invalid_type');
    }
    if (seen.has(f.name)) throw badRequest(`'${at}.function.name': the function '${f.name}' is defined twice`, `${at}.function.name`);
    seen.add(f.name);
    if (f.description !== undefined && f.description !== null && typeof f.description !== 'string') throw badRequest(`'${at}.function.description' must be a string`, `${at}.function.description`, 'invalid_type');
    if (f.strict !== undefined && f.strict !== null && typeof f.strict !== 'boolean') throw badRequest(`'${at}.function.strict' must be a boolean`, `${at}.function.strict`, 'invalid_type');
    const def: ToolDef = { name: f.name };
    if (typeof f.description === 'string') def.description = f.description;
    const p = f.parameters;
    if (p !== undefined && p !== null) {
      const pp = `${at}.function.parameters`;
      if (!isObj(p)) throw badRequest(`'${pp}' must be a JSON schema object`, pp, 'invalid_type');
      if (p.type !== undefined && p.type !== 'object') throw badRequest(`'${pp}': the arguments must be an object ("type": "object"), got "type": ${JSON.stringify(p.type)}`, pp);
      try {
        engineFor({ type: 'json_schema', schema: p }); // cached; the constraint below reuses the rules
      } catch (e) {
        if (e instanceof ConstraintError) throw badRequest(`'${pp}': ${e.message}`, pp);
        throw e;
      }
      def.parameters = p;
    }
    return def;
  });

  let choice: ToolChoice;
  if (tc === undefined || tc === null) choice = 'auto';
  else if (tc === 'none' || tc === 'auto' || tc === 'required') choice = tc;
  else if (isObj(tc)) {
    if (tc.type !== 'function') throw badRequest(`'tool_choice.type' must be 'function', got ${JSON.stringify(tc.type)}`, 'tool_choice.type');
    const name = isObj(tc.function) ? tc.function.name : undefined;
    if (typeof name !== 'string') throw badRequest(`'tool_choice.function.name' must be a string`, 'tool_choice.function.name', 'invalid_type');
    if (!seen.has(name)) throw badRequest(`'tool_choice.function.name': no function named '${name}' in 'tools' (${[...seen].map((n) => `'${n}'`).join(', ')})`, 'tool_choice.function.name');
    choice = { name };
  } else throw badRequest(`'tool_choice' must be 'none', 'auto', 'required' or {type: 'function', function: {name}}, got ${JSON.stringify(tc)}`, 'tool_choice');
  const parallel = ptc !== false;

  const templateTools = support.tools ? tools.map((t) => ({ type: 'function', function: { name: t.name, ...(t.description !== undefined ? { description: t.description } : {}), parameters: t.parameters ?? NO_PARAMETERS } })) : undefined;
  if (choice === 'none') return { tools, choice, parallel, format: null, templateTools };
  if (!support.tools) throw badRequest(`the chat template of '${modelName}' has no tool support (it never reads 'tools'); send tool_choice 'none' or no tools`, 'tools', 'unsupported');
  const format = support.format;
  if (!format) throw badRequest(`the chat template of '${modelName}' reads 'tools' but its tool-call syntax is none this server parses (Hermes/Qwen <tool_call>, Llama 3.1 JSON, Mistral [TOOL_CALLS])`, 'tools', 'unsupported');
  let constraint: ToolCallSpec | undefined;
  if (choice !== 'auto') {
    const forced = choice === 'required' ? tools : tools.filter((t) => t.name === choice.name);
    constraint = { type: 'tool_calls', format, tools: forced.map((t) => ({ name: t.name, parameters: t.parameters ?? NO_PARAMETERS })), parallel: choice === 'required' && parallel };
    try {
      engineFor(constraint);
    } catch (e) {
      if (e instanceof ConstraintError) throw badRequest(`'tools': ${e.message}`, 'tools');
      throw e;
    }
  }
  return { tools, choice, parallel, format, templateTools, constraint };
}

// ---- tool turns of the conversation ----

/**
 * An assistant message's tool_calls, checked, with each call's arguments parsed into an object:
 * templates render them with `arguments | tojson` (as vLLM passes them), which on the string
 * OpenAI sends would print a quoted string.
 */
export function parseMessageToolCalls(v: unknown, at: string): Obj[] {
  const p = `${at}.tool_calls`;
  if (!Array.isArray(v)) throw badRequest(`'${p}' must be an array of {id, type: 'function', function: {name, arguments}}`, p, 'invalid_type');
  return v.map((c, j) => {
    const cp = `${p}[${j}]`;
    if (!isObj(c)) throw badRequest(`'${cp}' must be an object {id, type: 'function', function}`, cp, 'invalid_type');
    if (typeof c.id !== 'string' || c.id === '') throw badRequest(`'${cp}.id' must be a non-empty string`, `${cp}.id`, 'invalid_type');
    if (c.type !== undefined && c.type !== 'function') throw badRequest(`'${cp}.type' must be 'function'`, `${cp}.type`);
    const f = c.function;
    if (!isObj(f) || typeof f.name !== 'string') throw badRequest(`'${cp}.function' must be {name, arguments}`, `${cp}.function`, 'invalid_type');
    let args: unknown = {};
    if (typeof f.arguments === 'string') {
      try {
        args = f.arguments.trim() === '' ? {} : JSON.parse(f.arguments);
      } catch {
        throw badRequest(`'${cp}.function.arguments' is not JSON`, `${cp}.function.arguments`);
      }
    } else if (isObj(f.arguments)) args = f.arguments;
    else if (f.arguments !== undefined && f.arguments !== null) throw badRequest(`'${cp}.function.arguments' must be a JSON string`, `${cp}.function.arguments`, 'invalid_type');
    return { id: c.id, type: 'function', function: { name: f.name, arguments: args } };
  });
}

/** Mistral's templates insist on 9-character alphanumeric call ids: the last 9 of ours (as vLLM truncates them). */
export function mistralCallId(id: string): string {
  return id.replace(/[^a-zA-Z0-9]/g, '').slice(-9).padStart(9, '0');
}

/** Messages as the template of `format` wants its tool turns (only Mistral needs a change: ids). */
export function messagesForTemplate<T extends Obj>(messages: T[], format: ToolCallFormat | null): T[] {
  if (format !== 'mistral') return messages;
  return messages.map((m) => {
    const out: Obj = { ...m };
    if (Array.isArray(m.tool_calls)) out.tool_calls = (m.tool_calls as Obj[]).map((c) => ({ ...c, id: mistralCallId(String(c.id)) }));
    if (typeof m.tool_call_id === 'string') out.tool_call_id = mistralCallId(m.tool_call_id);
    return out as T;
  });
}

// ---- the answer: the model's call syntax back into tool_calls ----

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** `call_` and 24 random letters and digits, as OpenAI's ids look. */
export function newCallId(): string {
  const bytes = randomBytes(24);
  let s = 'call_';
  for (const b of bytes) s += ID_CHARS[b % ID_CHARS.length];
  return s;
}

export type ToolDelta =
  | { kind: 'content'; text: string }
  | { kind: 'call'; index: number; id: string; name: string }
  | { kind: 'args'; index: number; text: string };

export interface ParsedCall {
  id: string;
  name: string;
  arguments: string;
}

// A small pattern language for the fixed parts of a call, matched against a growing buffer:
// 'partial' means the buffer ended before the pattern did (wait for more text).
type Item =
  | { k: 'lit'; s: string }
  | { k: 'opt'; s: string } //       an optional literal
  | { k: 'ws' }
  | { k: 'name' } //                 a JSON string without escapes: the function name
  | { k: 'one'; of: string[] } //    one of these literals
  | { k: 'peek'; c: string } //      the next character, not consumed
  | { k: 'maybe'; items: Item[] }; // an optional run of items

type Match = { r: 'ok'; end: number; name?: string } | { r: 'partial' } | { r: 'fail'; at: number };

const isWs = (c: string) => c === ' ' || c === '\n' || c === '\t' || c === '\r';

function matchItems(buf: string, pos: number, items: Item[]): Match {
  let name: string | undefined;
  for (const it of items) {
    switch (it.k) {
      case 'ws':
        while (pos < buf.length && isWs(buf[pos]!)) pos++;
        break;
      case 'lit':
      case 'opt': {
        const rest = buf.length - pos;
        const n = Math.min(rest, it.s.length);
        if (buf.startsWith(it.s.slice(0, n), pos)) {
          if (n < it.s.length) return { r: 'partial' };
          pos += n;
        } else if (it.k === 'lit') {
          let i = 0;
          while (i < n && buf[pos + i] === it.s[i]) i++;
          return { r: 'fail', at: pos + i };
        }
        break;
      }
      case 'one': {
        const rest = buf.slice(pos);
        const full = it.of.find((s) => rest.startsWith(s));
        if (full !== undefined) {
          pos += full.length;
          break;
        }
        if (it.of.some((s) => s.startsWith(rest))) return { r: 'partial' };
        return { r: 'fail', at: pos };
      }
      case 'name': {
        if (pos >= buf.length) return { r: 'partial' };
        if (buf[pos] !== '"') return { r: 'fail', at: pos };
        const close = buf.indexOf('"', pos + 1);
        const body = close < 0 ? buf.slice(pos + 1) : buf.slice(pos + 1, close);
        if (/[\\\n]/.test(body) || body.length > 256) return { r: 'fail', at: pos };
        if (close < 0) return { r: 'partial' };
        name = body;
        pos = close + 1;
        break;
      }
      case 'peek':
        if (pos >= buf.length) return { r: 'partial' };
        if (buf[pos] !== it.c) return { r: 'fail', at: pos };
        break;
      case 'maybe': {
        const m = matchItems(buf, pos, it.items);
        if (m.r === 'partial') return m;
        if (m.r === 'ok') pos = m.end;
        break;
      }
    }
  }
  return { r: 'ok', end: pos, name };
}

const lit = (s: string): Item => ({ k: 'lit', s });
const WS: Item = { k: 'ws' };
/** `{"name": "f", "arguments": ` up to the '{' that opens the arguments. */
const callHead = (keys: string[]): Item[] => [lit('{'), WS, lit('"name"'), WS, lit(':'), WS, { k: 'name' }, WS, lit(','), WS, { k: 'one', of: keys.map((k) => `"${k}"`) }, WS, lit(':'), WS, { k: 'peek', c: '{' }];
const ARGS_KEYS = ['arguments', 'parameters'];

const HEAD: Record<ToolCallFormat, Item[]> = {
  hermes: [WS, lit('<tool_call>'), WS, ...callHead(ARGS_KEYS)],
  llama3: [WS, { k: 'opt', s: '<|python_tag|>' }, WS, ...callHead(['parameters', 'arguments'])],
  mistral: [WS, { k: 'opt', s: '[TOOL_CALLS]' }, WS, lit('['), WS, ...callHead(ARGS_KEYS)],
};
/** After the arguments: what closes one call. */
const TAIL: Record<ToolCallFormat, Item[]> = {
  hermes: [WS, lit('}'), WS, lit('</tool_call>')],
  llama3: [WS, lit('}')],
  // Mistral's template renders the call's id back into the call: {"name", "arguments", "id"}
  mistral: [WS, { k: 'maybe', items: [lit(','), WS, lit('"id"'), WS, lit(':'), WS, { k: 'name' }] }, WS, lit('}')],
};
/** Between calls of llama3 (';') and mistral (','), leading to the next call's head. */
const NEXT: Partial<Record<ToolCallFormat, Item[]>> = {
  // (mistral's ']' that closes the list is matched first: CLOSE)
  llama3: [WS, lit(';'), WS, ...callHead(['parameters', 'arguments'])],
  mistral: [WS, lit(','), WS, ...callHead(ARGS_KEYS)],
};
/** What ends a list of calls (then the answer goes on as text). */
const CLOSE: Partial<Record<ToolCallFormat, Item[]>> = { mistral: [WS, lit(']')] };
/** Text that starts a call anywhere in the answer. */
const TRIGGER: Partial<Record<ToolCallFormat, string>> = { hermes: '<tool_call>', mistral: '[TOOL_CALLS]' };

type State = 'text' | 'head' | 'args' | 'tail' | 'next' | 'block';

/**
 * Calls from JSON the streaming path could not follow (other key orders, extra keys): an object
 * or a list of objects with a string `name` and an object `arguments` / `parameters` (or such an
 * object as a JSON string); null when it is not that.
 */
function callsFromJson(text: string): { name: string; arguments: string }[] | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) return null;
  const out: { name: string; arguments: string }[] = [];
  for (const it of items) {
    if (!isObj(it) || typeof it.name !== 'string' || it.name === '') return null;
    // both keys missing: a JSON answer that has a "name" (a person's, say), not a call
    let args = it.arguments ?? it.parameters;
    if (args === undefined) return null;
    if (typeof args === 'string') {
      try {
        args = JSON.parse(args);
      } catch {
        return null;
      }
    }
    if (!isObj(args)) return null;
    out.push({ name: it.name, arguments: JSON.stringify(args) });
  }
  return out;
}

/**
 * Incremental parser of one answer: push() text as it is generated, finish() at the end; both
 * return the deltas to send. `content` and `calls` hold the whole result.
 */
export class ToolCallParser {
  content = '';
  readonly calls: ParsedCall[] = [];
  private buf = '';
  private state: State = 'text';
  /** No content yet: formats whose call is the whole answer may still start one. */
  private atStart = true;
  // the arguments scanner (a JSON object: depth, inside a string, after a backslash)
  private depth = 0;
  private inStr = false;
  private esc = false;
  private readonly makeId: () => string;

  constructor(
    readonly format: ToolCallFormat,
    makeId: () => string = newCallId,
  ) {
    this.makeId = makeId;
  }

  push(text: string): ToolDelta[] {
    this.buf += text;
    const out: ToolDelta[] = [];
    while (this.step(out, false));
    return out;
  }

  finish(): ToolDelta[] {
    const out: ToolDelta[] = [];
    while (this.step(out, true));
    // What is left: text held back, an unfinished head (not a call after all), or the end of
    // an unfinished call (the model stopped inside it: keep what it wrote).
    if (this.state === 'text' || this.state === 'head' || this.state === 'block') this.emitContent(out, this.buf, true);
    this.buf = '';
    this.state = 'text';
    return out;
  }

  /** One step of the state machine; false when it needs more text. */
  private step(out: ToolDelta[], final: boolean): boolean {
    const f = this.format;
    switch (this.state) {
      case 'text': {
        if (this.buf === '') return false;
        if (this.atStart && f !== 'hermes') {
          const t = this.buf.trimStart();
          if (t === '') return false;
          const opens = f === 'llama3' ? t[0] === '{' || '<|python_tag|>'.startsWith(t.slice(0, 14)) || t.startsWith('<|python_tag|>') : t[0] === '[';
          if (opens) {
            this.state = 'head';
            return true;
          }
          this.atStart = false;
        }
        const trig = TRIGGER[f];
        if (!trig) return this.emitContent(out, this.takeAll(), final);
        const at = this.buf.indexOf(trig);
        if (at >= 0) {
          this.emitContent(out, this.take(at), final);
          this.state = 'head';
          return true;
        }
        // hold back the longest tail that could still grow into the trigger
        let keep = Math.min(trig.length - 1, this.buf.length);
        while (keep > 0 && !trig.startsWith(this.buf.slice(this.buf.length - keep))) keep--;
        if (final) keep = 0;
        this.emitContent(out, this.take(this.buf.length - keep), final);
        return false;
      }
      case 'head':
      case 'next': {
        const close = this.state === 'next' ? CLOSE[f] : undefined;
        if (close) {
          const c = matchItems(this.buf, 0, close);
          if (c.r === 'ok') {
            this.take(c.end);
            this.state = 'text';
            return true;
          }
        }
        const m = matchItems(this.buf, 0, this.state === 'head' ? HEAD[f] : NEXT[f]!);
        if (m.r === 'partial' && !final) return false;
        if (m.r === 'fail' && this.state === 'head' && this.opensBlock()) {
          // not the usual shape (another key order, extra keys): parse the whole block instead
          this.state = 'block';
          return true;
        }
        if (m.r !== 'ok') {
          // not a call: what was held is content, and parsing goes on after it
          const at = m.r === 'fail' ? m.at : this.buf.length;
          this.atStart = false;
          this.state = 'text';
          this.emitContent(out, this.take(Math.max(1, at)), final);
          return true;
        }
        this.take(m.end);
        const index = this.calls.length;
        const call = { id: this.makeId(), name: m.name!, arguments: '' };
        this.calls.push(call);
        out.push({ kind: 'call', index, id: call.id, name: call.name });
        this.atStart = false;
        this.depth = 0;
        this.inStr = false;
        this.esc = false;
        this.state = 'args';
        return true;
      }
      case 'args': {
        if (this.buf === '') return false;
        let i = 0;
        let done = false;
        for (; i < this.buf.length && !done; i++) {
          const c = this.buf[i]!;
          if (this.inStr) {
            if (this.esc) this.esc = false;
            else if (c === '\\') this.esc = true;
            else if (c === '"') this.inStr = false;
          } else if (c === '"') this.inStr = true;
          else if (c === '{' || c === '[') this.depth++;
          else if (c === '}' || c === ']') done = --this.depth === 0;
        }
        const piece = this.take(i);
        const call = this.calls[this.calls.length - 1]!;
        call.arguments += piece;
        out.push({ kind: 'args', index: this.calls.length - 1, text: piece });
        if (done) this.state = 'tail';
        return true;
      }
      case 'block': {
        // Hermes: up to </tool_call>; the others: the whole answer (their call is all of it)
        let whole: string;
        let inner: string;
        if (f === 'hermes') {
          const end = this.buf.indexOf('</tool_call>');
          if (end < 0 && !final) return false;
          whole = end < 0 ? this.takeAll() : this.take(end + '</tool_call>'.length);
          inner = end < 0 ? '' : whole.trim().slice('<tool_call>'.length, -'</tool_call>'.length);
        } else {
          if (!final) return false;
          whole = this.takeAll();
          inner = whole.trim().replace(/^(<\|python_tag\|>|\[TOOL_CALLS\])/, '');
        }
        this.state = 'text';
        this.atStart = false;
        const calls = inner === '' ? null : callsFromJson(inner);
        if (!calls) {
          this.emitContent(out, whole, final);
          return true;
        }
        for (const c of calls) {
          const index = this.calls.length;
          const call = { id: this.makeId(), name: c.name, arguments: c.arguments };
          this.calls.push(call);
          out.push({ kind: 'call', index, id: call.id, name: call.name }, { kind: 'args', index, text: call.arguments });
        }
        return true;
      }
      case 'tail': {
        const m = matchItems(this.buf, 0, TAIL[f]);
        if (m.r === 'partial') {
          if (!final) return false;
          this.buf = ''; // the model stopped inside the call's closing: nothing of it is content
          this.state = 'text';
          return false;
        }
        if (m.r === 'ok') this.take(m.end);
        // a call that does not close as it should still counts; what follows is content
        this.state = m.r === 'ok' && NEXT[f] ? 'next' : 'text';
        return true;
      }
    }
  }

  /** The held text opens a call block this format can parse whole (see 'block'). */
  private opensBlock(): boolean {
    const t = this.buf.trimStart();
    if (this.format === 'hermes') return t.startsWith('<tool_call>');
    if (this.format === 'llama3') return t.replace(/^<\|python_tag\|>\s*/, '').startsWith('{');
    return t.replace(/^\[TOOL_CALLS\]\s*/, '').startsWith('[');
  }

  private take(n: number): string {
    const s = this.buf.slice(0, n);
    this.buf = this.buf.slice(n);
    return s;
  }

  private takeAll(): string {
    return this.take(this.buf.length);
  }

  /**
   * Sends content, except trailing whitespace, which waits for the text after it: whitespace
   * before a call or between calls is never content; at the end it is, unless there were calls
   * and it is all that is left.
   */
  private emitContent(out: ToolDelta[], text: string, final: boolean): boolean {
    if (text === '') return false;
    if (!final) {
      const body = text.trimEnd();
      this.buf = text.slice(body.length) + this.buf;
      if (body === '') return false;
      text = body;
    } else if (text.trim() === '' && this.calls.length > 0) return true;
    this.content += text;
    this.atStart = false;
    const last = out[out.length - 1];
    if (last?.kind === 'content') last.text += text;
    else out.push({ kind: 'content', text });
    return true;
  }
}

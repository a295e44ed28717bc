// Chat templates: render a conversation into the prompt text a model was trained on.
//
// Templates are Jinja, shipped in tokenizer_config.json (or chat_template.jinja, or GGUF's
// tokenizer.chat_template). @huggingface/jinja parses and runs them with transformers' settings
// (trim_blocks, lstrip_blocks). We render with our own copy of the few globals transformers
// provides so that a template's raise_exception("...") is told apart from a broken template:
// the first is the caller's fault (e.g. a system message Gemma does not accept, roles that do
// not alternate), the second the model files'.

import { Environment, Interpreter, Template } from '@huggingface/jinja';

/** A chat turn. Extra fields (tool_calls, tool_call_id, name, ...) are passed to the template as they are. */
export interface ChatMessage {
  role: string;
  content: string;
  [extra: string]: unknown;
}

/** The tool-call syntaxes whose templates we recognise (see src/server/tools.ts). */
export type TemplateToolFormat = 'hermes' | 'llama3' | 'mistral';

export interface TemplateToolSupport {
  /** The template reads a `tools` variable (it can show the model its functions). */
  tools: boolean;
  /** The call syntax the template teaches (and renders back), when it is one we know. */
  format: TemplateToolFormat | null;
}

/**
 * What a template does with tools, from its text: `tools` must be referenced for tools to reach
 * the model at all; the call syntax is told by the markers each family's template writes
 * (Qwen2.5 / Hermes: <tool_call>; Mistral: [TOOL_CALLS]; Llama 3.1/3.2: <|python_tag|>, or the
 * ipython role with a "parameters" object).
 */
export function templateToolSupport(template: string | null | undefined): TemplateToolSupport {
  if (typeof template !== 'string' || !/\btools\b/.test(template)) return { tools: false, format: null };
  let format: TemplateToolFormat | null = null;
  if (template.includes('<tool_call>')) format = 'hermes';
  else if (template.includes('[TOOL_CALLS]')) format = 'mistral';
  else if (template.includes('<|python_tag|>') || (template.includes('ipython') && template.includes('parameters'))) format = 'llama3';
  return { tools: true, format };
}

export interface ChatTemplateOptions {
  /** End the prompt with the header of an assistant turn (what a server wants). */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** More template variables (tools, documents, date_string, enable_thinking, ...). */
  extra?: Record<string, unknown>;
}

export type ChatTemplateErrorKind =
  /** The template called raise_exception: it rejects this conversation. */
  | 'rejected'
  /** The template does not parse. */
  | 'syntax'
  /** The template failed while rendering (unknown filter, bad operand, ...). */
  | 'render';

export class ChatTemplateError extends Error {
  readonly kind: ChatTemplateErrorKind;
  constructor(kind: ChatTemplateErrorKind, message: string) {
    super(message);
    this.name = 'ChatTemplateError';
    this.kind = kind;
  }
}

// Thrown by our raise_exception, to be recognised after the interpreter unwinds.
class RaisedByTemplate extends Error {}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number): string => String(n).padStart(2, '0');
  return String(format).replace(/%[YmdbBHM%]/g, (t) => {
    switch (t) {
      case '%Y': return String(d.getFullYear());
      case '%m': return pad(d.getMonth() + 1);
      case '%d': return pad(d.getDate());
      case '%b': return MONTHS[d.getMonth()]!.slice(0, 3);
      case '%B': return MONTHS[d.getMonth()]!;
      case '%H': return pad(d.getHours());
      case '%M': return pad(d.getMinutes());
      default: return '%';
    }
  });
}

function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) {
    stop = start;
    start = 0;
  }
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
  else for (let i = start; i > stop; i += step) out.push(i);
  return out;
}

// The globals transformers' Jinja environment (and @huggingface/jinja's Template) provide.
const GLOBALS: Record<string, unknown> = {
  true: true,
  false: false,
  none: null,
  True: true,
  False: false,
  None: null,
  range,
  strftime_now: strftimeNow,
  raise_exception: (message: unknown): never => {
    throw new RaisedByTemplate(String(message));
  },
};

// Parsed templates by source: a server renders the same template for every request.
const cache = new Map<string, Template>();
const CACHE_MAX = 16;

function compile(template: string): Template {
  let t = cache.get(template);
  if (t) return t;
  try {
    t = new Template(template);
  } catch (e) {
    throw new ChatTemplateError('syntax', `chat template does not parse: ${(e as Error).message}`);
  }
  if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value!);
  cache.set(template, t);
  return t;
}

export function applyChatTemplate(template: string, messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
  if (typeof template !== 'string') throw new ChatTemplateError('syntax', 'chat template must be a string');
  if (!Array.isArray(messages)) throw new ChatTemplateError('render', 'messages must be a list');
  const program = compile(template).parsed;
  const vars: Record<string, unknown> = {
    ...opts.extra,
    messages,
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    bos_token: opts.bosToken ?? '',
    eos_token: opts.eosToken ?? '',
  };
  const env = new Environment();
  for (const [k, v] of Object.entries(GLOBALS)) env.set(k, v);
  for (const [k, v] of Object.entries(vars)) {
    if (Object.hasOwn(GLOBALS, k)) throw new ChatTemplateError('render', `chat template variable "${k}" is reserved`);
    env.set(k, v);
  }
  try {
    const out = new Interpreter(env).run(program);
    return String(out.value);
  } catch (e) {
    if (e instanceof RaisedByTemplate) throw new ChatTemplateError('rejected', `chat template rejected the conversation: ${e.message}`);
    throw new ChatTemplateError('render', `chat template failed: ${(e as Error).message}`);
  }
}

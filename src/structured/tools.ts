// Forced tool calls (tool_choice 'required' or a named function): a grammar for exactly a model
// family's tool-call syntax wrapped around arguments that fit each function's parameter schema.
//
// Each function's parameters compile with the JSON Schema compiler on their own (so a `$ref`
// inside them still points into that schema), and their rules are renamed with a per-tool
// prefix so the tools can share one grammar. The call syntax is what each family's chat
// template tells the model to write (and what src/server/tools.ts parses back):
//   hermes  (Qwen2.5, Hermes):  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
//                               one or more, separated by a newline
//   llama3  (Llama 3.1 / 3.2):  {"name": "f", "parameters": {...}}   (one call: the template
//                               renders only single calls back)
//   mistral (Mistral v0.3):     [{"name": "f", "arguments": {...}}, ...]
// Special tokens (<|python_tag|>, Mistral's [TOOL_CALLS]) are left out: a constraint never
// allows a special token, and the parser accepts the call with or without them.

import { E, type Expr } from './grammar.ts';
import { jsonSchemaRules, SchemaError } from './schema.ts';

export type ToolCallFormat = 'hermes' | 'llama3' | 'mistral';

export interface ToolCallSpecTool {
  name: string;
  /** JSON schema of the arguments object (absent: no arguments, `{}`). */
  parameters?: unknown;
}

export interface ToolCallSpec {
  type: 'tool_calls';
  format: ToolCallFormat;
  /** The functions a call may name (anyOf over them); one for a named tool_choice. */
  tools: ToolCallSpecTool[];
  /** More than one call allowed (ignored by formats that take a single call). */
  parallel: boolean;
}

export const TOOL_CALL_FORMATS: readonly ToolCallFormat[] = ['hermes', 'llama3', 'mistral'];

/** The parameters schema a function without one has: an empty object only. */
export const NO_PARAMETERS = { type: 'object', properties: {}, additionalProperties: false } as const;

function rename(e: Expr, prefix: string): Expr {
  switch (e.k) {
    case 'ref':
      return E.ref(prefix + e.name);
    case 'seq':
    case 'alt':
      return { k: e.k, items: e.items.map((x) => rename(x, prefix)) };
    case 'rep':
      return { ...e, e: rename(e.e, prefix) };
    default:
      return e;
  }
}

/** One function's arguments as rules under `prefix`; returns the reference to its root. */
export function argumentRules(parameters: unknown, prefix: string, into: Map<string, Expr>): Expr {
  const { rules, root } = jsonSchemaRules(parameters ?? NO_PARAMETERS);
  for (const [name, expr] of rules) into.set(prefix + name, rename(expr, prefix));
  return E.ref(prefix + root);
}

export function toolCallRules(spec: ToolCallSpec): { rules: Map<string, Expr>; root: string } {
  if (!Array.isArray(spec.tools) || spec.tools.length === 0) throw new SchemaError('tool_calls: at least one tool is needed');
  if (!TOOL_CALL_FORMATS.includes(spec.format)) throw new SchemaError(`tool_calls: unknown format ${JSON.stringify(spec.format)}`);
  const rules = new Map<string, Expr>();
  const argsKey = spec.format === 'llama3' ? 'parameters' : 'arguments';
  const calls = spec.tools.map((t, i) => {
    if (typeof t?.name !== 'string' || t.name === '') throw new SchemaError(`tool_calls: tool ${i} needs a name`);
    const args = argumentRules(t.parameters, `t${i}-`, rules);
    // JSON.stringify escapes the name exactly as a JSON string must be written.
    return E.seq(E.lit(`{"name": ${JSON.stringify(t.name)}, "${argsKey}": `), args, E.lit('}'));
  });
  rules.set('call', E.alt(...calls));
  const call = E.ref('call');
  let root: Expr;
  switch (spec.format) {
    case 'hermes': {
      const one = E.seq(E.lit('<tool_call>\n'), call, E.lit('\n</tool_call>'));
      root = spec.parallel ? E.seq(one, E.star(E.seq(E.lit('\n'), one))) : one;
      break;
    }
    case 'llama3':
      root = call;
      break;
    case 'mistral':
      root = E.seq(E.lit('['), call, spec.parallel ? E.star(E.seq(E.lit(', '), call)) : E.empty(), E.lit(']'));
      break;
  }
  rules.set('tool-calls', root);
  return { rules, root: 'tool-calls' };
}

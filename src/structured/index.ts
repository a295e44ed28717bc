// Structured output (issue 23): constrained decoding, engine-independent.
//
//   const vocab = vocabularyFor(tokenizer);                      // once per model (token bytes)
//   const c = constraintFor({ type: 'json_schema', schema }, vocab, [eosId]);  // cached; may throw ConstraintError
//   let st = c.start();                                            // a number: copy / roll back freely
//   c.applyMask(st, logits);   // or c.allowed(st): bitmask   -> sample `tok`
//   st = c.advance(st, tok);   // c.isComplete(st): only EOS may follow
//
// The vocabulary is each token's bytes (best: byte-level BPE pieces mapped back to bytes,
// SentencePiece '▁' as a space and <0xNN> as the byte) or its text as it appears inside a
// longer text (not a decode of the token alone, which may strip a leading space).
//
// Sources: JSON Schema (schema.ts), json_object, regex (regex.ts), choice list, GBNF (gbnf.ts),
// forced tool calls (tools.ts: a family's call syntax around each function's argument schema),
// all compiled to one grammar (grammar.ts) run over UTF-8 bytes by an interned pushdown
// matcher (matcher.ts); token masks over a trie of the vocabulary (tokens.ts). Bad constraints
// throw a ConstraintError subclass (SchemaError / GrammarError) with a message fit for a 400.

import { E, ConstraintError, lowerGrammar, type Expr, type Grammar } from './grammar.ts';
import { GrammarEngine, Matcher } from './matcher.ts';
import { jsonObjectRules, jsonSchemaRules } from './schema.ts';
import { regexToExpr } from './regex.ts';
import { parseGbnf } from './gbnf.ts';
import { TokenConstraint, TokenVocabulary } from './tokens.ts';
import { toolCallRules, type ToolCallSpec } from './tools.ts';

export { ConstraintError, GrammarError, type Grammar } from './grammar.ts';
export { SchemaError } from './schema.ts';
export { GrammarEngine, Matcher, DEAD } from './matcher.ts';
export { TokenConstraint, TokenVocabulary, type ConstraintState } from './tokens.ts';
export { tokenBytes, vocabularyFor, type TokenizerLike } from './vocab-bytes.ts';
export { argumentRules, NO_PARAMETERS, TOOL_CALL_FORMATS, type ToolCallFormat, type ToolCallSpec, type ToolCallSpecTool } from './tools.ts';

/** A structured-output constraint, as the server will receive it. */
export type ConstraintSpec =
  | { type: 'json_schema'; schema: unknown } //  response_format json_schema
  | { type: 'json_object' } //                  response_format json_object
  | { type: 'regex'; pattern: string } //       guided_regex (whole output matches)
  | { type: 'choice'; choices: string[] } //    guided_choice (exactly one of them)
  | { type: 'grammar'; gbnf: string } //         guided_grammar (llama.cpp GBNF, start rule root)
  | ToolCallSpec; //                              forced tool calls (tool_choice required / named)

/** Named rules + start rule of a spec: the source-level compile, before lowering. */
export interface SpecRules {
  rules: Map<string, Expr>;
  root: string;
}

/** Parse / translate a spec to grammar rules (uncached). Throws ConstraintError subclasses. */
export function specRules(spec: ConstraintSpec): SpecRules {
  switch (spec?.type) {
    case 'json_schema':
      return jsonSchemaRules(spec.schema);
    case 'json_object':
      return jsonObjectRules();
    case 'regex':
      if (typeof spec.pattern !== 'string') throw new ConstraintError('regex: pattern must be a string');
      return { rules: new Map([['root', regexToExpr(spec.pattern)]]), root: 'root' };
    case 'choice':
      if (!Array.isArray(spec.choices) || !spec.choices.length || spec.choices.some((c) => typeof c !== 'string')) {
        throw new ConstraintError('choice: choices must be a non-empty array of strings');
      }
      return { rules: new Map([['root', E.alt(...spec.choices.map((c) => E.lit(c)))]]), root: 'root' };
    case 'grammar':
      if (typeof spec.gbnf !== 'string') throw new ConstraintError('grammar: must be a string');
      return parseGbnf(spec.gbnf);
    case 'tool_calls':
      return toolCallRules(spec);
    default:
      throw new ConstraintError(`unknown constraint type ${JSON.stringify((spec as { type?: unknown })?.type)}`);
  }
}

/** Compile a spec to the flat grammar (uncached); `alphabet` restricts its characters. */
export function compileGrammar(spec: ConstraintSpec, alphabet?: number[]): Grammar {
  return guard(() => {
    const { rules, root } = specRules(spec);
    return lowerGrammar(rules, root, alphabet);
  });
}

/** Pathologically nested input (schemas, regex groups) must be a 400, not a crash. */
function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RangeError) throw new ConstraintError(`constraint too large or too deeply nested (${e.message})`);
    throw e;
  }
}

/** Canonical cache key of a spec (property order is significant: it orders the output). */
export function constraintKey(spec: ConstraintSpec): string {
  return JSON.stringify(spec);
}

/** Small LRU on a Map's insertion order. */
class Lru<K, V> {
  private m = new Map<K, V>();
  constructor(private readonly cap: number) {}
  get(k: K): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: K, v: V): void {
    this.m.set(k, v);
    if (this.m.size > this.cap) this.m.delete(this.m.keys().next().value!);
  }
  get size(): number {
    return this.m.size;
  }
}

// compile caches. Source-level rules per spec key; engines (grammar + interned states, shared
// by every request using them) per spec key, unrestricted for character matchers and per
// vocabulary (restricted to its alphabet) for token constraints, which also hold the masks.
const ruleCache = new Lru<string, SpecRules>(256);
const engines = new Lru<string, GrammarEngine>(256);
const perVocab = new WeakMap<TokenVocabulary, Lru<string, TokenConstraint>>();

function rulesFor(spec: ConstraintSpec): SpecRules {
  const key = constraintKey(spec);
  let r = ruleCache.get(key);
  if (!r) ruleCache.set(key, (r = guard(() => specRules(spec))));
  return r;
}

/** The character-level grammar engine for a spec, compiled once per distinct spec (LRU of 256). */
export function engineFor(spec: ConstraintSpec): GrammarEngine {
  const key = constraintKey(spec);
  let e = engines.get(key);
  if (!e) {
    const { rules, root } = rulesFor(spec);
    e = guard(() => new GrammarEngine(lowerGrammar(rules, root)));
    engines.set(key, e);
  }
  return e;
}

/** A character-level matcher for a spec (tests, validation, non-token use). */
export function matcherFor(spec: ConstraintSpec): Matcher {
  return new Matcher(engineFor(spec));
}

/**
 * The token constraint for a spec on a vocabulary, cached per (vocabulary, spec, EOS ids): its
 * grammar is restricted to the vocabulary's alphabet and its masks are reused across requests.
 */
export function constraintFor(spec: ConstraintSpec, vocab: TokenVocabulary, eosIds: readonly number[]): TokenConstraint {
  let m = perVocab.get(vocab);
  if (!m) perVocab.set(vocab, (m = new Lru(64)));
  const key = constraintKey(spec) + '\u0000' + eosIds.join(',');
  let c = m.get(key);
  if (!c) {
    const { rules, root } = rulesFor(spec);
    c = new TokenConstraint(guard(() => new GrammarEngine(lowerGrammar(rules, root, vocab.alphabet))), vocab, eosIds);
    m.set(key, c);
  }
  return c;
}

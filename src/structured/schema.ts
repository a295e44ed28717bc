// JSON Schema (the subset OpenAI's structured outputs accept, plus a little) to a grammar.
//
// Output shape, chosen so every document the grammar admits validates against the schema:
// - objects list their properties in schema order; required ones always, optional ones may be
//   left out; no other properties are ever produced (so additionalProperties true/false/absent
//   all validate). An object schema with no "properties" (and additionalProperties not false)
//   admits any JSON object.
// - whitespace: between tokens (after '{' '[' ',' ':' and before '}' ']' ',' ':') at most one
//   of: nothing, one space, or one newline followed by up to 24 spaces/tabs (pretty-printing
//   to depth ~12). Bounded, so a model can't loop forever on whitespace; no leading or trailing
//   whitespace around the document.
// - strings: any character except '"', '\\' and controls, or an escape; \u escapes of UTF-16
//   surrogates are excluded (so minLength/maxLength, counted in code points, hold exactly).
// - integers: exact minimum/maximum/exclusive* bounds (a digit-range grammar); without bounds
//   at most 15 digits (safe integers). numbers: no bounds -> up to 15 integer digits, 15
//   fraction digits and a 1-2 digit exponent. With bounds, only values the grammar can bound
//   exactly: integers in range, and I.ddd / -I.ddd (up to 6 fraction digits, |I| < 1e9) whose
//   whole unit interval lies in range; no exponent. Some valid numbers near a fractional
//   bound are therefore never produced; a range with no such value is a SchemaError.
// Anything outside the subset throws SchemaError naming the keyword and its JSON path.

import { E, ConstraintError, GrammarError, type Expr } from './grammar.ts';
import { parseRegexBranches } from './regex.ts';

export class SchemaError extends ConstraintError {
  override name = 'SchemaError';
}

export const WS_MAX_INDENT = 24;
const MAX_INT_DIGITS = 15;
const INT_LIMIT = 10 ** MAX_INT_DIGITS - 1; // 999_999_999_999_999 < 2^53
const FRAC_INT_LIMIT = 1e9 - 1; //             bounded numbers: integer part of I.ddd
const BOUNDED_FRAC_DIGITS = 6;

/** Keywords with no effect on generation. */
const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly', '$defs', 'definitions', 'strict']);
const SUPPORTED = new Set([
  ...ANNOTATIONS,
  'type', 'enum', 'const', 'anyOf', '$ref', 'nullable',
  'properties', 'required', 'additionalProperties',
  'items', 'minItems', 'maxItems',
  'pattern', 'minLength', 'maxLength', 'format',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
]);
const STRING_KW = ['pattern', 'minLength', 'maxLength', 'format'];
const NUMBER_KW = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
const OBJECT_KW = ['properties', 'required', 'additionalProperties'];
const ARRAY_KW = ['items', 'minItems', 'maxItems'];
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);

/** Regexes (ECMAScript) for the supported string formats, matching ajv-formats' full mode. */
const DATE = '\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))';
const TIME = '(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)';
const FORMATS: Record<string, string> = {
  date: DATE,
  time: TIME,
  'date-time': `${DATE}T${TIME}`,
  uuid: '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
  email: "[a-zA-Z0-9_%+-]+(?:\\.[a-zA-Z0-9_%+-]+)*@(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\\.)+[a-zA-Z]{2,24}",
  ipv4: '(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)',
};

// ---- shared JSON building blocks (named rules) ----

const HEX = E.chars([0x30, 0x39, 0x41, 0x46, 0x61, 0x66]);
/** One JSON string character as written (raw or escaped); never an escaped surrogate. */
function jsonCharRules(rules: Map<string, Expr>): void {
  const hexNoD = E.chars([0x30, 0x39, 0x41, 0x43, 0x45, 0x46, 0x61, 0x63, 0x65, 0x66]); // hex but not d/D
  rules.set(
    'json-char',
    E.alt(
      E.chars([0x20, 0x21, 0x23, 0x5b, 0x5d, 0x10ffff]), // not '"' (0x22), '\\' (0x5c), controls
      E.seq(
        E.lit('\\'),
        E.alt(E.set('"\\/bfnrt'), E.seq(E.lit('u'), E.alt(E.seq(hexNoD, HEX, HEX, HEX), E.seq(E.set('dD'), E.range('0', '7'), HEX, HEX)))),
      ),
    ),
  );
  rules.set('ws', E.alt(E.empty(), E.lit(' '), E.seq(E.lit('\n'), E.rep(E.set(' \t'), 0, WS_MAX_INDENT))));
}

/** Generic JSON value rules: json-value, json-object, json-array, json-string, json-number. */
function anyJsonRules(rules: Map<string, Expr>): void {
  if (rules.has('json-value')) return;
  const ws = E.ref('ws');
  if (!rules.has('json-string')) rules.set('json-string', E.seq(E.lit('"'), E.star(E.ref('json-char')), E.lit('"')));
  if (!rules.has('json-number')) rules.set('json-number', numberExpr(undefined));
  rules.set('json-member', E.seq(E.ref('json-string'), ws, E.lit(':'), ws, E.ref('json-value')));
  rules.set('json-object', E.alt(E.seq(E.lit('{'), ws, E.lit('}')), E.seq(E.lit('{'), ws, E.ref('json-member'), E.star(E.seq(ws, E.lit(','), ws, E.ref('json-member'))), ws, E.lit('}'))));
  rules.set('json-array', E.alt(E.seq(E.lit('['), ws, E.lit(']')), E.seq(E.lit('['), ws, E.ref('json-value'), E.star(E.seq(ws, E.lit(','), ws, E.ref('json-value'))), ws, E.lit(']'))));
  rules.set('json-value', E.alt(E.ref('json-object'), E.ref('json-array'), E.ref('json-string'), E.ref('json-number'), E.lit('true'), E.lit('false'), E.lit('null')));
}

// ---- numbers ----

/** Exact grammar for the decimal integers in [lo, hi], 0 <= lo <= hi (no leading zeros). */
export function uintRangeExpr(lo: number, hi: number): Expr {
  const alts: Expr[] = [];
  const dl = String(lo).length;
  const dh = String(hi).length;
  for (let d = dl; d <= dh; d++) {
    const a = Math.max(lo, d === 1 ? 0 : 10 ** (d - 1));
    const b = Math.min(hi, 10 ** d - 1);
    if (a <= b) alts.push(sameLength(String(a), String(b)));
  }
  return E.alt(...alts);
}
/** Digit strings of equal length in [a, b] (lexicographic = numeric). */
function sameLength(a: string, b: string): Expr {
  const n = a.length;
  if (n === 0) return E.empty();
  if (a === b) return E.lit(a);
  if (a[0] === b[0]) return E.seq(E.lit(a[0]), sameLength(a.slice(1), b.slice(1)));
  const digit = E.range('0', '9');
  const alts: Expr[] = [];
  const restA = a.slice(1);
  const restB = b.slice(1);
  const aZeros = /^0*$/.test(restA);
  const bNines = /^9*$/.test(restB);
  const lo0 = Number(a[0]);
  const hi0 = Number(b[0]);
  if (!aZeros) alts.push(E.seq(E.lit(a[0]), sameLength(restA, '9'.repeat(n - 1))));
  const midLo = aZeros ? lo0 : lo0 + 1;
  const midHi = bNines ? hi0 : hi0 - 1;
  if (midLo <= midHi) alts.push(E.seq(E.chars([0x30 + midLo, 0x30 + midHi]), E.rep(digit, n - 1, n - 1)));
  if (!bNines) alts.push(E.seq(E.lit(b[0]), sameLength('0'.repeat(n - 1), restB)));
  return E.alt(...alts);
}
/** Integers in [lo, hi] (either sign). Null when empty. */
function intRangeExpr(lo: number, hi: number): Expr | null {
  if (lo > hi) return null;
  const alts: Expr[] = [];
  if (lo < 0) alts.push(E.seq(E.lit('-'), uintRangeExpr(Math.max(1, -hi), -lo)));
  if (hi >= 0) alts.push(uintRangeExpr(Math.max(0, lo), hi));
  return alts.length ? E.alt(...alts) : null;
}

interface Bounds {
  min?: number;
  max?: number;
  exMin?: number;
  exMax?: number;
}

const unbounded = (b: Bounds) => b.min === undefined && b.max === undefined && b.exMin === undefined && b.exMax === undefined;

/** The integers the bounds allow, clipped to the grammar's digit limit: [lo, hi]. */
function intBounds(b: Bounds): [number, number] {
  let lo = -INT_LIMIT;
  let hi = INT_LIMIT;
  if (b.min !== undefined) lo = Math.max(lo, Math.ceil(b.min));
  if (b.exMin !== undefined) lo = Math.max(lo, Math.floor(b.exMin) + 1);
  if (b.max !== undefined) hi = Math.min(hi, Math.floor(b.max));
  if (b.exMax !== undefined) hi = Math.min(hi, Math.ceil(b.exMax) - 1);
  return [lo, hi];
}

function integerExpr(b: Bounds, path: string): Expr {
  const [lo, hi] = intBounds(b);
  const e = intRangeExpr(lo, hi);
  if (!e) {
    const beyond = [b.min, b.exMin].some((v) => v !== undefined && v >= INT_LIMIT) || [b.max, b.exMax].some((v) => v !== undefined && v <= -INT_LIMIT);
    throw new SchemaError(beyond ? `integer bounds at ${path} exclude every integer of at most ${MAX_INT_DIGITS} digits (the grammar's limit)` : `no integer satisfies the bounds at ${path}`);
  }
  return e;
}

function numberExpr(b: Bounds | undefined, path = '#'): Expr {
  const digit = E.range('0', '9');
  if (!b || unbounded(b)) {
    const intPart = E.alt(E.lit('0'), E.seq(E.range('1', '9'), E.rep(digit, 0, MAX_INT_DIGITS - 1)));
    return E.seq(E.opt(E.lit('-')), intPart, E.opt(E.seq(E.lit('.'), E.rep(digit, 1, 15))), E.opt(E.seq(E.set('eE'), E.opt(E.set('+-')), E.rep(digit, 1, 2))));
  }
  const alts: Expr[] = [];
  // exact integers in range
  const [lo, hi] = intBounds(b);
  const ints = intRangeExpr(lo, hi);
  if (ints) alts.push(ints);
  const frac = E.seq(E.lit('.'), E.rep(digit, 1, BOUNDED_FRAC_DIGITS));
  // I.ddd in [I, I+1): needs I allowed and I+1 <= max (or <= exMax)
  let a = 0;
  if (b.min !== undefined) a = Math.max(a, Math.ceil(b.min));
  if (b.exMin !== undefined) a = Math.max(a, Math.floor(b.exMin) + 1);
  let bb = FRAC_INT_LIMIT;
  if (b.max !== undefined) bb = Math.min(bb, Math.floor(b.max) - 1);
  if (b.exMax !== undefined) bb = Math.min(bb, Math.floor(b.exMax) - 1);
  if (a <= bb) alts.push(E.seq(uintRangeExpr(a, bb), frac));
  // -M.ddd in (-(M+1), -M]: needs -M allowed and -(M+1) >= min (or >= exMin)
  let c = 0;
  if (b.max !== undefined) c = Math.max(c, Math.ceil(-b.max));
  if (b.exMax !== undefined) c = Math.max(c, Math.floor(-b.exMax) + 1);
  let d = FRAC_INT_LIMIT;
  if (b.min !== undefined) d = Math.min(d, Math.floor(-b.min) - 1);
  if (b.exMin !== undefined) d = Math.min(d, Math.floor(-b.exMin) - 1);
  if (c <= d) alts.push(E.seq(E.lit('-'), uintRangeExpr(c, d), frac));
  if (!alts.length) throw new SchemaError(`the number range at ${path} contains no integer and no whole unit interval, which this grammar cannot express`);
  return E.alt(...alts);
}

// ---- string content from a regex: decoded characters, written JSON-escaped ----

const SHORT_ESCAPES: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
/** A class of decoded characters as JSON string source text. */
function jsonEscapedChars(ranges: number[]): Expr {
  const safe: number[] = [];
  const alts: Expr[] = [];
  for (let i = 0; i < ranges.length; i += 2) {
    const [lo, hi] = [ranges[i], ranges[i + 1]];
    // split around controls (< 0x20), '"' and '\\'
    for (let c = lo; c <= Math.min(hi, 0x22); c++) {
      if (c < 0x20 || c === 0x22) alts.push(E.lit(SHORT_ESCAPES[c] ?? `\\u${c.toString(16).padStart(4, '0')}`));
    }
    if (lo <= 0x5c && hi >= 0x5c) alts.push(E.lit('\\\\'));
    const pieces = [
      [Math.max(lo, 0x20), Math.min(hi, 0x21)],
      [Math.max(lo, 0x23), Math.min(hi, 0x5b)],
      [Math.max(lo, 0x5d), hi],
    ];
    for (const [a, b] of pieces) if (a <= b) safe.push(a, b);
  }
  if (safe.length) alts.unshift(E.chars(safe));
  return E.alt(...alts);
}
function jsonEscapeExpr(e: Expr): Expr {
  switch (e.k) {
    case 'chars':
      return jsonEscapedChars(e.ranges);
    case 'lit':
      return E.seq(...[...e.s].map((ch) => jsonEscapedChars([ch.codePointAt(0)!, ch.codePointAt(0)!])));
    case 'seq':
      return { k: 'seq', items: e.items.map(jsonEscapeExpr) };
    case 'alt':
      return { k: 'alt', items: e.items.map(jsonEscapeExpr) };
    case 'rep':
      return { ...e, e: jsonEscapeExpr(e.e) };
    case 'ref':
      return e;
  }
}

// ---- the compiler ----

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = { [k: string]: unknown };

const isObj = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);
const ptr = (path: string, ...keys: (string | number)[]) => path + keys.map((k) => '/' + String(k).replace(/~/g, '~0').replace(/\//g, '~1')).join('');

export interface CompiledRules {
  rules: Map<string, Expr>;
  root: string;
}

/** `json_object` response format: any JSON object. */
export function jsonObjectRules(): CompiledRules {
  const rules = new Map<string, Expr>();
  jsonCharRules(rules);
  anyJsonRules(rules);
  rules.set('root', E.ref('json-object'));
  return { rules, root: 'root' };
}

export function jsonSchemaRules(schema: unknown): CompiledRules {
  return new SchemaCompiler(schema).compile();
}

class SchemaCompiler {
  private rules = new Map<string, Expr>();
  private refRules = new Map<string, string>(); // JSON pointer -> rule name
  private patterns = 0;
  constructor(private readonly root: unknown) {}

  compile(): CompiledRules {
    jsonCharRules(this.rules);
    const body = this.schema(this.root, '#');
    this.rules.set('root', body);
    return { rules: this.rules, root: 'root' };
  }

  /**
   * A named rule shared by every use (same grammar positions, so the masks' context-independent
   * cache is shared across properties of the same shape).
   */
  private shared(name: string, make: () => Expr): Expr {
    if (!this.rules.has(name)) this.rules.set(name, make());
    return E.ref(name);
  }

  private err(msg: string): never {
    throw new SchemaError(msg);
  }

  private schema(s: unknown, path: string): Expr {
    if (s === true) {
      anyJsonRules(this.rules);
      return E.ref('json-value');
    }
    if (!isObj(s)) this.err(`schema at ${path} must be an object`);
    for (const k of Object.keys(s)) if (!SUPPORTED.has(k)) this.err(`unsupported keyword "${k}" at ${path}`);
    const has = (k: string) => s[k] !== undefined;
    const constraints = Object.keys(s).filter((k) => !ANNOTATIONS.has(k));

    if (has('nullable') && s.nullable !== false) {
      if (s.nullable !== true) this.err(`"nullable" must be a boolean at ${path}`);
      const { nullable: _n, ...rest } = s;
      return E.alt(this.schema(rest, path), E.lit('null'));
    }
    if (has('$ref')) {
      const other = constraints.filter((k) => k !== '$ref');
      if (other.length) this.err(`unsupported keyword "${other[0]}" alongside "$ref" at ${path}`);
      return this.ref(s.$ref, ptr(path, '$ref'));
    }
    if (has('anyOf')) {
      const other = constraints.filter((k) => k !== 'anyOf');
      if (other.length) this.err(`unsupported keyword "${other[0]}" alongside "anyOf" at ${path}`);
      if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) this.err(`"anyOf" must be a non-empty array at ${path}`);
      return E.alt(...s.anyOf.map((sub, i) => this.schema(sub, ptr(path, 'anyOf', i))));
    }

    let types: string[];
    if (has('type')) {
      types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      if (!types.length) this.err(`"type" must not be empty at ${path}`);
      for (const t of types) if (typeof t !== 'string' || !TYPES.has(t)) this.err(`unknown type ${JSON.stringify(t)} at ${ptr(path, 'type')}`);
    } else types = [];

    if (has('enum') || has('const')) {
      const other = constraints.filter((k) => k !== 'enum' && k !== 'const' && k !== 'type');
      if (other.length) this.err(`unsupported keyword "${other[0]}" alongside "${has('enum') ? 'enum' : 'const'}" at ${path}`);
      let values: unknown[];
      if (has('enum')) {
        if (!Array.isArray(s.enum) || !s.enum.length) this.err(`"enum" must be a non-empty array at ${path}`);
        values = s.enum;
        if (has('const')) values = values.filter((v) => JSON.stringify(v) === JSON.stringify(s.const));
      } else values = [s.const];
      if (types.length) values = values.filter((v) => types.some((t) => jsonTypeOk(v, t)));
      if (!values.length) this.err(`no "enum"/"const" value satisfies the schema at ${path}`);
      return E.alt(...values.map((v) => E.lit(JSON.stringify(v as Json))));
    }

    if (!types.length) {
      // infer from keywords; none at all -> any JSON value
      const inferred = new Set<string>();
      for (const k of constraints) {
        if (STRING_KW.includes(k)) inferred.add('string');
        else if (NUMBER_KW.includes(k)) inferred.add('number');
        else if (OBJECT_KW.includes(k)) inferred.add('object');
        else if (ARRAY_KW.includes(k)) inferred.add('array');
      }
      if (inferred.size > 1) this.err(`schema at ${path} has no "type" and keywords of several types`);
      if (!inferred.size) {
        anyJsonRules(this.rules);
        return E.ref('json-value');
      }
      types = [...inferred];
    }
    return E.alt(...[...new Set(types)].map((t) => this.typed(s, t, path)));
  }

  private typed(s: Schema, t: string, path: string): Expr {
    switch (t) {
      case 'null':
        return E.lit('null');
      case 'boolean':
        return E.alt(E.lit('true'), E.lit('false'));
      case 'integer': {
        const b = this.bounds(s, path);
        if (unbounded(b)) return this.shared('json-integer', () => integerExpr(b, path));
        return integerExpr(b, path);
      }
      case 'number': {
        const b = this.bounds(s, path);
        if (unbounded(b)) return this.shared('json-number', () => numberExpr(undefined));
        return numberExpr(b, path);
      }
      case 'string':
        return this.string(s, path);
      case 'array':
        return this.array(s, path);
      default:
        return this.object(s, path);
    }
  }

  private bounds(s: Schema, path: string): Bounds {
    const num = (k: string): number | undefined => {
      const v = s[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isFinite(v)) this.err(`"${k}" must be a finite number at ${path}`);
      return v;
    };
    return { min: num('minimum'), max: num('maximum'), exMin: num('exclusiveMinimum'), exMax: num('exclusiveMaximum') };
  }

  private count(s: Schema, k: string, path: string): number | undefined {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.err(`"${k}" must be a non-negative integer at ${path}`);
    return v;
  }

  private string(s: Schema, path: string): Expr {
    const minLen = this.count(s, 'minLength', path) ?? 0;
    const maxLen = this.count(s, 'maxLength', path) ?? Infinity;
    if (maxLen < minLen) this.err(`"maxLength" < "minLength" at ${path}`);
    const q = E.lit('"');
    if (s.pattern !== undefined || s.format !== undefined) {
      if (s.pattern !== undefined && s.format !== undefined) this.err(`unsupported keyword "format" alongside "pattern" at ${path}`);
      if (s.minLength !== undefined || s.maxLength !== undefined) this.err(`unsupported keyword "${s.minLength !== undefined ? 'minLength' : 'maxLength'}" alongside "${s.pattern !== undefined ? 'pattern' : 'format'}" at ${path}`);
      let branches;
      if (s.pattern !== undefined) {
        if (typeof s.pattern !== 'string') this.err(`"pattern" must be a string at ${path}`);
        try {
          branches = parseRegexBranches(s.pattern);
        } catch (e) {
          if (e instanceof GrammarError) this.err(`${e.message} at ${ptr(path, 'pattern')}`);
          throw e;
        }
      } else {
        const re = FORMATS[s.format as string];
        if (re === undefined) this.err(`unsupported format ${JSON.stringify(s.format)} at ${ptr(path, 'format')}`);
        branches = parseRegexBranches(re).map((b) => ({ ...b, anchoredStart: true, anchoredEnd: true }));
      }
      // JSON Schema patterns search: an unanchored side may have any text around the match.
      const any = E.star(E.chars([0, 0x10ffff]));
      const body = E.alt(...branches.map((b) => E.seq(...(b.anchoredStart ? [] : [any]), b.expr, ...(b.anchoredEnd ? [] : [any]))));
      const name = `pattern-${this.patterns++}`;
      this.rules.set(name, jsonEscapeExpr(body));
      return E.seq(q, E.ref(name), q);
    }
    if (minLen === 0 && maxLen === Infinity) return this.shared('json-string', () => E.seq(q, E.star(E.ref('json-char')), q));
    return E.seq(q, E.rep(E.ref('json-char'), minLen, maxLen), q);
  }

  private array(s: Schema, path: string): Expr {
    const minItems = this.count(s, 'minItems', path) ?? 0;
    const maxItems = this.count(s, 'maxItems', path) ?? Infinity;
    if (maxItems < minItems) this.err(`"maxItems" < "minItems" at ${path}`);
    let item: Expr;
    if (s.items === undefined) {
      anyJsonRules(this.rules);
      item = E.ref('json-value');
    } else if (Array.isArray(s.items)) this.err(`unsupported keyword "items" (array form) at ${path}`);
    else item = this.schema(s.items, ptr(path, 'items'));
    const ws = E.ref('ws');
    const empty = E.seq(E.lit('['), ws, E.lit(']'));
    if (maxItems === 0) return empty;
    const tail = E.seq(ws, E.lit(','), ws, item);
    const some = E.seq(E.lit('['), ws, item, E.rep(tail, Math.max(0, minItems - 1), maxItems - 1), ws, E.lit(']'));
    return minItems === 0 ? E.alt(empty, some) : some;
  }

  private object(s: Schema, path: string): Expr {
    const ws = E.ref('ws');
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== 'boolean') this.err(`unsupported keyword "additionalProperties" (a schema; only true/false) at ${path}`);
    const props = s.properties;
    if (props !== undefined && !isObj(props)) this.err(`"properties" must be an object at ${path}`);
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) this.err(`"required" must be an array of strings at ${path}`);
    const names = props ? Object.keys(props) : [];
    for (const r of required as string[]) {
      if (!names.includes(r) && (ap === false || names.length)) this.err(`required property ${JSON.stringify(r)} is not in "properties" at ${path}`);
    }
    if (!names.length) {
      if (ap === false) return E.seq(E.lit('{'), ws, E.lit('}'));
      anyJsonRules(this.rules);
      if ((required as string[]).length) this.err(`unsupported: "required" without "properties" at ${path}`);
      return E.ref('json-object');
    }
    // P_i: one "key": value member; Rest_i: what may follow once a member was written.
    const member = names.map((n) => E.seq(E.lit(JSON.stringify(n)), ws, E.lit(':'), ws, this.schema(props![n], ptr(path, 'properties', n))));
    const isReq = names.map((n) => (required as string[]).includes(n));
    const N = names.length;
    const restRule: Expr[] = new Array(N + 1);
    restRule[N] = E.empty();
    for (let i = N - 1; i >= 0; i--) {
      const next = E.seq(ws, E.lit(','), ws, member[i]);
      restRule[i] = isReq[i] ? E.seq(next, restRule[i + 1]) : E.seq(E.opt(next), restRule[i + 1]);
    }
    // first member written is P_j: all before it optional
    const firsts: Expr[] = [];
    for (let j = 0; j < N; j++) {
      firsts.push(E.seq(member[j], restRule[j + 1]));
      if (isReq[j]) break;
    }
    const nonEmpty = E.seq(E.lit('{'), ws, E.alt(...firsts), ws, E.lit('}'));
    return isReq.some(Boolean) ? nonEmpty : E.alt(E.seq(E.lit('{'), ws, E.lit('}')), nonEmpty);
  }

  /** `$ref` to a JSON pointer in this document ("#", "#/$defs/x", ...): one rule per target. */
  private ref(ref: unknown, path: string): Expr {
    if (typeof ref !== 'string' || !ref.startsWith('#')) this.err(`unsupported "$ref" ${JSON.stringify(ref)} at ${path} (only local "#/..." references)`);
    let name = this.refRules.get(ref);
    if (name) return E.ref(name);
    let target: unknown = this.root;
    const parts = ref === '#' ? [] : ref.slice(1).split('/').slice(1);
    if (ref !== '#' && !ref.startsWith('#/')) this.err(`unsupported "$ref" ${JSON.stringify(ref)} at ${path}`);
    for (const raw of parts) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      if (!isObj(target) && !Array.isArray(target)) this.err(`"$ref" ${JSON.stringify(ref)} does not resolve at ${path}`);
      target = (target as Record<string, unknown>)[key];
      if (target === undefined) this.err(`"$ref" ${JSON.stringify(ref)} does not resolve at ${path}`);
    }
    name = `ref:${ref}`;
    this.refRules.set(ref, name);
    this.rules.set(name, E.empty()); // placeholder so recursion finds the name
    this.rules.set(name, this.schema(target, ref));
    return E.ref(name);
  }
}

function jsonTypeOk(v: unknown, t: string): boolean {
  switch (t) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'string':
      return typeof v === 'string';
    case 'array':
      return Array.isArray(v);
    default:
      return isObj(v);
  }
}

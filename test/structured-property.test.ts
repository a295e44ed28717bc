// Property test for constrained decoding: random schemas (seeded), random regexes, choice lists
// and a GBNF grammar; for each, random walks that only ever pick an *allowed* token from a small
// synthetic vocabulary. Every mask must be non-empty until the document is complete (and, every
// other step, equal to running each token through the character matcher), and every
// finished output must be valid: JSON.parse + ajv against its schema, a full RegExp match, one of
// the choices. Past a length cap the walk steers to the end by picking the token with the
// fewest characters left to a complete document (minCompletion), so every walk finishes.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { constraintFor, TokenVocabulary, type ConstraintSpec, type TokenConstraint } from '../src/structured/index.ts';

// CJS default-export interop (under tsx the default import is the module object)
type AjvClass = typeof Ajv2020Module.default;
const Ajv2020: AjvClass = (Ajv2020Module as unknown as { default: AjvClass }).default ?? (Ajv2020Module as unknown as AjvClass);
type AddFormats = typeof addFormatsModule.default;
const addFormats: AddFormats = (addFormatsModule as unknown as { default: AddFormats }).default ?? (addFormatsModule as unknown as AddFormats);

/** mulberry32: small seeded generator. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: ArrayLike<T>): T => xs[Math.floor(next() * xs.length)],
    chance: (p: number) => next() < p,
  };
}
type Rng = ReturnType<typeof rng>;

// Vocabulary: EOS, every printable ASCII character, whitespace, multi-character pieces, and
// tokens that must never be allowed ('' and partial UTF-8).
const PIECES = ['{"', '":', '": ', '", "', '"}', ', "', ',\n  "', 'true', 'false', 'null', 'nu', 'tr', '12', '345', '0.', '-1', '2024-', '-01', 'T1', ':00', 'Z', '.com', 'é', '日本', '\\n', '\\u00', '\\"', 'ab', 'abc', 'foo', 'bar', '  ', '\n', '\n  ', '\t', '[{', '}]', '},', '[]', '{}', '"a', 'name', 'id'];
// Then byte tokens 0x80..0xFF (as a byte-level BPE has): any character can be spelled, and a
// token may end or start inside a multi-byte character.
const TEXTS = ['</s>', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), ...PIECES, '', '\ufffd', 'x\ufffd'];
const TOKENS: (string | Uint8Array)[] = [...TEXTS, ...Array.from({ length: 128 }, (_, i) => Uint8Array.of(0x80 + i))];
const EOS = 0;
const VOCAB = new TokenVocabulary(TOKENS);
const BAD = new Set([TEXTS.indexOf(''), TEXTS.indexOf('\ufffd'), TEXTS.indexOf('x\ufffd')]);
const BYTES = TOKENS.map((t) => (typeof t === 'string' ? new TextEncoder().encode(t) : t));
const strict = new TextDecoder('utf-8', { fatal: true });
const loose = new TextDecoder();

/** One constrained random walk; returns the text. Asserts masks are never empty and never bad. */
function walk(c: TokenConstraint, r: Rng, cap: number): string {
  let st = c.start();
  const bytes: number[] = [];
  const text = () => loose.decode(Uint8Array.from(bytes));
  const finish = () => {
    try {
      return strict.decode(Uint8Array.from(bytes));
    } catch {
      assert.fail(`output is not valid UTF-8: ${JSON.stringify(text())}`);
    }
  };
  for (let step = 0; step < 5000; step++) {
    const ids = c.allowedIds(st);
    assert.ok(ids.length > 0, `empty mask after ${JSON.stringify(text())}`);
    for (const id of ids) assert.ok(!BAD.has(id), `bad token ${id} allowed after ${JSON.stringify(text())}`);
    if (step % 2 === 0) {
      // the trie walk with its context-independent cache = running every token through the matcher
      const brute: number[] = [];
      for (let id = 1; id < TOKENS.length; id++) if (!BAD.has(id) && c.advance(st, id) !== 0) brute.push(id);
      if (c.canTerminate(st)) brute.unshift(EOS);
      assert.deepEqual([...ids], brute, `mask after ${JSON.stringify(text())}`);
    }
    if (c.isComplete(st)) {
      assert.deepEqual([...ids], [EOS], 'complete: only EOS');
      return finish();
    }
    let id: number;
    if (bytes.length < cap) {
      id = ids.includes(EOS) && r.chance(0.3) ? EOS : r.pick(ids);
    } else {
      let best = Infinity;
      const bests: number[] = [];
      for (const t of ids) {
        const d = t === EOS ? 0 : c.engine.minCompletion(c.advance(st, t));
        if (d < best) {
          best = d;
          bests.length = 0;
        }
        if (d === best) bests.push(t);
      }
      id = r.pick(bests);
    }
    if (id === EOS) {
      assert.ok(c.canTerminate(st));
      return finish();
    }
    const next = c.advance(st, id);
    assert.ok(!c.isDead(next), `allowed token ${id} led to a dead state after ${JSON.stringify(text())}`);
    bytes.push(...BYTES[id]);
    st = next;
  }
  assert.fail(`walk did not finish: ${JSON.stringify(text().slice(0, 200))}`);
}

// ---- random schemas within the supported subset ----

const KEYS = ['a', 'name', 'id', 'b c', 'quote"d', 'é', 'x_1', 'tags', 'value'];
const PATTERNS = ['^[a-z]{2,5}$', '^\\d{3}-\\d{4}$', 'ab', '^(foo|bar)+$', '^[A-Z][a-z]*$', 'x"y\\\\', '^\\w+@\\w+\\.com$', '^(?:[0-9a-f]{2})+$'];
const FORMATS = ['date', 'date-time', 'time', 'uuid', 'email', 'ipv4'];
const ENUM_VALUES: unknown[] = ['x', 'yes', 'a"b', '', 1, -2.5, 0, true, false, null, { k: [1, 'z'] }, [1, 2]];

function genLeaf(r: Rng): Record<string, unknown> {
  switch (r.int(0, 11)) {
    case 0:
      return { type: 'string' };
    case 1: {
      const min = r.int(0, 4);
      return r.chance(0.5) ? { type: 'string', minLength: min, maxLength: min + r.int(0, 6) } : { type: 'string', maxLength: r.int(0, 3) };
    }
    case 2:
      return { type: 'string', enum: Array.from({ length: r.int(1, 4) }, () => r.pick(['red', 'green', 'blue', 'a b', 'é', 'x"y'])) };
    case 3:
      return { type: 'string', pattern: r.pick(PATTERNS) };
    case 4:
      return { type: 'string', format: r.pick(FORMATS) };
    case 5: {
      const s: Record<string, unknown> = { type: 'integer' };
      const lo = r.int(-1000, 1000);
      if (r.chance(0.6)) s[r.chance(0.7) ? 'minimum' : 'exclusiveMinimum'] = lo;
      if (r.chance(0.6)) s[r.chance(0.7) ? 'maximum' : 'exclusiveMaximum'] = lo + r.int(2, 5000);
      return s;
    }
    case 6: {
      const s: Record<string, unknown> = { type: 'number' };
      const lo = r.int(-100, 100) + r.pick([0, 0.5, 0.25]);
      if (r.chance(0.6)) s[r.chance(0.7) ? 'minimum' : 'exclusiveMinimum'] = lo;
      if (r.chance(0.6)) s[r.chance(0.7) ? 'maximum' : 'exclusiveMaximum'] = lo + r.int(2, 500) + r.pick([0, 0.75]);
      return s;
    }
    case 7:
      return { type: 'boolean' };
    case 8:
      return { type: 'null' };
    case 9:
      return { enum: Array.from({ length: r.int(1, 4) }, () => r.pick(ENUM_VALUES)) };
    case 10:
      return { const: r.pick(ENUM_VALUES) };
    default:
      return { type: [r.pick(['string', 'integer', 'boolean']), 'null'] };
  }
}

function genSchema(r: Rng, depth: number): Record<string, unknown> {
  if (depth <= 0 || r.chance(0.35)) return genLeaf(r);
  switch (r.int(0, 3)) {
    case 0:
    case 1: {
      const keys = [...new Set(Array.from({ length: r.int(1, 4) }, () => r.pick(KEYS)))];
      const properties: Record<string, unknown> = {};
      for (const k of keys) properties[k] = genSchema(r, depth - 1);
      return { type: 'object', properties, required: keys.filter(() => r.chance(0.5)), additionalProperties: false };
    }
    case 2: {
      const s: Record<string, unknown> = { type: 'array', items: genSchema(r, depth - 1) };
      if (r.chance(0.5)) s.minItems = r.int(0, 2);
      if (r.chance(0.5)) s.maxItems = ((s.minItems as number) ?? 0) + r.int(0, 3);
      return s;
    }
    default:
      return { anyOf: [genSchema(r, depth - 1), genSchema(r, depth - 1)] };
  }
}

function genTopSchema(r: Rng): Record<string, unknown> {
  if (r.chance(0.1)) {
    // recursion through $defs
    return {
      $defs: {
        node: {
          type: 'object',
          properties: { v: genLeaf(r), next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } },
          required: ['v', 'next'],
          additionalProperties: false,
        },
      },
      $ref: '#/$defs/node',
    };
  }
  return genSchema(r, 3);
}

describe('structured: property test (random constraints, random allowed-token walks)', () => {
  it('JSON Schema: 300 random schemas, every output parses and validates with ajv', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: false });
    addFormats(ajv);
    const r = rng(23);
    let outputs = 0;
    for (let n = 0; n < 300; n++) {
      const schema = genTopSchema(r);
      const c = constraintFor({ type: 'json_schema', schema }, VOCAB, [EOS]);
      const validate = ajv.compile(schema);
      for (let w = 0; w < 3; w++) {
        const out = walk(c, r, r.pick([20, 80, 200]));
        let value: unknown;
        try {
          value = JSON.parse(out);
        } catch (e) {
          assert.fail(`not JSON for schema ${JSON.stringify(schema)}: ${JSON.stringify(out)} (${(e as Error).message})`);
        }
        assert.ok(validate(value), `invalid for schema ${JSON.stringify(schema)}: ${JSON.stringify(out)}: ${JSON.stringify(validate.errors)}`);
        outputs++;
      }
    }
    assert.equal(outputs, 900);
  });

  it('json_object: outputs are JSON objects', () => {
    const r = rng(7);
    const c = constraintFor({ type: 'json_object' }, VOCAB, [EOS]);
    for (let w = 0; w < 100; w++) {
      const v = JSON.parse(walk(c, r, r.pick([10, 60, 150])));
      assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
    }
  });

  it('regex: outputs fully match the RegExp', () => {
    const res = [
      '[a-z]+', '\\d{3}-\\d{2,4}', '(foo|bar)*baz', '[^"\\\\]{0,5}x', '(?:ab|a)+b?', 'a.{2,3}c', '\\w+@\\w+\\.(com|org)', '(-?\\d+(\\.\\d+)?,)*\\d', '[A-F0-9]{8}', 'x*', 'é|日本|ab', '.{3}',
      '\\s?\\S+', '(a|b|c){2,}[xyz]?', '[\\da-f]+(?:\\.[\\da-f]+)?', '(\\[[0-9]+\\])+',
    ];
    const r = rng(11);
    for (const re of res) {
      const full = new RegExp(`^(?:${re})$`, 'u'); // code points, as the grammar counts them
      const c = constraintFor({ type: 'regex', pattern: re }, VOCAB, [EOS]);
      for (let w = 0; w < 30; w++) {
        const out = walk(c, r, r.pick([5, 20, 60]));
        assert.ok(full.test(out), `/${re}/ vs ${JSON.stringify(out)}`);
      }
    }
  });

  it('choice: outputs are exactly one of the choices', () => {
    const r = rng(5);
    const words = ['a', 'ab', 'abc', 'foo', 'foobar', 'bar', 'é', '日本語', 'x y', 'true', 'null'];
    for (let n = 0; n < 40; n++) {
      const choices = [...new Set(Array.from({ length: r.int(1, 5) }, () => r.pick(words)))];
      // '日本語' has no whole-character tokens here: it is spelled with byte tokens
      const c = constraintFor({ type: 'choice', choices }, VOCAB, [EOS]);
      for (let w = 0; w < 10; w++) {
        const out = walk(c, r, 50);
        assert.ok(choices.includes(out), `${JSON.stringify(choices)} vs ${JSON.stringify(out)}`);
      }
    }
  });

  it('GBNF: a JSON grammar yields parseable JSON', () => {
    const g = String.raw`
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null")
object ::= "{" ( string ":" ws value ("," ws string ":" ws value)* )? "}"
array  ::= "[" ( value ("," ws value)* )? "]"
string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ["\\/bfnrt] )* "\""
number ::= "-"? ("0" | [1-9] [0-9]{0,8}) ("." [0-9]{1,6})?
ws     ::= " "?
`;
    const spec: ConstraintSpec = { type: 'grammar', gbnf: g };
    const c = constraintFor(spec, VOCAB, [EOS]);
    const r = rng(3);
    for (let w = 0; w < 100; w++) {
      const out = walk(c, r, r.pick([10, 50, 150]));
      const v = JSON.parse(out);
      assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), out);
    }
  });
});

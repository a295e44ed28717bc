// Structured output core (src/structured/): each constraint source accepts and rejects what it
// should, bad constraints fail with messages naming the place, and token masks agree with a
// brute-force check of every token.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  compileGrammar,
  constraintFor,
  engineFor,
  matcherFor,
  ConstraintError,
  GrammarEngine,
  GrammarError,
  SchemaError,
  TokenConstraint,
  TokenVocabulary,
  type ConstraintSpec,
} from '../src/structured/index.ts';

/** Whole-string match. */
function full(spec: ConstraintSpec, s: string): boolean {
  const m = matcherFor(spec);
  return m.acceptString(s) && m.canTerminate();
}
/** Is `s` a prefix of some match? */
function prefix(spec: ConstraintSpec, s: string): boolean {
  return matcherFor(spec).acceptString(s);
}
const schema = (s: unknown): ConstraintSpec => ({ type: 'json_schema', schema: s });
const regex = (pattern: string): ConstraintSpec => ({ type: 'regex', pattern });
const gbnf = (g: string): ConstraintSpec => ({ type: 'grammar', gbnf: g });

function expectAll(spec: ConstraintSpec, yes: string[], no: string[]): void {
  for (const s of yes) assert.ok(full(spec, s), `should accept ${JSON.stringify(s)}`);
  for (const s of no) assert.ok(!full(spec, s), `should reject ${JSON.stringify(s)}`);
}
function throwsWith(spec: ConstraintSpec, cls: typeof ConstraintError, re: RegExp): void {
  assert.throws(() => compileGrammar(spec), (e: unknown) => e instanceof cls && re.test((e as Error).message), `expected ${cls.name} matching ${re}`);
}

describe('structured: matcher', () => {
  it('accept() rejects without changing state; clone and rollback are cheap', () => {
    const m = matcherFor(regex('ab*c'));
    assert.ok(m.accept('a'));
    const snap = m.snapshot();
    assert.equal(m.accept('x'), false);
    assert.equal(m.snapshot(), snap);
    const c = m.clone();
    assert.ok(m.acceptString('bbc') && m.canTerminate());
    assert.ok(!c.canTerminate() && c.accept('c') && c.canTerminate());
    m.rollback(snap);
    assert.ok(!m.canTerminate() && !m.isDead());
    assert.equal(m.acceptString('bx'), false, 'acceptString is all or nothing');
    assert.equal(m.snapshot(), snap);
  });

  it('minCompletion counts the fewest characters to a complete document', () => {
    const e = engineFor(schema({ type: 'object', properties: { ab: { type: 'boolean' } }, required: ['ab'] }));
    assert.equal(e.minCompletion(e.start), '{"ab":true}'.length);
    assert.equal(e.minCompletion(e.stepString(e.start, '{"ab": f')), 'alse}'.length);
  });

  it('long nullable chains and deep nesting: no stack overflow, at worst a ConstraintError', () => {
    expectAll(regex('(a?){0,20000}b'), ['b', 'aaab'], ['aa']);
    let deep: unknown = { type: 'integer' };
    for (let i = 0; i < 20000; i++) deep = { type: 'array', items: deep };
    assert.throws(() => compileGrammar(schema(deep)), ConstraintError);
    assert.throws(() => compileGrammar(regex('('.repeat(50000) + 'a' + ')'.repeat(50000))), ConstraintError);
  });

  it('rejects left recursion, allows nullable loops, rejects rules that never complete', () => {
    throwsWith(gbnf('root ::= expr\nexpr ::= expr "+" term | term\nterm ::= [0-9]'), GrammarError, /left recursion through rule "expr"/);
    expectAll(gbnf('root ::= ("a"?)* "b"'), ['b', 'aab'], ['a', '']);
    throwsWith(gbnf('root ::= "x" root'), GrammarError, /never complete/);
    // an unproductive alternative is dropped, the rest still works
    expectAll(gbnf('root ::= "a" | loop\nloop ::= "b" loop'), ['a'], ['b', 'bb']);
  });
});

describe('structured: regex', () => {
  it('literals, classes, escapes, groups, alternation, quantifiers', () => {
    expectAll(regex('[A-Z][a-z]{2,4}\\d?'), ['Abc', 'Abcde7'], ['abc', 'Ab', 'Abcdef', 'Abc77']);
    expectAll(regex('(?:ab|cd)+(x|y)*'), ['ab', 'cdabxyx'], ['', 'a', 'abz']);
    expectAll(regex('[^0-9\\s]+'), ['abc', '-_é'], ['a1', 'a b', '']);
    expectAll(regex('\\w+@\\w+\\.com'), ['a_1@x.com'], ['a@x.org', '@x.com']);
    expectAll(regex('a.c'), ['abc', 'a.c', 'a€c'], ['a\nc', 'ac']);
    expectAll(regex('\\x41\\u0042\\u{1F600}\\.\\[\\]'), ['AB😀.[]'], ['AB😀x[]']);
    expectAll(regex('^(yes|no)$'), ['yes', 'no'], ['yesno', '']);
    expectAll(regex('a{3}b{2,}c*?'), ['aaabb', 'aaabbbcc'], ['aabb', 'aaab']);
    expectAll(regex('[-a]+[a-]'), ['a-', '--'], ['ab']);
    expectAll(regex('(?<year>\\d{4})-\\d\\d'), ['2024-01'], ['24-01']);
    expectAll(regex('x{,2}'), ['x{,2}'], ['x']); // not a quantifier: literal braces (Annex B)
  });

  it('rejects backreferences, lookarounds, word boundaries and stray anchors with offsets', () => {
    throwsWith(regex('(a)\\1'), GrammarError, /backreferences are not supported at offset 3/);
    throwsWith(regex('a(?=b)'), GrammarError, /lookaround assertions are not supported at offset 1/);
    throwsWith(regex('a(?<!b)'), GrammarError, /lookaround/);
    throwsWith(regex('\\bfoo'), GrammarError, /word boundary/);
    throwsWith(regex('a^b'), GrammarError, /anchor "\^"/);
    throwsWith(regex('(ab'), GrammarError, /missing "\)"/);
    throwsWith(regex('ab)'), GrammarError, /unmatched "\)"/);
    throwsWith(regex('*a'), GrammarError, /nothing to repeat/);
    throwsWith(regex('[z-a]'), GrammarError, /out of order/);
  });
});

describe('structured: choice', () => {
  it('exactly one of the strings, prefixes shared', () => {
    const spec: ConstraintSpec = { type: 'choice', choices: ['red', 'redder', 'blue'] };
    expectAll(spec, ['red', 'redder', 'blue'], ['re', 'redd', 'bluered', '']);
    assert.throws(() => compileGrammar({ type: 'choice', choices: [] }), ConstraintError);
  });
});

describe('structured: GBNF', () => {
  const json = String.raw`
# a small JSON grammar in llama.cpp's style
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
`;
  it('parses llama.cpp-style grammars (multi-line rules, comments, escapes, {m,n})', () => {
    expectAll(gbnf(json), ['{}', '{"a": [1, -2.5, "x\\n", true, null], "b": {}}', '{"u": "\\u00e9"}'], ['{"a"}', '[1]', '{"a": 01x}']);
    expectAll(gbnf('root ::= [a-c]{2} x? "\\x41\\u00e9" | "-" .\nx ::= "\\"" [^\\]\\-]'), ['abAé', 'cc"aAé', '-z', '-\n'], ['aAé', 'ab"]Aé']);
    // llama.cpp's recursive optional whitespace and \U escapes; Unicode ranges
    expectAll(gbnf('root ::= "a" ws [\\x20-\\U0010FFFF]\nws ::= ([ \\t\\n] ws)?'), ['a😀', 'a \n\t b'], ['a\n', 'ab\n']);
    expectAll(gbnf('root ::= jp+ (" " jp+)*\njp ::= [ぁ-ゟ] | [一-鿿]'), ['こんにちは 世界'], ['hello', 'こ  世']);
  });

  it('reports errors with line:column', () => {
    throwsWith(gbnf('root ::= foo\n'), GrammarError, /GBNF 1:10: undefined rule "foo"/);
    throwsWith(gbnf('root ::= "a"\nb = "c"'), GrammarError, /GBNF 2:3: expected "::=" after rule name "b"/);
    throwsWith(gbnf('root ::= "abc\n'), GrammarError, /GBNF 1:10: unterminated string literal/);
    throwsWith(gbnf('root ::= ("a" | "b"\nx ::= "y"'), GrammarError, /GBNF 2:3: expected "\)"/);
    throwsWith(gbnf('root ::= [abc'), GrammarError, /GBNF 1:10: unterminated character class/);
    throwsWith(gbnf('item ::= "a"'), GrammarError, /GBNF 1:1: no "root" rule/);
    throwsWith(gbnf('root ::= "a" ) "b"'), GrammarError, /GBNF 1:14: expected end of line/);
    throwsWith(gbnf('root ::= "a"{3,1}'), GrammarError, /GBNF 1:13: repetition \{3,1\}/);
    throwsWith(gbnf('root ::= "\\q"'), GrammarError, /GBNF 1:11: unknown escape/);
  });
});

describe('structured: JSON Schema', () => {
  it('object: schema order, required mandatory, optional optional, nothing else', () => {
    const s = schema({
      type: 'object',
      properties: { a: { type: 'integer' }, b: { type: 'string' }, c: { type: 'boolean' } },
      required: ['b'],
      additionalProperties: false,
    });
    expectAll(
      s,
      ['{"b":"x"}', '{"a": 1, "b": "x"}', '{"b": "x", "c": true}', '{"a":1,"b":"","c":false}', '{\n  "b": "x"\n}'],
      ['{}', '{"a": 1}', '{"b": "x", "a": 1}', '{"b": "x", "d": 1}', '{"b": "x",}', '{"a": 1, , "b": "x"}'],
    );
    const allOpt = schema({ type: 'object', properties: { a: { type: 'null' }, b: { type: 'null' } } });
    expectAll(allOpt, ['{}', '{ }', '{"a": null}', '{"b": null}', '{"a": null, "b": null}'], ['{,}', '{"b": null, "a": null}']);
    expectAll(schema({ type: 'object', additionalProperties: false }), ['{}'], ['{"a": 1}']);
    expectAll(schema({ type: 'object' }), ['{}', '{"any": [1, {"x": null}]}'], ['[]']);
  });

  it('whitespace is bounded: one space, or one newline and up to 24 indentation characters', () => {
    const s = schema({ type: 'array', items: { type: 'integer' } });
    expectAll(s, ['[1,2]', '[ 1 , 2 ]', '[\n' + ' '.repeat(24) + '1\n]', '[\n\t\t1]'], ['[  1]', '[\n\n1]', '[\n' + ' '.repeat(25) + '1]', ' [1]', '[1] ']);
  });

  it('arrays: items, minItems, maxItems', () => {
    const s = schema({ type: 'array', items: { type: 'string', enum: ['a', 'b'] }, minItems: 1, maxItems: 3 });
    expectAll(s, ['["a"]', '["a", "b", "a"]'], ['[]', '["a","a","a","a"]', '["c"]']);
    expectAll(schema({ type: 'array', maxItems: 0 }), ['[]'], ['[1]']);
    expectAll(schema({ type: 'array', minItems: 2 }), ['[1, "x"]', '[[], {}, null]'], ['[1]']);
  });

  it('strings: length, enum, const, pattern, formats', () => {
    expectAll(schema({ type: 'string', minLength: 2, maxLength: 3 }), ['"ab"', '"a\\"c"', '"\\u00e9\\n"', '"日本"'], ['"a"', '"abcd"', '"\\ud83d\\ude00"', '"a\nb"']);
    expectAll(schema({ enum: ['x', 1, null, { a: [true] }] }), ['"x"', '1', 'null', '{"a":[true]}'], ['"y"', '{"a": [true]}']);
    expectAll(schema({ type: 'string', enum: ['x', 1] }), ['"x"'], ['1']);
    expectAll(schema({ const: 'on' }), ['"on"'], ['"off"']);
    expectAll(schema({ type: 'string', pattern: '^[a-z]+-\\d{2}$' }), ['"ab-12"'], ['"ab-1"', '"Ab-12"']);
    // unanchored patterns search: anything around, written JSON-escaped
    expectAll(schema({ type: 'string', pattern: 'x"y' }), ['"x\\"y"', '"a\\\\x\\"yz"'], ['"xy"']);
    expectAll(schema({ type: 'string', format: 'date' }), ['"2024-02-28"', '"1999-12-31"'], ['"2024-02-30"', '"2024-13-01"', '"2024-4-01"']);
    expectAll(schema({ type: 'string', format: 'date-time' }), ['"2024-01-05T10:20:30Z"', '"2024-01-05T23:59:59.123+02:00"'], ['"2024-01-05T24:00:00Z"', '"2024-01-05T10:20:30"']);
    expectAll(schema({ type: 'string', format: 'uuid' }), ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123e4567e89b12d3a456426614174000"']);
    expectAll(schema({ type: 'string', format: 'email' }), ['"a.b+c@example.co.uk"'], ['"a@b"', '".a@b.com"', '"a..b@c.com"']);
  });

  it('integers: exact bounds (every value in a window checked)', () => {
    const cases: [Record<string, number>, (v: number) => boolean][] = [
      [{ minimum: -37, maximum: 1234 }, (v) => v >= -37 && v <= 1234],
      [{ minimum: 5 }, (v) => v >= 5],
      [{ exclusiveMaximum: -3 }, (v) => v < -3],
      [{ exclusiveMinimum: 9.5, maximum: 100.5 }, (v) => v > 9.5 && v <= 100.5],
      [{ minimum: 0, maximum: 0 }, (v) => v === 0],
    ];
    for (const [bounds, ok] of cases) {
      const spec = schema({ type: 'integer', ...bounds });
      for (let v = -1500; v <= 1500; v++) assert.equal(full(spec, String(v)), ok(v), `${JSON.stringify(bounds)}: ${v}`);
      assert.ok(!full(spec, '1.0') && !full(spec, '01') && !full(spec, '-0'));
    }
    assert.ok(full(schema({ type: 'integer' }), '999999999999999'));
    assert.ok(!full(schema({ type: 'integer' }), '1000000000000000'), 'unbounded integers stay safe integers (15 digits)');
    throwsWith(schema({ type: 'integer', minimum: 3, maximum: 2 }), SchemaError, /no integer satisfies the bounds at #/);
  });

  it('numbers: grammar keeps every value in bounds', () => {
    expectAll(schema({ type: 'number' }), ['0', '-1.5', '3e10', '2.5E-3', '10'], ['01', '1.', '.5', '+1', '1e', '--1']);
    const spec = schema({ type: 'number', minimum: -2.5, exclusiveMaximum: 10 });
    expectAll(spec, ['-2', '-1.75', '9.999', '0.5', '-0.25', '3'], ['10', '10.0', '-3', '-2.6', '1e1']);
    // exhaustive over a grid: everything accepted is in range
    for (let i = -400; i <= 1200; i++) {
      const s = (i / 100).toString();
      if (full(spec, s)) assert.ok(Number(s) >= -2.5 && Number(s) < 10, s);
    }
    throwsWith(schema({ type: 'number', minimum: 0.2, maximum: 0.8 }), SchemaError, /number range at # contains no integer/);
  });

  it('boolean, null, anyOf, nullable types, $ref/$defs with recursion', () => {
    expectAll(schema({ type: ['string', 'null'] }), ['"a"', 'null'], ['1']);
    expectAll(schema({ anyOf: [{ type: 'integer' }, { type: 'boolean' }] }), ['1', 'false'], ['"1"']);
    expectAll(schema({ type: 'integer', nullable: true }), ['1', 'null'], ['"1"']);
    const tree = {
      type: 'object',
      properties: { name: { type: 'string' }, children: { type: 'array', items: { $ref: '#' } } },
      required: ['name', 'children'],
      additionalProperties: false,
    };
    expectAll(schema(tree), ['{"name": "a", "children": [{"name": "b", "children": []}]}'], ['{"name": "a", "children": [{}]}']);
    const defs = {
      $defs: { item: { type: 'object', properties: { id: { $ref: '#/$defs/id' } }, required: ['id'], additionalProperties: false }, id: { type: 'integer', minimum: 1 } },
      type: 'array',
      items: { $ref: '#/$defs/item' },
    };
    expectAll(schema(defs), ['[{"id": 1}, {"id": 22}]'], ['[{"id": 0}]']);
  });

  it('unsupported keywords throw SchemaError naming the keyword and its path', () => {
    throwsWith(schema({ type: 'object', properties: { a: { type: 'object', patternProperties: {} } } }), SchemaError, /^unsupported keyword "patternProperties" at #\/properties\/a$/);
    throwsWith(schema({ type: 'array', items: { allOf: [] } }), SchemaError, /unsupported keyword "allOf" at #\/items$/);
    throwsWith(schema({ anyOf: [{ type: 'string' }, { oneOf: [] }] }), SchemaError, /unsupported keyword "oneOf" at #\/anyOf\/1$/);
    throwsWith(schema({ $defs: { x: { type: 'integer', multipleOf: 2 } }, $ref: '#/$defs/x' }), SchemaError, /unsupported keyword "multipleOf" at #\/\$defs\/x$/);
    throwsWith(schema({ type: 'string', format: 'hostname' }), SchemaError, /unsupported format "hostname" at #\/format/);
    throwsWith(schema({ type: 'string', pattern: '(a)\\1' }), SchemaError, /backreferences .* at #\/pattern/);
    throwsWith(schema({ type: 'object', properties: { 'a/b': { type: 'string', minLength: 2, pattern: 'x' } } }), SchemaError, /"minLength" alongside "pattern" at #\/properties\/a~1b/);
    throwsWith(schema({ type: 'object', properties: { a: { type: 'string' } }, required: ['b'] }), SchemaError, /required property "b" is not in "properties" at #/);
    throwsWith(schema({ $ref: '#/$defs/missing' }), SchemaError, /does not resolve/);
    throwsWith(schema({ type: 'tuple' }), SchemaError, /unknown type "tuple" at #\/type/);
  });

  it('json_object: any JSON object', () => {
    expectAll({ type: 'json_object' }, ['{}', '{"a": {"b": [1, 2, {"c": "d"}]}, "e": -0.5e+3}'], ['[]', '"x"', '{"a"}']);
  });
});

describe('structured: token masks', () => {
  // ids: 0 EOS, then a tiny vocabulary with multi-char pieces, an empty and a partial-UTF-8 one
  const texts = ['</s>', '{', '}', '"', 'a', 'b', '{"', '":', '"a', 'ab', ' ', ':', 'true', 'tr', '', '\ufffd', '1', '12', ',', 'é', ...'trueflsn[]2-.', '日本'];
  const vocab = new TokenVocabulary(texts);
  const EOS = 0;
  const brute = (c: TokenConstraint, st: number): number[] => {
    const ids: number[] = [];
    for (let id = 1; id < texts.length; id++) if (c.advance(st, id) !== 0) ids.push(id);
    if (c.canTerminate(st)) ids.push(EOS);
    return ids.sort((x, y) => x - y);
  };

  it('mask = brute force per token, EOS only when complete, only EOS when nothing may follow', () => {
    const c = constraintFor(schema({ type: 'object', properties: { a: { type: 'boolean' } }, required: ['a'] }), vocab, [EOS]);
    let st = c.start();
    assert.deepEqual([...c.allowedIds(st)].map((i) => texts[i]).sort(), ['{', '{"']);
    for (const tok of ['{"', 'a', '":', ' ', 'tr', 'u', 'e', '}']) {
      assert.deepEqual([...c.allowedIds(st)], brute(c, st), `state before ${tok}`);
      assert.ok(!c.isAllowed(st, EOS));
      const id = texts.indexOf(tok);
      assert.ok(c.isAllowed(st, id), tok);
      st = c.advance(st, id);
      assert.ok(!c.isDead(st));
    }
    assert.ok(c.isComplete(st));
    assert.deepEqual([...c.allowedIds(st)], [EOS]);
    assert.equal(c.advance(st, EOS), st);
  });

  it('never allows empty or partial-UTF-8 tokens; a rejected token gives the dead state', () => {
    const c = constraintFor(regex('[^x]*'), vocab, [EOS]);
    const ids = [...c.allowedIds(c.start())];
    assert.ok(!ids.includes(14) && !ids.includes(15));
    assert.ok(ids.includes(19) && ids.includes(EOS));
    assert.equal(c.advance(c.start(), 15), 0);
    const d = constraintFor(regex('ab'), vocab, [EOS]);
    assert.ok(d.isDead(d.advance(d.start(), texts.indexOf('b'))));
  });

  it('the grammar is restricted to characters that are whole tokens, so masks never run dry', () => {
    // '日本' is a token but '日' and '本' are not: after it no token could continue '日本語'
    assert.ok(full({ type: 'choice', choices: ['日本語', 'ab'] }, '日本語'), 'the character matcher is not restricted');
    const c = constraintFor({ type: 'choice', choices: ['日本語', 'ab'] }, vocab, [EOS]);
    assert.deepEqual([...c.allowedIds(c.start())].map((i) => texts[i]).sort(), ['a', 'ab']);
    assert.throws(() => constraintFor({ type: 'choice', choices: ['日本語'] }, vocab, [EOS]), /cannot be written with this vocabulary/);
  });

  it('byte tokens spell characters that have no whole token, and only as valid UTF-8', () => {
    const toks: (string | Uint8Array)[] = ['</s>', 'a', 'b', '"', ...Array.from({ length: 128 }, (_, i) => Uint8Array.of(0x80 + i))];
    const v = new TokenVocabulary(toks);
    const byteId = (b: number) => 4 + b - 0x80;
    const c = constraintFor({ type: 'choice', choices: ['日本語', 'ab'] }, v, [0]);
    let st = c.start();
    assert.deepEqual([...c.allowedIds(st)], [1, byteId(0xe6)]); // 'a' or the lead byte of 日
    for (const b of new TextEncoder().encode('日本語')) {
      assert.deepEqual([...c.allowedIds(st)].filter((id) => id !== 1), [byteId(b)]);
      st = c.advance(st, byteId(b));
    }
    assert.ok(c.isComplete(st));
    // inside a JSON string, after a lead byte only its continuation bytes are allowed
    const j = constraintFor(schema({ type: 'string' }), v, [0]);
    st = j.advance(j.advance(j.start(), 3), byteId(0xe6));
    assert.deepEqual([...j.allowedIds(st)], Array.from({ length: 64 }, (_, i) => byteId(0x80 + i)));
    st = j.advance(j.advance(st, byteId(0x97)), byteId(0xa5));
    assert.deepEqual([...j.allowedIds(st)].slice(0, 3), [1, 2, 3]); // a whole character again: 'a', 'b', '"'
    assert.ok(!j.isAllowed(st, byteId(0x80)), 'no stray continuation byte');
  });

  it('EOS is decided by the grammar even when its text would match', () => {
    const c = new TokenConstraint(engineFor(regex('</s>x')), vocab, [EOS]);
    assert.ok(!c.isAllowed(c.start(), EOS));
  });

  it('caches: one engine per spec, masks reused per state', () => {
    const spec = schema({ type: 'array', items: { type: 'integer' } });
    assert.equal(engineFor(spec), engineFor(JSON.parse(JSON.stringify(spec))));
    const c = constraintFor(spec, vocab, [EOS]);
    assert.equal(c, constraintFor(spec, vocab, [EOS]));
    const m1 = c.allowed(c.start());
    assert.equal(c.allowed(c.start()), m1);
    assert.ok(c.hits >= 1);
  });

  it('applyMask sets disallowed logits to -Infinity', () => {
    const c = constraintFor({ type: 'choice', choices: ['ab', 'b'] }, vocab, [EOS]);
    const logits = new Float32Array(texts.length + 2).fill(1);
    c.applyMask(c.start(), logits);
    const kept = [...logits.keys()].filter((i) => logits[i] === 1).map((i) => texts[i]);
    assert.deepEqual(kept.sort(), ['a', 'ab', 'b']);
  });

  it('a larger vocabulary: trie mask equals brute force along a document', () => {
    const words = ['{', '}', '[', ']', ',', ':', '"', ' ', '\n', '  ', '{"', '":', '",', '"}', '": "', 'name', 'age', 'tags', 'na', 'me', 'x', 'y', '1', '2', '10', '99', 'true', 'null', 'nu', '-', '.', 'e', 'é', '日本', '\\', '\\n', 'u00', 'e9'];
    const t = ['<eos>', ...words, ...Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i))];
    const v = new TokenVocabulary(t);
    const c = new TokenConstraint(
      new GrammarEngine(compileGrammar(schema({ type: 'object', properties: { name: { type: 'string', maxLength: 5 }, age: { type: 'integer', minimum: 0, maximum: 120 }, tags: { type: 'array', items: { type: 'string' } } }, required: ['name', 'age'] }))),
      v,
      [0],
    );
    const doc = '{"name": "\\u00e9x日本", "age": 99, "tags": ["a", "b\\n"]}';
    let st = c.start();
    let i = 0;
    const bruteIds = (s: number) => {
      const ids: number[] = [];
      for (let id = 1; id < t.length; id++) if (c.advance(s, id) !== 0) ids.push(id);
      if (c.canTerminate(s)) ids.push(0);
      return ids.sort((x, y) => x - y);
    };
    while (i < doc.length) {
      assert.deepEqual([...c.allowedIds(st)], bruteIds(st), `at ${JSON.stringify(doc.slice(0, i))}`);
      const ch = doc.slice(i).startsWith('日本') ? '日本' : doc[i];
      st = c.advance(st, t.indexOf(ch));
      assert.ok(!c.isDead(st), doc.slice(0, i + 1));
      i += ch.length;
    }
    assert.ok(c.isComplete(st));
  });
});

// Structured output on a real vocabulary: token bytes from the embedded default model's
// byte-level BPE tokenizer (and a SentencePiece-style stub), then constrained random walks whose
// ids, decoded by the tokenizer itself, must give JSON that validates against the schema.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Ajv2020Module from 'ajv/dist/2020.js';
import { Tokenizer } from '../src/formats/tokenizer.ts';
import { constraintFor, tokenBytes, vocabularyFor, type TokenizerLike } from '../src/structured/index.ts';

type AjvClass = typeof Ajv2020Module.default;
const Ajv2020: AjvClass = (Ajv2020Module as unknown as { default: AjvClass }).default ?? (Ajv2020Module as unknown as AjvClass);

const tok = Tokenizer.fromDir(fileURLToPath(new URL('../models/default', import.meta.url)));

describe('structured: token bytes from a tokenizer', () => {
  it('byte-level BPE: the bytes of encode(text) are the UTF-8 of the text; specials have none', () => {
    const bytes = tokenBytes(tok);
    assert.equal(bytes.length, tok.vocabSize);
    for (const text of ['Hello, world! {"a": [1, 2.5e3], "b": null}', 'café ☕ 日本語 😀 ñ', '  spaced\n\tline\r\n']) {
      const ids = tok.encode(text, { addSpecialTokens: false });
      const got = Buffer.concat(ids.map((id) => bytes[id]!));
      assert.equal(got.toString('utf8'), text);
    }
    for (const id of tok.eosIds) assert.equal(bytes[id], null);
  });

  it('SentencePiece-style decoders: ▁ is a space, <0xNN> a byte, specials null', () => {
    const pieces = ['<unk>', '<s>', '</s>', '<0x0A>', '<0xE6>', '▁hello', '日', 'user'];
    const stub: TokenizerLike = {
      json: { decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] } },
      vocabSize: pieces.length,
      idToToken: (id: number) => pieces[id],
      isSpecial: (id: number) => id < 3,
      addedTokens: () => new Map([[7, { content: '<|user|>', special: false }]]),
    };
    const b = tokenBytes(stub).map((x) => (x ? [...x] : null));
    assert.deepEqual(b, [null, null, null, [0x0a], [0xe6], [...Buffer.from(' hello')], [...Buffer.from('日')], [...Buffer.from('<|user|>')]]);
  });

  it('constrained walks on the real vocabulary decode (by the tokenizer) to valid JSON', () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 12 },
        city: { type: 'string', enum: ['Zürich', '東京', 'Lyon'] },
        age: { type: 'integer', minimum: 0, maximum: 120 },
        tags: { type: 'array', items: { type: 'string' }, maxItems: 3 },
        ok: { type: 'boolean' },
      },
      required: ['name', 'city', 'age'],
      additionalProperties: false,
    };
    const validate = new Ajv2020({ strict: false }).compile(schema);
    const vocab = vocabularyFor(tok);
    assert.equal(vocabularyFor(tok), vocab);
    const c = constraintFor({ type: 'json_schema', schema }, vocab, tok.eosIds);
    let seed = 99;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    for (let w = 0; w < 20; w++) {
      let st = c.start();
      const ids: number[] = [];
      let bytes = 0;
      for (;;) {
        const allowed = c.allowedIds(st);
        assert.ok(allowed.length > 0);
        let id: number;
        if (bytes < 60) id = allowed[Math.floor(rand() * allowed.length)];
        else {
          // steer to the end: fewest bytes left
          let best = Infinity;
          id = allowed[0];
          for (const t of allowed) {
            const d = tok.eosIds.includes(t) ? 0 : c.engine.minCompletion(c.advance(st, t));
            if (d < best) [best, id] = [d, t];
          }
        }
        if (tok.eosIds.includes(id)) break;
        st = c.advance(st, id);
        assert.ok(!c.isDead(st));
        ids.push(id);
        bytes += vocab.bytes[id]!.length;
        if (c.isComplete(st)) break;
      }
      const text = tok.decode(ids);
      const value = JSON.parse(text);
      assert.ok(validate(value), `${text}: ${JSON.stringify(validate.errors)}`);
    }
  });
});

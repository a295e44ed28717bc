// Structured output through the server and the real engine (in its worker thread) on a tiny
// random model: response_format json_schema / json_object (through the official openai client),
// guided_choice / guided_regex / guided_grammar, streaming, n > 1, a batch that mixes constrained
// and unconstrained requests, and bad constraints answered with a 400 that names them. Every
// constrained output must parse and validate (ajv), whatever the random weights say.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { startEngineHost, type EngineHost } from '../src/engine/worker-host.ts';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';
import { buildServer } from '../src/server/app.ts';

// Small bounded schemas: every valid output fits well within max_tokens (each token is at least
// one byte), so every choice must end with finish_reason 'stop' and a complete document.
const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 6 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    pet: { anyOf: [{ type: 'string', enum: ['cat', 'dog'] }, { type: 'null' }] },
  },
  required: ['name', 'age', 'pet'],
  additionalProperties: false,
};
const LIST = {
  type: 'object',
  properties: { ok: { type: 'boolean' }, tags: { type: 'array', items: { type: 'string', enum: ['a', 'b', 'c'] }, maxItems: 3 } },
  required: ['ok', 'tags'],
  additionalProperties: false,
};

const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false });
(addFormats as unknown as typeof addFormats.default)(ajv);

let dir: string, host: EngineHost, app: FastifyInstance, url: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ss-structured-'));
  writeRandomHfModel(dir, { ...TINY_SPECS.llama, maxPosition: 1024 }, 7);
  // a plain chat template, so the chat endpoint works on the random model
  const cfgPath = join(dir, 'tokenizer_config.json');
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  cfg.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
  writeFileSync(cfgPath, JSON.stringify(cfg));
  host = await startEngineHost({ model: dir, modelName: 'tiny', maxSeqs: 16 });
  app = buildServer(host);
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});

after(async () => {
  await app.close();
  await host.shutdown(0);
  rmSync(dir, { recursive: true, force: true });
});

async function post(path: string, body: object): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

function valid(schema: object, text: string): void {
  let doc: unknown;
  assert.doesNotThrow(() => (doc = JSON.parse(text)), `not JSON: ${JSON.stringify(text)}`);
  assert.ok(ajv.validate(schema, doc), `${JSON.stringify(text)} does not fit the schema: ${ajv.errorsText()}`);
}

describe('structured output through the server', () => {
  it('response_format json_schema through the openai client: every choice parses and validates', async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none' });
    const runs = await Promise.all(
      [PERSON, LIST, PERSON, LIST].map((schema, i) =>
        client.chat.completions.create({
          model: 'tiny',
          messages: [{ role: 'user', content: `record ${i}` }],
          response_format: { type: 'json_schema', json_schema: { name: 'record', schema, strict: true } },
          temperature: 0.9,
          seed: 11 + i,
          n: 2,
          max_tokens: 700,
        }),
      ),
    );
    runs.forEach((r, i) => {
      assert.equal(r.choices.length, 2);
      for (const c of r.choices) {
        assert.equal(c.finish_reason, 'stop');
        valid(i % 2 === 0 ? PERSON : LIST, c.message.content!);
      }
    });
  });

  it('streams a constrained answer in pieces that add up to a valid document', async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none' });
    const stream = await client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'a list' }],
      response_format: { type: 'json_schema', json_schema: { name: 'list', schema: LIST } },
      temperature: 1,
      seed: 3,
      max_tokens: 700,
      stream: true,
    });
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (c.choices[0]?.delta?.content) chunks++;
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.ok(chunks > 1);
    assert.equal(finish, 'stop');
    valid(LIST, text);
  });

  it('guided_choice, guided_regex and guided_grammar on completions', async () => {
    const choice = await post('/v1/completions', { prompt: 'the answer is', guided_choice: ['yes', 'no', 'maybe not'], max_tokens: 20, temperature: 1, seed: 1, n: 4 });
    assert.equal(choice.status, 200, JSON.stringify(choice.json));
    for (const c of choice.json.choices) {
      assert.ok(['yes', 'no', 'maybe not'].includes(c.text), c.text);
      assert.equal(c.finish_reason, 'stop');
    }
    const re = await post('/v1/completions', { prompt: 'a code:', guided_regex: '[A-Z]{2}-\\d{3}(-[a-z]{1,3})?', max_tokens: 20, temperature: 1, seed: 2, n: 3 });
    assert.equal(re.status, 200, JSON.stringify(re.json));
    for (const c of re.json.choices) assert.match(c.text, /^[A-Z]{2}-\d{3}(-[a-z]{1,3})?$/);
    const gbnf = 'root ::= "(" num ("+" num){0,3} ")"\nnum ::= [1-9] [0-9]?';
    const g = await post('/v1/completions', { prompt: 'sum:', guided_grammar: gbnf, max_tokens: 40, temperature: 1, seed: 4 });
    assert.equal(g.status, 200, JSON.stringify(g.json));
    assert.match(g.json.choices[0].text, /^\((?:[1-9][0-9]?)(?:\+[1-9][0-9]?){0,3}\)$/);
  });

  it('a batch mixing constrained and unconstrained requests leaves the unconstrained output unchanged', async () => {
    const plain = { prompt: 'the old man', max_tokens: 24, temperature: 0, ignore_eos: true };
    const alone = await post('/v1/completions', plain);
    const [mixed] = await Promise.all([
      post('/v1/completions', plain),
      post('/v1/completions', { prompt: 'json', response_format: { type: 'json_schema', json_schema: { name: 'p', schema: PERSON } }, max_tokens: 700, temperature: 1, seed: 5 }),
      post('/v1/completions', { prompt: 'pick', guided_choice: ['left', 'right'], max_tokens: 8, temperature: 1, seed: 6 }),
    ]);
    assert.equal(mixed.json.choices[0].text, alone.json.choices[0].text);
  });

  it('json_object gives a JSON object', async () => {
    const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' }, max_tokens: 700, temperature: 0 });
    assert.equal(r.status, 200);
    const c = r.json.choices[0];
    if (c.finish_reason === 'stop') assert.equal(typeof JSON.parse(c.message.content), 'object');
    else assert.equal(c.finish_reason, 'length'); // an unbounded object may run out of tokens, as with OpenAI
  });

  it('bad constraints get a 400 naming the parameter and what is wrong', async () => {
    const cases: [object, string, RegExp][] = [
      [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { type: 'string', patternProperties: {} } } } } } }, 'response_format', /unsupported keyword "patternProperties" at #\/properties\/a/],
      [{ response_format: { type: 'json_schema', json_schema: { schema: {} } } }, 'response_format.json_schema.name', /name/],
      [{ response_format: { type: 'xml' } }, 'response_format.type', /'text', 'json_object' or 'json_schema'/],
      [{ guided_regex: '(a' }, 'guided_regex', /guided_regex/],
      [{ guided_grammar: 'root ::= ("a" | "b"\nother ::= "c"' }, 'guided_grammar', /\d+:\d+/],
      [{ guided_choice: [] }, 'guided_choice', /non-empty array/],
      [{ guided_choice: ['a'], guided_regex: 'b' }, 'guided_choice', /only one of 'guided_regex' and 'guided_choice' may be given/],
    ];
    for (const [extra, param, msg] of cases) {
      const r = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 8, ...extra });
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.equal(r.json.error.param, param, JSON.stringify(r.json));
      assert.match(r.json.error.message, msg);
    }
    // the server still serves
    assert.equal((await post('/v1/completions', { prompt: 'ok', max_tokens: 2 })).status, 200);
  });
});

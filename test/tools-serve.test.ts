// Tool calling through the server and the real engine (worker threads) on tiny random models,
// one per tool-calling family's chat template (Qwen2.5 / Hermes, Llama 3.2, Mistral v0.3), plus
// the embedded default model, whose template has no tool support. Through the official openai
// client: forced calls ('required', a named function, parallel or not) whose arguments must
// parse and validate (ajv) whatever the random weights say; streamed deltas shaped as OpenAI's
// that reassemble into the same calls; runTools round trips (the calls and their results go back
// through each template); and the 400s that name the bad field.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { z } from 'zod';
import type { ChatCompletionChunk, ChatCompletionTool } from 'openai/resources/chat/completions';
import { startEngineHost, type EngineHost } from '../src/engine/worker-host.ts';
import { defaultModelDir } from '../src/models/default.ts';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';
import { buildServer } from '../src/server/app.ts';
import { MultiEngine } from '../src/server/models-router.ts';
import { LLAMA32_TOOLS, MISTRAL_V03_TOOLS, QWEN25_TOOLS } from './helpers/tool-templates.ts';

// Bounded schemas: every valid call fits well within max_tokens, so every forced answer ends
// with finish_reason 'tool_calls' and complete arguments.
const WEATHER = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 8 }, unit: { type: 'string', enum: ['C', 'F'] } },
  required: ['city', 'unit'],
  additionalProperties: false,
};
const TIME = {
  type: 'object',
  properties: { tz: { type: 'string', enum: ['UTC', 'Europe/Paris'] }, hour24: { type: 'boolean' }, offset: { type: 'integer', minimum: -12, maximum: 14 } },
  required: ['tz', 'hour24'],
  additionalProperties: false,
};
const SCHEMAS: Record<string, object> = { get_weather: WEATHER, get_time: TIME };
const TOOLS: ChatCompletionTool[] = [
  { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', description: 'The time in a time zone', parameters: TIME } },
];
const FAMILIES = [
  ['qwen', QWEN25_TOOLS],
  ['llama', LLAMA32_TOOLS],
  ['mistral', MISTRAL_V03_TOOLS],
] as const;

const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false });

let dirs: string[] = [];
let hosts: EngineHost[] = [];
let app: FastifyInstance, url: string, client: OpenAI;

before(async () => {
  for (const [name, template] of [...FAMILIES, ['plain', "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"]] as const) {
    const dir = mkdtempSync(join(tmpdir(), `ss-tools-${name}-`));
    dirs.push(dir);
    writeRandomHfModel(dir, { ...TINY_SPECS.llama, maxPosition: 8192 }, 7);
    const cfgPath = join(dir, 'tokenizer_config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), chat_template: template }));
    hosts.push(await startEngineHost({ model: dir, modelName: name, maxSeqs: 8, threads: 1 }));
  }
  hosts.push(await startEngineHost({ model: defaultModelDir(), modelName: 'default', maxSeqs: 4, threads: 1 }));
  app = buildServer(new MultiEngine(hosts));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
});

after(async () => {
  await app?.close();
  await Promise.all(hosts.map((h) => h.shutdown(0)));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function post(body: object): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** A call as the API returns it: an OpenAI-shaped id, a known function, arguments that parse and validate. */
function validCall(c: { id: string; type: string; function: { name: string; arguments: string } }, only?: string): unknown {
  assert.match(c.id, /^call_[a-zA-Z0-9]{24}$/);
  assert.equal(c.type, 'function');
  assert.ok(c.function.name in SCHEMAS, c.function.name);
  if (only) assert.equal(c.function.name, only);
  let args: unknown;
  assert.doesNotThrow(() => (args = JSON.parse(c.function.arguments)), `arguments are not JSON: ${c.function.arguments}`);
  assert.ok(ajv.validate(SCHEMAS[c.function.name]!, args), `${c.function.arguments} does not fit ${c.function.name}: ${ajv.errorsText()}`);
  return args;
}

describe('tool calling through the server', () => {
  for (const [model] of FAMILIES) {
    it(`${model}: tool_choice 'required' (one call) and a named function give calls that parse and validate`, async () => {
      const required = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
        tools: TOOLS,
        tool_choice: 'required',
        parallel_tool_calls: false,
        temperature: 1,
        seed: 3,
        n: 3,
        max_tokens: 600,
      });
      assert.equal(required.choices.length, 3);
      for (const c of required.choices) {
        assert.equal(c.finish_reason, 'tool_calls');
        assert.equal(c.message.content, null);
        assert.equal(c.message.tool_calls?.length, 1);
        validCall(c.message.tool_calls![0] as any);
      }
      const named = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'What time is it?' }],
        tools: TOOLS,
        tool_choice: { type: 'function', function: { name: 'get_time' } },
        temperature: 1,
        seed: 4,
        n: 2,
        max_tokens: 600,
      });
      for (const c of named.choices) {
        assert.equal(c.finish_reason, 'tool_calls');
        assert.equal(c.message.tool_calls?.length, 1);
        validCall(c.message.tool_calls![0] as any, 'get_time');
      }
    });
  }

  for (const model of ['qwen', 'mistral']) {
    it(`${model}: 'required' with parallel calls allowed: every call validates, ids differ`, async () => {
      const r = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: 'Weather and time in Paris?' }],
        tools: TOOLS,
        tool_choice: 'required',
        temperature: 1,
        seed: 21,
        n: 3,
        max_tokens: 2000,
      });
      for (const c of r.choices) {
        const calls = c.message.tool_calls!;
        assert.ok(calls.length >= 1);
        if (c.finish_reason === 'tool_calls') for (const t of calls) validCall(t as any);
        else assert.equal(c.finish_reason, 'length'); // a random model may go on calling; what it finished still parses
        assert.equal(new Set(calls.map((t) => t.id)).size, calls.length);
      }
    });
  }

  for (const [model] of FAMILIES) {
    it(`${model}: streamed deltas are OpenAI's shape and reassemble into the collected answer`, async () => {
      const body = {
        model,
        messages: [{ role: 'user' as const, content: 'Weather in Oslo?' }],
        tools: TOOLS,
        tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
        temperature: 0,
        max_tokens: 600,
      };
      const collected = await client.chat.completions.create(body);
      const stream = await client.chat.completions.create({ ...body, stream: true });
      const chunks: ChatCompletionChunk[] = [];
      for await (const c of stream) chunks.push(c);
      const deltas = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
      assert.ok(deltas.length >= 3, 'the call streams in several pieces');
      const [first, ...rest] = deltas;
      assert.equal(first!.index, 0);
      assert.match(first!.id!, /^call_/);
      assert.equal(first!.type, 'function');
      assert.equal(first!.function!.name, 'get_weather');
      assert.equal(first!.function!.arguments, '');
      for (const d of rest) {
        assert.equal(d.index, 0);
        assert.equal(d.id, undefined);
        assert.equal(d.function!.name, undefined);
      }
      const args = rest.map((d) => d.function!.arguments).join('');
      assert.equal(args, (collected.choices[0]!.message.tool_calls![0]! as { function: { arguments: string } }).function.arguments, 'greedy: the stream and the collected answer agree');
      assert.equal(chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join(''), '');
      assert.equal(chunks.at(-1)!.choices[0]!.finish_reason, 'tool_calls');

      // the client's own stream helper assembles the same call
      const helper = client.chat.completions.stream(body);
      const final = await helper.finalChatCompletion();
      const call = final.choices[0]!.message.tool_calls![0]! as { id: string; type: string; function: { name: string; arguments: string } };
      validCall(call, 'get_weather');
      assert.equal(call.function.arguments, args);
    });
  }

  for (const [model] of FAMILIES) {
    it(`${model}: runTools round trip: calls and their results go back through the template`, async () => {
      const seen: unknown[] = [];
      const runner = client.chat.completions.runTools(
        {
          model,
          messages: [{ role: 'user', content: 'Plan my day in Paris.' }],
          tools: [
            { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: WEATHER, parse: JSON.parse, function: (a: unknown) => (seen.push(a), { temp: 21 }) } },
            { type: 'function', function: { name: 'get_time', description: 'The time in a time zone', parameters: TIME, parse: JSON.parse, function: (a: unknown) => (seen.push(a), '09:00') } },
          ],
          tool_choice: 'required',
          parallel_tool_calls: false,
          temperature: 1,
          seed: 9,
          max_tokens: 600,
        },
        { maxChatCompletions: 3 },
      );
      await runner.done();
      assert.equal(runner.allChatCompletions().length, 3, 'three requests, the later ones carrying tool calls and results');
      const tools = runner.messages.filter((m) => m.role === 'tool');
      assert.equal(tools.length, 3);
      assert.equal(seen.length, 3, 'every call reached its function with arguments that parsed');
      for (const m of runner.messages.filter((m) => m.role === 'assistant')) for (const t of (m as any).tool_calls ?? []) validCall(t);
    });
  }

  it("the client's zod helpers: zodResponseFormat (structured output) and zodFunction (a forced call) parse", async () => {
    const Person = z.object({ name: z.string().max(6), age: z.number().int().min(0).max(120), pet: z.enum(['cat', 'dog']).nullable() });
    const structured = await client.chat.completions.parse({
      model: 'qwen',
      messages: [{ role: 'user', content: 'A person, please.' }],
      response_format: zodResponseFormat(Person, 'person'),
      temperature: 1,
      seed: 8,
      n: 2,
      max_tokens: 600,
    });
    for (const c of structured.choices) {
      assert.equal(c.finish_reason, 'stop');
      assert.deepEqual(Person.parse(c.message.parsed), c.message.parsed, 'the parsed answer fits the zod schema');
    }
    const Weather = z.object({ city: z.string().max(8), unit: z.enum(['C', 'F']) });
    for (const [model] of FAMILIES) {
      const r = await client.chat.completions.parse({
        model,
        messages: [{ role: 'user', content: 'Weather in Lima?' }],
        tools: [zodFunction({ name: 'get_weather', parameters: Weather })],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        temperature: 1,
        seed: 12,
        max_tokens: 600,
      });
      const call = r.choices[0]!.message.tool_calls?.[0]!;
      assert.equal(r.choices[0]!.finish_reason, 'tool_calls');
      assert.equal(call.function.name, 'get_weather');
      Weather.parse(call.function.parsed_arguments);
    }
  });

  it("'auto' leaves the model free: what it writes is content unless it is a call", async () => {
    const r = await client.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, temperature: 1, seed: 5, max_tokens: 40 });
    const c = r.choices[0]!;
    // random weights do not write '<tool_call>{"name": ...' by chance: plain content comes back
    assert.equal(c.message.tool_calls, undefined);
    assert.equal(typeof c.message.content, 'string');
    assert.ok(c.finish_reason === 'stop' || c.finish_reason === 'length');
  });

  it('the default model (no tools in its template): 400 naming tools, and tool_choice none still answers', async () => {
    const bad = await post({ model: 'default', messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, max_tokens: 4 });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'tools');
    assert.match(bad.json.error.message, /no tool support/);
    const ok = await client.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'Once upon a time' }], tools: TOOLS, tool_choice: 'none', max_tokens: 8, temperature: 0 });
    assert.equal(typeof ok.choices[0]!.message.content, 'string');
    assert.equal(ok.choices[0]!.message.tool_calls, undefined);
    const plain = await post({ model: 'plain', messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, tool_choice: 'required', max_tokens: 4 });
    assert.equal(plain.status, 400);
    assert.equal(plain.json.error.param, 'tools');
  });

  it('bad tool fields are 400s in OpenAI format naming the field', async () => {
    const base = { model: 'qwen', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
    const cases: [object, string, RegExp][] = [
      [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { x: { oneOf: [{ type: 'string' }] } } } } }] }, 'tools[0].function.parameters', /unsupported keyword "oneOf" at #\/properties\/x/],
      [{ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name', /no function named 'nope'/],
      [{ tools: TOOLS, tool_choice: 'sometimes' }, 'tool_choice', /'none', 'auto', 'required'/],
      [{ tool_choice: 'required' }, 'tool_choice', /needs 'tools'/],
      [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools[0].function.name', /letters, digits/],
      [{ tools: [TOOLS[0], TOOLS[0]] }, 'tools[1].function.name', /defined twice/],
      [{ tools: [{ type: 'retrieval' }] }, 'tools[0].type', /'function'/],
      [{ tools: TOOLS, parallel_tool_calls: 'yes' }, 'parallel_tool_calls', /boolean/],
      [{ tools: TOOLS, tool_choice: 'required', response_format: { type: 'json_object' } }, 'response_format', /cannot be combined/],
      [{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{oops' } }] }] }, 'messages[1].tool_calls[0].function.arguments', /not JSON/],
      [{ messages: [{ role: 'user', content: 'hi' }, { role: 'tool', content: '1' }] }, 'messages[1].tool_call_id', /id of the call/],
    ];
    for (const [extra, param, message] of cases) {
      const r = await post({ ...base, ...extra });
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.equal(r.json.error.type, 'invalid_request_error');
      assert.equal(r.json.error.param, param, JSON.stringify(r.json));
      assert.match(r.json.error.message, message);
    }
    // the openai client surfaces them as BadRequestError with the param
    await assert.rejects(
      client.chat.completions.create({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'tool_choice.function.name',
    );
  });
});

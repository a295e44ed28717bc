// The OpenAI-compatible server against a deterministic fake engine: the official `openai` client
// unchanged (completions, chat, streaming, usage, models), every error status in OpenAI's format,
// auth, shutdown, tokenize/detokenize/health/metrics, and abort on client disconnect.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import type { FastifyInstance } from 'fastify';
import { buildServer, startDraining } from '../src/server/app.ts';
import { FakeEngine, REPLY } from './helpers/fake-engine.ts';

async function start(engine: FakeEngine, opts: Parameters<typeof buildServer>[1] = {}): Promise<{ app: FastifyInstance; url: string }> {
  const app = buildServer(engine, opts);
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body instanceof Uint8Array ? new Blob([body as Uint8Array<ArrayBuffer>]) : typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

function assertError(r: { status: number; json: any }, status: number, param: string | null, type = 'invalid_request_error') {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json?.error?.type, type);
  assert.equal(r.json.error.param, param);
  assert.equal(typeof r.json.error.message, 'string');
}

/** Parses an SSE body into its JSON chunks; checks it ends with [DONE]. */
function sseChunks(text: string): any[] {
  const events = text.split('\n\n').filter((e) => e !== '');
  assert.equal(events.at(-1), 'data: [DONE]');
  return events.slice(0, -1).map((e) => {
    assert.ok(e.startsWith('data: '), e);
    return JSON.parse(e.slice(6));
  });
}

describe('server with the openai client', () => {
  const engine = new FakeEngine({ maxContext: 256 });
  let app: FastifyInstance;
  let client: OpenAI;
  before(async () => {
    const s = await start(engine);
    app = s.app;
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => app.close());

  test('completions, non-streaming, with usage', async () => {
    const r = await client.completions.create({ model: 'fake-model', prompt: 'Say hi', max_tokens: 5 });
    assert.equal(r.object, 'text_completion');
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.model, 'fake-model');
    assert.equal(r.choices.length, 1);
    assert.equal(r.choices[0]!.text, 'Hello');
    assert.equal(r.choices[0]!.finish_reason, 'length');
    assert.deepEqual(r.usage && { p: r.usage.prompt_tokens, c: r.usage.completion_tokens, t: r.usage.total_tokens }, { p: 6, c: 5, t: 11 });
    const sub = engine.submitted.at(-1)!;
    assert.deepEqual(sub.promptIds, [...'Say hi'].map((c) => c.charCodeAt(0)));
    assert.equal(sub.sampling.maxTokens, 5);
  });

  test('sampling fields reach the engine; token-id prompts and stop strings work', async () => {
    const r = await client.completions.create({
      model: 'fake-model',
      prompt: [72, 105],
      max_tokens: 40,
      temperature: 0.7,
      top_p: 0.9,
      seed: 42,
      stop: [' the'],
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      // vLLM extensions pass through the client unchanged
      ...({ top_k: 40, min_p: 0.05, repetition_penalty: 1.1, ignore_eos: false } as object),
    });
    assert.equal(r.choices[0]!.text, 'Hello from');
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    const s = engine.submitted.at(-1)!.sampling;
    assert.deepEqual(
      { t: s.temperature, p: s.topP, k: s.topK, m: s.minP, r: s.repetitionPenalty, pp: s.presencePenalty, fp: s.frequencyPenalty, seed: s.seed, stop: s.stop, n: s.n },
      { t: 0.7, p: 0.9, k: 40, m: 0.05, r: 1.1, pp: 0.5, fp: -0.5, seed: 42, stop: [' the'], n: 1 },
    );
    assert.deepEqual(engine.submitted.at(-1)!.promptIds, [72, 105]);
  });

  test('EOS finish, completions logprobs', async () => {
    const r = await client.completions.create({ model: 'fake-model', prompt: 'x', max_tokens: 100, logprobs: 2 });
    const c = r.choices[0]!;
    assert.equal(c.text, REPLY);
    assert.equal(c.finish_reason, 'stop');
    assert.equal(r.usage!.completion_tokens, REPLY.length);
    assert.equal(c.logprobs!.tokens!.join(''), REPLY);
    assert.equal(c.logprobs!.token_logprobs![0], -0.5);
    assert.deepEqual(c.logprobs!.top_logprobs![0], { A: -1, B: -2 });
    assert.deepEqual(c.logprobs!.text_offset!.slice(0, 3), [0, 1, 2]);
  });

  test('completions streaming with include_usage', async () => {
    const stream = await client.completions.create({ model: 'fake-model', prompt: 'abc', max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      if (chunk.usage) {
        assert.equal(chunk.choices.length, 0);
        usage = chunk.usage;
      }
      for (const ch of chunk.choices) {
        text += ch.text;
        if (ch.finish_reason) finish = ch.finish_reason;
      }
    }
    assert.equal(text, 'Hello fr');
    assert.equal(finish, 'length');
    assert.deepEqual({ p: usage?.prompt_tokens, c: usage?.completion_tokens, t: usage?.total_tokens }, { p: 3, c: 8, t: 11 });
  });

  test('chat completions, non-streaming, logprobs and max_completion_tokens', async () => {
    const r = await client.chat.completions.create({
      model: 'fake-model',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      max_completion_tokens: 4,
      logprobs: true,
      top_logprobs: 1,
    });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    assert.deepEqual(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, 'Hell');
    assert.equal(r.choices[0]!.finish_reason, 'length');
    const lp = r.choices[0]!.logprobs!.content!;
    assert.equal(lp.length, 4);
    assert.deepEqual(lp[0], { token: 'H', logprob: -0.5, bytes: [72], top_logprobs: [{ token: 'A', logprob: -1, bytes: [65] }] });
    const prompt = '<system>Be brief.\n<user>Hi\n<assistant>';
    assert.equal(r.usage!.prompt_tokens, prompt.length);
    assert.deepEqual(engine.submitted.at(-1)!.promptIds, [...prompt].map((c) => c.charCodeAt(0)));
    // Without max_tokens a chat gets the rest of the context.
    const r2 = await client.chat.completions.create({ model: 'fake-model', messages: [{ role: 'user', content: 'Hi' }], logprobs: false });
    assert.equal(r2.choices[0]!.message.content, REPLY);
    assert.equal(r2.choices[0]!.logprobs, null);
    assert.equal(engine.submitted.at(-1)!.sampling.maxTokens, 256 - '<user>Hi\n<assistant>'.length);
  });

  test('chat streaming: role first, n=2 interleaved, usage aggregated', async () => {
    const stream = await client.chat.completions.create({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 5,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    const texts = ['', ''];
    const order: number[] = [];
    const firstDelta: Record<number, unknown> = {};
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices) {
        if (!(ch.index in firstDelta)) firstDelta[ch.index] = ch.delta;
        texts[ch.index] += ch.delta.content ?? '';
        if (ch.delta.content) order.push(ch.index);
      }
    }
    assert.deepEqual(firstDelta[0], { role: 'assistant', content: '' });
    assert.deepEqual(firstDelta[1], { role: 'assistant', content: '' });
    assert.deepEqual(texts, ['Hello', 'ello ']);
    assert.deepEqual(order.slice(0, 4), [0, 1, 0, 1], 'choices interleave step by step');
    assert.equal(usage?.completion_tokens, 10);
    assert.equal(usage?.total_tokens, usage!.prompt_tokens + 10);
  });

  test('models.list and retrieve', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((m) => [m.id, m.object]),
      [['fake-model', 'model']],
    );
    assert.equal((await client.models.retrieve('fake-model')).id, 'fake-model');
    await assert.rejects(client.models.retrieve('other'), (e: any) => e.status === 404);
  });

  test('errors reach the client as APIError with status, type and param', async () => {
    await assert.rejects(client.completions.create({ model: 'fake-model', prompt: 'x', temperature: -1 }), (e: any) => {
      assert.ok(e instanceof OpenAI.BadRequestError);
      assert.equal(e.param, 'temperature');
      assert.equal(e.type, 'invalid_request_error');
      return true;
    });
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4', messages: [{ role: 'user', content: 'x' }] }), (e: any) => e instanceof OpenAI.NotFoundError && e.param === 'model');
  });
});

describe('validation and errors', () => {
  const engine = new FakeEngine({ maxContext: 64 });
  let app: FastifyInstance;
  let url: string;
  before(async () => ({ app, url } = await start(engine)));
  after(() => app.close());
  const cmpl = () => `${url}/v1/completions`;
  const chat = () => `${url}/v1/chat/completions`;

  test('malformed bodies are 400, never 500', async () => {
    assertError(await post(cmpl(), '{"prompt": "x",'), 400, null);
    assertError(await post(cmpl(), ''), 400, null);
    assertError(await post(cmpl(), '[1,2]'), 400, null);
    assertError(await post(cmpl(), 'null'), 400, null);
    // invalid UTF-8 bytes inside a JSON string
    assertError(await post(cmpl(), new Uint8Array([0x7b, 0x22, 0x70, 0x72, 0x6f, 0x6d, 0x70, 0x74, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d])), 400, null);
    // JSON must be sent as JSON (as OpenAI requires): text/plain, form-urlencoded (curl -d) or no
    // content type at all are 400s naming the header; application/json with a charset is fine
    const body = JSON.stringify({ prompt: 'x', max_tokens: 2 });
    for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonp']) {
      const r = await post(cmpl(), body, { 'content-type': ct });
      assertError(r, 400, null);
      assert.equal(r.json.error.code, 'invalid_content_type');
      assert.match(r.json.error.message, /Content-Type: application\/json/);
    }
    const none = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(cmpl(), { method: 'POST', headers: { 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(none.status, 400);
    assert.match(JSON.parse(none.text).error.message, /no Content-Type header/);
    const charset = await post(cmpl(), body, { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(charset.status, 200);
    assert.equal(charset.json.choices[0].text, 'He');
  });

  test('wrong types and out-of-range parameters name the field', async () => {
    const submittedBefore = engine.submitted.length;
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'prompt'],
      [{ prompt: 5 }, 'prompt'],
      [{ prompt: [1, -2] }, 'prompt'],
      [{ prompt: [1.5] }, 'prompt'],
      [{ prompt: ['a', 'b'] }, 'prompt'],
      [{ prompt: '' }, 'prompt'],
      [{ prompt: 'x', max_tokens: 0 }, 'max_tokens'],
      [{ prompt: 'x', max_tokens: -5 }, 'max_tokens'],
      [{ prompt: 'x', max_tokens: 2.5 }, 'max_tokens'],
      [{ prompt: 'x', max_tokens: '5' }, 'max_tokens'],
      [{ prompt: 'x', temperature: 3 }, 'temperature'],
      [{ prompt: 'x', temperature: 'NaN' }, 'temperature'],
      [{ prompt: 'x', top_p: 0 }, 'top_p'],
      [{ prompt: 'x', top_p: 1.5 }, 'top_p'],
      [{ prompt: 'x', top_k: -2 }, 'top_k'],
      [{ prompt: 'x', min_p: -0.1 }, 'min_p'],
      [{ prompt: 'x', repetition_penalty: 0 }, 'repetition_penalty'],
      [{ prompt: 'x', presence_penalty: 2.5 }, 'presence_penalty'],
      [{ prompt: 'x', frequency_penalty: -3 }, 'frequency_penalty'],
      [{ prompt: 'x', seed: 1.5 }, 'seed'],
      [{ prompt: 'x', n: 0 }, 'n'],
      [{ prompt: 'x', stop: 5 }, 'stop'],
      [{ prompt: 'x', stop: [''] }, 'stop'],
      [{ prompt: 'x', logprobs: 21 }, 'logprobs'],
      [{ prompt: 'x', logprobs: -1 }, 'logprobs'],
      [{ prompt: 'x', echo: true }, 'echo'],
      [{ prompt: 'x', stream: 'yes' }, 'stream'],
      [{ prompt: 'x', stream_options: { include_usage: 1 } }, 'stream_options.include_usage'],
      [{ prompt: 'x', ignore_eos: 1 }, 'ignore_eos'],
      [{ prompt: 'x', user: 7 }, 'user'],
    ];
    for (const [body, param] of cases) assertError(await post(cmpl(), body), 400, param);
    // 1e999 parses to Infinity in JSON: rejected as not finite
    assertError(await post(cmpl(), '{"prompt":"x","temperature":1e999}'), 400, 'temperature');
    assert.equal(engine.submitted.length, submittedBefore, 'nothing invalid reached the engine');
  });

  test('chat validation', async () => {
    assertError(await post(chat(), {}), 400, 'messages');
    assertError(await post(chat(), { messages: [] }), 400, 'messages');
    assertError(await post(chat(), { messages: ['hi'] }), 400, 'messages[0]');
    assertError(await post(chat(), { messages: [{ content: 'hi' }] }), 400, 'messages[0].role');
    assertError(await post(chat(), { messages: [{ role: 'user', content: 5 }] }), 400, 'messages[0].content');
    // roles are OpenAI's; content is required (null only goes with tool_calls)
    const wizard = await post(chat(), { messages: [{ role: 'wizard', content: 'hi' }] });
    assertError(wizard, 400, 'messages[0].role');
    assert.match(wizard.json.error.message, /'system', 'developer', 'user', 'assistant', 'tool'.*"wizard"/);
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'a' }, { role: 5, content: 'b' }] }), 400, 'messages[1].role');
    assertError(await post(chat(), { messages: [{ role: 'user', content: null }] }), 400, 'messages[0].content');
    assertError(await post(chat(), { messages: [{ role: 'user' }] }), 400, 'messages[0].content');
    assertError(await post(chat(), { messages: [{ role: 'system', content: 'x' }, { role: 'assistant', content: null }] }), 400, 'messages[1].content');
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{' } }] }] }), 400, 'messages[1].tool_calls[0].function.arguments');
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: 'f()' }] }), 400, 'messages[1].tool_calls');
    const withCall = await post(chat(), { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'user', content: 'y' }], max_tokens: 1 });
    assert.equal(withCall.status, 200, `an assistant turn with tool_calls and no content is accepted: ${withCall.text}`);
    // the fake engine's template has no tool support: tools are refused unless tool_choice is 'none'
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }] }), 400, 'tools');
    assert.equal((await post(chat(), { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'none', max_tokens: 1 })).status, 200);
    assertError(await post(cmpl(), { prompt: 'x', tools: [{ type: 'function', function: { name: 'f' } }] }), 400, 'tools');
    assertError(await post(`${url}/tokenize`, { messages: [{ role: 'wizard', content: 'x' }] }), 400, 'messages[0].role');
    const empty = await post(chat(), { messages: [{ role: 'system', content: '' }, { role: 'user', content: 'x' }], max_tokens: 1 });
    assert.equal(empty.status, 200, `an empty string is content: ${empty.text}`);
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x' }], logprobs: 3 }), 400, 'logprobs');
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 }), 400, 'top_logprobs');
    // the template rejects this role order (EngineError bad_request)
    assertError(await post(chat(), { messages: [{ role: 'assistant', content: 'x' }] }), 400, 'messages');
    // content parts are joined
    const ok = await post(chat(), { messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }], max_tokens: 1 });
    assert.equal(ok.status, 200);
    assert.equal(engine.decode(engine.submitted.at(-1)!.promptIds), '<user>ab\n<assistant>');
  });

  test('prompt + max_tokens beyond the context', async () => {
    assertError(await post(cmpl(), { prompt: 'x'.repeat(10), max_tokens: 60 }), 400, 'max_tokens');
    assertError(await post(cmpl(), { prompt: 'x'.repeat(10), max_tokens: 1e15 }), 400, 'max_tokens');
    assertError(await post(cmpl(), { prompt: 'x'.repeat(64) }), 400, 'prompt');
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x'.repeat(70) }] }), 400, 'messages');
    assertError(await post(chat(), { messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 100 }), 400, 'max_completion_tokens');
    // exactly fitting is fine
    const r = await post(cmpl(), { prompt: 'x'.repeat(10), max_tokens: 54, ignore_eos: true });
    assert.equal(r.status, 200);
    assert.equal(r.json.usage.completion_tokens, 54);
  });

  test('unknown model is 404; a missing model field is accepted', async () => {
    assertError(await post(cmpl(), { model: 'nope', prompt: 'x' }), 404, 'model');
    assertError(await post(chat(), { model: 'nope', messages: [{ role: 'user', content: 'x' }] }), 404, 'model');
    assert.equal((await post(cmpl(), { prompt: 'x', max_tokens: 1 })).status, 200);
    assert.equal((await post(cmpl(), { model: 'fake-model', prompt: 'x', max_tokens: 1 })).status, 200);
  });

  test('an engine failure is a 500 in the same format, and the server keeps serving', async () => {
    assertError(await post(cmpl(), { prompt: '__explode__' }), 500, null, 'server_error');
    const s = await post(cmpl(), { prompt: '__explode__', stream: true });
    assertError(s, 500, null, 'server_error');
    assert.equal((await post(cmpl(), { prompt: 'x', max_tokens: 1 })).status, 200);
  });

  test('unknown routes are 404 in the error format', async () => {
    const r = await fetch(`${url}/v1/nothing`);
    assert.equal(r.status, 404);
    assert.equal(((await r.json()) as any).error.type, 'invalid_request_error');
  });
});

describe('queue, auth, shutdown', () => {
  test('429 with Retry-After when the waiting queue is full', async () => {
    const engine = new FakeEngine({ maxRunning: 1, maxWaiting: 1, stepMs: 20 });
    const { app, url } = await start(engine);
    try {
      const body = { prompt: 'x', max_tokens: 3 };
      const a = post(`${url}/v1/completions`, body);
      const b = post(`${url}/v1/completions`, body);
      while (engine.submitted.length < 2) await new Promise((r) => setTimeout(r, 2)); // both accepted: one runs, one waits
      const c = await post(`${url}/v1/completions`, body);
      assertError(c, 429, null, 'rate_limit_error');
      assert.equal(c.headers.get('retry-after'), '1');
      const cs = await post(`${url}/v1/completions`, { ...body, stream: true });
      assert.equal(cs.status, 429, 'a streaming request is refused with a status too');
      assert.equal(cs.headers.get('retry-after'), '1');
      assert.equal((await a).json.choices[0].text, 'Hel');
      assert.equal((await b).json.choices[0].text, 'Hel');
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
      const accepted = engine.submitted.length;
      const held = [post(`${url}/v1/completions`, body), post(`${url}/v1/completions`, body)];
      while (engine.submitted.length < accepted + 2) await new Promise((r) => setTimeout(r, 2));
      await assert.rejects(client.completions.create({ model: 'fake-model', prompt: 'x' }), (e: any) => e instanceof OpenAI.RateLimitError);
      await Promise.all(held);
    } finally {
      await app.close();
    }
  });

  test('API key: 401 without or with a wrong key; health and metrics open', async () => {
    const engine = new FakeEngine();
    const { app, url } = await start(engine, { apiKey: 'sekrit' });
    try {
      for (const auth of [undefined, 'Bearer wrong', 'sekrit', 'Bearer sekrit2']) {
        const r = await post(`${url}/v1/completions`, { prompt: 'x' }, auth ? { authorization: auth } : {});
        assertError(r, 401, null);
        assert.equal(r.json.error.code, 'invalid_api_key');
      }
      assert.equal((await fetch(`${url}/v1/models`)).status, 401);
      assert.equal((await post(`${url}/tokenize`, { prompt: 'x' })).status, 401);
      assert.equal((await post(`${url}/detokenize`, { tokens: [65] })).status, 401);
      assert.equal((await fetch(`${url}/health`)).status, 200);
      assert.equal((await fetch(`${url}/metrics`)).status, 200);
      const ok = await post(`${url}/v1/completions`, { prompt: 'x', max_tokens: 2 }, { authorization: 'Bearer sekrit' });
      assert.equal(ok.json.choices[0].text, 'He');
      const good = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sekrit', maxRetries: 0 });
      assert.equal((await good.models.list()).data[0]!.id, 'fake-model');
      const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'nope', maxRetries: 0 });
      await assert.rejects(bad.models.list(), (e: any) => e instanceof OpenAI.AuthenticationError);
    } finally {
      await app.close();
    }
  });

  test('503 while shutting down: engine refusal and draining server', async () => {
    const engine = new FakeEngine({ stepMs: 5 });
    const { app, url } = await start(engine, { modelName: 'served-name' });
    try {
      const inflight = post(`${url}/v1/completions`, { model: 'served-name', prompt: 'x', max_tokens: 10 });
      // shut down only once the engine has the request (a fixed sleep raced on a loaded machine)
      while (engine.submitted.length === 0) await new Promise((r) => setTimeout(r, 2));
      const down = engine.shutdown(5000);
      assertError(await post(`${url}/v1/completions`, { prompt: 'x' }), 503, null, 'service_unavailable');
      assertError(await post(`${url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }], stream: true }), 503, null, 'service_unavailable');
      const done = await inflight;
      assert.equal(done.json.choices[0].text, 'Hello from', 'in-flight requests finish within the grace period');
      await down;
      startDraining(app);
      const drained = await post(`${url}/v1/completions`, { prompt: 'x' });
      assertError(drained, 503, null, 'service_unavailable');
      assert.equal(drained.json.error.code, 'shutting_down');
      assert.equal(drained.headers.get('retry-after'), '5', 'draining 503s say when to retry');
      const health = await fetch(`${url}/health`);
      assert.equal(health.status, 503);
      assert.equal(health.headers.get('retry-after'), '5');
    } finally {
      await app.close();
    }
  });
});

describe('tokenize, detokenize, health, metrics, disconnect', () => {
  const engine = new FakeEngine({ maxContext: 128, stepMs: 5 });
  let app: FastifyInstance;
  let url: string;
  before(async () => ({ app, url } = await start(engine)));
  after(() => app.close());

  test('/tokenize and /detokenize', async () => {
    const t = await post(`${url}/tokenize`, { prompt: 'hé' });
    assert.deepEqual(t.json, { tokens: [104, 233], count: 2, max_model_len: 128 });
    const m = await post(`${url}/tokenize`, { messages: [{ role: 'user', content: 'a' }] });
    assert.equal(m.json.count, '<user>a\n<assistant>'.length);
    const d = await post(`${url}/detokenize`, { tokens: [104, 233] });
    assert.deepEqual(d.json, { prompt: 'hé' });
    assertError(await post(`${url}/tokenize`, {}), 400, 'prompt');
    assertError(await post(`${url}/detokenize`, { tokens: 'abc' }), 400, 'tokens');
    assertError(await post(`${url}/detokenize`, { tokens: [0x110000] }), 400, 'tokens');
    assertError(await post(`${url}/tokenize`, { model: 'x', prompt: 'a' }), 404, 'model');
  });

  test('/health', async () => {
    const r = await fetch(`${url}/health`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
  });

  test('/metrics: histograms, gauges from engine.stats(), counters', async () => {
    await post(`${url}/v1/completions`, { prompt: 'abcd', max_tokens: 3 });
    const r = await fetch(`${url}/metrics`);
    assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
    const text = await r.text();
    for (const name of [
      'slipstream_time_to_first_token_seconds_bucket',
      'slipstream_inter_token_latency_seconds_bucket',
      'slipstream_e2e_request_latency_seconds_bucket',
    ]) {
      assert.ok(text.includes(name), name);
    }
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(value('slipstream_time_to_first_token_seconds_count'), 1);
    assert.equal(value('slipstream_inter_token_latency_seconds_count'), 2);
    assert.equal(value('slipstream_e2e_request_latency_seconds_count'), 1);
    assert.equal(value('slipstream_requests_running'), 0);
    assert.equal(value('slipstream_requests_waiting'), 0);
    assert.equal(value('slipstream_kv_blocks_used'), 0);
    assert.equal(value('slipstream_kv_blocks_total'), 1024);
    assert.equal(value('slipstream_prefix_cache_hit_rate'), 0.25);
    assert.equal(value('slipstream_preemptions_total'), 0);
    assert.equal(value('slipstream_prompt_tokens_total'), 4);
    assert.equal(value('slipstream_generation_tokens_total'), 3);
    assert.match(text, /^slipstream_requests_total\{finish_reason="length"\} 1$/m);
  });

  test('a client disconnecting mid-stream aborts its request in the engine', async () => {
    const before = engine.submitted.length;
    const gotData = new Promise<void>((resolve, reject) => {
      const req = http.request(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        assert.equal(res.statusCode, 200);
        res.once('data', () => {
          req.destroy(); // hang up after the first chunk
          resolve();
        });
      });
      req.on('error', (e) => (e.message.includes('socket hang up') || (e as any).code === 'ECONNRESET' ? undefined : reject(e)));
      req.end(JSON.stringify({ prompt: 'x', max_tokens: 100, ignore_eos: true, stream: true }));
    });
    await gotData;
    const id = engine.submitted[before]!.id;
    for (let i = 0; i < 100 && !engine.aborted.includes(id); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(engine.aborted.includes(id), 'engine.abort was called for the request');
    assert.equal(engine.stats().running, 0);
  });

  test('a client disconnecting from a non-streaming request aborts it too', async () => {
    const before = engine.submitted.length;
    const ac = new AbortController();
    const p = fetch(`${url}/v1/chat/completions`, { method: 'POST', signal: ac.signal, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], ignore_eos: true }) });
    while (engine.submitted.length === before) await new Promise((r) => setTimeout(r, 2));
    ac.abort();
    await assert.rejects(p);
    const id = engine.submitted[before]!.id;
    for (let i = 0; i < 100 && !engine.aborted.includes(id); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(engine.aborted.includes(id));
    assert.equal(engine.stats().running, 0);
    const m = await (await fetch(`${url}/metrics`)).text();
    assert.match(m, /^slipstream_requests_total\{finish_reason="abort"\} 2$/m);
  });

  test('raw SSE framing: [DONE] last, usage only with include_usage', async () => {
    const plain = await post(`${url}/v1/completions`, { prompt: 'x', max_tokens: 2, stream: true });
    assert.match(plain.headers.get('content-type') ?? '', /text\/event-stream/);
    const chunks = sseChunks(plain.text);
    assert.ok(chunks.every((c) => c.usage === undefined));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), 'He');
    const withUsage = sseChunks((await post(`${url}/v1/completions`, { prompt: 'x', max_tokens: 2, stream: true, stream_options: { include_usage: true } })).text);
    assert.ok(withUsage.slice(0, -1).every((c) => c.usage === null));
    assert.deepEqual(withUsage.at(-1).usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, prompt_tokens_details: { cached_tokens: 0 } });
  });
});

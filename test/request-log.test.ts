// The per-request log line and x-request-id (src/server/request-log.ts), against the fake engine:
// every request gets the header (the client's own id when it is sane), one line with the request's
// numbers in text or JSON, including requests refused by auth and ones whose client went away.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../src/server/app.ts';
import { requestIdFrom, type LogFormat } from '../src/server/request-log.ts';
import { FakeEngine } from './helpers/fake-engine.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function start(format: LogFormat, opts: Parameters<typeof buildServer>[1] = {}) {
  const lines: string[] = [];
  const engine = new FakeEngine({ maxContext: 256 });
  const app = buildServer(engine, { ...opts, requestLog: { format, write: (l) => lines.push(l) } });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url, lines, engine };
}

/** Waits until `lines` has `n` entries (lines are written just after the response ends). */
async function waitLines(lines: string[], n: number): Promise<string[]> {
  const deadline = Date.now() + 5000;
  while (lines.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(lines.length, n, `expected ${n} log lines, got ${lines.length}: ${lines.join('')}`);
  return lines;
}

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('request log, text format', () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => (s = await start('text')));
  after(() => s.app.close());

  test('a completion: x-request-id header, one line with every field', async () => {
    s.lines.length = 0;
    const r = await post(`${s.url}/v1/completions`, { model: 'fake-model', prompt: 'Say hi', max_tokens: 5 });
    assert.equal(r.status, 200);
    await r.json();
    const id = r.headers.get('x-request-id');
    assert.match(id ?? '', UUID);
    const [line] = await waitLines(s.lines, 1);
    assert.ok(line!.endsWith('\n') && !line!.slice(0, -1).includes('\n'), 'exactly one line');
    assert.match(line!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /);
    const words = line!.trim().split(' ');
    assert.deepEqual(words.slice(1, 5), [id, 'POST', '/v1/completions', '200']);
    const kv = Object.fromEntries(words.slice(5).map((w) => w.split('=') as [string, string]));
    assert.equal(kv.model, 'fake-model');
    assert.equal(kv.prompt_tokens, '6');
    assert.equal(kv.output_tokens, '5');
    assert.equal(kv.finish_reason, 'length');
    const ttft = Number(kv.ttft_ms);
    const dur = Number(kv.duration_ms);
    assert.ok(ttft > 0 && dur >= ttft, `ttft ${ttft} duration ${dur}`);
  });

  test("the client's x-request-id is kept when sane, replaced when not", async () => {
    const sane = 'gw-7f3a:01/abc+def=@x.y_z';
    for (const [sent, kept] of [
      [sane, true],
      ['has space', false],
      ['x'.repeat(129), false],
      ['quote"', false],
    ] as const) {
      s.lines.length = 0;
      const r = await fetch(`${s.url}/v1/models`, { headers: { 'x-request-id': sent } });
      assert.equal(r.status, 200);
      const got = r.headers.get('x-request-id')!;
      if (kept) assert.equal(got, sent);
      else assert.match(got, UUID);
      const [line] = await waitLines(s.lines, 1);
      assert.equal(line!.split(' ')[1], got);
    }
    assert.equal(requestIdFrom(['a-1', 'b-2']), 'a-1');
    assert.match(requestIdFrom(''), UUID);
  });

  test('streamed chat: the header reaches the SSE response; finish reason stop', async () => {
    s.lines.length = 0;
    const r = await post(`${s.url}/v1/chat/completions`, { model: 'fake-model', messages: [{ role: 'user', content: 'Hi' }], stream: true }, { 'x-request-id': 'trace-42' });
    assert.equal(r.headers.get('x-request-id'), 'trace-42');
    assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
    await r.text();
    const [line] = await waitLines(s.lines, 1);
    assert.match(line!, / trace-42 POST \/v1\/chat\/completions 200 model=fake-model prompt_tokens=\d+ output_tokens=27 ttft_ms=[\d.]+ duration_ms=[\d.]+ finish_reason=stop\n$/);
  });

  test('a bad request is logged with its status and the model it asked for; /health is not', async () => {
    s.lines.length = 0;
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    const r = await post(`${s.url}/v1/completions`, { model: 'no such model', prompt: 'x' });
    assert.equal(r.status, 404);
    assert.match(r.headers.get('x-request-id') ?? '', UUID);
    const [line] = await waitLines(s.lines, 1);
    assert.match(line!, / POST \/v1\/completions 404 model="no such model" duration_ms=[\d.]+\n$/);
  });

  test('a client that goes away mid-request: status 499, finish reason abort', async () => {
    s.lines.length = 0;
    s.engine.stepMs = 20;
    try {
      const submitted = s.engine.submitted.length;
      const req = http.request(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      req.on('error', () => {});
      req.end(JSON.stringify({ model: 'fake-model', prompt: 'Hi', max_tokens: 50, ignore_eos: true }));
      // Gone once the engine has it and a few tokens are out (50 tokens take a second).
      while (s.engine.submitted.length === submitted) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 100));
      req.destroy();
      const [line] = await waitLines(s.lines, 1);
      assert.match(line!, / POST \/v1\/completions 499 model=fake-model prompt_tokens=2 output_tokens=\d+ ttft_ms=[\d.]+ duration_ms=[\d.]+ finish_reason=abort\n$/);
    } finally {
      s.engine.stepMs = 2;
    }
  });
});

describe('request log, JSON format', () => {
  let s: Awaited<ReturnType<typeof start>>;
  before(async () => (s = await start('json', { apiKey: 'sekret' })));
  after(() => s.app.close());

  test('each line is one JSON object with the numbers as numbers', async () => {
    const r = await post(`${s.url}/v1/chat/completions`, { model: 'fake-model', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }, { authorization: 'Bearer sekret' });
    assert.equal(r.status, 200);
    const body = (await r.json()) as { usage: { prompt_tokens: number } };
    const [line] = await waitLines(s.lines, 1);
    const o = JSON.parse(line!) as Record<string, unknown>;
    assert.equal(o.msg, 'request');
    assert.equal(o.level, 'info');
    assert.ok(!Number.isNaN(Date.parse(o.time as string)));
    assert.equal(o.request_id, r.headers.get('x-request-id'));
    assert.deepEqual(
      { method: o.method, path: o.path, status: o.status, model: o.model, prompt_tokens: o.prompt_tokens, output_tokens: o.output_tokens, finish_reason: o.finish_reason },
      { method: 'POST', path: '/v1/chat/completions', status: 200, model: 'fake-model', prompt_tokens: body.usage.prompt_tokens, output_tokens: 4, finish_reason: 'length' },
    );
    assert.equal(typeof o.ttft_ms, 'number');
    assert.equal(typeof o.duration_ms, 'number');
  });

  test('a request refused by the API key check is logged and carries the id', async () => {
    s.lines.length = 0;
    const r = await post(`${s.url}/v1/completions`, { model: 'fake-model', prompt: 'x' }, { 'x-request-id': 'req-401' });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('x-request-id'), 'req-401');
    const [line] = await waitLines(s.lines, 1);
    const o = JSON.parse(line!) as Record<string, unknown>;
    assert.equal(o.request_id, 'req-401');
    assert.equal(o.status, 401);
    assert.equal(o.level, 'warn');
    assert.equal(o.output_tokens, undefined);
  });
});

describe('request log off', () => {
  test('without requestLog: no header, nothing written', async () => {
    const app: FastifyInstance = buildServer(new FakeEngine());
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const r = await fetch(`${url}/v1/models`);
      assert.equal(r.headers.get('x-request-id'), null);
    } finally {
      await app.close();
    }
  });
});

// Bad input and load against a running server (fake engine): 1,000 malformed or out-of-range
// requests and 100 clients hanging up mid-stream, interleaved with good requests. The server must
// not crash, must answer every good request correctly, and afterwards the engine must report
// nothing running and no KV blocks in use (read from /metrics, as an operator would).

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { buildServer } from '../src/server/app.ts';
import { FakeEngine, REPLY } from './helpers/fake-engine.ts';

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

/** POST with raw bytes over node:http (fetch would not send invalid UTF-8 or lie about types). */
function rawPost(url: string, body: Buffer | string, contentType = 'application/json'): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': contentType } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, text: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Starts a stream and hangs up after its first chunk. */
function hangUpMidStream(url: string, body: object): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined); // our own hang-up
    req.end(JSON.stringify(body));
  });
}

/** The i-th bad request: [body bytes, content type]. */
function badRequest(i: number): Buffer | string {
  const kinds: (() => Buffer | string)[] = [
    () => `{"prompt": "x", "max_tokens": ${i}`, // truncated JSON
    () => Buffer.concat([Buffer.from('{"prompt": "'), Buffer.from([0xff, 0xfe, 0xc3, i & 0x7f]), Buffer.from('"}')]), // invalid UTF-8
    () => JSON.stringify({ prompt: 'x', max_tokens: 1e9 + i }), // huge max_tokens
    () => JSON.stringify({ prompt: 'x', temperature: -1 - i }), // negative
    () => `{"prompt": "x", "top_p": NaN}`, // NaN is not JSON
    () => JSON.stringify({ prompt: 'x', top_p: 'NaN' }), // NaN as a string: wrong type
    () => JSON.stringify({ prompt: i }), // wrong type
    () => JSON.stringify({ prompt: 'x', n: -i }),
    () => JSON.stringify({ prompt: 'x', max_tokens: -i - 1 }),
    () => JSON.stringify({ prompt: [1, 2, -i - 1] }),
    () => JSON.stringify({ prompt: 'x', stop: [i] }),
    () => JSON.stringify({ prompt: 'x', logprobs: 100 + i }),
    () => JSON.stringify([i]), // not an object
    () => '',
    () => Buffer.from(Array.from({ length: 64 }, (_, k) => (k * 37 + i) & 0xff)), // noise
    () => JSON.stringify({ messages: 'hi' }),
    () => JSON.stringify({ messages: [{ role: 'user', content: { x: i } }] }),
    () => JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 1e300 }),
  ];
  return kinds[i % kinds.length]!();
}

test('1,000 bad requests and 100 mid-stream hang-ups: no crash, good requests answered, nothing left running', async () => {
  const engine = new FakeEngine({ maxContext: 256, stepMs: 2, maxRunning: 256, maxWaiting: 256 });
  const app = buildServer(engine, {});
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const cmpl = `${url}/v1/completions`;
    const chat = `${url}/v1/chat/completions`;
    const statuses = new Map<number, number>();
    let good = 0;

    const goodRequest = async (k: number) => {
      const isChat = k % 2 === 1;
      const max = 1 + (k % 12);
      const r = await rawPost(isChat ? chat : cmpl, JSON.stringify(isChat ? { messages: [{ role: 'user', content: `q${k}` }], max_tokens: max } : { prompt: `p${k}`, max_tokens: max }));
      assert.equal(r.status, 200, r.text);
      const j = JSON.parse(r.text);
      const text = isChat ? j.choices[0].message.content : j.choices[0].text;
      assert.equal(text, REPLY.slice(0, max));
      assert.equal(j.usage.completion_tokens, max);
      good++;
    };

    // 1,000 bad requests in waves of 50, each wave with good requests and hang-ups mixed in.
    const hangUps: Promise<void>[] = [];
    for (let wave = 0; wave < 20; wave++) {
      const jobs: Promise<unknown>[] = [];
      for (let j = 0; j < 50; j++) {
        const i = wave * 50 + j;
        const ct = i % 7 === 0 ? 'text/plain' : 'application/json';
        jobs.push(
          rawPost(i % 3 === 0 ? chat : cmpl, badRequest(i), ct).then((r) => {
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
            assert.ok(r.status === 400 || r.status === 404, `bad request ${i} got ${r.status}: ${r.text}`);
            const e = JSON.parse(r.text).error;
            assert.equal(e.type, 'invalid_request_error');
          }),
        );
      }
      for (let k = 0; k < 3; k++) jobs.push(goodRequest(wave * 3 + k));
      for (let k = 0; k < 5; k++) {
        const body = k % 2 ? { messages: [{ role: 'user', content: 'x' }], stream: true, ignore_eos: true, max_tokens: 200 } : { prompt: 'x', stream: true, ignore_eos: true, max_tokens: 200 };
        hangUps.push(hangUpMidStream(k % 2 ? chat : cmpl, body));
      }
      await Promise.all(jobs);
    }
    await Promise.all(hangUps);
    assert.equal([...statuses.values()].reduce((a, b) => a + b, 0), 1000);
    assert.equal(statuses.get(400), 1000, `statuses: ${JSON.stringify([...statuses])}`);
    assert.equal(good, 60);

    // Every hung-up stream was aborted in the engine; after idle nothing is running or held.
    let metrics = '';
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
    for (let t = 0; t < 200; t++) {
      metrics = await (await fetch(`${url}/metrics`)).text();
      if (value('slipstream_requests_running') === 0 && value('slipstream_kv_blocks_used') === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(value('slipstream_requests_running'), 0);
    assert.equal(value('slipstream_requests_waiting'), 0);
    assert.equal(value('slipstream_kv_blocks_used'), 0);
    assert.match(metrics, /^slipstream_requests_total\{finish_reason="abort"\} 100$/m);
    assert.equal(new Set(engine.aborted).size, 100);

    // And the server still answers.
    const r = await rawPost(cmpl, JSON.stringify({ prompt: 'end', max_tokens: 3 }));
    assert.equal(JSON.parse(r.text).choices[0].text, 'Hel');
  } finally {
    agent.destroy();
    await app.close();
  }
});

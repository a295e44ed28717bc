// `slipstream serve` as a process, on a tiny random model, with the real engine in its worker
// thread: the openai client works, clients that hang up mid-stream free their KV blocks
// (read back from /metrics), and SIGTERM drains and exits 0.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';
import { startServe, type ServeProcess } from '../src/server/process.ts';

let root: string, srv: ServeProcess, url: string;
const metric = (name: string) => srv.metric(name);

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'ss-serve-'));
  const dir = join(root, 'tiny');
  writeRandomHfModel(dir, { ...TINY_SPECS.llama, maxPosition: 512 }, 5);
  srv = await startServe(['-m', dir, '--api-key', 'sekret'], { SLIPSTREAM_THREADS: '2' });
  url = srv.url;
});

after(() => {
  if (srv?.child.exitCode === null) srv.child.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

describe('slipstream serve (real engine)', () => {
  it('answers the openai client, streaming and not, at temperature 0 identically', async () => {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sekret' });
    const a = await client.completions.create({ model: 'tiny', prompt: 'the old man', max_tokens: 12, temperature: 0 });
    assert.equal(a.choices[0]!.finish_reason, 'length');
    assert.equal(a.usage!.completion_tokens, 12);
    const stream = await client.completions.create({ model: 'tiny', prompt: 'the old man', max_tokens: 12, temperature: 0, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.text ?? '';
    assert.equal(text, a.choices[0]!.text);
    await assert.rejects(new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong' }).models.list(), /401/);
  });

  it('100 clients that disconnect mid-stream free their KV blocks', async () => {
    const controllers = Array.from({ length: 100 }, () => new AbortController());
    await Promise.all(
      controllers.map(async (c, i) => {
        const res = await fetch(`${url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: 'Bearer sekret' },
          body: JSON.stringify({ prompt: `request ${i} `.repeat(10), max_tokens: 400, stream: true, ignore_eos: true }),
          signal: c.signal,
        });
        const reader = res.body!.getReader();
        await reader.read(); // the first chunk arrived: the request is running
        c.abort();
      }),
    );
    let used = -1;
    for (let i = 0; i < 100 && used !== 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      used = await metric('slipstream_kv_blocks_used');
    }
    assert.equal(used, 0);
    assert.equal(await metric('slipstream_requests_running'), 0);
  });

  it('SIGTERM: finishes in-flight work and exits 0', async () => {
    const inflight = fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sekret' },
      body: JSON.stringify({ prompt: 'one more', max_tokens: 30, ignore_eos: true }),
    });
    await new Promise((r) => setTimeout(r, 100));
    const exited = srv.stop();
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 30);
    assert.equal(await exited, 0);
  });
});

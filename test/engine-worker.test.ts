import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError, type TokenEvent } from '../src/engine/api.ts';
import { kvBlocksFor, startEngineHost, type EngineHost } from '../src/engine/worker-host.ts';
import { KvPool } from '../src/models/kv.ts';
import { Tokenizer } from '../src/formats/tokenizer.ts';
import { writeRandomHfModel, TINY_SPECS, specToConfig } from '../src/models/random.ts';
import { opts } from './helpers/engine-mock.ts';

/** Submits and collects the request's events until every choice has finished. */
function run(host: EngineHost, id: string, promptIds: number[], sampling = opts()) {
  const events: TokenEvent[] = [];
  let open = sampling.n;
  let done!: () => void;
  const finished = new Promise<TokenEvent[]>((res) => (done = () => res(events)));
  const accepted = host.submit({ id, promptIds, sampling }, (evs) => {
    events.push(...evs);
    for (const e of evs) if (e.finishReason && --open === 0) done();
  });
  return { accepted, finished, events };
}

describe('engine worker host', () => {
  let dir: string;
  let host: EngineHost;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'slipstream-host-'));
    writeRandomHfModel(dir, TINY_SPECS.llama, 5);
    host = await startEngineHost({ model: dir, kvCacheMemory: 64 * 16 * KvPool.bytesPerToken(specToConfig(TINY_SPECS.llama)), maxSeqs: 8, maxWaiting: 20, modelName: 'tiny' });
  });
  after(async () => {
    await host.shutdown(0);
    rmSync(dir, { recursive: true, force: true });
  });

  it('sizes the KV pool from the memory budget at the model\'s bytes per token', () => {
    const bpt = KvPool.bytesPerToken(specToConfig(TINY_SPECS.llama));
    assert.deepEqual(host.kv, { blocks: 64, blockSize: 16, bytesPerToken: bpt });
    assert.equal(host.modelName, 'tiny');
    assert.equal(host.maxContext, 256);
    assert.equal(kvBlocksFor(100, 16, 1024, 4, 100 * 16 * 10 + 5), 10);
    assert.equal(kvBlocksFor(100, 16, 1024, 4) <= 64 * 4, true, 'default capped to maxSeqs full contexts');
    assert.throws(() => kvBlocksFor(100, 16, 1024, 4, 10), /holds no block/);
  });

  it('runs concurrent requests off the main thread and routes each its events', async () => {
    const prompts = Array.from({ length: 6 }, (_, i) => host.encode(`hello world number ${i}`, true));
    // Reference: each alone.
    const alone: number[][] = [];
    const aloneText: string[] = [];
    for (let i = 0; i < prompts.length; i++) {
      const r = run(host, `solo${i}`, prompts[i]!, opts({ maxTokens: 10, ignoreEos: true }));
      await r.accepted;
      const evs = await r.finished;
      alone.push(evs.map((e) => e.tokenId));
      aloneText.push(evs.map((e) => e.text).join(''));
    }
    const runs = prompts.map((p, i) => run(host, `c${i}`, p, opts({ maxTokens: 10, ignoreEos: true })));
    await Promise.all(runs.map((r) => r.accepted));
    const results = await Promise.all(runs.map((r) => r.finished));
    results.forEach((evs, i) => {
      assert.ok(evs.every((e) => e.requestId === `c${i}`));
      assert.deepEqual(evs.map((e) => e.tokenId), alone[i]);
      assert.equal(evs.at(-1)!.finishReason, 'length');
      assert.equal(evs.at(-1)!.completionTokens, 10);
      assert.equal(evs.at(-1)!.promptTokens, prompts[i]!.length);
      assert.equal(evs.map((e) => e.text).join(''), aloneText[i]);
      assert.ok(aloneText[i]!.length > 0);
    });
    const st = host.stats();
    assert.equal(st.kvBlocksUsed, 0);
    assert.equal(st.running + st.waiting, 0);
    assert.ok(st.generationTokens >= 120);
    assert.ok(st.prefixCacheHitRate >= 0 && st.prefixCacheHitRate <= 1);
  });

  it('aborts a request: a final abort event, and its blocks are freed', async () => {
    const r = run(host, 'long', host.encode('a long story', true), opts({ maxTokens: 200, ignoreEos: true, n: 2 }));
    await r.accepted;
    while (r.events.length < 4) await new Promise((res) => setTimeout(res, 2));
    host.abort('long');
    const evs = await r.finished;
    const finals = evs.filter((e) => e.finishReason);
    assert.deepEqual(finals.map((e) => [e.index, e.finishReason, e.tokenId]).sort(), [[0, 'abort', -1], [1, 'abort', -1]]);
    // Stats come with every worker message; the abort's events came with the freed pool.
    assert.equal(host.stats().kvBlocksUsed, 0);
  });

  it('rejects bad requests with EngineError codes, and the tokenizer works on the main thread', async () => {
    await assert.rejects(run(host, 'big', [5, 6, 7], opts({ maxTokens: 1000 })).accepted, (e: unknown) => e instanceof EngineError && e.code === 'context_length');
    await assert.rejects(run(host, 'bad', [], opts()).accepted, (e: unknown) => e instanceof EngineError && e.code === 'bad_request');
    // The main thread's tokenizer (rebuilt from the worker's) is the model directory's.
    const ref = Tokenizer.fromDir(dir);
    const ids = host.encode('the world', false);
    assert.deepEqual(ids, ref.encode('the world', { addSpecialTokens: false }));
    assert.deepEqual(host.encode('the world', true), ref.encode('the world', { addSpecialTokens: true }));
    assert.equal(host.decode(ids), ref.decode(ids));
    assert.throws(() => host.decode([-1]), (e: unknown) => e instanceof EngineError && e.code === 'bad_request');
    assert.throws(() => host.applyChatTemplate([{ role: 'user', content: 'hi' }], true), (e: unknown) => e instanceof EngineError);
  });

  it('shutdown waits for in-flight requests, then refuses new ones; past the grace period it aborts them', async () => {
    const mem = 16 * 16 * KvPool.bytesPerToken(specToConfig(TINY_SPECS.llama));
    const h = await startEngineHost({ model: dir, kvCacheMemory: mem });
    const a = run(h, 'a', h.encode('one two', true), opts({ maxTokens: 40, ignoreEos: true }));
    await a.accepted;
    const t0 = Date.now();
    await h.shutdown(20_000);
    assert.ok(Date.now() - t0 < 20_000, 'resolved when the request finished, not at the end of the grace period');
    assert.equal((await a.finished).at(-1)!.finishReason, 'length');
    await assert.rejects(h.submit({ id: 'c', promptIds: [5], sampling: opts() }, () => {}), (e: unknown) => e instanceof EngineError && e.code === 'shutting_down');

    const h2 = await startEngineHost({ model: dir, kvCacheMemory: mem });
    const b = run(h2, 'b', h2.encode('three', true), opts({ maxTokens: 200, ignoreEos: true }));
    await b.accepted;
    while (b.events.length === 0) await new Promise((res) => setTimeout(res, 1));
    await h2.shutdown(0);
    const final = (await b.finished).at(-1)!;
    assert.equal(final.finishReason, 'abort');
    assert.equal(final.completionTokens, b.events.filter((e) => e.tokenId >= 0).length);
  });

  it('a model that fails to load rejects startEngineHost with the reason', async () => {
    const logs: string[] = [];
    await assert.rejects(startEngineHost({ model: join(dir, 'missing') }, (m) => logs.push(m)), (e: Error) => e.name === 'ModelLoadError' && /no such file or directory/.test(e.message));
    // reported once, by whoever called startEngineHost (the CLI prints one line), not logged too
    assert.doesNotMatch(logs.join('\n'), /missing/);
  });
});

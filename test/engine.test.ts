import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineError, type TokenEvent } from '../src/engine/api.ts';
import { makeBatch } from '../src/engine/batch.ts';
import { Engine } from '../src/engine/engine.ts';
import { StopMatcher } from '../src/engine/stop.ts';
import { applyPenalties, topKIds } from '../src/engine/penalties.ts';
import { KvPool } from '../src/models/kv.ts';
import { loadModelSync } from '../src/models/load.ts';
import { writeRandomHfModel, TINY_SPECS } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { MockModel, mockTokenizer, opts, runToEnd, collect, expectedGreedy, FIRST_TEXT, type ChoiceResult } from './helpers/engine-mock.ts';

const tok = mockTokenizer();
const prompt = (n: number, base = 10) => Array.from({ length: n }, (_, i) => FIRST_TEXT + ((base + i * 7) % 60));

function engine(o: Partial<ConstructorParameters<typeof Engine>[2]> = {}, model = new MockModel()) {
  return new Engine(model, tok, { numBlocks: 64, blockSize: 4, maxBatchTokens: 32, maxSeqs: 8, eosIds: [], ...o });
}

describe('StopMatcher', () => {
  it('holds back a possible stop-string start and cuts at the stop string across pieces', () => {
    const m = new StopMatcher(['END', 'xyz']);
    assert.deepEqual(m.push('hello E'), { text: 'hello ', stopped: false });
    assert.deepEqual(m.push('N'), { text: '', stopped: false });
    assert.deepEqual(m.push('Xtra E'), { text: 'ENXtra ', stopped: false });
    assert.deepEqual(m.push('ND and more'), { text: '', stopped: true });
    assert.equal(m.flush(), '');
    const n = new StopMatcher(['END']);
    assert.deepEqual(n.push('abc EN'), { text: 'abc ', stopped: false });
    assert.equal(n.flush(), 'EN');
    assert.deepEqual(new StopMatcher([]).push('END'), { text: 'END', stopped: false });
  });
});

describe('penalties', () => {
  it('repetition divides positive / multiplies negative logits of seen tokens; presence and frequency subtract', () => {
    const x = Float32Array.of(2, -2, 2, 2, 1);
    applyPenalties(x, { repetitionPenalty: 2, presencePenalty: 0.5, frequencyPenalty: 0.25 }, new Set([0, 1]), new Map([[2, 2], [1, 1]]));
    // 0: prompt only -> 2/2; 1: prompt+output once -> -2*2 - 0.5 - 0.25; 2: output twice -> 2/2 - 0.5 - 0.5; 3, 4 untouched
    assert.deepEqual(Array.from(x), [1, -4.75, 0, 2, 1]);
    assert.deepEqual(topKIds(Float32Array.of(1, 5, 3, 5, 0), 3), [1, 3, 2]);
  });
});

describe('makeBatch', () => {
  it('packs rows, positions and KV slots, and plans one attention call per prompt chunk and per run of decode tokens', () => {
    const b = makeBatch([
      { tokens: [11], startPos: 5, blockTable: Int32Array.of(3, 4) }, //       decode
      { tokens: [12], startPos: 2, blockTable: Int32Array.of(7) }, //          decode
      { tokens: [1, 2, 3], startPos: 0, blockTable: Int32Array.of(9), logits: 'none' }, // prompt chunk
      { tokens: [13], startPos: 4, blockTable: Int32Array.of(1, 2), logits: 'all' }, //  decode
    ], 4);
    assert.deepEqual([...b.tokens], [11, 12, 1, 2, 3, 13]);
    assert.deepEqual([...b.positions], [5, 2, 0, 1, 2, 4]);
    assert.deepEqual([...b.slots], [4 * 4 + 1, 7 * 4 + 2, 36, 37, 38, 2 * 4]);
    assert.deepEqual(b.seqs.map((s) => [s.row, s.n, s.startPos]), [[0, 1, 5], [1, 1, 2], [2, 3, 0], [5, 1, 4]]);
    assert.deepEqual([...b.logitRows], [0, 1, 5]);
    assert.equal(b.runs.length, 3);
    const [d, p, d2] = b.runs;
    assert.ok(d && p && d2);
    assert.deepEqual([d.row, d.n, d.decode!.maxBlocks, [...d.decode!.tables], [...d.decode!.lens]], [0, 2, 2, [3, 4, 7, 0], [6, 3]]);
    assert.deepEqual([p.row, p.n, p.startPos, p.decode], [2, 3, 0, undefined]);
    assert.deepEqual([d2.row, d2.n, [...d2.decode!.lens]], [5, 1, [5]]);
    // Prompt chunks only: the last row still gives logits (the model wants one).
    assert.deepEqual([...makeBatch([{ tokens: [1, 2], startPos: 0, blockTable: Int32Array.of(0), logits: 'none' }], 4).logitRows], [1]);
  });
});

describe('Engine with a mock model', () => {
  it('generates the hand-computed tokens, with chunked prefill under the token budget', () => {
    const model = new MockModel();
    const e = engine({ maxBatchTokens: 8 }, model);
    const p = prompt(19);
    e.submit({ id: 'a', promptIds: p, sampling: opts({ maxTokens: 5 }) });
    const r = runToEnd(e).get('a/0')!;
    assert.deepEqual(r.tokens, expectedGreedy(p, 5));
    assert.equal(r.finishReason, 'length');
    // 19 prompt tokens in chunks of at most 8, then one token per decode step
    assert.deepEqual(model.calls, [8, 8, 3, 1, 1, 1, 1]);
    const last = r.events.at(-1)!;
    assert.equal(last.promptTokens, 19);
    assert.equal(last.completionTokens, 5);
    assert.equal(r.text, tok.decode(r.tokens));
    assert.equal(e.stats().kvBlocksUsed, 0);
  });

  it('mixes decode tokens (first rows) and prompt chunks in one step', () => {
    const e = engine({ maxBatchTokens: 6 });
    e.submit({ id: 'a', promptIds: prompt(3), sampling: opts({ maxTokens: 4 }) });
    e.step(); // a's prompt
    e.submit({ id: 'b', promptIds: prompt(12, 3), sampling: opts({ maxTokens: 2 }) });
    e.submit({ id: 'c', promptIds: prompt(12, 5), sampling: opts({ maxTokens: 2 }) });
    e.step();
    assert.deepEqual(e.lastStep!.seqs.map((s) => [s.requestId, s.n]), [['a', 1], ['b', 5]]);
    e.step();
    assert.deepEqual(e.lastStep!.seqs.map((s) => [s.requestId, s.n, s.startPos]), [['a', 1, 4], ['b', 5, 5]]);
    runToEnd(e);
  });

  it('16 concurrent requests give the same tokens as each alone', () => {
    const prompts = Array.from({ length: 16 }, (_, i) => prompt(3 + i * 2, i));
    const alone = prompts.map((p, i) => {
      const e = engine();
      e.submit({ id: `r${i}`, promptIds: p, sampling: opts({ maxTokens: 10 }) });
      return runToEnd(e).get(`r${i}/0`)!.tokens;
    });
    const e = engine({ maxSeqs: 16, maxBatchTokens: 40 });
    prompts.forEach((p, i) => e.submit({ id: `r${i}`, promptIds: p, sampling: opts({ maxTokens: 10 }) }));
    const all = runToEnd(e);
    prompts.forEach((p, i) => {
      assert.deepEqual(all.get(`r${i}/0`)!.tokens, alone[i]);
      assert.deepEqual(alone[i], expectedGreedy(p, 10));
    });
  });

  it('serves a shared prefix from the cache: the second request computes only the rest', () => {
    const model = new MockModel();
    const e = engine({}, model);
    const shared = prompt(8); // two full blocks of 4
    const p1 = [...shared, FIRST_TEXT + 1, FIRST_TEXT + 2];
    const p2 = [...shared, FIRST_TEXT + 3];
    e.submit({ id: 'a', promptIds: p1, sampling: opts({ maxTokens: 2 }) });
    const ra = runToEnd(e).get('a/0')!;
    assert.equal(ra.events[0]!.cachedTokens, 0);
    model.calls.length = 0;
    e.submit({ id: 'b', promptIds: p2, sampling: opts({ maxTokens: 3 }) });
    const rb = runToEnd(e).get('b/0')!;
    assert.equal(rb.events[0]!.cachedTokens, 8);
    assert.equal(model.calls[0], 1, 'only the token after the cached prefix is computed');
    assert.deepEqual(rb.tokens, expectedGreedy(p2, 3));
    const st = e.stats();
    assert.equal(st.prefixCacheHitRate, 8 / (p1.length + p2.length));
    assert.equal(st.promptTokens, p1.length + p2.length);
    // A prompt that is entirely cached still computes its last token (whose logits it needs).
    model.calls.length = 0;
    e.submit({ id: 'c', promptIds: shared, sampling: opts({ maxTokens: 1 }) });
    const rc = runToEnd(e).get('c/0')!;
    assert.equal(rc.events[0]!.cachedTokens, 4);
    assert.deepEqual(model.calls, [4]);
    assert.deepEqual(rc.tokens, expectedGreedy(shared, 1));
  });

  it('preempts under a tiny KV pool and still completes every request with the same tokens', () => {
    const prompts = Array.from({ length: 6 }, (_, i) => prompt(6, i * 3));
    const logs: string[] = [];
    const e = engine({ numBlocks: 10, blockSize: 4, maxSeqs: 6, log: (m) => logs.push(m) });
    prompts.forEach((p, i) => e.submit({ id: `r${i}`, promptIds: p, sampling: opts({ maxTokens: 20 }) }));
    const all = runToEnd(e);
    assert.ok(e.stats().preemptions > 0, 'the pool was too small for all six at once');
    assert.ok(logs.some((l) => /preempted request r\d/.test(l)));
    prompts.forEach((p, i) => {
      const r = all.get(`r${i}/0`)!;
      assert.equal(r.finishReason, 'length');
      assert.deepEqual(r.tokens, expectedGreedy(p, 20));
    });
    assert.equal(e.stats().kvBlocksUsed, 0);
  });

  it('abort frees the blocks at once and emits a final abort event', () => {
    const e = engine();
    e.submit({ id: 'a', promptIds: prompt(10), sampling: opts({ maxTokens: 50, n: 2 }) });
    e.submit({ id: 'b', promptIds: prompt(5), sampling: opts({ maxTokens: 50 }) });
    for (let i = 0; i < 3; i++) e.step();
    assert.ok(e.stats().kvBlocksUsed > 0);
    assert.equal(e.abort('a'), true);
    assert.equal(e.abort('zzz'), false);
    e.abort('b');
    assert.equal(e.stats().kvBlocksUsed, 0);
    const ev = e.step();
    assert.deepEqual(ev.map((x) => [x.requestId, x.index, x.tokenId, x.finishReason]), [['a', 0, -1, 'abort'], ['a', 1, -1, 'abort'], ['b', 0, -1, 'abort']]);
    assert.equal(e.hasWork(), false);
    assert.deepEqual(e.stats().running + e.stats().waiting, 0);
  });

  it('rejects a full queue, a too-long context and malformed requests with EngineError codes', () => {
    const e = engine({ maxWaiting: 2, maxContext: 40 });
    e.submit({ id: 'a', promptIds: prompt(4), sampling: opts() });
    e.submit({ id: 'b', promptIds: prompt(4), sampling: opts() });
    const code = (f: () => void) => {
      try {
        f();
      } catch (err) {
        assert.ok(err instanceof EngineError);
        return err.code;
      }
      return 'none';
    };
    assert.equal(code(() => e.submit({ id: 'c', promptIds: prompt(4), sampling: opts() })), 'queue_full');
    assert.equal(code(() => e.submit({ id: 'd', promptIds: prompt(30), sampling: opts({ maxTokens: 11 }) })), 'context_length');
    assert.equal(code(() => e.submit({ id: 'a', promptIds: prompt(4), sampling: opts() })), 'bad_request');
    assert.equal(code(() => e.submit({ id: 'e', promptIds: [], sampling: opts() })), 'bad_request');
    assert.equal(code(() => e.submit({ id: 'f', promptIds: [9999], sampling: opts() })), 'bad_request');
    assert.equal(code(() => e.submit({ id: 'g', promptIds: prompt(2), sampling: opts({ temperature: NaN }) })), 'bad_request');
    assert.equal(code(() => e.submit({ id: 'h', promptIds: prompt(2), sampling: opts({ logprobs: 21 }) })), 'bad_request');
    runToEnd(e);
    e.submit({ id: 'c', promptIds: prompt(4), sampling: opts() }); // room again
    // the pool caps the context: 8 blocks of 4 tokens
    assert.equal(engine({ numBlocks: 8 }).maxContext, 32);
  });

  it('stops at a stop string split across tokens, without emitting it', () => {
    const words = ['a', 'b', 'c', 'd', 'e'].map((w) => tok.tokenToId(w)!);
    // The mock spells "abcdeabcde..." after any prompt, one letter per token.
    const model = new MockModel((ctx) => words[(ctx.length - 3) % words.length]!);
    const e = engine({}, model);
    e.submit({ id: 's', promptIds: prompt(3), sampling: opts({ maxTokens: 20, stop: ['cdea'] }) });
    e.submit({ id: 'n', promptIds: prompt(3), sampling: opts({ maxTokens: 4, stop: ['zzz'] }) });
    const all = runToEnd(e);
    const s = all.get('s/0')!;
    assert.equal(s.text, 'ab');
    assert.equal(s.finishReason, 'stop');
    assert.equal(s.tokens.length, 6, 'stops at the token that completes the stop string');
    assert.equal(s.events.at(-1)!.completionTokens, 6);
    // 'c' and 'd' were held back (they could start the stop string) and never shown
    assert.deepEqual(s.events.map((x) => x.text), ['a', 'b', '', '', '', '']);
    const n = all.get('n/0')!;
    assert.equal(n.text, 'abcd');
    assert.equal(n.finishReason, 'length');
  });

  it('stops on EOS (unless ignoreEos) and on stop token ids', () => {
    const model = new MockModel((ctx) => (ctx.length >= 5 ? 2 : FIRST_TEXT + ctx.length));
    const e = engine({ eosIds: [2] }, model);
    e.submit({ id: 'eos', promptIds: prompt(2), sampling: opts({ maxTokens: 10 }) });
    e.submit({ id: 'ign', promptIds: prompt(2), sampling: opts({ maxTokens: 6, ignoreEos: true }) });
    e.submit({ id: 'tid', promptIds: prompt(2), sampling: opts({ maxTokens: 10, stopTokenIds: [FIRST_TEXT + 3] }) });
    const all = runToEnd(e);
    assert.deepEqual(all.get('eos/0')!.tokens, [FIRST_TEXT + 2, FIRST_TEXT + 3, FIRST_TEXT + 4, 2]);
    assert.equal(all.get('eos/0')!.finishReason, 'stop');
    assert.equal(all.get('ign/0')!.tokens.length, 6);
    assert.equal(all.get('ign/0')!.finishReason, 'length');
    assert.deepEqual(all.get('tid/0')!.tokens, [FIRST_TEXT + 2, FIRST_TEXT + 3]);
    assert.equal(all.get('tid/0')!.finishReason, 'stop');
  });

  it('n > 1: choices share the prompt blocks, sample independently and reproducibly with a seed', () => {
    const model = new MockModel();
    const e = engine({}, model);
    const p = prompt(13);
    const samp = opts({ n: 3, maxTokens: 12, temperature: 1.5, seed: 7 });
    e.submit({ id: 'x', promptIds: p, sampling: samp });
    const first = runToEnd(e);
    // Later choices computed only the partial last block (13 = 3 full blocks + 1 token).
    assert.equal(model.calls[0], 13);
    assert.deepEqual(first.get('x/1')!.events[0]!.cachedTokens, 0);
    const toks = [0, 1, 2].map((i) => first.get(`x/${i}`)!.tokens);
    assert.ok(toks.every((t) => t.length === 12));
    assert.ok(new Set(toks.map((t) => t.join())).size > 1, 'choices draw from distinct streams');
    // The same seed reproduces every choice, whatever else runs alongside.
    const e2 = engine();
    e2.submit({ id: 'other', promptIds: prompt(7, 2), sampling: opts({ maxTokens: 9, temperature: 1 }) });
    e2.submit({ id: 'x', promptIds: p, sampling: samp });
    const second = runToEnd(e2);
    for (const i of [0, 1, 2]) assert.deepEqual(second.get(`x/${i}`)!.tokens, toks[i]);
    assert.equal(e.stats().kvBlocksUsed, 0);
    // At temperature 0 every choice is the greedy continuation.
    const e3 = engine();
    e3.submit({ id: 'g', promptIds: p, sampling: opts({ n: 2, maxTokens: 5 }) });
    const g = runToEnd(e3);
    assert.deepEqual(g.get('g/1')!.tokens, expectedGreedy(p, 5));
    assert.deepEqual(g.get('g/0')!.tokens, expectedGreedy(p, 5));
  });

  it('logprobs: the chosen token and top alternatives are a log-softmax of the logits', () => {
    const e = engine();
    const p = prompt(5);
    e.submit({ id: 'l', promptIds: p, sampling: opts({ maxTokens: 3, logprobs: 3 }) });
    const r = runToEnd(e).get('l/0')!;
    const target = expectedGreedy(p, 1)[0]!;
    const ev = r.events[0]!;
    assert.equal(ev.tokenId, target);
    // Hand computation: logits 4 - 0.25 d for d = 0..V-1 around the target.
    let z = 0;
    for (let d = 0; d < 320; d++) z += Math.exp(-0.25 * d);
    assert.ok(Math.abs(ev.logprob! - -Math.log(z)) < 1e-4);
    assert.deepEqual(ev.topLogprobs!.map((t) => t.id), [target, (target + 1) % 320, (target + 2) % 320]);
    assert.ok(Math.abs(ev.topLogprobs![1]!.logprob - (ev.logprob! - 0.25)) < 1e-4);
    assert.equal(ev.topLogprobs![0]!.token, tok.decode([target]));
    let total = 0;
    for (let d = 0; d < 320; d++) total += Math.exp(ev.logprob! - 0.25 * d);
    assert.ok(Math.abs(total - 1) < 1e-4, 'probabilities sum to 1');
  });

  it('penalties change the distribution; a seed makes sampling reproducible', () => {
    const p = prompt(4);
    // Greedy with a strong frequency penalty never repeats a token the rule keeps favouring.
    const model = new MockModel(() => FIRST_TEXT + 5);
    const e = engine({}, model);
    e.submit({ id: 'pen', promptIds: p, sampling: opts({ maxTokens: 4, frequencyPenalty: 1 }) });
    e.submit({ id: 'rep', promptIds: p, sampling: opts({ maxTokens: 3, repetitionPenalty: 100 }) });
    e.submit({ id: 'plain', promptIds: p, sampling: opts({ maxTokens: 3 }) });
    const all = runToEnd(e);
    assert.deepEqual(all.get('plain/0')!.tokens, [FIRST_TEXT + 5, FIRST_TEXT + 5, FIRST_TEXT + 5]);
    // Logits 4 - 0.25 d above the peak, minus 1 per earlier use: the peak (4), then +1 (3.75 vs 3),
    // +2 (3.5 vs 3 and 2.75), +3 (3.25 vs 3, 2.75, 2.5).
    assert.deepEqual(all.get('pen/0')!.tokens, [FIRST_TEXT + 5, FIRST_TEXT + 6, FIRST_TEXT + 7, FIRST_TEXT + 8]);
    const rep = all.get('rep/0')!.tokens;
    assert.equal(rep[0], FIRST_TEXT + 5);
    assert.notEqual(rep[1], FIRST_TEXT + 5);
    const run = (seed: number | undefined) => {
      const en = engine();
      en.submit({ id: 's', promptIds: p, sampling: opts({ maxTokens: 16, temperature: 2, seed }) });
      return runToEnd(en).get('s/0')!.tokens;
    };
    assert.deepEqual(run(123), run(123));
    assert.notDeepEqual(run(123), run(124));
  });

  it('a failing forward fails the requests of that step with an error event, and the engine goes on', () => {
    let fail = true;
    const model = new MockModel();
    const inner = model.forward.bind(model);
    model.forward = (b, kv) => {
      if (fail) {
        fail = false;
        throw new Error('boom');
      }
      return inner(b, kv);
    };
    const e = engine({}, model);
    e.submit({ id: 'a', promptIds: prompt(3), sampling: opts() });
    const ev = e.step();
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.finishReason, 'abort');
    assert.match(ev[0]!.error!, /boom/);
    assert.equal(e.stats().kvBlocksUsed, 0);
    e.submit({ id: 'b', promptIds: prompt(3), sampling: opts({ maxTokens: 2 }) });
    assert.equal(runToEnd(e).get('b/0')!.tokens.length, 2);
  });
});

describe('Engine with a real tiny model', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'slipstream-engine-'));
    writeRandomHfModel(dir, TINY_SPECS.llama, 3);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('at temperature 0 a request gives the same tokens alone or among 15 others', () => {
    const lm = loadModelSync(dir, cpuBackend());
    const mk = () => new Engine(lm.model, lm.tokenizer, { numBlocks: 128, blockSize: 16, maxBatchTokens: 64, maxSeqs: 16, eosIds: [] });
    const prompts = Array.from({ length: 16 }, (_, i) => Array.from({ length: 5 + ((i * 7) % 40) }, (_, j) => 3 + ((i * 31 + j * 17) % 300)));
    const alone = prompts.map((p) => {
      const e = mk();
      e.submit({ id: 'x', promptIds: p, sampling: opts({ maxTokens: 12 }) });
      return runToEnd(e).get('x/0')!;
    });
    const e = mk();
    prompts.forEach((p, i) => e.submit({ id: `r${i}`, promptIds: p, sampling: opts({ maxTokens: 12 }) }));
    const all = new Map<string, ChoiceResult>();
    let maxDecodeRows = 0;
    while (e.hasWork()) {
      collect(all, e.step() as TokenEvent[]);
      maxDecodeRows = Math.max(maxDecodeRows, e.lastStep?.seqs.filter((s) => s.n === 1).length ?? 0);
    }
    assert.ok(maxDecodeRows >= 8, `decodes were batched (${maxDecodeRows} rows)`);
    prompts.forEach((_, i) => {
      assert.deepEqual(all.get(`r${i}/0`)!.tokens, alone[i]!.tokens, `request ${i}`);
      assert.equal(all.get(`r${i}/0`)!.text, alone[i]!.text);
    });
    // KV bytes per token are the model's theoretical figure.
    assert.equal(e.kv.bytes, 128 * 16 * KvPool.bytesPerToken(lm.config));
    assert.equal(KvPool.bytesPerToken(lm.config), 2 * lm.config.nLayers * lm.config.nKvHeads * lm.config.headDim * 4);
  });

  it('Model.forward refuses a batch whose attention runs do not cover its sequences', () => {
    const lm = loadModelSync(dir, cpuBackend());
    const kv = new KvPool(lm.config, 8, 4);
    const parts = [
      { tokens: [5], startPos: 0, blockTable: Int32Array.of(0) },
      { tokens: [6, 7], startPos: 0, blockTable: Int32Array.of(1) },
    ];
    assert.doesNotThrow(() => lm.model.forward(makeBatch(parts, 4), kv));
    const b = makeBatch(parts, 4);
    assert.throws(() => lm.model.forward({ ...b, runs: b.runs.slice(0, 1) }, kv), /attention runs cover 1 of 2 sequences/);
    assert.throws(() => lm.model.forward({ ...b, runs: [b.runs[1]!, b.runs[0]!] }, kv), /attention runs must cover the sequences in order/);
    const stale = makeBatch([{ tokens: [5], startPos: 1, blockTable: Int32Array.of(0) }, parts[1]!], 4);
    assert.throws(() => lm.model.forward({ ...b, runs: stale.runs }, kv), /decode run at row 0 does not match sequence 0/);
  });
});

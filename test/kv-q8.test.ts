// The q8_0 KV cache (`--kv-dtype q8_0`): kvWrite quantizes each token's head_dim row as ggml's
// quantize_row_q8_0, and the attention kernels read q8_0 keys and values. Native (every ISA this
// CPU has) against the float64 ref backend on the same q8_0 pools; prefill rows against decode
// steps and a sequence alone against a batch, bit for bit; and the error against f32 attention.
//
// Bound (|cpu - ref|, both reading the same quantized pools, each value d * q exact in f32):
// 1e-5 * max|v|, as for f32/f16 pools (test/ops.test.ts).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../src/engine/engine.ts';
import { kvBlocksFor } from '../src/engine/worker-protocol.ts';
import { defaultModelDir } from '../src/models/default.ts';
import { KvPool } from '../src/models/kv.ts';
import { loadModelSync } from '../src/models/load.ts';
import { TINY_SPECS, writeRandomHfModel } from '../src/models/random.ts';
import { startServe } from '../src/server/process.ts';
import type { Backend } from '../src/tensor/backend.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { dequantizeQ8_0, quantizeQ8_0 } from '../src/tensor/dtype.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { cpuInfo } from '../src/tensor/runtime.ts';
import { Tensor } from '../src/tensor/tensor.ts';
import { collect, opts as samplingOpts, type ChoiceResult } from './helpers/engine-mock.ts';
import { rng } from './helpers/random.ts';

const cpu = cpuBackend();
const ref: Backend = refBackend;

function rand(shape: number[], seed: number, scale = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = r() * scale;
  return Tensor.fromF32(v, shape);
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  const x = a.toF32(), y = b.toF32();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

function bitEqual(a: Tensor, b: Tensor, what: string): void {
  const x = a.toF32(), y = b.toF32();
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) assert.fail(`${what}: element ${i} differs: ${x[i]} vs ${y[i]}`);
}

const pool = (nBlocks: number, Hkv: number, bs: number, D: number) => Tensor.zeros([nBlocks, Hkv, bs, D], 'q8_0');

for (const isa of cpu.availableIsas()) {
  describe(`q8_0 KV cache, cpu (${isa}) against ref`, () => {
    before(() => cpu.setIsa(isa as 'avx512' | 'avx2' | 'portable'));

    it('kvWrite quantizes each row as ggml does (the same bytes as quantizeQ8_0), keys and values alike', () => {
      const Hkv = 3, D = 96, bs = 16, nBlocks = 4;
      const x = rand([5, Hkv, D], 7, 3);
      const slots = Int32Array.from([0, 17, 63, 5, 40]);
      for (const role of ['k', 'v'] as const) {
        const c = pool(nBlocks, Hkv, bs, D), r = pool(nBlocks, Hkv, bs, D);
        cpu.kvWrite(x, c, slots, role);
        ref.kvWrite(x, r, slots, role);
        assert.deepEqual(c.data, r.data, role);
        // token 1 (slot 17: block 1, offset 1), head 2: its own row of q8_0 blocks
        const row = ((1 * Hkv + 2) * bs + 1) * D;
        const want = quantizeQ8_0(x.f32().subarray((1 * Hkv + 2) * D, (1 * Hkv + 3) * D));
        assert.deepEqual(c.data.subarray((row / 32) * 34, ((row + D) / 32) * 34), want);
      }
      // a strided view of x (heads of a fused QKV row) writes the same bytes
      const wide = rand([5, 2 * Hkv, D], 8);
      const view = wide.view([5, Hkv, D], [2 * Hkv * D, D, 1], Hkv * D);
      const a = pool(nBlocks, Hkv, bs, D), b = pool(nBlocks, Hkv, bs, D);
      cpu.kvWrite(view, a, slots, 'v');
      ref.kvWrite(view, b, slots, 'v');
      assert.deepEqual(a.data, b.data);
    });

    // [block size, head dim, length, query heads / 2 KV heads]
    for (const [bs, D, L, Hq] of [[16, 64, 87, 6], [4, 96, 23, 2], [32, 128, 150, 16], [16, 96, 150, 14], [5, 32, 70, 4], [16, 64, 200, 2]] as const) {
      it(`attention over q8_0 pools: block size ${bs}, head dim ${D}, ${L} tokens, ${Hq} / 2 heads: GQA, window, soft-cap`, () => {
        const Hkv = 2, nBlocks = 64;
        const kc = pool(nBlocks, Hkv, bs, D), vc = pool(nBlocks, Hkv, bs, D);
        const nb = Math.ceil(L / bs);
        const table = new Int32Array(nb).map((_, i) => (i * 37 + 11) % nBlocks); // scattered blocks
        const slots = new Int32Array(L).map((_, p) => table[Math.floor(p / bs)]! * bs + (p % bs));
        const v = rand([L, Hkv, D], 42);
        cpu.kvWrite(rand([L, Hkv, D], 41), kc, slots, 'k');
        cpu.kvWrite(v, vc, slots, 'v');
        const vmax = Math.max(...Array.from(v.toF32(), Math.abs));
        for (const opts of [{ scale: 1 / Math.sqrt(D) }, { scale: 0.3, window: 5 }, { scale: 0.3, window: 70 }, { scale: 0.5, softCap: 2.5 }, { scale: 0.25, window: 1, softCap: 30 }]) {
          const T = 9, start = L - T;
          const q = rand([T, Hq, D], 43, 2);
          const oc = Tensor.zeros([T, Hq, D]), or = Tensor.zeros([T, Hq, D]);
          cpu.attentionPrefill(q, kc, vc, table, start, oc, opts);
          ref.attentionPrefill(q, kc, vc, table, start, or, opts);
          const e = maxAbsDiff(oc, or);
          assert.ok(e <= 1e-5 * vmax, `prefill ${JSON.stringify(opts)}: ${e}`);
          // each prefill row = the decode step at its position, bit for bit
          for (let t = 0; t < T; t++) {
            const one = Tensor.zeros([1, Hq, D]);
            cpu.attentionDecode(q.narrow(t, 1), kc, vc, table, nb, new Int32Array([start + t + 1]), one, opts);
            bitEqual(oc.narrow(t, 1), one, `row ${t} ${JSON.stringify(opts)}`);
          }
          // decode: 3 sequences of different lengths sharing the blocks
          const B = 3;
          const tables = new Int32Array(B * nb);
          for (let b = 0; b < B; b++) tables.set(table, b * nb);
          const lens = Int32Array.from([L, 1, Math.ceil(L / 2)]);
          const qd = rand([B, Hq, D], 44, 2);
          const dc = Tensor.zeros([B, Hq, D]), dr = Tensor.zeros([B, Hq, D]);
          cpu.attentionDecode(qd, kc, vc, tables, nb, lens, dc, opts);
          ref.attentionDecode(qd, kc, vc, tables, nb, lens, dr, opts);
          assert.ok(maxAbsDiff(dc, dr) <= 1e-5 * vmax, `decode ${JSON.stringify(opts)}: ${maxAbsDiff(dc, dr)}`);
        }
      });
    }

    it('batch invariance: a sequence decoded alone = in a batch of 16, bit for bit', () => {
      const Hkv = 2, Hq = 8, D = 64, bs = 16, B = 16, L = 140;
      const maxBlocks = Math.ceil(L / bs), nBlocks = B * maxBlocks;
      const kc = pool(nBlocks, Hkv, bs, D), vc = pool(nBlocks, Hkv, bs, D);
      const all = new Int32Array(nBlocks * bs).map((_, i) => i);
      cpu.kvWrite(rand([nBlocks * bs, Hkv, D], 51), kc, all, 'k');
      cpu.kvWrite(rand([nBlocks * bs, Hkv, D], 52), vc, all, 'v');
      const tables = new Int32Array(B * maxBlocks).map((_, i) => i);
      const lens = new Int32Array(B).map((_, b) => L - 7 * b);
      const q = rand([B, Hq, D], 53);
      const out = Tensor.zeros([B, Hq, D]);
      const opts = { scale: 0.125 };
      cpu.attentionDecode(q, kc, vc, tables, maxBlocks, lens, out, opts);
      for (const b of [0, 7, 15]) {
        const one = Tensor.zeros([1, Hq, D]);
        cpu.attentionDecode(q.narrow(b, 1), kc, vc, tables.subarray(b * maxBlocks), maxBlocks, lens.subarray(b, b + 1), one, opts);
        bitEqual(one, out.narrow(b, 1), `sequence ${b}`);
      }
      // any thread count gives the same bits
      const before = cpuInfo().threads;
      cpu.setThreads(1);
      try {
        const one = Tensor.zeros([B, Hq, D]);
        cpu.attentionDecode(q, kc, vc, tables, maxBlocks, lens, one, opts);
        bitEqual(one, out, '1 thread');
      } finally {
        cpu.setThreads(before);
      }
    });

    it('q8_0 attention stays close to f32 attention (the quantization error, not a kernel error)', () => {
      const Hkv = 2, Hq = 4, D = 64, bs = 16, L = 100, nb = Math.ceil(L / bs);
      const k = rand([L, Hkv, D], 61), v = rand([L, Hkv, D], 62);
      const table = new Int32Array(nb).map((_, i) => i);
      const slots = new Int32Array(L).map((_, i) => i);
      const k8 = pool(nb, Hkv, bs, D), v8 = pool(nb, Hkv, bs, D);
      const k32 = Tensor.zeros([nb, Hkv, D, bs]), v32 = Tensor.zeros([nb, Hkv, bs, D]);
      cpu.kvWrite(k, k8, slots, 'k'); cpu.kvWrite(v, v8, slots, 'v');
      cpu.kvWrite(k, k32, slots, 'k'); cpu.kvWrite(v, v32, slots, 'v');
      const q = rand([1, Hq, D], 63, 3);
      const a = Tensor.zeros([1, Hq, D]), b = Tensor.zeros([1, Hq, D]);
      cpu.attentionDecode(q, k8, v8, table, nb, new Int32Array([L]), a, { scale: 0.125 });
      cpu.attentionDecode(q, k32, v32, table, nb, new Int32Array([L]), b, { scale: 0.125 });
      const e = maxAbsDiff(a, b);
      assert.ok(e > 0 && e < 0.02, `|q8_0 - f32| = ${e}`);
    });
  });
}

describe('q8_0 KV cache: pools and checks', () => {
  it('kvWrite and attention refuse a head dim that is not a multiple of 32 (the Tensor itself cannot be q8_0)', () => {
    assert.throws(() => Tensor.zeros([2, 1, 16, 40], 'q8_0'), /q8_0 last dimension 40 is not a multiple of 32/);
    const cfg = { nLayers: 1, nKvHeads: 1, headDim: 40 } as unknown as ConstructorParameters<typeof KvPool>[0];
    assert.throws(() => new KvPool(cfg, 4, 16, 'q8_0'), /q8_0 KV cache needs a head dim that is a multiple of 32; this model's is 40/);
  });

  it('a q8_0 key pool is token-major: a dimension-major shape is refused, naming the layout', () => {
    const kc = Tensor.zeros([2, 1, 32, 32], 'q8_0'); // [n_blocks, Hkv, bs 32, D 32]: fine
    const vc = Tensor.zeros([2, 1, 32, 64], 'q8_0'); // head dim 64: does not match the keys
    assert.throws(() => cpu.attentionDecode(rand([1, 1, 32], 1), kc, vc, Int32Array.of(0), 1, Int32Array.of(1), Tensor.zeros([1, 1, 32]), { scale: 1 }), /do not match/);
    assert.throws(() => cpu.attentionDecode(rand([1, 1, 32], 1), kc, Tensor.zeros([2, 1, 32, 32], 'f16'), Int32Array.of(0), 1, Int32Array.of(1), Tensor.zeros([1, 1, 32]), { scale: 1 }), /do not match/);
  });

  it('KV bytes per token: q8_0 is 34/64 of f16 (17/64 of f32), so a budget holds 1.88x the blocks of f16', () => {
    const cfg = { nLayers: 6, nKvHeads: 5, headDim: 64 } as unknown as Parameters<typeof KvPool.bytesPerToken>[0];
    const f16 = KvPool.bytesPerToken(cfg, 'f16'), q8 = KvPool.bytesPerToken(cfg, 'q8_0');
    assert.equal(f16, 2 * 6 * 5 * 64 * 2);
    assert.equal(q8, 2 * 6 * 5 * 2 * 34);
    const p = new KvPool({ ...cfg, nLayers: 2 } as typeof cfg, 8, 16, 'q8_0', false);
    assert.deepEqual(p.k[0]!.shape, [8, 5, 16, 64]);
    assert.deepEqual(p.v[1]!.shape, [8, 5, 16, 64]);
    assert.equal(p.bytes, 8 * 16 * KvPool.bytesPerToken({ ...cfg, nLayers: 2 } as typeof cfg, 'q8_0'));
    assert.equal(dequantizeQ8_0(p.k[0]!.data, 64).every((x) => x === 0), true);
  });
});

describe('q8_0 KV cache in the engine, generate, chat and serve (the default model, head dim 64)', () => {
  let root: string;
  before(() => (root = mkdtempSync(join(tmpdir(), 'ss-kvq8-'))));
  after(() => rmSync(root, { recursive: true, force: true }));

  it('at temperature 0 a request gives the same tokens alone or among 7 others', () => {
    const lm = loadModelSync(defaultModelDir(), cpuBackend());
    const mk = () => new Engine(lm.model, lm.tokenizer, { numBlocks: 96, blockSize: 16, maxBatchTokens: 64, maxSeqs: 8, eosIds: [], kvDtype: 'q8_0', kvPopulate: true });
    const texts = ['Once upon a time', 'Lily and her dog', 'One rainy morning, a little fox', 'The boy looked at the sky', 'Mom said', 'A small cat', 'Tom had a red ball. He', 'They went to the park'];
    const prompts = texts.map((t) => lm.tokenizer.encode(t, { addSpecialTokens: true }));
    const alone = prompts.map((p) => {
      const e = mk();
      e.submit({ id: 'x', promptIds: p, sampling: samplingOpts({ maxTokens: 24 }) });
      const all = new Map<string, ChoiceResult>();
      while (e.hasWork()) collect(all, e.step());
      return all.get('x/0')!;
    });
    const e = mk();
    assert.equal(e.kv.dtype, 'q8_0');
    prompts.forEach((p, i) => e.submit({ id: `r${i}`, promptIds: p, sampling: samplingOpts({ maxTokens: 24 }) }));
    const all = new Map<string, ChoiceResult>();
    while (e.hasWork()) collect(all, e.step());
    prompts.forEach((_, i) => assert.deepEqual(all.get(`r${i}/0`)!.tokens, alone[i]!.tokens, `request ${i}`));
    assert.ok(alone[0]!.text.trim().length > 20, alone[0]!.text);
  });

  it('the same KV budget holds 1.88x the blocks of f16 (34 bytes per 32 values against 64)', () => {
    const lm = loadModelSync(defaultModelDir(), cpuBackend());
    const budget = 64 << 20;
    const f16 = kvBlocksFor(KvPool.bytesPerToken(lm.config, 'f16'), 16, 512, 16, budget);
    const q8 = kvBlocksFor(KvPool.bytesPerToken(lm.config, 'q8_0'), 16, 512, 16, budget);
    assert.equal(q8, Math.floor(budget / (16 * 2 * 6 * 5 * 2 * 34)));
    assert.ok(Math.abs(q8 / f16 - 64 / 34) < 0.01, `${q8} / ${f16}`);
  });

  const bin = join(import.meta.dirname, '..', 'bin', 'slipstream.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, SLIPSTREAM_THREADS: '2' } });

  it('generate and chat run with --kv-dtype q8_0; a bad value or a head dim q8_0 cannot hold is a one-line error, exit 2', () => {
    const g = run('generate', '-p', 'Once upon a time', '-n', '24', '--temperature', '0', '--kv-dtype', 'q8_0');
    assert.equal(g.status, 0, g.stderr);
    assert.ok(g.stdout.trim().length > 20, g.stdout);
    const c = spawnSync(process.execPath, [bin, 'chat', '-n', '16', '--temperature', '0', '--kv-dtype', 'q8_0'], { input: 'Tell me a story.\n', encoding: 'utf8', env: { ...process.env, SLIPSTREAM_THREADS: '2' } });
    assert.equal(c.status, 0, c.stderr);
    assert.ok(c.stdout.trim().length > 0);
    const bad = run('generate', '-p', 'x', '--kv-dtype', 'q4_0');
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /--kv-dtype must be f32, f16, q8_0, got 'q4_0'/);
    const tiny = join(root, 'tiny'); // head dim 16
    writeRandomHfModel(tiny, TINY_SPECS.llama, 3);
    const hd = run('generate', '-m', tiny, '-p', 'x', '--kv-dtype', 'q8_0');
    assert.equal(hd.status, 2, hd.stderr);
    assert.match(hd.stderr, /--kv-dtype q8_0 needs a head dim that is a multiple of 32; this model's is 16/);
    assert.doesNotMatch(hd.stderr, /\n\s+at /);
  });

  it('serve --kv-dtype q8_0 answers, and its pool holds 1.88x the blocks of --kv-dtype f16 in the same --kv-cache-memory', async () => {
    const blocks: Record<string, number> = {};
    for (const dt of ['f16', 'q8_0']) {
      const srv = await startServe(['--kv-dtype', dt, '--kv-cache-memory', '0.0625'], { SLIPSTREAM_THREADS: '2' });
      try {
        const res = await fetch(`${srv.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: 'Once upon a time', max_tokens: 16, temperature: 0 }),
        });
        assert.equal(res.status, 200);
        const body = (await res.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
        assert.equal(body.usage.completion_tokens, 16);
        assert.ok(body.choices[0]!.text.length > 0);
        blocks[dt] = await srv.metric('slipstream_kv_blocks_total');
      } finally {
        assert.equal(await srv.stop(), 0);
      }
    }
    assert.ok(Math.abs(blocks['q8_0']! / blocks['f16']! - 64 / 34) < 0.01, JSON.stringify(blocks));
  });
});

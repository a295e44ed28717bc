// Model families on tiny random checkpoints: every family loads from the Hugging Face layout,
// converts to GGUF and back, and computes the same logits whichever way it was loaded, however the
// prompt is chunked, and whatever else is in the batch. (Agreement with an implementation nobody
// here wrote — llama.cpp — is test/llamacpp.test.ts.)

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeBatch } from '../src/engine/batch.ts';
import { Sequence } from '../src/engine/generate.ts';
import type { Arch } from '../src/formats/model-config.ts';
import { ggufToHf, hfToGguf } from '../src/models/convert.ts';
import { KvPool } from '../src/models/kv.ts';
import { loadModelSync, type LoadedModel } from '../src/models/load.ts';
import type { Batch } from '../src/models/model.ts';
import { TINY_SPECS, writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { refBackend } from '../src/tensor/ref.ts';

const be = cpuBackend();
let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-models-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

const TINY = TINY_SPECS;

const PROMPT = [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17];

/** Logits of every position of `tokens` (one prefill step; every row requested). */
function allLogits(lm: LoadedModel, tokens: number[]): Float32Array[] {
  const seq = new Sequence(lm.model, { maxContext: 64, blockSize: 4 });
  const batch = makeBatch([{ tokens, startPos: 0, blockTable: seq.table, logits: 'all' }], seq.kv.blockSize);
  const out = lm.model.forward(batch, seq.kv).f32();
  const V = lm.config.vocabSize;
  return tokens.map((_, i) => out.slice(i * V, (i + 1) * V));
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0, diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / scale;
}

for (const arch of Object.keys(TINY) as Arch[]) {
  describe(`${arch}`, () => {
    let dir: string;
    let lm: LoadedModel;
    let ref: Float32Array[];
    before(() => {
      dir = join(root, arch);
      writeRandomHfModel(dir, TINY[arch], 3);
      lm = loadModelSync(dir, be);
      ref = allLogits(lm, PROMPT);
    });

    it('loads the Hugging Face layout with the right config', () => {
      assert.equal(lm.config.arch, arch);
      assert.equal(lm.format, 'safetensors');
      assert.equal(lm.model.weights.layers.length, TINY[arch].nLayers);
      for (const row of ref) for (const v of row) assert.ok(Number.isFinite(v));
      // logits spread (the random weights are scaled for decisive greedy choices)
      const r = ref[ref.length - 1]!;
      assert.ok(Math.max(...r) - Math.min(...r) > 1, 'logits should not be flat');
    });

    it('weights kept in the file mapping (default) or copied to resident memory: same logits', () => {
      const lres = loadModelSync(dir, be, { mmap: false });
      const fileBytes = statSync(join(dir, 'model.safetensors')).size;
      assert.equal(lm.model.weights.tokEmbd.data.buffer.byteLength, fileBytes); // a view of the mapping
      assert.notEqual(lres.model.weights.tokEmbd.data.buffer.byteLength, fileBytes); // the resident copy
      const got = allLogits(lres, PROMPT);
      for (let i = 0; i < got.length; i++) assert.deepEqual(got[i], ref[i]);
    });

    it('cpu backend matches the float64 ref backend on the whole forward pass', () => {
      const lr = loadModelSync(dir, refBackend);
      const got = allLogits(lr, PROMPT.slice(0, 6));
      for (let i = 0; i < got.length; i++) assert.ok(maxRelDiff(got[i]!, ref[i]!) < 1e-4, `position ${i}: ${maxRelDiff(got[i]!, ref[i]!)}`);
    });

    it('chunked prefill and token-by-token decode give bit-identical logits', () => {
      const seq = new Sequence(lm.model, { maxContext: 64, blockSize: 4, prefillChunk: 5 });
      const last = seq.prefill(PROMPT.slice(0, 11));
      assert.deepEqual(last, ref[10]);
      assert.deepEqual(seq.decode(PROMPT[11]!), ref[11]);
      assert.deepEqual(seq.decode(PROMPT[12]!), ref[12]);
    });

    it('a sequence batched with others gets bit-identical logits (decode and prefill mixed)', () => {
      const kv = new KvPool(lm.config, 48, 4);
      const tA = Int32Array.from({ length: 16 }, (_, i) => i); //       blocks 0-15: sequence A
      const tB = Int32Array.from({ length: 16 }, (_, i) => 16 + i); //  blocks 16-31: sequence B
      const tC = Int32Array.from({ length: 16 }, (_, i) => 32 + i); //  blocks 32-47: sequence C
      const step = (b: Batch) => lm.model.forward(b, kv).f32().slice();
      const V = lm.config.vocabSize;
      // Step 1: A's prompt alone except the last two tokens; B another prompt.
      const other = [1, 7, 8, 9, 10, 11];
      step(makeBatch([
        { tokens: PROMPT.slice(0, 11), startPos: 0, blockTable: tA },
        { tokens: other, startPos: 0, blockTable: tB },
      ], 4));
      // Step 2: A decodes one token, B decodes one, C prefills 3 tokens.
      const out = step(makeBatch([
        { tokens: [PROMPT[11]!], startPos: 11, blockTable: tA },
        { tokens: [12], startPos: 6, blockTable: tB },
        { tokens: [1, 2, 3], startPos: 0, blockTable: tC },
      ], 4));
      assert.deepEqual(out.subarray(0, V), ref[11]);
    });

    it('converts to GGUF (f32) and loads back with the same logits', () => {
      const gguf = join(root, `${arch}.gguf`);
      hfToGguf(dir, gguf, { type: 'f32' });
      const lg = loadModelSync(gguf, be);
      assert.equal(lg.format, 'gguf');
      assert.equal(lg.config.arch, arch);
      const got = allLogits(lg, PROMPT);
      for (let i = 0; i < got.length; i++) assert.ok(maxRelDiff(got[i]!, ref[i]!) < 1e-5, `position ${i}: ${maxRelDiff(got[i]!, ref[i]!)}`);
      assert.deepEqual(lg.tokenizer.encode('the old man said'), lm.tokenizer.encode('the old man said'));
    });

    it('GGUF -> Hugging Face directory round trip keeps the logits', () => {
      const gguf = join(root, `${arch}.gguf`);
      const back = join(root, `${arch}-back`);
      ggufToHf(gguf, back);
      const lb = loadModelSync(back, be);
      const got = allLogits(lb, PROMPT);
      for (let i = 0; i < got.length; i++) assert.ok(maxRelDiff(got[i]!, ref[i]!) < 1e-5, `position ${i}`);
    });

    it('q8_0 (quantized at load, and converted to GGUF q8_0) stays close to f32', () => {
      const lq = loadModelSync(dir, be, { quantize: 'q8_0' });
      const gq = join(root, `${arch}-q8.gguf`);
      hfToGguf(dir, gq, { type: 'q8_0' });
      const lg = loadModelSync(gq, be);
      const a = allLogits(lq, PROMPT), b = allLogits(lg, PROMPT);
      for (let i = 0; i < a.length; i++) {
        assert.ok(maxRelDiff(a[i]!, ref[i]!) < 0.08, `quantize at load, position ${i}: ${maxRelDiff(a[i]!, ref[i]!)}`);
        assert.ok(maxRelDiff(b[i]!, ref[i]!) < 0.08, `GGUF q8_0, position ${i}: ${maxRelDiff(b[i]!, ref[i]!)}`);
      }
    });
  });
}

// Variants whose settings only GGUF metadata or extra tensors carry: head_dim != dim / heads
// (Mistral Nemo: attention.key_length), Phi-4-mini's partial rotary (rope.dimension_count) and
// Phi-3.5's LongRoPE (rope_factors_short / _long, attn_factor, original_context_length; the
// prompt crosses the original context of 6).
const VARIANTS: Record<string, RandomModelSpec> = {
  'mistral-nemo': { ...TINY.mistral, nKvHeads: 2, headDim: 32, slidingWindow: 0 },
  'phi4-mini': { ...TINY.phi3, rotaryDim: 12, tie: true },
  'phi3.5-longrope': {
    ...TINY.phi3,
    ropeScaling: { type: 'longrope', shortFactor: [1, 1.2, 1.5, 2, 3, 4, 6, 8], longFactor: [1, 2, 4, 8, 12, 16, 24, 32], originalMaxPosition: 6, attnFactor: 1.1 },
  },
};
for (const [name, spec] of Object.entries(VARIANTS)) {
  it(`${name}: Hugging Face -> GGUF -> Hugging Face keeps the config and the logits`, () => {
    const dir = join(root, name), gguf = join(root, `${name}.gguf`), back = join(root, `${name}-back`);
    writeRandomHfModel(dir, spec, 3);
    const lm = loadModelSync(dir, be);
    const ref = allLogits(lm, PROMPT);
    hfToGguf(dir, gguf, { type: 'f32' });
    const lg = loadModelSync(gguf, be);
    assert.equal(lg.config.headDim, lm.config.headDim);
    // GGUF keeps the RoPE numbers in float32
    const f32 = (x: unknown): unknown => JSON.parse(JSON.stringify(x), (_k, v: unknown) => (typeof v === 'number' ? Math.fround(v) : v));
    assert.deepEqual(f32(lg.config.rope), f32({ ...lm.config.rope, layout: lg.config.rope!.layout }));
    ggufToHf(gguf, back);
    const lb = loadModelSync(back, be);
    assert.deepEqual(f32(lb.config.rope), f32(lm.config.rope));
    for (const m of [lg, lb]) {
      const got = allLogits(m, PROMPT);
      for (let i = 0; i < got.length; i++) assert.ok(maxRelDiff(got[i]!, ref[i]!) < 1e-5, `${m.format} position ${i}: ${maxRelDiff(got[i]!, ref[i]!)}`);
    }
  });
}

// `--quantize q4_k` at load: an f32/f16/bf16 checkpoint's weight matrices become Q4_K (llama.cpp's
// reference quantizer, the bytes `convert --type q4_k_m` writes for the same matrix), the LM head
// Q6_K (the tied embedding when there is no separate output), rows that are not whole super-blocks
// q8_0; a GGUF's quantized tensors stay as stored. The model's logits stay close to the f32 ones.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ggufTensor, readGguf } from '../src/formats/gguf.ts';
import { hfToGguf } from '../src/models/convert.ts';
import { loadModelSync } from '../src/models/load.ts';
import { writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { firstLogits } from './helpers/logits.ts';

const SPEC: RandomModelSpec = { arch: 'llama', vocabSize: 384, dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, maxPosition: 256, tie: false };
const PROMPT = [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17];
const be = cpuBackend();

let root: string;
const dirs: Record<string, string> = {};
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-qload-'));
  writeRandomHfModel((dirs.untied = join(root, 'untied')), SPEC, 21);
  writeRandomHfModel((dirs.tied = join(root, 'tied')), { ...SPEC, tie: true }, 22);
  writeRandomHfModel((dirs.narrow = join(root, 'narrow')), { ...SPEC, dim: 96, ffnDim: 160, nHeads: 2, nKvHeads: 1 }, 23);
  hfToGguf(dirs.untied, (dirs.gguf = join(root, 'q4km.gguf')), { type: 'q4_k_m' });
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('--quantize q4_k at load', () => {
  it('matrices Q4_K, the LM head Q6_K, norms f32; the bytes convert --type q4_k_m writes; logits close to f32', () => {
    const lm = loadModelSync(dirs.untied!, be, { quantize: 'q4_k' });
    const w = lm.model.weights;
    for (const L of w.layers) {
      for (const t of [L.wq, L.wk, L.wv, L.wo, L.wGate, L.wUp, L.wDown]) assert.equal(t!.dtype, 'q4_k');
    }
    assert.equal(w.output.dtype, 'q6_k');
    assert.equal(w.tokEmbd.dtype, 'q4_k');
    assert.equal(w.outNorm.dtype, 'f32');
    // the same quantizer as convert: ffn_up / ffn_gate are Q4_K in Q4_K_M and need no RoPE permutation
    const g = readGguf(dirs.gguf!);
    for (const [name, t] of [['blk.0.ffn_up.weight', w.layers[0]!.wUp!], ['blk.1.ffn_gate.weight', w.layers[1]!.wGate!]] as const) {
      assert.deepEqual(Buffer.from(t.data), Buffer.from(ggufTensor(g, name).data), name);
    }
    const f32 = loadModelSync(dirs.untied!, be);
    assert.ok(lm.weightBytes < f32.weightBytes / 5, `${lm.weightBytes} bytes quantized vs ${f32.weightBytes} f32`);
    const q = firstLogits(lm, PROMPT), f = firstLogits(f32, PROMPT);
    let scale = 0, df = 0;
    for (let i = 0; i < q.length; i++) (scale = Math.max(scale, Math.abs(f[i]!))), (df = Math.max(df, Math.abs(q[i]! - f[i]!)));
    // the Q4_K_M GGUF of this model measured 7.0 of 47.2 (test/kquant-model.test.ts)
    assert.ok(df <= 0.25 * scale, `q4_k at load vs f32: ${df} (scale ${scale})`);
  });

  it('a tied embedding is the LM head: Q6_K', () => {
    const w = loadModelSync(dirs.tied!, be, { quantize: 'q4_k' }).model.weights;
    assert.equal(w.tokEmbd.dtype, 'q6_k');
    assert.equal(w.output, w.tokEmbd);
    assert.equal(w.layers[0]!.wq!.dtype, 'q4_k');
  });

  it('rows that are not whole super-blocks of 256 fall back to q8_0', () => {
    const w = loadModelSync(dirs.narrow!, be, { quantize: 'q4_k' }).model.weights;
    assert.equal(w.layers[0]!.wq!.dtype, 'q8_0'); // 96 columns
    assert.equal(w.layers[0]!.wDown!.dtype, 'q8_0'); // 160 columns
  });

  it('a GGUF\'s quantized tensors stay as stored (Q6_K is not requantized to Q4_K)', () => {
    const w = loadModelSync(dirs.gguf!, be, { quantize: 'q4_k' }).model.weights;
    assert.equal(w.output.dtype, 'q6_k');
    assert.equal(w.layers[1]!.wv!.dtype, 'q6_k');
    assert.equal(w.layers[0]!.wq!.dtype, 'q4_k');
  });
});

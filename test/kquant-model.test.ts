// A whole model in llama.cpp's Q4_K_M and Q5_K_M mixes: `slipstream convert --type q4_k_m` picks each
// tensor's type by llama.cpp's rules, the GGUF loads with its Q4_K / Q6_K tensors as stored
// (views of the file mapping), the native backend agrees with the ref backend, and llama.cpp
// (node-llama-cpp, compat/llamacpp; skipped when not installed, except under CI) running the same
// GGUF picks the same first greedy token with top log-probabilities within 0.25.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sequence } from '../src/engine/generate.ts';
import { argmax } from '../src/engine/sampler.ts';
import { GGML_TYPE, readGguf } from '../src/formats/gguf.ts';
import { getMeta } from '../src/formats/gguf.ts';
import { hfToGguf } from '../src/models/convert.ts';
import { loadModelSync, prepareWeights } from '../src/models/load.ts';
import { ggufTensorDType, useMoreBits } from '../src/models/quant-mix.ts';
import { writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { assertLlamacppParity, firstLogits, logSoftmax } from './helpers/logits.ts';
import { withIsa } from './helpers/quant-matmul.ts';

const compat = join(import.meta.dirname, '..', 'compat', 'llamacpp');
const installed = existsSync(join(compat, 'node_modules', 'node-llama-cpp'));
if (!installed && process.env.CI) throw new Error('compat/llamacpp is not installed: run `npm ci --prefix compat/llamacpp`');

// k-quants need rows that are whole super-blocks of 256: dim and ffn multiples of 256. Two
// layers: use_more_bits(i, 2) picks layer 1 and not layer 0, so both attn_v / ffn_down types
// occur. (Deeper random models are chaotic: with 3 or 8 layers a single activation rounding
// flip in Q8_K / q8_0, from f32 vs f64 sums, moves the logits by 1-2% of their scale, for q8_0
// weights as much as for k-quants.)
const SPEC: RandomModelSpec = { arch: 'llama', vocabSize: 384, dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, maxPosition: 256 };
const PROMPT = [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17];

let root: string;
let dir: string;
const MIXES = ['q4_k_m', 'q5_k_m'] as const;
const files: Record<string, string> = {};
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-kquant-'));
  dir = join(root, 'hf');
  writeRandomHfModel(dir, SPEC, 21);
  for (const mix of MIXES) hfToGguf(dir, (files[mix] = join(root, `${mix}.gguf`)), { type: mix });
});
after(() => rmSync(root, { recursive: true, force: true }));



describe('llama.cpp Q4_K_M per-tensor rules', () => {
  it('use_more_bits: the first and last eighth of the layers and every third between', () => {
    const picked = Array.from({ length: 32 }, (_, i) => i).filter((i) => useMoreBits(i, 32));
    assert.deepEqual(picked, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].filter((i) => useMoreBits(i, 8)), [0, 3, 6, 7]);
  });

  it('output Q6_K (token_embd when tied), attn_v / ffn_down Q6_K on picked layers, the rest Q4_K; small rows fall back to q8_0', () => {
    const m = { nLayers: 8, tiedEmbeddings: false };
    const t = (name: string, shape = [512, 256]) => ggufTensorDType(name, shape, 'q4_k_m', m);
    assert.equal(t('output.weight'), 'q6_k');
    assert.equal(t('token_embd.weight'), 'q4_k');
    assert.equal(ggufTensorDType('token_embd.weight', [512, 256], 'q4_k_m', { ...m, tiedEmbeddings: true }), 'q6_k');
    assert.equal(t('blk.0.attn_v.weight'), 'q6_k');
    assert.equal(t('blk.1.attn_v.weight'), 'q4_k');
    assert.equal(t('blk.3.ffn_down.weight'), 'q6_k');
    assert.equal(t('blk.4.ffn_down.weight'), 'q4_k');
    assert.equal(t('blk.4.attn_q.weight'), 'q4_k');
    assert.equal(t('blk.0.attn_norm.weight', [256]), 'f32');
    assert.equal(t('blk.0.attn_q.weight', [64, 96]), 'q8_0');
    assert.equal(ggufTensorDType('blk.2.attn_v.weight', [512, 256], 'q4_k_m', { ...m, nExperts: 8 }), 'q8_0');
    assert.equal(ggufTensorDType('blk.2.attn_q.weight', [512, 256], 'q6_k', m), 'q6_k');
    assert.equal(t('blk.0.attn_qkv.weight'), 'q5_k');
    const t5 = (name: string) => ggufTensorDType(name, [512, 256], 'q5_k_m', m);
    assert.deepEqual(['output.weight', 'blk.0.attn_v.weight', 'blk.1.attn_v.weight', 'blk.3.ffn_down.weight', 'blk.4.ffn_up.weight', 'blk.0.attn_qkv.weight'].map(t5),
      ['q6_k', 'q6_k', 'q5_k', 'q6_k', 'q5_k', 'q6_k']);
  });
});

for (const mix of MIXES) {
  describe(`a ${mix.toUpperCase()} GGUF runs as stored`, () => {
    const base = mix === 'q4_k_m' ? 'q4_k' : 'q5_k';
    const gguf = () => files[mix]!;
    it('the converted file has the mix, and loads with its k-quant tensors as views of the mapping', () => {
      const g = readGguf(gguf());
      assert.equal(getMeta(g, 'general.file_type'), mix === 'q4_k_m' ? 15 : 17);
      const type = (n: string) => g.tensors.get(n)!.type;
      assert.equal(type('blk.1.attn_v.weight'), GGML_TYPE.Q6_K);
      const B = mix === 'q4_k_m' ? GGML_TYPE.Q4_K : GGML_TYPE.Q5_K;
      assert.equal(type('blk.0.attn_v.weight'), B);
      assert.equal(type('blk.1.ffn_down.weight'), GGML_TYPE.Q6_K);
      assert.equal(type('blk.0.ffn_down.weight'), B);
      assert.equal(type('blk.1.ffn_gate.weight'), B);
      assert.equal(type(g.tensors.has('output.weight') ? 'output.weight' : 'token_embd.weight'), GGML_TYPE.Q6_K);

      const lm = loadModelSync(gguf(), cpuBackend());
      const w = lm.model.weights;
      assert.equal(w.layers[1]!.wq!.dtype, base);
      assert.equal(w.layers[1]!.wv!.dtype, 'q6_k');
      assert.equal(w.layers[0]!.wDown!.dtype, base);
      assert.equal(w.output.dtype, 'q6_k');
      // no f32 expansion: the weights in memory are about the file's size (f32 would be ~7x)
      assert.ok(lm.weightBytes < statSync(gguf()).size * 1.05, `${lm.weightBytes} bytes of weights for a ${statSync(gguf()).size}-byte file`);
    });

    it('native and ref backends agree on the Q4_K_M model; it stays close to the f32 model', () => {
      const q = firstLogits(loadModelSync(gguf(), cpuBackend()), PROMPT);
      const r = firstLogits(loadModelSync(gguf(), refBackend), PROMPT);
      const f = firstLogits(loadModelSync(dir, cpuBackend()), PROMPT);
      let scale = 0, dr = 0, df = 0;
      for (let i = 0; i < q.length; i++) {
        scale = Math.max(scale, Math.abs(f[i]!));
        dr = Math.max(dr, Math.abs(q[i]! - r[i]!));
        df = Math.max(df, Math.abs(q[i]! - f[i]!));
      }
      assert.ok(dr <= 1e-3 * scale, `cpu vs ref: ${dr} (scale ${scale})`);
      // measured: q4_k_m 7.0 of 47.2 (q6_k everywhere: 1.9, q8_0: 0.84)
      assert.ok(df <= (mix === 'q4_k_m' ? 0.25 : 0.12) * scale, `q4_k_m vs f32: ${df} (scale ${scale})`);
    });

    if (mix === 'q4_k_m') it('prepareWeights prepacks the mapped q4_k matrices on AVX2: the same logits, bit for bit', { skip: cpuBackend().availableIsas().includes('avx2') ? false : 'no AVX2' }, () => {
      const cpu = cpuBackend();
      withIsa(cpu, 'avx2', () => {
        const before = cpu.prepackMode;
        try {
          cpu.prepackMode = 'off';
          const stored = loadModelSync(gguf(), cpu);
          assert.deepEqual(prepareWeights(stored.model, cpu).matrices, 0);
          const a = firstLogits(stored, PROMPT);
          cpu.prepackMode = 'mapped';
          const packed = loadModelSync(gguf(), cpu);
          // q, k, o, gate, up (and v / down on the layer that keeps Q4_K) of 2 layers
          assert.ok(prepareWeights(packed.model, cpu).matrices >= 10);
          assert.deepEqual(firstLogits(packed, PROMPT), a);
        } finally {
          cpu.prepackMode = before;
        }
      });
    });

    it('decoding (GEMV) and prefill (GEMM) give the same logits for the same position', () => {
      const lm = loadModelSync(gguf(), cpuBackend());
      const a = new Sequence(lm.model, { maxContext: 256 });
      const all = Float32Array.from(a.prefill(PROMPT));
      const b = new Sequence(lm.model, { maxContext: 256 });
      b.prefill(PROMPT.slice(0, -1));
      const one = Float32Array.from(b.decode(PROMPT.at(-1)!));
      assert.deepEqual(one, all);
    });
  });
}

describe('agreement with llama.cpp on Q4_K_M and Q5_K_M GGUFs', { skip: installed ? false : 'llama.cpp peer not installed (npm ci --prefix compat/llamacpp)' }, () => {
  for (const mix of MIXES) it(`${mix}: same first greedy token, top log-probabilities within 0.25`, () => {
    assertLlamacppParity(files[mix]!, PROMPT, mix);
  });
});

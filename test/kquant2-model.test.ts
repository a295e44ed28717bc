// Whole models in llama.cpp's Q2_K, Q3_K_S, Q3_K_M, Q3_K_L and IQ4_XS mixes: `slipstream convert
// --type …` picks each tensor's type by llama.cpp's rules (quant-mix.ts), the GGUF loads with its
// Q2_K / Q3_K / IQ4_XS tensors as stored (views of the file mapping), native and ref backends
// agree, and llama.cpp (node-llama-cpp, compat/llamacpp; skipped when not installed, except under
// CI) running the same GGUF picks the same first greedy token with top log-probabilities within 0.25.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sequence } from '../src/engine/generate.ts';
import { argmax } from '../src/engine/sampler.ts';
import { getMeta, GGML_TYPE, readGguf } from '../src/formats/gguf.ts';
import { hfToGguf } from '../src/models/convert.ts';
import { loadModelSync } from '../src/models/load.ts';
import { FILE_TYPE, ggufTensorDType } from '../src/models/quant-mix.ts';
import { writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { assertLlamacppParity, firstLogits, logSoftmax } from './helpers/logits.ts';

const compat = join(import.meta.dirname, '..', 'compat', 'llamacpp');
const installed = existsSync(join(compat, 'node_modules', 'node-llama-cpp'));
if (!installed && process.env.CI) throw new Error('compat/llamacpp is not installed: run `npm ci --prefix compat/llamacpp`');

// as test/kquant-model.test.ts: rows of whole super-blocks, two layers (deeper random models are chaotic)
const SPEC: RandomModelSpec = { arch: 'llama', vocabSize: 384, dim: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, ffnDim: 512, maxPosition: 256 };
const PROMPT = [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100, 250, 17];
const MIXES = ['q2_k', 'q3_k_s', 'q3_k_m', 'q3_k_l', 'iq4_xs'] as const;

// the types llama.cpp's rules give this model (2 layers, 2 query heads per KV head, untied output)
const EXPECT: Record<(typeof MIXES)[number], Record<string, number>> = {
  q2_k: { 'blk.0.attn_q.weight': GGML_TYPE.Q2_K, 'blk.1.attn_v.weight': GGML_TYPE.Q3_K, 'blk.0.ffn_down.weight': GGML_TYPE.Q3_K, 'blk.0.attn_output.weight': GGML_TYPE.Q3_K, 'blk.1.ffn_up.weight': GGML_TYPE.Q2_K, 'token_embd.weight': GGML_TYPE.Q2_K },
  q3_k_s: { 'blk.0.attn_q.weight': GGML_TYPE.Q3_K, 'blk.1.attn_v.weight': GGML_TYPE.Q3_K, 'blk.0.ffn_down.weight': GGML_TYPE.Q3_K, 'blk.0.attn_output.weight': GGML_TYPE.Q3_K, 'token_embd.weight': GGML_TYPE.Q3_K },
  q3_k_m: { 'blk.0.attn_q.weight': GGML_TYPE.Q3_K, 'blk.1.attn_v.weight': GGML_TYPE.Q5_K, 'blk.0.ffn_down.weight': GGML_TYPE.Q4_K, 'blk.0.attn_output.weight': GGML_TYPE.Q4_K, 'blk.1.ffn_gate.weight': GGML_TYPE.Q3_K },
  q3_k_l: { 'blk.0.attn_q.weight': GGML_TYPE.Q3_K, 'blk.1.attn_v.weight': GGML_TYPE.Q5_K, 'blk.0.ffn_down.weight': GGML_TYPE.Q5_K, 'blk.0.attn_output.weight': GGML_TYPE.Q5_K, 'blk.1.ffn_gate.weight': GGML_TYPE.Q3_K },
  iq4_xs: { 'blk.0.attn_q.weight': GGML_TYPE.IQ4_XS, 'blk.1.attn_v.weight': GGML_TYPE.IQ4_XS, 'blk.0.ffn_down.weight': GGML_TYPE.IQ4_XS, 'blk.0.attn_output.weight': GGML_TYPE.IQ4_XS, 'token_embd.weight': GGML_TYPE.IQ4_XS },
};

let root: string;
let dir: string;
const files: Record<string, string> = {};
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-kquant2-'));
  dir = join(root, 'hf');
  writeRandomHfModel(dir, SPEC, 21);
  for (const mix of MIXES) hfToGguf(dir, (files[mix] = join(root, `${mix}.gguf`)), { type: mix });
});
after(() => rmSync(root, { recursive: true, force: true }));

describe('llama.cpp Q2_K / Q3_K_S/M/L / IQ4_XS per-tensor rules', () => {
  const m = { nLayers: 32, tiedEmbeddings: false, nGqa: 4 };
  const t = (name: string, type: (typeof MIXES)[number], mm: object = {}, shape = [4096, 4096]) => ggufTensorDType(name, shape, type, { ...m, ...mm });
  it('the LM head Q6_K (Q8_0 for rows not of whole super-blocks); untied token_embd in the file type', () => {
    for (const mix of MIXES) {
      assert.equal(t('output.weight', mix), 'q6_k');
      assert.equal(t('output.weight', mix, {}, [4096, 4000]), 'q8_0');
      assert.equal(t('token_embd.weight', mix, { tiedEmbeddings: true }), 'q6_k');
    }
    assert.equal(t('token_embd.weight', 'q2_k'), 'q2_k');
    assert.equal(t('token_embd.weight', 'q3_k_m'), 'q3_k');
    assert.equal(t('token_embd.weight', 'iq4_xs'), 'iq4_xs');
  });
  it('attn_v, ffn_down, attn_output, attn_qkv as llama_tensor_get_type picks them', () => {
    assert.equal(t('blk.5.attn_v.weight', 'q2_k'), 'q4_k');
    assert.equal(t('blk.5.attn_v.weight', 'q2_k', { nGqa: 2 }), 'q3_k');
    assert.equal(t('blk.1.attn_v.weight', 'q3_k_m'), 'q5_k');
    assert.equal(t('blk.2.attn_v.weight', 'q3_k_m'), 'q4_k');
    assert.equal(t('blk.9.attn_v.weight', 'q3_k_l'), 'q5_k');
    assert.equal(t('blk.9.attn_v.weight', 'q3_k_s'), 'q3_k');
    assert.equal(t('blk.9.attn_v.weight', 'iq4_xs'), 'q5_k');
    assert.equal(t('blk.9.attn_v.weight', 'iq4_xs', { nGqa: 2 }), 'iq4_xs');
    assert.equal(t('blk.9.ffn_down.weight', 'q2_k'), 'q3_k');
    assert.equal(t('blk.1.ffn_down.weight', 'q3_k_m'), 'q5_k'); // 1 < 32 / 16
    assert.equal(t('blk.2.ffn_down.weight', 'q3_k_m'), 'q4_k');
    assert.equal(t('blk.20.ffn_down.weight', 'q3_k_l'), 'q5_k');
    assert.equal(t('blk.3.ffn_down.weight', 'iq4_xs'), 'q5_k'); // 3 < 32 / 8
    assert.equal(t('blk.4.ffn_down.weight', 'iq4_xs'), 'iq4_xs');
    assert.equal(t('blk.4.ffn_down.weight', 'q3_k_s'), 'q3_k');
    assert.deepEqual(MIXES.map((x) => t('blk.0.attn_output.weight', x)), ['q3_k', 'q3_k', 'q4_k', 'q5_k', 'iq4_xs']);
    assert.deepEqual(MIXES.map((x) => t('blk.0.attn_output.weight', x, { nExperts: 8 })), ['q5_k', 'q5_k', 'q5_k', 'q3_k', 'q5_k']);
    assert.deepEqual(MIXES.map((x) => t('blk.0.attn_qkv.weight', x)), ['q2_k', 'q3_k', 'q4_k', 'q4_k', 'iq4_xs']);
    assert.deepEqual(MIXES.map((x) => t('blk.0.attn_k.weight', x, { nExperts: 8 })), ['q8_0', 'q8_0', 'q8_0', 'q8_0', 'q8_0']);
    assert.equal(t('blk.0.attn_q.weight', 'q3_k_l'), 'q3_k');
    assert.equal(t('blk.0.attn_norm.weight', 'q2_k', {}, [4096]), 'f32');
  });
  it('rows that are not whole super-blocks take llama.cpp\'s stand-ins: IQ4_NL, Q5_0 for Q4_K, Q5_1 for Q5_K; f16 off 32', () => {
    assert.equal(t('blk.9.attn_q.weight', 'q2_k', {}, [64, 96]), 'iq4_nl');
    assert.equal(t('blk.9.attn_v.weight', 'q2_k', {}, [64, 96]), 'q5_0');
    assert.equal(t('blk.9.attn_v.weight', 'q3_k_l', {}, [64, 96]), 'q5_1');
    assert.equal(t('blk.9.attn_q.weight', 'iq4_xs', {}, [64, 100]), 'f16');
    assert.equal(FILE_TYPE.q2_k, 10);
    assert.deepEqual([FILE_TYPE.q3_k_s, FILE_TYPE.q3_k_m, FILE_TYPE.q3_k_l, FILE_TYPE.iq4_xs], [11, 12, 13, 30]);
  });
});

for (const mix of MIXES) {
  describe(`a ${mix.toUpperCase()} GGUF runs as stored`, () => {
    it('the converted file has the mix, and loads with its tensors as views of the mapping', () => {
      const g = readGguf(files[mix]!);
      assert.equal(getMeta(g, 'general.file_type'), FILE_TYPE[mix]);
      for (const [name, type] of Object.entries(EXPECT[mix])) assert.equal(g.tensors.get(name)!.type, type, `${mix} ${name}`);
      assert.equal(g.tensors.get('output.weight')!.type, GGML_TYPE.Q6_K);
      const lm = loadModelSync(files[mix]!, cpuBackend());
      const dt = { [GGML_TYPE.Q2_K]: 'q2_k', [GGML_TYPE.Q3_K]: 'q3_k', [GGML_TYPE.IQ4_XS]: 'iq4_xs' }[EXPECT[mix]['blk.0.attn_q.weight']!];
      assert.equal(lm.model.weights.layers[0]!.wq!.dtype, dt);
      assert.ok(lm.weightBytes < statSync(files[mix]!).size * 1.05, `${lm.weightBytes} bytes of weights for a ${statSync(files[mix]!).size}-byte file`);
    });

    it('native and ref backends agree; prefill (GEMM) and decoding (GEMV) give the same logits', () => {
      const q = firstLogits(loadModelSync(files[mix]!, cpuBackend()), PROMPT);
      const r = firstLogits(loadModelSync(files[mix]!, refBackend), PROMPT);
      const f = firstLogits(loadModelSync(dir, cpuBackend()), PROMPT);
      let scale = 0, dr = 0, df = 0;
      for (let i = 0; i < q.length; i++) {
        scale = Math.max(scale, Math.abs(f[i]!));
        dr = Math.max(dr, Math.abs(q[i]! - r[i]!));
        df = Math.max(df, Math.abs(q[i]! - f[i]!));
      }
      assert.ok(dr <= 1e-3 * scale, `cpu vs ref: ${dr} (scale ${scale})`);
      console.log(`# ${mix} vs the f32 model: max |logit diff| ${df.toFixed(3)} of ${scale.toFixed(3)}`);
      // measured: q2_k 27.7 of 47.2, q3_k_s 16.3, q3_k_m 15.5, q3_k_l 15.6, iq4_xs 8.7 (q4_k_m: 7.0)
      assert.ok(df <= (mix === 'q2_k' ? 0.7 : mix === 'iq4_xs' ? 0.25 : 0.4) * scale, `${mix} vs f32: ${df} (scale ${scale})`);
      const lm = loadModelSync(files[mix]!, cpuBackend());
      const b = new Sequence(lm.model, { maxContext: 256 });
      b.prefill(PROMPT.slice(0, -1));
      assert.deepEqual(Float32Array.from(b.decode(PROMPT.at(-1)!)), q);
    });
  });
}

describe('agreement with llama.cpp on Q2_K, Q3_K_S/M/L and IQ4_XS GGUFs', { skip: installed ? false : 'llama.cpp peer not installed (npm ci --prefix compat/llamacpp)' }, () => {
  for (const mix of MIXES) it(`${mix}: same first greedy token, top log-probabilities within 0.25`, () => {
    assertLlamacppParity(files[mix]!, PROMPT, mix);
  });
});

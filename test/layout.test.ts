// Each layout conversion between checkpoint formats (src/formats/layout.ts), checked against
// values worked out by hand or against the published definitions.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  gemmaNormFromGguf, gemmaNormToGguf, ggufDimsToShape, ggufToHfName, hfToGgufName, hfLayoutChange, llama3RopeFreqs, permuteForInterleavedRope,
  ropeFreqsToScaling, shapeToGgufDims, transposeBytes, unpermuteFromInterleavedRope,
} from '../src/formats/layout.ts';
import { configToHf, hfConfigJson } from '../src/formats/model-config.ts';
import { specToConfig, TINY_SPECS } from '../src/models/random.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tensor } from '../src/tensor/tensor.ts';

describe('RoPE q/k permutation (HF half-split -> GGUF interleaved)', () => {
  it('moves rows as llama.cpp permute() does: per head, row j*(d/2)+i -> 2i+j', () => {
    // 2 heads of 4 rows, 1 column: rows hold their own index.
    const src = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
    const out = permuteForInterleavedRope(src, 8, 1, 2);
    // head 0: HF rows [x0, x1 | y0, y1] -> [x0, y0, x1, y1]
    assert.deepEqual([...out], [0, 2, 1, 3, 4, 6, 5, 7]);
    assert.deepEqual([...unpermuteFromInterleavedRope(out, 8, 1, 2)], [...src]);
  });

  it('rotating half-split rows equals rotating the permuted rows interleaved', () => {
    const be = cpuBackend();
    const H = 3, D = 8, K = 5;
    const w = Float32Array.from({ length: H * D * K }, (_, i) => Math.sin(i * 1.7));
    const x = Float32Array.from({ length: K }, (_, i) => Math.cos(i));
    const project = (wt: Float32Array) => {
      const out = Tensor.zeros([1, H * D]);
      be.matmul(Tensor.fromF32(x, [1, K]), Tensor.fromF32(wt, [H * D, K]), out);
      return out;
    };
    const half = project(w);
    const wp = new Float32Array(permuteForInterleavedRope(new Uint8Array(w.buffer), H * D, K * 4, H).buffer);
    const inter = project(wp);
    be.rope(half.reshape([1, H, D]), Int32Array.of(37), { layout: 'half', theta: 10000 });
    be.rope(inter.reshape([1, H, D]), Int32Array.of(37), { layout: 'interleaved', theta: 10000 });
    // Same rotated vector, rows in the permuted order.
    const hv = half.toF32(), iv = inter.toF32();
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < D / 2; i++) {
        assert.ok(Math.abs(hv[h * D + i]! - iv[h * D + 2 * i]!) < 1e-5);
        assert.ok(Math.abs(hv[h * D + D / 2 + i]! - iv[h * D + 2 * i + 1]!) < 1e-5);
      }
    }
  });
});

describe('other conversions', () => {
  it('GPT-2 Conv1D [in, out] -> [out, in] transpose', () => {
    const src = new Uint8Array(Float32Array.of(1, 2, 3, 4, 5, 6).buffer); // [2, 3]
    assert.deepEqual([...new Float32Array(transposeBytes(src, 2, 3, 4).buffer)], [1, 4, 2, 5, 3, 6]);
    const h = Uint8Array.of(1, 0, 2, 0, 3, 0, 4, 0); // f16-sized elements, [2, 2]
    assert.deepEqual([...transposeBytes(h, 2, 2, 2)], [1, 0, 3, 0, 2, 0, 4, 0]);
  });

  it("Gemma's (1 + w) norm weights", () => {
    assert.deepEqual([...gemmaNormToGguf(Float32Array.of(0, -0.5, 2))], [1, 0.5, 3]);
    assert.deepEqual([...gemmaNormFromGguf(Float32Array.of(1, 0.5, 3))], [0, -0.5, 2]);
  });

  it('config.json writes float fields with a decimal point (transformers 5 rejects 30 for 30.0)', () => {
    const text = hfConfigJson(configToHf(specToConfig(TINY_SPECS.gemma2)));
    assert.match(text, /"final_logit_softcapping": 30\.0\b/);
    assert.match(text, /"attn_logit_softcapping": 50\.0\b/);
    assert.match(text, /"rope_theta": 10000\.0\b/);
    assert.match(text, /"query_pre_attn_scalar": 16(?![.\d])/); // an int field stays an int
    const back = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(back, JSON.parse(JSON.stringify(configToHf(specToConfig(TINY_SPECS.gemma2)))));
    assert.match(hfConfigJson({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1 } }), /"factor": 8\.0,\n\s+"low_freq_factor": 1\.0\n/);
  });

  it('GGUF reversed dims', () => {
    assert.deepEqual(ggufDimsToShape([2048, 5632]), [5632, 2048]);
    assert.deepEqual(shapeToGgufDims([8, 5632, 2048]), [2048, 5632, 8]);
  });

  it('Llama 3.1 rope_freqs: the released 8B parameters, and back', () => {
    const s = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPosition: 8192 };
    const f = llama3RopeFreqs(s, 500000, 128);
    assert.equal(f.length, 64);
    assert.equal(f[0], 1); //   high frequencies unscaled
    assert.equal(f[63], 8); //  low frequencies divided by the factor
    assert.ok(f.some((v) => v > 1 && v < 8)); // a smooth band in between
    assert.deepEqual(ropeFreqsToScaling(f, 500000, 128), s);
    assert.throws(() => ropeFreqsToScaling(f.map((v) => v * 1.5), 500000, 128), /unsupported/);
  });

  it('tensor names both ways, per family', () => {
    const cases: [Parameters<typeof hfToGgufName>[0], string, string][] = [
      ['llama', 'model.layers.3.self_attn.q_proj.weight', 'blk.3.attn_q.weight'],
      ['llama', 'model.layers.0.post_attention_layernorm.weight', 'blk.0.ffn_norm.weight'],
      ['gemma2', 'model.layers.1.post_attention_layernorm.weight', 'blk.1.post_attention_norm.weight'],
      ['gemma2', 'model.layers.1.pre_feedforward_layernorm.weight', 'blk.1.ffn_norm.weight'],
      ['qwen2', 'model.layers.2.self_attn.k_proj.bias', 'blk.2.attn_k.bias'],
      ['gpt2', 'transformer.h.5.attn.c_attn.weight', 'blk.5.attn_qkv.weight'],
      ['gpt2', 'transformer.wpe.weight', 'position_embd.weight'],
      ['qwen3', 'model.layers.1.self_attn.q_norm.weight', 'blk.1.attn_q_norm.weight'],
      ['qwen3moe', 'model.layers.1.self_attn.k_norm.weight', 'blk.1.attn_k_norm.weight'],
      ['qwen3moe', 'model.layers.2.mlp.gate.weight', 'blk.2.ffn_gate_inp.weight'],
      ['gemma3', 'model.layers.4.self_attn.k_norm.weight', 'blk.4.attn_k_norm.weight'],
      ['gemma3', 'model.layers.4.post_feedforward_layernorm.weight', 'blk.4.post_ffw_norm.weight'],
    ];
    for (const [arch, hf, gg] of cases) {
      assert.equal(hfToGgufName(arch, hf)!.name, gg);
      assert.equal(ggufToHfName(arch, gg), hf);
    }
    assert.deepEqual(hfToGgufName('mixtral', 'model.layers.0.block_sparse_moe.experts.5.w2.weight'), { name: 'blk.0.ffn_down_exps.weight', expert: 5 });
    assert.equal(ggufToHfName('mixtral', 'blk.0.ffn_down_exps.weight', 5), 'model.layers.0.block_sparse_moe.experts.5.w2.weight');
    assert.deepEqual(hfToGgufName('qwen3moe', 'model.layers.0.mlp.experts.7.up_proj.weight'), { name: 'blk.0.ffn_up_exps.weight', expert: 7 });
    assert.equal(ggufToHfName('qwen3moe', 'blk.0.ffn_up_exps.weight', 7), 'model.layers.0.mlp.experts.7.up_proj.weight');
    assert.equal(hfLayoutChange('gemma3', 'blk.0.attn_q_norm.weight', 1).gemmaNorm, true); // Gemma 3's q/k norms are (1 + w) too
    assert.equal(hfLayoutChange('qwen3', 'blk.0.attn_q_norm.weight', 1).gemmaNorm, false);
    // the vision-language Gemma 3: its language model's tensors under either prefix, the vision tower skipped
    assert.equal(hfToGgufName('gemma3', 'language_model.model.layers.3.self_attn.q_norm.weight')!.name, 'blk.3.attn_q_norm.weight');
    assert.equal(hfToGgufName('gemma3', 'model.language_model.embed_tokens.weight')!.name, 'token_embd.weight');
    assert.equal(hfToGgufName('gemma3', 'vision_tower.vision_model.embeddings.patch_embedding.weight'), null);
    assert.equal(hfToGgufName('gemma3', 'model.multi_modal_projector.mm_input_projection_weight'), null);
    assert.equal(hfToGgufName('llama', 'model.layers.0.self_attn.rotary_emb.inv_freq'), null);
    assert.equal(hfToGgufName('gpt2', 'h.0.attn.bias'), null);
    assert.throws(() => hfToGgufName('llama', 'model.layers.0.mystery.weight'), /unexpected tensor/);
  });
});

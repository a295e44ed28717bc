// Hugging Face config.json -> ModelConfig for the newer families: the fields each one adds and the
// shapes real checkpoints write them in (transformers 4 and 5, text-only and vision-language).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configFromHf, longRopeAttnFactor } from '../src/formats/model-config.ts';
import { layerWindow, ropeOptions } from '../src/models/ops.ts';

const base = { hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 12, intermediate_size: 128, vocab_size: 300 };

describe('configFromHf: newer families', () => {
  it('Gemma 3: 5 local layers to 1 global, each with its RoPE base; scaling on the global ones only', () => {
    const c = configFromHf({
      ...base, architectures: ['Gemma3ForCausalLM'], head_dim: 32, query_pre_attn_scalar: 32, sliding_window: 512, sliding_window_pattern: 6,
      rope_theta: 1e6, rope_local_base_freq: 10000, rope_scaling: { rope_type: 'linear', factor: 8 },
    }, 'config.json');
    assert.equal(c.arch, 'gemma3');
    assert.equal(c.qkNorm, true);
    assert.equal(c.embedScale, 8);
    assert.equal(c.attnScale, 1 / Math.sqrt(32));
    assert.deepEqual([...Array(12).keys()].map((l) => layerWindow(c, l)), [512, 512, 512, 512, 512, 0, 512, 512, 512, 512, 512, 0]);
    assert.deepEqual(ropeOptions(c, 0), { layout: 'half', theta: 10000, rotaryDim: 32 });
    assert.deepEqual(ropeOptions(c, 5), { layout: 'half', theta: 1e6, rotaryDim: 32, scaling: { type: 'linear', factor: 8 } });
  });

  it('Gemma 3 in transformers 5: layer_types and rope_parameters per layer type', () => {
    const types = [...Array(12).keys()].map((l) => ((l + 1) % 6 === 0 ? 'full_attention' : 'sliding_attention'));
    const c = configFromHf({
      ...base, architectures: ['Gemma3ForCausalLM'], head_dim: 32, sliding_window: 512, layer_types: types,
      rope_parameters: { full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 10000 } },
    }, 'config.json');
    assert.equal(c.slidingPeriod, 6);
    assert.equal(c.ropeLocalTheta, 10000);
    assert.equal(c.rope!.theta, 1e6);
    assert.deepEqual(c.rope!.scaling, { type: 'linear', factor: 8 });
    const odd = types.map((t, l) => (l === 2 ? 'full_attention' : t));
    assert.throws(() => configFromHf({ ...base, architectures: ['Gemma3ForCausalLM'], sliding_window: 512, layer_types: odd }, 'config.json'), /layer_types/);
  });

  it('the vision-language Gemma 3: its text_config over Gemma3TextConfig defaults', () => {
    const c = configFromHf({
      architectures: ['Gemma3ForConditionalGeneration'], eos_token_id: [1, 106],
      text_config: { hidden_size: 2560, intermediate_size: 10240, num_hidden_layers: 34, sliding_window: 1024, rope_scaling: { rope_type: 'linear', factor: 8 } },
      vision_config: { hidden_size: 1152 },
    }, 'config.json');
    assert.equal(c.arch, 'gemma3');
    assert.deepEqual([c.dim, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize], [2560, 8, 4, 256, 262208]);
    assert.deepEqual(c.eosIds, [1, 106]);
    assert.equal(c.ropeLocalTheta, 10000);
  });

  it('transformers 5 rope_parameters for the other families', () => {
    const c = configFromHf({ ...base, architectures: ['Qwen3ForCausalLM'], rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }, 'config.json');
    assert.equal(c.rope!.theta, 1e6);
    assert.equal(c.rope!.scaling, undefined);
    assert.equal(c.qkNorm, true);
  });

  it('Qwen3-MoE: experts of moe_intermediate_size; only renormalised top-k and all-sparse layers', () => {
    const moe = { ...base, architectures: ['Qwen3MoeForCausalLM'], num_experts: 8, num_experts_per_tok: 2, moe_intermediate_size: 48, norm_topk_prob: true };
    const c = configFromHf(moe, 'config.json');
    assert.deepEqual([c.nExperts, c.nExpertsPerToken, c.ffnDim], [8, 2, 48]);
    assert.throws(() => configFromHf({ ...moe, norm_topk_prob: false }, 'config.json'), /norm_topk_prob/);
    assert.throws(() => configFromHf({ ...moe, mlp_only_layers: [0] }, 'config.json'), /dense layers/);
  });

  it('Phi-3.5 / Phi-4-mini: partial rotary dims and LongRoPE with the default attention factor', () => {
    const short = Array.from({ length: 6 }, (_, i) => 1 + i / 10), long = Array.from({ length: 6 }, (_, i) => 1 + i);
    const c = configFromHf({
      ...base, architectures: ['Phi3ForCausalLM'], partial_rotary_factor: 0.75, max_position_embeddings: 131072, original_max_position_embeddings: 4096,
      rope_scaling: { type: 'longrope', short_factor: short, long_factor: long },
    }, 'config.json');
    assert.equal(c.rope!.dim, 12);
    assert.deepEqual(c.rope!.scaling, { type: 'longrope', shortFactor: short, longFactor: long, originalMaxPosition: 4096, attnFactor: longRopeAttnFactor(131072, 4096) });
    assert.ok(Math.abs(longRopeAttnFactor(131072, 4096) - Math.sqrt(1 + Math.log(32) / Math.log(4096))) < 1e-12);
    assert.throws(() => configFromHf({
      ...base, architectures: ['Phi3ForCausalLM'], max_position_embeddings: 131072, original_max_position_embeddings: 4096,
      rope_scaling: { type: 'longrope', short_factor: short, long_factor: long },
    }, 'config.json'), /rotary pairs/); // 8 pairs without the partial factor
  });
});

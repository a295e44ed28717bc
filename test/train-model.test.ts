// The trainable model on the autograd tape: its forward pass is the inference model's (same
// HF checkpoint, same logits), its gradients match finite differences, packing keeps
// documents apart, and LoRA adapts only what it should.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Arch } from '../src/formats/model-config.ts';
import { loadModelSync, type LoadedModel } from '../src/models/load.ts';
import { TINY_SPECS, writeRandomHfModel, type RandomModelSpec } from '../src/models/random.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { Tape } from '../src/tensor/autograd.ts';
import { RefTrainKernels } from '../src/tensor/train-ref.ts';
import { type TrainBatch, TrainModel, readHfWeights } from '../src/train/model.ts';
import { AdamW } from '../src/train/optim.ts';
import { TrainRng } from '../src/train/rng.ts';
import { inferenceLogits } from './helpers/logits.ts';

const k = new RefTrainKernels();
let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-train-model-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

const PROMPT = [1, 40, 77, 200, 13, 5, 300, 42, 42, 9, 100];

function oneSeq(tokens: number[], targets?: number[]): TrainBatch {
  const T = tokens.length;
  return {
    B: 1,
    T,
    tokens: Int32Array.from(tokens),
    targets: Int32Array.from(targets ?? tokens.map((_, i) => (i + 1 < T ? tokens[i + 1]! : -1))),
    seg: new Int32Array(T),
    positions: Int32Array.from(tokens, (_, i) => i),
  };
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0, diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]!));
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
  }
  return diff / scale;
}

// Phi-3.5's LongRoPE with an original context of 3: the 7-token gradient check crosses from the short factors to the long ones
const PHI3_LONGROPE: RandomModelSpec = {
  ...TINY_SPECS.phi3,
  ropeScaling: { type: 'longrope', shortFactor: [1, 1.2, 1.5, 2, 3, 4, 6, 8], longFactor: [1, 2, 4, 8, 12, 16, 24, 32], originalMaxPosition: 3, attnFactor: 1.15 },
};

function load(arch: Arch, spec: RandomModelSpec = TINY_SPECS[arch], name: string = arch): { lm: LoadedModel; model: TrainModel; dir: string } {
  const dir = join(root, name);
  writeRandomHfModel(dir, spec, 5);
  const lm = loadModelSync(dir, refBackend);
  return { lm, model: new TrainModel(lm.config, readHfWeights(dir)), dir };
}

for (const arch of ['llama', 'mistral', 'mixtral', 'qwen2', 'qwen3', 'qwen3moe', 'gemma', 'gemma2', 'gemma3', 'phi3', 'gpt2'] as Arch[]) {
  describe(`train model: ${arch}`, () => {
    it('forward logits equal the inference model on the same checkpoint', () => {
      const { lm, model } = load(arch);
      const want = inferenceLogits(lm, PROMPT);
      const t = new Tape(k);
      // one forward definition: the training logits include Gemma 2's final soft-cap too
      const got = model.forward(t, oneSeq(PROMPT)).data.slice();
      assert.ok(maxRel(want, got) < 1e-5, `max rel diff ${maxRel(want, got)}`);
    });
  });
}

describe('train model: gradients and packing', () => {
  for (const arch of ['qwen2', 'gemma2', 'gpt2', 'mixtral', 'qwen3', 'qwen3moe', 'gemma3', 'phi3', 'phi3-longrope'] as (Arch | 'phi3-longrope')[]) {
  // qwen2: biases, GQA, tied embeddings; gemma2: four (1 + w) norms, soft-caps, alternating window;
  // qwen3: per-head q/k RMSNorm; qwen3moe: that and experts; gemma3: (1 + w) q/k norms, local/global layers
  it(`whole-model gradients match central finite differences (ref kernels): ${arch}`, () => {
    const { model } = arch === 'phi3-longrope' ? load('phi3', PHI3_LONGROPE, arch) : load(arch);
    const b = oneSeq(PROMPT.slice(0, 7));
    const t = new Tape(k);
    const lossOf = (): number => {
      const r = model.loss(t, b, 0);
      t.reset();
      return r.sum;
    };
    for (const v of model.params.values()) v.grad!.fill(0);
    model.loss(t, b, 1);
    t.backward();
    t.reset();
    const rng = new TrainRng(3);
    let checked = 0;
    for (const [name, v] of model.params) {
      // a few coordinates of every tensor, the largest-gradient one included
      let best = 0;
      for (let i = 1; i < v.size; i++) if (Math.abs(v.grad![i]!) > Math.abs(v.grad![best]!)) best = i;
      for (const i of [best, rng.nextU32() % v.size]) {
        const old = v.data[i]!;
        const h = 1e-2 * Math.max(1, Math.abs(old));
        v.data[i] = old + h;
        const lp = lossOf();
        v.data[i] = old - h;
        const lm = lossOf();
        v.data[i] = old;
        const fd = (lp - lm) / (2 * h);
        const g = v.grad![i]!;
        assert.ok(Math.abs(fd - g) <= 2e-2 * Math.max(Math.abs(g), Math.abs(fd)) + 2e-4, `${name}[${i}]: analytic ${g}, finite difference ${fd}`);
        checked++;
      }
    }
    assert.ok(checked > 20);
  });
  }

  it('two documents packed in one row give the same logits as two separate rows', () => {
    const { model } = load('llama');
    const d1 = [1, 40, 77, 200, 13], d2 = [1, 300, 42, 9];
    const t = new Tape(k);
    const sep1 = model.forward(t, oneSeq(d1)).data.slice();
    const sep2 = model.forward(t, oneSeq(d2)).data.slice();
    t.reset();
    const tokens = [...d1, ...d2];
    const packed: TrainBatch = {
      B: 1, T: tokens.length, tokens: Int32Array.from(tokens), targets: new Int32Array(tokens.length).fill(-1),
      seg: Int32Array.from(tokens, (_, i) => (i < d1.length ? 0 : 1)),
      positions: Int32Array.from(tokens, (_, i) => (i < d1.length ? i : i - d1.length)),
    };
    const got = model.forward(t, packed).data;
    const V = model.cfg.vocabSize;
    assert.ok(maxRel(sep1, got.subarray(0, d1.length * V)) < 1e-6);
    assert.ok(maxRel(sep2, got.subarray(d1.length * V)) < 1e-6);
  });

  it('AdamW steps on one batch drive its loss down', () => {
    const { model } = load('llama');
    const b = oneSeq(PROMPT);
    const t = new Tape(k);
    const opt = new AdamW(model.trainable(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 }, k);
    const losses: number[] = [];
    for (let s = 0; s < 8; s++) {
      const r = model.loss(t, b, 1 / 10);
      losses.push(r.sum / r.count);
      t.backward();
      t.reset();
      opt.update(3e-3);
    }
    assert.ok(losses[7]! < losses[0]! * 0.7, `losses ${losses.map((x) => x.toFixed(3)).join(' ')}`);
  });
});

describe('train model: LoRA', () => {
  it('adapters start as a no-op, train only A and B, and merge into the same function', () => {
    const { model } = load('llama');
    const b = oneSeq(PROMPT);
    const t = new Tape(k);
    const base = model.forward(t, b).data.slice();
    t.reset();
    const frozen = new Map([...model.params].map(([n, v]) => [n, v.data.slice()]));
    model.addLora({ rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'down'] }, new TrainRng(1), false);
    assert.deepEqual(model.forward(t, b).data.slice(), base);
    t.reset();
    const tr = model.trainable();
    assert.equal(tr.size, 2 * 3 * model.cfg.nLayers);
    assert.ok([...tr.keys()].every((n) => /^base_model\.model\.model\.layers\.\d+\.(self_attn\.[qv]_proj|mlp\.down_proj)\.lora_[AB]\.weight$/.test(n)));
    const opt = new AdamW(tr, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 1 }, k);
    for (let s = 0; s < 3; s++) {
      model.loss(t, b, 0.1);
      t.backward();
      t.reset();
      opt.update(1e-2);
    }
    for (const [n, v] of model.params) assert.deepEqual(v.data, frozen.get(n), `${n} must stay frozen`);
    const adapted = model.forward(t, b).data.slice();
    t.reset();
    assert.ok(maxRel(base, adapted) > 1e-4, 'the adapters should have changed the output');
    const merged = new TrainModel(model.cfg, model.weights(true));
    assert.ok(maxRel(adapted, merged.forward(t, b).data) < 1e-5);
  });

  it('QLoRA: q8_0 base weights stay close to the f32 base and still train', () => {
    const { model } = load('llama');
    const b = oneSeq(PROMPT);
    const t = new Tape(k);
    const base = model.forward(t, b).data.slice();
    t.reset();
    model.addLora({ rank: 2, alpha: 4, dropout: 0.1, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] }, new TrainRng(1), true, cpuBackend());
    assert.ok(model.quantized.size === 7 * model.cfg.nLayers);
    const q = model.forward(t, b).data.slice();
    t.reset();
    assert.ok(maxRel(base, q) < 0.05, `q8_0 base drifted ${maxRel(base, q)}`);
    const opt = new AdamW(model.trainable(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 1 }, k);
    const first = model.loss(t, b, 0.1).sum;
    t.backward();
    t.reset();
    opt.update(1e-2);
    let bNorm = 0;
    for (const [n, v] of model.trainable()) if (n.includes('lora_B')) bNorm += k.sumSquares(v.data);
    assert.ok(bNorm > 0, 'lora_B must have been updated');
    assert.ok(Number.isFinite(first));
  });

  it('a PEFT adapter written after training loads with --lora (merged at load) and gives the adapted logits', () => {
    const { model, dir } = load('llama');
    const b = oneSeq(PROMPT);
    const t = new Tape(k);
    model.addLora({ rank: 4, alpha: 16, dropout: 0, targets: ['q', 'k', 'o', 'up'] }, new TrainRng(2), false);
    const opt = new AdamW(model.trainable(), { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 1 }, k);
    for (let s = 0; s < 2; s++) {
      model.loss(t, b, 0.1);
      t.backward();
      t.reset();
      opt.update(1e-2);
    }
    const want = model.forward(t, b).data.slice();
    t.reset();
    const adir = join(root, 'adapter-llama');
    model.writeAdapter(adir, dir);
    const cfg = JSON.parse(readFileSync(join(adir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.peft_type, 'LORA');
    assert.equal(cfg.r, 4);
    assert.equal(cfg.lora_alpha, 16);
    assert.deepEqual(cfg.target_modules, ['k_proj', 'o_proj', 'q_proj', 'up_proj']);
    const lm = loadModelSync(dir, refBackend, { lora: adir });
    assert.ok(maxRel(want, inferenceLogits(lm, PROMPT)) < 1e-5);
    // the same adapter on a model of another size is refused, naming the tensor
    const other = join(root, 'other');
    writeRandomHfModel(other, { ...TINY_SPECS.llama, ffnDim: 64 }, 5);
    assert.throws(() => loadModelSync(other, refBackend, { lora: adir }), /up_proj\.weight: the adapter is for a \[96, 64\] weight but the base model's is \[64, 64\]/);
    assert.throws(() => loadModelSync(dir, refBackend, { lora: root }), /no adapter_config\.json/);
  });

  it('rejects a target the model does not have and a bad rank', () => {
    const { model } = load('llama');
    assert.throws(() => model.addLora({ rank: 2, alpha: 4, dropout: 0, targets: ['qkv' as never] }, new TrainRng(1), false), /lora target "qkv"/);
    assert.throws(() => model.addLora({ rank: 0, alpha: 4, dropout: 0, targets: ['q'] }, new TrainRng(1), false), /rank must be a positive integer/);
    // Mixtral's FFN is a mixture of experts: no gate/up/down projections to adapt
    assert.throws(() => load('mixtral').model.addLora({ rank: 2, alpha: 4, dropout: 0, targets: ['q', 'up'] }, new TrainRng(1), false), /lora target "up" \(mlp\.up_proj\) is not a projection of a mixtral model/);
  });
});

// torch's CPU generator reproduced bit for bit: every value of torch 1.13's randn / rand (AVX2 CPU
// path, as diffusers' randn_tensor draws them) for several seeds, shapes and call sequences.
// Fixture: scripts/oracle/torch_rng.py -> test/fixtures/diffusion/torch-rng.{json,f32}.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { MT19937, TorchGenerator, randnTensor } from '../src/diffusion/torch-rng.ts';

const dir = join(import.meta.dirname, 'fixtures', 'diffusion');
interface Case { name: string; seed: number; draws: [string, number[]][]; offset: number; count: number }
const meta = JSON.parse(readFileSync(join(dir, 'torch-rng.json'), 'utf8')) as { cases: Case[] };
const raw = readFileSync(join(dir, 'torch-rng.f32'));
const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));

describe('torch CPU RNG', () => {
  it('mt19937 matches the reference sequence (seed 5489: 10000th output 4123659995)', () => {
    const mt = new MT19937(5489);
    let v = 0;
    for (let i = 0; i < 10000; i++) v = mt.nextUint32();
    assert.equal(v, 4123659995);
  });

  for (const c of meta.cases) {
    it(`${c.name}: bit-exact`, () => {
      const g = new TorchGenerator(c.seed);
      const want = all.subarray(c.offset, c.offset + c.count);
      let at = 0;
      for (const [kind, shape] of c.draws) {
        const got = kind === 'randn' ? g.randn(shape) : g.rand(shape);
        for (let i = 0; i < got.length; i++, at++) {
          if (!Object.is(got[i], want[at])) assert.fail(`${c.name}: value ${at} (${kind} [${shape}] index ${i}) is ${got[i]}, torch gives ${want[at]}`);
        }
      }
      assert.equal(at, c.count);
    });
  }

  it('manualSeed resets the state and the cached normal; clone continues identically', () => {
    const g = new TorchGenerator(3);
    const a = g.randn([3]);
    g.manualSeed(3);
    assert.deepEqual(g.randn([3]), a);
    const h = g.clone();
    assert.deepEqual(g.randn([40]), h.randn([40]));
  });

  it('randnTensor: one generator draws the whole batch; a list draws per item', () => {
    const whole = randnTensor([2, 4, 4, 4], new TorchGenerator(9));
    assert.deepEqual(whole, new TorchGenerator(9).randn([2, 4, 4, 4]));
    const perItem = randnTensor([2, 4, 4, 4], [new TorchGenerator(1), new TorchGenerator(2)]);
    assert.deepEqual(perItem.subarray(64), new TorchGenerator(2).randn([64]));
    assert.throws(() => randnTensor([3, 4], [new TorchGenerator(1)]), /1 generators for a batch of 3/);
  });

  it('rejects bad seeds and shapes naming them', () => {
    assert.throws(() => new TorchGenerator(1.5), /seed must be an integer, got 1.5/);
    assert.throws(() => new TorchGenerator(0).randn([2, -1]), /\[2, -1\]/);
  });

  it('seeds wrap to their low 32 bits as in torch (2**32 + 7 == 7)', () => {
    assert.deepEqual(new TorchGenerator(2 ** 32 + 7).randn([20]), new TorchGenerator(7).randn([20]));
    assert.deepEqual(new TorchGenerator(2n ** 40n + 7n).randn([20]), new TorchGenerator(7).randn([20]));
  });
});

// Training config: defaults and path resolution, every kind of error naming the file and the key
// path (with a "did you mean" for typos), and the learning-rate schedule.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, configHash, loadTrainConfig, lrAt, parseTrainConfig, suggestKey, type TrainConfig } from '../src/train/config.ts';

let dir = '';
let cfgFile = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-train-config-'));
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'a.jsonl'), '{"text":"hi"}\n');
  writeFileSync(join(dir, 'data', 'b.jsonl'), '{"text":"ho"}\n');
  mkdirSync(join(dir, 'tok'));
  mkdirSync(join(dir, 'base'));
  cfgFile = join(dir, 'run.json');
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const scratch = (): Record<string, any> => ({
  model: { hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4 },
  tokenizer: 'tok',
  data: { train: ['data/a.jsonl', 'data/b.jsonl'] },
  train: { steps: 100 },
  out: 'runs/x',
});
const finetune = (): Record<string, any> => ({ model: { from: 'base' }, data: { train: ['data/a.jsonl'], format: 'chat' }, train: { steps: 10 }, lora: { rank: 8 }, out: 'runs/y' });
const parse = (o: unknown): TrainConfig => parseTrainConfig(o, cfgFile, dir);

/** Expects a ConfigError whose message is exactly `${cfgFile}: ${rest}` (rest may be a RegExp). */
function fails(o: unknown, rest: string | RegExp): void {
  assert.throws(
    () => parse(o),
    (e: unknown) => {
      if (!(e instanceof ConfigError)) return false;
      assert.ok(e.message.startsWith(cfgFile + ': '), e.message);
      const tail = e.message.slice(cfgFile.length + 2);
      if (typeof rest === 'string') assert.equal(tail, rest);
      else assert.match(tail, rest);
      return true;
    },
  );
}
const with_ = (base: Record<string, any>, path: string, value: unknown): Record<string, any> => {
  const o = structuredClone(base);
  const keys = path.split('.');
  let cur = o;
  for (const k of keys.slice(0, -1)) cur = cur[k] ??= {};
  if (value === undefined) delete cur[keys.at(-1)!];
  else cur[keys.at(-1)!] = value;
  return o;
};

describe('train config', () => {
  it('fills defaults and resolves paths against the config directory', () => {
    const c = parse(scratch());
    assert.equal(c.file, cfgFile);
    assert.deepEqual(c.model, {
      from: null, arch: 'llama', hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4, numKvHeads: 4,
      maxPosition: 256, ropeTheta: 10000, normEps: 1e-5, tieEmbeddings: false, init: { std: 0.02 },
    });
    assert.equal(c.tokenizer, join(dir, 'tok'));
    assert.deepEqual(c.data, { train: [join(dir, 'data/a.jsonl'), join(dir, 'data/b.jsonl')], format: 'jsonl', textField: 'text', evalFraction: 0.01, seqLen: 256, chatTemplate: null });
    assert.deepEqual(c.train, {
      steps: 100, batchSize: 16, gradAccum: 1, lr: 3e-4, minLr: 3e-4 / 10, warmup: 0, schedule: 'cosine', weightDecay: 0.1, beta1: 0.9, beta2: 0.95,
      eps: 1e-8, clip: 1, seed: 0, evalEvery: 0, evalBatches: 8, checkpointEvery: 0, logEvery: 10, threads: null,
    });
    assert.equal(c.lora, null);
    assert.equal(c.out, join(dir, 'runs/x'));
    // maxPosition follows seqLen; minLr follows lr.
    const c2 = parse(with_(with_(scratch(), 'data.seqLen', 64), 'train.lr', 1e-3));
    assert.equal(c2.model.maxPosition, 64);
    assert.equal(c2.train.minLr, 1e-4);
  });

  it('fine-tuning: the model decides the architecture; tokenizer and LoRA defaults', () => {
    const c = parse(finetune());
    assert.equal(c.model.from, join(dir, 'base'));
    assert.equal(c.model.hiddenSize, null);
    assert.equal(c.tokenizer, null);
    assert.deepEqual(c.lora, { rank: 8, alpha: 16, dropout: 0, targets: ['q', 'v'], quantizeBase: null });
    assert.equal(parse(with_(finetune(), 'model.from', 'hf:org/model')).model.from, 'hf:org/model');
    const l = parse(with_(finetune(), 'lora', { rank: 4, alpha: 4, dropout: 0.1, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], quantizeBase: 'q8_0' })).lora!;
    assert.deepEqual(l, { rank: 4, alpha: 4, dropout: 0.1, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], quantizeBase: 'q8_0' });
  });

  it('loads from a file (relative paths against its directory); unreadable and invalid files are errors', () => {
    writeFileSync(cfgFile, JSON.stringify(scratch()));
    assert.equal(loadTrainConfig(cfgFile).data.train[0], join(dir, 'data/a.jsonl'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"model": ');
    assert.throws(() => loadTrainConfig(bad), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${bad}: is not valid JSON`));
    const none = join(dir, 'none.json');
    assert.throws(() => loadTrainConfig(none), (e: unknown) => e instanceof ConfigError && e.message === `${none}: cannot read the config (no such file)`);
  });

  it('unknown keys name their path and suggest the key meant', () => {
    fails(with_(scratch(), 'train.lr_max', 1), 'train.lr_max is not a known key (did you mean train.lr?)');
    fails(with_(scratch(), 'data.seq_len', 128), 'data.seq_len is not a known key (did you mean data.seqLen?)');
    fails(with_(scratch(), 'train.batchsize', 8), 'train.batchsize is not a known key (did you mean train.batchSize?)');
    fails(with_(scratch(), 'lora', { rnak: 8 }), 'lora.rnak is not a known key (did you mean lora.rank?)');
    fails(with_(scratch(), 'model.init.mean', 0), /^model\.init\.mean is not a known key \(known keys of model\.init: std\)$/);
    fails({ ...scratch(), modle: {} }, 'modle is not a known key (did you mean model?)');
    fails({ ...scratch(), zzz: 1 }, /^zzz is not a known key \(known keys: model, tokenizer, data, train, lora, out, prepare\)$/);
    assert.equal(suggestKey('warmup_steps', ['warmup', 'steps']), 'warmup');
    assert.equal(suggestKey('qqqq', ['lr', 'steps']), null);
  });

  it('wrong types name the key', () => {
    fails(with_(scratch(), 'train.steps', '100'), 'train.steps must be a whole number, not the string "100"');
    fails(with_(scratch(), 'train.steps', 10.5), 'train.steps must be a whole number, not 10.5');
    fails(with_(scratch(), 'train.lr', null), 'train.lr must be a number, not null');
    fails(with_(scratch(), 'model.tieEmbeddings', 'yes'), 'model.tieEmbeddings must be true or false, not the string "yes"');
    fails(with_(scratch(), 'data.train', 'data/a.jsonl'), 'data.train must be a list of paths (write ["data/a.jsonl"])');
    fails(with_(scratch(), 'data.train', [3]), 'data.train[0] must be a string, not number 3');
    fails(with_(scratch(), 'data.format', 'csv'), 'data.format must be one of "text", "jsonl", "chat", not the string "csv"');
    fails(with_(scratch(), 'train.schedule', 'linear'), 'train.schedule must be one of "cosine", "constant", not the string "linear"');
    fails(with_(scratch(), 'train', [1]), 'train must be an object, not a list');
    fails([], 'must be an object, not a list');
  });

  it('impossible values name the key', () => {
    fails(with_(scratch(), 'train.lr', 0), 'train.lr must be > 0, not 0');
    fails(with_(scratch(), 'train.lr', -1e-3), 'train.lr must be > 0, not -0.001');
    fails(with_(scratch(), 'train.warmup', 101), 'train.warmup (101) must be <= train.steps (100)');
    fails(with_(scratch(), 'data.seqLen', 1), 'data.seqLen must be >= 2, not 1');
    fails(with_(scratch(), 'train.batchSize', 0), 'train.batchSize must be >= 1, not 0');
    fails(with_(scratch(), 'data.evalFraction', 1), 'data.evalFraction must be < 1, not 1');
    fails(with_(scratch(), 'data.evalFraction', -0.1), 'data.evalFraction must be >= 0, not -0.1');
    fails(with_(scratch(), 'train.minLr', 1), 'train.minLr (1) must be <= train.lr (0.0003)');
    fails(with_(scratch(), 'train.beta2', 1), 'train.beta2 must be < 1, not 1');
    fails(with_(scratch(), 'train.clip', -1), 'train.clip must be >= 0, not -1');
    fails(with_(scratch(), 'train.steps', 0), 'train.steps must be >= 1, not 0');
    fails(with_(scratch(), 'model.numHeads', 5), 'model.hiddenSize (64) must be a multiple of model.numHeads (5)');
    fails(with_(scratch(), 'model.numKvHeads', 3), 'model.numKvHeads (3) must divide model.numHeads (4)');
    fails(with_(scratch(), 'model.maxPosition', 100), 'model.maxPosition (100) must be >= data.seqLen (256)');
    fails(with_(scratch(), 'model.init.std', 0), 'model.init.std must be > 0, not 0');
    fails(with_(with_(scratch(), 'data.textField', 'body'), 'data.format', 'text'), 'data.textField only applies to data.format "jsonl" (this config\'s is "text")');
  });

  it('required keys and combinations', () => {
    fails(with_(scratch(), 'train.steps', undefined), 'train.steps is required');
    fails(with_(scratch(), 'model.hiddenSize', undefined), 'model.hiddenSize is required when training from scratch (no model.from)');
    fails(with_(scratch(), 'tokenizer', undefined), 'tokenizer is required when training from scratch (a directory with tokenizer.json)');
    fails(with_(scratch(), 'out', undefined), 'out is required (the output directory)');
    fails(with_(scratch(), 'data.train', []), 'data.train must name at least one file');
    fails(with_(scratch(), 'data.train', ['data/missing.jsonl']), `data.train[0] names ${join(dir, 'data/missing.jsonl')}, which does not exist`);
    fails(with_(scratch(), 'tokenizer', 'data/a.jsonl'), `tokenizer names ${join(dir, 'data/a.jsonl')}, which is not a directory`);
    fails(with_(finetune(), 'model.numLayers', 2), 'model.numLayers cannot be set together with model.from: the model being fine-tuned decides it');
    fails(with_(scratch(), 'lora', { rank: 4 }), 'lora needs model.from: LoRA adapts an existing model');
    fails(with_(finetune(), 'lora.rank', undefined), 'lora.rank is required');
    fails(with_(finetune(), 'lora.targets', ['q', 'x']), 'lora.targets[1] must be one of "q", "k", "v", "o", "gate", "up", "down", not the string "x"');
    fails(with_(finetune(), 'lora.targets', ['q', 'q']), 'lora.targets names "q" twice');
    fails(with_(finetune(), 'lora.targets', []), 'lora.targets must name at least one projection');
    fails(with_(finetune(), 'lora.quantizeBase', 'q4_0'), 'lora.quantizeBase must be one of "q8_0", null, not the string "q4_0"');
    fails(with_(finetune(), 'lora.dropout', 1), 'lora.dropout must be < 1, not 1');
  });

  it('prepare names a module that must exist, resolved against the config', () => {
    writeFileSync(join(dir, 'prep.ts'), 'export async function prepare() {}\n');
    assert.equal(parse({ ...scratch(), prepare: 'prep.ts' }).prepare, join(dir, 'prep.ts'));
    assert.equal(parse(scratch()).prepare, null);
    fails({ ...scratch(), prepare: 'nope.ts' }, `prepare names ${join(dir, 'nope.ts')}, which does not exist`);
    fails({ ...scratch(), prepare: 3 }, /^prepare must be a string/);
  });

  it('the default-model recipe config parses once its inputs exist (prepare builds them)', () => {
    const recipe = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'recipes', 'default-model', 'train.json'), 'utf8')) as Record<string, any>;
    assert.equal(recipe.prepare, 'stages.ts');
    const c = parse({ ...recipe, prepare: undefined, tokenizer: 'tok', data: { ...recipe.data, train: ['data/a.jsonl'] } });
    assert.equal(c.data.evalFraction, 0.005);
  });

  it('configHash follows what a resumed run must agree with', () => {
    const a = parse(scratch());
    assert.equal(configHash(a), configHash(parse(scratch())));
    assert.equal(configHash(a), configHash(parse(with_(scratch(), 'train.steps', 500))));
    assert.notEqual(configHash(a), configHash(parse(with_(scratch(), 'train.seed', 1))));
    assert.notEqual(configHash(a), configHash(parse(with_(scratch(), 'model.numLayers', 3))));
  });
});

describe('lrAt', () => {
  const base = parse(scratch()).train;
  const t = { ...base, steps: 110, warmup: 10, lr: 1e-3, minLr: 1e-4 };
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

  it('warms up linearly, then follows a cosine to minLr at the last step', () => {
    close(lrAt(0, t), 1e-4);
    close(lrAt(4, t), 5e-4);
    close(lrAt(9, t), 1e-3);
    close(lrAt(10, t), 1e-3);
    close(lrAt(60, t), 5.5e-4); // halfway: the mean of lr and minLr
    close(lrAt(35, t), 1e-4 + 0.5 * 9e-4 * (1 + Math.cos(Math.PI / 4)));
    close(lrAt(110, t), 1e-4);
    close(lrAt(500, t), 1e-4);
    for (let s = 11; s < 110; s++) assert.ok(lrAt(s, t) < lrAt(s - 1, t));
  });

  it('constant after warmup; no warmup starts at lr', () => {
    const k = { ...t, schedule: 'constant' as const };
    close(lrAt(4, k), 5e-4);
    close(lrAt(10, k), 1e-3);
    close(lrAt(109, k), 1e-3);
    close(lrAt(0, { ...t, warmup: 0 }), 1e-3);
    // warmup == steps: the whole run is warmup.
    close(lrAt(9, { ...t, steps: 10, warmup: 10 }), 1e-3);
  });
});

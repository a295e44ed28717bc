// The training loop end to end on a tiny from-scratch model: the loss falls, the metrics log
// and the exported HF model are written (and load for inference), a NaN stops the run with
// the last good checkpoint kept, and a run resumed from a checkpoint continues on exactly the
// loss curve of an uninterrupted one.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadModelSync } from '../src/models/load.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { trainBpe, writeBpeTokenizer } from '../src/train/bpe.ts';
import { parseTrainConfig, type TrainConfig } from '../src/train/config.ts';
import { RefTrainKernels } from '../src/tensor/train-ref.ts';
import { latestCheckpoint } from '../src/train/checkpoint.ts';
import { TrainError, evalSplitWarning, runTraining, runTrainingAsync, setupTraining } from '../src/train/trainer.ts';
import { prepare } from '../recipes/default-model/stages.ts';
import { lossCurveSpec, writeLossPlot } from '../src/train/plot.ts';
import { chartSvg } from '../src/util/chart.ts';
import { generateCorpus } from '../recipes/default-model/corpus.ts';

const k = new RefTrainKernels();
let root: string;
let tokDir: string;
let corpus: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'ss-train-run-'));
  const stories = generateCorpus({ stories: 60, seed: 7 });
  tokDir = join(root, 'tok');
  mkdirSync(tokDir);
  writeBpeTokenizer(tokDir, trainBpe(stories, { vocabSize: 400 }), { bos: '<s>', eos: '</s>' });
  corpus = join(root, 'corpus.jsonl');
  writeFileSync(corpus, stories.map((s) => JSON.stringify({ text: s })).join('\n') + '\n');
});
after(() => rmSync(root, { recursive: true, force: true }));

function configObj(name: string, train: Record<string, unknown>): Record<string, unknown> {
  return {
    model: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPosition: 64 },
    tokenizer: tokDir,
    data: { train: [corpus], seqLen: 32, evalFraction: 0.05 },
    train: { batchSize: 4, lr: 3e-3, warmup: 2, seed: 3, evalBatches: 2, ...train },
    out: join(root, name),
  };
}

function config(name: string, train: Record<string, unknown>): TrainConfig {
  return parseTrainConfig(configObj(name, train), 'test.json', root);
}

describe('training run', () => {
  it('lowers the loss, logs metrics, exports a model that loads for inference', () => {
    const c = config('run1', { steps: 12, evalEvery: 6, lr: 1e-2 });
    const r = runTraining(c, k, null);
    assert.equal(r.history.length, 12);
    const first = r.history[0]!.loss, last = r.history.at(-1)!.loss;
    assert.ok(last < first - 0.5, `loss ${first} -> ${last}`);
    assert.ok(r.evalLoss !== null && Number.isFinite(r.evalLoss));
    const log = readFileSync(join(c.out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(log.length, 12);
    assert.deepEqual(Object.keys(log[0]).sort().slice(0, 3), ['elapsedSec', 'flopsPerSec', 'gradNorm']);
    assert.ok(log[5].evalLoss !== undefined && log[4].evalLoss === undefined);
    const lm = loadModelSync(r.modelDir, refBackend);
    assert.equal(lm.config.dim, 32);
    assert.equal(lm.tokenizer.vocabSize, 400);
  });

  it('a run stopped at a checkpoint and resumed follows the uninterrupted loss curve exactly', () => {
    const full = runTraining(config('full', { steps: 6, checkpointEvery: 3 }), k, null);
    // the "killed" run: same config, but it only gets to step 3 (its checkpoint) ...
    const cut = config('cut', { steps: 6, checkpointEvery: 3 });
    runTraining({ ...cut, train: { ...cut.train, steps: 3 } }, k, null);
    // ... then the same command again picks up from the checkpoint
    const resumed = runTraining(cut, k, null);
    assert.deepEqual(resumed.history.map((h) => h.loss), full.history.map((h) => h.loss));
    const log = readFileSync(join(cut.out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(log.length, 6);
  });

  it('a NaN loss stops the run with a message and keeps the last good checkpoint', () => {
    const c = config('nan', { steps: 40, lr: 1e4, warmup: 0, clip: 0, checkpointEvery: 1, schedule: 'constant', minLr: 1e4 });
    assert.throws(() => runTraining(c, k, null), (e: Error) => {
      assert.ok(e instanceof TrainError);
      assert.match(e.message, /became (NaN|Infinity|-Infinity) at step \d+; stopping.*last good checkpoint is .*step-/);
      return true;
    });
  });

  it('shouldStop ends the run with a checkpoint at the step reached; the rerun resumes on the same curve', async () => {
    const full = runTraining(config('stop-full', { steps: 6, checkpointEvery: 0 }), k, null);
    const c = config('stop', { steps: 6, checkpointEvery: 0 });
    let asked = 0;
    const stopped = await runTrainingAsync(c, k, null, { shouldStop: () => ++asked > 4 });
    assert.equal(stopped.stoppedAt, 4);
    assert.equal(stopped.history.length, 4);
    assert.match(latestCheckpoint(c.out) ?? '', /step-0*4$/);
    assert.ok(!existsSync(join(c.out, 'train.lock')), 'the lock is released');
    const logs: string[] = [];
    const resumed = runTraining(c, k, null, { onLog: (m) => logs.push(m) });
    assert.ok(logs.some((m) => /resuming from .*\(step 4\)/.test(m)), logs.join('\n'));
    assert.equal(resumed.stoppedAt, undefined);
    assert.deepEqual(resumed.history.map((h) => h.loss), full.history.map((h) => h.loss));
  });

  it('one run per output folder: a live lock refuses, a dead PID\'s lock is taken over', () => {
    const out = join(root, 'locked');
    mkdirSync(out, { recursive: true });
    // a live process that is not this one: the parent (the test runner)
    writeFileSync(join(out, 'train.lock'), `${process.ppid}\n`);
    assert.throws(() => runTraining(config('locked', { steps: 2 }), k, null), (e: Error) => {
      assert.ok(e instanceof TrainError);
      assert.match(e.message, new RegExp(`locked is in use by another training run \\(PID ${process.ppid}, lock file .*train\\.lock\\)`));
      return true;
    });
    assert.equal(readFileSync(join(out, 'train.lock'), 'utf8').trim(), String(process.ppid));
    // a PID that cannot be running: the lock is stale
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid!;
    writeFileSync(join(out, 'train.lock'), `${dead}\n`);
    const logs: string[] = [];
    const r = runTraining(config('locked', { steps: 2 }), k, null, { onLog: (m) => logs.push(m) });
    assert.equal(r.history.length, 2);
    assert.ok(logs.some((m) => new RegExp(`taking over .*train\\.lock: the run that held it \\(PID ${dead}\\) is no longer running`).test(m)), logs.join('\n'));
    assert.ok(!existsSync(join(out, 'train.lock')));
  });

  it('warns when the held-out split takes much more of a tiny dataset than asked', () => {
    assert.equal(evalSplitWarning(0.01, 990, 10), null);
    assert.equal(evalSplitWarning(0.3, 7, 3), null); // asked for it
    assert.equal(evalSplitWarning(0, 10, 0), null);
    assert.match(evalSplitWarning(0.01, 2, 1)!, /takes 1 of 3 sequences \(33%, asked for 1%\).*--eval-fraction 0/);
    // end to end: a two-story corpus
    const small = join(root, 'small.jsonl');
    writeFileSync(small, readFileSync(corpus, 'utf8').split('\n').slice(0, 1).join('\n') + '\n');
    const c = parseTrainConfig({ ...configObj('small', { steps: 1, warmup: 0 }), data: { train: [small], seqLen: 32 } }, 'test.json', root);
    const su = setupTraining(c, null);
    assert.equal(su.warnings.length, 1, `one warning (${su.data.train.length} train, ${su.data.eval.length} eval sequences)`);
    assert.match(su.warnings[0]!, /held-out split takes \d+ of \d+ sequences/);
    const c0 = parseTrainConfig({ ...configObj('small0', { steps: 1, warmup: 0 }), data: { train: [small], seqLen: 32, evalFraction: 0 } }, 'test.json', root);
    const su0 = setupTraining(c0, null);
    assert.deepEqual(su0.warnings, []);
    assert.equal(su0.data.eval.length, 0);
  });
});

describe('the default-model recipe stages (tiny sizes)', () => {
  it('prepare() builds only what is missing: corpus, then tokenizer; a rerun does nothing', async () => {
    const dir = join(root, 'recipe-out');
    const o = { corpus: join(dir, 'corpus.jsonl'), tokenizer: join(dir, 'tokenizer'), stories: 30, seed: 2, vocabSize: 300, log: () => {} };
    assert.deepEqual(await prepare(o), ['corpus', 'tokenizer']);
    assert.equal(readFileSync(o.corpus, 'utf8').trim().split('\n').length, 30);
    assert.ok(existsSync(join(o.tokenizer, 'tokenizer.json')));
    assert.deepEqual(await prepare(o), []);
    rmSync(o.tokenizer, { recursive: true });
    assert.deepEqual(await prepare(o), ['tokenizer']);
    assert.ok(!existsSync(o.tokenizer + '.tmp') && !existsSync(o.corpus + '.tmp'));
  });
});

describe('the loss curve chart', () => {
  const hist = Array.from({ length: 120 }, (_, i) => ({ step: i + 1, loss: 6 * Math.exp(-i / 30) + 1 }));
  it('keeps the caption as written (lower case, paths) and lists an eval curve only when there is one', async () => {
    const svg = await chartSvg(lossCurveSpec(hist, 'runs/My-run: 120 steps'));
    assert.ok(svg.includes('>runs/My-run: 120 steps<'), 'the caption, case kept');
    assert.ok(svg.includes('>train loss<') && svg.includes('>train loss, mean of 2<'));
    assert.ok(!svg.includes('eval loss'), 'no eval entry without evaluations');
    const withEval = hist.map((h) => (h.step % 40 === 0 ? { ...h, evalLoss: h.loss + 0.1 } : h));
    assert.ok((await chartSvg(lossCurveSpec(withEval, 'x'))).includes('>eval loss<'));
  });

  it('writes a PNG with an SVG next to it', async () => {
    const png = join(root, 'curve.png');
    assert.deepEqual(await writeLossPlot(png, hist, 'c'), [png, join(root, 'curve.svg')]);
    assert.deepEqual([...readFileSync(png).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.match(readFileSync(join(root, 'curve.svg'), 'utf8'), /^<svg/);
  });
});


// The training loop end to end on a tiny from-scratch model: the loss falls, the metrics log
// and the exported HF model are written (and load for inference), a NaN stops the run with
// the last good checkpoint kept, and a run resumed from a checkpoint continues on exactly the
// loss curve of an uninterrupted one.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadModelSync } from '../src/models/load.ts';
import { refBackend } from '../src/tensor/ref.ts';
import { trainBpe, writeBpeTokenizer } from '../src/train/bpe.ts';
import { parseTrainConfig, type TrainConfig } from '../src/train/config.ts';
import { RefTrainKernels } from '../src/tensor/train-ref.ts';
import { TrainError, runTraining } from '../src/train/trainer.ts';
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

function config(name: string, train: Record<string, unknown>): TrainConfig {
  return parseTrainConfig(
    {
      model: { hiddenSize: 32, intermediateSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, maxPosition: 64 },
      tokenizer: tokDir,
      data: { train: [corpus], seqLen: 32, evalFraction: 0.05 },
      train: { batchSize: 4, lr: 3e-3, warmup: 2, seed: 3, evalBatches: 2, ...train },
      out: join(root, name),
    },
    'test.json',
    root,
  );
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
});

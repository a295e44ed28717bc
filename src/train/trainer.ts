// The training loop: model + data + AdamW + schedule + checkpoints + metrics log.
//
// One optimiser step = gradAccum micro-batches of batchSize sequences; the loss is the mean
// over every loss token of the step (each micro-batch's gradient is scaled by 1 / tokens of
// the whole step), so accumulation gives the same update as one big batch.
//
// Resumption: a checkpoint holds weights, AdamW moments, the step, the data position and the
// dropout RNG state; everything else is a pure function of the config, so a run killed at any
// instant resumes from its last checkpoint and continues on the same loss curve.

import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../formats/model-config.ts';
import { configFromHf } from '../formats/model-config.ts';
import { writeSafetensors } from '../formats/safetensors.ts';
import { Tokenizer } from '../formats/tokenizer.ts';
import type { Backend } from '../tensor/backend.ts';
import { readJson } from '../formats/json.ts';
import { Tape } from '../tensor/autograd.ts';
import { TrainError } from './errors.ts';
import { type Params, latestCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import { type TrainConfig, lrAt } from './config.ts';
import { type DataPosition, TrainData } from './data.ts';
import type { TrainKernels } from '../tensor/train-kernels.ts';
import { type LoraTarget, type TrainBatch, TrainModel, f32Bytes, paramShapes, readHfWeights } from './model.ts';
import { encode } from '../tensor/dtype.ts';
import { AdamW } from './optim.ts';
import { TrainRng } from './rng.ts';
import { configToHf, hfConfigJson } from '../formats/model-config.ts';

export { TrainError };

export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokensPerSec: number;
  /** Model FLOPs per second (6N + attention, see modelFlopsPerToken). */
  flopsPerSec: number;
  elapsedSec: number;
  evalLoss?: number;
}

export interface TrainEvents {
  onStart?(info: { params: number; trainable: number; trainTokens: number; evalSeqs: number; resumedFrom: number }): void;
  onStep?(s: StepInfo): void;
  onEval?(step: number, loss: number): void;
  onCheckpoint?(dir: string): void;
  onLog?(msg: string): void;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  evalLoss: number | null;
  outDir: string;
  modelDir: string;
  history: { step: number; loss: number; evalLoss?: number }[];
}

/**
 * Training FLOPs per token (forward + backward = 3x forward): 6 x the matmul parameters
 * (embedding lookup excluded, output head included) + causal attention: per layer the score
 * and value products cost 2 x 2 x (T/2) x (Hq Dh) forward, x3 with the backward.
 */
export function modelFlopsPerToken(cfg: ModelConfig, seqLen: number): number {
  let n = 0;
  for (const [name, shape] of paramShapes(cfg)) {
    if (shape.length === 2 && !/(embed_tokens|wte|wpe)\.weight$/.test(name)) n += shape[0]! * shape[1]!;
  }
  if (cfg.tieEmbeddings) n += cfg.vocabSize * cfg.dim;
  return 6 * n + 6 * cfg.nLayers * seqLen * cfg.nHeads * cfg.headDim;
}

/** ModelConfig for a from-scratch Llama of the config's size. */
export function scratchModelConfig(c: TrainConfig, tok: Tokenizer): ModelConfig {
  const m = c.model;
  const headDim = m.hiddenSize! / m.numHeads!;
  return {
    arch: 'llama',
    vocabSize: tok.vocabSize,
    dim: m.hiddenSize!,
    nLayers: m.numLayers!,
    nHeads: m.numHeads!,
    nKvHeads: m.numKvHeads!,
    headDim,
    ffnDim: m.intermediateSize!,
    maxPosition: m.maxPosition,
    normEps: m.normEps,
    rope: { theta: m.ropeTheta, layout: 'half', dim: headDim },
    act: 'silu',
    tieEmbeddings: m.tieEmbeddings,
    slidingWindow: 0,
    slidingLayers: 'all',
    attnScale: 1 / Math.sqrt(headDim),
    attnSoftCap: 0,
    finalSoftCap: 0,
    embedScale: 1,
    nExperts: 0,
    nExpertsPerToken: 0,
    bosId: tok.bosId,
    eosIds: [...tok.eosIds],
  };
}

/** Copies tokenizer.json / tokenizer_config.json (and friends) from one model dir to another. */
export function copyTokenizerFiles(from: string, to: string): void {
  for (const f of readdirSync(from)) {
    if (/^(tokenizer.*\.json|special_tokens_map\.json|generation_config\.json)$/.test(f)) copyFileSync(join(from, f), join(to, f));
  }
}

/** Writes an HF model directory: model.safetensors (f32 or f16/bf16), config.json, tokenizer. */
export function writeHfModel(dir: string, cfg: ModelConfig, weights: Map<string, Float32Array>, tokenizerDir: string, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): void {
  mkdirSync(dir, { recursive: true });
  const shapes = paramShapes(cfg);
  writeSafetensors(
    join(dir, 'model.safetensors'),
    [...weights].map(([name, data]) => ({
      name,
      dtype,
      shape: shapes.get(name)!,
      data: dtype === 'F32' ? f32Bytes(data) : encode(dtype === 'F16' ? 'f16' : 'bf16', data),
    })),
    { format: 'pt' },
  );
  writeFileSync(join(dir, 'config.json'), hfConfigJson(configToHf(cfg)));
  copyTokenizerFiles(tokenizerDir, dir);
}

/** Checkpoint tensors: the trainable vars' shapes, with their data or (for the AdamW moments) `data`'s. */
function paramsOf(vars: Map<string, { data: Float32Array; shape: readonly number[] }>, data?: Map<string, Float32Array>): Params {
  const p: Params = new Map();
  for (const [n, v] of vars) p.set(n, { shape: [...v.shape], data: data ? data.get(n)! : v.data });
  return p;
}

export interface TrainSetup {
  model: TrainModel;
  tok: Tokenizer;
  tokenizerDir: string;
  data: TrainData;
}

/** Loads tokenizer, model (scratch or from a checkpoint), LoRA and data for a config. */
export function setupTraining(c: TrainConfig, be: Backend | null, onProgress?: (done: number, total: number) => void): TrainSetup {
  if (c.model.from && !existsSync(join(c.model.from, 'config.json'))) {
    throw new TrainError(`${c.model.from}: fine-tuning needs a Hugging Face model directory (config.json + safetensors); convert a GGUF with \`slipstream convert in.gguf out-dir\``);
  }
  const tokenizerDir = c.tokenizer ?? c.model.from!;
  const tok = Tokenizer.fromDir(tokenizerDir);
  const rng = new TrainRng(c.train.seed);
  let model: TrainModel;
  if (c.model.from) {
    const cfgPath = join(c.model.from, 'config.json');
    const mc = configFromHf(readJson(cfgPath), cfgPath);
    model = new TrainModel(mc, readHfWeights(c.model.from), be);
  } else {
    model = TrainModel.init(scratchModelConfig(c, tok), rng, c.model.init.std);
  }
  if (c.lora) {
    model.addLora({ rank: c.lora.rank, alpha: c.lora.alpha, dropout: c.lora.dropout, targets: c.lora.targets as LoraTarget[] }, rng, c.lora.quantizeBase === 'q8_0', be ?? undefined);
  }
  const data = TrainData.load(c.data.train, tok, { seqLen: c.data.seqLen, format: c.data.format, textField: c.data.textField, evalFraction: c.data.evalFraction, seed: c.train.seed, chatTemplate: c.data.chatTemplate ?? undefined }, onProgress);
  if (data.train.length === 0) throw new TrainError(`the training data (${c.data.train.join(', ')}) holds no full sequence of ${c.data.seqLen} tokens`);
  return { model, tok, tokenizerDir, data };
}

/** Mean loss over the held-out batches (no gradients). */
export function evaluate(model: TrainModel, t: Tape, batches: TrainBatch[]): number {
  let sum = 0, count = 0;
  t.recording = false;
  try {
    for (const b of batches) {
      const r = model.loss(t, b, 0);
      sum += r.sum;
      count += r.count;
      t.reset();
    }
  } finally {
    t.recording = true;
  }
  return count > 0 ? sum / count : NaN;
}

/** Runs (or resumes) the training a config describes. */
export function runTraining(c: TrainConfig, k: TrainKernels, be: Backend | null, ev: TrainEvents = {}, setup?: TrainSetup): TrainResult {
  const { model, data, tokenizerDir } = setup ?? setupTraining(c, be);
  const trainable = model.trainable();
  const opt = new AdamW(trainable, { beta1: c.train.beta1, beta2: c.train.beta2, eps: c.train.eps, weightDecay: c.train.weightDecay, clip: c.train.clip }, k);
  const ckDir = join(c.out, 'checkpoints');
  mkdirSync(c.out, { recursive: true });
  const logPath = join(c.out, 'metrics.jsonl');

  let pos: DataPosition = { epoch: 0, index: 0, seed: c.train.seed };
  let history: TrainResult['history'] = [];
  let startStep = 0;
  const dropoutRng = new TrainRng(c.train.seed + 1);
  const latest = latestCheckpoint(c.out);
  if (latest) {
    const ck = loadCheckpoint(latest, paramsOf(trainable));
    for (const [n, p] of ck.params) trainable.get(n)!.data.set(p.data);
    if (ck.opt) {
      for (const [n, p] of ck.opt.m) opt.m.get(n)!.set(p.data);
      for (const [n, p] of ck.opt.v) opt.v.get(n)!.set(p.data);
    }
    const st = ck.state as { step: number; data: DataPosition; rng: number[]; history: TrainResult['history'] };
    startStep = st.step;
    opt.step = st.step;
    pos = st.data;
    history = st.history ?? [];
    dropoutRng.restore(st.rng);
    ev.onLog?.(`resuming from ${latest} (step ${startStep})`);
    // steps logged after the checkpoint (before the run was killed) are done again
    if (existsSync(logPath)) {
      const keep = readFileSync(logPath, 'utf8').split('\n').filter((l) => {
        if (!l.trim()) return false;
        try {
          return (JSON.parse(l) as { step: number }).step <= startStep;
        } catch {
          return false; // a line cut short by the kill
        }
      });
      writeFileSync(logPath, keep.map((l) => l + '\n').join(''));
    }
  } else if (existsSync(logPath)) {
    writeFileSync(logPath, '');
  }
  model.setDropoutRng(dropoutRng);
  ev.onStart?.({ params: model.numParams, trainable: model.numTrainable, trainTokens: data.tokens, evalSeqs: data.eval.length, resumedFrom: startStep });

  const hfConfig = configToHf(model.cfg);
  const save = (step: number): void => {
    const dir = saveCheckpoint(c.out, {
      step,
      params: paramsOf(trainable),
      opt: { m: paramsOf(trainable, opt.m), v: paramsOf(trainable, opt.v) },
      hfConfig,
      state: { step, data: pos, rng: dropoutRng.state, history },
      tokenizerDir,
    });
    ev.onCheckpoint?.(dir);
  };

  const t = new Tape(k);
  const evalBatches = data.evalBatches(c.train.batchSize).slice(0, c.train.evalBatches);
  // LoRA skips the frozen weights' gradients (2 of the 6 FLOPs per parameter); adapters are tiny
  const flopsPerTok = modelFlopsPerToken(model.cfg, c.data.seqLen) * (model.lora.size > 0 ? 2 / 3 : 1);
  const t0 = performance.now();
  let lastLoss = NaN;
  let lastEval: number | null = null;
  for (let step = startStep; step < c.train.steps; step++) {
    const ts = performance.now();
    // draw the step's micro-batches first: the loss is averaged over all their tokens
    const micro: TrainBatch[] = [];
    let p = pos;
    for (let i = 0; i < c.train.gradAccum; i++) {
      const r = data.nextBatch(c.train.batchSize, p);
      micro.push(r.batch);
      p = r.pos;
    }
    let count = 0;
    for (const b of micro) for (let i = 0; i < b.targets.length; i++) if (b.targets[i]! >= 0) count++;
    let sum = 0;
    for (const b of micro) {
      sum += model.loss(t, b, count > 0 ? 1 / count : 0).sum;
      t.backward();
      t.reset();
    }
    const loss = count > 0 ? sum / count : 0;
    if (!Number.isFinite(loss)) {
      opt.zeroGrad();
      throw new TrainError(`the loss became ${loss} at step ${step + 1}; stopping. The last good checkpoint is ${latestCheckpoint(c.out) ?? '(none yet)'}; lower train.lr or raise train.warmup`);
    }
    const lr = lrAt(step, c.train);
    const gradNorm = opt.update(lr);
    if (!Number.isFinite(gradNorm)) {
      throw new TrainError(`the gradient norm became ${gradNorm} at step ${step + 1}; stopping without applying it. The last good checkpoint is ${latestCheckpoint(c.out) ?? '(none yet)'}`);
    }
    pos = p;
    lastLoss = loss;
    const dt = (performance.now() - ts) / 1000;
    let tokens = 0;
    for (const b of micro) tokens += b.B * b.T;
    const s = step + 1;
    const rec: { step: number; loss: number; evalLoss?: number } = { step: s, loss };
    const info: StepInfo = {
      step: s, steps: c.train.steps, loss, lr, gradNorm, tokens, tokensPerSec: tokens / dt,
      flopsPerSec: (tokens * flopsPerTok) / dt, elapsedSec: (performance.now() - t0) / 1000,
    };
    const isLast = s === c.train.steps;
    if ((c.train.evalEvery > 0 && s % c.train.evalEvery === 0) || isLast) {
      if (evalBatches.length > 0) {
        lastEval = evaluate(model, t, evalBatches);
        info.evalLoss = lastEval;
        rec.evalLoss = lastEval;
        ev.onEval?.(s, lastEval);
      }
    }
    history.push(rec);
    appendFileSync(logPath, JSON.stringify({ ...info, time: new Date().toISOString() }) + '\n');
    ev.onStep?.(info);
    if ((c.train.checkpointEvery > 0 && s % c.train.checkpointEvery === 0) || isLast) save(s);
  }

  // the trained model as a loadable HF directory (LoRA: the PEFT adapter and a merged model)
  const modelDir = join(c.out, 'model');
  if (model.lora.size > 0) {
    model.writeAdapter(join(c.out, 'adapter'), c.model.from ?? '');
    writeHfModel(modelDir, model.cfg, model.weights(true), tokenizerDir);
  } else {
    writeHfModel(modelDir, model.cfg, model.weights(), tokenizerDir);
  }
  return { steps: c.train.steps, finalLoss: lastLoss, evalLoss: lastEval, outDir: c.out, modelDir, history };
}

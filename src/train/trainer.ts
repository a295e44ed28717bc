// The training loop: model + data + AdamW + schedule + checkpoints + metrics log.
//
// One optimiser step = gradAccum micro-batches of batchSize sequences; the loss is the mean
// over every loss token of the step (each micro-batch's gradient is scaled by 1 / tokens of
// the whole step), so accumulation gives the same update as one big batch.
//
// Resumption: a checkpoint holds weights, AdamW moments, the step, the data position and the
// dropout RNG state; everything else is a pure function of the config, so a run killed at any
// instant resumes from its last checkpoint and continues on the same loss curve.

import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelConfig } from '../formats/model-config.ts';
import { configFromHf } from '../formats/model-config.ts';
import { writeSafetensors } from '../formats/safetensors.ts';
import { Tokenizer } from '../formats/tokenizer.ts';
import type { Backend } from '../tensor/backend.ts';
import { readJson } from '../formats/json.ts';
import { Tape } from '../tensor/autograd.ts';
import { TrainError } from './errors.ts';
import { type Params, latestCheckpoint, loadCheckpoint, saveCheckpoint, truncateMetricsLog } from './checkpoint.ts';
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
  /** Asked before each step: true ends the run there, with a checkpoint at the step reached. */
  shouldStop?(): boolean;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  evalLoss: number | null;
  outDir: string;
  modelDir: string;
  history: { step: number; loss: number; evalLoss?: number }[];
  /** Set when shouldStop() ended the run early: the step it reached (checkpointed), no model/ written. */
  stoppedAt?: number;
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
  /** Things the user should know before training starts (e.g. an oversized held-out split). */
  warnings: string[];
}

/**
 * A warning when the held-out split takes a larger share of the data than asked: the split
 * holds out at least one sequence, which for a tiny dataset can be a third or half of it.
 */
export function evalSplitWarning(evalFraction: number, trainSeqs: number, evalSeqs: number): string | null {
  const total = trainSeqs + evalSeqs;
  if (evalSeqs === 0 || total === 0) return null;
  const share = evalSeqs / total;
  if (share <= Math.max(0.05, 2 * evalFraction)) return null;
  return `the held-out split takes ${evalSeqs} of ${total} sequences (${Math.round(share * 100)}%, asked for ${+(evalFraction * 100).toFixed(2)}%) ` +
    'because the data is small; train on all of it with --eval-fraction 0 (data.evalFraction in a config), or add data';
}

/**
 * One training run per output folder: `<out>/train.lock` holds the PID of the run using it. A
 * second run into the same folder is refused while that process lives; a lock left by a process
 * that died (kill -9, power loss) is taken over, with a message. Returns the release function.
 */
export function lockRunDir(out: string, onLog?: (msg: string) => void): () => void {
  mkdirSync(out, { recursive: true });
  const path = join(out, 'train.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    // re-entrant: the CLI locks before tokenizing, then the loop locks again in the same process
    if (pid === process.pid) return () => {};
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      throw new TrainError(`${out} is in use by another training run (PID ${pid}, lock file ${path}); wait for it, stop it, or choose another output folder`);
    }
    onLog?.(`taking over ${path}: the run that held it (PID ${Number.isInteger(pid) ? pid : '?'}) is no longer running`);
    rmSync(path, { force: true });
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    try {
      if (Number.parseInt(readFileSync(path, 'utf8'), 10) === process.pid) rmSync(path, { force: true });
    } catch {
      // already gone
    }
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // alive, owned by someone else
  }
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
  const warnings: string[] = [];
  const w = evalSplitWarning(c.data.evalFraction, data.train.length, data.eval.length);
  if (w) warnings.push(w);
  return { model, tok, tokenizerDir, data, warnings };
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

/** Runs (or resumes) the training a config describes, start to end, synchronously. */
export function runTraining(c: TrainConfig, k: TrainKernels, be: Backend | null, ev: TrainEvents = {}, setup?: TrainSetup): TrainResult {
  const steps = trainSteps(c, k, be, ev, setup);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * The same run, yielding to the event loop between steps so that signals and timers are seen
 * (ev.shouldStop is how a SIGTERM handler ends the run cleanly).
 */
export async function runTrainingAsync(c: TrainConfig, k: TrainKernels, be: Backend | null, ev: TrainEvents = {}, setup?: TrainSetup): Promise<TrainResult> {
  const steps = trainSteps(c, k, be, ev, setup);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((res) => setImmediate(res));
  }
}

/** The training loop as a generator: one yield per optimiser step. */
function* trainSteps(c: TrainConfig, k: TrainKernels, be: Backend | null, ev: TrainEvents, setup?: TrainSetup): Generator<number, TrainResult, void> {
  const release = lockRunDir(c.out, ev.onLog);
  try {
    return yield* trainStepsLocked(c, k, be, ev, setup);
  } finally {
    release();
  }
}

function* trainStepsLocked(c: TrainConfig, k: TrainKernels, be: Backend | null, ev: TrainEvents, setup?: TrainSetup): Generator<number, TrainResult, void> {
  const su = setup ?? setupTraining(c, be);
  if (!setup) for (const w of su.warnings) ev.onLog?.(`warning: ${w}`);
  const { model, data, tokenizerDir } = su;
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
    truncateMetricsLog(logPath, startStep);
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
  let lastSaved = startStep;
  for (let step = startStep; step < c.train.steps; step++) {
    if (ev.shouldStop?.()) {
      if (step > lastSaved) save(step);
      return { steps: step, finalLoss: lastLoss, evalLoss: lastEval, outDir: c.out, modelDir: join(c.out, 'model'), history, stoppedAt: step };
    }
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
    if ((c.train.checkpointEvery > 0 && s % c.train.checkpointEvery === 0) || isLast) {
      save(s);
      lastSaved = s;
    }
    yield s;
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

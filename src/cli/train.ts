// `slipstream train --config f.json`, `slipstream finetune --model … --data …` and
// `slipstream train-tokenizer`: a progress bar with loss, tokens/s and ETA on stderr, a
// metrics.jsonl log in the run directory, and the loss curve (PNG + SVG) in the run directory
// or at --plot. SIGTERM / SIGINT end a run cleanly: a checkpoint at the step reached, the plot,
// one summary line, exit 0; rerunning resumes from that checkpoint. A second signal exits at once.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import cliProgress from 'cli-progress';
import { cpuBackend } from '../tensor/cpu.ts';
import type { Backend } from '../tensor/backend.ts';
import { nativeAvailable, setThreads } from '../tensor/runtime.ts';
import { type TrainConfig, loadTrainConfig, parseTrainConfig } from '../train/config.ts';
import type { TrainKernels } from '../tensor/train-kernels.ts';
import { writeLossPlot } from '../train/plot.ts';
import { RefTrainKernels } from '../tensor/train-ref.ts';
import { type StepInfo, type TrainResult, type TrainSetup, lockRunDir, runTrainingAsync, setupTraining } from '../train/trainer.ts';
import { readTextDocuments } from '../train/data.ts';
import { UsageError } from '../errors.ts';
import { createProgress } from '../formats/progress.ts';
import { trapStopSignals } from './stop-signals.ts';

export async function trainKernels(): Promise<{ k: TrainKernels; be: Backend | null }> {
  if (!nativeAvailable()) return { k: new RefTrainKernels(), be: null };
  const { CpuTrainKernels } = await import('../tensor/train-cpu.ts');
  return { k: new CpuTrainKernels(), be: cpuBackend() };
}

function fmtSec(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

/** Runs a resolved config with a progress bar; writes the loss plot (to `plot`, or into the run directory). */
export async function runWithProgress(c: TrainConfig, plot: string | undefined, threads?: string): Promise<TrainResult | null> {
  if (threads !== undefined) {
    const n = Number(threads);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`--threads must be a positive integer, got "${threads}"`);
    setThreads(n);
  } else if (c.train.threads) setThreads(c.train.threads);
  const log = (m: string) => process.stderr.write(`slipstream train: ${m}\n`);
  // refuse a second run into the same folder before spending minutes tokenizing
  const release = lockRunDir(c.out, log);
  const signals = trapStopSignals('train');
  try {
    return await runLocked(c, plot, log, signals.stopped);
  } finally {
    signals.dispose();
    release();
  }
}

async function runLocked(c: TrainConfig, plot: string | undefined, log: (m: string) => void, stopped: () => NodeJS.Signals | null): Promise<TrainResult | null> {
  const { k, be } = await trainKernels();
  const tty = process.stderr.isTTY === true;
  // tokenizing a large corpus takes a while: a bar on a terminal, one summary line otherwise
  const bytes = c.data.train.reduce((n, f) => n + (statSync(f, { throwIfNoEntry: false })?.size ?? 0), 0);
  const bar0 = createProgress(`loading the model and tokenizing ${c.data.train.length} file(s)`, bytes);
  let setup: TrainSetup;
  try {
    setup = setupTraining(c, be, (done) => bar0.update(done));
  } finally {
    bar0.stop();
  }
  for (const w of setup.warnings) log(`warning: ${w}`);
  const sig0 = stopped();
  if (sig0) {
    log(`${sig0} before the first step: nothing trained, nothing written`);
    return null;
  }
  let bar: cliProgress.SingleBar | null = null;
  const t0 = Date.now();
  const line = (s: StepInfo): string =>
    `step ${s.step}/${s.steps} loss ${s.loss.toFixed(4)}${s.evalLoss !== undefined ? ` eval ${s.evalLoss.toFixed(4)}` : ''} ` +
    `lr ${s.lr.toExponential(2)} ${Math.round(s.tokensPerSec)} tok/s ${(s.flopsPerSec / 1e9).toFixed(1)} GFLOP/s`;
  let startStep = 0;
  const result = await runTrainingAsync(c, k, be, {
    onStart: (i) => {
      startStep = i.resumedFrom;
      process.stderr.write(
        `slipstream train: ${(i.params / 1e6).toFixed(2)}M parameters (${(i.trainable / 1e6).toFixed(2)}M trainable), ` +
          `${i.trainTokens} training tokens, ${i.evalSeqs} eval sequences, kernels ${k.name}` +
          (i.resumedFrom > 0 ? `, resuming at step ${i.resumedFrom}` : '') + '\n',
      );
      if (tty) {
        bar = new cliProgress.SingleBar(
          { format: 'train [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true, etaBuffer: 20 },
          cliProgress.Presets.shades_classic,
        );
        bar.start(c.train.steps, i.resumedFrom, { loss: '-', tps: '-' });
      }
    },
    onStep: (s) => {
      if (bar) bar.update(s.step, { loss: s.loss.toFixed(4), tps: Math.round(s.tokensPerSec) });
      else if (s.step === c.train.steps || s.evalLoss !== undefined || s.step % c.train.logEvery === 0) {
        const done = s.step - startStep;
        const eta = ((Date.now() - t0) / 1000 / Math.max(done, 1)) * (s.steps - s.step);
        process.stderr.write(`${line(s)} ETA ${fmtSec(eta)}\n`);
      }
    },
    onLog: log,
    shouldStop: () => stopped() !== null,
  }, setup);
  (bar as cliProgress.SingleBar | null)?.stop();
  const last = result.history.at(-1);
  const lastEval = result.history.filter((h) => h.evalLoss !== undefined).at(-1)?.evalLoss ?? null;
  if (result.stoppedAt !== undefined) {
    log(
      `stopped by ${stopped()} at step ${result.stoppedAt}/${c.train.steps}` +
        (last ? `, loss ${last.loss.toFixed(4)}` : '') + (lastEval !== null ? `, eval loss ${lastEval.toFixed(4)}` : '') +
        `; checkpoint in ${resolve(c.out, 'checkpoints')}; rerun the same command to resume`,
    );
  } else {
    log(
      `done, loss ${result.finalLoss.toFixed(4)}` +
        (result.evalLoss !== null ? `, eval loss ${result.evalLoss.toFixed(4)} (perplexity ${Math.exp(result.evalLoss).toFixed(2)})` : '') +
        `; model in ${result.modelDir}, log in ${resolve(c.out, 'metrics.jsonl')}`,
    );
  }
  if (result.history.length > 0) {
    const png = plot ?? resolve(c.out, 'loss.png');
    const steps = result.stoppedAt ?? result.steps;
    await writeLossPlot(png, result.history, `${c.out}: ${steps} steps, batch ${c.train.batchSize}x${c.data.seqLen} x${c.train.gradAccum}`);
    log(`loss curve written to ${png}`);
  }
  return result;
}

/**
 * A config may name a `prepare` module (path relative to the config): when an input the config
 * needs (data files, tokenizer) is missing, `train` imports it and awaits its `prepare()`, which
 * builds them (the default-model recipe generates its corpus and trains its tokenizer that way).
 */
export async function prepareInputs(configPath: string, log: (m: string) => void): Promise<void> {
  const file = resolve(configPath);
  let obj: { prepare?: unknown; tokenizer?: unknown; data?: { train?: unknown } };
  try {
    obj = JSON.parse(readFileSync(file, 'utf8')) as typeof obj;
  } catch {
    return; // loadTrainConfig reports it
  }
  if (typeof obj !== 'object' || obj === null || typeof obj.prepare !== 'string') return;
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dirname(file), p));
  const inputs = [
    ...(Array.isArray(obj.data?.train) ? obj.data.train.filter((p): p is string => typeof p === 'string') : []),
    ...(typeof obj.tokenizer === 'string' ? [obj.tokenizer] : []),
  ].map(abs);
  const missing = inputs.filter((p) => !existsSync(p));
  if (missing.length === 0) return;
  const mod = abs(obj.prepare);
  if (!existsSync(mod)) throw new UsageError(`${file}: prepare names ${mod}, which does not exist`);
  log(`${missing.length} input(s) missing (${missing.join(', ')}): building them with ${mod}`);
  const m = (await import(pathToFileURL(mod).href)) as { prepare?: (o: { config: string; missing: string[]; log: (m: string) => void }) => unknown };
  if (typeof m.prepare !== 'function') throw new UsageError(`${mod}: exports no prepare() function`);
  await m.prepare({ config: file, missing, log });
}

export async function trainCommand(opts: { config: string; plot?: string; threads?: string }): Promise<void> {
  await prepareInputs(opts.config, (m) => process.stderr.write(`slipstream train: ${m}\n`));
  await runWithProgress(loadTrainConfig(opts.config), opts.plot, opts.threads);
}

export interface FinetuneFlags {
  /** Default: the embedded default model (models/default). */
  model?: string;
  data: string[];
  out: string;
  format?: string;
  steps?: string;
  lr?: string;
  batchSize?: string;
  gradAccum?: string;
  seqLen?: string;
  warmup?: string;
  seed?: string;
  loraRank?: string;
  loraAlpha?: string;
  loraDropout?: string;
  loraTargets?: string;
  quantizeBase?: string;
  evalEvery?: string;
  checkpointEvery?: string;
  evalFraction?: string;
  plot?: string;
  threads?: string;
}

function num(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got "${v}"`);
  return n;
}

export async function finetuneCommand(f: FinetuneFlags): Promise<void> {
  let from: string;
  if (f.model === undefined) {
    const { defaultModelDir } = await import('../models/default.ts');
    from = defaultModelDir();
  } else from = f.model;
  if (from.startsWith('hf:')) {
    const { downloadModel } = await import('../formats/hub.ts');
    from = await downloadModel(from);
  }
  const obj: Record<string, unknown> = {
    model: { from: resolve(from) },
    data: { train: f.data.map((d) => resolve(d)), format: f.format ?? (f.data.every((d) => d.endsWith('.txt')) ? 'text' : 'jsonl'), ...(f.seqLen ? { seqLen: num('seq-len', f.seqLen) } : {}), ...(f.evalFraction !== undefined ? { evalFraction: num('eval-fraction', f.evalFraction) } : {}) },
    train: Object.fromEntries(
      Object.entries({
        steps: num('steps', f.steps ?? '100'),
        lr: num('lr', f.lr ?? (f.loraRank ? '2e-4' : '2e-5')),
        batchSize: num('batch-size', f.batchSize),
        gradAccum: num('grad-accum', f.gradAccum),
        warmup: num('warmup', f.warmup),
        seed: num('seed', f.seed),
        evalEvery: num('eval-every', f.evalEvery),
        checkpointEvery: num('checkpoint-every', f.checkpointEvery),
      }).filter(([, v]) => v !== undefined),
    ),
    out: resolve(f.out),
  };
  if (f.loraRank) {
    obj.lora = {
      rank: num('lora-rank', f.loraRank),
      ...(f.loraAlpha ? { alpha: num('lora-alpha', f.loraAlpha) } : {}),
      ...(f.loraDropout ? { dropout: num('lora-dropout', f.loraDropout) } : {}),
      ...(f.loraTargets ? { targets: f.loraTargets.split(',').map((s) => s.trim()) } : {}),
      ...(f.quantizeBase ? { quantizeBase: f.quantizeBase } : {}),
    };
  } else if (f.quantizeBase) throw new UsageError('--quantize-base needs --lora-rank (only a frozen base can stay quantized)');
  const c = parseTrainConfig(obj, '(command line)', process.cwd());
  await runWithProgress(c, f.plot, f.threads);
}

export async function trainTokenizerCommand(opts: { data: string[]; out: string; vocabSize: string; textField?: string }): Promise<void> {
  const { trainBpe, writeBpeTokenizer } = await import('../train/bpe.ts');
  const vocabSize = Number(opts.vocabSize);
  if (!Number.isInteger(vocabSize)) throw new UsageError(`--vocab-size must be an integer, got "${opts.vocabSize}"`);
  const texts = opts.data.flatMap((file) => readTextDocuments(file, opts.textField ?? 'text'));
  const t0 = Date.now();
  const model = trainBpe(texts, { vocabSize });
  writeBpeTokenizer(opts.out, model, { bos: '<s>', eos: '</s>' });
  process.stderr.write(`slipstream train-tokenizer: ${vocabSize} tokens in ${((Date.now() - t0) / 1000).toFixed(1)} s -> ${opts.out}\n`);
}

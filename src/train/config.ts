// The training config file (JSON), strictly validated: an unknown key, a wrong type or an
// impossible value is an error naming the file and the key path, so a typo never silently
// trains with a default. Paths are resolved relative to the config file's directory.
//
//   {
//     "model": { "from"?: path | "hf:org/name"   (absent: train from scratch)
//                "arch": "llama", "hiddenSize", "intermediateSize", "numLayers", "numHeads",
//                "numKvHeads" (numHeads), "maxPosition" (data.seqLen), "ropeTheta" (10000),
//                "normEps" (1e-5), "tieEmbeddings" (false), "init": { "std": 0.02 } },
//               (with "from", only "from" is allowed: the fine-tuned model decides the rest)
//     "tokenizer"?: dir with tokenizer.json (default: the "from" model's; required from scratch),
//     "data": { "train": [paths], "format": "text"|"jsonl"|"chat" ("jsonl"), "textField" ("text"),
//               "evalFraction" (0.01), "seqLen" (256), "chatTemplate"? (Jinja; default: tokenizer's) },
//     "train": { "steps", "batchSize" (16), "gradAccum" (1), "lr" (3e-4), "minLr" (lr/10),
//                "warmup" (0), "schedule": "cosine"|"constant" ("cosine"), "weightDecay" (0.1),
//                "beta1" (0.9), "beta2" (0.95), "eps" (1e-8), "clip" (1.0; 0 = off), "seed" (0),
//                "evalEvery" (0 = only at the end), "evalBatches" (8; 0 = no eval),
//                "checkpointEvery" (0 = only at the end), "logEvery" (10), "threads"? },
//     "lora"?: { "rank", "alpha" (2*rank), "dropout" (0), "targets" (["q","v"]) from
//                q k v o gate up down, "quantizeBase": "q8_0" | null (null) },
//     "out": output dir,
//     "prepare"?: an ES module (path) exporting prepare(): `slipstream train` runs it first when
//                 a data file or the tokenizer is missing, so a recipe is one command
//   }

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

export const LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type LoraTargetName = (typeof LORA_TARGETS)[number];

export interface TrainConfig {
  /** The config file (absolute), or what parseTrainConfig was told. */
  file: string;
  model: {
    /** Model to fine-tune: an absolute path, or "hf:..." as written; null = from scratch. */
    from: string | null;
    arch: 'llama';
    /** The size fields are null exactly when `from` is set. */
    hiddenSize: number | null;
    intermediateSize: number | null;
    numLayers: number | null;
    numHeads: number | null;
    numKvHeads: number | null;
    maxPosition: number;
    ropeTheta: number;
    normEps: number;
    tieEmbeddings: boolean;
    init: { std: number };
  };
  /** Tokenizer directory (absolute); null = the "from" model's. */
  tokenizer: string | null;
  data: {
    /** Absolute paths. */
    train: string[];
    format: 'text' | 'jsonl' | 'chat';
    textField: string;
    evalFraction: number;
    seqLen: number;
    /** Chat template overriding the tokenizer's (format "chat"); null = the tokenizer's. */
    chatTemplate: string | null;
  };
  train: {
    steps: number;
    batchSize: number;
    gradAccum: number;
    lr: number;
    minLr: number;
    warmup: number;
    schedule: 'cosine' | 'constant';
    weightDecay: number;
    beta1: number;
    beta2: number;
    eps: number;
    /** Max global gradient norm; 0 = no clipping. */
    clip: number;
    seed: number;
    /** Evaluate every N steps; 0 = only at the end. */
    evalEvery: number;
    /** Eval batches per evaluation; 0 = no evaluation. */
    evalBatches: number;
    /** Checkpoint every N steps; 0 = only at the end. */
    checkpointEvery: number;
    logEvery: number;
    /** Compute threads; null = the backend's default. */
    threads: number | null;
  };
  lora: {
    rank: number;
    alpha: number;
    dropout: number;
    targets: LoraTargetName[];
    quantizeBase: 'q8_0' | null;
  } | null;
  /** Output directory (absolute). */
  out: string;
  /** Module that builds missing inputs (absolute), or null. */
  prepare: string | null;
}

export class ConfigError extends Error {
  readonly file: string;
  /** The offending key path ("train.lr"), or '' for the whole file. */
  readonly key: string;
  constructor(file: string, key: string, problem: string) {
    super(key ? `${file}: ${key} ${problem}` : `${file}: ${problem}`);
    this.name = 'ConfigError';
    this.file = file;
    this.key = key;
  }
}

// ---- validation helpers --------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** Edit distance counting an adjacent transposition as one edit ("rnak" is 1 from "rank"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const row = d[i]!;
      row[j] = Math.min(d[i - 1]![j]! + 1, row[j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) row[j] = Math.min(row[j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The known key a mistyped one most likely meant (case, snake_case and prefixes forgiven). */
export function suggestKey(key: string, known: readonly string[]): string | null {
  const norm = (s: string) => s.toLowerCase().replace(/[_\-\s]/g, '');
  const k = norm(key);
  let best: string | null = null;
  let bestScore = Infinity;
  for (const c of known) {
    const n = norm(c);
    const dist = editDistance(k, n);
    const related = dist <= Math.max(1, Math.min(2, Math.floor(n.length / 3))) || (n.length >= 2 && (k.startsWith(n) || n.startsWith(k) || k.endsWith(n)));
    if (related && dist < bestScore) {
      best = c;
      bestScore = dist;
    }
  }
  return best;
}

class Checker {
  constructor(readonly file: string) {}

  fail(key: string, problem: string): never {
    throw new ConfigError(this.file, key, problem);
  }

  /** The object at `key`, with every key checked against `known`. */
  object(v: unknown, key: string, known: readonly string[]): Obj {
    if (!isObj(v)) this.fail(key, `must be an object, not ${describe(v)}`);
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) {
        const path = key ? `${key}.${k}` : k;
        const s = suggestKey(k, known);
        const hint = s ? ` (did you mean ${key ? `${key}.${s}` : s}?)` : ` (known keys${key ? ` of ${key}` : ''}: ${known.join(', ')})`;
        this.fail(path, `is not a known key${hint}`);
      }
    }
    return v;
  }

  number(v: unknown, key: string, opts: { int?: boolean; min?: number; minExclusive?: number; max?: number; maxExclusive?: number } = {}): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a ${opts.int ? 'whole number' : 'number'}, not ${describe(v)}`);
    if (opts.int && !Number.isSafeInteger(v)) this.fail(key, `must be a whole number, not ${v}`);
    if (opts.min !== undefined && v < opts.min) this.fail(key, `must be >= ${opts.min}, not ${v}`);
    if (opts.minExclusive !== undefined && v <= opts.minExclusive) this.fail(key, `must be > ${opts.minExclusive}, not ${v}`);
    if (opts.max !== undefined && v > opts.max) this.fail(key, `must be <= ${opts.max}, not ${v}`);
    if (opts.maxExclusive !== undefined && v >= opts.maxExclusive) this.fail(key, `must be < ${opts.maxExclusive}, not ${v}`);
    return v;
  }

  string(v: unknown, key: string): string {
    if (typeof v !== 'string') this.fail(key, `must be a string, not ${describe(v)}`);
    if (v === '') this.fail(key, 'must not be empty');
    return v;
  }

  boolean(v: unknown, key: string): boolean {
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, not ${describe(v)}`);
    return v;
  }

  oneOf<T extends string | null>(v: unknown, key: string, allowed: readonly T[]): T {
    if (!allowed.includes(v as T)) this.fail(key, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, not ${describe(v)}`);
    return v as T;
  }
}

const MODEL_SIZE_KEYS = ['arch', 'hiddenSize', 'intermediateSize', 'numLayers', 'numHeads', 'numKvHeads', 'maxPosition', 'ropeTheta', 'normEps', 'tieEmbeddings', 'init'] as const;
const TOP_KEYS = ['model', 'tokenizer', 'data', 'train', 'lora', 'out', 'prepare'] as const;
const DATA_KEYS = ['train', 'format', 'textField', 'evalFraction', 'seqLen', 'chatTemplate'] as const;
const TRAIN_KEYS = [
  'steps', 'batchSize', 'gradAccum', 'lr', 'minLr', 'warmup', 'schedule', 'weightDecay', 'beta1', 'beta2', 'eps',
  'clip', 'seed', 'evalEvery', 'evalBatches', 'checkpointEvery', 'logEvery', 'threads',
] as const;
const LORA_KEYS = ['rank', 'alpha', 'dropout', 'targets', 'quantizeBase'] as const;

// ---- the parser ------------------------------------------------------------------------------

/** Reads and validates a config file. */
export function loadTrainConfig(path: string): TrainConfig {
  const file = resolve(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, '', `cannot read the config (${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message})`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, '', `is not valid JSON (${(e as Error).message})`);
  }
  return parseTrainConfig(obj, file, dirname(file));
}

/**
 * Validates a parsed config; `file` names it in errors and relative paths resolve against
 * `baseDir`. Local paths that must exist (data files, tokenizer, the "from" model) are checked.
 */
export function parseTrainConfig(obj: unknown, file: string, baseDir: string): TrainConfig {
  const ck: Checker = new Checker(file); // annotated so that ck.fail() (never) narrows types
  const top = ck.object(obj, '', TOP_KEYS);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const mustExist = (p: string, key: string, kind: 'file' | 'dir' | 'any'): string => {
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) ck.fail(key, `names ${p}, which does not exist`);
    if (kind === 'file' && !st.isFile()) ck.fail(key, `names ${p}, which is not a file`);
    if (kind === 'dir' && !st.isDirectory()) ck.fail(key, `names ${p}, which is not a directory`);
    return p;
  };

  // data first: model.maxPosition defaults to data.seqLen.
  if (top.data === undefined) ck.fail('data', 'is required');
  const d = ck.object(top.data, 'data', DATA_KEYS);
  if (d.train === undefined) ck.fail('data.train', 'is required (a list of training files)');
  const trainList = d.train;
  if (typeof trainList === 'string') ck.fail('data.train', `must be a list of paths (write [${JSON.stringify(trainList)}])`);
  if (!Array.isArray(trainList)) ck.fail('data.train', `must be a list of paths, not ${describe(trainList)}`);
  if (trainList.length === 0) ck.fail('data.train', 'must name at least one file');
  const data: TrainConfig['data'] = {
    train: trainList.map((p, i) => mustExist(abs(ck.string(p, `data.train[${i}]`)), `data.train[${i}]`, 'file')),
    format: d.format === undefined ? 'jsonl' : ck.oneOf(d.format, 'data.format', ['text', 'jsonl', 'chat'] as const),
    textField: d.textField === undefined ? 'text' : ck.string(d.textField, 'data.textField'),
    evalFraction: d.evalFraction === undefined ? 0.01 : ck.number(d.evalFraction, 'data.evalFraction', { min: 0, maxExclusive: 1 }),
    seqLen: d.seqLen === undefined ? 256 : ck.number(d.seqLen, 'data.seqLen', { int: true, min: 2 }),
    chatTemplate: d.chatTemplate === undefined ? null : ck.string(d.chatTemplate, 'data.chatTemplate'),
  };
  if (d.textField !== undefined && data.format !== 'jsonl') ck.fail('data.textField', `only applies to data.format "jsonl" (this config's is "${data.format}")`);
  if (d.chatTemplate !== undefined && data.format !== 'chat') ck.fail('data.chatTemplate', `only applies to data.format "chat" (this config's is "${data.format}")`);

  // model
  if (top.model === undefined) ck.fail('model', 'is required');
  const m = ck.object(top.model, 'model', ['from', ...MODEL_SIZE_KEYS]);
  let model: TrainConfig['model'];
  if (m.from !== undefined) {
    const fromStr = ck.string(m.from, 'model.from');
    const from = fromStr.startsWith('hf:') ? fromStr : mustExist(abs(fromStr), 'model.from', 'any');
    for (const k of MODEL_SIZE_KEYS) {
      if (m[k] !== undefined) ck.fail(`model.${k}`, 'cannot be set together with model.from: the model being fine-tuned decides it');
    }
    model = {
      from, arch: 'llama', hiddenSize: null, intermediateSize: null, numLayers: null, numHeads: null, numKvHeads: null,
      maxPosition: data.seqLen, ropeTheta: 10000, normEps: 1e-5, tieEmbeddings: false, init: { std: 0.02 },
    };
  } else {
    const need = (k: string) => {
      if (m[k] === undefined) ck.fail(`model.${k}`, 'is required when training from scratch (no model.from)');
      return ck.number(m[k], `model.${k}`, { int: true, min: 1 });
    };
    const hiddenSize = need('hiddenSize');
    const intermediateSize = need('intermediateSize');
    const numLayers = need('numLayers');
    const numHeads = need('numHeads');
    const numKvHeads = m.numKvHeads === undefined ? numHeads : ck.number(m.numKvHeads, 'model.numKvHeads', { int: true, min: 1 });
    if (hiddenSize % numHeads !== 0) ck.fail('model.hiddenSize', `(${hiddenSize}) must be a multiple of model.numHeads (${numHeads})`);
    if ((hiddenSize / numHeads) % 2 !== 0) ck.fail('model.hiddenSize', `/ model.numHeads = ${hiddenSize / numHeads} must be even (rotary embeddings rotate pairs)`);
    if (numHeads % numKvHeads !== 0) ck.fail('model.numKvHeads', `(${numKvHeads}) must divide model.numHeads (${numHeads})`);
    const maxPosition = m.maxPosition === undefined ? data.seqLen : ck.number(m.maxPosition, 'model.maxPosition', { int: true, min: 1 });
    if (maxPosition < data.seqLen) ck.fail('model.maxPosition', `(${maxPosition}) must be >= data.seqLen (${data.seqLen})`);
    let std = 0.02;
    if (m.init !== undefined) {
      const init = ck.object(m.init, 'model.init', ['std']);
      if (init.std !== undefined) std = ck.number(init.std, 'model.init.std', { minExclusive: 0 });
    }
    model = {
      from: null,
      arch: m.arch === undefined ? 'llama' : ck.oneOf(m.arch, 'model.arch', ['llama'] as const),
      hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, maxPosition,
      ropeTheta: m.ropeTheta === undefined ? 10000 : ck.number(m.ropeTheta, 'model.ropeTheta', { minExclusive: 0 }),
      normEps: m.normEps === undefined ? 1e-5 : ck.number(m.normEps, 'model.normEps', { minExclusive: 0 }),
      tieEmbeddings: m.tieEmbeddings === undefined ? false : ck.boolean(m.tieEmbeddings, 'model.tieEmbeddings'),
      init: { std },
    };
  }

  // tokenizer
  let tokenizer: string | null = null;
  if (top.tokenizer !== undefined) tokenizer = mustExist(abs(ck.string(top.tokenizer, 'tokenizer')), 'tokenizer', 'dir');
  else if (model.from === null) ck.fail('tokenizer', 'is required when training from scratch (a directory with tokenizer.json)');

  // train
  if (top.train === undefined) ck.fail('train', 'is required (at least train.steps)');
  const t = ck.object(top.train, 'train', TRAIN_KEYS);
  const num = (k: string, dflt: number, opts: Parameters<Checker['number']>[2]) => (t[k] === undefined ? dflt : ck.number(t[k], `train.${k}`, opts));
  if (t.steps === undefined) ck.fail('train.steps', 'is required');
  const steps = ck.number(t.steps, 'train.steps', { int: true, min: 1 });
  const lr = num('lr', 3e-4, { minExclusive: 0 });
  const train: TrainConfig['train'] = {
    steps,
    batchSize: num('batchSize', 16, { int: true, min: 1 }),
    gradAccum: num('gradAccum', 1, { int: true, min: 1 }),
    lr,
    minLr: num('minLr', lr / 10, { min: 0 }),
    warmup: num('warmup', 0, { int: true, min: 0 }),
    schedule: t.schedule === undefined ? 'cosine' : ck.oneOf(t.schedule, 'train.schedule', ['cosine', 'constant'] as const),
    weightDecay: num('weightDecay', 0.1, { min: 0 }),
    beta1: num('beta1', 0.9, { min: 0, maxExclusive: 1 }),
    beta2: num('beta2', 0.95, { min: 0, maxExclusive: 1 }),
    eps: num('eps', 1e-8, { minExclusive: 0 }),
    clip: num('clip', 1.0, { min: 0 }),
    seed: num('seed', 0, { int: true, min: 0, max: 0xffffffff }),
    evalEvery: num('evalEvery', 0, { int: true, min: 0 }),
    evalBatches: num('evalBatches', 8, { int: true, min: 0 }),
    checkpointEvery: num('checkpointEvery', 0, { int: true, min: 0 }),
    logEvery: num('logEvery', 10, { int: true, min: 1 }),
    threads: t.threads === undefined || t.threads === null ? null : ck.number(t.threads, 'train.threads', { int: true, min: 1 }),
  };
  if (train.minLr > train.lr) ck.fail('train.minLr', `(${train.minLr}) must be <= train.lr (${train.lr})`);
  if (train.warmup > train.steps) ck.fail('train.warmup', `(${train.warmup}) must be <= train.steps (${train.steps})`);

  // lora
  let lora: TrainConfig['lora'] = null;
  if (top.lora !== undefined && top.lora !== null) {
    const l = ck.object(top.lora, 'lora', LORA_KEYS);
    if (model.from === null) ck.fail('lora', 'needs model.from: LoRA adapts an existing model');
    if (l.rank === undefined) ck.fail('lora.rank', 'is required');
    const rank = ck.number(l.rank, 'lora.rank', { int: true, min: 1 });
    let targets: LoraTargetName[] = ['q', 'v'];
    if (l.targets !== undefined) {
      if (!Array.isArray(l.targets)) ck.fail('lora.targets', `must be a list, not ${describe(l.targets)}`);
      if (l.targets.length === 0) ck.fail('lora.targets', 'must name at least one projection');
      targets = l.targets.map((x, i) => ck.oneOf(x, `lora.targets[${i}]`, LORA_TARGETS));
      const dup = targets.find((x, i) => targets.indexOf(x) !== i);
      if (dup) ck.fail('lora.targets', `names "${dup}" twice`);
    }
    lora = {
      rank,
      alpha: l.alpha === undefined ? 2 * rank : ck.number(l.alpha, 'lora.alpha', { minExclusive: 0 }),
      dropout: l.dropout === undefined ? 0 : ck.number(l.dropout, 'lora.dropout', { min: 0, maxExclusive: 1 }),
      targets,
      quantizeBase: l.quantizeBase === undefined ? null : ck.oneOf(l.quantizeBase, 'lora.quantizeBase', ['q8_0', null] as const),
    };
  }

  if (top.out === undefined) ck.fail('out', 'is required (the output directory)');
  const out = abs(ck.string(top.out, 'out'));
  const prepare = top.prepare === undefined ? null : mustExist(abs(ck.string(top.prepare, 'prepare')), 'prepare', 'file');

  return { file, model, tokenizer, data, train, lora, out, prepare };
}

/**
 * Learning rate for the update made at `step` (0-based: the first update is step 0).
 * Warmup: lr * (step + 1) / warmup for step < warmup, so it climbs linearly from near 0 and
 * reaches lr at the last warmup step without wasting an update at 0. Then "constant" keeps lr,
 * and "cosine" decays from lr (at step = warmup) to minLr (at step = steps), staying at minLr
 * after that.
 */
export function lrAt(step: number, c: Pick<TrainConfig['train'], 'lr' | 'minLr' | 'warmup' | 'schedule' | 'steps'>): number {
  if (step < c.warmup) return (c.lr * (step + 1)) / c.warmup;
  if (c.schedule === 'constant') return c.lr;
  const span = c.steps - c.warmup;
  const p = span <= 0 ? 1 : Math.min(1, (step - c.warmup) / span);
  return c.minLr + 0.5 * (c.lr - c.minLr) * (1 + Math.cos(Math.PI * p));
}

/**
 * Hash of what a checkpoint must agree with to be resumed: the model, tokenizer, data, LoRA and
 * the batch-shaping train keys (batchSize, gradAccum, seed). Steps, schedule, cadences and the
 * output dir may change between runs.
 */
export function configHash(c: TrainConfig): string {
  const key = {
    model: c.model,
    tokenizer: c.tokenizer,
    data: c.data,
    lora: c.lora,
    train: { batchSize: c.train.batchSize, gradAccum: c.train.gradAccum, seed: c.train.seed },
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 16);
}

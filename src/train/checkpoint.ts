// Training checkpoints, written so that a kill -9 at any instant leaves a usable one.
//
// Layout under a run's output dir:
//   checkpoints/step-00000100/model.safetensors      weights, Hugging Face names and layout, F32
//                             config.json            Hugging Face config
//                             optimizer.safetensors  AdamW moments "m.<name>", "v.<name>" (optional)
//                             state.json             { step, ...the trainer's state (rng, data position, ...) }
//                             tokenizer files        copied from the tokenizer dir
//   checkpoints/latest                               the name of the newest checkpoint dir
//
// A save writes everything into checkpoints/step-XXXXXXXX.tmp-<pid>, fsyncs each file and the
// directory, renames the directory into place, then replaces `latest` through a temp file and a
// rename. Only then are older checkpoints beyond `keep` deleted. So at every instant either the
// new checkpoint is complete and in place or the previous one is untouched, and `latest` always
// names a complete directory (if the directory it names is gone anyway, latestCheckpoint falls
// back to the newest complete one). Leftover temp dirs from a killed save are ignored by
// readers and removed by the next save.

import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../formats/errors.ts';
import { hfConfigJson } from '../formats/model-config.ts';
import { SafetensorsFile, syncDir, writeSafetensors, type StWriteEntry } from '../formats/safetensors.ts';

/** Named f32 tensors (row-major `data`, numel = product of `shape`). */
export type Params = Map<string, { shape: number[]; data: Float32Array }>;

export interface SaveCheckpointInput {
  step: number;
  params: Params;
  /** AdamW first and second moments, by parameter name. */
  opt?: { m: Params; v: Params };
  /** Written as config.json. */
  hfConfig: Record<string, unknown>;
  /** Any JSON; written as state.json with `step` set to `step`. */
  state: object;
  /** Copy the tokenizer files found here (tokenizer.json, tokenizer_config.json, ...). */
  tokenizerDir?: string;
  /** Checkpoints to keep, the new one included (default 3). */
  keep?: number;
}

export interface LoadedCheckpoint {
  step: number;
  params: Params;
  opt: { m: Params; v: Params } | null;
  state: Record<string, unknown>;
  hfConfig: Record<string, unknown>;
}

/** A checkpoint that does not fit the model it is loaded into. */
export class CheckpointMismatchError extends Error {
  readonly dir: string;
  readonly tensor: string;
  constructor(dir: string, tensor: string, problem: string) {
    super(`checkpoint ${dir} was made for a different model: ${problem}`);
    this.name = 'CheckpointMismatchError';
    this.dir = dir;
    this.tensor = tensor;
  }
}

export const CHECKPOINTS_DIR = 'checkpoints';
const LATEST = 'latest';
const STEP_RE = /^step-(\d+)$/;
const TEMP_RE = /\.tmp-(\d+)$/;
/** A complete checkpoint moved aside while the same step is saved again. */
const ASIDE_RE = /^step-(\d+)\.aside\.tmp-\d+$/;
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json', 'chat_template.jinja', 'chat_template.json', 'tokenizer.model'];

export const checkpointName = (step: number): string => `step-${String(step).padStart(8, '0')}`;

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

// ---- durable file operations -------------------------------------------------------------------

function writeSynced(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = openSync(path, 'w');
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}


function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---- saving ------------------------------------------------------------------------------------

function checkParams(what: string, p: Params): void {
  if (!(p instanceof Map)) throw new Error(`saveCheckpoint: ${what} must be a Map`);
  for (const [name, t] of p) {
    if (typeof name !== 'string' || name === '') throw new Error(`saveCheckpoint: ${what} has a tensor with an empty name`);
    if (!(t?.data instanceof Float32Array)) throw new Error(`saveCheckpoint: ${what} tensor ${name} has no Float32Array data`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`saveCheckpoint: ${what} tensor ${name} has shape ${fmtShape(t.shape)} (${n} values) but ${t.data.length} values`);
  }
}

const entries = (p: Params, prefix = ''): StWriteEntry[] =>
  [...p].map(([name, t]) => ({ name: prefix + name, dtype: 'F32', shape: t.shape, data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) }));

/** Removes temp dirs of saves that died (their process is gone), and our own earlier ones. */
function cleanTemps(ckDir: string): void {
  for (const name of readdirSync(ckDir)) {
    const m = TEMP_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    // An aside copy is the only copy of its step until that step is back in place.
    const aside = ASIDE_RE.exec(name);
    if (aside && !isComplete(join(ckDir, checkpointName(Number(aside[1]))))) continue;
    if (pid === process.pid || !pidAlive(pid)) rmSync(join(ckDir, name), { recursive: true, force: true });
  }
}

/** Writes a checkpoint for `ck.step` under outDir/checkpoints; returns its directory. */
export function saveCheckpoint(outDir: string, ck: SaveCheckpointInput): string {
  if (!Number.isSafeInteger(ck.step) || ck.step < 0) throw new Error(`saveCheckpoint: step ${ck.step} must be an integer >= 0`);
  const keep = ck.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`saveCheckpoint: keep ${keep} must be an integer >= 1`);
  checkParams('params', ck.params);
  if (ck.opt) {
    checkParams('opt.m', ck.opt.m);
    checkParams('opt.v', ck.opt.v);
    for (const [name, t] of ck.opt.m) {
      const v = ck.opt.v.get(name);
      if (!v || fmtShape(v.shape) !== fmtShape(t.shape)) throw new Error(`saveCheckpoint: opt.m and opt.v disagree on tensor ${name}`);
    }
    if (ck.opt.v.size !== ck.opt.m.size) throw new Error('saveCheckpoint: opt.m and opt.v hold different tensors');
  }
  const state = JSON.stringify({ ...ck.state, step: ck.step }, null, 1);

  const ckDir = join(outDir, CHECKPOINTS_DIR);
  mkdirSync(ckDir, { recursive: true });
  cleanTemps(ckDir);
  const name = checkpointName(ck.step);
  const final = join(ckDir, name);
  const tmp = join(ckDir, `${name}.tmp-${process.pid}`);
  mkdirSync(tmp);
  try {
    // transformers refuses safetensors whose metadata lacks format "pt".
    writeSafetensors(join(tmp, 'model.safetensors'), entries(ck.params), { format: 'pt' });
    if (ck.opt) writeSafetensors(join(tmp, 'optimizer.safetensors'), [...entries(ck.opt.m, 'm.'), ...entries(ck.opt.v, 'v.')]);
    writeSynced(join(tmp, 'config.json'), hfConfigJson(ck.hfConfig));
    if (ck.tokenizerDir !== undefined) {
      for (const f of TOKENIZER_FILES) {
        const src = join(ck.tokenizerDir, f);
        if (!existsSync(src)) continue;
        copyFileSync(src, join(tmp, f));
        syncDir(join(tmp, f));
      }
    }
    // state.json last: a directory with it is complete (see isComplete).
    writeSynced(join(tmp, 'state.json'), state + '\n');
    syncDir(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e instanceof FormatError ? e : new FormatError(tmp, `cannot write the checkpoint (${(e as Error).message})`);
  }

  // Saving a step that already has a checkpoint (a rerun): move the old one aside first, since
  // a directory cannot be renamed over a non-empty one. Should the process die before the new
  // one is in place, listCheckpoints still finds the aside copy (see ASIDE_RE).
  let aside: string | null = null;
  if (existsSync(final)) {
    aside = join(ckDir, `${name}.aside.tmp-${process.pid}`);
    renameSync(final, aside);
  }
  renameSync(tmp, final);
  syncDir(ckDir);
  const latestTmp = join(ckDir, `${LATEST}.tmp-${process.pid}`);
  writeSynced(latestTmp, name + '\n');
  renameSync(latestTmp, join(ckDir, LATEST));
  syncDir(ckDir);
  if (aside) rmSync(aside, { recursive: true, force: true });

  // Retention: the newest `keep` by step, never the one just written. Each goes out by an
  // atomic rename to a temp name first, so a kill halfway through a deletion never leaves a
  // half-deleted directory that still looks complete.
  const older = listCheckpoints(outDir).filter((c) => c.dir !== final);
  for (const c of older.slice(0, Math.max(0, older.length - (keep - 1)))) {
    const doomed = `${c.dir}.del.tmp-${process.pid}`;
    renameSync(c.dir, doomed);
    rmSync(doomed, { recursive: true, force: true });
  }
  return final;
}

// ---- finding and loading -----------------------------------------------------------------------

/** A checkpoint dir is complete once state.json is in it (written last) along with the weights. */
function isComplete(dir: string): boolean {
  return statSync(join(dir, 'state.json'), { throwIfNoEntry: false })?.isFile() === true && statSync(join(dir, 'model.safetensors'), { throwIfNoEntry: false })?.isFile() === true;
}

/** Complete checkpoints under outDir/checkpoints, oldest step first. */
export function listCheckpoints(outDir: string): { step: number; dir: string }[] {
  const ckDir = join(outDir, CHECKPOINTS_DIR);
  if (!existsSync(ckDir)) return [];
  const byStep = new Map<number, string>();
  const asides: [number, string][] = [];
  for (const name of readdirSync(ckDir)) {
    const m = STEP_RE.exec(name);
    const a = ASIDE_RE.exec(name);
    if (!m && !a) continue;
    const dir = join(ckDir, name);
    if (!isComplete(dir)) continue;
    if (m) byStep.set(Number(m[1]), dir);
    else asides.push([Number(a![1]), dir]);
  }
  // A re-save of step N killed between its two renames: the aside copy stands in for step N.
  for (const [step, dir] of asides) if (!byStep.has(step)) byStep.set(step, dir);
  return [...byStep].map(([step, dir]) => ({ step, dir })).sort((a, b) => a.step - b.step);
}

/** The directory `latest` names, or else the newest complete checkpoint; null when none. */
export function latestCheckpoint(outDir: string): string | null {
  const ckDir = join(outDir, CHECKPOINTS_DIR);
  let named = '';
  try {
    named = readFileSync(join(ckDir, LATEST), 'utf8').trim();
  } catch {
    // no latest file: fall back to the listing
  }
  if (STEP_RE.test(named) && isComplete(join(ckDir, named))) return join(ckDir, named);
  const all = listCheckpoints(outDir);
  return all.length > 0 ? all[all.length - 1]!.dir : null;
}

function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new FormatError(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing from the checkpoint' : `cannot read (${(e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `is truncated or corrupt: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new FormatError(file, 'is corrupt: expected a JSON object');
  return v as Record<string, unknown>;
}

/** Copies every tensor of a safetensors file (F32 only) into fresh Float32Arrays. */
function readTensors(file: string): Params {
  if (!existsSync(file)) throw new FormatError(file, 'missing from the checkpoint');
  const f = SafetensorsFile.open(file);
  const out: Params = new Map();
  for (const t of f.tensors.values()) {
    if (t.dtype !== 'F32') throw new FormatError(file, `tensor "${t.name}" is ${t.dtype}; training checkpoints hold F32`);
    const data = new Float32Array(t.data.byteLength / 4);
    new Uint8Array(data.buffer).set(t.data);
    out.set(t.name, { shape: [...t.shape], data });
  }
  return out;
}

/** Checks that `got` holds exactly the tensors of `expect`, with the same shapes. */
function checkAgainst(dir: string, got: Params, expect: Params, what = ''): void {
  for (const [name, e] of expect) {
    const g = got.get(name);
    if (!g) throw new CheckpointMismatchError(dir, name, `${what}tensor ${name} is not in it`);
    if (fmtShape(g.shape) !== fmtShape(e.shape)) {
      throw new CheckpointMismatchError(dir, name, `${what}tensor ${name} is ${fmtShape(g.shape)}, this model's is ${fmtShape(e.shape)}`);
    }
  }
  for (const name of got.keys()) {
    if (!expect.has(name)) throw new CheckpointMismatchError(dir, name, `${what}tensor ${name} is not in this model`);
  }
}

/**
 * Loads a checkpoint directory. With `expect`, the weights must be exactly its tensors with its
 * shapes (else a CheckpointMismatchError naming the first difference), and so must the
 * optimizer moments when present.
 */
export function loadCheckpoint(dir: string, expect?: Params): LoadedCheckpoint {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new FormatError(dir, 'is not a checkpoint directory (it does not exist)');
  const state = readJsonObject(join(dir, 'state.json'));
  const step = state.step;
  if (!Number.isSafeInteger(step) || (step as number) < 0) throw new FormatError(join(dir, 'state.json'), `"step" is ${JSON.stringify(step)}, not an integer >= 0`);
  const hfConfig = readJsonObject(join(dir, 'config.json'));
  const params = readTensors(join(dir, 'model.safetensors'));
  if (expect) checkAgainst(dir, params, expect);

  let opt: LoadedCheckpoint['opt'] = null;
  const optFile = join(dir, 'optimizer.safetensors');
  if (existsSync(optFile)) {
    const all = readTensors(optFile);
    const m: Params = new Map();
    const v: Params = new Map();
    for (const [name, t] of all) {
      if (name.startsWith('m.')) m.set(name.slice(2), t);
      else if (name.startsWith('v.')) v.set(name.slice(2), t);
      else throw new FormatError(optFile, `tensor "${name}" is neither m.<name> nor v.<name>`);
    }
    for (const [name, t] of m) {
      const o = v.get(name);
      if (!o || fmtShape(o.shape) !== fmtShape(t.shape)) throw new FormatError(optFile, `m.${name} has no v.${name} of the same shape`);
    }
    if (m.size !== v.size) throw new FormatError(optFile, 'the m.* and v.* tensors do not match up');
    if (expect) {
      checkAgainst(dir, m, expect, 'optimizer ');
    }
    opt = { m, v };
  }
  return { step: step as number, params, opt, state, hfConfig };
}

/**
 * A resumed run redoes the steps logged after its checkpoint (before the run was stopped): keeps
 * the metrics lines of steps <= `step` (a line cut short by a kill is dropped) and returns them
 * parsed. No file: nothing.
 */
export function truncateMetricsLog<T extends { step: number }>(path: string, step: number): T[] {
  if (!existsSync(path)) return [];
  const kept: T[] = [];
  const lines = readFileSync(path, 'utf8').split('\n').filter((l) => {
    if (!l.trim()) return false;
    try {
      const row = JSON.parse(l) as T;
      if (row.step > step) return false;
      kept.push(row);
      return true;
    } catch {
      return false;
    }
  });
  writeFileSync(path, lines.map((l) => l + '\n').join(''));
  return kept;
}

// safetensors: Hugging Face's checkpoint format, read through a memory mapping and written
// atomically.
//
// Layout of one file:
//   [u64 little-endian N] [N bytes of UTF-8 JSON header] [data section]
// The header maps each tensor name to { dtype, shape, data_offsets: [begin, end] }, offsets
// relative to the start of the data section, plus an optional "__metadata__" string map.
// A sharded checkpoint adds model.safetensors.index.json whose "weight_map" names the shard
// file of every tensor.
//
// Reading never copies tensor bytes into the JS heap: the file is mapped by the native core
// and each tensor's `data` is a Uint8Array view into that one mapping (kept alive by the
// views). Views keep the offsets the file has; f16/bf16 tensors may sit at odd addresses,
// which the kernels accept.

import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import type { DType } from '../tensor/dtype.ts';
import { Tensor, fmtShape } from '../tensor/tensor.ts';
import { fileSize, mapFile, mapSpans, mapWindow, MAX_MAPPING } from './mmap.ts';
import { FormatError } from './errors.ts';

export type StDType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

/** Bytes per element of every dtype the header may name. */
export const ST_DTYPE_SIZE: Readonly<Record<StDType, number>> = {
  F64: 8, I64: 8, U64: 8,
  F32: 4, I32: 4, U32: 4,
  F16: 2, BF16: 2, I16: 2, U16: 2,
  I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

// The reference writer orders the data section by this enum, descending, then by name. Sizes
// never grow along that order, so every tensor lands naturally aligned (the header is padded
// to 8 bytes). We use the same order so our files lay out like theirs.
const WRITE_RANK: readonly StDType[] = [
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'F64', 'I64', 'U64',
];

/** The safetensors dtypes that load as a slipstream Tensor. */
const TO_TENSOR_DTYPE: Partial<Record<StDType, DType>> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };
const FROM_TENSOR_DTYPE: Partial<Record<DType, StDType>> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** Same limit as the reference implementation: a larger header is a corrupt or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
const SHARD_RE = /^model-\d{5}-of-\d{5}\.safetensors$/;

export function isStDType(s: unknown): s is StDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(ST_DTYPE_SIZE, s);
}

export interface StTensorInfo {
  readonly name: string;
  readonly dtype: StDType;
  /** As in the header; [] is a scalar. */
  readonly shape: readonly number[];
  /** View into the file mapping (no copy), exactly the tensor's bytes. */
  readonly data: Uint8Array;
  /** The .safetensors file holding it. */
  readonly file: string;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Element count of a validated shape, or null when it is not a safe integer. */
function countElements(shape: readonly number[]): number | null {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

function checkShape(shape: unknown): string | null {
  if (!Array.isArray(shape)) return `shape ${JSON.stringify(shape)} is not an array`;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return `shape ${JSON.stringify(shape)} must hold integers >= 0`;
  }
  return null;
}

// ---- one file --------------------------------------------------------------------------

/** One mapped, fully validated .safetensors file. */
export class SafetensorsFile {
  readonly path: string;
  /**
   * The whole file, mapped read-only (private copy-on-write); null for a file over 4 GiB, whose
   * tensors are views into windows of the file (see open()).
   */
  readonly buffer: ArrayBuffer | null;
  /** Byte offset of the data section in the file (8 + header length). */
  readonly dataStart: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** In data-section order. */
  readonly tensors: ReadonlyMap<string, StTensorInfo>;

  private constructor(path: string, buffer: ArrayBuffer | null, dataStart: number, metadata: Record<string, string>, tensors: Map<string, StTensorInfo>) {
    this.path = path;
    this.buffer = buffer;
    this.dataStart = dataStart;
    this.metadata = Object.freeze(metadata);
    this.tensors = tensors;
  }

  /**
   * Maps and validates a file. Up to `opts.wholeFileMax` bytes (default: the largest ArrayBuffer,
   * 4 GiB on Node 20) it is one mapping; a larger file's header is read through a window of its
   * own and its tensors through windows of up to `opts.windowBytes` (mapSpans in mmap.ts).
   */
  static open(path: string, opts: { wholeFileMax?: number; windowBytes?: number } = {}): SafetensorsFile {
    const size = fileSize(path);
    if (size <= Math.min(opts.wholeFileMax ?? MAX_MAPPING, MAX_MAPPING)) return SafetensorsFile.parse(path, mapFile(path));
    const len = mapWindow(path, 0, 8);
    const headerLen = checkHeaderLength(path, new DataView(len.buffer, len.byteOffset, 8).getBigUint64(0, true), size);
    const h = parseHeader(path, mapWindow(path, 8, headerLen), size);
    const views = mapSpans(path, h.entries.map((t) => ({ name: t.name, offset: h.dataStart + t.begin, nbytes: t.end - t.begin })), opts.windowBytes);
    return new SafetensorsFile(path, null, h.dataStart, h.metadata, infos(path, h.entries, (t) => views.get(t.name)!));
  }

  /** Validates the header of a whole file already in memory (`buffer` is kept, not copied). */
  static parse(path: string, buffer: ArrayBuffer): SafetensorsFile {
    const size = buffer.byteLength;
    if (size < 8) throw new FormatError(path, `file is ${size} bytes, shorter than the 8-byte header length`);
    const headerLen = checkHeaderLength(path, new DataView(buffer, 0, 8).getBigUint64(0, true), size);
    const h = parseHeader(path, new Uint8Array(buffer, 8, headerLen), size);
    return new SafetensorsFile(path, buffer, h.dataStart, h.metadata, infos(path, h.entries, (t) => new Uint8Array(buffer, h.dataStart + t.begin, t.end - t.begin)));
  }

  info(name: string): StTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(this.path, `no tensor named "${name}"`);
    return t;
  }

  tensor(name: string): Tensor {
    return toTensor(this.info(name));
  }
}

type HeaderEntry = { name: string; dtype: StDType; shape: number[]; begin: number; end: number };

/** The u64 header length, checked against the limit and the file's size. */
function checkHeaderLength(path: string, n: bigint, size: number): number {
  if (size < 8) throw new FormatError(path, `file is ${size} bytes, shorter than the 8-byte header length`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new FormatError(path, `header length ${n} is absurd (over the ${MAX_HEADER_BYTES}-byte limit); not a safetensors file?`);
  const headerLen = Number(n);
  if (8 + headerLen > size) throw new FormatError(path, `header length ${headerLen} runs past the end of the file (${size} bytes)`);
  return headerLen;
}

/** Tensor infos in data order, each with its bytes from `view`. */
function infos(path: string, entries: HeaderEntry[], view: (t: HeaderEntry) => Uint8Array): Map<string, StTensorInfo> {
  const tensors = new Map<string, StTensorInfo>();
  for (const t of entries) {
    tensors.set(t.name, Object.freeze({ name: t.name, dtype: t.dtype, shape: Object.freeze(t.shape.slice()), data: view(t), file: path }));
  }
  return tensors;
}

/**
 * Validates the JSON header (`headerBytes`, the bytes after the length) of a file of `size`
 * bytes: every tensor inside the data section, sized as its dtype and shape say, none
 * overlapping another. Entries come back in data order.
 */
function parseHeader(path: string, headerBytes: Uint8Array, size: number): { dataStart: number; metadata: Record<string, string>; entries: HeaderEntry[] } {
  const bad = (problem: string) => new FormatError(path, problem);
  const headerLen = headerBytes.byteLength;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw bad('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(header)) throw bad('header is not a JSON object');

  let metadata: Record<string, string> = {};
  const meta = header['__metadata__'];
  // The reference reader takes null as "no metadata"; so do we.
  if (meta !== undefined && meta !== null) {
    if (!isPlainObject(meta)) throw bad('__metadata__ is not an object of strings');
    for (const [k, v] of Object.entries(meta)) {
      if (typeof v !== 'string') throw bad(`__metadata__ value "${k}" is ${JSON.stringify(v)}, not a string`);
    }
    metadata = { ...(meta as Record<string, string>) }; // spread copies a "__proto__" key as data
  }

  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const entries: HeaderEntry[] = [];
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const tbad = (problem: string) => bad(`tensor "${name}": ${problem}`);
    if (!isPlainObject(e)) throw tbad('entry is not an object');
    const dtype = e['dtype'];
    if (dtype === undefined) throw tbad('no dtype');
    if (!isStDType(dtype)) throw tbad(`unknown dtype ${JSON.stringify(dtype)}`);
    const shapeProblem = e['shape'] === undefined ? 'no shape' : checkShape(e['shape']);
    if (shapeProblem) throw tbad(shapeProblem);
    const shape = e['shape'] as number[];
    const offs = e['data_offsets'];
    if (offs === undefined) throw tbad('no data_offsets');
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)) {
      throw tbad(`data_offsets ${JSON.stringify(offs)} must be [begin, end], integers >= 0`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw tbad(`data_offsets [${begin}, ${end}] has begin > end`);
    const count = countElements(shape);
    if (count === null || !Number.isSafeInteger(count * ST_DTYPE_SIZE[dtype])) throw tbad(`shape ${fmtShape(shape)} is too large`);
    const need = count * ST_DTYPE_SIZE[dtype];
    if (end - begin !== need) throw tbad(`data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${fmtShape(shape)} needs ${need}`);
    if (end > dataLen) throw tbad(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataLen} bytes)`);
    if (need > bufferConstants.MAX_LENGTH) throw tbad(`${need} bytes is more than one typed array can view in this Node.js`);
    entries.push({ name, dtype, shape, begin, end });
  }

  // Overlap check in data order. Empty tensors own no bytes, so they overlap nothing.
  // (Gaps between tensors are tolerated: they harm nothing when reading.)
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let last: (typeof entries)[number] | null = null;
  for (const t of entries) {
    if (t.begin === t.end) continue;
    if (last && t.begin < last.end) {
      throw bad(`tensors "${last.name}" [${last.begin}, ${last.end}) and "${t.name}" [${t.begin}, ${t.end}) overlap`);
    }
    if (!last || t.end > last.end) last = t;
  }
  return { dataStart, metadata, entries };
}

/**
 * A zero-copy Tensor over a tensor's bytes. Only F32, F16 and BF16 load; a scalar (shape [])
 * becomes shape [1], since Tensor has no 0-d form.
 */
export function toTensor(info: StTensorInfo): Tensor {
  const dt = TO_TENSOR_DTYPE[info.dtype];
  if (!dt) throw new FormatError(info.file, `tensor "${info.name}" has dtype ${info.dtype}; only F32, F16 and BF16 load as a Tensor`);
  return new Tensor(dt, info.shape.length === 0 ? [1] : info.shape, info.data);
}

// ---- checkpoints (one file, a sharded index, or a directory) ------------------------------

export interface Checkpoint {
  /** What was opened (file, index or directory). */
  readonly path: string;
  /** The .safetensors files backing it. */
  readonly files: readonly string[];
  /** __metadata__ of the first file (shards of one save carry the same). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names in storage order (file by file, then data-section order). */
  names(): string[];
  has(name: string): boolean;
  info(name: string): StTensorInfo;
  /** Zero-copy Tensor (F32/F16/BF16 only; other dtypes throw a FormatError naming the tensor). */
  tensor(name: string): Tensor;
}

class SafetensorsCheckpoint implements Checkpoint {
  readonly path: string;
  readonly files: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly byName: Map<string, StTensorInfo>;

  constructor(path: string, files: SafetensorsFile[], byName: Map<string, StTensorInfo>) {
    this.path = path;
    this.files = Object.freeze(files.map((f) => f.path));
    this.metadata = files[0]?.metadata ?? Object.freeze({});
    // Storage order: files by position, tensors in each file's data order (its map's order; a
    // view's byteOffset is relative to its window in a file over 4 GiB, so it cannot rank them).
    const rank = new Map<StTensorInfo, number>();
    for (const f of files) for (const t of f.tensors.values()) rank.set(t, rank.size);
    const sorted = [...byName.values()].sort((a, b) => rank.get(a)! - rank.get(b)!);
    this.byName = new Map(sorted.map((t) => [t.name, t]));
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): StTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FormatError(this.path, `no tensor named "${name}" in this checkpoint`);
    return t;
  }

  tensor(name: string): Tensor {
    return toTensor(this.info(name));
  }
}

/**
 * Opens a checkpoint. `dirOrFile` may be a .safetensors file, a *.index.json, or a directory:
 * there model.safetensors.index.json wins, else model.safetensors, else every *.safetensors
 * in it (a tensor name found in two files is an error).
 */
export function openSafetensorsCheckpoint(dirOrFile: string): Checkpoint {
  const st = statSync(dirOrFile, { throwIfNoEntry: false });
  if (!st) throw new FormatError(dirOrFile, 'no such file or directory');
  if (st.isFile()) {
    if (dirOrFile.endsWith('.json')) return openIndex(dirOrFile);
    const f = SafetensorsFile.open(dirOrFile);
    return new SafetensorsCheckpoint(dirOrFile, [f], new Map(f.tensors));
  }
  if (!st.isDirectory()) throw new FormatError(dirOrFile, 'is neither a file nor a directory');

  const index = join(dirOrFile, INDEX_FILE);
  if (statSync(index, { throwIfNoEntry: false })?.isFile()) return openIndex(index);
  const single = join(dirOrFile, SINGLE_FILE);
  if (statSync(single, { throwIfNoEntry: false })?.isFile()) {
    const f = SafetensorsFile.open(single);
    return new SafetensorsCheckpoint(dirOrFile, [f], new Map(f.tensors));
  }
  const names = readdirSync(dirOrFile).filter((n) => n.endsWith('.safetensors')).sort();
  if (names.length === 0) throw new FormatError(dirOrFile, `no ${INDEX_FILE}, ${SINGLE_FILE} or other .safetensors file in this directory`);
  const files = names.map((n) => SafetensorsFile.open(join(dirOrFile, n)));
  const byName = new Map<string, StTensorInfo>();
  for (const f of files) {
    for (const t of f.tensors.values()) {
      const prev = byName.get(t.name);
      if (prev) throw new FormatError(f.path, `tensor "${t.name}" is also in ${prev.file}`);
      byName.set(t.name, t);
    }
  }
  return new SafetensorsCheckpoint(dirOrFile, files, byName);
}

function openIndex(indexPath: string): Checkpoint {
  const bad = (problem: string) => new FormatError(indexPath, problem);
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw bad(`cannot read the index (${(e as Error).message})`);
  }
  if (!isPlainObject(index)) throw bad('index is not a JSON object');
  const wm = index['weight_map'];
  if (!isPlainObject(wm)) throw bad('index has no "weight_map" object');

  const dir = dirname(indexPath);
  const shards = new Map<string, SafetensorsFile>();
  const byName = new Map<string, StTensorInfo>();
  for (const [name, shard] of Object.entries(wm)) {
    if (typeof shard !== 'string' || shard === '') throw bad(`weight_map entry for "${name}" is ${JSON.stringify(shard)}, not a file name`);
    // Shards live next to the index; a path out of the directory is never legitimate.
    if (isAbsolute(shard) || normalize(shard).split(/[\\/]/).includes('..')) throw bad(`weight_map names shard "${shard}" outside the checkpoint directory`);
    let f = shards.get(shard);
    if (!f) {
      const p = join(dir, shard);
      if (!statSync(p, { throwIfNoEntry: false })?.isFile()) throw bad(`weight_map names shard "${shard}" (for tensor "${name}"), but ${p} does not exist`);
      f = SafetensorsFile.open(p);
      shards.set(shard, f);
    }
    const t = f.tensors.get(name);
    if (!t) throw bad(`tensor "${name}" is listed in shard "${shard}", but ${f.path} has no such tensor`);
    byName.set(name, t);
  }
  // Shard order by file name: model-00001-of-N, model-00002-of-N, ...
  const files = [...shards.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, f]) => f);
  return new SafetensorsCheckpoint(indexPath, files, byName);
}

// ---- writing ---------------------------------------------------------------------------

/** Raw bytes to write. Any known dtype; `data` holds exactly numel * size bytes, little-endian. */
export interface StWriteEntry {
  name: string;
  dtype: StDType;
  shape: readonly number[];
  data: Uint8Array;
}

/** A slipstream Tensor to write (f32/f16/bf16, contiguous). */
export interface StNamedTensor {
  name: string;
  tensor: Tensor;
}

export type StWriteInput = StWriteEntry | StNamedTensor;

interface Prepared {
  name: string;
  dtype: StDType;
  shape: number[];
  data: Uint8Array;
}

// 8 MiB per write call: large enough to be fast, small enough to never hit the 2 GiB
// single-write limit, and no staging buffer: bytes go from the tensor (or mapping) to the fd.
const WRITE_CHUNK = 8 << 20;

function prepare(file: string, inputs: readonly StWriteInput[]): Prepared[] {
  if (!Array.isArray(inputs)) throw new FormatError(file, 'tensors to write must be an array');
  const seen = new Set<string>();
  const out: Prepared[] = [];
  for (const inp of inputs) {
    const name = (inp as { name?: unknown })?.name;
    if (typeof name !== 'string' || name === '') throw new FormatError(file, `tensor name ${JSON.stringify(name)} must be a non-empty string`);
    if (name === '__metadata__') throw new FormatError(file, 'a tensor cannot be named "__metadata__"');
    if (seen.has(name)) throw new FormatError(file, `tensor "${name}" is given twice`);
    seen.add(name);
    const bad = (problem: string) => new FormatError(file, `tensor "${name}": ${problem}`);
    if ('tensor' in inp) {
      const t = inp.tensor;
      if (!(t instanceof Tensor)) throw bad('"tensor" is not a Tensor');
      const dtype = FROM_TENSOR_DTYPE[t.dtype];
      if (!dtype) throw bad(`dtype ${t.dtype} cannot be written (only f32, f16, bf16)`);
      if (!t.isContiguous()) throw bad(`${t} is not contiguous; copy it to a contiguous tensor first`);
      out.push({ name, dtype, shape: [...t.shape], data: t.data.subarray(0, t.numel * ST_DTYPE_SIZE[dtype]) });
      continue;
    }
    const { dtype, shape, data } = inp;
    if (!isStDType(dtype)) throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
    const sp = checkShape(shape);
    if (sp) throw bad(sp);
    if (!(data instanceof Uint8Array)) throw bad('data is not a Uint8Array');
    const count = countElements(shape);
    const need = count === null ? NaN : count * ST_DTYPE_SIZE[dtype];
    if (data.byteLength !== need) throw bad(`${dtype} ${fmtShape(shape)} needs ${need} bytes, data has ${data.byteLength}`);
    out.push({ name, dtype, shape: [...shape], data });
  }
  return out;
}

function checkMetadata(file: string, metadata: Record<string, string> | undefined): void {
  if (metadata === undefined) return;
  if (!isPlainObject(metadata)) throw new FormatError(file, 'metadata must be an object of strings');
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new FormatError(file, `metadata value "${k}" is ${JSON.stringify(v)}, not a string`);
  }
}

const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Writes `bytes` fully, in chunks (writeSync may write less than asked). */
function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.byteLength) off += writeSync(fd, bytes, off, Math.min(WRITE_CHUNK, bytes.byteLength - off));
}

// Atomic writes: every file goes to `path.tmp-<pid>` and is fsynced; only when all files of a
// save are complete are they renamed into place, so a reader sees the old save or the new one,
// never a torn file, and a failed save leaves no stray temp files.
type Pending = { tmp: string; path: string };

/** Writes `path`'s future content to its temp file (fsynced); the rename is left to commit(). */
function writeTemp(path: string, fill: (fd: number) => void): Pending {
  const tmp = `${path}.tmp-${process.pid}`;
  let fd = -1;
  let created = false;
  try {
    fd = openSync(tmp, 'w');
    created = true;
    fill(fd);
    fsyncSync(fd);
    const f = fd;
    fd = -1;
    closeSync(f);
    return { tmp, path };
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    // Remove the temp file only if we created it (the open itself may be what failed).
    if (created) removeQuietly(tmp);
    throw e instanceof FormatError ? e : new FormatError(path, `cannot write (${(e as Error).message})`);
  }
}

/** Renames the temp files into place, in order, then syncs their directories. */
function commit(pending: Pending[]): void {
  try {
    for (const p of pending) renameSync(p.tmp, p.path);
  } catch (e) {
    discard(pending);
    throw new FormatError(pending[0]?.path ?? '', `cannot write (${(e as Error).message})`);
  }
  for (const d of new Set(pending.map((p) => dirname(p.path)))) syncDir(d);
}

function discard(pending: Pending[]): void {
  for (const p of pending) removeQuietly(p.tmp);
}

/** Cleanup after a failure must not mask the failure itself. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // keep the original error
  }
}

/** fsync a directory (so a rename in it survives a crash) or a file; best effort: not every OS allows it for directories. */
export function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not fatal: the data itself is already synced
  }
}

function writePrepared(path: string, tensors: Prepared[], metadata: Record<string, string> | undefined): Pending {
  // Data order as the reference writer: dtype rank descending (so widest first, everything
  // naturally aligned), then name. No padding between tensors: the spec forbids holes.
  const order = [...tensors].sort((a, b) => WRITE_RANK.indexOf(b.dtype) - WRITE_RANK.indexOf(a.dtype) || byteOrder(a.name, b.name));
  // The header is assembled as text so names that look like integers keep this order
  // (a JS object would move them first).
  const parts: string[] = [];
  if (metadata !== undefined) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of order) {
    const end = offset + t.data.byteLength;
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  let header = `{${parts.join(',')}}`;
  // Pad with spaces to a multiple of 8 so the data section starts 8-byte aligned.
  const raw = Buffer.byteLength(header, 'utf8');
  header += ' '.repeat((8 - (raw % 8)) % 8);
  const headerBytes = Buffer.from(header, 'utf8');
  if (headerBytes.byteLength > MAX_HEADER_BYTES) throw new FormatError(path, `header would be ${headerBytes.byteLength} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);

  return writeTemp(path, (fd) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.byteLength));
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const t of order) writeAll(fd, t.data);
  });
}

/**
 * Writes one .safetensors file atomically. Data order follows the reference writer: by dtype
 * (widest first), then by name; the header is padded with spaces to a multiple of 8 bytes.
 */
export function writeSafetensors(path: string, tensors: readonly StWriteInput[], metadata?: Record<string, string>): void {
  checkMetadata(path, metadata);
  commit([writePrepared(path, prepare(path, tensors), metadata)]);
}

export interface ShardedWriteResult {
  /** The .safetensors files written, in shard order. */
  files: string[];
  /** The index written, or null when one file sufficed. */
  index: string | null;
  /** Bytes of tensor data over all shards (the index's metadata.total_size). */
  totalSize: number;
}

const shardName = (i: number, n: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/**
 * Writes a checkpoint directory the way Hugging Face saves one. Tensors are packed into shards
 * in the given order, a new shard starting when the next tensor's data would push the current
 * one past `maxShardBytes` (a tensor larger than that gets a shard of its own). One shard:
 * model.safetensors. More: model-0000i-of-0000N.safetensors plus model.safetensors.index.json
 * with metadata.total_size. Each shard carries `metadata`. Files of an earlier save that the
 * new layout does not use (a stale index, single file or shards) are removed afterwards, so
 * openSafetensorsCheckpoint(dir) finds the new checkpoint.
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: readonly StWriteInput[],
  maxShardBytes: number,
  metadata?: Record<string, string>,
): ShardedWriteResult {
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) throw new FormatError(dir, `maxShardBytes ${maxShardBytes} must be a positive integer`);
  checkMetadata(dir, metadata);
  const all = prepare(dir, tensors);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new FormatError(dir, `cannot create the directory (${(e as Error).message})`);
  }

  const shards: Prepared[][] = [[]];
  let cur = 0;
  let total = 0;
  for (const t of all) {
    const n = t.data.byteLength;
    if (shards[shards.length - 1]!.length > 0 && cur + n > maxShardBytes) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1]!.push(t);
    cur += n;
    total += n;
  }

  const pending: Pending[] = [];
  let result: ShardedWriteResult;
  try {
    if (shards.length === 1) {
      const p = join(dir, SINGLE_FILE);
      pending.push(writePrepared(p, shards[0]!, metadata));
      result = { files: [p], index: null, totalSize: total };
    } else {
      const files: string[] = [];
      const weightMap: [string, string][] = [];
      shards.forEach((s, i) => {
        const name = shardName(i, shards.length);
        const p = join(dir, name);
        pending.push(writePrepared(p, s, metadata));
        files.push(p);
        for (const t of s) weightMap.push([t.name, name]);
      });
      weightMap.sort((a, b) => byteOrder(a[0], b[0]));
      const index = { metadata: { total_size: total }, weight_map: Object.fromEntries(weightMap) };
      const ip = join(dir, INDEX_FILE);
      const text = Buffer.from(JSON.stringify(index, null, 2) + '\n', 'utf8');
      // The index is renamed last: until it lands, a reader of the directory sees the old save.
      pending.push(writeTemp(ip, (fd) => writeAll(fd, text)));
      result = { files, index: ip, totalSize: total };
    }
  } catch (e) {
    discard(pending);
    throw e;
  }
  commit(pending);
  const written = new Set(pending.map((p) => basename(p.path)));

  for (const name of readdirSync(dir)) {
    if (written.has(name)) continue;
    if (name === INDEX_FILE || name === SINGLE_FILE || SHARD_RE.test(name)) rmSync(join(dir, name), { force: true });
  }
  return result;
}

// GGUF (llama.cpp's single-file model format), versions 2 and 3, read through a memory
// mapping and written atomically.
//
// Layout, all little-endian (ggml's docs/gguf.md):
//   "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//   metadata_kv_count x { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32)
//   data section: each tensor at data_start + offset, offsets multiples of the alignment
// A string is u64 byte length + UTF-8 bytes (no NUL). An array value is u32 item_type +
// u64 count + items. Version 1 used u32 counts and lengths and is not read.
//
// Dims are in ggml order: dims[0] = ne0 is the innermost, contiguous dimension. A Slipstream
// Tensor lists dims outermost first, so GGUF [ne0, ne1] becomes shape [ne1, ne0]; that
// reversal is ggufDimsToShape() in layout.ts.
//
// Reading never copies tensor bytes: `data` of every tensor is a Uint8Array view into the one
// mapping of the file (kept alive by the views); a file over 4 GiB (more than one ArrayBuffer
// holds) is read through a header window and data windows of neighbouring tensors instead. Every malformed input raises a FormatError
// naming the file and the problem; the parser checks each length against the bytes left
// before it reads or allocates anything.

import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { blockSize, bytesFor, decode, Q8_0_BLOCK, Q8_0_BLOCK_BYTES, type DType } from '../tensor/dtype.ts';
import { encodeF32Into } from '../tensor/convert.ts';
import { Tensor } from '../tensor/tensor.ts';
import { fileSize, mapFile, mapSpans, mapWindow, MAX_MAPPING } from './mmap.ts';
import { ggufDimsToShape } from './layout.ts';
import { FormatError } from './errors.ts';
import {
  GGML_TYPE, GGML_TYPES, ggmlNbytes, ggmlTypeName, QK_K,
} from './ggml-quants.ts';
import type { GgufMetaEntry, GgufMetadata, GgufScalarType, GgufValue } from './gguf-types.ts';
import { nameMetadata } from './gguf-meta.ts';

// The metadata accessors (metaNumber, metaString, ...) live in gguf-meta.ts, which the model
// config reader imports without the reader and writer here.
export { getMeta, metaArray, metaBool, metaNumber, metaNumberArray, metaString, metaStringArray } from './gguf-meta.ts';
export type { GgufMetaSource } from './gguf-meta.ts';

export { GGML_TYPE, GGML_TYPE_NAME, GGML_TYPES, ggmlTypeName } from './ggml-quants.ts';
export type { GgmlTypeInfo, GgmlTypeName } from './ggml-quants.ts';

export const GGUF_MAGIC = 'GGUF';
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml keeps at most 4 dimensions per tensor (GGML_MAX_DIMS). */
export const GGUF_MAX_DIMS = 4;
/** Longest tensor name llama.cpp accepts, in UTF-8 bytes (GGML_MAX_NAME = 64, with its NUL). */
export const GGUF_MAX_NAME_BYTES = 63;

/** On-disk value type codes (gguf_type). */
export const GGUF_VALUE_TYPE: Readonly<Record<GgufScalarType | 'array', number>> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};
const TYPE_OF_CODE: readonly (GgufScalarType | 'array')[] = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];
/** Bytes of a fixed-size value; a string takes at least its 8-byte length. */
const VALUE_SIZE: Record<GgufScalarType, number> = { u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8, string: 8 };

export interface GgufTensorInfo {
  name: string;
  /** GGUF order: dims[0] = ne0, the contiguous (innermost) dimension. */
  dims: number[];
  /** ggml type id (GGML_TYPE). */
  type: number;
  typeName: string;
  /** Absolute byte offset in the file. */
  offset: number;
  nbytes: number;
  /** View into the mapped file (no copy). */
  data: Uint8Array;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  metadata: GgufMetadata;
  /** In file order. */
  tensors: Map<string, GgufTensorInfo>;
  /** Absolute offset of the data section. */
  dataOffset: number;
}

// ---- reading ---------------------------------------------------------------------------

export interface ReadGgufOptions {
  /**
   * Files up to this size are mapped whole (default: the largest ArrayBuffer, 4 GiB on Node 20);
   * larger ones are read in windows: the header through a small window, the tensors through
   * windows of up to `windowBytes` (mapSpans in mmap.ts). Tests lower both.
   */
  wholeFileMax?: number;
  windowBytes?: number;
}

/** Maps `path` and parses it. Tensor data stays in the mapping (or mappings, for a file over 4 GiB). */
export function readGguf(path: string, opts: ReadGgufOptions = {}): GgufFile {
  const size = fileSize(path);
  if (size <= Math.min(opts.wholeFileMax ?? MAX_MAPPING, MAX_MAPPING)) return parseGguf(new Uint8Array(mapFile(path)), path);
  // The header through a window that grows until it holds the metadata and tensor infos (a
  // vocabulary of 256k tokens is ~5 MB of them), then each tensor a view into a data window.
  let window = Math.min(size, 16 << 20);
  for (;;) {
    try {
      const h = parseHeader(mapWindow(path, 0, window), path, size);
      const views = mapSpans(path, h.infos.map((t) => ({ name: t.name, offset: h.dataOffset + t.rel, nbytes: t.nbytes })), opts.windowBytes);
      return finishFile(h, path, (name) => views.get(name)!);
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      if (window >= Math.min(size, MAX_MAPPING)) throw new FormatError(path, `the header is larger than ${window} bytes, more than can be mapped as one buffer`);
      window = Math.min(size, MAX_MAPPING, window * 4);
    }
  }
}

/** The header runs past the window mapped so far (not past the file): map more and parse again. */
class NeedMore extends Error {}

class Cursor {
  pos = 0;
  /** What is being read, for error messages ("metadata key \"general.name\""). */
  ctx = 'the header';
  readonly dv: DataView;
  readonly buf: Buffer;
  readonly size: number;

  /** `bytes` holds the file's first bytes (all of them, or a window); `size` is the file's size. */
  constructor(readonly bytes: Uint8Array, readonly path: string, size = bytes.byteLength) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.size = size;
  }

  fail(problem: string): never {
    throw new FormatError(this.path, problem);
  }

  need(n: number, item?: number): void {
    if (n > this.size - this.pos) {
      const what = item === undefined ? this.ctx : `${this.ctx}, item ${item}`;
      this.fail(`truncated: reading ${what} needs ${n} bytes at offset ${this.pos}, but the file ends at ${this.size}`);
    }
    if (n > this.bytes.byteLength - this.pos) throw new NeedMore();
  }

  u8(): number {
    this.need(1);
    return this.dv.getUint8(this.pos++);
  }

  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u64 that must fit a JS number. */
  safeU64(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is absurdly large (${this.ctx})`);
    return Number(v);
  }

  /** A u64 count of items each taking at least `minBytes`; more than the file holds is corrupt. */
  count(what: string, minBytes: number): number {
    const at = this.pos;
    const v = this.u64();
    const left = this.size - this.pos;
    if (v > BigInt(Math.floor(left / minBytes))) {
      this.fail(`${what} ${v} at offset ${at} cannot be right: that many items of at least ${minBytes} bytes need more than the ${left} bytes left (${this.ctx}; truncated or corrupt file)`);
    }
    return Number(v);
  }

  string(item?: number): string {
    const at = this.pos;
    this.need(8, item);
    const len = this.dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (len > BigInt(this.size - this.pos)) {
      const what = item === undefined ? this.ctx : `${this.ctx}, item ${item}`;
      this.fail(`bad string length ${len} at offset ${at} (${what}): only ${this.size - this.pos} bytes left in the file`);
    }
    const n = Number(len);
    if (n > this.bytes.byteLength - this.pos) throw new NeedMore();
    // Invalid UTF-8 becomes U+FFFD rather than an error: some vocabularies hold such tokens.
    const s = this.buf.toString('utf8', this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
}

/** u64/i64 as a number when it is a safe integer, else as a bigint. */
function bigToValue(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

function readScalar(c: Cursor, type: GgufScalarType, item?: number): GgufValue {
  if (type === 'string') return c.string(item);
  const n = VALUE_SIZE[type];
  c.need(n, item);
  const dv = c.dv;
  const p = c.pos;
  c.pos += n;
  switch (type) {
    case 'u8': return dv.getUint8(p);
    case 'i8': return dv.getInt8(p);
    case 'bool': return dv.getUint8(p) !== 0;
    case 'u16': return dv.getUint16(p, true);
    case 'i16': return dv.getInt16(p, true);
    case 'u32': return dv.getUint32(p, true);
    case 'i32': return dv.getInt32(p, true);
    case 'f32': return dv.getFloat32(p, true);
    case 'u64': return bigToValue(dv.getBigUint64(p, true));
    case 'i64': return bigToValue(dv.getBigInt64(p, true));
    case 'f64': return dv.getFloat64(p, true);
  }
}

function valueType(c: Cursor, code: number): GgufScalarType | 'array' {
  const t = TYPE_OF_CODE[code];
  if (t === undefined) c.fail(`unknown value type ${code} at offset ${c.pos - 4} (${c.ctx}); known types are 0-12`);
  return t;
}

function readEntry(c: Cursor): GgufMetaEntry {
  const type = valueType(c, c.u32());
  if (type !== 'array') return { type, value: readScalar(c, type) };
  const itemType = valueType(c, c.u32());
  if (itemType === 'array') c.fail(`${c.ctx} is an array of arrays, which is not supported`);
  const n = c.count('array length', VALUE_SIZE[itemType]);
  const value = new Array<GgufValue>(n);
  for (let i = 0; i < n; i++) value[i] = readScalar(c, itemType, i);
  return { type, itemType, value };
}

function describeMagic(b: Uint8Array): string {
  const printable = [...b].every((x) => x >= 0x20 && x < 0x7f);
  return printable ? `"${String.fromCharCode(...b)}"` : [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** Parses a whole GGUF file held in `bytes` (a mapping or a buffer); `path` names it in errors. */
export function parseGguf(bytes: Uint8Array, path = '<buffer>'): GgufFile {
  const h = parseHeader(bytes, path, bytes.byteLength);
  return finishFile(h, path, (_name, offset, nbytes) => bytes.subarray(offset, offset + nbytes));
}

interface GgufHeader {
  version: number;
  alignment: number;
  metadata: GgufMetadata;
  infos: { name: string; dims: number[]; type: number; rel: number; nbytes: number }[];
  dataOffset: number;
}

/**
 * The header of a file of `size` bytes whose first bytes are `bytes` (the whole file or a
 * window); every tensor is checked to lie inside the file, aligned and not overlapping another.
 * Throws NeedMore when the header runs past the window but not past the file.
 */
function parseHeader(bytes: Uint8Array, path: string, size: number): GgufHeader {
  const c = new Cursor(bytes, path, size);
  if (c.size < 4) c.fail(`not a GGUF file: ${c.size} bytes is too short for a header`);
  const magic = bytes.subarray(0, 4);
  if (String.fromCharCode(...magic) !== GGUF_MAGIC) c.fail(`not a GGUF file (magic ${describeMagic(magic)}, expected "GGUF")`);
  c.pos = 4;
  c.ctx = 'the version';
  const version = c.u32();
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
    if (swapped === 2 || swapped === 3) c.fail(`big-endian GGUF (version ${swapped} byte-swapped) is not supported; only little-endian files are`);
    c.fail(`GGUF version ${version} is not supported (only versions 2 and 3)${version === 1 ? '; re-convert the model with a current llama.cpp' : ''}`);
  }
  c.ctx = 'the tensor count';
  // a tensor info takes at least 8 (name) + 4 (n_dims) + 4 (type) + 8 (offset) bytes
  const nTensors = c.count('tensor count', 24);
  c.ctx = 'the metadata count';
  // a key/value takes at least 8 (key) + 4 (type) + 1 (smallest value) bytes
  const nKv = c.count('metadata count', 13);

  const metadata: GgufMetadata = new Map();
  for (let i = 0; i < nKv; i++) {
    c.ctx = `metadata entry ${i}`;
    const key = c.string();
    c.ctx = `metadata key "${key}"`;
    if (metadata.has(key)) c.fail(`metadata key "${key}" appears twice`);
    metadata.set(key, readEntry(c));
  }

  const infos: { name: string; dims: number[]; type: number; rel: number; nbytes: number }[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    c.ctx = `tensor info ${i}`;
    const name = c.string();
    c.ctx = `tensor "${name}"`;
    if (seen.has(name)) c.fail(`tensor "${name}" appears twice`);
    seen.add(name);
    const nDims = c.u32();
    if (nDims > GGUF_MAX_DIMS) c.fail(`tensor "${name}" has ${nDims} dimensions; GGUF allows at most ${GGUF_MAX_DIMS}`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(c.safeU64('dimension'));
    const type = c.u32();
    if (!GGML_TYPES.has(type)) c.fail(`tensor "${name}" has unknown ggml type id ${type}`);
    const rel = c.safeU64('tensor offset');
    let nbytes = 0;
    try {
      nbytes = ggmlNbytes(type, dims);
    } catch (e) {
      c.fail(`tensor "${name}" [${dims.join(', ')}] ${ggmlTypeName(type)}: ${(e as Error).message}`);
    }
    infos.push({ name, dims, type, rel, nbytes });
  }

  c.ctx = 'general.alignment';
  const alignment = alignmentOf(metadata, (p) => c.fail(p));
  const dataOffset = alignUp(c.pos, alignment);

  for (const t of infos) {
    if (t.rel % alignment !== 0) c.fail(`tensor "${t.name}" offset ${t.rel} is not a multiple of the alignment ${alignment}`);
    const offset = dataOffset + t.rel;
    if (offset + t.nbytes > c.size) {
      c.fail(`tensor "${t.name}" (${t.nbytes} bytes at offset ${offset}) runs past the end of the file (${c.size} bytes)`);
    }
  }
  // Overlaps, in data order. Empty tensors own no bytes.
  const byOffset = infos.filter((t) => t.nbytes > 0).sort((a, b) => a.rel - b.rel);
  for (let i = 1; i < byOffset.length; i++) {
    const a = byOffset[i - 1]!, b = byOffset[i]!;
    const ao = dataOffset + a.rel, bo = dataOffset + b.rel;
    if (ao + a.nbytes > bo) c.fail(`tensors "${a.name}" and "${b.name}" overlap (bytes ${ao}-${ao + a.nbytes} and ${bo}-${bo + b.nbytes})`);
  }

  nameMetadata(metadata, path);
  return { version, alignment, metadata, infos, dataOffset };
}

/** The GgufFile of a parsed header, each tensor's data from `view` (a subarray of one mapping, or a window's). */
function finishFile(h: GgufHeader, path: string, view: (name: string, offset: number, nbytes: number) => Uint8Array): GgufFile {
  const tensors = new Map<string, GgufTensorInfo>();
  for (const t of h.infos) {
    const offset = h.dataOffset + t.rel;
    tensors.set(t.name, { name: t.name, dims: t.dims, type: t.type, typeName: ggmlTypeName(t.type), offset, nbytes: t.nbytes, data: view(t.name, offset, t.nbytes) });
  }
  return { path, version: h.version, alignment: h.alignment, metadata: h.metadata, tensors, dataOffset: h.dataOffset };
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** general.alignment if present (a u32 power of two), else 32. */
function alignmentOf(md: GgufMetadata, fail: (problem: string) => never): number {
  const e = md.get('general.alignment');
  if (!e) return GGUF_DEFAULT_ALIGNMENT;
  if (e.type !== 'u32') fail(`general.alignment must be a u32, got ${e.type}`);
  const a = e.value as number;
  if (a === 0 || (a & (a - 1)) !== 0) fail(`general.alignment ${a} is not a power of two`);
  return a;
}

// ---- tensors ---------------------------------------------------------------------------

/** ggml types that load as a slipstream Tensor. */
export const GGUF_LOADABLE_TYPES: readonly string[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_K', 'Q5_K', 'Q6_K', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'IQ4_NL', 'Q2_K', 'Q3_K', 'IQ4_XS'];

export interface GgufTensorOptions {
  /** Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL and the k-quants: requantize to q8_0 instead of running as stored. Other types are unaffected. */
  q8?: boolean;
}

// ggml types run as stored, and their dtypes
const STORED_QUANT: Partial<Record<number, DType>> = {
  [GGML_TYPE.Q4_0]: 'q4_0', [GGML_TYPE.Q4_1]: 'q4_1', [GGML_TYPE.Q5_0]: 'q5_0', [GGML_TYPE.Q5_1]: 'q5_1', [GGML_TYPE.IQ4_NL]: 'iq4_nl',
  [GGML_TYPE.Q4_K]: 'q4_k', [GGML_TYPE.Q5_K]: 'q5_k', [GGML_TYPE.Q6_K]: 'q6_k',
  [GGML_TYPE.Q2_K]: 'q2_k', [GGML_TYPE.Q3_K]: 'q3_k', [GGML_TYPE.IQ4_XS]: 'iq4_xs',
};

// Elements decoded per step when requantizing: bounds the f32 scratch buffer.
const REQUANT_CHUNK = 64 * QK_K;

/**
 * The tensor `name` as a slipstream Tensor, shape in row-major order (GGUF dims reversed).
 * F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS are
 * views of the mapped file (GGUF's blocks are our dtypes' blocks: the k-quants and IQ4_XS run as
 * stored with Q8_K activations,
 * Q4_0 / Q5_0 / IQ4_NL with Q8_0 and Q4_1 / Q5_1 with Q8_1 activations).
 * With `opts.q8`, the quantized types other than Q8_0 are requantized to q8_0.
 */
export function ggufTensor(file: GgufFile, name: string, opts: GgufTensorOptions = {}): Tensor {
  const t = file.tensors.get(name);
  if (!t) throw new FormatError(file.path, `no tensor named "${name}"`);
  const shape = t.dims.length ? ggufDimsToShape(t.dims) : [1];
  const n = shape.reduce((a, b) => a * b, 1);
  switch (t.type) {
    case GGML_TYPE.F32:
      // f32 views must be 4-byte aligned; only a file with alignment < 4 can break that
      return new Tensor('f32', shape, t.data.byteOffset % 4 === 0 ? t.data : t.data.slice());
    case GGML_TYPE.F16:
      return new Tensor('f16', shape, t.data);
    case GGML_TYPE.BF16:
      return new Tensor('bf16', shape, t.data);
    case GGML_TYPE.Q8_0:
      return new Tensor('q8_0', shape, t.data);
    case GGML_TYPE.Q4_0:
    case GGML_TYPE.Q4_1:
    case GGML_TYPE.Q5_0:
    case GGML_TYPE.Q5_1:
    case GGML_TYPE.IQ4_NL:
    case GGML_TYPE.Q4_K:
    case GGML_TYPE.Q5_K:
    case GGML_TYPE.Q6_K:
    case GGML_TYPE.Q2_K:
    case GGML_TYPE.Q3_K:
    case GGML_TYPE.IQ4_XS: {
      const kq: DType = STORED_QUANT[t.type]!;
      if (!opts.q8) return new Tensor(kq, shape, t.data);
      const block = blockSize(kq), blockBytes = bytesFor(kq, block);
      const dequant = (src: Uint8Array, m: number, out: Float32Array): Float32Array => {
        out.set(decode(kq, src, m));
        return out;
      };
      // Decode a chunk of whole blocks at a time and requantize it: no full-size f32 copy.
      // encodeF32Into quantizes natively when the core is built: the same bytes as quantizeQ8_0,
      // a few times faster.
      const out = new Uint8Array((n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES);
      const scratch = new Float32Array(Math.min(n, REQUANT_CHUNK));
      for (let e = 0; e < n; e += REQUANT_CHUNK) {
        const m = Math.min(REQUANT_CHUNK, n - e);
        const src = t.data.subarray((e / block) * blockBytes, ((e + m) / block) * blockBytes);
        const f32 = dequant(src, m, scratch).subarray(0, m);
        const dst = out.subarray((e / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES, ((e + m) / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES);
        encodeF32Into(f32, dst, 'q8_0');
      }
      return new Tensor('q8_0', shape, out);
    }
    default:
      throw new FormatError(file.path, `tensor ${name} has type ${t.typeName}, which Slipstream cannot load; supported: ${GGUF_LOADABLE_TYPES.join(', ')}`);
  }
}

// ---- writing ---------------------------------------------------------------------------

export interface GgufWriteTensor {
  name: string;
  /** ggml type id (GGML_TYPE). */
  type: number;
  /** GGUF order: dims[0] = ne0, the innermost dimension. */
  dims: number[];
  /** The tensor's bytes, or a function producing them when the writer gets to it (one tensor in memory at a time). */
  data: Uint8Array | (() => Uint8Array);
}

export interface GgufWriteOptions {
  /** Data alignment; default general.alignment from the metadata, else 32. Written to the metadata when not 32. */
  alignment?: number;
  /** Called as bytes reach the file (header included). */
  onProgress?: (bytesDone: number, bytesTotal: number) => void;
}

/** Grows as bytes are appended; for the header (metadata + tensor infos). */
class ByteSink {
  buf = new Uint8Array(1 << 16);
  dv = new DataView(this.buf.buffer);
  len = 0;

  private room(n: number): number {
    if (this.len + n > this.buf.length) {
      let cap = this.buf.length * 2;
      while (cap < this.len + n) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.dv = new DataView(next.buffer);
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  // room() may replace the buffer, so it runs before this.dv is read
  u8(v: number): void { const at = this.room(1); this.dv.setUint8(at, v); }
  i8(v: number): void { const at = this.room(1); this.dv.setInt8(at, v); }
  u16(v: number): void { const at = this.room(2); this.dv.setUint16(at, v, true); }
  i16(v: number): void { const at = this.room(2); this.dv.setInt16(at, v, true); }
  u32(v: number): void { const at = this.room(4); this.dv.setUint32(at, v, true); }
  i32(v: number): void { const at = this.room(4); this.dv.setInt32(at, v, true); }
  f32(v: number): void { const at = this.room(4); this.dv.setFloat32(at, v, true); }
  f64(v: number): void { const at = this.room(8); this.dv.setFloat64(at, v, true); }
  u64(v: bigint): void { const at = this.room(8); this.dv.setBigUint64(at, v, true); }
  i64(v: bigint): void { const at = this.room(8); this.dv.setBigInt64(at, v, true); }

  string(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(BigInt(b.length));
    const at = this.room(b.length);
    this.buf.set(b, at);
  }

  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

const INT_RANGE: Partial<Record<GgufScalarType, [bigint, bigint]>> = {
  u8: [0n, 255n], i8: [-128n, 127n], u16: [0n, 65535n], i16: [-32768n, 32767n],
  u32: [0n, 4294967295n], i32: [-2147483648n, 2147483647n],
  u64: [0n, 2n ** 64n - 1n], i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** Checks a value against its declared type; returns a problem or null. */
function checkScalar(type: GgufScalarType, v: GgufValue): string | null {
  switch (type) {
    case 'string':
      return typeof v === 'string' ? null : `expected a string, got ${typeof v}`;
    case 'bool':
      return typeof v === 'boolean' ? null : `expected a boolean, got ${typeof v}`;
    case 'f32':
    case 'f64':
      return typeof v === 'number' ? null : `expected a number, got ${typeof v}`;
    default: {
      const [lo, hi] = INT_RANGE[type]!;
      if (typeof v === 'number' && !Number.isSafeInteger(v)) return `${v} is not a safe integer (use a bigint for 64-bit values)`;
      if (typeof v !== 'number' && typeof v !== 'bigint') return `expected an integer, got ${typeof v}`;
      const b = BigInt(v);
      return b < lo || b > hi ? `${v} is out of range for ${type}` : null;
    }
  }
}

function writeScalar(s: ByteSink, type: GgufScalarType, v: GgufValue): void {
  switch (type) {
    case 'u8': return s.u8(v as number);
    case 'i8': return s.i8(v as number);
    case 'bool': return s.u8(v ? 1 : 0);
    case 'u16': return s.u16(v as number);
    case 'i16': return s.i16(v as number);
    case 'u32': return s.u32(v as number);
    case 'i32': return s.i32(v as number);
    case 'f32': return s.f32(v as number);
    case 'f64': return s.f64(v as number);
    case 'u64': return s.u64(BigInt(v as number | bigint));
    case 'i64': return s.i64(BigInt(v as number | bigint));
    case 'string': return s.string(v as string);
  }
}

const isScalarType = (t: unknown): t is GgufScalarType => typeof t === 'string' && t in VALUE_SIZE;

function writeEntry(s: ByteSink, key: string, e: GgufMetaEntry, fail: (p: string) => never): void {
  s.string(key);
  if (e.type === 'array') {
    if (!isScalarType(e.itemType)) fail(`metadata "${key}": array item type ${String(e.itemType)} is not supported (nested arrays are not)`);
    if (!Array.isArray(e.value)) fail(`metadata "${key}": declared an array, value is ${typeof e.value}`);
    s.u32(GGUF_VALUE_TYPE.array);
    s.u32(GGUF_VALUE_TYPE[e.itemType]);
    s.u64(BigInt(e.value.length));
    for (let i = 0; i < e.value.length; i++) {
      const p = checkScalar(e.itemType, e.value[i]!);
      if (p) fail(`metadata "${key}" item ${i}: ${p}`);
      writeScalar(s, e.itemType, e.value[i]!);
    }
    return;
  }
  if (!isScalarType(e.type)) fail(`metadata "${key}": unknown value type ${String(e.type)}`);
  const p = checkScalar(e.type, e.value);
  if (p) fail(`metadata "${key}": ${p}`);
  s.u32(GGUF_VALUE_TYPE[e.type]);
  writeScalar(s, e.type, e.value);
}

// Bytes per writeSync: large enough to stream at disk speed, small enough for smooth progress.
const WRITE_CHUNK = 16 << 20;

/**
 * Writes a GGUF v3 file atomically: everything goes to a temporary file in the same
 * folder, which is fsynced and renamed over `path` only when complete, so a failure (a bad
 * tensor, a full disk) never leaves a half-written model behind.
 */
export function writeGguf(path: string, metadata: GgufMetadata, tensors: GgufWriteTensor[], opts: GgufWriteOptions = {}): void {
  const fail = (p: string): never => {
    throw new FormatError(path, p);
  };

  // Alignment: the metadata's value wins; opts may only agree with it.
  const md: GgufMetadata = new Map(metadata);
  const mdAlign = md.get('general.alignment');
  let alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (mdAlign) {
    const a = alignmentOf(md, fail);
    if (opts.alignment !== undefined && opts.alignment !== a) fail(`alignment ${opts.alignment} disagrees with general.alignment ${a} in the metadata`);
    alignment = a;
  } else {
    if (!Number.isInteger(alignment) || alignment <= 0 || alignment > 0x80000000 || (alignment & (alignment - 1)) !== 0) {
      fail(`alignment ${alignment} is not a power of two`);
    }
    if (alignment !== GGUF_DEFAULT_ALIGNMENT) md.set('general.alignment', { type: 'u32', value: alignment });
  }

  // Header: metadata, then tensor infos with offsets laid out in order.
  const s = new ByteSink();
  for (const ch of GGUF_MAGIC) s.u8(ch.charCodeAt(0));
  s.u32(GGUF_VERSION);
  s.u64(BigInt(tensors.length));
  s.u64(BigInt(md.size));
  for (const [key, e] of md) {
    if (typeof key !== 'string') fail(`metadata key ${String(key)} is not a string`);
    writeEntry(s, key, e, fail);
  }
  const names = new Set<string>();
  const layout: { rel: number; nbytes: number }[] = [];
  let rel = 0;
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name === '') fail('tensor with an empty name');
    if (Buffer.byteLength(t.name, 'utf8') > GGUF_MAX_NAME_BYTES) fail(`tensor name "${t.name}" is longer than ${GGUF_MAX_NAME_BYTES} bytes (llama.cpp's limit)`);
    if (names.has(t.name)) fail(`tensor "${t.name}" appears twice`);
    names.add(t.name);
    if (!Array.isArray(t.dims) || t.dims.length < 1 || t.dims.length > GGUF_MAX_DIMS) fail(`tensor "${t.name}": dims must have 1 to ${GGUF_MAX_DIMS} entries`);
    if (!GGML_TYPES.has(t.type)) fail(`tensor "${t.name}": unknown ggml type id ${t.type}`);
    let nbytes = 0;
    try {
      nbytes = ggmlNbytes(t.type, t.dims);
    } catch (e) {
      fail(`tensor "${t.name}" [${t.dims.join(', ')}] ${ggmlTypeName(t.type)}: ${(e as Error).message}`);
    }
    if (t.data instanceof Uint8Array && t.data.byteLength !== nbytes) {
      fail(`tensor "${t.name}" [${t.dims.join(', ')}] ${ggmlTypeName(t.type)} needs ${nbytes} bytes, data has ${t.data.byteLength}`);
    } else if (!(t.data instanceof Uint8Array) && typeof t.data !== 'function') {
      fail(`tensor "${t.name}": data must be a Uint8Array or a function returning one`);
    }
    s.string(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(BigInt(d));
    s.u32(t.type);
    s.u64(BigInt(rel));
    layout.push({ rel, nbytes });
    rel = alignUp(rel + nbytes, alignment);
  }
  const header = s.bytes();
  const dataOffset = alignUp(header.length, alignment);
  const total = dataOffset + rel;

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | null = null;
  let done = 0;
  const zeros = new Uint8Array(Math.max(alignment, 64));
  const put = (b: Uint8Array): void => {
    for (let o = 0; o < b.byteLength; ) {
      o += writeSync(fd!, b, o, Math.min(WRITE_CHUNK, b.byteLength - o));
      opts.onProgress?.(done + o, total);
    }
    done += b.byteLength;
  };
  const pad = (to: number): void => {
    while (done < to) put(zeros.subarray(0, Math.min(zeros.length, to - done)));
  };
  try {
    fd = openSync(tmp, 'w', 0o644);
    put(header);
    pad(dataOffset);
    tensors.forEach((t, i) => {
      const data = typeof t.data === 'function' ? t.data() : t.data;
      const { nbytes } = layout[i]!;
      if (!(data instanceof Uint8Array) || data.byteLength !== nbytes) {
        fail(`tensor "${t.name}" [${t.dims.join(', ')}] ${ggmlTypeName(t.type)} needs ${nbytes} bytes, its data function gave ${data instanceof Uint8Array ? data.byteLength : typeof data}`);
      }
      put(data);
      pad(dataOffset + alignUp(layout[i]!.rel + nbytes, alignment));
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) {
      try { closeSync(fd); } catch { /* already failing */ }
    }
    try { unlinkSync(tmp); } catch { /* never created */ }
    if (e instanceof FormatError) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code) throw new FormatError(path, `cannot write the file (${err.message})`);
    throw e;
  }
  // Make the rename itself durable; not every platform lets a folder be fsynced.
  try {
    const dfd = openSync(dirname(path), 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch { /* best effort */ }
}

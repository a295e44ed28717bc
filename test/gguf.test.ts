// GGUF: reader, writer, metadata types, tensor loading, and the Q4_0/Q4_K formats.
//
// Bytes built by hand in this file (the Bytes helper, not the writer) pin the format: a
// minimal file parsed field by field, bad files each naming their problem, and 4-bit blocks
// whose decoded values are worked out by hand.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { dequantizeLegacy } from '../src/tensor/legacyq.ts';
import { FormatError } from '../src/formats/errors.ts';
import {
  dequantizeQ4_0,
  dequantizeQ4_K,
  dequantizeQ6_K,
  GGML_TYPE,
  GGML_TYPE_NAME,
  GGML_TYPES,
  ggmlNbytes,
  quantizeQ4_0,
  quantizeQ4_K,
} from '../src/formats/ggml-quants.ts';
import {
  getMeta,
  ggufTensor,
  metaArray,
  metaBool,
  metaNumber,
  metaNumberArray,
  metaString,
  metaStringArray,
  parseGguf,
  readGguf,
  writeGguf,
  type GgufWriteTensor,
} from '../src/formats/gguf.ts';
import { meta, type GgufMetadata } from '../src/formats/gguf-types.ts';
import { dequantizeQ8_0, encode, f16BitsToF32, f32ToF16Bits, quantizeQ8_0 } from '../src/tensor/dtype.ts';

const dir = mkdtempSync(join(tmpdir(), 'slipstream-gguf-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name = 'm') => join(dir, `${name}-${fileNo++}.gguf`);

/** `fn` throws a FormatError whose message matches every pattern. */
function raises(fn: () => unknown, ...res: RegExp[]): FormatError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === undefined) assert.fail(`expected a FormatError matching ${res.join(', ')}, but the call returned`);
  assert.ok(err instanceof FormatError, `expected a FormatError, got ${String(err)}`);
  for (const re of res) assert.match(err.message, re);
  return err;
}

/** Seeded uniform numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

/** Little-endian byte assembly, independent of the writer under test. */
class Bytes {
  a: number[] = [];
  u8(v: number): this {
    this.a.push(v & 255);
    return this;
  }
  u32(v: number): this {
    for (let i = 0; i < 4; i++) this.a.push((v >>> (8 * i)) & 255);
    return this;
  }
  u64(v: bigint | number): this {
    let b = BigInt.asUintN(64, BigInt(v));
    for (let i = 0; i < 8; i++, b >>= 8n) this.a.push(Number(b & 255n));
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.a.push(...b);
    return this;
  }
  raw(b: ArrayLike<number>): this {
    for (let i = 0; i < b.length; i++) this.a.push(b[i]!);
    return this;
  }
  pad(align: number): this {
    while (this.a.length % align) this.a.push(0);
    return this;
  }
  /** GGUF header: magic, version, tensor count, kv count. */
  head(nTensors: number | bigint, nKv: number | bigint, version = 3): this {
    return this.raw(Buffer.from('GGUF')).u32(version).u64(nTensors).u64(nKv);
  }
  /** A tensor info record. */
  info(name: string, dims: (number | bigint)[], type: number, offset: number | bigint): this {
    this.str(name).u32(dims.length);
    for (const d of dims) this.u64(d);
    return this.u32(type).u64(offset);
  }
  get length(): number {
    return this.a.length;
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.a);
  }
}

const f32Bytes = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

describe('ggml type table', () => {
  it('ids, names and block geometry match ggml.h / ggml-common.h', () => {
    const ids: Record<string, number> = {
      F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q5_0: 6, Q5_1: 7, Q8_0: 8, Q8_1: 9, Q2_K: 10, Q3_K: 11, Q4_K: 12, Q5_K: 13,
      Q6_K: 14, Q8_K: 15, IQ2_XXS: 16, IQ2_XS: 17, IQ3_XXS: 18, IQ1_S: 19, IQ4_NL: 20, IQ3_S: 21, IQ2_S: 22, IQ4_XS: 23,
      I8: 24, I16: 25, I32: 26, I64: 27, F64: 28, IQ1_M: 29, BF16: 30,
    };
    for (const [name, id] of Object.entries(ids)) {
      assert.equal(GGML_TYPE[name as keyof typeof GGML_TYPE], id, name);
      assert.equal(GGML_TYPE_NAME[id], name);
      assert.equal(GGML_TYPES.get(id)!.name, name);
    }
    assert.equal(GGML_TYPE_NAME[4], undefined); // Q4_2, removed
    const geo = (id: number) => [GGML_TYPES.get(id)!.blockSize, GGML_TYPES.get(id)!.blockBytes];
    assert.deepEqual(geo(GGML_TYPE.F32), [1, 4]);
    assert.deepEqual(geo(GGML_TYPE.BF16), [1, 2]);
    assert.deepEqual(geo(GGML_TYPE.Q4_0), [32, 18]);
    assert.deepEqual(geo(GGML_TYPE.Q8_0), [32, 34]);
    assert.deepEqual(geo(GGML_TYPE.Q4_K), [256, 144]);
    assert.deepEqual(geo(GGML_TYPE.Q5_K), [256, 176]);
    assert.deepEqual(geo(GGML_TYPE.Q6_K), [256, 210]);
    assert.deepEqual(geo(GGML_TYPE.Q8_K), [256, 292]);
    assert.deepEqual(geo(GGML_TYPE.IQ4_XS), [256, 136]);
    assert.deepEqual(geo(GGML_TYPE.IQ1_M), [256, 56]);
    assert.equal(ggmlNbytes(GGML_TYPE.Q6_K, [512, 3]), 2 * 3 * 210);
    assert.throws(() => ggmlNbytes(GGML_TYPE.Q4_K, [128, 2]), /multiple of 256/);
  });
});

describe('hand-assembled GGUF', () => {
  // Two tensors: "a" F32 with GGUF dims [3, 2] (ne0 = 3) and "b" F16 [4] at data offset 32.
  function minimal(version = 3, withTensors = true): Uint8Array {
    const b = new Bytes().head(withTensors ? 2 : 0, 3, version);
    b.str('general.architecture').u32(8).str('llama');
    b.str('llama.block_count').u32(4).u32(2);
    b.str('tokenizer.ggml.tokens').u32(9).u32(8).u64(3).str('<s>').str('é').str('');
    if (!withTensors) return b.bytes();
    b.info('a', [3, 2], GGML_TYPE.F32, 0);
    b.info('b', [4], GGML_TYPE.F16, 32);
    b.pad(32);
    b.raw(f32Bytes([0, 1, 2, 3, 4, 5])).pad(32);
    b.raw(encode('f16', [1, -2, 0.5, 65504]));
    return b.bytes();
  }

  it('parses every field', () => {
    const bytes = minimal();
    const path = tmp('hand');
    writeFileSync(path, bytes);
    const f = readGguf(path);
    assert.equal(f.path, path);
    assert.equal(f.version, 3);
    assert.equal(f.alignment, 32);
    const infoEnd = bytes.length - 32 - 8;
    assert.equal(f.dataOffset, infoEnd);
    assert.equal(f.dataOffset % 32, 0);
    assert.deepEqual([...f.metadata.keys()], ['general.architecture', 'llama.block_count', 'tokenizer.ggml.tokens']);
    assert.deepEqual(f.metadata.get('general.architecture'), { type: 'string', value: 'llama' });
    assert.deepEqual(f.metadata.get('llama.block_count'), { type: 'u32', value: 2 });
    assert.deepEqual(f.metadata.get('tokenizer.ggml.tokens'), { type: 'array', itemType: 'string', value: ['<s>', 'é', ''] });

    const a = f.tensors.get('a')!;
    assert.deepEqual([a.name, a.dims, a.type, a.typeName, a.offset, a.nbytes], ['a', [3, 2], 0, 'F32', f.dataOffset, 24]);
    const b = f.tensors.get('b')!;
    assert.deepEqual([b.dims, b.typeName, b.offset, b.nbytes], [[4], 'F16', f.dataOffset + 32, 8]);

    // GGUF [ne0=3, ne1=2] is row-major [2, 3]: element (r, c) = data[r * 3 + c]
    const ta = ggufTensor(f, 'a');
    assert.equal(ta.dtype, 'f32');
    assert.deepEqual(ta.shape, [2, 3]);
    assert.deepEqual([...ta.toF32()], [0, 1, 2, 3, 4, 5]);
    const tb = ggufTensor(f, 'b');
    assert.deepEqual([tb.dtype, tb.shape], ['f16', [4]]);
    assert.deepEqual([...tb.toF32()], [1, -2, 0.5, 65504]);
    // zero-copy: the tensor views the mapping, at the tensor's offset
    assert.equal(ta.data.buffer, tb.data.buffer);
    assert.equal(tb.data.byteOffset - ta.data.byteOffset, 32);
  });

  it('accepts version 2, whose layout is the same', () => {
    const f = parseGguf(minimal(2), 'v2.gguf');
    assert.equal(f.version, 2);
    assert.deepEqual([...ggufTensor(f, 'a').toF32()], [0, 1, 2, 3, 4, 5]);
  });

  it('a file cut at any byte is a FormatError naming the problem, never a RangeError', () => {
    const bytes = minimal();
    for (let n = 0; n < bytes.length; n++) {
      raises(() => parseGguf(bytes.subarray(0, n), 'cut.gguf'), /^cut\.gguf: /, /truncated|too short|past the end|bad string length|cannot be right/);
    }
    const path = tmp('cut');
    writeFileSync(path, bytes.subarray(0, 30));
    raises(() => readGguf(path), new RegExp(`^${path}: tensor count 2 at offset 8 cannot be right: .*need more than the 14 bytes left .*truncated or corrupt`));
    raises(() => parseGguf(new Bytes().head(0, 1).bytes().subarray(0, 20), 'x'), /^x: truncated: reading the metadata count needs 8 bytes at offset 16, but the file ends at 20$/);
    const md = minimal(3, false); // same metadata, no tensors: the counts check passes
    const one = new Bytes().head(0, 1).str('general.architecture').u32(8).str('llama').bytes();
    raises(() => parseGguf(one.subarray(0, 60), 'x'), /^x: truncated: reading metadata key "general\.architecture" needs 8 bytes at offset 56/);
    raises(() => parseGguf(md.subarray(0, 175), 'x'), /^x: truncated: reading metadata key "tokenizer\.ggml\.tokens", item 2 needs 8 bytes at offset 168, but the file ends at 175$/);
    const strs = new Bytes().head(0, 1).str('k').u32(9).u32(8).u64(2).str('ab').u64(5).raw(Buffer.from('xyz')).bytes();
    raises(() => parseGguf(strs, 'x'), /^x: bad string length 5 at offset 59 \(metadata key "k", item 1\): only 3 bytes left in the file$/);
  });

  it('random corruption gives a file or a FormatError, nothing else', () => {
    const good = minimal();
    const r = rng(7);
    for (let i = 0; i < 400; i++) {
      const b = Uint8Array.from(good);
      for (let k = 0; k < 3; k++) b[Math.floor(((r() + 1) / 2) * b.length)] = Math.floor(((r() + 1) / 2) * 256);
      try {
        parseGguf(b, 'fuzz.gguf');
      } catch (e) {
        assert.ok(e instanceof FormatError, `mutation ${i}: ${String(e)}`);
      }
    }
  });
});

describe('bad files', () => {
  const parse = (b: Bytes) => () => parseGguf(b.bytes(), 'bad.gguf');
  /** One F32 tensor [8] at `offset` with 32 bytes of data. */
  const oneTensor = (type: number, offset: number | bigint, dims: (number | bigint)[] = [8]) =>
    new Bytes().head(1, 0).info('t', dims, type, offset).pad(32).raw(new Uint8Array(32));

  it('wrong magic, unsupported versions, big-endian', () => {
    raises(() => parseGguf(Buffer.from('GGML\x03\0\0\0'), 'bad.gguf'), /^bad\.gguf: not a GGUF file \(magic "GGML", expected "GGUF"\)/);
    raises(() => parseGguf(Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0), 'x'), /magic 89 50 4e 47/);
    raises(parse(new Bytes().head(0, 0, 1)), /GGUF version 1 is not supported \(only versions 2 and 3\); re-convert/);
    raises(parse(new Bytes().head(0, 0, 4)), /GGUF version 4 is not supported/);
    raises(parse(new Bytes().head(0, 0, 0x03000000)), /big-endian GGUF/);
    raises(() => parseGguf(new Uint8Array(0), 'empty.gguf'), /empty\.gguf: not a GGUF file: 0 bytes/);
  });

  it('absurd counts and lengths', () => {
    raises(parse(new Bytes().head(2n ** 40n, 0)), /tensor count 1099511627776 at offset 8 cannot be right/);
    raises(parse(new Bytes().head(0, 2n ** 64n - 1n)), /metadata count 18446744073709551615 .* cannot be right/);
    raises(parse(new Bytes().head(0, 1).str('k').u32(9).u32(0).u64(2n ** 62n)), /array length 4611686018427387904 at offset 41 cannot be right: .*\(metadata key "k"; truncated or corrupt file\)/);
    raises(parse(new Bytes().head(0, 1).str('k').u32(8).u64(2n ** 63n).raw([1, 2, 3])), /bad string length 9223372036854775808 at offset 37 \(metadata key "k"\): only 3 bytes left/);
    raises(parse(new Bytes().head(0, 1).u64(1000).raw(new Array(10).fill(0))), /bad string length 1000 at offset 24 \(metadata entry 0\): only 10 bytes left/);
    raises(parse(oneTensor(GGML_TYPE.F32, 0, [2n ** 60n])), /dimension 1152921504606846976 is absurdly large \(tensor "t"\)/);
    raises(parse(oneTensor(GGML_TYPE.F32, 0, [2 ** 30, 2 ** 30, 2 ** 30])), /tensor "t" \[1073741824, 1073741824, 1073741824\] F32: .*more than 2\^53 elements/);
    raises(parse(oneTensor(GGML_TYPE.F32, 0, [1, 1, 1, 1, 1])), /tensor "t" has 5 dimensions; GGUF allows at most 4/);
  });

  it('bad metadata values', () => {
    raises(parse(new Bytes().head(0, 1).str('k').u32(13).u8(0)), /unknown value type 13 at offset 33 \(metadata key "k"\)/);
    raises(parse(new Bytes().head(0, 1).str('k').u32(9).u32(9).u64(0)), /metadata key "k" is an array of arrays, which is not supported/);
    raises(parse(new Bytes().head(0, 1).str('k').u32(9).u32(77).u64(0)), /unknown value type 77/);
    raises(parse(new Bytes().head(0, 2).str('k').u32(0).u8(1).str('k').u32(0).u8(2)), /metadata key "k" appears twice/);
    raises(parse(new Bytes().head(0, 1).str('general.alignment').u32(4).u32(48)), /general\.alignment 48 is not a power of two/);
    raises(parse(new Bytes().head(0, 1).str('general.alignment').u32(8).str('32')), /general\.alignment must be a u32, got string/);
  });

  it('tensor offsets: past the end, misaligned, overlapping', () => {
    raises(parse(oneTensor(GGML_TYPE.F32, 1024)), /^bad\.gguf: tensor "t" \(32 bytes at offset \d+\) runs past the end of the file/);
    raises(parse(oneTensor(GGML_TYPE.F32, 2n ** 62n)), /tensor offset 4611686018427387904 is absurdly large/);
    raises(parse(oneTensor(GGML_TYPE.F32, 8)), /tensor "t" offset 8 is not a multiple of the alignment 32/);
    const twice = new Bytes().head(2, 0).info('a', [16], GGML_TYPE.F32, 0).info('b', [8], GGML_TYPE.F32, 32).pad(32).raw(new Uint8Array(96));
    raises(parse(twice), /tensors "a" and "b" overlap/);
    const dup = new Bytes().head(2, 0).info('a', [8], GGML_TYPE.F32, 0).info('a', [8], GGML_TYPE.F32, 32).pad(32).raw(new Uint8Array(64));
    raises(parse(dup), /tensor "a" appears twice/);
  });

  it('tensor types: unknown id, ne0 not whole blocks, unsupported for execution', () => {
    raises(parse(oneTensor(99, 0)), /tensor "t" has unknown ggml type id 99/);
    raises(parse(oneTensor(4, 0)), /unknown ggml type id 4/);
    raises(parse(oneTensor(GGML_TYPE.Q4_0, 0, [48])), /tensor "t" \[48\] Q4_0: Q4_0 needs ne0 \(dims\[0\]\) to be a multiple of 32, got 48/);
    // IQ2_XXS parses (its size is known) but cannot be loaded; Q3_K (loadable) is a view of the file
    const b = new Bytes().head(2, 0).info('blk.0.attn_q.weight', [256, 2], GGML_TYPE.IQ2_XXS, 0).info('blk.0.attn_k.weight', [256, 2], GGML_TYPE.Q3_K, 160)
      .pad(32).raw(new Uint8Array(160 + 2 * 110));
    const path = tmp('iq2xxs');
    writeFileSync(path, b.bytes());
    const f = readGguf(path);
    assert.equal(f.tensors.get('blk.0.attn_q.weight')!.nbytes, 132);
    const err = raises(() => ggufTensor(f, 'blk.0.attn_q.weight'));
    assert.equal(err.message, `${path}: tensor blk.0.attn_q.weight has type IQ2_XXS, which Slipstream cannot load; supported: F32, F16, BF16, Q8_0, Q4_K, Q5_K, Q6_K, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, IQ4_XS`);
    const q3 = ggufTensor(f, 'blk.0.attn_k.weight');
    assert.equal(q3.dtype, 'q3_k');
    assert.deepEqual(q3.shape, [2, 256]);
    assert.equal(q3.data.buffer, f.tensors.get('blk.0.attn_k.weight')!.data.buffer, 'a view of the mapping, not a copy');
    raises(() => ggufTensor(f, 'nope'), /no tensor named "nope"/);
  });

  it('a missing file is a FormatError naming it', () => {
    raises(() => readGguf(join(dir, 'missing.gguf')), /missing\.gguf: cannot read the file/);
    raises(() => readGguf(dir), /cannot read the file \(not a regular file\)/);
  });
});

describe('metadata round trip', () => {
  const md: GgufMetadata = new Map([
    ['u8', { type: 'u8', value: 255 }],
    ['i8', { type: 'i8', value: -128 }],
    ['u16', { type: 'u16', value: 65535 }],
    ['i16', { type: 'i16', value: -32768 }],
    ['u32', { type: 'u32', value: 4294967295 }],
    ['i32', { type: 'i32', value: -2147483648 }],
    ['u64.small', { type: 'u64', value: 5 }],
    ['u64.safe', { type: 'u64', value: Number.MAX_SAFE_INTEGER }],
    ['u64.big', { type: 'u64', value: 2n ** 64n - 1n }],
    ['u64.2^53', { type: 'u64', value: 2n ** 53n }],
    ['i64.min', { type: 'i64', value: -(2n ** 63n) }],
    ['i64.neg', { type: 'i64', value: -5 }],
    ['f32', { type: 'f32', value: Math.fround(0.1) }],
    ['f32.inf', { type: 'f32', value: -Infinity }],
    ['f64', { type: 'f64', value: 0.1 }],
    ['bool.t', { type: 'bool', value: true }],
    ['bool.f', { type: 'bool', value: false }],
    ['string', meta.str('héllo wörld 🚀 日本語')],
    ['string.empty', meta.str('')],
    ['ключ.utf8', meta.str('key names are UTF-8 too')],
    ['arr.u8', meta.arr('u8', [0, 1, 255])],
    ['arr.i8', meta.arr('i8', [-128, 127])],
    ['arr.u16', meta.arr('u16', [65535])],
    ['arr.i16', meta.arr('i16', [-1, 2])],
    ['arr.u32', meta.arr('u32', [1, 4294967295])],
    ['arr.i32', meta.arr('i32', [-7, 0, 7])],
    ['arr.u64', meta.arr('u64', [1, 2n ** 60n, 2n ** 64n - 1n])],
    ['arr.i64', meta.arr('i64', [-(2n ** 63n), -1, 2n ** 63n - 1n])],
    ['arr.f32', meta.arr('f32', [Math.fround(-1.5), Math.fround(3.3)])],
    ['arr.f64', meta.arr('f64', [Math.PI, -0.25])],
    ['arr.bool', meta.arr('bool', [true, false, true])],
    ['arr.string', meta.arr('string', ['a', '', 'Ġthe', '▁日本', '\n'])],
    ['arr.empty.string', meta.arr('string', [])],
    ['arr.empty.i32', meta.arr('i32', [])],
  ]);

  it('every value type and array type reads back identical, types preserved', () => {
    const path = tmp('meta');
    writeGguf(path, md, []);
    const f = readGguf(path);
    assert.deepEqual(f.metadata, md);
    assert.equal(typeof f.metadata.get('u64.big')!.value, 'bigint');
    assert.equal(typeof f.metadata.get('u64.safe')!.value, 'number');
    // metadata read back and written again gives the same bytes
    const again = tmp('meta');
    writeGguf(again, f.metadata, []);
    assert.deepEqual(readFileSync(again), readFileSync(path));
  });

  it('a large vocabulary (header well over 64 KiB) round trips', () => {
    const tokens = Array.from({ length: 20000 }, (_, i) => (i % 3 ? `▁tok${i}` : `<0x${(i & 255).toString(16)}>`));
    const big: GgufMetadata = new Map([
      ['tokenizer.ggml.tokens', meta.arr('string', tokens)],
      ['tokenizer.ggml.scores', meta.arr('f32', tokens.map((_, i) => Math.fround(-i / 7)))],
      ['tokenizer.ggml.token_type', meta.arr('i32', tokens.map((_, i) => i % 6))],
    ]);
    const path = tmp('vocab');
    writeGguf(path, big, [{ name: 'w', type: GGML_TYPE.F32, dims: [2], data: f32Bytes([1, 2]) }]);
    const f = readGguf(path);
    assert.ok(f.dataOffset > 300_000);
    assert.deepEqual(f.metadata, big);
    assert.deepEqual([...ggufTensor(f, 'w').toF32()], [1, 2]);
  });

  it('the writer checks each value against its declared type, naming the key', () => {
    const bad = (e: GgufMetadata) => () => writeGguf(tmp('badmeta'), e, []);
    raises(bad(new Map([['k', { type: 'u8', value: 256 }]])), /metadata "k": 256 is out of range for u8/);
    raises(bad(new Map([['k', { type: 'u64', value: -1 }]])), /-1 is out of range for u64/);
    raises(bad(new Map([['k', { type: 'u64', value: 2 ** 60 }]])), /is not a safe integer \(use a bigint/);
    raises(bad(new Map([['k', { type: 'i32', value: 1.5 }]])), /1\.5 is not a safe integer/);
    raises(bad(new Map([['k', { type: 'string', value: 3 }]])), /metadata "k": expected a string, got number/);
    raises(bad(new Map([['k', meta.arr('u32', [1, -2])]])), /metadata "k" item 1: -2 is out of range for u32/);
    raises(bad(new Map([['k', { type: 'array', itemType: 'array' as never, value: [[1]] }]])), /nested arrays are not/);
    raises(bad(new Map([['k', { type: 'u128' as never, value: 1 }]])), /unknown value type u128/);
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  });

  it('helpers: typed lookups with errors naming the key and the file', () => {
    const path = tmp('helpers');
    writeGguf(path, md, []);
    const f = readGguf(path);
    assert.equal(getMeta(f, 'i8'), -128);
    assert.equal(getMeta(f, 'missing'), undefined);
    assert.equal(metaNumber(f, 'u32'), 4294967295);
    assert.equal(metaNumber(f.metadata, 'f64'), 0.1);
    assert.equal(metaNumber(f, 'missing', 7), 7);
    assert.equal(metaString(f, 'string'), 'héllo wörld 🚀 日本語');
    assert.equal(metaString(f, 'missing', 'x'), 'x');
    assert.equal(metaBool(f, 'bool.t'), true);
    assert.deepEqual(metaArray(f, 'arr.bool'), [true, false, true]);
    assert.deepEqual(metaStringArray(f, 'arr.string'), ['a', '', 'Ġthe', '▁日本', '\n']);
    assert.deepEqual(metaNumberArray(f, 'arr.i32'), [-7, 0, 7]);
    assert.deepEqual(metaNumberArray(f, 'missing', []), []);
    const p = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    raises(() => metaNumber(f, 'llama.context_length'), new RegExp(`^${p}: metadata key "llama\\.context_length" is required but missing$`));
    raises(() => metaString(f.metadata, 'nope'), new RegExp(`^${p}: metadata key "nope" is required`));
    raises(() => metaNumber(f, 'string', 1), /metadata key "string" is a string, expected a number/);
    raises(() => metaNumber(f, 'u64.big'), /metadata key "u64\.big" value 18446744073709551615 does not fit a JS number exactly/);
    raises(() => metaString(f, 'u8'), /"u8" is a u8, expected a string/);
    raises(() => metaBool(f, 'u8'), /expected a bool/);
    raises(() => metaArray(f, 'u8'), /"u8" is a u8, expected an array/);
    raises(() => metaStringArray(f, 'arr.i32'), /"arr\.i32" is an array of i32, expected an array of string/);
    raises(() => metaNumberArray(f, 'arr.string'), /expected an array of numbers/);
    raises(() => metaNumberArray(f, 'arr.u64'), /item 1 \(1152921504606846976\) does not fit a JS number/);
    // a metadata map not read from a file still gets a clear message
    raises(() => metaNumber(new Map(), 'k'), /^GGUF metadata: metadata key "k" is required but missing/);
  });
});

describe('tensor round trip', () => {
  const r = rng(42);
  const values = (n: number) => Array.from({ length: n }, () => r() * 3);

  it('F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K with awkward shapes, alignments 32 and 64', () => {
    for (const alignment of [32, 64]) {
      const v7x3x2 = values(42);
      const v5x3 = values(15);
      const v64x3 = values(192);
      const v96x5 = values(480);
      const v512x3 = values(1536);
      const v32x2x3x2 = values(384);
      const tensors: GgufWriteTensor[] = [
        { name: 'f32.3d', type: GGML_TYPE.F32, dims: [7, 3, 2], data: f32Bytes(v7x3x2) },
        { name: 'f16', type: GGML_TYPE.F16, dims: [5, 3], data: encode('f16', v5x3) },
        { name: 'bf16.one', type: GGML_TYPE.BF16, dims: [1], data: encode('bf16', [1.5]) },
        { name: 'q8_0', type: GGML_TYPE.Q8_0, dims: [64, 3], data: () => quantizeQ8_0(v64x3) },
        { name: 'q4_0', type: GGML_TYPE.Q4_0, dims: [96, 5], data: quantizeQ4_0(v96x5) },
        { name: 'q4_1', type: GGML_TYPE.Q4_1, dims: [96, 5], data: () => encode('q4_1', v96x5) },
        { name: 'q5_0', type: GGML_TYPE.Q5_0, dims: [96, 5], data: () => encode('q5_0', v96x5) },
        { name: 'q5_1', type: GGML_TYPE.Q5_1, dims: [96, 5], data: () => encode('q5_1', v96x5) },
        { name: 'iq4_nl', type: GGML_TYPE.IQ4_NL, dims: [96, 5], data: () => encode('iq4_nl', v96x5) },
        { name: 'q4_k', type: GGML_TYPE.Q4_K, dims: [512, 3], data: () => quantizeQ4_K(v512x3) },
        { name: 'q6_k', type: GGML_TYPE.Q6_K, dims: [256, 2], data: () => encode('q6_k', v512x3.slice(0, 512)) },
        { name: 'f32.4d', type: GGML_TYPE.F32, dims: [32, 2, 3, 2], data: f32Bytes(v32x2x3x2) },
        { name: 'f32.empty', type: GGML_TYPE.F32, dims: [0, 4], data: new Uint8Array(0) },
      ];
      const path = tmp('tensors');
      const progress: [number, number][] = [];
      writeGguf(path, new Map([['general.name', meta.str('t')]]), tensors, { alignment, onProgress: (d, t) => progress.push([d, t]) });
      const file = readFileSync(path);
      const f = readGguf(path);
      assert.equal(f.alignment, alignment);
      assert.deepEqual(getMeta(f, 'general.alignment'), alignment === 32 ? undefined : alignment);
      assert.equal(f.dataOffset % alignment, 0);

      // progress: monotonic, ends at the file size
      assert.ok(progress.length > 1);
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i]![0] >= progress[i - 1]![0]);
      assert.deepEqual(progress.at(-1), [file.length, file.length]);

      for (const t of tensors) {
        const info = f.tensors.get(t.name)!;
        const want = typeof t.data === 'function' ? t.data() : t.data;
        assert.deepEqual(info.dims, t.dims);
        assert.equal(info.type, t.type);
        assert.equal((info.offset - f.dataOffset) % alignment, 0);
        assert.equal(info.nbytes, want.byteLength);
        assert.deepEqual(info.data, want, t.name);
      }
      assert.deepEqual([...f.tensors.keys()], tensors.map((t) => t.name));

      const t3 = ggufTensor(f, 'f32.3d');
      assert.deepEqual([t3.dtype, t3.shape], ['f32', [2, 3, 7]]);
      assert.deepEqual([...t3.toF32()], [...Float32Array.from(v7x3x2)]);
      assert.equal(t3.data.buffer, f.tensors.get('f32.3d')!.data.buffer); // a view, not a copy
      const t4 = ggufTensor(f, 'f32.4d');
      assert.deepEqual(t4.shape, [2, 3, 2, 32]);
      assert.deepEqual([...t4.toF32()], [...Float32Array.from(v32x2x3x2)]);
      assert.deepEqual(ggufTensor(f, 'f32.empty').shape, [4, 0]);
      const th = ggufTensor(f, 'f16');
      assert.deepEqual([th.dtype, th.shape], ['f16', [3, 5]]);
      assert.deepEqual([...th.toF32()], v5x3.map((x) => f16BitsToF32(f32ToF16Bits(x))));
      assert.deepEqual(th.data, encode('f16', v5x3));
      const tb = ggufTensor(f, 'bf16.one');
      assert.deepEqual([tb.dtype, tb.shape, [...tb.toF32()]], ['bf16', [1], [1.5]]);

      const tq8 = ggufTensor(f, 'q8_0');
      assert.deepEqual([tq8.dtype, tq8.shape], ['q8_0', [3, 64]]);
      assert.equal(tq8.data.buffer, f.tensors.get('q8_0')!.data.buffer); // GGUF Q8_0 is our q8_0: zero copy
      assert.deepEqual([...tq8.toF32()], [...dequantizeQ8_0(quantizeQ8_0(v64x3), 192)]);

      const legacy = (t: 'q4_1' | 'q5_0' | 'q5_1' | 'iq4_nl') => (src: Uint8Array, n: number) => dequantizeLegacy(t, src, n);
      for (const [name, dq, n, shape] of [
        ['q4_0', dequantizeQ4_0, 480, [5, 96]], ['q4_1', legacy('q4_1'), 480, [5, 96]], ['q5_0', legacy('q5_0'), 480, [5, 96]], ['q5_1', legacy('q5_1'), 480, [5, 96]], ['iq4_nl', legacy('iq4_nl'), 480, [5, 96]],
        ['q4_k', dequantizeQ4_K, 1536, [3, 512]], ['q6_k', dequantizeQ6_K, 512, [2, 256]],
      ] as const) {
        const ref = dq(f.tensors.get(name)!.data, n);
        const tf = ggufTensor(f, name);
        // Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q4_K and Q6_K run as stored: views of the mapping, zero copy
        assert.deepEqual([tf.dtype, tf.shape], [name, shape]);
        assert.equal(tf.data.buffer, f.tensors.get(name)!.data.buffer);
        assert.deepEqual(tf.toF32(), ref);
        const tq = ggufTensor(f, name, { q8: true });
        assert.deepEqual([tq.dtype, tq.shape], ['q8_0', shape]);
        assert.deepEqual(tq.data, quantizeQ8_0(ref)); // requantized from the decoded values
      }
    }
  });

  it('requantizes large Q4_K tensors chunk by chunk to the same bytes as all at once', () => {
    const v = values(256 * 70); // more than one 64-block chunk
    const path = tmp('big');
    writeGguf(path, new Map(), [{ name: 'w', type: GGML_TYPE.Q4_K, dims: [256 * 35, 2], data: quantizeQ4_K(v) }]);
    const f = readGguf(path);
    const q = ggufTensor(f, 'w', { q8: true });
    assert.deepEqual(q.data, quantizeQ8_0(dequantizeQ4_K(f.tensors.get('w')!.data, v.length)));
  });

  it('the writer rejects bad tensors and leaves no partial file', () => {
    const path = tmp('atomic');
    writeGguf(path, new Map([['general.name', meta.str('old')]]), []);
    const before = readFileSync(path);
    const ok = { name: 'a', type: GGML_TYPE.F32, dims: [2], data: f32Bytes([1, 2]) };
    raises(() => writeGguf(path, new Map(), [ok, { ...ok, name: 'b', data: () => { throw new FormatError('src.safetensors', 'boom'); } }]), /src\.safetensors: boom/);
    raises(() => writeGguf(path, new Map(), [ok, { ...ok, name: 'b', data: () => new Uint8Array(4) }]), /tensor "b" \[2\] F32 needs 8 bytes, its data function gave 4/);
    raises(() => writeGguf(path, new Map(), [{ ...ok, data: new Uint8Array(3) }]), /tensor "a" \[2\] F32 needs 8 bytes, data has 3/);
    raises(() => writeGguf(path, new Map(), [ok, ok]), /tensor "a" appears twice/);
    raises(() => writeGguf(path, new Map(), [{ ...ok, type: 99 }]), /unknown ggml type id 99/);
    raises(() => writeGguf(path, new Map(), [{ ...ok, type: GGML_TYPE.Q4_K, dims: [32] }]), /Q4_K needs ne0 \(dims\[0\]\) to be a multiple of 256/);
    raises(() => writeGguf(path, new Map(), [{ ...ok, dims: [1, 1, 1, 1, 2] }]), /dims must have 1 to 4 entries/);
    raises(() => writeGguf(path, new Map(), [{ ...ok, name: 'x'.repeat(64) }]), /longer than 63 bytes/);
    raises(() => writeGguf(path, new Map(), [], { alignment: 48 }), /alignment 48 is not a power of two/);
    raises(() => writeGguf(path, new Map([['general.alignment', meta.u32(64)]]), [], { alignment: 32 }), /disagrees with general\.alignment 64/);
    assert.deepEqual(readFileSync(path), before);
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
    raises(() => writeGguf(join(dir, 'no', 'such', 'dir.gguf'), new Map(), []), /dir\.gguf: cannot write the file/);
  });

  it('alignment 1: an f32 tensor at an odd address is copied so it can be read as floats', () => {
    const path = tmp('align1');
    writeGguf(path, new Map(), [{ name: 'h', type: GGML_TYPE.F16, dims: [1], data: encode('f16', [2]) }, { name: 'w', type: GGML_TYPE.F32, dims: [3], data: f32Bytes([1, 2, 3]) }], { alignment: 1 });
    const f = readGguf(path);
    assert.equal(f.alignment, 1);
    assert.equal(f.tensors.get('w')!.offset, f.dataOffset + 2);
    const w = ggufTensor(f, 'w');
    assert.equal(w.data.byteOffset % 4, 0);
    assert.deepEqual([...w.f32()], [1, 2, 3]);
  });

  it('general.alignment in the metadata sets the layout', () => {
    const path = tmp('align');
    writeGguf(path, new Map([['general.alignment', meta.u32(128)]]), [{ name: 'a', type: GGML_TYPE.F32, dims: [3], data: f32Bytes([1, 2, 3]) }, { name: 'b', type: GGML_TYPE.F32, dims: [1], data: f32Bytes([4]) }]);
    const f = readGguf(path);
    assert.equal(f.alignment, 128);
    assert.equal(f.dataOffset % 128, 0);
    assert.equal(f.tensors.get('b')!.offset, f.dataOffset + 128);
    assert.equal(readFileSync(path).length, f.dataOffset + 256); // each tensor padded, as llama.cpp writes
  });
});

describe('Q4_0', () => {
  it('decodes a hand-made block: low nibbles are elements 0-15, high nibbles 16-31, (q - 8) * d', () => {
    // block 0: d = 0.5 (f16 0x3800), byte j = j | (15 - j) << 4
    // block 1: d = -2 (f16 0xc000), every byte 0x0f: elements 0-15 have q = 15, 16-31 q = 0
    const b = new Bytes().u8(0x00).u8(0x38);
    for (let j = 0; j < 16; j++) b.u8(j | ((15 - j) << 4));
    b.u8(0x00).u8(0xc0).raw(new Array(16).fill(0x0f));
    const y = dequantizeQ4_0(b.bytes(), 64);
    const want = [
      -4, -3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, // (j - 8) * 0.5
      3.5, 3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5, -2, -2.5, -3, -3.5, -4, // (7 - j) * 0.5
      ...new Array(16).fill(-14), // (15 - 8) * -2
      ...new Array(16).fill(16), // (0 - 8) * -2
    ];
    assert.deepEqual([...y], want);
    assert.throws(() => dequantizeQ4_0(b.bytes(), 96), /dequantizeQ4_0: 36 bytes is too short for 96 elements/);
    assert.throws(() => dequantizeQ4_0(b.bytes(), 40), /not a multiple of 32/);
  });

  it('quantizes as ggml: the largest magnitude maps to q = 0 exactly; error within |d|', () => {
    // one block by hand: max |x| is -4 (d = 0.5, f16 0x3800), x = k/2 - 4 lands exactly on q = k
    const x = Array.from({ length: 32 }, (_, i) => (i % 16) / 2 - 4);
    const q = quantizeQ4_0(x);
    assert.deepEqual([...q.subarray(0, 2)], [0x00, 0x38]);
    for (let j = 0; j < 16; j++) assert.equal(q[2 + j], j | (j << 4));

    const r = rng(3);
    const blocks: number[][] = [
      Array.from({ length: 32 }, () => r()),
      Array.from({ length: 32 }, () => r() * 1e-3 + 5), // all positive
      Array.from({ length: 32 }, () => -Math.abs(r()) * 100), // all negative
      new Array(32).fill(0),
      Array.from({ length: 32 }, (_, i) => (i === 7 ? 50 : r())), // one outlier
    ];
    const src = blocks.flat();
    const y = dequantizeQ4_0(quantizeQ4_0(src), src.length);
    blocks.forEach((blk, b) => {
      const amax = Math.max(...blk.map(Math.abs));
      for (let i = 0; i < 32; i++) {
        const err = Math.abs(y[b * 32 + i]! - blk[i]!);
        assert.ok(err <= (amax / 8) * 1.001 + 1e-12, `block ${b} element ${i}: error ${err} > |d| = ${amax / 8}`);
      }
    });
    assert.ok(y.subarray(96, 128).every((v) => v === 0));
  });
});

describe('Q4_K', () => {
  // Sub-block scales and mins chosen to use all 6 bits, including the high bits stored apart.
  const sc = [1, 2, 3, 63, 17, 33, 48, 5];
  const mn = [0, 1, 62, 7, 16, 31, 47, 63];
  // The 12 packed bytes, worked out by hand from the layout (see ggml-quants.ts):
  //   b[0..3]  = sc[0..3] | (sc[4..7] >> 4) << 6   -> 1|1<<6, 2|2<<6, 3|3<<6, 63|0<<6
  //   b[4..7]  = mn[0..3] | (mn[4..7] >> 4) << 6   -> 0|1<<6, 1|1<<6, 62|2<<6, 7|3<<6
  //   b[8..11] = (sc[4..7] & 15) | (mn[4..7] & 15) << 4 -> 1|0, 1|15<<4, 0|15<<4, 5|15<<4
  const packed = [0x41, 0x82, 0xc3, 0x3f, 0x40, 0x41, 0xbe, 0xc7, 0x01, 0xf1, 0xf0, 0xf5];
  const qs = Array.from({ length: 128 }, (_, k) => (k * 7 + 3) & 255);
  // d = 0.5 (f16 0x3800), dmin = 0.25 (f16 0x3400)
  const block = new Bytes().u8(0x00).u8(0x38).u8(0x00).u8(0x34).raw(packed).raw(qs).bytes();

  it('decodes a hand-made super-block: d * sc * q - dmin * m, nibble chunks of 64', () => {
    const y = dequantizeQ4_K(block, 256);
    // spot values worked out by hand:
    //  e=0:   qs[0]=3 low 3, sub 0:                 0.5*1*3  - 0.25*0  = 1.5
    //  e=32:  qs[0]=3 high 0, sub 1:                0.5*2*0  - 0.25*1  = -0.25
    //  e=100: qs[36]=255 high 15, sub 3:            0.5*63*15 - 0.25*7 = 470.75
    //  e=130: qs[66]=209 (0xd1) low 1, sub 4:       0.5*17*1 - 0.25*16 = 4.5
    //  e=200: qs[104]=219 (0xdb) low 11, sub 6:     0.5*48*11 - 0.25*47 = 252.25
    //  e=255: qs[127]=124 (0x7c) high 7, sub 7:     0.5*5*7  - 0.25*63 = 1.75
    assert.equal(y[0], 1.5);
    assert.equal(y[32], -0.25);
    assert.equal(y[100], 470.75);
    assert.equal(y[130], 4.5);
    assert.equal(y[200], 252.25);
    assert.equal(y[255], 1.75);
    // and every element from the layout: chunk c = e >> 6 uses bytes 32c..32c+31,
    // low nibbles for sub-block 2c, high nibbles for 2c + 1
    for (let e = 0; e < 256; e++) {
      const c = e >> 6, r = e & 63;
      const q = r < 32 ? qs[32 * c + r]! & 15 : qs[32 * c + r - 32]! >> 4;
      const s = 2 * c + (r < 32 ? 0 : 1);
      assert.equal(y[e], 0.5 * sc[s]! * q - 0.25 * mn[s]!, `element ${e}`);
    }
    assert.throws(() => dequantizeQ4_K(block, 512), /144 bytes is too short for 512 elements/);
  });

  it('the quantizer packs scales and mins the way the decoder reads them', () => {
    // Values on the hand block's grid decode back to themselves exactly.
    const x = [...dequantizeQ4_K(block, 256)];
    const y = dequantizeQ4_K(quantizeQ4_K(x), 256);
    const amax = Math.max(...x.map(Math.abs));
    for (let i = 0; i < 256; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= 1e-3 * amax, `element ${i}: ${y[i]} vs ${x[i]}`);
  });

  it('quantize -> dequantize error within half a step of each sub-block', () => {
    const r = rng(11);
    const blocks: number[][] = [
      Array.from({ length: 256 }, () => r()),
      Array.from({ length: 256 }, (_, i) => r() * (i < 128 ? 0.01 : 10)), // mixed sub-block ranges
      Array.from({ length: 256 }, () => 3 + r()), // all positive: mins clamp to 0
      Array.from({ length: 256 }, () => -7 + r()), // all negative
      new Array(256).fill(0),
      Array.from({ length: 256 }, (_, i) => (i === 77 ? -40 : r() * 0.1)), // one outlier
    ];
    const src = blocks.flat();
    const y = dequantizeQ4_K(quantizeQ4_K(src), src.length);
    blocks.forEach((blk, b) => {
      // Bound from the construction: the mins use dmin = maxOff/63 (maxOff = largest -min);
      // step_j < (range_j + dmin) / 15 + d with d ~ maxSpan / 63; error <= step_j / 2.
      const subs = Array.from({ length: 8 }, (_, j) => blk.slice(32 * j, 32 * j + 32));
      const lo = subs.map((s) => Math.min(0, ...s));
      const hi = subs.map((s) => Math.max(...s));
      const dmin = (Math.max(...lo.map((v) => -v)) / 63) * 1.001;
      const spans = subs.map((_, j) => (hi[j]! - lo[j]! + dmin) / 15);
      const d = (Math.max(...spans) / 63) * 1.001;
      for (let i = 0; i < 256; i++) {
        const j = i >> 5;
        const err = Math.abs(y[b * 256 + i]! - blk[i]!);
        const bound = (spans[j]! + d) / 2 + 1e-6 * (Math.abs(blk[i]!) + 1);
        assert.ok(err <= bound, `block ${b} element ${i}: error ${err} > ${bound}`);
      }
    });
    assert.ok(y.subarray(4 * 256, 5 * 256).every((v) => v === 0));
    // f16 header fields are finite and non-negative for all blocks
    const q = quantizeQ4_K(src);
    for (let b = 0; b < blocks.length; b++) {
      const d = f16BitsToF32(q[b * 144]! | (q[b * 144 + 1]! << 8));
      const dm = f16BitsToF32(q[b * 144 + 2]! | (q[b * 144 + 3]! << 8));
      assert.ok(d >= 0 && Number.isFinite(d) && dm >= 0 && Number.isFinite(dm));
    }
  });
});

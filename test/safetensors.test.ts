// safetensors: bit-exact round trips, sharded checkpoints, a hand-assembled file, zero-copy
// mapping, and a FormatError naming the file and the problem for every kind of bad file.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FormatError } from '../src/formats/errors.ts';
import {
  INDEX_FILE,
  SafetensorsFile,
  type StDType,
  type StWriteEntry,
  ST_DTYPE_SIZE,
  openSafetensorsCheckpoint,
  writeSafetensors,
  writeShardedSafetensors,
} from '../src/formats/safetensors.ts';
import { Tensor } from '../src/tensor/tensor.ts';

let dir = '';
let seq = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'slipstream-st-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
/** A fresh path (or directory name) under the test's temp directory. */
const fresh = (suffix = '.safetensors') => join(dir, `t${seq++}${suffix}`);

/** Deterministic pseudo-random bytes (any bit pattern, NaNs and subnormals included). */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function entry(name: string, dtype: StDType, shape: number[], seed: number): StWriteEntry {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype, shape, data: bytes(n * ST_DTYPE_SIZE[dtype], seed) };
}

/** `fn` throws a FormatError whose message names `file` and matches `re`. */
function formatError(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected a FormatError, got ${String(e)}`);
    assert.ok(e.message.includes(file), `message "${e.message}" does not name ${file}`);
    assert.match(e.message, re);
    return true;
  });
}

/** A file assembled by hand: u64 LE header length, header text, data bytes. */
function rawFile(header: string | object, data: Uint8Array = new Uint8Array(0), lengthField?: bigint): Uint8Array {
  const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(lengthField ?? BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return out;
}

const same = (a: Uint8Array, b: Uint8Array) => assert.ok(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)));

describe('safetensors: write -> read round trip', () => {
  const tensors: StWriteEntry[] = [
    entry('model.layers.0.attn.q.weight', 'F32', [3, 5, 7], 1),
    entry('norm', 'F32', [13], 2), // 1-D
    entry('empty', 'F32', [0, 4], 3), // 0 elements
    entry('half', 'F16', [1, 13], 4),
    entry('brain', 'BF16', [7, 3], 5),
    entry('odd.bf16', 'BF16', [5], 6),
    entry('0', 'F16', [2, 2, 3], 7), // a name JSON objects would reorder
    entry('ünïcode/名前', 'BF16', [1], 8),
    entry('zero.f16', 'F16', [3, 0], 9),
  ];

  it('reads back every dtype and awkward shape bit-exactly, as zero-copy Tensors', () => {
    const p = fresh();
    writeSafetensors(p, tensors, { format: 'pt', note: 'round trip' });
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.metadata, { format: 'pt', note: 'round trip' });
    assert.equal(f.tensors.size, tensors.length);
    for (const t of tensors) {
      const info = f.tensors.get(t.name)!;
      assert.ok(info, t.name);
      assert.equal(info.dtype, t.dtype);
      assert.deepEqual(info.shape, t.shape);
      assert.equal(info.file, p);
      same(info.data, t.data);
      const tt = f.tensor(t.name);
      assert.equal(tt.dtype, t.dtype.toLowerCase());
      assert.deepEqual(tt.shape, t.shape);
      assert.equal(tt.data, info.data); // the Tensor wraps the same view
    }
    // Layout as the reference writer: header padded to 8, widest dtype first, so every tensor is
    // naturally aligned and f32 tensors take Tensor.f32() directly.
    const n = Number(Buffer.from(readFileSync(p).subarray(0, 8)).readBigUInt64LE(0));
    assert.equal(n % 8, 0);
    for (const info of f.tensors.values()) assert.equal(info.data.byteOffset % ST_DTYPE_SIZE[info.dtype], 0, info.name);
    const order = [...f.tensors.values()].map((i) => i.dtype);
    assert.ok(order.lastIndexOf('F32') < order.indexOf('BF16') && order.lastIndexOf('F32') < order.indexOf('F16'));
    const norm = f.tensor('norm').f32();
    assert.deepEqual(new Uint8Array(norm.buffer, norm.byteOffset, norm.byteLength), tensors[1]!.data);
  });

  it('writes the same bytes as the reference writer (its own test vectors)', () => {
    const file = (header: string, data: Uint8Array = new Uint8Array(0)) => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      return Buffer.concat([len, Buffer.from(header), data]);
    };
    const p = fresh();
    const vals = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
    writeSafetensors(p, [{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data: vals }]);
    assert.deepEqual(readFileSync(p), file('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ', vals)); // 65 + 7 spaces
    writeSafetensors(p, []);
    assert.deepEqual(readFileSync(p), file('{}      '));
    writeSafetensors(p, [], { framework: 'pt' });
    assert.deepEqual(readFileSync(p), file('{"__metadata__":{"framework":"pt"}}     '));
  });

  it('writes slipstream Tensors and reads back the same values', () => {
    const p = fresh();
    const vals = Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i) * 100);
    const src = {
      a: Tensor.from(vals, [2, 3, 5], 'f32'),
      b: Tensor.from(vals, [6, 5], 'f16'),
      c: Tensor.from(vals, [30], 'bf16'),
      d: Tensor.from(vals, [2, 3, 5], 'f32').narrow(1, 1), // contiguous view into a larger buffer
    };
    writeSafetensors(p, Object.entries(src).map(([name, tensor]) => ({ name, tensor })));
    const ck = openSafetensorsCheckpoint(p);
    assert.deepEqual(ck.files, [p]);
    assert.deepEqual(ck.metadata, {});
    for (const [name, t] of Object.entries(src)) {
      const back = ck.tensor(name);
      assert.equal(back.dtype, t.dtype);
      assert.deepEqual(back.shape, t.shape);
      assert.deepEqual(back.toF32(), t.toF32());
    }
  });

  it('keeps other dtypes readable as info, but tensor() names the tensor and the dtype', () => {
    const p = fresh();
    const ents = [entry('ids', 'I64', [3], 1), entry('mask', 'BOOL', [5], 2), entry('f64', 'F64', [2], 3), entry('i32', 'I32', [1], 4), entry('u8', 'U8', [3], 5)];
    writeSafetensors(p, [...ents, { name: 'scalar', dtype: 'F32', shape: [], data: new Uint8Array(new Float32Array([2.5]).buffer) }]);
    const ck = openSafetensorsCheckpoint(p);
    for (const e of ents) same(ck.info(e.name).data, e.data);
    formatError(() => ck.tensor('ids'), p, /tensor "ids" has dtype I64; only F32, F16 and BF16/);
    formatError(() => ck.tensor('mask'), p, /"mask" has dtype BOOL/);
    // A 0-d scalar loads as shape [1] (Tensor has no 0-d form).
    assert.deepEqual(ck.info('scalar').shape, []);
    assert.deepEqual([...ck.tensor('scalar').toF32()], [2.5]);
    formatError(() => ck.info('nope'), p, /no tensor named "nope"/);
    assert.equal(ck.has('ids'), true);
    assert.equal(ck.has('nope'), false);
  });

  it('maps the file: views share one ArrayBuffer the size of the file', () => {
    const p = fresh();
    writeSafetensors(p, tensors);
    const ck = openSafetensorsCheckpoint(p);
    const a = ck.tensor('norm').data;
    const b = ck.tensor('brain').data;
    assert.equal(a.buffer, b.buffer);
    assert.equal(a.buffer.byteLength, statSync(p).size);
    assert.notEqual(a.byteOffset, b.byteOffset);
  });

  it('overwrites atomically: an open mapping keeps the old bytes, the path gets the new file, no temp left', () => {
    const p = fresh();
    const v1 = entry('w', 'F32', [4], 1);
    const v2 = entry('w', 'F32', [4], 2);
    writeSafetensors(p, [v1]);
    const old = SafetensorsFile.open(p);
    writeSafetensors(p, [{ name: 'w', tensor: old.tensor('w') }, entry('x', 'F16', [1], 3)]); // save from the mapping itself
    writeSafetensors(p, [v2]);
    same(old.info('w').data, v1.data);
    same(SafetensorsFile.open(p).info('w').data, v2.data);
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
  });

  it('rejects bad input to the writer with a FormatError and leaves no file', () => {
    const p = fresh();
    formatError(() => writeSafetensors(p, [{ name: 'a', dtype: 'F32', shape: [2, 3], data: new Uint8Array(20) }]), p, /tensor "a": F32 \[2, 3\] needs 24 bytes, data has 20/);
    formatError(() => writeSafetensors(p, [entry('a', 'F16', [2], 1), entry('a', 'F16', [2], 1)]), p, /tensor "a" is given twice/);
    formatError(() => writeSafetensors(p, [{ name: 'q', tensor: Tensor.zeros([1, 32], 'q8_0') }]), p, /tensor "q": dtype q8_0 cannot be written/);
    const strided = new Tensor('f32', [2, 2], new Uint8Array(32), [4, 1]);
    formatError(() => writeSafetensors(p, [{ name: 's', tensor: strided }]), p, /tensor "s": .*not contiguous/);
    formatError(() => writeSafetensors(p, [{ name: 'a', dtype: 'X9' as StDType, shape: [1], data: new Uint8Array(1) }]), p, /unknown dtype "X9"/);
    formatError(() => writeSafetensors(p, [{ name: 'a', dtype: 'U8', shape: [-1], data: new Uint8Array(0) }]), p, /shape \[-1\] must hold integers >= 0/);
    formatError(() => writeSafetensors(p, [entry('__metadata__', 'U8', [1], 1)]), p, /cannot be named "__metadata__"/);
    formatError(() => writeSafetensors(p, [], { n: 3 as unknown as string }), p, /metadata value "n" is 3, not a string/);
    assert.equal(statSync(p, { throwIfNoEntry: false }), undefined);
  });
});

describe('safetensors: sharded checkpoints', () => {
  // 60 + 40 + 200 + 8 + 0 + 30 bytes of data
  const tensors: StWriteEntry[] = [
    entry('embed', 'F32', [3, 5], 11),
    entry('l0.w', 'BF16', [4, 5], 12),
    entry('l1.w', 'F32', [50], 13), // alone: bigger than a shard
    entry('l1.b', 'F16', [4], 14),
    entry('l1.empty', 'F16', [0], 15),
    entry('head', 'BF16', [15], 16),
  ];

  function checkAll(path: string): void {
    const ck = openSafetensorsCheckpoint(path);
    assert.deepEqual(new Set(ck.names()), new Set(tensors.map((t) => t.name)));
    for (const t of tensors) {
      same(ck.info(t.name).data, t.data);
      assert.deepEqual(ck.tensor(t.name).shape, t.shape);
    }
  }

  it('splits by size into model-0000i-of-0000N plus an index, and reads back through it', () => {
    const d = fresh('');
    const r = writeShardedSafetensors(d, tensors, 100, { format: 'pt' });
    const names = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    assert.deepEqual(r.files, names.map((n) => join(d, n)));
    assert.equal(r.index, join(d, INDEX_FILE));
    assert.equal(r.totalSize, 60 + 40 + 200 + 8 + 0 + 30);
    assert.deepEqual(readdirSync(d).sort(), [...names, INDEX_FILE].sort());

    const index = JSON.parse(readFileSync(join(d, INDEX_FILE), 'utf8'));
    assert.deepEqual(index.metadata, { total_size: 338 });
    assert.deepEqual(index.weight_map, {
      embed: names[0], 'l0.w': names[0], 'l1.w': names[1], 'l1.b': names[2], 'l1.empty': names[2], head: names[2],
    });
    assert.deepEqual(Object.keys(index.weight_map), Object.keys(index.weight_map).sort());

    checkAll(d);
    checkAll(join(d, INDEX_FILE));
    const ck = openSafetensorsCheckpoint(d);
    assert.deepEqual(ck.files, r.files);
    assert.deepEqual(ck.metadata, { format: 'pt' });
    assert.equal(ck.info('l1.w').file, r.files[1]);
    // A shard alone opens as a checkpoint of its own tensors.
    assert.deepEqual(openSafetensorsCheckpoint(r.files[1]!).names(), ['l1.w']);
  });

  it('writes a single model.safetensors when everything fits, removing the stale shards and index', () => {
    const d = fresh('');
    writeShardedSafetensors(d, tensors, 100);
    writeFileSync(join(d, 'config.json'), '{}');
    const r = writeShardedSafetensors(d, tensors, 1 << 20);
    assert.deepEqual(r, { files: [join(d, 'model.safetensors')], index: null, totalSize: 338 });
    assert.deepEqual(readdirSync(d).sort(), ['config.json', 'model.safetensors']);
    checkAll(d);
    // ...and back to shards: the stale single file goes.
    writeShardedSafetensors(d, tensors, 250);
    assert.deepEqual(readdirSync(d).sort(), ['config.json', INDEX_FILE, 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].sort());
    checkAll(d);
  });

  it('opens a directory of loose .safetensors files, and rejects a name found in two of them', () => {
    const d = fresh('');
    mkdirSync(d);
    writeSafetensors(join(d, 'a.safetensors'), tensors.slice(0, 3));
    writeSafetensors(join(d, 'b.safetensors'), tensors.slice(3));
    checkAll(d);
    assert.deepEqual(openSafetensorsCheckpoint(d).files, [join(d, 'a.safetensors'), join(d, 'b.safetensors')]);
    writeSafetensors(join(d, 'c.safetensors'), [tensors[0]!]);
    formatError(() => openSafetensorsCheckpoint(d), join(d, 'c.safetensors'), /tensor "embed" is also in .*a\.safetensors/);
    const empty = fresh('');
    mkdirSync(empty);
    formatError(() => openSafetensorsCheckpoint(empty), empty, /no model\.safetensors\.index\.json, model\.safetensors or other \.safetensors file/);
  });

  it('gives a clear error for a broken index', () => {
    const d = fresh('');
    writeShardedSafetensors(d, tensors, 100);
    const ip = join(d, INDEX_FILE);
    const index = JSON.parse(readFileSync(ip, 'utf8'));

    rmSync(join(d, 'model-00002-of-00003.safetensors'));
    formatError(() => openSafetensorsCheckpoint(d), ip, /weight_map names shard "model-00002-of-00003\.safetensors" \(for tensor "l1\.w"\), but .* does not exist/);

    writeFileSync(ip, JSON.stringify({ ...index, weight_map: { ...index.weight_map, 'l1.w': 'model-00001-of-00003.safetensors' } }));
    formatError(() => openSafetensorsCheckpoint(d), ip, /tensor "l1\.w" is listed in shard "model-00001-of-00003\.safetensors", but .* has no such tensor/);

    writeFileSync(ip, JSON.stringify({ weight_map: { embed: '../escape.safetensors' } }));
    formatError(() => openSafetensorsCheckpoint(d), ip, /outside the checkpoint directory/);
    writeFileSync(ip, JSON.stringify({ metadata: {} }));
    formatError(() => openSafetensorsCheckpoint(d), ip, /no "weight_map" object/);
    writeFileSync(ip, '{"weight_map": ');
    formatError(() => openSafetensorsCheckpoint(d), ip, /cannot read the index/);
    writeFileSync(ip, JSON.stringify({ weight_map: { embed: 7 } }));
    formatError(() => openSafetensorsCheckpoint(d), ip, /weight_map entry for "embed" is 7, not a file name/);
  });

  it('a save that fails part way leaves the old checkpoint whole and no temp files', () => {
    const d = fresh('');
    writeShardedSafetensors(d, tensors, 100);
    const before = readdirSync(d).sort();
    const old = new Map(before.map((n) => [n, readFileSync(join(d, n))]));
    // Block the temp file of shard 3 of the new save, after shards 1 and 2 were written.
    const blocker = join(d, `model-00003-of-00003.safetensors.tmp-${process.pid}`);
    mkdirSync(blocker);
    const changed = tensors.map((t, i) => ({ ...t, data: bytes(t.data.byteLength, 100 + i) }));
    formatError(() => writeShardedSafetensors(d, changed, 100), join(d, 'model-00003-of-00003.safetensors'), /cannot write/);
    rmSync(blocker, { recursive: true });
    assert.deepEqual(readdirSync(d).sort(), before);
    for (const [n, b] of old) assert.ok(readFileSync(join(d, n)).equals(b), n);
    checkAll(d);
  });

  it('rejects a non-positive shard size', () => {
    const d = fresh('');
    formatError(() => writeShardedSafetensors(d, tensors, 0), d, /maxShardBytes 0 must be a positive integer/);
  });
});

describe('safetensors: a file assembled by hand', () => {
  it('reads dtypes, shapes, metadata and values at unaligned offsets', () => {
    // Data section: U8 x3 at [0,3), F16 x2 at [3,7) (odd offset), BF16 [2,1] at [7,11), F32 at
    // [11,15), then an empty tensor. The header is deliberately not padded.
    const data = new Uint8Array([
      1, 2, 3,
      0x00, 0x3c, 0x00, 0xc0, // f16: 1.0, -2.0
      0x80, 0x3f, 0x49, 0x40, // bf16: 1.0, 3.140625
      0x00, 0x00, 0x00, 0x3f, // f32: 0.5
    ]);
    const header =
      '{"__metadata__":{"format":"pt"},' +
      '"z.f":{"dtype":"F32","shape":[1],"data_offsets":[11,15]},' +
      '"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},' +
      '"h":{"dtype":"F16","shape":[2],"data_offsets":[3,7]},' +
      '"b":{"dtype":"BF16","shape":[2,1],"data_offsets":[7,11]},' +
      '"e":{"dtype":"F32","shape":[0,5],"data_offsets":[15,15]}}';
    const p = fresh();
    writeFileSync(p, rawFile(header, data));
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual([...f.tensors.keys()], ['u', 'h', 'b', 'z.f', 'e']); // data order
    const start = 8 + Buffer.byteLength(header);
    assert.equal(f.dataStart, start);
    assert.equal(f.info('h').data.byteOffset, start + 3);
    assert.deepEqual([...f.info('u').data], [1, 2, 3]);
    assert.deepEqual([...f.tensor('h').toF32()], [1, -2]);
    assert.deepEqual([...f.tensor('b').toF32()], [1, 3.140625]);
    assert.deepEqual(f.tensor('b').shape, [2, 1]);
    assert.deepEqual([...f.tensor('z.f').toF32()], [0.5]);
    assert.deepEqual(f.tensor('e').shape, [0, 5]);
    assert.equal(f.info('e').data.byteLength, 0);
  });
});

describe('safetensors: bad files give a FormatError naming the file and the problem', () => {
  const t = (dtype: string, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });
  const ok = t('F32', [2], [0, 8]);
  const data8 = new Uint8Array(8);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /file is 0 bytes, shorter than the 8-byte header length/],
    ['5-byte file', new Uint8Array(5), /file is 5 bytes, shorter than/],
    ['absurd header length', rawFile('{}', new Uint8Array(0), 2n ** 63n), /header length 9223372036854775808 is absurd/],
    ['header just over 100 MB', rawFile('{}', new Uint8Array(0), 100_000_001n), /header length 100000001 is absurd/],
    ['header past the end', rawFile('{}', new Uint8Array(0), 1000n), /header length 1000 runs past the end of the file \(10 bytes\)/],
    ['not UTF-8', rawFile('{"a":"xx"}').map((b, i) => (i === 14 || i === 15 ? 0xff : b)), /header is not valid UTF-8/],
    ['not JSON', rawFile('{"a": '), /header is not valid JSON/],
    ['JSON array', rawFile('[1, 2]'), /header is not a JSON object/],
    ['JSON null', rawFile('null'), /header is not a JSON object/],
    ['entry not an object', rawFile({ w: [1] }), /tensor "w": entry is not an object/],
    ['no dtype', rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, data8), /tensor "w": no dtype/],
    ['unknown dtype', rawFile({ w: t('F8', [2], [0, 8]) }, data8), /tensor "w": unknown dtype "F8"/],
    ['dtype not a string', rawFile({ w: t(4 as unknown as string, [2], [0, 8]) }, data8), /tensor "w": unknown dtype 4/],
    ['no shape', rawFile({ w: { dtype: 'F32', data_offsets: [0, 8] } }, data8), /tensor "w": no shape/],
    ['shape not an array', rawFile({ w: t('F32', 2, [0, 8]) }, data8), /tensor "w": shape 2 is not an array/],
    ['negative dim', rawFile({ w: t('F32', [-2], [0, 8]) }, data8), /tensor "w": shape \[-2\] must hold integers >= 0/],
    ['fractional dim', rawFile({ w: t('F32', [1.5], [0, 8]) }, data8), /tensor "w": shape \[1.5\] must hold integers >= 0/],
    ['string dim', rawFile({ w: t('F32', ['2'], [0, 8]) }, data8), /tensor "w": shape \["2"\] must hold integers >= 0/],
    ['no data_offsets', rawFile({ w: { dtype: 'F32', shape: [2] } }, data8), /tensor "w": no data_offsets/],
    ['one offset', rawFile({ w: t('F32', [2], [0]) }, data8), /tensor "w": data_offsets \[0\] must be \[begin, end\]/],
    ['fractional offset', rawFile({ w: t('F32', [2], [0, 8.5]) }, data8), /tensor "w": data_offsets \[0,8.5\] must be \[begin, end\], integers >= 0/],
    ['negative offset', rawFile({ w: t('F32', [2], [-8, 0]) }, data8), /tensor "w": data_offsets \[-8,0\] must be/],
    ['begin > end', rawFile({ w: t('F32', [0], [8, 0]) }, data8), /tensor "w": data_offsets \[8, 0\] has begin > end/],
    ['size mismatch', rawFile({ w: t('F16', [2, 3], [0, 8]) }, data8), /tensor "w": data_offsets \[0, 8\] span 8 bytes but F16 \[2, 3\] needs 12/],
    ['shape overflow', rawFile({ w: t('F32', [2 ** 30, 2 ** 30, 2 ** 30], [0, 8]) }, data8), /tensor "w": shape \[.*\] is too large/],
    ['past the data section', rawFile({ w: t('F32', [2], [4, 12]) }, data8), /tensor "w": data_offsets \[4, 12\] run past the end of the data section \(8 bytes\)/],
    ['overlap', rawFile({ a: ok, b: t('U8', [4], [6, 10]) }, new Uint8Array(10)), /tensors "a" \[0, 8\) and "b" \[6, 10\) overlap/],
    ['nested overlap', rawFile({ a: t('U8', [10], [0, 10]), b: t('U8', [2], [2, 4]), c: t('U8', [2], [6, 8]) }, new Uint8Array(10)), /tensors "a" \[0, 10\) and "b" \[2, 4\) overlap/],
    ['same range twice', rawFile({ a: ok, b: ok }, data8), /tensors "a" \[0, 8\) and "b" \[0, 8\) overlap/],
    ['metadata not an object', rawFile({ __metadata__: ['x'], w: ok }, data8), /__metadata__ is not an object of strings/],
    ['metadata value not a string', rawFile({ __metadata__: { format: 'pt', step: 3 }, w: ok }, data8), /__metadata__ value "step" is 3, not a string/],
  ];

  for (const [what, file, re] of cases) {
    it(what, () => {
      const p = fresh();
      writeFileSync(p, file);
      formatError(() => SafetensorsFile.open(p), p, re);
      formatError(() => openSafetensorsCheckpoint(p), p, re);
    });
  }

  it('accepts what the reference reader accepts: null metadata, empty tensors inside others, gaps', () => {
    const p = fresh();
    writeFileSync(p, rawFile({ __metadata__: null, a: ok, e: t('F16', [0], [4, 4]), g: t('U8', [2], [10, 12]) }, new Uint8Array(12)));
    const f = SafetensorsFile.open(p);
    assert.deepEqual(f.metadata, {});
    assert.deepEqual([...f.tensors.keys()], ['a', 'e', 'g']);
  });

  it('a missing file or directory says "no such file"', () => {
    const p = join(dir, 'missing.safetensors');
    formatError(() => SafetensorsFile.open(p), p, /no such file/);
    formatError(() => openSafetensorsCheckpoint(p), p, /no such file/);
    formatError(() => openSafetensorsCheckpoint(join(dir, 'missing-dir')), join(dir, 'missing-dir'), /no such file/);
    formatError(() => SafetensorsFile.open(dir), dir, /is not a regular file/);
  });
});

// Checkpoint files larger than one ArrayBuffer (4 GiB on Node 20): GGUF and safetensors files of
// over 4 GiB load, each tensor a view into a window of the file, with no copy. The files here are
// sparse: the header and the tensors the test reads are written at their offsets and the rest is
// a hole, so a 4.5 GiB file takes a few kilobytes of disk and is made in milliseconds.

import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeBatch } from '../src/engine/batch.ts';
import { Sequence } from '../src/engine/generate.ts';
import { FormatError } from '../src/formats/errors.ts';
import { GGML_TYPE, ggufTensor, readGguf } from '../src/formats/gguf.ts';
import { MAX_MAPPING } from '../src/formats/mmap.ts';
import { openSafetensorsCheckpoint, SafetensorsFile, writeSafetensors } from '../src/formats/safetensors.ts';
import { hfToGguf } from '../src/models/convert.ts';
import { defaultModelDir } from '../src/models/default.ts';
import { loadModelSync, type LoadedModel } from '../src/models/load.ts';
import { convertTensor } from '../src/tensor/convert.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';
import { f32ToF16Bits, quantizeQ8_0 } from '../src/tensor/dtype.ts';

const root = mkdtempSync(join(tmpdir(), 'ss-bigfile-'));
after(() => rmSync(root, { recursive: true, force: true }));

const GiB = 2 ** 30;
const FAR = 4.5 * GiB; // past the 4 GiB mark, and past MAX_MAPPING on Node 20

/** A sparse file: `parts` written at their offsets, the file `size` bytes long. */
function sparse(path: string, size: number, parts: [number, Uint8Array][]): void {
  const fd = openSync(path, 'w');
  try {
    for (const [at, bytes] of parts) writeSync(fd, bytes, 0, bytes.byteLength, at);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

const f32Bytes = (v: number[]) => new Uint8Array(Float32Array.from(v).buffer);
const ramp = (n: number, k: number) => Array.from({ length: n }, (_, i) => k + i * 0.25);

/** GGUF v3 bytes of a header: one string metadata entry and these tensor infos. */
function ggufHeader(tensors: { name: string; dims: number[]; type: number; rel: number }[]): Uint8Array {
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(tensors.length);
  u64(1);
  str('general.architecture'); u32(8); str('llama');
  for (const t of tensors) {
    str(t.name); u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(t.type); u64(t.rel);
  }
  const h = Buffer.concat(parts);
  return new Uint8Array(Buffer.concat([h, Buffer.alloc((32 - (h.length % 32)) % 32)]));
}

describe('checkpoint files over 4 GiB', () => {
  it('this Node.js cannot map them whole (the case under test)', () => {
    assert.ok(FAR > MAX_MAPPING, `MAX_MAPPING ${MAX_MAPPING}`);
  });

  it('GGUF: tensors before and after the 4 GiB mark load with their values, through windows', () => {
    const p = join(root, 'big.gguf');
    const a = ramp(64, 1), b = ramp(64, -7);
    const qv = ramp(64, 0.5).map((x) => Math.sin(x) * 3);
    const q = quantizeQ8_0(qv);
    const infos = [
      { name: 'a', dims: [64], type: GGML_TYPE.F32, rel: 0 },
      { name: 'mid', dims: [32], type: GGML_TYPE.F16, rel: 2 * GiB }, // unread: stays a hole
      { name: 'b', dims: [64], type: GGML_TYPE.F32, rel: FAR },
      { name: 'q', dims: [32, 2], type: GGML_TYPE.Q8_0, rel: FAR + 256 },
    ];
    const head = ggufHeader(infos);
    const d0 = head.byteLength;
    const size = d0 + FAR + 256 + q.byteLength;
    sparse(p, size, [[0, head], [d0, f32Bytes(a)], [d0 + FAR, f32Bytes(b)], [d0 + FAR + 256, q]]);
    assert.ok(statSync(p).size > MAX_MAPPING);

    const g = readGguf(p);
    assert.deepEqual([...g.tensors.keys()], ['a', 'mid', 'b', 'q']);
    assert.deepEqual([...ggufTensor(g, 'a').toF32()], a);
    assert.deepEqual([...ggufTensor(g, 'b').toF32()], b);
    const tq = ggufTensor(g, 'q');
    assert.equal(tq.dtype, 'q8_0');
    assert.deepEqual([...tq.data], [...q]);
    assert.equal(g.tensors.get('b')!.offset, d0 + FAR);
    // a and b are 4.5 GiB apart: different windows, each far smaller than the file
    assert.notEqual(g.tensors.get('a')!.data.buffer, g.tensors.get('b')!.data.buffer);
    for (const t of g.tensors.values()) assert.ok(t.data.buffer.byteLength <= GiB + 64);

    // the file cut before the last tensor ends: the usual error
    truncateSync(p, size - 1);
    assert.throws(() => readGguf(p), (e: Error) => e instanceof FormatError && /tensor "q" \(68 bytes at offset \d+\) runs past the end of the file/.test(e.message));
    rmSync(p);
  });

  it('GGUF: a tensor larger than one ArrayBuffer is an error naming it', () => {
    const p = join(root, 'huge-tensor.gguf');
    const head = ggufHeader([{ name: 'a', dims: [64], type: GGML_TYPE.F32, rel: 0 }, { name: 'token_embd.weight', dims: [2 ** 30 + 64], type: GGML_TYPE.F32, rel: 256 }]);
    sparse(p, head.byteLength + 256 + 4 * (2 ** 30 + 64), [[0, head]]);
    assert.throws(() => readGguf(p), (e: Error) => e instanceof FormatError && e.message.includes('tensor "token_embd.weight" is 4294967552 bytes') && e.message.includes(p));
    rmSync(p);
  });

  it('GGUF: a small file read in windows (forced) gives the same tensors as one mapping', () => {
    const dir = join(root, 'win');
    mkdirSync(dir);
    const p = join(dir, 'default.gguf');
    hfToGguf(defaultModelDir(), p, { type: 'q8_0' });
    const whole = readGguf(p);
    const win = readGguf(p, { wholeFileMax: 0, windowBytes: 1 << 20 });
    assert.deepEqual([...win.metadata.keys()], [...whole.metadata.keys()]);
    const buffers = new Set<ArrayBufferLike>();
    for (const [name, t] of whole.tensors) {
      const w = win.tensors.get(name)!;
      assert.equal(w.offset, t.offset);
      assert.ok(Buffer.from(w.data).equals(Buffer.from(t.data)), name);
      buffers.add(w.data.buffer);
    }
    assert.ok(buffers.size > 3, `${buffers.size} windows`);
    rmSync(dir, { recursive: true });
  });

  it('safetensors: a shard over 4 GiB (single file and sharded index) loads its tensors past the mark', () => {
    const dir = join(root, 'st');
    mkdirSync(dir);
    const a = ramp(16, 2), b = ramp(16, -3);
    const h = [1.5, -2, 0.125, 3];
    const header = {
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 64] },
      b: { dtype: 'F32', shape: [16], data_offsets: [FAR, FAR + 64] },
      h: { dtype: 'F16', shape: [4], data_offsets: [FAR + 64, FAR + 72] },
    };
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const ds = 8 + json.length;
    const p = join(dir, 'model-00001-of-00002.safetensors');
    const hb = new Uint8Array(Uint16Array.from(h.map(f32ToF16Bits)).buffer);
    sparse(p, ds + FAR + 72, [[0, len], [8, Buffer.from(json)], [ds, f32Bytes(a)], [ds + FAR, f32Bytes(b)], [ds + FAR + 64, hb]]);

    const f = SafetensorsFile.open(p);
    assert.equal(f.buffer, null);
    assert.deepEqual([...f.tensor('a').toF32()], a);
    assert.deepEqual([...f.tensor('b').toF32()], b);
    assert.deepEqual([...f.tensor('h').toF32()], h);
    assert.deepEqual(f.metadata, { format: 'pt' });

    // sharded: the big shard plus a small one, through the index
    const small = join(dir, 'model-00002-of-00002.safetensors');
    const sj = JSON.stringify({ c: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }).padEnd(48, ' ');
    const sl = Buffer.alloc(8);
    sl.writeBigUInt64LE(BigInt(sj.length));
    writeFileSync(small, Buffer.concat([sl, Buffer.from(sj), Buffer.from(f32Bytes([4, 5]))]));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00001-of-00002.safetensors', h: 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' } }));
    const ck = openSafetensorsCheckpoint(dir);
    assert.deepEqual(ck.names(), ['a', 'b', 'h', 'c']);
    assert.deepEqual([...ck.tensor('b').toF32()], b);
    assert.deepEqual([...ck.tensor('c').toF32()], [4, 5]);

    // a tensor running past the end of the (big) file: the usual error
    truncateSync(p, ds + FAR + 70);
    assert.throws(() => SafetensorsFile.open(p), (e: Error) => e instanceof FormatError && /tensor "h": data_offsets \[\d+, \d+\] run past the end of the data section/.test(e.message));
    rmSync(dir, { recursive: true });
  });

  // A whole model: the default model's tensors rewritten with the second half of them placed
  // past the 4 GiB mark (a hole before them), as one safetensors file and as one GGUF file; both
  // load and compute the logits of the original, bit for bit.
  const logitsOf = (lm: LoadedModel, tokens: number[]) => {
    const seq = new Sequence(lm.model, { maxContext: 64, blockSize: 16 });
    const batch = makeBatch([{ tokens, startPos: 0, blockTable: seq.table, logits: 'all' }], seq.kv.blockSize);
    return lm.model.forward(batch, seq.kv).f32().slice();
  };
  const PROMPT = [1, 40, 77, 200, 13, 5, 300, 42];

  it('a bf16 model directory whose model.safetensors is over 4 GiB loads (as stored, and with --quantize q8_0) with the logits of the same checkpoint under 4 GiB', () => {
    const src = defaultModelDir();
    const dir = join(root, 'model-st'), small = join(root, 'model-st-small');
    mkdirSync(dir);
    mkdirSync(small);
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      writeFileSync(join(dir, f), readFileSync(join(src, f)));
      writeFileSync(join(small, f), readFileSync(join(src, f)));
    }
    // the default model's tensors as bf16: a small model.safetensors, and a big one with the
    // second half of the tensors past the 4 GiB mark
    const orig = SafetensorsFile.open(join(src, 'model.safetensors'));
    const names = [...orig.tensors.keys()];
    const bf16 = names.map((name) => ({ name, tensor: convertTensor(orig.tensor(name), 'bf16') }));
    writeSafetensors(join(small, 'model.safetensors'), bf16);
    const header: Record<string, unknown> = {};
    const parts: [number, Uint8Array][] = [];
    let off = 0;
    bf16.forEach(({ name, tensor }, i) => {
      if (i === Math.floor(names.length / 2)) off = FAR;
      header[name] = { dtype: 'BF16', shape: tensor.shape, data_offsets: [off, off + tensor.data.byteLength] };
      parts.push([off, tensor.data]);
      off += tensor.data.byteLength;
    });
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const ds = 8 + json.length;
    sparse(join(dir, 'model.safetensors'), ds + off, [[0, len], [8, Buffer.from(json)], ...parts.map(([o, b]) => [ds + o, b] as [number, Uint8Array])]);
    assert.ok(statSync(join(dir, 'model.safetensors')).size > MAX_MAPPING);

    const be = cpuBackend();
    const big = loadModelSync(dir, be);
    assert.equal(big.model.weights.layers[0]!.wq!.dtype, 'bf16');
    assert.deepEqual(logitsOf(big, PROMPT), logitsOf(loadModelSync(small, be), PROMPT));
    // --quantize q8_0 from the bf16 windows; --no-mmap copies the windows' tensors into resident memory
    const q8 = loadModelSync(dir, be, { quantize: 'q8_0' });
    assert.equal(q8.model.weights.layers[0]!.wq!.dtype, 'q8_0');
    assert.deepEqual(logitsOf(q8, PROMPT), logitsOf(loadModelSync(small, be, { quantize: 'q8_0' }), PROMPT));
    assert.deepEqual(logitsOf(loadModelSync(dir, be, { mmap: false }), PROMPT), logitsOf(big, PROMPT));
    rmSync(dir, { recursive: true });
    rmSync(small, { recursive: true });
  });

  it('a GGUF model over 4 GiB loads and gives the same logits', () => {
    const small = join(root, 'model-small.gguf');
    hfToGguf(defaultModelDir(), small, { type: 'f16' });
    const g = readGguf(small);
    const bytes = readFileSync(small);
    const head = new Uint8Array(bytes.subarray(0, g.dataOffset));
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    // Walk the tensor infos (they follow the metadata; the first starts with the first name's
    // length and bytes) and move the second half of the tensors 4.5 GiB further.
    const ts = [...g.tensors.values()];
    const first = Buffer.concat([Buffer.alloc(8), Buffer.from(ts[0]!.name)]);
    first.writeBigUInt64LE(BigInt(Buffer.byteLength(ts[0]!.name)));
    let pos = Buffer.from(head).indexOf(first);
    assert.ok(pos > 0);
    const parts: [number, Uint8Array][] = [[0, head]];
    let end = 0;
    ts.forEach((t, i) => {
      pos += 8 + Number(dv.getBigUint64(pos, true));
      const nd = dv.getUint32(pos, true);
      pos += 4 + 8 * nd + 4;
      const rel = Number(dv.getBigUint64(pos, true)) + (i >= ts.length / 2 ? FAR : 0);
      dv.setBigUint64(pos, BigInt(rel), true);
      pos += 8;
      parts.push([g.dataOffset + rel, t.data]);
      end = Math.max(end, g.dataOffset + rel + t.nbytes);
    });
    const big = join(root, 'model-big.gguf');
    sparse(big, end, parts);
    assert.ok(statSync(big).size > MAX_MAPPING);
    const be = cpuBackend();
    const want = logitsOf(loadModelSync(small, be), PROMPT);
    assert.deepEqual(logitsOf(loadModelSync(big, be), PROMPT), want);
    rmSync(big);
    rmSync(small);
  });
});

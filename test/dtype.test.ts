// Bit-exact dtype conversions: f16 and bf16 against known bit patterns, and GGUF's q8_0.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bf16BitsToF32,
  bytesFor,
  decode,
  dequantizeQ8_0,
  encode,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  Q8_0_BLOCK_BYTES,
  quantizeQ8_0,
} from '../src/tensor/dtype.ts';
import { Tensor } from '../src/tensor/tensor.ts';

/** The f32 whose IEEE bits are `bits`. */
function f32FromBits(bits: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, bits >>> 0);
  return dv.getFloat32(0);
}

const hex = (n: number) => '0x' + n.toString(16).padStart(4, '0');

describe('f16', () => {
  const cases: [number, number][] = [
    [1.0, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff], // largest finite
    [65519, 0x7bff], // just below the rounding midpoint to inf
    [65520, 0x7c00], // the midpoint rounds (to even) to inf
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [0, 0x0000],
    [-0, 0x8000],
    [2 ** -14, 0x0400], // smallest normal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // half the smallest subnormal: tie, rounds to even (0)
    [3 * 2 ** -26, 0x0001], // 0.75 of the smallest subnormal rounds up
    [3 * 2 ** -25, 0x0002], // 1.5 units: tie, rounds to even (2)
    [2 ** -30, 0x0000],
    [-(2 ** -24), 0x8001],
    [0.1, 0x2e66],
    [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 and 0x3c01: to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02: to even
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2047 * 2 ** -11 * 2 ** -14, 0x0400], // rounds up from the subnormal range into the first normal
  ];
  for (const [v, bits] of cases) {
    it(`${v} -> ${hex(bits)}`, () => {
      assert.equal(hex(f32ToF16Bits(v)), hex(bits));
    });
  }

  it('NaN stays NaN (any sign, quiet)', () => {
    for (const v of [NaN, f32FromBits(0x7f800001), f32FromBits(0xffc00000)]) {
      const h = f32ToF16Bits(v);
      assert.equal(h & 0x7c00, 0x7c00, hex(h));
      assert.notEqual(h & 0x03ff, 0, `${hex(h)} must not be inf`);
    }
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
    assert.ok(Number.isNaN(f16BitsToF32(0xfc01)));
  });

  it('decodes special values', () => {
    assert.equal(f16BitsToF32(0x3c00), 1);
    assert.equal(f16BitsToF32(0xc000), -2);
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    assert.equal(f16BitsToF32(0x7c00), Infinity);
    assert.equal(f16BitsToF32(0xfc00), -Infinity);
    assert.ok(Object.is(f16BitsToF32(0x8000), -0));
    assert.equal(f16BitsToF32(0x2e66), 0.0999755859375);
  });

  it('round-trips every non-NaN bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) {
        assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(v))));
        continue;
      }
      if (f32ToF16Bits(v) !== h) assert.fail(`${hex(h)} -> ${v} -> ${hex(f32ToF16Bits(v))}`);
    }
  });
});

describe('bf16', () => {
  const cases: [number, number][] = [
    [1.0, 0x3f80],
    [-2, 0xc000],
    [0.1, 0x3dcd], // 0x3dcccccd: lower half > 0x8000 rounds up
    [f32FromBits(0x3f808000), 0x3f80], // tie, 0x3f80 is even: stays
    [f32FromBits(0x3f818000), 0x3f82], // tie, 0x3f81 is odd: rounds up to even
    [f32FromBits(0x3f808001), 0x3f81], // just above the tie
    [f32FromBits(0x3f807fff), 0x3f80], // just below the tie
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [f32FromBits(0x7f7fffff), 0x7f80], // f32 max rounds to inf
    [0, 0x0000],
    [-0, 0x8000],
    [f32FromBits(0x00010000), 0x0001], // f32 subnormal, kept
  ];
  for (const [v, bits] of cases) {
    it(`${v} -> ${hex(bits)}`, () => {
      assert.equal(hex(f32ToBf16Bits(v)), hex(bits));
    });
  }

  it('NaN stays NaN, even when its payload is only in the dropped low bits', () => {
    for (const bits of [0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff]) {
      const b = f32ToBf16Bits(f32FromBits(bits));
      assert.equal(b & 0x7f80, 0x7f80, hex(b));
      assert.notEqual(b & 0x7f, 0, `${hex(b)} must not be inf`);
      assert.ok(Number.isNaN(bf16BitsToF32(b)));
    }
  });

  it('decodes', () => {
    assert.equal(bf16BitsToF32(0x3f80), 1);
    assert.equal(bf16BitsToF32(0x3dcd), 0.10009765625);
    assert.equal(bf16BitsToF32(0xff80), -Infinity);
    assert.ok(Object.is(bf16BitsToF32(0x8000), -0));
  });

  it('round-trips every non-NaN bit pattern', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = bf16BitsToF32(b);
      if (Number.isNaN(v)) continue;
      if (f32ToBf16Bits(v) !== b) assert.fail(`${hex(b)} -> ${v} -> ${hex(f32ToBf16Bits(v))}`);
    }
  });
});

describe('encode / decode', () => {
  it('f32, f16, bf16 through encode and decode at a byte offset', () => {
    const vals = [1, -2, 0.5, 3.25, 1024, -0.125];
    for (const dt of ['f32', 'f16', 'bf16'] as const) {
      const bytes = encode(dt, vals);
      assert.equal(bytes.byteLength, bytesFor(dt, vals.length));
      assert.deepEqual([...decode(dt, bytes, vals.length)], vals);
      assert.deepEqual([...decode(dt, bytes, 2, bytesFor(dt, 4))], [1024, -0.125]);
    }
  });

  it('decode refuses to read past the end', () => {
    assert.throws(() => decode('f16', new Uint8Array(6), 4), /decode f16: need 8 bytes/);
  });
});

describe('q8_0', () => {
  /** One block by hand: scale bits (f16) and 32 int8 quants. */
  function block(scaleBits: number, q: number[]): Uint8Array {
    const b = new Uint8Array(Q8_0_BLOCK_BYTES);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, scaleBits, true);
    q.forEach((v, i) => dv.setInt8(2 + i, v));
    return b;
  }

  it('dequantizes a hand-made block: d * q', () => {
    const q = Array.from({ length: 32 }, (_, i) => i - 16); // -16 .. 15
    q[31] = -128;
    q[30] = 127;
    const bytes = block(0x3800 /* 0.5 */, q);
    assert.equal(bytes[0], 0x00);
    assert.equal(bytes[1], 0x38);
    const want = q.map((v) => 0.5 * v);
    assert.deepEqual([...dequantizeQ8_0(bytes, 32)], want);
    assert.deepEqual([...decode('q8_0', bytes, 32)], want);
    // a second block with another scale, read at a byte offset
    const two = new Uint8Array(2 * Q8_0_BLOCK_BYTES);
    two.set(bytes, 0);
    two.set(block(0xc000 /* -2 */, q), Q8_0_BLOCK_BYTES);
    assert.deepEqual([...decode('q8_0', two, 32, Q8_0_BLOCK_BYTES)], q.map((v) => -2 * v));
    assert.deepEqual([...decode('q8_0', two, 64)], [...want, ...q.map((v) => -2 * v)]);
  });

  it('quantizes as llama.cpp: d = amax / 127 stored as f16, q = round(x / d)', () => {
    const x = Array.from({ length: 32 }, (_, i) => (i - 16) / 4); // amax 4 at i = 0
    const bytes = quantizeQ8_0(x);
    const dv = new DataView(bytes.buffer);
    assert.equal(bytes.byteLength, 34);
    assert.equal(dv.getUint16(0, true), f32ToF16Bits(Math.fround(4 / 127)));
    assert.equal(dv.getInt8(2), -127); // the extreme maps to -127
    assert.equal(dv.getInt8(2 + 16), 0);
    assert.equal(dv.getInt8(2 + 17), Math.round(0.25 * 127 / 4)); // 7.9375 -> 8
  });

  it('dequantize(quantize(x)) is within half a step of x', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const n = 32 * 64;
    const x = Array.from({ length: n }, (_, i) => rnd() * (1 + (i >> 5))); // a different range per block
    const bytes = quantizeQ8_0(x);
    const deq = dequantizeQ8_0(bytes, n);
    const dv = new DataView(bytes.buffer);
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[b * 32 + i]!));
      const d = Math.fround(amax / 127); // the step the quants were rounded with
      const d16 = f16BitsToF32(dv.getUint16(b * 34, true)); // the step stored (f16-rounded)
      // |x - d16 q| <= |x - d q| + |q| |d - d16| <= d/2 + 127 |d - d16| (+ f32 rounding)
      const bound = d / 2 + 127 * Math.abs(d - d16) + 1e-6 * d;
      for (let i = 0; i < 32; i++) {
        const err = Math.abs(x[b * 32 + i]! - deq[b * 32 + i]!);
        if (err > bound) assert.fail(`block ${b} elem ${i}: error ${err} > ${bound}`);
      }
    }
  });

  it('quantize(dequantize(q)) reproduces a block whose extreme is +-127', () => {
    const q = Array.from({ length: 32 }, (_, i) => ((i * 37) % 255) - 127);
    q[5] = 127;
    const bytes = block(f32ToF16Bits(0.0123), q);
    assert.deepEqual(quantizeQ8_0(dequantizeQ8_0(bytes, 32)), bytes);
  });

  it('an all-zero block gives d = 0, q = 0 and dequantizes to zeros (no NaN)', () => {
    const bytes = quantizeQ8_0(new Float32Array(32));
    assert.deepEqual([...bytes], new Array(34).fill(0));
    assert.deepEqual([...dequantizeQ8_0(bytes, 32)], new Array(32).fill(0));
  });

  it('rejects lengths that are not a multiple of 32', () => {
    assert.throws(() => quantizeQ8_0(new Float32Array(31)), /quantizeQ8_0: length 31 is not a multiple of 32/);
    assert.throws(() => quantizeQ8_0(new Float32Array(33)), /quantizeQ8_0: length 33/);
    assert.throws(() => dequantizeQ8_0(new Uint8Array(68), 40), /dequantizeQ8_0: length 40/);
    assert.throws(() => bytesFor('q8_0', 48), /q8_0: element count 48 is not a multiple of 32/);
    assert.throws(() => decode('q8_0', new Uint8Array(68), 16), /not a multiple of 32/);
    assert.throws(() => Tensor.zeros([2, 48], 'q8_0'), /not a multiple of 32/);
  });

  it('rejects a buffer too short for its element count', () => {
    assert.throws(() => dequantizeQ8_0(new Uint8Array(33), 32), /33 bytes is too short for 32 elements/);
  });
});

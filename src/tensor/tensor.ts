// Tensor: a typed, shaped, possibly strided view over bytes.
//
// The bytes live in a Uint8Array (a JS heap buffer, a SharedArrayBuffer, or a memory-mapped
// file exposed by the native core). `data` starts at element [0, 0, ...]. Strides count
// elements. The last dimension is always contiguous (stride 1); leading dimensions may be
// strided, so a slice of a fused QKV projection or one head of a cache can be a view
// without a copy. For q8_0 every stride is a multiple of 32 (whole blocks).

import { type DType, blockSize, bytesFor, decode, encode } from './dtype.ts';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function fmtShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Byte offset of element offset `e` for a dtype (e must sit on a block boundary for q8_0). */
export function elemByteOffset(dtype: DType, e: number): number {
  return bytesFor(dtype, e);
}

export class Tensor {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly strides: Shape;
  readonly data: Uint8Array;

  constructor(dtype: DType, shape: Shape, data: Uint8Array, strides?: Shape) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`Tensor: bad shape ${fmtShape(shape)}`);
    }
    if (shape.length === 0) throw new Error('Tensor: scalar (0-d) tensors are not supported; use shape [1]');
    const st = strides ?? contiguousStrides(shape);
    if (st.length !== shape.length) throw new Error(`Tensor: strides ${fmtShape(st)} do not match shape ${fmtShape(shape)}`);
    // Negative strides would reach bytes before `data` (kernels index data + sum(i * stride)).
    if (st.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`Tensor: strides ${fmtShape(st)} must be integers >= 0`);
    if (st[st.length - 1] !== 1 && shape[shape.length - 1]! > 1) throw new Error(`Tensor: last dimension must be contiguous, got strides ${fmtShape(st)}`);
    const bs = blockSize(dtype);
    if (bs > 1) {
      if (shape[shape.length - 1]! % bs !== 0) throw new Error(`Tensor: ${dtype} last dimension ${shape[shape.length - 1]} is not a multiple of ${bs}`);
      for (let i = 0; i < st.length - 1; i++) {
        if (st[i]! % bs !== 0) throw new Error(`Tensor: ${dtype} stride ${st[i]} is not a multiple of ${bs}`);
      }
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...st]);
    this.data = data;
    const need = this.byteSpan();
    if (data.byteLength < need) {
      throw new Error(`Tensor: ${dtype} ${fmtShape(shape)} with strides ${fmtShape(st)} needs ${need} bytes, buffer has ${data.byteLength}`);
    }
  }

  get ndim(): number {
    return this.shape.length;
  }

  get numel(): number {
    return numel(this.shape);
  }

  /** Bytes from the first element to one past the last element reachable through the view. */
  byteSpan(): number {
    if (this.shape.some((d) => d === 0)) return 0;
    let last = 0;
    for (let i = 0; i < this.shape.length; i++) last += (this.shape[i]! - 1) * this.strides[i]!;
    const lastDim = this.shape[this.shape.length - 1]!;
    // last element index rounded to its row end so q8_0 rows count whole blocks
    return elemByteOffset(this.dtype, last - (lastDim - 1)) + bytesFor(this.dtype, lastDim);
  }

  isContiguous(): boolean {
    const c = contiguousStrides(this.shape);
    return this.shape.every((d, i) => d <= 1 || c[i] === this.strides[i]);
  }

  /** Rows for ops that see a tensor as a matrix [rows, cols]: all leading dims must collapse. */
  rowCount(): number {
    return this.numel / (this.shape[this.shape.length - 1] || 1);
  }

  static zeros(shape: Shape, dtype: DType = 'f32'): Tensor {
    return new Tensor(dtype, shape, new Uint8Array(bytesFor(dtype, numel(shape))));
  }

  /** A tensor of `dtype` holding `values` (encoded, i.e. rounded/quantized). */
  static from(values: ArrayLike<number>, shape: Shape, dtype: DType = 'f32'): Tensor {
    if (values.length !== numel(shape)) throw new Error(`Tensor.from: ${values.length} values for shape ${fmtShape(shape)}`);
    return new Tensor(dtype, shape, encode(dtype, values));
  }

  static fromF32(arr: Float32Array, shape: Shape): Tensor {
    if (arr.length < numel(shape)) throw new Error(`Tensor.fromF32: ${arr.length} values for shape ${fmtShape(shape)}`);
    return new Tensor('f32', shape, new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
  }

  /** A Float32Array over the f32 bytes (data must be 4-byte aligned). Covers the whole span. */
  f32(): Float32Array {
    if (this.dtype !== 'f32') throw new Error(`Tensor.f32: tensor is ${this.dtype}`);
    if (this.data.byteOffset % 4 !== 0) throw new Error('Tensor.f32: data is not 4-byte aligned');
    return new Float32Array(this.data.buffer, this.data.byteOffset, this.byteSpan() / 4);
  }

  /** Decoded values in logical (row-major) order as f32, respecting strides. */
  toF32(): Float32Array {
    const n = this.numel;
    const out = new Float32Array(n);
    const last = this.shape[this.shape.length - 1]!;
    const rows = n / (last || 1);
    const idx = new Array<number>(this.shape.length - 1).fill(0);
    for (let r = 0; r < rows; r++) {
      let e = 0;
      for (let i = 0; i < idx.length; i++) e += idx[i]! * this.strides[i]!;
      out.set(decode(this.dtype, this.data, last, elemByteOffset(this.dtype, e)), r * last);
      for (let i = idx.length - 1; i >= 0; i--) {
        if (++idx[i]! < this.shape[i]!) break;
        idx[i] = 0;
      }
    }
    return out;
  }

  /** A view with another shape/strides starting `elemOffset` elements in. No copy. */
  view(shape: Shape, strides?: Shape, elemOffset = 0): Tensor {
    if (!Number.isInteger(elemOffset) || elemOffset < 0) throw new Error(`Tensor.view: offset ${elemOffset} must be an integer >= 0`);
    const b = elemByteOffset(this.dtype, elemOffset);
    if (b > this.data.byteLength) throw new Error(`Tensor.view: offset ${elemOffset} past the end`);
    return new Tensor(this.dtype, shape, this.data.subarray(b), strides);
  }

  /** Same data, new contiguous shape (tensor must be contiguous). */
  reshape(shape: Shape): Tensor {
    if (numel(shape) !== this.numel) throw new Error(`Tensor.reshape: ${fmtShape(this.shape)} -> ${fmtShape(shape)} changes the element count`);
    if (!this.isContiguous()) throw new Error('Tensor.reshape: tensor is not contiguous');
    return new Tensor(this.dtype, shape, this.data);
  }

  /** Rows [start, start+len) along dim 0. */
  narrow(start: number, len: number): Tensor {
    if (start < 0 || len < 0 || start + len > this.shape[0]!) throw new Error(`Tensor.narrow: [${start}, ${start + len}) out of range for ${fmtShape(this.shape)}`);
    const shape = [len, ...this.shape.slice(1)];
    return this.view(shape, this.strides, start * this.strides[0]!);
  }

  toString(): string {
    return `Tensor(${this.dtype} ${fmtShape(this.shape)})`;
  }
}

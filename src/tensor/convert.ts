// Whole-tensor dtype conversion (f32/f16/bf16/q8_0 in any direction; q4_k/q6_k to and from) into a new contiguous
// buffer: the native core does it on all threads when it is built, plain TypeScript otherwise.

import { blockSize, bytesFor, decode, DTYPE_CODE, encode, type DType } from './dtype.ts';
import { nativeAvailable, native } from './native.ts';
import { Tensor } from './tensor.ts';

export function convertTensor(t: Tensor, dtype: DType): Tensor {
  if (!t.isContiguous()) throw new Error(`convertTensor: ${t} is not contiguous`);
  const bs = blockSize(dtype);
  if (bs > 1 && t.shape[t.shape.length - 1]! % bs !== 0) {
    throw new Error(`convertTensor: cannot quantize ${t} to ${dtype}: last dimension is not a multiple of ${bs}`);
  }
  // f32 output must be 4-byte aligned for Tensor.f32(): allocate via a Float32Array when it is.
  const bytes = dtype === 'f32' ? new Uint8Array(new Float32Array(t.numel).buffer) : new Uint8Array(bytesFor(dtype, t.numel));
  convertInto(t, dtype, bytes);
  return new Tensor(dtype, t.shape, bytes);
}

/** Converts contiguous t into `out`, a buffer of t.numel values of `dtype` (e.g. a reused f32 scratch array). */
export function convertInto(t: Tensor, dtype: DType, out: ArrayBufferView): void {
  if (!t.isContiguous()) throw new Error(`convertInto: ${t} is not contiguous`);
  const n = t.numel;
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  if (bytes.length < bytesFor(dtype, n)) throw new Error(`convertInto: ${bytes.length} bytes cannot hold ${t} as ${dtype}`);
  if (t.dtype === dtype) {
    bytes.set(t.data.subarray(0, bytesFor(dtype, n)));
  } else if (nativeAvailable()) {
    native().convert(t.data, DTYPE_CODE[t.dtype], bytes, DTYPE_CODE[dtype], n);
  } else {
    bytes.set(encode(dtype, decode(t.dtype, t.data, n)));
  }
}

/** Decoded f32 copy (always 4-byte aligned). */
export function toF32Tensor(t: Tensor): Tensor {
  return convertTensor(t.isContiguous() ? t : Tensor.fromF32(t.toF32(), t.shape), 'f32');
}

/**
 * Encodes the f32 values of src into dst as dtype (dst must hold bytesFor(dtype, src.length)):
 * natively on all threads when the core is built (the same bytes), in TypeScript otherwise.
 */
export function encodeF32Into(src: Float32Array, dst: Uint8Array, dtype: DType): void {
  if (nativeAvailable()) native().convert(src, DTYPE_CODE.f32, dst, DTYPE_CODE[dtype], src.length);
  else dst.set(encode(dtype, src));
}

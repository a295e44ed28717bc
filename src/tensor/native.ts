// Loads the native core (build/Release/slipstream.node, built by `npm install`).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesFor, type DType } from './dtype.ts';
import { Tensor } from './tensor.ts';

export type TA = ArrayBufferView;

export interface NativeCore {
  addressMod(data: TA, m: number): number;
  /** prepacked: the q4_k matrix's kqPrepack form, or null. */
  matmul(x: TA, ldx: number, w: TA, wtype: number, out: TA, ldo: number, M: number, N: number, K: number, prepacked?: TA | null): void;
  matmulMulti(x: TA, ldx: number, ws: TA[], wtype: number, outs: TA[], ldos: number[], M: number, Ns: number[], K: number, prepacked?: (TA | null)[]): void;
  /** The first N / 8 * 8 rows of an N x K q4_k matrix (the one type with a prepacked layout) interleaved for the AVX2 tiles, into dst (kqPrepackedBytes, 32-byte aligned). */
  kqPrepack(w: TA, wtype: number, N: number, K: number, dst: TA): void;
  kqPrepackedBytes(wtype: number, N: number, K: number): number;
  binary(op: number, a: TA, lda: number, b: TA, ldb: number, bcast: number, out: TA, ldo: number, rows: number, cols: number): void;
  scale(a: TA, lda: number, s: number, out: TA, ldo: number, rows: number, cols: number): void;
  norm(x: TA, ldx: number, w: TA, b: TA | null, eps: number, out: TA, ldo: number, rows: number, cols: number, layerNorm: boolean): void;
  unary(op: number, x: TA, ldx: number, out: TA, ldo: number, rows: number, cols: number): void;
  gated(op: number, g: TA, ldg: number, u: TA, ldu: number, out: TA, ldo: number, rows: number, cols: number): void;
  rope(
    x: TA, T: number, H: number, D: number, sT: number, sH: number, positions: Int32Array, rotaryDim: number,
    halfLayout: number, theta: number, scaling: number, factor: number, low: number, high: number, origMax: number,
    shortFactors?: Float32Array, longFactors?: Float32Array,
  ): void;
  embedding(table: TA, ttype: number, V: number, D: number, ids: Int32Array, out: TA, ldo: number): void;
  kvWrite(k: TA, T: number, H: number, D: number, sT: number, sH: number, cache: TA, ctype: number, nBlocks: number, bs: number, slots: Int32Array, keyMajor: boolean): void;
  attention(
    q: TA, qsT: number, qsH: number, Hq: number, kc: TA, vc: TA, ctype: number, nBlocks: number, Hkv: number, bs: number, D: number,
    out: TA, osT: number, osH: number, tables: Int32Array, tableStride: number, positions: Int32Array, scale: number, softcap: number, window: number,
  ): void;
  argmax(x: TA, ldx: number, rows: number, cols: number, out: Int32Array): void;
  /** GroupNorm of x [B, N, C] (contiguous) into out (may alias x), G groups (native/src/image.h). */
  groupNorm(x: Float32Array, w: Float32Array, b: Float32Array, out: Float32Array, B: number, N: number, C: number, G: number, eps: number): void;
  /** C[M, N] = alpha op(A) op(B) + beta C, row-major f32 (native/src/sgemm.cc; training GEMMs). */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  /**
   * The native convolution (native/src/train_image.cc: im2col in blocks of 16 MiB, threaded,
   * then sgemm; a 1x1 one is one sgemm), NHWC x [B, H, W, Ci], w [Co, KH, KW, Ci]; shape as
   * B, H, W, Ci, Co, KH, KW, stride, pad, padEnd. wtype 1 / 2: w holds f16 / bf16 elements.
   */
  trainConv2d(
    x: Float32Array, w: ArrayBufferView, b: Float32Array | null, out: Float32Array,
    B: number, H: number, W: number, Ci: number, Co: number, KH: number, KW: number, stride: number, pad: number, padEnd: number, wtype?: 0 | 1 | 2,
  ): void;
  trainConv2dBackward(
    x: Float32Array, w: ArrayBufferView, dy: Float32Array, dx: Float32Array | null, dw: Float32Array | null, db: Float32Array | null,
    B: number, H: number, W: number, Ci: number, Co: number, KH: number, KW: number, stride: number, pad: number, padEnd: number, wtype?: 0 | 1 | 2,
  ): void;
  /** sgemm with B in half precision (btype 1 f16, 2 bf16; any 2-byte-aligned typed array), widened as it is packed. */
  sgemmHalf(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, A: Float32Array, lda: number, B: ArrayBufferView, btype: 1 | 2, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  convert(src: TA, stype: number, dst: TA, dtype: number, n: number): void;
  /**
   * Zero-filled anonymous memory, page aligned, unmapped on collection. hugePages (2 MiB and up):
   * 2 MiB aligned, transparent huge pages requested. populate: faulted in now (true) or by a
   * low-priority background thread ('background'), not on first use.
   */
  allocResident(bytes: number, hugePages: boolean, populate?: boolean | 'background'): ArrayBuffer;
  /** Gives back the whole pages of a view into an mmapFile mapping (others: no-op); returns bytes dropped. */
  dropPages(data: TA): number;
  /** The bytes dropPages would give back for this view (its whole pages inside an mmapFile mapping), else 0; touches nothing. */
  mappedBytes(data: TA): number;
  /** Maps a file (or the window [offset, offset + length)) read-only with private copy-on-write pages; unmapped when the buffer is collected. At most 4 GiB per window. */
  mmapFile(path: string, offset?: number, length?: number): ArrayBuffer;
  /** Streaming read of a Float32Array on all threads (returns a checksum). */
  benchRead(data: Float32Array, streams?: number): number;
  /** Runs the FMA peak loop on all threads; returns the flops performed. */
  benchFma(itersPerThread: number): number;
  info(): { isa: string; threads: number; available: string[] };
  setIsa(name: 'avx512' | 'avx2' | 'portable'): string;
  setThreads(n: number): number;
}

let core: NativeCore | null = null;
let loadError: Error | null = null;

function root(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  return d;
}

/** The native core, or throws an error that says how to build it. */
export function native(): NativeCore {
  if (core) return core;
  if (loadError) throw loadError;
  const path = join(root(), 'build', 'Release', 'slipstream.node');
  try {
    core = createRequire(import.meta.url)(path) as NativeCore;
    return core;
  } catch (e) {
    loadError = new Error(`the native core could not be loaded from ${path} (${(e as Error).message}); build it with \`npm run build:native\``);
    throw loadError;
  }
}

/**
 * Zero-filled tensors of one dtype in one block of memory, each starting on a 4 KiB page
 * boundary: the paged KV cache's pools live in it (src/models/kv.ts).
 *
 * - Page-aligned, so that a KV block of a page's size (16 f32 keys of head dim 64, say) lies in
 *   one page rather than two. Decode attention streams blocks scattered by the block tables, and
 *   each page it enters costs the hardware prefetcher a new start and a TLB lookup: pools 64
 *   bytes past a page measured 9-11% slower with f32 keys and values, 1-2% with f16.
 * - On transparent huge pages (blocks of 2 MiB and up): fewer page walks, and populating them
 *   is cheap (below). The attention kernel itself reads them no faster than 4 KiB pages
 *   (`SS_HUGE=1` against `SS_HUGE=0 bash bench/native/attention.sh`: level within this VM's
 *   noise); a plain sequential read does, by ~20% (bench:kernels prints both ceilings).
 * - Faulted in at allocation (as llama.cpp clears its KV buffer when a context is made), not on
 *   first use: a fresh 4 KiB page costs ~13 us on its first write on this VM, and the pools'
 *   pages were paid for inside the prefill (121 of 552 ms of a 512-token stories110m prefill went
 *   to writing into fresh f32 pools). On huge pages the kernel hands back recycled 2 MiB pages
 *   that cost ~0.05 ms per MB to populate; fresh memory ~2 ms per MB here. populate
 *   'background' (the serving engine's pools, sized for many sequences) leaves that to a
 *   low-priority thread, so start-up does not wait for it.
 *
 * Without the native core, plain allocations.
 */
export function residentZeros(shapes: readonly (readonly number[])[], dtype: DType, populate: boolean | 'background' = true): Tensor[] {
  const sizes = shapes.map((s) => bytesFor(dtype, s.reduce((a, b) => a * b, 1)));
  if (!nativeAvailable()) return shapes.map((s) => Tensor.zeros([...s], dtype));
  const page = 4096;
  const offsets: number[] = [];
  let total = 0;
  for (const n of sizes) offsets.push(total), (total += Math.ceil(n / page) * page);
  const arena = new Uint8Array(core!.allocResident(total, true, populate));
  return shapes.map((s, i) => new Tensor(dtype, [...s], arena.subarray(offsets[i]!, offsets[i]! + sizes[i]!)));
}

export function nativeAvailable(): boolean {
  try {
    native();
    return true;
  } catch {
    return false;
  }
}

// Mapping a checkpoint file (safetensors, GGUF) read-only, with the errors a user can act on.
//
// One ArrayBuffer holds at most buffer.constants.MAX_LENGTH bytes (4 GiB on Node 20), so a file
// larger than that (an 8B Q4_K_M GGUF is 4.9 GB, a bf16 safetensors shard 5 GB) is never mapped
// whole: its header is read through a small window, and its tensors through windows of the file
// that each hold a run of neighbouring tensors (mapSpans). Nothing is copied either way; a
// tensor is a view into a mapping that contains it, and pages are read from disk only when used.

import { constants as bufferConstants } from 'node:buffer';
import { statSync } from 'node:fs';
import { mmapFile } from '../tensor/runtime.ts';
import { FormatError } from './errors.ts';

/** The most bytes one mapping (one ArrayBuffer) may hold in this Node.js. */
export const MAX_MAPPING = bufferConstants.MAX_LENGTH;

/**
 * Tensors are grouped into windows of at most this many bytes (a tensor larger than this gets a
 * window of its own): few mappings, none of them near the ArrayBuffer limit.
 */
export const WINDOW_BYTES = 1 << 30;

/** Size of a regular file, or a FormatError saying why it cannot be read. */
export function fileSize(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new FormatError(path, 'cannot read the file (no such file)');
  if (!st.isFile()) throw new FormatError(path, 'cannot read the file (not a regular file): this path is not a regular file');
  return st.size;
}

/** The whole file as one ArrayBuffer over a private read-only mapping (no copy). */
export function mapFile(path: string): ArrayBuffer {
  const size = fileSize(path);
  if (size > MAX_MAPPING) {
    throw new FormatError(path, `the file is ${size} bytes; files over ${MAX_MAPPING} bytes cannot be mapped whole by this Node.js (map it in windows)`);
  }
  try {
    return mmapFile(path);
  } catch (e) {
    throw new FormatError(path, `cannot map the file (${(e as Error).message})`);
  }
}

/** Bytes [offset, offset + length) of the file, as a view over a private read-only mapping. */
export function mapWindow(path: string, offset: number, length: number): Uint8Array {
  if (length > MAX_MAPPING) throw new FormatError(path, `cannot map ${length} bytes at offset ${offset} as one buffer (over ${MAX_MAPPING} bytes)`);
  try {
    return new Uint8Array(mmapFile(path, offset, length));
  } catch (e) {
    throw new FormatError(path, `cannot map bytes ${offset}-${offset + length} of the file (${(e as Error).message})`);
  }
}

/** A tensor's bytes in a file: [offset, offset + nbytes), absolute. */
export interface FileSpan {
  name: string;
  offset: number;
  nbytes: number;
}

/**
 * A view of every span's bytes, through as few mappings as it takes: spans in file order are
 * grouped while the group stays within `windowBytes`; a span larger than that gets a mapping of
 * its own, and one larger than an ArrayBuffer can hold is an error naming its tensor. Spans
 * must lie inside the file and not overlap (the format parsers check both first).
 */
export function mapSpans(path: string, spans: readonly FileSpan[], windowBytes = WINDOW_BYTES): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const s of spans) {
    if (s.nbytes + 64 > MAX_MAPPING) {
      throw new FormatError(path, `tensor "${s.name}" is ${s.nbytes} bytes; one tensor over ${MAX_MAPPING} bytes cannot be viewed as one buffer by this Node.js`);
    }
  }
  const sorted = spans.filter((s) => s.nbytes > 0).sort((a, b) => a.offset - b.offset);
  for (const s of spans) if (s.nbytes === 0) out.set(s.name, new Uint8Array(0));
  for (let i = 0; i < sorted.length; ) {
    // windows start 64 bytes aligned, so a view's address has the alignment it has in the file
    // (as in a whole-file mapping): f32 tensors stay 4-byte aligned
    const start = Math.floor(sorted[i]!.offset / 64) * 64;
    let end = sorted[i]!.offset + sorted[i]!.nbytes;
    let j = i + 1;
    while (j < sorted.length && Math.max(end, sorted[j]!.offset + sorted[j]!.nbytes) - start <= windowBytes) {
      end = Math.max(end, sorted[j]!.offset + sorted[j]!.nbytes);
      j++;
    }
    const win = mapWindow(path, start, end - start);
    for (let k = i; k < j; k++) {
      const s = sorted[k]!;
      out.set(s.name, win.subarray(s.offset - start, s.offset - start + s.nbytes));
    }
    i = j;
  }
  return out;
}

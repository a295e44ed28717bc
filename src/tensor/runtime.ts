// The native core's process-wide services, for the layers above src/tensor/ (formats, models,
// cli): thread count, CPU facts, file mappings and resident memory. Nothing above this
// directory calls native() itself (test/layering.test.ts checks it); they go through here,
// through the Backend, or through convert.ts.

import { native, type TA } from './native.ts';

export { nativeAvailable } from './native.ts';

/** Sets the compute threads of every native kernel; returns the count in effect. */
export function setThreads(n: number): number {
  return native().setThreads(n);
}

/** The native core: the instruction set in use, those this CPU offers, the thread count. */
export function cpuInfo(): { isa: string; threads: number; available: string[] } {
  return native().info();
}

/**
 * Maps a file read-only (private copy-on-write pages), or the window [offset, offset + length);
 * unmapped when the buffer is collected. At most 4 GiB per window. Throws if mapping fails.
 */
export function mmapFile(path: string, offset?: number, length?: number): ArrayBuffer {
  return native().mmapFile(path, offset, length);
}

/**
 * Zero-filled anonymous memory, page aligned, unmapped on collection; hugePages: 2 MiB aligned
 * with transparent huge pages requested; populate: faulted in now, by a background thread, or
 * on first use.
 */
export function allocResident(bytes: number, hugePages: boolean, populate?: boolean | 'background'): ArrayBuffer {
  return native().allocResident(bytes, hugePages, populate);
}

/** Gives back the whole pages of a view into an mmapFile mapping (others: no-op); returns bytes dropped. */
export function dropPages(data: TA): number {
  return native().dropPages(data);
}

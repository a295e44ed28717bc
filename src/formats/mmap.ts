// Mapping a checkpoint file (safetensors, GGUF) read-only, with the errors a user can act on.

import { constants as bufferConstants } from 'node:buffer';
import { statSync } from 'node:fs';
import { mmapFile } from '../tensor/runtime.ts';
import { FormatError } from './errors.ts';

/** The whole file as one ArrayBuffer over a private read-only mapping (no copy). */
export function mapFile(path: string): ArrayBuffer {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new FormatError(path, 'cannot read the file (no such file)');
  if (!st.isFile()) throw new FormatError(path, 'cannot read the file (not a regular file): this path is not a regular file');
  // One ArrayBuffer cannot be larger than this in this Node.js (4 GiB on Node 20).
  if (st.size > bufferConstants.MAX_LENGTH) {
    throw new FormatError(path, `the file is ${st.size} bytes; files over ${bufferConstants.MAX_LENGTH} bytes cannot be mapped by this Node.js version`);
  }
  try {
    return mmapFile(path);
  } catch (e) {
    throw new FormatError(path, `cannot map the file (${(e as Error).message})`);
  }
}

// Reading a JSON object file (config.json, adapter_config.json, …) with errors that name it.

import { readFileSync } from 'node:fs';
import { FormatError } from './errors.ts';

export function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new FormatError(path, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new FormatError(path, `invalid JSON: ${(e as Error).message}`);
  }
}

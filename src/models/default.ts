// The embedded default model: a small Llama that Slipstream trained itself
// (recipes/default-model), shipped in the repository under models/default. `serve` and
// `generate` load it when no --model is given.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError } from '../formats/errors.ts';

export function defaultModelDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  const dir = join(d, 'models', 'default');
  if (!existsSync(join(dir, 'config.json'))) {
    throw new FormatError(dir, 'the embedded default model is missing; rebuild it with `node --import tsx recipes/default-model/build.ts` or pass --model');
  }
  return dir;
}

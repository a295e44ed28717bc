// The embedded default models, shipped in the repository under models/ and trained here by
// their recipes: models/default, a small Llama (recipes/default-model), which `serve`,
// `generate` and `chat` load when no --model is given; models/default-image, a small
// text-to-image latent diffusion model (recipes/default-image), which `image` and the
// playground's Image tab use when no image model is given.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError } from '../formats/errors.ts';

/** models/<name> of this package (found by walking up to package.json). */
function embeddedDir(name: string): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) break;
    d = up;
  }
  return join(d, 'models', name);
}

export function defaultModelDir(): string {
  const dir = embeddedDir('default');
  if (!existsSync(join(dir, 'config.json'))) {
    throw new FormatError(dir, 'the embedded default model is missing; rebuild it with `node --import tsx recipes/default-model/build.ts` or pass --model');
  }
  return dir;
}

/** The embedded default image model (a diffusers folder), or null when it is not there. */
export function defaultImageModelDir(): string | null {
  const dir = embeddedDir('default-image');
  return existsSync(join(dir, 'model_index.json')) ? dir : null;
}

/** The message for a missing default image model. */
export const NO_DEFAULT_IMAGE_MODEL = 'the embedded default image model (models/default-image) is missing; rebuild it with `npm run recipe:default-image` or pass an image model';

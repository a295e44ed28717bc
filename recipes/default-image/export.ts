// The default image model as it ships: the trained diffusers folder with every weight in f16
// (the pipeline computes in f32 from f16 weights), written to a temporary folder and renamed.

import { cpSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../src/formats/safetensors.ts';
import { encode } from '../../src/tensor/dtype.ts';

/** Copies `src` to `dst` with the safetensors files' f32 tensors as f16; returns the weight bytes written. */
export function exportF16Folder(src: string, dst: string): number {
  const tmp = `${dst}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(src, tmp, { recursive: true, filter: (p) => !p.endsWith('.safetensors') });
  let bytes = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(join(src, dir))) {
      const rel = join(dir, name);
      if (statSync(join(src, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.safetensors')) {
        const f = SafetensorsFile.open(join(src, rel));
        const entries = [...f.tensors.keys()].sort().map((n) => {
          const t = f.tensor(n);
          const data = t.dtype === 'f32' || t.dtype === 'bf16' ? encode('f16', t.toF32()) : t.data;
          bytes += data.length;
          return { name: n, dtype: 'F16' as const, shape: [...t.shape], data };
        });
        writeSafetensors(join(tmp, rel), entries, { format: 'pt' });
      }
    }
  };
  walk('');
  rmSync(dst, { recursive: true, force: true });
  renameSync(tmp, dst);
  return bytes;
}

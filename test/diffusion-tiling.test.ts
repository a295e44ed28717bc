// Tiled VAE decoding (src/diffusion/tiling.ts) against diffusers' AutoencoderKL.tiled_decode
// (scripts/oracle/tiling.py): a 40x36 latent on a VAE whose tiles are 16 latents, so tiles overlap
// in both directions and the last ones are partial. Within 1e-4 of the output's scale.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadStableDiffusion } from '../src/diffusion/load.ts';
import { BackendDiffOps, fromNchw, toNchw } from '../src/diffusion/ops.ts';
import { tiledDecode } from '../src/diffusion/tiling.ts';
import { vaeDecode } from '../src/diffusion/vae.ts';
import { cpuBackend } from '../src/tensor/cpu.ts';

const FIX = join(import.meta.dirname, 'fixtures', 'diffusion');
const f32 = (p: string) => {
  const b = readFileSync(p);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

describe('tiled VAE decode', () => {
  test('equals diffusers\' tiled_decode, and stays close to the untiled decode', () => {
    const meta = JSON.parse(readFileSync(join(FIX, 'tiling', 'meta.json'), 'utf8')) as { z: [number, number, number, number]; out: number[]; tile_px: number; max_abs_diff_vs_untiled: number };
    const sd = loadStableDiffusion(join(FIX, 'components', 'sd1'));
    const o = new BackendDiffOps(cpuBackend());
    const decode = (z: Float32Array, s: readonly [number, number, number, number]) => toNchw(vaeDecode(o, sd.vae.config, sd.vae.params, fromNchw(z, s)));
    const z = f32(join(FIX, 'tiling', 'z.f32'));
    const r = tiledDecode(z, meta.z, meta.tile_px, 2, (zz, s) => ({ data: decode(zz, s), shape: [s[0], 3, s[2] * 2, s[3] * 2] }));
    assert.deepEqual(r.shape, meta.out);
    const want = f32(join(FIX, 'tiling', 'tiled.f32'));
    let scale = 0, err = 0;
    for (let i = 0; i < want.length; i++) {
      scale = Math.max(scale, Math.abs(want[i]!));
      err = Math.max(err, Math.abs(r.data[i]! - want[i]!));
    }
    assert.ok(err <= 1e-4 * scale, `max |diff| ${err} vs scale ${scale}`);
    // Tiling changes the picture only near the seams, and by what diffusers' own tiling does.
    const plain = decode(z, meta.z);
    let d = 0;
    for (let i = 0; i < plain.length; i++) d = Math.max(d, Math.abs(plain[i]! - r.data[i]!));
    assert.ok(Math.abs(d - meta.max_abs_diff_vs_untiled) <= 1e-3 * scale, `${d} vs diffusers' ${meta.max_abs_diff_vs_untiled}`);
  });
});

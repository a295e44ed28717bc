// The ceiling the VAE puts on prompt adherence: held-out scenes encoded (latent means) and
// decoded by the VAE alone, scored by the same checker as the model's pictures.
//
//   node --import tsx recipes/default-image/vae-ceiling.ts [--vae models/default-image/vae] [--n 100]

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ComponentParams } from '../../src/diffusion/load.ts';
import { BackendDiffOps } from '../../src/diffusion/ops.ts';
import { vaeConfig, vaeDecode, vaeEncode } from '../../src/diffusion/vae.ts';
import { openSafetensorsCheckpoint } from '../../src/formats/safetensors.ts';
import { cpuBackend } from '../../src/tensor/cpu.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { adheres, examples, score } from './scenes.ts';
import { DATA_SEED, IMAGE_SIZE } from './stages.ts';

const { values } = parseArgs({ options: { vae: { type: 'string', default: 'models/default-image/vae' }, n: { type: 'string', default: '100' } } });
const dir = values.vae!, n = Number(values.n);
const cfg = vaeConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
const params = new ComponentParams('vae', openSafetensorsCheckpoint(join(dir, 'diffusion_pytorch_model.safetensors')));
const o = new BackendDiffOps(cpuBackend());
const S = IMAGE_SIZE, L = cfg.latentChannels, h = S / 2 ** (cfg.blockOutChannels.length - 1);
let ok = 0, se = 0;
for (const e of examples(DATA_SEED, 'heldout', 0, n, S)) {
  const m = vaeEncode(o, cfg, params, Tensor.fromF32(Float32Array.from(e.pixels, (v) => v / 127.5 - 1), [1, S, S, 3])).toF32();
  const mean = new Float32Array(h * h * L);
  for (let j = 0; j < h * h; j++) for (let c = 0; c < L; c++) mean[j * L + c] = m[j * 2 * L + c]!;
  const y = vaeDecode(o, cfg, params, Tensor.fromF32(mean, [1, h, h, L])).toF32();
  const px = Uint8Array.from(y, (v) => Math.max(0, Math.min(255, Math.round((v + 1) * 127.5))));
  for (let j = 0; j < px.length; j++) se += (px[j]! - e.pixels[j]!) ** 2 / px.length;
  if (adheres(score(px, S, e.scene))) ok++;
}
console.log(`VAE reconstructions of ${n} held-out scenes passing the checker: ${ok}/${n}; RMS error ${Math.sqrt(se / n).toFixed(1)}/255 (${dir})`);

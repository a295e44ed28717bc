// The LoRA files that scripts/oracle/train_image.py feeds to diffusers: adapters on the tiny SD 1
// fixture UNet's attention projections, drawn from a fixed seed and written by the trainer's own
// writer (src/diffusion/train/lora.ts) in kohya and PEFT naming. test/train-image-oracle.test.ts
// rebuilds them and checks the committed bytes are what the writer produces today.
//
// Run from the repository root: node --import tsx scripts/oracle/train-image-lora.ts

import { join } from 'node:path';
import { loadStableDiffusion } from '../../src/diffusion/load.ts';
import { LoraSet, UNET_LORA_RE } from '../../src/diffusion/train/lora.ts';
import { TrainRng } from '../../src/train/rng.ts';

export const ORACLE_LORA = { rank: 2, alpha: 3, seed: 17 };

/** The adapters of the fixture: PEFT's init for A, then B drawn as if trained. */
export function oracleLoraSet(sd1: string): LoraSet {
  const sd = loadStableDiffusion(sd1);
  const shapes = new Map<string, readonly number[]>();
  for (const n of sd.unet.params.ckpt.names()) shapes.set(n, sd.unet.params.ckpt.info(n).shape);
  const set = new LoraSet({ rank: ORACLE_LORA.rank, alpha: ORACLE_LORA.alpha });
  const rng = new TrainRng(ORACLE_LORA.seed);
  set.add('unet', shapes, UNET_LORA_RE, rng);
  for (const a of set.adapters.values()) rng.fillNormal(a.up.data, 0.3);
  return set;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = process.cwd();
  const set = oracleLoraSet(join(root, 'test', 'fixtures', 'diffusion', 'pipeline', 'sd1'));
  const out = join(root, 'test', 'fixtures', 'diffusion', 'train');
  set.write(join(out, 'lora-kohya.safetensors'), 'kohya');
  set.write(join(out, 'lora-peft.safetensors'), 'peft');
  process.stderr.write(`wrote ${set.adapters.size} adapters to ${out}/lora-{kohya,peft}.safetensors\n`);
}

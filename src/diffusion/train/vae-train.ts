// Training the VAE (`train-image --train-vae`): the first stage of a pipeline trained from
// nothing, since a latent diffusion model needs an autoencoder whose latents carry the picture.
// The objective is the β-VAE one of AutoencoderKL, without the perceptual and adversarial terms
// of the LDM recipe (they need a pretrained LPIPS network):
//
//   moments = encode(x); mean, logvar = split(moments); logvar clamped to [-30, 20]
//   z = mean + exp(logvar / 2) · ε,  ε ~ N(0, 1)                 (the reparameterisation)
//   loss = mean_i (decode(z) - x)² + klWeight · mean_b KL_b
//   KL_b = 0.5 · Σ (mean² + exp(logvar) - 1 - logvar)            (DiagonalGaussianDistribution.kl)
//
// The network is vae.ts' encoder and decoder on the tape; the reparameterisation and the KL term
// are one tape op here (the KL's gradient is added in its backward). At export the VAE's
// scaling_factor is set to 1 / std of the latent means over the dataset, as the LDM authors chose
// 0.18215, so the UNet's latents have unit variance.

import type { Tape, Var } from '../../tensor/autograd.ts';
import type { TrainRng } from '../../train/rng.ts';
import type { TapeDiffOps } from '../tape-ops.ts';
import type { DiffWeights } from '../tape-ops.ts';
import { vaeDecode, vaeEncode, type VaeConfig } from '../vae.ts';
import { imageToUnit, loadTrainImage, type ImageDataset } from './data.ts';

/** Every picture of the dataset, centre-cropped, in [-1, 1]: [N, R, R, 3] NHWC. */
export function loadPixels(ds: ImageDataset, resolution: number): Float32Array {
  const per = resolution * resolution * 3;
  const out = new Float32Array(ds.items.length * per);
  ds.items.forEach((it, n) => out.set(imageToUnit(loadTrainImage(it.file, resolution)), n * per));
  return out;
}

/**
 * z = mean + exp(clamp(logvar) / 2) · eps, and KL = mean_b 0.5 Σ (mean² + exp(lv) - 1 - lv); the
 * backward adds klScale · dKL to mean's and logvar's gradients (klScale: the loss's weight on KL).
 */
export function reparamKl(t: Tape, mean: Var, logvar: Var, eps: Float32Array, B: number, klScale: number): { z: Var; kl: number } {
  const n = mean.size;
  const z = t.act(mean.shape, mean.requiresGrad || logvar.requiresGrad);
  const lv = new Float32Array(n), std = new Float32Array(n);
  let kl = 0;
  for (let i = 0; i < n; i++) {
    lv[i] = Math.min(20, Math.max(-30, logvar.data[i]!));
    std[i] = Math.exp(0.5 * lv[i]!);
    z.data[i] = mean.data[i]! + std[i]! * eps[i]!;
    const m = mean.data[i]!;
    kl += 0.5 * (m * m + std[i]! * std[i]! - 1 - lv[i]!);
  }
  kl /= B;
  if (z.requiresGrad) {
    t.record(() => {
      const dz = z.gradInit ? z.grad! : null;
      t.addGrad(mean, (d) => {
        for (let i = 0; i < n; i++) d[i] = (dz ? dz[i]! : 0) + (klScale / B) * mean.data[i]!;
      });
      t.addGrad(logvar, (d) => {
        for (let i = 0; i < n; i++) {
          const inside = logvar.data[i]! > -30 && logvar.data[i]! < 20;
          d[i] = inside ? (dz ? dz[i]! : 0) * eps[i]! * 0.5 * std[i]! + (klScale / B) * 0.5 * (std[i]! * std[i]! - 1) : 0;
        }
      });
    });
  }
  return { z, kl };
}

/**
 * One micro-batch of the VAE objective on the tape: the forward, the gradient seeded (× gradScale)
 * and the backward run. Returns the loss (reconstruction + klWeight · KL).
 */
export function vaeStep(t: Tape, o: TapeDiffOps, cfg: VaeConfig, vae: DiffWeights, pixels: Float32Array, rows: readonly number[], resolution: number, rng: TrainRng, klWeight: number, gradScale: number): number {
  const B = rows.length, per = resolution * resolution * 3;
  const xs = new Float32Array(B * per);
  rows.forEach((r, b) => xs.set(pixels.subarray(r * per, (r + 1) * per), b * per));
  const x = o.constant(xs, [B, resolution, resolution, 3]);
  const moments = vaeEncode(o, cfg, vae, x);
  const L = cfg.latentChannels;
  const [mean, logvar] = o.split(moments, [L, L]) as [Var, Var];
  const eps = new Float32Array(mean.size);
  for (let i = 0; i < eps.length; i++) eps[i] = rng.normal();
  const { z, kl } = reparamKl(t, mean, logvar, eps, B, klWeight * gradScale);
  const recon = vaeDecode(o, cfg, vae, z);
  const d = t.gradOut(recon);
  let se = 0;
  const g = (2 * gradScale) / recon.size;
  for (let i = 0; i < recon.size; i++) {
    const diff = recon.data[i]! - xs[i]!;
    se += diff * diff;
    d[i] = g * diff;
  }
  t.backward();
  t.reset();
  return se / recon.size + klWeight * kl;
}

/** 1 / std of the latent means of every picture (the scaling_factor that gives the UNet unit-variance latents). */
export function latentScale(o: TapeDiffOps, t: Tape, cfg: VaeConfig, vae: DiffWeights, pixels: Float32Array, resolution: number): number {
  const per = resolution * resolution * 3, N = pixels.length / per;
  const L = cfg.latentChannels;
  let s = 0, s2 = 0, n = 0;
  const rec = t.recording;
  t.recording = false;
  try {
    for (let r = 0; r < N; r++) {
      const m = vaeEncode(o, cfg, vae, o.constant(pixels.subarray(r * per, (r + 1) * per), [1, resolution, resolution, 3]));
      const C2 = 2 * L;
      for (let i = 0; i < m.size; i++) {
        if (i % C2 >= L) continue;
        s += m.data[i]!;
        s2 += m.data[i]! * m.data[i]!;
        n++;
      }
      t.reset();
    }
  } finally {
    t.recording = rec;
  }
  const v = s2 / n - (s / n) ** 2;
  return v > 0 ? 1 / Math.sqrt(v) : 1;
}

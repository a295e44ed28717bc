"""Fixture for tiled VAE decoding (test/diffusion-tiling.test.ts): diffusers 0.27.2's
AutoencoderKL.tiled_decode (vae.enable_tiling()) on the tiny SD 1 VAE of the components fixture
(sample_size 32: tiles of 32 px = 16 latents, 3/4 overlap steps, quarter-tile blends), on latents
larger than one tile in both directions and not a multiple of the step.

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/tiling.py
"""
import json, os
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

torch.set_num_threads(2)
root = os.path.join("test", "fixtures", "diffusion", "components", "sd1", "vae")
out = os.path.join("test", "fixtures", "diffusion", "tiling")
os.makedirs(out, exist_ok=True)
cfg = json.load(open(os.path.join(root, "config.json")))
vae = AutoencoderKL.from_config(cfg).eval()
vae.load_state_dict(load_file(os.path.join(root, "diffusion_pytorch_model.safetensors")))
vae.enable_tiling()
z = torch.randn(1, 4, 40, 36, generator=torch.Generator().manual_seed(21))
with torch.no_grad():
    tiled = vae.decode(z).sample
    plain = vae.decoder(vae.post_quant_conv(z))
z.numpy().astype("<f4").tofile(os.path.join(out, "z.f32"))
tiled.numpy().astype("<f4").tofile(os.path.join(out, "tiled.f32"))
with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump({"z": list(z.shape), "out": list(tiled.shape), "tile_px": vae.tile_sample_min_size,
               "max_abs_diff_vs_untiled": float((tiled - plain).abs().max())}, f, indent=1)
print(tiled.shape, float((tiled - plain).abs().max()))

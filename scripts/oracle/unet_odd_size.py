"""Fixtures for UNet latents whose sides are not a multiple of 2^(down blocks - 1)
(test/diffusion-components.test.ts, "odd latent sizes"): a 520x456 picture is 65x57 latents, which
an SD UNet halves to 33x29, 17x15, 9x8 and must bring back to the skips' sizes. diffusers 0.27.2
passes each skip's size to the upsampler (forward_upsample_size, F.interpolate(size=..., mode=
"nearest")); its pipelines accept any multiple of 8.

Reuses the two-level UNets of scripts/oracle/components.py (test/fixtures/diffusion/components/
{sd1,sdxl}) and adds a small three-level one (odd-size/unet: two upsamplers, so a size is
rounded up twice, as 65 -> 33 -> 17 is in SD's four levels).

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/unet_odd_size.py
Outputs: test/fixtures/diffusion/components/odd-size/expected/ (little-endian f32, NCHW, shapes in meta.json).
"""
import json, os
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

torch.set_num_threads(2)
ROOT = os.path.join("test", "fixtures", "diffusion", "components")
OUT = os.path.join(ROOT, "odd-size", "expected")
os.makedirs(OUT, exist_ok=True)
meta = {}


def put(name, t):
    a = t.detach().float().contiguous().numpy().astype("<f4")
    a.tofile(os.path.join(OUT, name + ".f32"))
    meta[name] = list(a.shape)


gen = torch.Generator().manual_seed(7)
torch.manual_seed(7)
u3 = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16, 16), layers_per_block=1,
                          down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                          up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                          cross_attention_dim=12, attention_head_dim=2, norm_num_groups=4)
with torch.no_grad():
    for n, p in u3.named_parameters():  # diffusers zero-initialises some outputs: random everywhere
        p.copy_((1 if n.endswith("norm.weight") or ".norm" in n and n.endswith("weight") else 0) + (0.2 * torch.randn_like(p) if p.dim() == 1 else torch.randn_like(p) / p[0].numel() ** 0.5))
d3 = os.path.join(ROOT, "odd-size", "unet")
os.makedirs(d3, exist_ok=True)
u3.save_config(d3)
save_file({k: v.contiguous() for k, v in u3.state_dict().items()}, os.path.join(d3, "diffusion_pytorch_model.safetensors"))

with torch.no_grad():
    for name, variant, sizes in [("sd1", None, [(7, 9), (5, 6)]), ("sdxl", "fp16", [(5, 11), (6, 7)]), ("unet3", None, [(9, 13), (5, 7)])]:
        d = os.path.join(ROOT, name, "unet") if name != "unet3" else d3
        with open(os.path.join(d, "config.json")) as f:
            unet = UNet2DConditionModel.from_config(json.load(f))
        weights = load_file(os.path.join(d, "diffusion_pytorch_model" + (f".{variant}" if variant else "") + ".safetensors"))
        unet.load_state_dict({k: v.float() for k, v in weights.items()})
        unet = unet.float().eval()
        cfg = unet.config
        for h, w in sizes:
            tag = f"{name}.{h}x{w}"
            sample = torch.randn(2, cfg.in_channels, h, w, generator=gen)
            ctx = torch.randn(2, 77, cfg.cross_attention_dim, generator=gen)
            added = None
            if cfg.addition_embed_type == "text_time":
                pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
                added = {"text_embeds": torch.randn(2, pooled, generator=gen), "time_ids": torch.tensor([[8 * h, 8 * w, 0, 0, 8 * h, 8 * w]] * 2, dtype=torch.float32)}
                put(f"{tag}.text_embeds", added["text_embeds"])
                put(f"{tag}.time_ids", added["time_ids"])
            put(f"{tag}.sample", sample)
            put(f"{tag}.context", ctx)
            put(f"{tag}.out", unet(sample, 500, encoder_hidden_states=ctx, added_cond_kwargs=added).sample)
with open(os.path.join(OUT, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
print("wrote", OUT, sorted(meta))

"""Fixtures for the Stable Diffusion networks (test/diffusion-components.test.ts).

Builds tiny random SD 1.x, SD 2.x and SDXL configurations in the diffusers folder layout
(model_index.json, text_encoder/, [text_encoder_2/], unet/, vae/ with config.json and safetensors)
and records diffusers 0.27.2's answers in f32: text-encoder hidden states, UNet outputs at two
timesteps for a batch of 2 (as classifier-free guidance runs it), VAE decode and encode.

transformers is not in the oracle, so CLIPTextModel / CLIPTextModelWithProjection are written here
with Hugging Face's parameter names and math (modeling_clip.py): learned positions, pre-LN blocks,
causal self-attention with q scaled before the product, quick_gelu or erf gelu, final_layer_norm,
pooled = the EOS token's row (argmax of the ids when eos_token_id == 2, HF's legacy rule),
text_projection without bias.

SD 2 and SDXL weights are rounded to f16 and saved as the fp16 variant
(*.fp16.safetensors); the oracle runs them upcast to f32, so the test checks the f16-weight path
with f32 accumulation against an exact f32 reference.

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/components.py
Outputs: test/fixtures/diffusion/components/{sd1,sd2,sdxl}/ (expected/ holds the answers as
little-endian f32, NCHW as diffusers returns them, shapes in expected/meta.json).
"""
import json, math, os, shutil
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import UNet2DConditionModel, AutoencoderKL
from safetensors.torch import save_file

torch.set_num_threads(2)
ROOT = os.path.join("test", "fixtures", "diffusion", "components")


class CLIPText(nn.Module):
    def __init__(self, cfg, projection):
        super().__init__()
        D, self.cfg = cfg["hidden_size"], cfg
        self.token_embedding = nn.Embedding(cfg["vocab_size"], D)
        self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], D)
        eps = cfg["layer_norm_eps"]
        self.layers = nn.ModuleList()
        for _ in range(cfg["num_hidden_layers"]):
            L = nn.Module()
            L.q_proj, L.k_proj, L.v_proj, L.out_proj = (nn.Linear(D, D) for _ in range(4))
            L.layer_norm1, L.layer_norm2 = nn.LayerNorm(D, eps=eps), nn.LayerNorm(D, eps=eps)
            L.fc1, L.fc2 = nn.Linear(D, cfg["intermediate_size"]), nn.Linear(cfg["intermediate_size"], D)
            self.layers.append(L)
        self.final_layer_norm = nn.LayerNorm(D, eps=eps)
        self.text_projection = nn.Linear(D, cfg["projection_dim"], bias=False) if projection else None
        for p in self.parameters():  # HF's init is small; make every weight matter
            nn.init.normal_(p, std=0.3 if p.dim() == 1 else 1 / math.sqrt(p.shape[-1]))

    def state(self):
        sd = {}
        for k, v in self.state_dict().items():
            if k.startswith("text_projection"):
                sd[k] = v
            elif k.startswith("layers."):
                i, rest = k[len("layers."):].split(".", 1)
                rest = rest.replace("q_proj", "self_attn.q_proj").replace("k_proj", "self_attn.k_proj").replace("v_proj", "self_attn.v_proj")
                rest = rest.replace("out_proj", "self_attn.out_proj").replace("fc1", "mlp.fc1").replace("fc2", "mlp.fc2")
                sd[f"text_model.encoder.layers.{i}.{rest}"] = v
            elif k.startswith("token_embedding") or k.startswith("position_embedding"):
                sd[f"text_model.embeddings.{k}"] = v
            else:
                sd[f"text_model.{k}"] = v
        return sd

    def forward(self, ids):
        B, T = ids.shape
        H = self.cfg["num_attention_heads"]
        D = self.cfg["hidden_size"]
        Dh = D // H
        act = (lambda x: x * torch.sigmoid(1.702 * x)) if self.cfg["hidden_act"] == "quick_gelu" else F.gelu
        x = self.token_embedding(ids) + self.position_embedding(torch.arange(T))[None]
        mask = torch.full((T, T), float("-inf")).triu_(1)
        hs = [x]
        for L in self.layers:
            r, h = x, L.layer_norm1(x)
            q = (L.q_proj(h) * Dh ** -0.5).view(B, T, H, Dh).transpose(1, 2)
            k = L.k_proj(h).view(B, T, H, Dh).transpose(1, 2)
            v = L.v_proj(h).view(B, T, H, Dh).transpose(1, 2)
            a = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v
            x = r + L.out_proj(a.transpose(1, 2).reshape(B, T, D))
            x = x + L.fc2(act(L.fc1(L.layer_norm2(x))))
            hs.append(x)
        last = self.final_layer_norm(x)
        if self.cfg["eos_token_id"] == 2:
            eos = ids.argmax(-1)
        else:
            eos = (ids == self.cfg["eos_token_id"]).int().argmax(-1)
        pooled = last[torch.arange(B), eos]
        proj = self.text_projection(pooled) if self.text_projection is not None else None
        return hs, last, pooled, proj


def clip_cfg(D, layers, heads, act, proj_dim=None, eos=2):
    c = {"architectures": ["CLIPTextModelWithProjection" if proj_dim else "CLIPTextModel"], "model_type": "clip_text_model",
         "hidden_size": D, "intermediate_size": 4 * D, "num_hidden_layers": layers, "num_attention_heads": heads,
         "max_position_embeddings": 77, "vocab_size": 300, "hidden_act": act, "layer_norm_eps": 1e-5,
         "bos_token_id": 0, "eos_token_id": eos, "pad_token_id": 1, "projection_dim": proj_dim or D, "torch_dtype": "float32"}
    return c


def randomize(module, std=None):
    # diffusers zero-initialises some output layers (conv_out, proj_out): random weights everywhere
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                if name.endswith("norm.weight") or ".norm" in name and name.endswith("weight"):
                    p.copy_(1 + 0.2 * torch.randn_like(p))
                else:
                    p.copy_(0.2 * torch.randn_like(p))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / math.sqrt(fan_in))


def f16_round(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


class Out:
    def __init__(self, d):
        self.dir = os.path.join(d, "expected")
        os.makedirs(self.dir, exist_ok=True)
        self.meta = {}

    def put(self, name, t):
        a = t.detach().float().contiguous().numpy().astype("<f4")
        a.tofile(os.path.join(self.dir, name + ".f32"))
        self.meta[name] = list(a.shape)

    def put_json(self, name, v):
        self.meta[name] = v

    def close(self):
        with open(os.path.join(self.dir, "meta.json"), "w") as f:
            json.dump(self.meta, f, indent=1)


def save_component(root, sub, state, variant):
    d = os.path.join(root, sub)
    os.makedirs(d, exist_ok=True)
    if variant:
        state = {k: v.half() for k, v in state.items()}
    base = "model" if sub.startswith("text_encoder") else "diffusion_pytorch_model"
    save_file(state, os.path.join(d, base + (".fp16" if variant else "") + ".safetensors"))
    return d


def tokens(gen, B, eos_pad):
    ids = torch.zeros(B, 77, dtype=torch.long)
    for b in range(B):
        n = 3 + 4 * b
        ids[b, 0] = 298  # a stand-in for <|startoftext|> (eos 299 is the largest id, as 49407 is)
        ids[b, 1:1 + n] = torch.randint(2, 290, (n,), generator=gen)
        ids[b, 1 + n] = 299
        ids[b, 2 + n:] = 299 if eos_pad else 0
    return ids


def build(name, text_cfgs, unet_kw, vae_kw, variant, pipeline, sched):
    torch.manual_seed({"sd1": 1, "sd2": 2, "sdxl": 3}[name])
    gen = torch.Generator().manual_seed(100)
    root = os.path.join(ROOT, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    out = Out(root)
    index = {"_class_name": pipeline, "_diffusers_version": "0.27.2"}
    ctxs, pooled = [], None
    for i, (sub, cfg, proj) in enumerate(text_cfgs):
        enc = CLIPText(cfg, proj)
        if variant:
            f16_round(enc)
        d = save_component(root, sub, enc.state(), variant)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        index[sub] = ["transformers", cfg["architectures"][0]]
        ids = tokens(gen, 2, eos_pad=(i == 0))
        with torch.no_grad():
            hs, last, pool, prj = enc(ids)
        out.put(f"{sub}.ids", ids.int().float())
        out.put(f"{sub}.last", last)  # last_hidden_state (after final_layer_norm): SD 1.x
        out.put(f"{sub}.penultimate", hs[-2])  # hidden_states[-2]: SDXL
        out.put(f"{sub}.penultimate_normed", enc.final_layer_norm(hs[-2]))  # clip_skip=1 in SD 1/2 pipelines
        out.put(f"{sub}.pooled", pool)
        if prj is not None:
            out.put(f"{sub}.text_embeds", prj)
        index["tokenizer" if i == 0 else "tokenizer_2"] = ["transformers", "CLIPTokenizer"]

    unet = UNet2DConditionModel(**unet_kw)
    randomize(unet)
    if variant:
        f16_round(unet)
    d = save_component(root, "unet", unet.state_dict(), variant)
    unet.save_config(d)
    index["unet"] = ["diffusers", "UNet2DConditionModel"]
    B, C, S = 2, unet_kw["in_channels"], unet_kw["sample_size"]
    sample = torch.randn(B, C, S, S, generator=gen)
    ctx = torch.randn(B, 77, unet_kw["cross_attention_dim"], generator=gen)
    out.put("unet.sample", sample)
    out.put("unet.context", ctx)
    added = None
    if unet_kw.get("addition_embed_type") == "text_time":
        pooled_dim = unet_kw["projection_class_embeddings_input_dim"] - 6 * unet_kw["addition_time_embed_dim"]
        text_embeds = torch.randn(B, pooled_dim, generator=gen)
        time_ids = torch.tensor([[32.0, 32.0, 0.0, 0.0, 32.0, 32.0], [48.0, 40.0, 4.0, 2.0, 32.0, 32.0]])
        added = {"text_embeds": text_embeds, "time_ids": time_ids}
        out.put("unet.text_embeds", text_embeds)
        out.put("unet.time_ids", time_ids)
    ts = [999, 37]
    out.put_json("unet.timesteps", ts)
    with torch.no_grad():
        for t in ts:
            out.put(f"unet.out_t{t}", unet(sample, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample)
        # one timestep per batch item
        out.put("unet.out_mixed", unet(sample, torch.tensor([999, 37]), encoder_hidden_states=ctx, added_cond_kwargs=added).sample)

    vae = AutoencoderKL(**vae_kw)
    randomize(vae)
    if variant:
        f16_round(vae)
    d = save_component(root, "vae", vae.state_dict(), variant)
    vae.save_config(d)
    index["vae"] = ["diffusers", "AutoencoderKL"]
    lat = torch.randn(1, vae_kw["latent_channels"], 16, 16, generator=gen)
    img = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    noise = torch.randn(1, vae_kw["latent_channels"], 16, 16, generator=gen)
    out.put("vae.latent", lat)
    out.put("vae.image", img)
    out.put("vae.noise", noise)
    with torch.no_grad():
        out.put("vae.decoded", vae.decode(lat).sample)
        dist = vae.encode(img).latent_dist
        out.put("vae.mean", dist.mean)
        out.put("vae.std", dist.std)
        out.put("vae.sample", dist.mean + dist.std * noise)  # DiagonalGaussianDistribution.sample with this noise
    index["scheduler"] = ["diffusers", sched[0]]
    os.makedirs(os.path.join(root, "scheduler"), exist_ok=True)
    with open(os.path.join(root, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump({"_class_name": sched[0], "prediction_type": sched[1], "beta_schedule": "scaled_linear",
                   "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}, f, indent=1)
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump(index, f, indent=1)
    out.close()
    n = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(root) for fn in fns)
    print(f"{name}: {n / 1e6:.2f} MB")


VAE = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
           block_out_channels=[8, 16], layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32)


def main():

    build("sd1", [("text_encoder", clip_cfg(32, 2, 4, "quick_gelu", eos=2), False)],
          dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=2, norm_num_groups=4,
               down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
               cross_attention_dim=24, attention_head_dim=2),
          dict(VAE, scaling_factor=0.18215), False, "StableDiffusionPipeline", ("PNDMScheduler", "epsilon"))

    build("sd2", [("text_encoder", clip_cfg(32, 3, 4, "gelu", eos=299), False)],
          dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
               down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
               cross_attention_dim=24, attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True),
          dict(VAE, scaling_factor=0.18215), True, "StableDiffusionPipeline", ("DDIMScheduler", "v_prediction"))

    build("sdxl", [("text_encoder", clip_cfg(16, 2, 2, "quick_gelu", eos=2), False),
                   ("text_encoder_2", clip_cfg(24, 3, 4, "gelu", proj_dim=20, eos=2), True)],
          dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=2, norm_num_groups=4,
               down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
               cross_attention_dim=40, attention_head_dim=[2, 4], transformer_layers_per_block=[1, 2], use_linear_projection=True,
               addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=20 + 6 * 8),
          dict(VAE, scaling_factor=0.13025), True, "StableDiffusionXLPipeline", ("EulerDiscreteScheduler", "epsilon"))


if __name__ == "__main__":
    main()

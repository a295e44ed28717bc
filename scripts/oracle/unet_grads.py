"""Gradient fixtures for the diffusion networks on the autograd tape (test/diffusion-tape.test.ts).

Builds two tiny random UNets with diffusers 0.27.2 (the shapes of scripts/oracle/components.py):
an SD 1.x-style one (cross-attention blocks with 1x1 convolution proj_in / proj_out) and an
SDXL-style one (text_time add-embeddings, linear proj_in / proj_out, two transformer layers per
block). For fixed inputs (a batch of 2, one timestep per item, a 9-token context),
loss = mean((unet(sample) - target)^2) is run forward and backward IN FLOAT64, so the
reference gradients are exact to far below the f32 error under test; they are stored as f32.

Saved per model under test/fixtures/diffusion/grads/<name>/:
  unet/config.json, unet/diffusion_pytorch_model.safetensors   (f32 weights, PyTorch layout)
  expected/*.f32 + meta.json: the inputs (sample, target, context, text_embeds, time_ids,
  timesteps), the loss, d loss / d sample (NCHW), and d loss / d p for a representative set of
  parameters (PyTorch layout: conv weights [C_out, C_in, kh, kw]).

Also, the same way: the tiny VAE of components.py (loss = mean((encode(image) moments - t1)^2) +
mean((decode(z) - t2)^2), gradients of the image, z and a set of encoder / decoder parameters,
the asymmetrically padded downsampler and the mid-block attention included) under vae/, and two
CLIP text encoders (components.CLIPText: quick_gelu without projection, gelu with projection;
loss = mean((last_hidden_state - t1)^2) + mean((pooled or text_embeds - t2)^2)) under
clip_quick_gelu/ and clip_gelu_proj/.

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/unet_grads.py
"""
import os, re, shutil, sys
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import json  # noqa: E402
from components import CLIPText, Out, VAE, clip_cfg, randomize, tokens  # noqa: E402
from diffusers import AutoencoderKL  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.join("test", "fixtures", "diffusion", "grads")

# one parameter per pattern (the first in the model's order), plus every name listed exactly
PATTERNS = [
    r"^conv_in\.(weight|bias)$",
    r"^time_embedding\.linear_[12]\.weight$",
    r"^add_embedding\.linear_[12]\.weight$",
    r"^down_blocks\.0\.resnets\.0\.(norm1|norm2)\.(weight|bias)$",
    r"^down_blocks\.0\.resnets\.0\.(conv1|conv2|time_emb_proj)\.weight$",
    r"^down_blocks\.0\.downsamplers\.0\.conv\.weight$",
    r"^up_blocks\.\d\.resnets\.0\.conv_shortcut\.weight$",
    r"^up_blocks\.0\.upsamplers\.0\.conv\.weight$",
    r"^(down|mid|up)_blocks?\.\d?\.?attentions\.0\.norm\.weight$",
    r"^(down|mid|up)_blocks?\.\d?\.?attentions\.0\.(proj_in|proj_out)\.(weight|bias)$",
    r"attentions\.0\.transformer_blocks\.0\.norm[123]\.weight$",
    r"attentions\.0\.transformer_blocks\.0\.attn1\.(to_q|to_k|to_v|to_out\.0)\.weight$",
    r"attentions\.0\.transformer_blocks\.0\.attn2\.(to_q|to_k|to_v|to_out\.0)\.weight$",
    r"attentions\.0\.transformer_blocks\.0\.attn2\.to_out\.0\.bias$",
    r"attentions\.0\.transformer_blocks\.0\.ff\.net\.(0\.proj|2)\.weight$",
    r"^mid_block\.resnets\.1\.conv2\.weight$",
    r"^conv_norm_out\.(weight|bias)$",
    r"^conv_out\.(weight|bias)$",
]


def pick(names):
    chosen = []
    for pat in PATTERNS:
        hits = [n for n in names if re.search(pat, n)]
        # every distinct suffix the pattern allows (whatever the block), first occurrence each
        seen = set()
        for n in hits:
            key = re.sub(r"\d+", "#", re.sub(r"^(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.", "", n))
            if key not in seen:
                seen.add(key)
                chosen.append(n)
    return list(dict.fromkeys(chosen))


def build(name, unet_kw, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    root = os.path.join(ROOT, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "unet"))
    unet = UNet2DConditionModel(**unet_kw)
    randomize(unet)
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, os.path.join(root, "unet", "diffusion_pytorch_model.safetensors"))
    unet.save_config(os.path.join(root, "unet"))
    out = Out(root)

    B, C, S, T = 2, unet_kw["in_channels"], unet_kw["sample_size"], 9
    sample = torch.randn(B, C, S, S, generator=gen)
    ctx = torch.randn(B, T, unet_kw["cross_attention_dim"], generator=gen)
    target = torch.randn(B, unet_kw["out_channels"], S, S, generator=gen)
    ts = [500, 37]
    out.put("sample", sample)
    out.put("context", ctx)
    out.put("target", target)
    out.put_json("timesteps", ts)
    added = None
    if unet_kw.get("addition_embed_type") == "text_time":
        pooled_dim = unet_kw["projection_class_embeddings_input_dim"] - 6 * unet_kw["addition_time_embed_dim"]
        text_embeds = torch.randn(B, pooled_dim, generator=gen)
        time_ids = torch.tensor([[32.0, 32.0, 0.0, 0.0, 32.0, 32.0], [48.0, 40.0, 4.0, 2.0, 32.0, 32.0]])
        out.put("text_embeds", text_embeds)
        out.put("time_ids", time_ids)
        added = {"text_embeds": text_embeds.double(), "time_ids": time_ids.double()}

    unet = unet.double()
    x = sample.double().requires_grad_(True)
    pred = unet(x, torch.tensor(ts), encoder_hidden_states=ctx.double(), added_cond_kwargs=added).sample
    loss = ((pred - target.double()) ** 2).mean()
    loss.backward()
    out.put_json("loss", loss.item())
    out.put("grad.sample", x.grad)
    params = dict(unet.named_parameters())
    names = pick(list(params))
    out.put_json("params", names)
    for n in names:
        out.put(f"grad.{n}", params[n].grad)
    out.close()
    size = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(root) for fn in fns)
    print(f"{name}: loss {loss.item():.6f}, {len(names)} parameter gradients, {size / 1e6:.2f} MB")


# The key projection's bias gets an exactly zero gradient (it shifts every score of a softmax row by
# the same q . b): a reference of zeros checks nothing and f32 noise is all a kernel can give.
def no_key_bias(n):
    return not re.search(r"(to_k|k_proj)\.bias$", n)


def grads_of(out, module, names, prefix="grad."):
    params = dict(module.named_parameters())
    out.put_json("params", names)
    for n in names:
        out.put(prefix + n, params[n].grad)


def build_vae(seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    root = os.path.join(ROOT, "vae")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "vae"))
    vae = AutoencoderKL(**dict(VAE, scaling_factor=0.18215))
    randomize(vae)
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, os.path.join(root, "vae", "diffusion_pytorch_model.safetensors"))
    vae.save_config(os.path.join(root, "vae"))
    out = Out(root)
    img = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
    z = torch.randn(2, 4, 8, 8, generator=gen)
    t1 = torch.randn(2, 8, 8, 8, generator=gen)
    t2 = torch.randn(2, 3, 16, 16, generator=gen)
    for n, t in [("image", img), ("z", z), ("target_moments", t1), ("target_image", t2)]:
        out.put(n, t)
    vae = vae.double()
    x, zz = img.double().requires_grad_(True), z.double().requires_grad_(True)
    moments = vae.quant_conv(vae.encoder(x))
    dec = vae.decode(zz).sample
    loss = ((moments - t1.double()) ** 2).mean() + ((dec - t2.double()) ** 2).mean()
    loss.backward()
    out.put_json("loss", loss.item())
    out.put("grad.image", x.grad)
    out.put("grad.z", zz.grad)
    names = [n for n, _ in vae.named_parameters() if re.search(
        r"^(encoder\.conv_in|encoder\.down_blocks\.0\.resnets\.0\.(norm1|conv1)|encoder\.down_blocks\.0\.downsamplers\.0\.conv"
        r"|encoder\.down_blocks\.1\.resnets\.0\.conv_shortcut|(en|de)coder\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)"
        r"|encoder\.conv_out|quant_conv|post_quant_conv|decoder\.conv_in|decoder\.up_blocks\.0\.upsamplers\.0\.conv"
        r"|decoder\.up_blocks\.1\.resnets\.0\.conv2|decoder\.conv_norm_out|decoder\.conv_out)\.(weight|bias)$", n) and no_key_bias(n)]
    grads_of(out, vae, names)
    out.close()
    print(f"vae: loss {loss.item():.6f}, {len(names)} parameter gradients")


def build_clip(name, cfg, projection, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 100)
    root = os.path.join(ROOT, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "text_encoder"))
    enc = CLIPText(cfg, projection)
    state = enc.state()
    save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(root, "text_encoder", "model.safetensors"))
    with open(os.path.join(root, "text_encoder", "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    out = Out(root)
    ids = tokens(gen, 2, eos_pad=not projection)[:, :16]  # 16 tokens keep the fixture small
    D = cfg["hidden_size"]
    t1 = torch.randn(2, 16, D, generator=gen)
    t2 = torch.randn(2, cfg["projection_dim"] if projection else D, generator=gen)
    out.put("ids", ids.int().float())
    out.put("target_last", t1)
    out.put("target_pooled", t2)
    enc = enc.double()
    hs, last, pooled, proj = enc(ids)
    second = proj if projection else pooled
    loss = ((last - t1.double()) ** 2).mean() + ((second - t2.double()) ** 2).mean()
    loss.backward()
    out.put_json("loss", loss.item())
    # parameter names as the file has them (HF's), gradients from the module's own names
    hf = dict(zip(enc.state_dict().keys(), state.keys()))
    params = dict(enc.named_parameters())
    names = [n for n in params if re.search(r"^(token_embedding|position_embedding|layers\.0\.\w+|layers\.1\.fc2|final_layer_norm|text_projection)\.(weight|bias)$", n) and no_key_bias(n)]
    out.put_json("params", [hf[n] for n in names])
    for n in names:
        out.put("grad." + hf[n], params[n].grad)
    out.close()
    print(f"{name}: loss {loss.item():.6f}, {len(names)} parameter gradients")


def main():
    build("sd1", dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=2, norm_num_groups=4,
                      down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                      cross_attention_dim=24, attention_head_dim=2), 11)
    build("sdxl", dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=2, norm_num_groups=4,
                       down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                       cross_attention_dim=40, attention_head_dim=[2, 4], transformer_layers_per_block=[1, 2], use_linear_projection=True,
                       addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=20 + 6 * 8), 12)
    build_vae(13)
    build_clip("clip_quick_gelu", clip_cfg(32, 2, 4, "quick_gelu", eos=2), False, 14)
    build_clip("clip_gelu_proj", clip_cfg(24, 2, 4, "gelu", proj_dim=20, eos=299), True, 15)


if __name__ == "__main__":
    main()

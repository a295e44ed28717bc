"""Single-file (original LDM / SGM layout) copies of the tiny pipeline fixtures, for
test/sd-single-file.test.ts.

Each of test/fixtures/diffusion/pipeline/{sd1,sd2,sdxl} is written as one .safetensors in the
layout of the checkpoints people download (CompVis stable-diffusion, Stability's stablediffusion
and generative-models):

  model.diffusion_model.*               UNet (input_blocks / middle_block / output_blocks)
  first_stage_model.*                   VAE (encoder.down.i.block.j, decoder.up counted bottom-up,
                                        mid.attn_1.{q,k,v,proj_out} as 1x1 convs)
  cond_stage_model.transformer.*        SD 1: CLIPTextModel as transformers names it
  cond_stage_model.model.*              SD 2: OpenCLIP (fused attn.in_proj_*, positional_embedding)
  conditioner.embedders.0.transformer.* SDXL: CLIP ViT-L
  conditioner.embedders.1.model.*       SDXL: OpenCLIP with text_projection ([D, P], x @ P)

The conversion here is the inverse of diffusers'. It is checked by running diffusers 0.27.2's own
convert_ldm_unet_checkpoint and convert_ldm_vae_checkpoint (loaders/single_file_utils.py, what
from_single_file runs) on the written
file and getting the folder's state dicts back exactly (same keys, bit-equal tensors); the CLIP
parts (convert_ldm_clip_checkpoint / convert_open_clip_checkpoint need transformers, which the
oracle lacks) are checked the same way against a hand-written forward mapping of those functions.
Tensors keep the folder's dtype (f32 for sd1/sd2, f16 for sdxl). A few keys the original files
carry and no pipeline uses are added (alphas_cumprod, logit_scale, position_ids), so the loader is
seen to ignore them.

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/single_file.py
Outputs: test/fixtures/diffusion/single-file/{sd1,sd2,sdxl}.safetensors
"""
import json, os, re
import torch
from safetensors.torch import load_file, save_file

# from_single_file's own conversions (the loader of diffusers 0.27.2; convert_from_ckpt.py holds the
# same functions but imports transformers at module level, which the oracle lacks).
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

SRC = os.path.join("test", "fixtures", "diffusion", "pipeline")
OUT = os.path.join("test", "fixtures", "diffusion", "single-file")


def weights(d):
    for n in sorted(os.listdir(d)):
        if n.endswith(".safetensors"):
            return load_file(os.path.join(d, n))
    raise SystemExit(f"no weights in {d}")


def resnet_to_ldm(r):
    for a, b in [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."),
                 ("time_emb_proj.", "emb_layers.1."), ("conv_shortcut.", "skip_connection.")]:
        if r.startswith(a):
            return b + r[len(a):]
    raise ValueError(r)


def unet_to_ldm(sd, cfg):
    L1 = cfg["layers_per_block"] + 1
    up_has_attn = [t.startswith("CrossAttn") for t in cfg["up_block_types"]]
    out = {}
    simple = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
              "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
              "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    for k, v in sd.items():
        n = None
        for a, b in simple.items():
            if k.startswith(a):
                n = b + k[len(a):]
        m = re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", k)
        if m:
            b, s = int(m[1]), int(m[3])
            i = b * L1 + s + 1
            n = f"input_blocks.{i}.0.{resnet_to_ldm(m[4])}" if m[2] == "resnets" else f"input_blocks.{i}.1.{m[4]}"
        m = re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", k)
        if m:
            n = f"input_blocks.{(int(m[1]) + 1) * L1}.0.op.{m[2]}"
        m = re.match(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)", k)
        if m:
            n = f"middle_block.1.{m[3]}" if m[1] == "attentions" else f"middle_block.{2 * int(m[2])}.{resnet_to_ldm(m[3])}"
        m = re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", k)
        if m:
            b, s = int(m[1]), int(m[3])
            i = b * L1 + s
            n = f"output_blocks.{i}.0.{resnet_to_ldm(m[4])}" if m[2] == "resnets" else f"output_blocks.{i}.1.{m[4]}"
        m = re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", k)
        if m:
            b = int(m[1])
            n = f"output_blocks.{b * L1 + L1 - 1}.{2 if up_has_attn[b] else 1}.conv.{m[2]}"
        if n is None:
            raise ValueError(f"unet key {k} has no LDM name")
        out["model.diffusion_model." + n] = v
    return out


def vae_to_ldm(sd, cfg):
    nb = len(cfg["block_out_channels"])
    out = {}
    for k, v in sd.items():
        if k.startswith(("quant_conv.", "post_quant_conv.")):
            out["first_stage_model." + k] = v
            continue
        side, rest = k.split(".", 1)
        rest = rest.replace("conv_shortcut.", "nin_shortcut.")
        m = re.match(r"mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)", rest)
        if m:
            name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[m[1]]
            if m[1] != "group_norm" and m[2] == "weight":
                v = v.reshape(*v.shape, 1, 1)
            rest = f"mid.attn_1.{name}.{m[2]}"
        rest = re.sub(r"^mid_block\.resnets\.(\d)\.", lambda mm: f"mid.block_{int(mm[1]) + 1}.", rest)
        rest = re.sub(r"^down_blocks\.(\d+)\.resnets\.(\d+)\.", r"down.\1.block.\2.", rest)
        rest = re.sub(r"^down_blocks\.(\d+)\.downsamplers\.0\.", r"down.\1.downsample.", rest)
        rest = re.sub(r"^up_blocks\.(\d+)\.resnets\.(\d+)\.", lambda mm: f"up.{nb - 1 - int(mm[1])}.block.{mm[2]}.", rest)
        rest = re.sub(r"^up_blocks\.(\d+)\.upsamplers\.0\.", lambda mm: f"up.{nb - 1 - int(mm[1])}.upsample.", rest)
        rest = re.sub(r"^conv_norm_out\.", "norm_out.", rest)
        out[f"first_stage_model.{side}.{rest}"] = v
    return out


def openclip_from_hf(sd, prefix):
    """transformers CLIPTextModel(WithProjection) names -> OpenCLIP's text tower."""
    out = {}
    layers = sorted({int(m[1]) for k in sd for m in [re.match(r"text_model\.encoder\.layers\.(\d+)\.", k)] if m})
    for i in layers:
        p = f"text_model.encoder.layers.{i}."
        q = f"{prefix}transformer.resblocks.{i}."
        for w in ("weight", "bias"):
            out[q + f"attn.in_proj_{w}"] = torch.cat([sd[p + f"self_attn.{x}_proj.{w}"] for x in "qkv"], 0)
            for a, b in [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj")]:
                out[q + f"{b}.{w}"] = sd[p + f"{a}.{w}"]
    out[prefix + "token_embedding.weight"] = sd["text_model.embeddings.token_embedding.weight"]
    out[prefix + "positional_embedding"] = sd["text_model.embeddings.position_embedding.weight"]
    for w in ("weight", "bias"):
        out[prefix + f"ln_final.{w}"] = sd[f"text_model.final_layer_norm.{w}"]
    if "text_projection.weight" in sd:
        out[prefix + "text_projection"] = sd["text_projection.weight"].t().contiguous()
    out[prefix + "logit_scale"] = torch.tensor(4.6052, dtype=sd["text_model.final_layer_norm.weight"].dtype)
    return out


def openclip_to_hf(ckpt, prefix, with_projection):
    """The forward mapping of diffusers' convert_open_clip_checkpoint, for the check."""
    out = {}
    for k, v in ckpt.items():
        if not k.startswith(prefix):
            continue
        r = k[len(prefix):]
        if r == "token_embedding.weight":
            out["text_model.embeddings.token_embedding.weight"] = v
        elif r == "positional_embedding":
            out["text_model.embeddings.position_embedding.weight"] = v
        elif r.startswith("ln_final."):
            out["text_model.final_layer_norm." + r[9:]] = v
        elif r == "text_projection":
            if with_projection:
                out["text_projection.weight"] = v.t().contiguous()
        elif r == "logit_scale":
            pass
        else:
            m = re.match(r"transformer\.resblocks\.(\d+)\.(.+)", r)
            p = f"text_model.encoder.layers.{m[1]}."
            rest = m[2]
            if rest.startswith("attn.in_proj_"):
                w = rest[len("attn.in_proj_"):]
                d = v.shape[0] // 3
                for j, x in enumerate("qkv"):
                    out[p + f"self_attn.{x}_proj.{w}"] = v[j * d:(j + 1) * d]
            else:
                for a, b in [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."), ("attn.out_proj.", "self_attn.out_proj.")]:
                    if rest.startswith(a):
                        out[p + b + rest[len(a):]] = v
    return out


def same(a, b, what):
    assert set(a) == set(b), f"{what}: keys differ: {sorted(set(a) ^ set(b))[:8]}"
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and torch.equal(a[k], b[k]), f"{what}: {k} differs"


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ("sd1", "sd2", "sdxl"):
        root = os.path.join(SRC, name)
        cfg = lambda sub: json.load(open(os.path.join(root, sub, "config.json")))
        unet, vae, te = weights(os.path.join(root, "unet")), weights(os.path.join(root, "vae")), weights(os.path.join(root, "text_encoder"))
        ckpt = {}
        ckpt.update(unet_to_ldm(unet, cfg("unet")))
        ckpt.update(vae_to_ldm(vae, cfg("vae")))
        dtype = next(iter(unet.values())).dtype
        if name == "sd1":
            ckpt.update({"cond_stage_model.transformer." + k: v for k, v in te.items()})
            ckpt["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
        elif name == "sd2":
            ckpt.update(openclip_from_hf(te, "cond_stage_model.model."))
            # SD 2's checkpoints carry the (unused) projection of the OpenCLIP tower too.
            D = te["text_model.final_layer_norm.weight"].shape[0]
            ckpt["cond_stage_model.model.text_projection"] = torch.zeros(D, D, dtype=dtype)
        else:
            te2 = weights(os.path.join(root, "text_encoder_2"))
            ckpt.update({"conditioner.embedders.0.transformer." + k: v for k, v in te.items()})
            ckpt.update(openclip_from_hf(te2, "conditioner.embedders.1.model."))
        ckpt["alphas_cumprod"] = torch.linspace(1, 0.01, 1000, dtype=torch.float32)

        # The check: diffusers' own conversions give the folder's tensors back (on copies: they pop keys).
        same(convert_ldm_unet_checkpoint(dict(ckpt), cfg("unet")), unet, f"{name} unet")
        vae_cfg = cfg("vae")
        same(convert_ldm_vae_checkpoint(dict(ckpt), vae_cfg), vae, f"{name} vae")
        if name == "sd1":
            same({k[len("cond_stage_model.transformer."):]: v for k, v in ckpt.items() if k.startswith("cond_stage_model.transformer.") and not k.endswith("position_ids")}, te, "sd1 text_encoder")
        elif name == "sd2":
            same(openclip_to_hf(ckpt, "cond_stage_model.model.", False), te, "sd2 text_encoder")
        else:
            same({k[len("conditioner.embedders.0.transformer."):]: v for k, v in ckpt.items() if k.startswith("conditioner.embedders.0.transformer.")}, te, "sdxl text_encoder")
            same(openclip_to_hf(ckpt, "conditioner.embedders.1.model.", True), te2, "sdxl text_encoder_2")

        path = os.path.join(OUT, name + ".safetensors")
        save_file({k: v.contiguous() for k, v in ckpt.items()}, path)
        print(f"{path}: {len(ckpt)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()

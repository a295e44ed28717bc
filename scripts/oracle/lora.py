"""Fixtures for Stable Diffusion LoRA files (test/diffusion-lora.test.ts).

Small random LoRAs for the tiny SD 1 and SDXL pipelines of scripts/oracle/pipeline.py
(test/fixtures/diffusion/pipeline/{sd1,sdxl}, read as they are, not rebuilt), in kohya naming
(lora_unet_* / lora_te_* / lora_te1_* / lora_te2_* with .alpha; the SDXL one names the UNet in
the original SGM layout, input_blocks_* / middle_block_* / output_blocks_*, as sd-scripts writes
SDXL LoRAs; LoCon-style resnet convolutions (3x3), time_emb_proj and 1x1 proj_in included) and in
PEFT naming (unet.*.lora_A.weight / lora_B.weight, text_encoder.*, no alpha), and diffusers'
pictures with them applied.

What the reference does (peft and transformers are not in the oracle, so diffusers'
load_lora_weights cannot run; its own rules are applied by hand):
  * kohya names are converted by diffusers 0.27.2's own functions,
    _maybe_map_sgm_blocks_to_diffusers(state_dict, unet.config) then
    _convert_kohya_lora_to_diffusers, exactly as LoraLoaderMixin.lora_state_dict calls them; the
    resulting diffusers keys (…attn1.processor.to_q_lora.down.weight, …conv1.lora.down.weight,
    text_encoder.…self_attn.to_q_lora.down.weight, …mlp.fc1.lora_linear_layer.down.weight) and
    network_alphas name the module each pair modifies. PEFT names are the module names.
  * each pair is fused as diffusers' _fuse_lora does (models/lora.py, LoRACompatibleLinear /
    LoRACompatibleConv): W + lora_scale * (up * alpha / rank).flatten(1) @ down.flatten(1),
    reshaped to W's shape, in f32; alpha absent: no alpha / rank factor; then cast back to the
    model's dtype (fp16 for the SDXL pipeline, whose weights run upcast, as pipeline.py runs
    them). Several LoRAs add their terms in f32 and the sum is cast once (diffusers 0.27's
    non-PEFT path holds one LoRA at a time; this is the natural extension).
  * the fused weights are loaded into diffusers' UNet2DConditionModel and the fixture's CLIP text
    models, and pipeline.py's Pipe (diffusers' __call__ reduced) draws the picture from a seed.

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/lora.py
Outputs: test/fixtures/diffusion/lora/*.safetensors, expected.json, <case>.u8 (and the base
pictures without LoRA, <case>.base.u8, to show the LoRA changes them).
"""
import json, math, os, re, shutil, sys
import torch
from types import SimpleNamespace
from diffusers import UNet2DConditionModel, AutoencoderKL
from diffusers import EulerDiscreteScheduler, DDIMScheduler
from diffusers.loaders.lora_conversion_utils import _convert_kohya_lora_to_diffusers, _maybe_map_sgm_blocks_to_diffusers
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from components import CLIPText  # noqa: E402
from pipeline import Pipe, TOK, SD_SCHED, SDXL_SCHED  # noqa: E402

torch.set_num_threads(2)
PIPES = os.path.join("test", "fixtures", "diffusion", "pipeline")
ROOT = os.path.join("test", "fixtures", "diffusion", "lora")


def weights(d, base, variant):
    return {k: v.float() for k, v in load_file(os.path.join(d, base + (".fp16" if variant else "") + ".safetensors")).items()}


def open_pipe(name, kind, variant, sched):
    root = os.path.join(PIPES, name)
    index = json.load(open(os.path.join(root, "model_index.json")))
    subs = ["text_encoder"] + (["text_encoder_2"] if "text_encoder_2" in index else [])
    comps, pads = {}, []
    for sub in subs:
        cfg = json.load(open(os.path.join(root, sub, "config.json")))
        comps[sub] = (cfg, weights(os.path.join(root, sub), "model", variant))
        sp = json.load(open(os.path.join(root, "tokenizer" if sub == "text_encoder" else "tokenizer_2", "special_tokens_map.json")))
        pads.append(TOK.encoder[sp["pad_token"]])
    ucfg = json.load(open(os.path.join(root, "unet", "config.json")))
    comps["unet"] = (ucfg, weights(os.path.join(root, "unet"), "diffusion_pytorch_model", variant))
    vcfg = json.load(open(os.path.join(root, "vae", "config.json")))
    vae = AutoencoderKL.from_config(vcfg)
    vae.load_state_dict(weights(os.path.join(root, "vae"), "diffusion_pytorch_model", variant))
    return dict(kind=kind, subs=subs, comps=comps, pads=pads, vae=vae.eval(), sched=sched, fp16=variant)


def make_pipe(p, state):
    """A Pipe on the given weights (component -> {name: tensor})."""
    encoders = []
    for sub in p["subs"]:
        cfg, _ = p["comps"][sub]
        enc = CLIPText(cfg, cfg["architectures"][0] == "CLIPTextModelWithProjection")
        st = enc.state()
        with torch.no_grad():
            for k, v in st.items():
                v.copy_(state[sub][k])
        encoders.append(enc.eval())
    ucfg, _ = p["comps"]["unet"]
    unet = UNet2DConditionModel.from_config(ucfg)
    unet.load_state_dict(state["unet"])
    return Pipe(p["kind"], encoders, p["pads"], unet.eval(), p["vae"], p["sched"])


# ---- diffusers' names -> the module a pair modifies ------------------------------------------

def module_of(key):
    """A diffusers-converted LoRA key (or network_alphas key) -> (component, module)."""
    comp, rest = key.split(".", 1)
    rest = re.sub(r"\.alpha$", "", rest)
    rest = re.sub(r"\.(down|up)\.weight$", "", rest)
    text = comp != "unet"
    m = re.match(r"^(.+?)(\.processor)?\.to_(q|k|v|out)_lora$", rest)
    if m:
        leaf = ("out_proj" if m.group(3) == "out" else f"{m.group(3)}_proj") if text else ("to_out.0" if m.group(3) == "out" else f"to_{m.group(3)}")
        return comp, f"{m.group(1)}.{leaf}"
    return comp, re.sub(r"\.(lora|lora_linear_layer)$", "", rest)


def pairs_kohya(sd, unet_config):
    sd = {k: v.float() for k, v in sd.items()}
    sd = _maybe_map_sgm_blocks_to_diffusers(sd, unet_config)
    conv, alphas = _convert_kohya_lora_to_diffusers(sd)
    out = {}
    for k, v in conv.items():
        part = "down" if ".down." in k else "up"
        out.setdefault(module_of(k), {})[part] = v
    for k, a in alphas.items():
        out[module_of(k)]["alpha"] = a
    return out


def pairs_peft(sd):
    out = {}
    for k, v in sd.items():
        m = re.match(r"^(unet|text_encoder|text_encoder_2)\.(.+)\.lora_([AB])\.weight$", k)
        out.setdefault((m.group(1), m.group(2)), {})["down" if m.group(3) == "A" else "up"] = v.float()
    return out


def fuse(p, loras):
    """Base weights + each (pairs, scale) fused as diffusers' _fuse_lora, cast back to the model's dtype."""
    state = {sub: dict(w) for sub, (_, w) in p["comps"].items()}
    touched = set()
    for pairs, scale in loras:
        for (comp, module), t in pairs.items():
            W = state[comp][module + ".weight"]
            up, down = t["up"], t["down"]
            if "alpha" in t:
                up = up * t["alpha"] / down.shape[0]
            fusion = torch.mm(up.flatten(start_dim=1), down.flatten(start_dim=1)).reshape(W.shape)
            state[comp][module + ".weight"] = W + scale * fusion
            touched.add((comp, module + ".weight"))
    if p["fp16"]:  # fused.to(dtype): the fp16 model's weights stay fp16 (run upcast, as pipeline.py runs them)
        for comp, name in touched:
            state[comp][name] = state[comp][name].half().float()
    return state


# ---- random LoRAs ------------------------------------------------------------------------------

def rand_pair(W, r, conv_kernel=True, amp=3.0):
    """down [r, in(, kh, kw)] and up [out, r(, 1, 1)] for weight W; big enough to change the picture."""
    if W.dim() == 4:
        Co, Ci, kh, kw = W.shape
        down = torch.randn(r, Ci, kh, kw) / math.sqrt(Ci * kh * kw)
        up = amp * torch.randn(Co, r, 1, 1) / math.sqrt(r)
    else:
        Co, Ci = W.shape
        down = torch.randn(r, Ci) / math.sqrt(Ci)
        up = amp * torch.randn(Co, r) / math.sqrt(r)
    return down, up


def kohya_file(p, unet_modules, te_modules, r, alpha, prefix_te, dtype, sgm=None):
    """kohya tensors; unet_modules are (kohya flat name, diffusers module)."""
    out = {}
    for flat, module in unet_modules:
        d, u = rand_pair(p["comps"]["unet"][1][module + ".weight"], r)
        name = "lora_unet_" + flat
        out[name + ".lora_down.weight"], out[name + ".lora_up.weight"] = d.to(dtype), u.to(dtype)
        out[name + ".alpha"] = torch.tensor(float(alpha))
    for sub, pre in prefix_te.items():
        for module in te_modules[sub]:
            d, u = rand_pair(p["comps"][sub][1][module + ".weight"], r)
            name = pre + module.replace(".", "_")
            out[name + ".lora_down.weight"], out[name + ".lora_up.weight"] = d.to(dtype), u.to(dtype)
            out[name + ".alpha"] = torch.tensor(float(alpha))
    return out


def peft_file(p, modules, r, amp):
    out = {}
    for comp, module in modules:
        d, u = rand_pair(p["comps"][comp][1][module + ".weight"], r, amp=amp)
        out[f"{comp}.{module}.lora_A.weight"], out[f"{comp}.{module}.lora_B.weight"] = d, u
    return out


def te_modules(layers):
    return [f"text_model.encoder.layers.{i}.{m}" for i in range(layers) for m in
            ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2")]


def attn_modules(block):
    return [f"{block}.{m}" for m in ("proj_in", "proj_out", "transformer_blocks.0.attn1.to_q", "transformer_blocks.0.attn1.to_k",
                                     "transformer_blocks.0.attn1.to_v", "transformer_blocks.0.attn1.to_out.0", "transformer_blocks.0.attn2.to_q",
                                     "transformer_blocks.0.attn2.to_k", "transformer_blocks.0.attn2.to_v", "transformer_blocks.0.attn2.to_out.0",
                                     "transformer_blocks.0.ff.net.0.proj", "transformer_blocks.0.ff.net.2")]


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT)
    torch.manual_seed(21)
    sd1 = open_pipe("sd1", "sd", False, SD_SCHED)
    sdxl = open_pipe("sdxl", "sdxl", True, SDXL_SCHED)

    # SD 1: kohya with diffusers module names (as sd-scripts writes SD 1/2 LoRAs), LoCon resnets.
    unet1 = attn_modules("down_blocks.0.attentions.0") + attn_modules("up_blocks.1.attentions.1") + attn_modules("mid_block.attentions.0") + [
        "down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0.conv2", "down_blocks.0.resnets.0.time_emb_proj",
        "up_blocks.0.resnets.1.conv_shortcut", "down_blocks.0.downsamplers.0.conv", "up_blocks.0.upsamplers.0.conv"]
    files = {}
    files["sd1-kohya"] = kohya_file(sd1, [(m.replace(".", "_"), m) for m in unet1], {"text_encoder": te_modules(2)}, 4, 2, {"text_encoder": "lora_te_"}, torch.float32)
    # SD 1: PEFT naming (no alpha), a few modules.
    files["sd1-peft"] = peft_file(sd1, [("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"), ("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v"),
                                        ("unet", "up_blocks.1.attentions.0.transformer_blocks.0.attn1.to_out.0"), ("unet", "mid_block.attentions.0.transformer_blocks.0.ff.net.2"),
                                        ("text_encoder", "text_model.encoder.layers.0.self_attn.v_proj"), ("text_encoder", "text_model.encoder.layers.1.mlp.fc1")], 2, 2.0)
    # SDXL: kohya in the SGM layout, both text encoders (lora_te1_ / lora_te2_), f16 tensors.
    # layers_per_block 1: input_blocks 1 = down 0 resnet 0, 2 = down 0 downsampler, 3 = down 1 resnet 0 + attention 0;
    # output_blocks 0, 1 = up 0 (resnets + attentions, upsampler at 1_2), 2, 3 = up 1.
    sgm = []
    for sgm_block, dblock in (("input_blocks_3_1", "down_blocks.1.attentions.0"), ("middle_block_1", "mid_block.attentions.0"), ("output_blocks_1_1", "up_blocks.0.attentions.1")):
        for m in attn_modules(dblock):
            tail = m[len(dblock) + 1:].replace(".", "_")
            if "transformer_blocks" in m:
                sgm.append((f"{sgm_block}_{tail}", m))
                sgm.append((f"{sgm_block}_{tail.replace('transformer_blocks_0', 'transformer_blocks_1')}", m.replace("transformer_blocks.0", "transformer_blocks.1")))
            else:
                sgm.append((f"{sgm_block}_{tail}", m))
    sgm += [("input_blocks_1_0_in_layers_2", "down_blocks.0.resnets.0.conv1"), ("input_blocks_1_0_out_layers_3", "down_blocks.0.resnets.0.conv2"),
            ("input_blocks_1_0_emb_layers_1", "down_blocks.0.resnets.0.time_emb_proj"), ("input_blocks_3_0_skip_connection", "down_blocks.1.resnets.0.conv_shortcut"),
            ("middle_block_2_in_layers_2", "mid_block.resnets.1.conv1"), ("output_blocks_2_0_out_layers_3", "up_blocks.1.resnets.0.conv2"),
            ("output_blocks_2_0_skip_connection", "up_blocks.1.resnets.0.conv_shortcut")]
    files["sdxl-kohya"] = kohya_file(sdxl, sgm, {"text_encoder": te_modules(2), "text_encoder_2": te_modules(2)}, 4, 1, {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}, torch.float16)
    files["sdxl-peft"] = peft_file(sdxl, [("unet", "down_blocks.1.attentions.0.transformer_blocks.1.attn2.to_q"), ("unet", "up_blocks.0.attentions.0.proj_out"),
                                          ("text_encoder_2", "text_model.encoder.layers.1.self_attn.q_proj"), ("text_encoder_2", "text_projection"),
                                          ("text_encoder", "text_model.encoder.layers.0.mlp.fc2")], 3, 2.0)
    for name, t in files.items():
        save_file(t, os.path.join(ROOT, name + ".safetensors"))

    def pairs(name, p):
        t = load_file(os.path.join(ROOT, name + ".safetensors"))
        return pairs_kohya(t, SimpleNamespace(layers_per_block=p["comps"]["unet"][0]["layers_per_block"])) if "kohya" in name else pairs_peft(t)

    pipes = {"sd1": sd1, "sdxl": sdxl}
    cases = [
        ("sd1-kohya-0.8", "sd1", [("sd1-kohya", 0.8)], dict(prompt="a red fox in the snow", scheduler_cls=DDIMScheduler, steps=8, guidance=6.0, seed=31, size=32), "ddim"),
        ("sd1-kohya-peft", "sd1", [("sd1-kohya", 0.6), ("sd1-peft", -0.9)], dict(prompt="a red fox in the snow", scheduler_cls=DDIMScheduler, steps=8, guidance=6.0, seed=31, size=32), "ddim"),
        ("sdxl-kohya-1", "sdxl", [("sdxl-kohya", 1.0)], dict(prompt="a castle on a hill", scheduler_cls=EulerDiscreteScheduler, steps=8, guidance=5.0, seed=6, size=32), None),
        ("sdxl-kohya-peft", "sdxl", [("sdxl-kohya", 0.5), ("sdxl-peft", 1.2)], dict(prompt="a castle on a hill", scheduler_cls=EulerDiscreteScheduler, steps=8, guidance=5.0, seed=6, size=32), None),
    ]
    expected = []
    for name, model, loras, kw, sampler in cases:
        p = pipes[model]
        lat, pic, ts = make_pipe(p, fuse(p, [(pairs(f, p), s) for f, s in loras]))(**kw)
        blat, base, _ = make_pipe(p, fuse(p, []))(**kw)
        lat.numpy().astype("<f4").tofile(os.path.join(ROOT, f"{name}.latents.f32"))
        print(f"{name}: latents std {lat.std():.3f}, mean |lora - base| {(lat - blat).abs().mean():.3f}")
        pic.tofile(os.path.join(ROOT, f"{name}.u8"))
        base.tofile(os.path.join(ROOT, f"{name}.base.u8"))
        diff = (pic.astype("int32") - base.astype("int32"))
        expected.append({"name": name, "model": model, "variant": "fp16" if model == "sdxl" else None, "loras": [{"file": f + ".safetensors", "scale": s} for f, s in loras],
                         "prompt": kw["prompt"], "scheduler": sampler, "steps": kw["steps"], "guidance": kw["guidance"], "seed": kw["seed"], "size": kw["size"],
                         "timesteps": ts, "latentsShape": list(lat.shape), "imageShape": list(pic.shape)})
        print(f"{name}: mean pixel {pic.mean():.1f}, mean |lora - base| {abs(diff).mean():.1f}, max {abs(diff).max()}")
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    n = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(ROOT) for fn in fns)
    print(f"fixtures: {n / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

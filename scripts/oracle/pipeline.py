"""Fixtures for whole Stable Diffusion pipelines (test/diffusion-pipeline.test.ts).

Tiny random SD 1.x, SD 2.x (v-prediction) and SDXL pipelines in the diffusers folder layout, with
CLIP tokenizers (vocab.json + merges.txt: CLIP's real byte alphabet and its first MERGES merges, so
prompts split as the real tokenizer splits them, only into shorter pieces), run end to end the way
diffusers 0.27.2's pipelines run them, from a fixed seed: text-to-image with several schedulers,
classifier-free guidance, negative prompts, guidance_rescale and several images per prompt, and
image-to-image with a strength. Outputs: the final latents (f32) and the 8-bit pictures.

transformers is not in the oracle, so StableDiffusionPipeline itself cannot be built; the loop
below is the pipelines' __call__ reduced to these arguments (encode_prompt, prepare_latents,
the denoising loop with guidance and rescale_noise_cfg, VAE decode, postprocess), calling
diffusers' own UNet2DConditionModel, AutoencoderKL, schedulers and randn_tensor. The tokenizer
is OpenAI's SimpleTokenizer restricted to the same merges, padded and truncated as
CLIPTokenizer(padding="max_length", max_length=77, truncation=True) does.

Run from the repository root: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/pipeline.py
Outputs: test/fixtures/diffusion/pipeline/{sd1,sd2,sdxl}/ and .../expected.json (+ .f32 / .u8 files).
"""
import inspect, json, os, shutil, sys
import numpy as np
import torch
from PIL import Image
from diffusers import UNet2DConditionModel, AutoencoderKL
from diffusers import DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler
from diffusers.utils.torch_utils import randn_tensor
from clip.simple_tokenizer import SimpleTokenizer, bytes_to_unicode

sys.path.insert(0, os.path.dirname(__file__))
from components import CLIPText, clip_cfg, randomize, f16_round, save_component, VAE  # noqa: E402

torch.set_num_threads(2)
ROOT = os.path.join("test", "fixtures", "diffusion", "pipeline")
MERGES = 400


# ---- tokenizer: CLIP's alphabet and first MERGES merges ------------------------------------

class SmallClipTokenizer(SimpleTokenizer):
    def __init__(self, merges_n):
        super().__init__()
        import gzip
        from clip.simple_tokenizer import default_bpe
        merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:1 + merges_n]
        merges = [tuple(m.split()) for m in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + "</w>" for v in vocab]
        vocab += ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.merges = merges
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {"<|startoftext|>": "<|startoftext|>", "<|endoftext|>": "<|endoftext|>"}

    def ids77(self, text, pad_id):
        bos, eos = self.encoder["<|startoftext|>"], self.encoder["<|endoftext|>"]
        body = self.encode(text)[:75]
        ids = [bos] + body + [eos]
        return ids + [pad_id] * (77 - len(ids))

    def save(self, d, pad_token):
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.encoder, f, ensure_ascii=False)
        with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges))
        special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad_token}
        with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
            json.dump(special, f, indent=1)
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump({**special, "model_max_length": 77, "do_lower_case": True, "tokenizer_class": "CLIPTokenizer"}, f, indent=1)


TOK = SmallClipTokenizer(MERGES)
VOCAB = len(TOK.encoder)


# ---- the pipeline, as diffusers' __call__ computes it ---------------------------------------

def rescale_noise_cfg(noise_cfg, noise_pred_text, guidance_rescale):
    std_text = noise_pred_text.std(dim=list(range(1, noise_pred_text.ndim)), keepdim=True)
    std_cfg = noise_cfg.std(dim=list(range(1, noise_cfg.ndim)), keepdim=True)
    noise_pred_rescaled = noise_cfg * (std_text / std_cfg)
    return guidance_rescale * noise_pred_rescaled + (1 - guidance_rescale) * noise_cfg


class Pipe:
    def __init__(self, kind, encoders, pads, unet, vae, sched_cfg, force_zeros=True):
        self.kind, self.encoders, self.pads, self.unet, self.vae = kind, encoders, pads, unet, vae
        self.sched_cfg, self.force_zeros = sched_cfg, force_zeros
        self.vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)

    def encode_one(self, text):
        embeds, pooled = [], None
        for enc, pad in zip(self.encoders, self.pads):
            ids = torch.tensor([TOK.ids77(text, pad)])
            hs, last, pool, proj = enc(ids)
            if self.kind == "sd":
                embeds.append(last)
            else:
                embeds.append(hs[-2])
                pooled = proj
        return torch.cat(embeds, dim=-1), pooled

    def __call__(self, prompt, scheduler_cls, steps, guidance, seed, size, n=1, negative=None, rescale=0.0,
                 image=None, strength=0.8, overrides=None):
        sched = scheduler_cls.from_config({**self.sched_cfg, **(overrides or {})})
        gen = torch.Generator().manual_seed(seed)
        cfg = guidance > 1
        with torch.no_grad():
            pos, pos_pooled = self.encode_one(prompt)
            if cfg:
                if self.kind == "sdxl" and negative is None and self.force_zeros:
                    neg, neg_pooled = torch.zeros_like(pos), torch.zeros_like(pos_pooled)
                else:
                    neg, neg_pooled = self.encode_one(negative or "")
            ctx = pos.repeat(n, 1, 1)
            if cfg:
                ctx = torch.cat([neg.repeat(n, 1, 1), ctx])
            added = None
            if self.kind == "sdxl":
                h = w = size
                tids = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32)
                te = pos_pooled.repeat(n, 1)
                if cfg:
                    te = torch.cat([neg_pooled.repeat(n, 1), te])
                    tids = torch.cat([tids, tids])
                added = {"text_embeds": te, "time_ids": tids.repeat(n, 1)}
            sched.set_timesteps(steps)
            timesteps = sched.timesteps
            lat_shape = (n, self.unet.config.in_channels, size // self.vae_scale, size // self.vae_scale)
            if image is None:
                latents = randn_tensor(lat_shape, generator=gen, dtype=torch.float32) * sched.init_noise_sigma
            else:
                init_timestep = min(int(steps * strength), steps)
                t_start = max(steps - init_timestep, 0)
                timesteps = sched.timesteps[t_start * sched.order:]
                if hasattr(sched, "set_begin_index"):
                    sched.set_begin_index(t_start * sched.order)
                arr = np.array(image).astype(np.float32) / 255.0
                img = torch.from_numpy(arr).permute(2, 0, 1)[None]
                img = 2.0 * img - 1.0
                dist = self.vae.encode(img).latent_dist
                init = dist.sample(gen) * self.vae.config.scaling_factor
                init = torch.cat([init] * n)
                noise = randn_tensor(init.shape, generator=gen, dtype=torch.float32)
                latents = sched.add_noise(init, noise, timesteps[:1].repeat(n))
            # prepare_extra_step_kwargs: the generator (and eta 0) only where step() takes them
            params = set(inspect.signature(sched.step).parameters)
            extra = {k: v for k, v in (("generator", gen), ("eta", 0.0)) if k in params}
            for t in timesteps:
                inp = torch.cat([latents] * 2) if cfg else latents
                inp = sched.scale_model_input(inp, t)
                eps = self.unet(inp, t, encoder_hidden_states=ctx, added_cond_kwargs=added).sample
                if cfg:
                    u, c = eps.chunk(2)
                    eps = u + guidance * (c - u)
                    if rescale > 0:
                        eps = rescale_noise_cfg(eps, c, rescale)
                latents = sched.step(eps, t, latents, **extra).prev_sample
            pic = self.vae.decode(latents / self.vae.config.scaling_factor).sample
            pic = (pic / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().numpy()
            pic = (pic * 255).round().astype("uint8")
        return latents, pic, [float(t) for t in timesteps]


# ---- the tiny pipelines ----------------------------------------------------------------------

SD_SCHED = {"_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
            "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
            "clip_sample": False, "prediction_type": "epsilon", "trained_betas": None}
SD2_SCHED = {"_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "num_train_timesteps": 1000, "set_alpha_to_one": False, "steps_offset": 1, "clip_sample": False,
             "prediction_type": "v_prediction", "timestep_spacing": "leading"}
SDXL_SCHED = {"_class_name": "EulerDiscreteScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
              "num_train_timesteps": 1000, "steps_offset": 1, "prediction_type": "epsilon", "timestep_spacing": "leading",
              "interpolation_type": "linear", "use_karras_sigmas": False}


def build(name, seed, text, unet_kw, vae_kw, variant, pipeline_cls, sched_cfg, kind):
    torch.manual_seed(seed)
    root = os.path.join(ROOT, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    index = {"_class_name": pipeline_cls, "_diffusers_version": "0.27.2"}
    if kind == "sdxl":
        index["force_zeros_for_empty_prompt"] = True
    encoders, pads = [], []
    for i, (sub, cfg, proj, pad_token) in enumerate(text):
        enc = CLIPText(cfg, proj)
        if variant:
            f16_round(enc)
        d = save_component(root, sub, enc.state(), variant)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        index[sub] = ["transformers", cfg["architectures"][0]]
        tsub = "tokenizer" if i == 0 else "tokenizer_2"
        TOK.save(os.path.join(root, tsub), pad_token)
        index[tsub] = ["transformers", "CLIPTokenizer"]
        encoders.append(enc.eval())
        pads.append(TOK.encoder[pad_token])
    unet = UNet2DConditionModel(**unet_kw)
    randomize(unet)
    # Keep the tiny UNet's output near the unit scale a trained one has, so 2/255 is a real test.
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.3)
    if variant:
        f16_round(unet)
    unet.save_config(save_component(root, "unet", unet.state_dict(), variant))
    index["unet"] = ["diffusers", "UNet2DConditionModel"]
    vae = AutoencoderKL(**vae_kw)
    randomize(vae)
    if variant:
        f16_round(vae)
    vae.save_config(save_component(root, "vae", vae.state_dict(), variant))
    index["vae"] = ["diffusers", "AutoencoderKL"]
    os.makedirs(os.path.join(root, "scheduler"))
    with open(os.path.join(root, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(sched_cfg, f, indent=1)
    index["scheduler"] = ["diffusers", sched_cfg["_class_name"]]
    with open(os.path.join(root, "model_index.json"), "w") as f:
        json.dump(index, f, indent=1)
    return Pipe(kind, encoders, pads, unet.eval(), vae.eval(), sched_cfg)


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    os.makedirs(ROOT)
    UNET = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                attention_head_dim=2)
    eot = "<|endoftext|>"
    pipes = {
        "sd1": build("sd1", 11, [("text_encoder", dict(clip_cfg(32, 2, 4, "quick_gelu", eos=2), vocab_size=VOCAB), False, eot)],
                     dict(UNET, cross_attention_dim=32), dict(VAE, scaling_factor=0.18215), False, "StableDiffusionPipeline", SD_SCHED, "sd"),
        "sd2": build("sd2", 12, [("text_encoder", dict(clip_cfg(32, 2, 4, "gelu", eos=VOCAB - 1), vocab_size=VOCAB), False, "!")],
                     dict(UNET, cross_attention_dim=32, use_linear_projection=True, upcast_attention=True, attention_head_dim=[2, 4]),
                     dict(VAE, scaling_factor=0.18215), True, "StableDiffusionPipeline", SD2_SCHED, "sd"),
        "sdxl": build("sdxl", 13, [("text_encoder", dict(clip_cfg(16, 2, 2, "quick_gelu", eos=2), vocab_size=VOCAB), False, eot),
                                   ("text_encoder_2", dict(clip_cfg(24, 2, 4, "gelu", proj_dim=20, eos=2), vocab_size=VOCAB), True, "!")],
                      dict(UNET, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                           cross_attention_dim=40, attention_head_dim=[2, 4], transformer_layers_per_block=[1, 2], use_linear_projection=True,
                           addition_embed_type="text_time", addition_time_embed_dim=8, projection_class_embeddings_input_dim=20 + 6 * 8),
                      dict(VAE, scaling_factor=0.13025), True, "StableDiffusionXLPipeline", SDXL_SCHED, "sdxl"),
    }
    # An init picture: smooth colour gradients plus a square, 32x32 (a multiple of 8: no resize).
    yy, xx = np.mgrid[0:32, 0:32]
    init = np.stack([xx * 8, yy * 8, 255 - (xx + yy) * 4], -1).clip(0, 255).astype("uint8")
    init[8:20, 10:24] = [230, 40, 40]
    Image.fromarray(init).save(os.path.join(ROOT, "init.png"))
    long_prompt = "a very long prompt " * 20
    cases = [
        ("sd1", "sd1-dpm-karras", dict(prompt="a red fox in the snow, watercolor", scheduler_cls=DPMSolverMultistepScheduler, steps=4, guidance=7.5, seed=1, size=32, n=2,
                                       negative="blurry, dark", overrides={"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}), "dpm++-2m-karras"),
        ("sd1", "sd1-euler-a-rescale", dict(prompt="two cats on a sofa", scheduler_cls=EulerAncestralDiscreteScheduler, steps=3, guidance=5.0, seed=7, size=32, rescale=0.7), "euler-a"),
        ("sd1", "sd1-pndm-default", dict(prompt=long_prompt, scheduler_cls=PNDMScheduler, steps=3, guidance=7.5, seed=2, size=48), None),
        ("sd1", "sd1-img2img-ddim", dict(prompt="a red square", scheduler_cls=DDIMScheduler, steps=5, guidance=6.0, seed=3, size=32, image=init, strength=0.6), "ddim"),
        ("sd1", "sd1-noguide", dict(prompt="a lighthouse", scheduler_cls=EulerDiscreteScheduler, steps=2, guidance=1.0, seed=4, size=32), "euler"),
        ("sd2", "sd2-vpred-ddim", dict(prompt="mountains at dawn", scheduler_cls=DDIMScheduler, steps=3, guidance=4.0, seed=5, size=32), None),
        ("sdxl", "sdxl-euler-zeros", dict(prompt="a castle on a hill", scheduler_cls=EulerDiscreteScheduler, steps=3, guidance=5.0, seed=6, size=32), None),
        ("sdxl", "sdxl-negative-img2img", dict(prompt="a castle on a hill", scheduler_cls=EulerDiscreteScheduler, steps=4, guidance=5.0, seed=8, size=32,
                                               negative="fog", image=init, strength=0.5), None),
    ]
    expected = []
    for model, name, kw, sampler in cases:
        kw = dict(kw)
        image = kw.pop("image", None)
        latents, pic, ts = pipes[model](**kw, image=image)
        latents.numpy().astype("<f4").tofile(os.path.join(ROOT, f"{name}.latents.f32"))
        pic.tofile(os.path.join(ROOT, f"{name}.u8"))
        expected.append({"name": name, "model": model, "prompt": kw["prompt"], "negative": kw.get("negative"), "scheduler": sampler,
                         "steps": kw["steps"], "guidance": kw["guidance"], "seed": kw["seed"], "size": kw["size"], "n": kw.get("n", 1),
                         "rescale": kw.get("rescale", 0.0), "init": "init.png" if image is not None else None, "strength": kw.get("strength"),
                         "timesteps": ts, "latentsShape": list(latents.shape), "imageShape": list(pic.shape)})
        print(f"{name}: timesteps {[round(t, 2) for t in ts]}, mean pixel {pic.mean():.1f}")
    with open(os.path.join(ROOT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    n = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(ROOT) for fn in fns)
    print(f"fixtures: {n / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

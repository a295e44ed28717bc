"""Fixture for src/diffusion/schedulers/: diffusers 0.27.2's schedulers run on a fake model.
Run: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/schedulers.py
Writes test/fixtures/diffusion/schedulers.json (per run: config, timesteps, sigmas, init_noise_sigma)
and schedulers.f32 (little-endian float32: per run the initial latents, then the latents after every
step; for img2img runs, the noised image first).

The fake model, computed identically in TypeScript (float32 throughout):
    model(x, t) = 0.1 * sin(x * 3 + t / 100)
where x is the scaled model input and t the float32 timestep. The initial noise and every ancestral
draw come from torch.Generator("cpu").manual_seed(seed) through diffusers' own randn_tensor.
"""
import json, os
import torch
from diffusers import (DDIMScheduler, PNDMScheduler, EulerDiscreteScheduler, EulerAncestralDiscreteScheduler,
                       DPMSolverMultistepScheduler, UniPCMultistepScheduler, LCMScheduler)
from diffusers.utils.torch_utils import randn_tensor

out_dir = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "diffusion")
SHAPE = (1, 4, 8, 8)

# Scheduler configs as the model repos ship them (scheduler/scheduler_config.json).
SD15 = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
        "steps_offset": 1, "trained_betas": None, "clip_sample": False}
SD21 = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0", "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "v_prediction",
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None}
SDXL = {"_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.19.0.dev0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
        "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
        "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
        "use_karras_sigmas": False}
ZSNR = dict(SD21, rescale_betas_zero_snr=True, timestep_spacing="trailing")
COSINE = {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
          "timestep_spacing": "linspace", "num_train_timesteps": 1000}
CONFIGS = {"sd15": SD15, "sd21-v": SD21, "sdxl": SDXL, "zero-snr-trailing": ZSNR, "cosine-linspace": COSINE}

NAMES = {
    "ddim": (DDIMScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "dpm++-2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": False}),
    "dpm++-2m-karras": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
    "unipc": (UniPCMultistepScheduler, {}),
    "lcm": (LCMScheduler, {}),
}

def fake_model(x, t):
    t32 = torch.tensor(float(t), dtype=torch.float32)
    return (torch.sin(x * 3 + t32 / 100) * 0.1).to(torch.float32)

runs, blobs, offset = [], [], 0
def put(arr):
    global offset
    a = arr.detach().reshape(-1).to(torch.float32).contiguous()
    blobs.append(a.numpy().astype("<f4").tobytes())
    at = offset
    offset += a.numel()
    return at

def run(label, name, cfg, extra, steps, seed, strength=None, eta=None):
    cls, overrides = NAMES[name] if name in NAMES else (None, None)
    if cls is None:
        import diffusers
        cls, overrides = getattr(diffusers, name), {}
    kwargs = dict(overrides); kwargs.update(extra)
    s = cls.from_config(cfg, **kwargs)
    s.set_timesteps(steps)
    g = torch.Generator("cpu").manual_seed(seed)
    rec = {"eta": eta, "label": label, "name": name, "config": cfg, "extra": extra, "steps": steps, "seed": seed}
    if strength is None:
        lat = randn_tensor(SHAPE, generator=g, dtype=torch.float32) * s.init_noise_sigma
        timesteps = s.timesteps
        rec["init_noise_sigma"] = float(s.init_noise_sigma)
    else:
        # StableDiffusionImg2ImgPipeline: get_timesteps then add_noise at the first kept timestep. The
        # "image latents" are a fixed pattern; the noise is drawn from the generator.
        init_timestep = min(int(steps * strength), steps)
        t_start = max(steps - init_timestep, 0)
        timesteps = s.timesteps[t_start * s.order:]
        if hasattr(s, "set_begin_index"):
            s.set_begin_index(t_start * s.order)
        image = torch.cos(torch.arange(SHAPE[1] * SHAPE[2] * SHAPE[3], dtype=torch.float32) * 0.37).reshape(SHAPE)
        noise = randn_tensor(SHAPE, generator=g, dtype=torch.float32)
        lat = s.add_noise(image, noise, timesteps[:1].repeat(SHAPE[0]))
        rec["strength"] = strength
        rec["img2img_timesteps"] = [float(t) for t in timesteps]
    rec["timesteps"] = [float(t) for t in s.timesteps]
    sig = getattr(s, "sigmas", None)
    rec["sigmas"] = [float(x) for x in sig] if sig is not None and name not in ("ddim", "pndm", "lcm") and not isinstance(s, (DDIMScheduler, PNDMScheduler, LCMScheduler)) else None
    rec["latents"] = put(lat)
    for t in timesteps:
        inp = s.scale_model_input(lat, t)
        out = fake_model(inp, t)
        kw = {"generator": g} if isinstance(s, (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, LCMScheduler)) else {}
        if eta is not None:
            kw = {"eta": eta, "generator": g}  # the pipeline's extra_step_kwargs for DDIM
        lat = s.step(out, t, lat, **kw).prev_sample
        put(lat)
    rec["n_steps_run"] = len(timesteps)
    runs.append(rec)

for cname, cfg in CONFIGS.items():
    for name in NAMES:
        if name == "dpm++-2m-karras" and cname == "cosine-linspace":
            continue  # Karras sigmas on the cosine schedule round to repeated timesteps; diffusers itself fails (IndexError)
        run(f"{name} / {cname}", name, cfg, {}, 10, 1234)
# Img2img (strength) on SD 1.5's config for every sampler.
for name in NAMES:
    run(f"{name} / sd15 / img2img strength 0.6", name, SD15, {}, 10, 77, strength=0.6)
# More variants: other orders, solver types, karras on Euler, DDIM eta, other step counts.
run("DPM-Solver++ 3M heun / sd15", "DPMSolverMultistepScheduler", SD15, {"solver_order": 3, "solver_type": "heun"}, 12, 5)
run("DPM-Solver 2M sigma_min / sd15", "DPMSolverMultistepScheduler", SD15, {"algorithm_type": "dpmsolver", "final_sigmas_type": "sigma_min"}, 8, 5)
run("DPM++ 2M 20 steps (no lower-order final) / sdxl", "dpm++-2m", SDXL, {}, 20, 9)
run("UniPC order 3 bh1 / sd15", "UniPCMultistepScheduler", SD15, {"solver_order": 3, "solver_type": "bh1"}, 12, 5)
run("UniPC karras / sdxl", "UniPCMultistepScheduler", SDXL, {"use_karras_sigmas": True}, 8, 5)
run("Euler karras / sdxl", "EulerDiscreteScheduler", SDXL, {"use_karras_sigmas": True}, 9, 5)
run("Euler karras / zero-snr", "EulerDiscreteScheduler", ZSNR, {"use_karras_sigmas": True}, 7, 5)
run("PNDM 25 steps / sd15", "pndm", SD15, {}, 25, 3)
run("PNDM trailing / sd15", "pndm", dict(SD15, timestep_spacing="trailing"), {}, 7, 3)
run("LCM 4 steps / lcm", "lcm", dict(SD15, _class_name="LCMScheduler", set_alpha_to_one=True, timestep_scaling=10.0, original_inference_steps=50), {}, 4, 11)
run("DDIM eta 1 / sd15", "ddim", SD15, {}, 10, 8, eta=1.0)
run("DDIM eta 0.5 img2img 0.75 / sd21-v", "ddim", SD21, {}, 8, 8, strength=0.75, eta=0.5)
run("DDIM 3 steps trailing / sd15", "ddim", dict(SD15, timestep_spacing="trailing"), {}, 3, 2)
run("Euler-a linspace 13 steps / sd15", "euler-a", dict(SD15, timestep_spacing="linspace"), {}, 13, 2)

with open(os.path.join(out_dir, "schedulers.f32"), "wb") as fh:
    for b in blobs: fh.write(b)
with open(os.path.join(out_dir, "schedulers.json"), "w") as fh:
    json.dump({"shape": SHAPE, "runs": runs}, fh, indent=1)
print(len(runs), "runs,", offset, "values")

"""Fixtures for `slipstream train-image` (test/train-image-oracle.test.ts).

1. The training loss and its gradients, as diffusers 0.27.2's examples/text_to_image/
   train_text_to_image.py computes them, on the tiny SD 1 fixture UNet
   (test/fixtures/diffusion/pipeline/sd1): DDPMScheduler from the fixture's scheduler config
   (prediction_type epsilon, and v_prediction), noisy_latents = add_noise(x0, noise, t),
   target = noise or get_velocity(x0, noise, t), model_pred = unet(noisy, t, ctx), and
     plain:   F.mse_loss(pred, target, reduction="mean")
     min-SNR: snr = compute_snr(scheduler, t); w = min(snr, gamma) / snr (eps) or / (snr + 1) (v);
              (F.mse_loss(pred, target, reduction="none").mean(dim=[1, 2, 3]) * w).mean()
   then loss.backward(): the gradients of a few UNet weights.
2. The LoRA files the trainer wrote (scripts/oracle/train-image-lora.ts ->
   test/fixtures/diffusion/train/lora-{kohya,peft}.safetensors) read the way diffusers reads them
   (kohya: _maybe_map_sgm_blocks_to_diffusers + _convert_kohya_lora_to_diffusers, as
   LoraLoaderMixin.lora_state_dict does; PEFT: the module names, no alpha), fused as _fuse_lora
   (scripts/oracle/lora.py), and the UNet's output with them.

Run from the repository root, after the .ts script:
  node --import tsx scripts/oracle/train-image-lora.ts
  . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/train_image.py
Outputs: test/fixtures/diffusion/train/{expected.json, *.f32} (NCHW, as diffusers' tensors).
"""
import json, os, sys
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel, DDPMScheduler
from diffusers.training_utils import compute_snr
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from lora import pairs_kohya, pairs_peft  # noqa: E402

torch.set_num_threads(2)
SD1 = os.path.join("test", "fixtures", "diffusion", "pipeline", "sd1")
OUT = os.path.join("test", "fixtures", "diffusion", "train")
GRADS = ["conv_out.bias", "conv_in.weight", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight", "time_embedding.linear_1.weight"]
GAMMA = 5.0


def save(name, t):
    t.detach().float().contiguous().numpy().tofile(os.path.join(OUT, name + ".f32"))
    return name + ".f32"


def main():
    os.makedirs(OUT, exist_ok=True)
    unet_cfg = json.load(open(os.path.join(SD1, "unet", "config.json")))
    base = load_file(os.path.join(SD1, "unet", "diffusion_pytorch_model.safetensors"))
    sched_cfg = json.load(open(os.path.join(SD1, "scheduler", "scheduler_config.json")))

    g = torch.Generator().manual_seed(0)
    B, C, S, D = 3, unet_cfg["in_channels"], unet_cfg["sample_size"], unet_cfg["cross_attention_dim"]
    x0 = torch.randn(B, C, S, S, generator=g)
    noise = torch.randn(B, C, S, S, generator=g)
    ctx = torch.randn(B, 77, D, generator=g)
    timesteps = torch.tensor([3, 400, 990])
    expected = dict(timesteps=timesteps.tolist(), gamma=GAMMA, x0=save("x0", x0), noise=save("noise", noise), context=save("context", ctx), cases=[], loras=[])

    for prediction in ["epsilon", "v_prediction"]:
        sched = DDPMScheduler.from_config({**sched_cfg, "prediction_type": prediction})
        noisy = sched.add_noise(x0, noise, timesteps)
        target = noise if prediction == "epsilon" else sched.get_velocity(x0, noise, timesteps)
        for snr_gamma in [0.0, GAMMA]:
            unet = UNet2DConditionModel.from_config(unet_cfg)
            unet.load_state_dict(base)
            unet.train()
            pred = unet(noisy, timesteps, ctx).sample
            if snr_gamma == 0:
                loss = F.mse_loss(pred.float(), target.float(), reduction="mean")
                weights = [1.0] * B
            else:
                snr = compute_snr(sched, timesteps)
                w = torch.stack([snr, snr_gamma * torch.ones_like(timesteps)], dim=1).min(dim=1)[0]
                w = w / snr if prediction == "epsilon" else w / (snr + 1)
                loss = (F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=list(range(1, len(pred.shape)))) * w).mean()
                weights = w.tolist()
            loss.backward()
            params = dict(unet.named_parameters())
            tag = f"{prediction}-g{int(snr_gamma)}"
            expected["cases"].append(dict(
                prediction=prediction, snr_gamma=snr_gamma, loss=loss.item(), weights=weights,
                noisy=save(f"{tag}.noisy", noisy), target=save(f"{tag}.target", target),
                grads={n: save(f"{tag}.grad.{n}", params[n].grad) for n in GRADS},
            ))

    # The LoRA files, as diffusers reads and fuses them; the UNet on x0[0] at t = 500 with ctx[0].
    for naming in ["kohya", "peft"]:
        file = os.path.join(OUT, f"lora-{naming}.safetensors")
        sd = load_file(file)
        if naming == "kohya":
            unet0 = UNet2DConditionModel.from_config(unet_cfg)
            pairs = pairs_kohya(sd, unet0.config)
        else:
            pairs = pairs_peft(sd)
        state = {k: v.float().clone() for k, v in base.items()}
        for (comp, module), t in pairs.items():
            assert comp == "unet", comp
            W = state[module + ".weight"]
            up, down = t["up"], t["down"]
            if "alpha" in t:
                up = up * t["alpha"] / down.shape[0]
            state[module + ".weight"] = W + torch.mm(up.flatten(start_dim=1), down.flatten(start_dim=1)).reshape(W.shape)
        unet = UNet2DConditionModel.from_config(unet_cfg)
        unet.load_state_dict(state)
        with torch.no_grad():
            out = unet(x0[:1], torch.tensor([500]), ctx[:1]).sample
        expected["loras"].append(dict(file=os.path.basename(file), naming=naming, pairs=len(pairs), out=save(f"lora-{naming}.out", out)))

    json.dump(expected, open(os.path.join(OUT, "expected.json"), "w"), indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

"""The peer for `npm run bench:train-image`: one UNet training step (forward, MSE loss, backward)
in Hugging Face diffusers on PyTorch's CPU backend, in the same shape as bench/train-image-step.ts
(UNet2DConditionModel, block_out w/2w/4w/4w, 2 layers per block, attention_head_dim 8, batch B,
latents size/8, a 77-token context of width ctx), f32 weights, `threads` intra-op threads.

    "$ORACLE_PY" scripts/oracle/unet_train_step.py [--width 64] [--size 256] [--batch 4] [--ctx 256] [--steps 3] [--threads 2]

Prints one JSON line: the per-step forward and backward seconds (the last step, and the best).
Set up with `. ../shared/oracle/env.sh` (diffusers 0.27.2, torch CPU)."""
import argparse, json, time

import torch
from diffusers import UNet2DConditionModel

p = argparse.ArgumentParser()
for k, d in (("width", 64), ("size", 256), ("batch", 4), ("ctx", 256), ("steps", 3), ("threads", 2)):
    p.add_argument(f"--{k}", type=int, default=d)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
w = a.width
unet = UNet2DConditionModel(
    sample_size=a.size // 8, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(w, 2 * w, 4 * w, 4 * w),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=a.ctx, attention_head_dim=8,
)
unet.train()
n_params = sum(t.numel() for t in unet.parameters())
h = a.size // 8
x = torch.randn(a.batch, 4, h, h)
t = torch.randint(0, 1000, (a.batch,))
ctx = torch.randn(a.batch, 77, a.ctx)
target = torch.randn(a.batch, 4, h, h)
steps = []
for s in range(a.steps):
    unet.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    out = unet(x, t, encoder_hidden_states=ctx).sample
    loss = torch.nn.functional.mse_loss(out, target)
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    steps.append((t1 - t0, t2 - t1))
best = min(steps, key=lambda s: s[0] + s[1])
print(json.dumps({"peer": "diffusers", "diffusers": __import__("diffusers").__version__, "torch": torch.__version__, "threads": a.threads,
                  "params": n_params, "forward_s": steps[-1][0], "backward_s": steps[-1][1], "best_forward_s": best[0], "best_backward_s": best[1]}))

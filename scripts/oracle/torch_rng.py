"""Fixture for src/diffusion/torch-rng.ts: torch's CPU generator on several seeds and shapes.
Run: . /work/shared/oracle/env.sh && "$ORACLE_PY" scripts/oracle/torch_rng.py
Writes test/fixtures/diffusion/torch-rng.json (cases) and torch-rng.f32 (all values, little-endian
float32, concatenated in case order). Each case is a sequence of draws from one generator, so the
state carried between calls (and the cached double normal of the scalar path) is checked too."""
import json, os, sys
import torch
from diffusers.utils.torch_utils import randn_tensor

out_dir = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "diffusion")
cases, blobs, offset = [], [], 0

def add(name, seed, draws, values):
    global offset
    arr = torch.cat([v.reshape(-1).to(torch.float32) for v in values]).contiguous()
    cases.append({"name": name, "seed": seed, "draws": draws, "offset": offset, "count": arr.numel()})
    blobs.append(arr.numpy().astype("<f4").tobytes())
    offset += arr.numel()

for seed in (0, 1, 42, 1234, 2**32 + 7, 987654321):
    for shape in ([1], [3], [5], [15], [16], [17], [31], [33], [100], [2, 3, 7], [1, 4, 8, 8]):
        g = torch.Generator("cpu").manual_seed(seed)
        add(f"randn {shape} seed {seed}", seed, [["randn", shape]], [torch.randn(shape, generator=g, dtype=torch.float32)])
# The SD latent shape, and diffusers' randn_tensor with one generator for a batch of two.
for seed in (0, 2024):
    g = torch.Generator("cpu").manual_seed(seed)
    add(f"randn_tensor [1,4,64,64] seed {seed}", seed, [["randn", [1, 4, 64, 64]]],
        [randn_tensor((1, 4, 64, 64), generator=g, device=torch.device("cpu"), dtype=torch.float32)])
g = torch.Generator("cpu").manual_seed(7)
add("randn_tensor batch [2,4,16,16] one generator", 7, [["randn", [2, 4, 16, 16]]],
    [randn_tensor((2, 4, 16, 16), generator=g, device=torch.device("cpu"), dtype=torch.float32)])
# Sequences: initial latents then per-step ancestral noise; mixing paths; rand.
g = torch.Generator("cpu").manual_seed(31337)
seq = [["randn", [1, 4, 8, 8]]] + [["randn", [1, 4, 8, 8]]] * 4
add("ancestral sequence", 31337, seq, [torch.randn(s[1], generator=g) for s in seq])
g = torch.Generator("cpu").manual_seed(5)
seq = [["randn", [3]], ["randn", [20]], ["randn", [1]], ["rand", [10]], ["randn", [2]], ["rand", [17]], ["randn", [40]]]
vals = []
for kind, shape in seq:
    vals.append((torch.randn if kind == "randn" else torch.rand)(shape, generator=g))
add("mixed sequence", 5, seq, vals)
for seed in (0,):
    g = torch.Generator("cpu").manual_seed(seed)
    add(f"rand [1000] seed {seed}", seed, [["rand", [1000]]], [torch.rand([1000], generator=g)])
# A big draw to catch rare rounding differences in the Box-Muller arithmetic.
g = torch.Generator("cpu").manual_seed(123)
add("randn [32768] seed 123", 123, [["randn", [32768]]], [torch.randn([32768], generator=g)])

with open(os.path.join(out_dir, "torch-rng.f32"), "wb") as fh:
    for b in blobs: fh.write(b)
with open(os.path.join(out_dir, "torch-rng.json"), "w") as fh:
    json.dump({"torch": torch.__version__, "cpu_capability": "AVX2" if "CPU capability usage: AVX2" in torch.__config__.show() else "other",
               "cases": cases}, fh, indent=1)
print(len(cases), "cases,", offset, "values")

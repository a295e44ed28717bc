#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for Slipstream's tiny test checkpoints.

Run where PyTorch and transformers are installed (a GPU host is fine; everything runs on CPU in
float32, eager attention):

    node --import tsx scripts/make-hf-fixtures.ts test/fixtures/hf      # writes the checkpoints
    python3 scripts/hf_reference.py test/fixtures/hf                    # adds logits.json to each

For every model directory it loads the checkpoint with AutoModelForCausalLM, runs the fixed
prompts in prompts.json and writes logits.json: {"transformers": version, "torch": version,
"prompts": [[ids...]], "logits": [[[vocab floats] per position] per prompt]}. The tests compare
Slipstream's logits with these to 1e-4 of the logits' scale.

For the families Slipstream trains (llama, mistral, qwen2, gemma) it also writes grads.json: the
gradient of the mean next-token cross-entropy of the first prompt (transformers' own
`labels=ids` loss) for every parameter, as {"loss": x, "grads": {name: {"norm": l2, "head":
[first 64 values]}}}, to compare with Slipstream's autograd (src/train/model.ts).
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM


def main(root: str) -> None:
    torch.manual_seed(0)
    for d in sorted(p for p in Path(root).iterdir() if (p / "config.json").exists()):
        prompts = json.loads((d / "prompts.json").read_text())
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
        model.eval()
        out = []
        with torch.no_grad():
            for ids in prompts:
                logits = model(torch.tensor([ids])).logits[0]  # [T, vocab]
                out.append(logits.float().tolist())
        (d / "logits.json").write_text(json.dumps({
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "prompts": prompts,
            "logits": out,
        }))
        print(f"{d.name}: {len(prompts)} prompts, vocab {len(out[0][0])}")
        if model.config.model_type in ("llama", "mistral", "qwen2", "gemma"):
            model.zero_grad()
            ids = torch.tensor([prompts[0]])
            loss = model(ids, labels=ids).loss
            loss.backward()
            grads = {}
            for name, p in model.named_parameters():
                if p.grad is None:
                    continue
                g = p.grad.detach().float().flatten()
                grads[name] = {"norm": g.norm().item(), "head": g[:64].tolist()}
            (d / "grads.json").write_text(json.dumps({"loss": loss.item(), "grads": grads}))
            print(f"{d.name}: loss {loss.item():.6f}, gradients of {len(grads)} tensors")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/hf")

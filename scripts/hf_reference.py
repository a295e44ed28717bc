#!/usr/bin/env python3
"""Hugging Face's own answers for Slipstream's reference tests (test/hf-reference.test.ts).

Run where PyTorch, transformers, tokenizers and peft are installed (everything runs on the CPU):

    node --import tsx scripts/make-hf-fixtures.ts hf-in
    python3 scripts/hf_reference.py hf-in test/fixtures/hf-reference.json models/default

For every checkpoint in IN/models (and the extra model folders named after OUT) it records, with
the model in float64 and eager attention:
  - the logits of every position of every prompt in prompts.json (float32, base64);
  - the mean next-token cross-entropy of the gradient prompt (transformers' own `labels=ids` loss)
    and, for every parameter, the gradient's L2 norm and its values at 48 evenly spaced and the 16
    largest-magnitude indices;
  - AutoTokenizer's ids and decodings of the strings in cases.json.
Also: the logits of IN/models/llama with the LoRA adapter IN/lora applied by peft; every chat
template case rendered by apply_chat_template (or the error it raises); the merges of a byte-level
BPE tokenizer trained by the `tokenizers` crate on cases.json's corpus, and AutoTokenizer's ids for
the strings under the tokenizer in IN/bpe that our trainer wrote.
A step that fails is recorded as {"error": ...} and the others still run.
"""
import base64
import json
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def b64f32(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def load_model(d: Path):
    try:
        model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    except TypeError:  # transformers < 4.56 calls it torch_dtype
        model, info = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("lm_head.weight") or not model.config.tie_word_embeddings]
    if missing or info.get("unexpected_keys") or info.get("mismatched_keys"):
        raise RuntimeError(f"checkpoint does not match the model: {info}")
    if model.config.model_type == "mixtral" and hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")  # transformers 5's grouped_mm has no float64
    return model.to(torch.float64).eval()


def all_logits(model, prompts) -> str:
    out = []
    with torch.no_grad():
        for ids in prompts:
            out.append(model(torch.tensor([ids])).logits[0].double().numpy().reshape(-1))
    return b64f32(np.concatenate(out))


def grads(model, ids) -> dict:
    model.zero_grad()
    t = torch.tensor([ids])
    loss = model(t, labels=t).loss
    loss.backward()
    res = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        g = p.grad.detach().double().flatten()
        n = g.numel()
        idx = sorted({j * n // 48 for j in range(48)} | set(torch.topk(g.abs(), min(16, n)).indices.tolist()))
        res[name] = {"n": n, "norm": g.norm().item(), "idx": idx, "val": [g[i].item() for i in idx]}
    return {"loss": loss.item(), "grads": res}


def tokenize(d: Path, texts) -> dict:
    tok = AutoTokenizer.from_pretrained(d)
    rows = []
    for text in texts:
        ids = tok(text)["input_ids"]
        rows.append({"text": text, "ids": ids, "decoded": tok.decode(ids), "decodedSkip": tok.decode(ids, skip_special_tokens=True)})
    return {"class": type(tok).__name__, "rows": rows}


def step(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - record and go on
        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"}


def main(root: Path, out_file: Path, extra: list) -> None:
    cases = json.loads((root / "cases.json").read_text())
    res = {"versions": {"transformers": transformers.__version__, "torch": torch.__version__}, "models": {}}
    try:
        import tokenizers
        res["versions"]["tokenizers"] = tokenizers.__version__
        import peft
        res["versions"]["peft"] = peft.__version__
    except ImportError:
        pass
    dirs = sorted(p for p in (root / "models").iterdir() if (p / "config.json").exists()) + [Path(e) for e in extra]
    for d in dirs:
        spec = json.loads((d / "prompts.json").read_text()) if (d / "prompts.json").exists() else json.loads((root / "models" / "llama" / "prompts.json").read_text())
        prompts = spec["prompts"]
        entry = {"prompts": prompts}
        try:
            model = load_model(d)
            entry["logits"] = all_logits(model, prompts)
            entry.update(step(lambda: grads(model, prompts[spec["gradPrompt"]])))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            entry["error"] = f"{type(e).__name__}: {e}"
        entry["tokenize"] = step(lambda: tokenize(d, cases["texts"]))
        res["models"][d.name] = entry
        print(f"{d.name}: {'error ' + entry['error'] if 'error' in entry else 'loss %.6f, %d grads' % (entry.get('loss', float('nan')), len(entry.get('grads', {})))}", flush=True)

    def lora():
        from peft import PeftModel
        base = load_model(root / "models" / "llama")
        model = PeftModel.from_pretrained(base, root / "lora").to(torch.float64).eval()
        prompts = json.loads((root / "models" / "llama" / "prompts.json").read_text())["prompts"]
        return {"prompts": prompts, "logits": all_logits(model, prompts)}
    res["lora"] = step(lora)
    print("lora:", "error" if "error" in res["lora"] else "ok", flush=True)

    def chat():
        tok = AutoTokenizer.from_pretrained(root / "bpe")
        out = {}
        for c in cases["chat"]:
            kw = {"tools": c["tools"]} if c.get("tools") else {}
            try:
                out[c["name"]] = {"text": tok.apply_chat_template(c["messages"], chat_template=c["template"], tokenize=False, add_generation_prompt=c["addGenerationPrompt"], **kw)}
            except Exception as e:  # noqa: BLE001
                out[c["name"]] = {"raised": f"{type(e).__name__}: {e}"}
        return {"bos": tok.bos_token, "eos": tok.eos_token, "cases": out}
    res["chat"] = step(chat)
    print("chat:", json.dumps(res["chat"])[:400], flush=True)

    def bpe():
        from tokenizers import Tokenizer, models, pre_tokenizers, trainers
        b = cases["bpe"]
        t = Tokenizer(models.BPE())
        t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tr = trainers.BpeTrainer(vocab_size=b["vocabSize"], min_frequency=b["minFrequency"], special_tokens=b["specialTokens"],
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        t.train_from_iterator(b["corpus"], tr)
        m = json.loads(t.to_str())["model"]
        merges = [x.split(" ") if isinstance(x, str) else x for x in m["merges"]]
        return {"merges": merges, "vocabSize": t.get_vocab_size(), "ours": tokenize(root / "bpe", cases["texts"])}
    res["bpe"] = step(bpe)
    print("bpe:", "error" if "error" in res["bpe"] else f"{len(res['bpe']['merges'])} merges", flush=True)

    out_file.write_text(json.dumps(res))
    print(f"wrote {out_file} ({out_file.stat().st_size} bytes); versions {res['versions']}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: hf_reference.py IN_DIR OUT.json [EXTRA_MODEL_DIR ...]")
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])

"""tests/train/test_peft_parity.py - werk's trained adapters load in HF PEFT and give werk's logits

For stories260K and the four tiny families (llama, qwen2, qwen3, gemma3): werk converts the
HF checkpoint to GGUF, trains a LoRA adapter for a few AdamW steps on random pre-tokenized
rows (all seven projections, rank 4), and writes it as a PEFT dir and as adapter.gguf. Then
  - transformers + PEFT load the HF checkpoint and werk's PEFT dir; their float32 logits on
    held-out token rows must equal werk's (`werk logits`) within 1e-4 of the
    largest logit (both compute in float32; summation orders differ);
  - werk with adapter.gguf gives the same logits as with the PEFT dir (bit for bit: both
    files hold the same float32 tensors);
  - the adapter really changes the logits (base vs adapter differ by more than 1e-3).
Needs torch and peft, which CI's venv does not carry (PyPI's torch is the multi-GB CUDA
build): skipped with a message there. Run on the device machine (torch 2.11, peft 0.21,
transformers 5.17) with werk built here; the figures go into the closing note.
ctest-label: slow
"""
import json
import os
import sys
import tempfile

try:
    import numpy as np
    import torch
    from peft import PeftModel
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: torch/peft/transformers not importable here ({e}); run on a machine with them")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

FIX = wt.FIX
if not wt.WERK or not os.path.exists(wt.WERK):
    wt.skip("WERK_BIN not set")
if not FIX or not os.path.isdir(os.path.join(FIX, "stories260K")):
    wt.skip("../shared/fixtures missing")

CASES = [("stories260K", os.path.join(FIX, "stories260K", "hf"))] + [
    (fam, os.path.join(FIX, "tiny", fam, "hf")) for fam in ("llama", "qwen2", "qwen3", "gemma3")
]

check = wt.Checker(show_passes=False)


def werk(*args):
    return wt.stdout_of(list(args))


def write_rows(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({"input_ids": [int(t) for t in r]}) + "\n")


def werk_logits(base, lora, data, out):
    args = ["logits", "--model", base, "--data", data, "--out", out]
    if lora:
        args += ["--lora", lora]
    werk(*args)
    d = load_file(out)
    return [d[f"record.{i}"] for i in range(len(d) // 2)]


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    for name, hf in CASES:
        if not os.path.isdir(hf):
            print(f"SKIP case {name}: {hf} missing")
            continue
        cfg = json.load(open(os.path.join(hf, "config.json")))
        n_vocab = cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size")
        with tempfile.TemporaryDirectory() as tmp:
            base = os.path.join(tmp, "base.gguf")
            werk("convert", hf, base)
            train = os.path.join(tmp, "train.jsonl")
            write_rows(train, rng.integers(3, n_vocab, size=(16, 32)))
            evalf = os.path.join(tmp, "eval.jsonl")
            rows = rng.integers(3, n_vocab, size=(3, 24))
            write_rows(evalf, rows)
            out = os.path.join(tmp, "out")
            werk("finetune", "--model", base, "--lora", train, "--rank", "4", "--alpha", "8", "--steps", "4",
                 "--lr", "1e-2", "--batch", "2", "--seq", "32", "--seed", "5", "--out", out, "--no-pack")
            peft_dir = os.path.join(out, "adapter")
            gguf_ad = os.path.join(out, "adapter.gguf")
            w_peft = werk_logits(base, peft_dir, evalf, os.path.join(tmp, "w_peft.safetensors"))
            w_gguf = werk_logits(base, gguf_ad, evalf, os.path.join(tmp, "w_gguf.safetensors"))
            w_base = werk_logits(base, None, evalf, os.path.join(tmp, "w_base.safetensors"))

            model = AutoModelForCausalLM.from_pretrained(hf, torch_dtype=torch.float32)
            model = PeftModel.from_pretrained(model, peft_dir)
            model.eval()
            with torch.no_grad():
                ref = model(torch.tensor(rows, dtype=torch.long)).logits.float().numpy()
            worst = 0.0
            for i in range(len(rows)):
                scale = float(np.abs(ref[i]).max())
                err = float(np.abs(w_peft[i] - ref[i]).max()) / scale
                worst = max(worst, err)
                check(err <= 1e-4, f"{name} record {i}: max |werk - PEFT| / max|logit| = {err:.3g}")
                check(np.array_equal(w_peft[i], w_gguf[i]), f"{name} record {i}: adapter.gguf logits differ")
                delta = float(np.abs(w_peft[i] - w_base[i]).max())
                check(delta > 1e-3, f"{name} record {i}: adapter changes logits by only {delta:.3g}")
            print(f"{name}: {len(rows)} records x {rows.shape[1]} tokens, max rel err vs PEFT {worst:.3g}")
    return check.done()


if __name__ == "__main__":
    sys.exit(main())

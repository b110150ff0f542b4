#!/usr/bin/env python3
# ctest-label: slow
"""tests/train/test_finetune_gemma.py - must-show 4 on a real model: Gemma 3 270M, German text

For the base in Q4_K_M (the fetched $WERK_CACHE/models/gemma-3-270m-q4_k_m.gguf) and in f32 (that
file dequantized by werk convert into the test's scratch folder), a short CPU LoRA run on scripts/fetch-data's German corpus
($WERK_CACHE/data/de-docs-{train,val}.jsonl) must lower the held-out perplexity on the
validation records. Sizes are small (8 steps of 2 x 160 tokens) so both runs take about two minutes on 2 cores;
WERK_GEMMA_STEPS / WERK_GEMMA_SEQ / WERK_GEMMA_VAL_ROWS / WERK_GEMMA_THREADS override them.
Prints loss and perplexity before / after and tokens per second.
"""
import json
import math
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finetune_common as fc  # noqa: E402

TMP = os.path.join(os.environ.get("WERK_TEST_TMP", "/tmp"), "finetune_gemma")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))


def main():
    if not fc.WERK or not os.access(fc.WERK, os.X_OK):
        print("SKIP: WERK_BIN not set")
        return 77
    if fc.SANITIZED:
        print("SKIP: real-model training is too slow under sanitizers")
        return 77
    train = os.path.join(CACHE, "data", "de-docs-train.jsonl")
    val = os.path.join(CACHE, "data", "de-docs-val.jsonl")
    if not (os.path.exists(train) and os.path.exists(val)):
        print("SKIP: German corpus missing (run scripts/fetch-data)")
        return 77
    q4 = os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(q4):
        print("SKIP: no Gemma 3 270M under " + os.path.join(CACHE, "models") + " (run scripts/fetch-models)")
        return 77
    steps = os.environ.get("WERK_GEMMA_STEPS", "8")
    seq = os.environ.get("WERK_GEMMA_SEQ", "160")
    val_rows = os.environ.get("WERK_GEMMA_VAL_ROWS", "4")
    threads = os.environ.get("WERK_GEMMA_THREADS", str(os.cpu_count() or 1))
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP, exist_ok=True)
    check = fc.Checker()
    # The f32 base: the fetched Q4_K_M dequantized (the only f32 Gemma there is), made here
    # so a fresh machine runs both bases.
    f32 = os.path.join(TMP, "gemma-3-270m-f32.gguf")
    rc, _, se = fc.run(["convert", q4, f32, "--type", "f32"], timeout=600)
    check(rc == 0, f"gemma: convert to f32 ({se.strip()[-300:]})")
    models = {"f32": f32, "q4_k_m": q4}
    env = fc.test_env()
    env["OMP_NUM_THREADS"] = threads
    for name, path in models.items():
        out = os.path.join(TMP, name)
        rc, so, se = fc.run(["finetune", "--model", path, "--lora", train, "--val", val, "--max-val-rows", val_rows,
                             "--out", out, "--steps", steps, "--seq", seq, "--batch", "1", "--grad-accum", "2",
                             "--lr", "1e-3", "--warmup", "2", "--schedule", "cosine", "--rank", "8",
                             "--threads", threads, "--no-progress", "--json"], timeout=3600, env=env)
        check(rc == 0, f"gemma {name}: finetune exits 0 ({se.strip()[-300:]})")
        if rc != 0:
            continue
        r = json.loads(so)
        b, a = r["val_loss_before"], r["val_loss_after"]
        print(f"  gemma-3-270m {name}: held-out loss {b:.4f} -> {a:.4f}, perplexity {math.exp(b):.3f} -> "
              f"{math.exp(a):.3f}; train loss {r['train_loss_first']:.4f} -> {r['train_loss_last']:.4f}; "
              f"{r['tokens_per_s']:.1f} tok/s ({steps} steps x 2 x {seq} tokens, {threads} threads)")
        check(a < b, f"gemma {name}: held-out perplexity drops")
    return check.done()


if __name__ == "__main__":
    sys.exit(main())

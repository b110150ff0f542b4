#!/usr/bin/env python3
# tests/infer/test_eval_golden.py - `werk eval` reproduces the golden losses of stories260K
#
# For case_a and case_c: writes the case's tokens (reference.safetensors) as pre-tokenized
# JSONL with labels -100 below the case's mask index (case.json's loss_mask), converts the
# llama2.c checkpoint with `werk convert`, and checks `werk eval --json` loss against
# base_loss and, with --lora the case's PEFT adapter, adapter_loss (1e-5 relative). Also
# --ref of the model against itself: KLD 0, top-1 agreement 1.
import json
import os
import re
import sys

try:
    from safetensors.numpy import load_file
except ImportError:
    print("SKIP: python safetensors missing")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

tmp = wt.TMP
root = os.path.join(wt.FIX, "stories260K")
if not wt.WERK or not os.path.isdir(os.path.join(root, "golden")):
    wt.skip("WERK_BIN or stories260K fixtures missing")

check = wt.Checker()
gguf = wt.stories260K_gguf(os.path.join(tmp, "eval_stories_l2c.gguf"))

for case in ("case_a", "case_c"):
    d = os.path.join(root, "golden", case)
    meta = json.load(open(os.path.join(d, "case.json")))
    m = re.search(r"positions < (\d+) ignored", meta["loss_mask"])
    if not m:
        raise SystemExit("FAIL: %s: cannot read mask rule %r" % (case, meta["loss_mask"]))
    mask = int(m.group(1))
    tokens = load_file(os.path.join(d, "reference.safetensors"))["tokens"]
    data = os.path.join(tmp, "eval_%s.jsonl" % case)
    with open(data, "w") as f:
        for row in tokens.tolist():
            labels = [-100 if i < mask else t for i, t in enumerate(row)]
            f.write(json.dumps({"input_ids": row, "labels": labels}) + "\n")
    B, T = tokens.shape
    r = json.loads(wt.stdout_of(["eval", "--model", gguf, "--data", data, "--json"]))
    check(r["tokens"] == B * (T - mask), "%s scored tokens %d == %d" % (case, r["tokens"], B * (T - mask)))
    rel = abs(r["loss"] - meta["base_loss"]) / meta["base_loss"]
    check(rel <= 1e-5, "%s base loss %.9f vs golden %.9f (rel %.2e)" % (case, r["loss"], meta["base_loss"], rel))
    r = json.loads(wt.stdout_of(["eval", "--model", gguf, "--lora", os.path.join(d, "adapter"), "--data", data,
                                 "--json"]))
    rel = abs(r["loss"] - meta["adapter_loss"]) / meta["adapter_loss"]
    check(rel <= 1e-5, "%s adapter loss %.9f vs golden %.9f (rel %.2e)" % (case, r["loss"], meta["adapter_loss"], rel))
    r = json.loads(wt.stdout_of(["eval", "--model", gguf, "--ref", gguf, "--data", data, "--json"]))
    check(abs(r["kld_mean"]) < 1e-12 and r["kld_p99"] < 1e-12, "%s self-KLD %.3g" % (case, r["kld_mean"]))
    check(r["top1"] == 1.0 and abs(r["delta_ppl"]) < 1e-12, "%s self top-1 %.6f" % (case, r["top1"]))
    # adapter model against the base as reference: KLD > 0
    r = json.loads(wt.stdout_of(["eval", "--model", gguf, "--lora", os.path.join(d, "adapter"), "--ref", gguf,
                                 "--data", data, "--json"]))
    check(r["kld_mean"] > 0 and r["kld_median"] <= r["kld_p99"], "%s adapter-vs-base KLD %.4g" % (case, r["kld_mean"]))

# text: sliding windows score every token after the first exactly once
txt = os.path.join(tmp, "eval_stories.txt")
with open(txt, "w") as f:
    f.write("Once upon a time, there was a little girl named Lily. She liked to play outside. " * 20)
ids = wt.stdout_of(["tokenize", "--model", gguf, "--file", txt, "--bos"]).split()
r = json.loads(wt.stdout_of(["eval", "--model", gguf, "--data", txt, "--ctx", "64", "--json"]))
check(r["tokens"] == len(ids) - 1, "txt scored %d of %d tokens, ppl %.4f" % (r["tokens"], len(ids), r["ppl"]))
check(r["ppl"] < 20, "txt perplexity %.3f plausible" % r["ppl"])

# text and prompt/completion records: BOS + text scored whole; only the completion scored
prompt, completion = "Once upon a time", " there was a little girl named Lily."
n_text = len(wt.stdout_of(["tokenize", "--model", gguf, "--text", prompt + completion, "--bos"]).split())
n_prompt = len(wt.stdout_of(["tokenize", "--model", gguf, "--text", prompt, "--bos"]).split())
n_comp = len(wt.stdout_of(["tokenize", "--model", gguf, "--text", completion]).split())
recs = os.path.join(tmp, "eval_records.jsonl")
with open(recs, "w") as f:
    f.write(json.dumps({"text": prompt + completion}) + "\n")
    f.write(json.dumps({"prompt": prompt, "completion": completion}) + "\n")
r = json.loads(wt.stdout_of(["eval", "--model", gguf, "--data", recs, "--json"]))
check(r["records"] == 2 and r["tokens"] == (n_text - 1) + n_comp,
      "records: %d scored == %d + %d" % (r["tokens"], n_text - 1, n_comp))
check(n_prompt > 1 and r["ppl"] < 50, "records perplexity %.3f" % r["ppl"])

sys.exit(check.done())

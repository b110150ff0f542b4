#!/usr/bin/env python3
"""tests/train/test_finetune_cli.py - `werk finetune` end to end on stories260K (fast part)

- Outputs: adapter.gguf loads with the gguf package (adapter.type lora, alpha, one lora_a /
  lora_b per targeted projection, provenance: base / data SHA-256, command line, version);
  adapter/ is a PEFT dir (config + safetensors with the same tensors); loss.jsonl has one
  line per step plus step 0 with val loss at each eval; loss.svg parses as XML; best/.
- Must-show 2: one SGD step from --init-adapter (PEFT dir and .gguf) with learning rate lr
  changes every LoRA tensor by exactly -lr x the gradient that the same run dumped
  (hidden flag --dump-grad: the first step's gradient, a PEFT dir), no clipping, no decay.
- Pre-tokenized {"input_ids"} records on a GGUF converted from the HF dir (no vocab).
- Must-show 6: empty dataset, unknown role, non-UTF-8, missing fields, unknown architecture,
  bad flags, resume with different flags -> one "werk: error:" line, exit 1 or 2.
"""
import hashlib
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finetune_common as fc  # noqa: E402

TMP = os.path.join(os.environ.get("WERK_TEST_TMP", "/tmp"), "finetune_cli")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def gguf_str(reader, key):
    f = reader.fields.get(key)
    if f is None:
        return None
    v = f.parts[f.data[0]]
    try:
        return bytes(v).decode("utf-8")
    except Exception:
        return v.tolist()


def test_outputs(check, p):
    import numpy as np
    from gguf import GGUFReader
    out = os.path.join(TMP, "out_outputs")
    shutil.rmtree(out, ignore_errors=True)
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--val", p["val"], "--out", out,
                         "--steps", "8", "--eval-every", "4", "--seq", "128", "--batch", "2", "--lr", "1e-3",
                         "--no-progress", "--json"])
    check(rc == 0, f"finetune with val exits 0 ({se.strip()[-300:]})")
    if rc != 0:
        return
    res = json.loads(so)
    print("  ", res)
    check(res["steps"] == 8, "8 steps done")
    r = GGUFReader(os.path.join(out, "adapter.gguf"))
    check(gguf_str(r, "general.type") == "adapter", "adapter.gguf: general.type adapter")
    check(gguf_str(r, "adapter.type") == "lora", "adapter.gguf: adapter.type lora")
    alpha = r.fields.get("adapter.lora.alpha")
    check(alpha is not None and float(alpha.parts[alpha.data[0]][0]) == 16.0, "adapter.lora.alpha = 16")
    names = [t.name for t in r.tensors]
    n_a = sum(n.endswith(".lora_a") for n in names)
    n_b = sum(n.endswith(".lora_b") for n in names)
    check(n_a == n_b and n_a > 0 and n_a % 7 == 0, f"one lora_a and lora_b per projection ({n_a}, {n_b})")
    keys = {k for k in r.fields if "sha256" in k or "command_line" in k or "version" in k}
    base = next((gguf_str(r, k) for k in r.fields if k.endswith("base_sha256")), None)
    data = next((gguf_str(r, k) for k in r.fields if k.endswith("data_sha256")), None)
    cmd = next((gguf_str(r, k) for k in r.fields if k.endswith("command_line")), None)
    check(base == sha256(p["tok"]), f"provenance: base model SHA-256 ({keys})")
    check(data == sha256(p["train"]), "provenance: data SHA-256")
    check(cmd is not None and "finetune" in cmd and "--steps 8" in cmd, f"provenance: command line {cmd!r}")
    # PEFT dir: same tensors (compared by sorted values: layouts may differ by a permutation)
    cfg = json.load(open(os.path.join(out, "adapter", "adapter_config.json")))
    check(cfg.get("r") == 8 and cfg.get("lora_alpha") == 16 and cfg.get("peft_type") == "LORA",
          "adapter_config.json: r 8, alpha 16, LORA")
    peft = fc.read_peft(os.path.join(out, "adapter"))
    check(len(peft) == n_a + n_b, f"PEFT tensors {len(peft)} = GGUF tensors {n_a + n_b}")
    gsum = sorted(float(np.sort(np.asarray(t.data, dtype=np.float32).ravel()).sum()) for t in r.tensors)
    psum = sorted(float(np.sort(v.astype(np.float32).ravel()).sum()) for v in peft.values())
    check(np.allclose(gsum, psum, rtol=0, atol=1e-5), "GGUF and PEFT hold the same values")
    check(any(np.abs(v).max() > 0 for k, v in peft.items() if "lora_B" in k), "B moved from zero")
    # loss log
    lines = [json.loads(l) for l in open(os.path.join(out, "loss.jsonl"))]
    check(len(lines) == 9 and [l["step"] for l in lines] == list(range(9)), f"loss.jsonl: steps 0..8 ({len(lines)})")
    vals = [l["step"] for l in lines if l["val_loss"] is not None]
    check(vals == [0, 4, 8], f"val loss at steps 0, 4, 8 ({vals})")
    check(all(l["train_loss"] > 0 and l["lr"] >= 0 and l["tokens_per_s"] > 0 for l in lines[1:]),
          "train loss, lr, tokens/s present")
    lrs = [l["lr"] for l in lines[1:]]
    want = [1e-3 * (8 - s) / 8 for s in range(8)]  # HF linear schedule, no warmup: factor (N - s) / N
    check(all(abs(a - b) < 1e-12 for a, b in zip(lrs, want)), f"linear schedule in the log ({lrs})")
    root = ET.parse(os.path.join(out, "loss.svg")).getroot()
    check(root.tag.endswith("svg") and len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 2,
          "loss.svg parses as XML with a train and a val line")
    check(os.path.exists(os.path.join(out, "best", "adapter.gguf")) and
          os.path.exists(os.path.join(out, "best", "adapter", "adapter_model.safetensors")), "best/ adapter kept")
    ck = os.listdir(os.path.join(out, "checkpoints"))
    check(ck == ["step-00000008.ckpt.zst"], f"final checkpoint ({ck})")
    # the adapter loads in werk eval, and lowers the val loss there too
    rc0, so0, _ = fc.run(["eval", "--model", p["tok"], "--data", p["val"], "--json"])
    rc1, so1, _ = fc.run(["eval", "--model", p["tok"], "--data", p["val"], "--json", "--lora",
                          os.path.join(out, "adapter")])
    check(rc0 == 0 and rc1 == 0 and json.loads(so1)["loss"] < json.loads(so0)["loss"],
          "werk eval: base+adapter beats base on val")


def test_early_stop(check, p):
    out = os.path.join(TMP, "out_early")
    shutil.rmtree(out, ignore_errors=True)
    # lr 0: the val loss cannot improve on step 0's, so --early-stop 2 stops after 2 evals
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--val", p["val"], "--out", out,
                         "--steps", "10", "--eval-every", "1", "--early-stop", "2", "--lr", "0", "--seq", "64",
                         "--batch", "2", "--no-progress", "--json"])
    res = json.loads(so) if rc == 0 else {}
    check(rc == 0 and res.get("steps") == 2 and res.get("early_stopped") is True and res.get("best_step") == 0,
          f"--early-stop 2 with no improvement stops at step 2 ({res or se.strip()[-200:]})")
    check(os.path.exists(os.path.join(out, "adapter.gguf")), "early stop still writes the adapter")


def test_sgd_step(check, p):
    """Must-show 2."""
    import numpy as np
    a = os.path.join(TMP, "sgd_a")
    shutil.rmtree(a, ignore_errors=True)
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--out", a, "--steps", "3",
                         "--seq", "64", "--batch", "2", "--lr", "1e-2", "--no-progress"])
    check(rc == 0, f"adamw run for an init adapter ({se.strip()[-200:]})")
    before = fc.read_peft(os.path.join(a, "adapter"))
    lr = 0.05
    for kind, init in (("peft", os.path.join(a, "adapter")), ("gguf", os.path.join(a, "adapter.gguf"))):
        b = os.path.join(TMP, "sgd_b_" + kind)
        shutil.rmtree(b, ignore_errors=True)
        rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--out", b, "--steps", "1",
                             "--seq", "64", "--batch", "2", "--optimizer", "sgd", "--lr", str(lr), "--schedule",
                             "constant", "--warmup", "0", "--clip-grad-norm", "0", "--weight-decay", "0",
                             "--init-adapter", init, "--dump-grad", os.path.join(b, "grad"), "--no-progress"])
        check(rc == 0, f"SGD step from --init-adapter {kind} ({se.strip()[-200:]})")
        if rc != 0:
            continue
        after = fc.read_peft(os.path.join(b, "adapter"))
        grad = fc.read_peft(os.path.join(b, "grad"))
        check(set(after) == set(before) == set(grad), f"{kind}: same tensor names")
        n_exact = n_moved = 0
        for k in before:
            want = (before[k].astype(np.float32) - np.float32(lr) * grad[k].astype(np.float32)).astype(np.float32)
            n_exact += int(np.array_equal(after[k], want))
            n_moved += int(np.abs(grad[k]).max() > 0)
        check(n_exact == len(before), f"{kind}: {n_exact}/{len(before)} tensors equal before - lr x grad exactly")
        check(n_moved == len(before), f"{kind}: every tensor has a nonzero gradient ({n_moved}/{len(before)})")


def test_epochs(check, p):
    out = os.path.join(TMP, "out_epochs")
    shutil.rmtree(out, ignore_errors=True)
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--out", out, "--epochs", "2",
                         "--seq", "64", "--batch", "16", "--grad-accum", "2", "--val-split", "0.1",
                         "--no-progress", "--json"])
    res = json.loads(so) if rc == 0 else {}
    rows = res.get("train_rows", 0)
    check(rc == 0 and rows > 0 and res["val_rows"] > 0 and res["steps"] == -(-2 * rows // 32),
          f"--epochs 2: ceil(2 x rows / (batch x accum)) steps, --val-split holds rows out ({res or se[-200:]})")


def test_grad_accum(check, p):
    """--batch 2 and --batch 1 --grad-accum 2 see the same rows and must give the same step
    gradient: the mean over all scored tokens of the step, not a mean of micro-batch means."""
    import numpy as np
    grads = []
    for b, k in (("2", "1"), ("1", "2")):
        out = os.path.join(TMP, f"accum_{b}_{k}")
        shutil.rmtree(out, ignore_errors=True)
        rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--out", out, "--steps", "1",
                             "--seq", "64", "--batch", b, "--grad-accum", k, "--lr", "1e-3", "--no-progress",
                             "--dump-grad", os.path.join(out, "grad"), "--json"])
        check(rc == 0, f"--batch {b} --grad-accum {k} ({se.strip()[-200:]})")
        if rc != 0:
            return
        grads.append((fc.read_peft(os.path.join(out, "grad")), json.loads(so)["train_loss_first"]))
    (g1, l1), (g2, l2) = grads
    worst = max(float(np.abs(g1[k] - g2[k]).max() / (np.abs(g1[k]).max() + 1e-30)) for k in g1)
    check(worst < 1e-4, f"same step gradient with and without accumulation (max rel diff {worst:.2e})")
    check(abs(l1 - l2) < 1e-5 * abs(l1), f"same step loss ({l1} vs {l2})")


def test_pretokenized(check, p):
    out = os.path.join(TMP, "out_ids")
    shutil.rmtree(out, ignore_errors=True)
    rc, so, se = fc.run(["finetune", "--model", p["hf"], "--lora", p["train_ids"], "--val-split", "0.2",
                         "--out", out, "--steps", "4", "--seq", "128", "--batch", "2", "--no-progress", "--json",
                         "--targets", "q,v"])
    check(rc == 0, f"pre-tokenized data on the HF-converted GGUF ({se.strip()[-200:]})")
    if rc == 0:
        peft = fc.read_peft(os.path.join(out, "adapter"))
        check(all(("q_proj" in k or "v_proj" in k) for k in peft), "--targets q,v: only q_proj / v_proj")


def expect_error(check, label, args, want=None):
    rc, so, se = fc.run(args)
    lines = [l for l in se.splitlines() if l.startswith("werk: error:")]
    ok = rc in (1, 2) and len(lines) == 1 and "Sanitizer" not in se and "Traceback" not in se
    if want is not None:
        ok = ok and any(w in lines[0] for w in (want if isinstance(want, tuple) else (want,))) if lines else False
    check(ok, f"{label}: exit {rc}, {lines[0] if lines else se.strip()[-200:]!r}")


def test_bad_inputs(check, p):
    d = os.path.join(TMP, "bad")
    os.makedirs(d, exist_ok=True)
    files = {
        "empty.jsonl": b"",
        "blank.jsonl": b"\n\n",
        "role.jsonl": b'{"messages": [{"role": "wizard", "content": "hi"}]}\n',
        "utf8.jsonl": b'{"text": "caf\xe9 au lait"}\n',
        "fields.jsonl": b'{"foo": "bar"}\n',
        "notjson.jsonl": b'{"text": "a"\n',
        "types.jsonl": b'{"text": 42}\n',
        "masked.jsonl": b'{"input_ids": [1, 2, 3], "labels": [-100, -100, -100]}\n',
    }
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    base = ["finetune", "--model", p["tok"], "--steps", "1", "--seq", "64", "--no-progress", "--out",
            os.path.join(d, "out")]
    expect_error(check, "empty dataset", base + ["--lora", os.path.join(d, "empty.jsonl")])
    expect_error(check, "blank lines only", base + ["--lora", os.path.join(d, "blank.jsonl")])
    expect_error(check, "unknown role", base + ["--lora", os.path.join(d, "role.jsonl")])
    expect_error(check, "non-UTF-8", base + ["--lora", os.path.join(d, "utf8.jsonl")], ("UTF-8", "utf-8", "utf8"))
    expect_error(check, "missing fields", base + ["--lora", os.path.join(d, "fields.jsonl")])
    expect_error(check, "not JSON", base + ["--lora", os.path.join(d, "notjson.jsonl")])
    expect_error(check, "wrong field type", base + ["--lora", os.path.join(d, "types.jsonl")])
    expect_error(check, "nothing scored", base + ["--lora", os.path.join(d, "masked.jsonl")])
    expect_error(check, "missing data file", base + ["--lora", os.path.join(d, "nope.jsonl")])
    expect_error(check, "empty val", base + ["--lora", p["train"], "--val", os.path.join(d, "empty.jsonl")])
    # a base model of an unknown architecture
    import gguf
    import numpy as np
    arch = os.path.join(d, "mamba.gguf")
    w = gguf.GGUFWriter(arch, "mamba")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expect_error(check, "unknown architecture", ["finetune", "--model", arch, "--lora", p["train"], "--steps", "1",
                                                 "--out", os.path.join(d, "out")], "mamba")
    expect_error(check, "missing model", ["finetune", "--model", os.path.join(d, "none.gguf"), "--lora", p["train"]])
    expect_error(check, "not a GGUF", ["finetune", "--model", p["train"], "--lora", p["train"]])
    # flags
    expect_error(check, "no --lora", ["finetune", "--model", p["tok"]])
    expect_error(check, "unknown flag", base + ["--lora", p["train"], "--frobnicate"], "--frobnicate")
    expect_error(check, "--rank 0", base + ["--lora", p["train"], "--rank", "0"], "--rank")
    expect_error(check, "--targets bad", base + ["--lora", p["train"], "--targets", "q,foo"], "foo")
    expect_error(check, "--schedule bad", base + ["--lora", p["train"], "--schedule", "exp"], "--schedule")
    expect_error(check, "--optimizer bad", base + ["--lora", p["train"], "--optimizer", "lion"], "--optimizer")
    expect_error(check, "--lr nan", base + ["--lora", p["train"], "--lr", "nan"], "--lr")
    expect_error(check, "--steps and --epochs", base + ["--lora", p["train"], "--epochs", "2"], "--epochs")
    expect_error(check, "--device cuda", base + ["--lora", p["train"], "--device", "cuda"], "CUDA")
    expect_error(check, "--seq too short", base + ["--lora", p["train"], "--seq", "1"], "--seq")
    expect_error(check, "--lr without value", base + ["--lora", p["train"], "--lr"], "needs a value")
    expect_error(check, "--init-adapter missing", base + ["--lora", p["train"], "--init-adapter",
                                                          os.path.join(d, "no-adapter")])
    expect_error(check, "--resume without checkpoint", base + ["--lora", p["train"], "--resume", d], "checkpoint")
    # resume with other hyper-parameters than the checkpoint's
    r1 = os.path.join(d, "r1")
    shutil.rmtree(r1, ignore_errors=True)
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--steps", "1", "--seq", "64",
                         "--batch", "2", "--no-progress", "--out", r1])
    check(rc == 0, "short run to resume from")
    expect_error(check, "a new run into a folder with checkpoints", ["finetune", "--model", p["tok"], "--lora",
                                                                    p["train"], "--steps", "1", "--seq", "64",
                                                                    "--no-progress", "--out", r1], "--resume")
    expect_error(check, "resume with another --rank", ["finetune", "--model", p["tok"], "--lora", p["train"],
                                                      "--steps", "2", "--seq", "64", "--batch", "2", "--rank", "4",
                                                      "--no-progress", "--resume", r1], "--rank")
    expect_error(check, "resume with other data", ["finetune", "--model", p["tok"], "--lora", p["val"],
                                                   "--steps", "2", "--seq", "64", "--batch", "2",
                                                   "--no-progress", "--resume", r1], "data")
    rc, so, se = fc.run(["finetune", "--help"])
    check(rc == 0 and "--rank" in so and "--resume" in so and "default" in so, "--help documents the flags")
    rc, so, se = fc.run(["help", "finetune"])
    check(rc == 0 and "--lora" in so, "werk help finetune")


def main():
    return fc.run_tests(TMP, [test_outputs, test_early_stop, test_sgd_step, test_grad_accum, test_epochs,
                              test_pretokenized, test_bad_inputs])


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# ctest-label: slow
"""tests/train/test_finetune_resume.py - `werk finetune` determinism, resume, Ctrl-C, learning

- Must-show 3: N steps in one run and N/2 steps + --resume + N/2 steps give bit-identical
  adapter tensors (constant schedule: the N/2 run is a prefix of the N run; cosine: resume
  from the step-N/2 checkpoint that --save-every wrote), with dropout and grad-accum on;
  --threads 1 and --threads 2 give bit-identical adapters.
- Ctrl-C: SIGINT mid-run exits 130 after writing a checkpoint; --resume then finishes with
  the same adapter as a run never interrupted.
- Must-show 4 (stories260K): a short LoRA run lowers the held-out loss (numbers printed).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import finetune_common as fc  # noqa: E402

TMP = os.path.join(os.environ.get("WERK_TEST_TMP", "/tmp"), "finetune_resume")


def same_adapter(a, b):
    import numpy as np
    x, y = fc.read_peft(os.path.join(a, "adapter")), fc.read_peft(os.path.join(b, "adapter"))
    return set(x) == set(y) and all(np.array_equal(x[k].view(np.uint32), y[k].view(np.uint32)) for k in x)


def finetune(p, out, extra, check, label):
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--out", out, "--seq", "64",
                         "--batch", "2", "--grad-accum", "2", "--dropout", "0.1", "--lr", "2e-3", "--no-progress",
                         "--json"] + extra)
    check(rc == 0, f"{label}: exit 0 ({se.strip()[-300:]})")
    return json.loads(so) if rc == 0 else None


def test_resume(check, p):
    n = 6
    full = os.path.join(TMP, "full_const")
    half = os.path.join(TMP, "half_const")
    for d in (full, half):
        shutil.rmtree(d, ignore_errors=True)
    const = ["--schedule", "constant", "--warmup", "2"]
    finetune(p, full, ["--steps", str(n)] + const, check, "6 steps")
    finetune(p, half, ["--steps", str(n // 2)] + const, check, "3 steps")
    finetune(p, half, ["--steps", str(n), "--resume", half] + const, check, "--resume to 6")
    check(same_adapter(full, half), "constant schedule: 6 steps == 3 + resume + 3, bit for bit")
    lines = [json.loads(l) for l in open(os.path.join(half, "loss.jsonl"))]
    check([l["step"] for l in lines] == list(range(1, n + 1)), "resumed loss log continues the first run's")

    cos_full = os.path.join(TMP, "full_cos")
    cos_half = os.path.join(TMP, "half_cos")
    for d in (cos_full, cos_half):
        shutil.rmtree(d, ignore_errors=True)
    cos = ["--schedule", "cosine", "--warmup", "1", "--steps", str(n)]
    finetune(p, cos_full, cos + ["--save-every", str(n // 2)], check, "cosine 6 steps, checkpoint at 3")
    os.makedirs(os.path.join(cos_half, "checkpoints"))
    shutil.copy(os.path.join(cos_full, "checkpoints", "step-00000003.ckpt.zst"),
                os.path.join(cos_half, "checkpoints"))
    finetune(p, cos_half, cos + ["--resume", cos_half], check, "cosine: resume from step 3")
    check(same_adapter(cos_full, cos_half), "cosine schedule: resume from the step-3 checkpoint, bit for bit")
    check(not same_adapter(full, cos_full), "(the two schedules do differ)")

    t1 = os.path.join(TMP, "threads1")
    t2 = os.path.join(TMP, "threads2")
    for d, t in ((t1, "1"), (t2, "2")):
        shutil.rmtree(d, ignore_errors=True)
        finetune(p, d, ["--steps", "4", "--threads", t], check, f"--threads {t}")
    check(same_adapter(t1, t2), "--threads 1 and 2: bit-identical adapters")


def test_interrupt(check, p):
    n = 40
    ref = os.path.join(TMP, "int_ref")
    cut = os.path.join(TMP, "int_cut")
    for d in (ref, cut):
        shutil.rmtree(d, ignore_errors=True)
    args = ["--steps", str(n), "--schedule", "cosine"]
    t0 = time.time()
    finetune(p, ref, args, check, f"{n} steps uninterrupted")
    took = time.time() - t0
    proc = subprocess.Popen([fc.WERK, "finetune", "--model", p["tok"], "--lora", p["train"], "--out", cut, "--seq",
                             "64", "--batch", "2", "--grad-accum", "2", "--dropout", "0.1", "--lr", "2e-3",
                             "--no-progress", "--json"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=fc.test_env())
    time.sleep(max(0.3, took * 0.4))
    proc.send_signal(signal.SIGINT)
    so, se = proc.communicate(timeout=120)
    se = se.decode("utf-8", "replace")
    ck = sorted(os.listdir(os.path.join(cut, "checkpoints"))) if os.path.isdir(os.path.join(cut, "checkpoints")) else []
    print(f"  SIGINT after {took * 0.4:.2f}s: exit {proc.returncode}, checkpoints {ck}")
    if proc.returncode == 0:
        print("  (the run finished before the signal; the interrupt path was not exercised)")
    else:
        check(proc.returncode == 130, f"Ctrl-C exits 130 ({se.strip()[-200:]})")
        check(len(ck) == 1 and not any(".tmp" in c for c in ck), "one checkpoint written, no temporaries")
        check(not os.path.exists(os.path.join(cut, "adapter.gguf")), "no final adapter from a cut run")
    finetune(p, cut, args + ["--resume", cut], check, "resume after Ctrl-C")
    check(same_adapter(ref, cut), "interrupted + resumed == uninterrupted, bit for bit")


def test_learning(check, p):
    out = os.path.join(TMP, "learn")
    shutil.rmtree(out, ignore_errors=True)
    rc, so, se = fc.run(["finetune", "--model", p["tok"], "--lora", p["train"], "--val", p["val"], "--out", out,
                         "--steps", "30", "--seq", "128", "--batch", "4", "--lr", "3e-3", "--schedule", "cosine",
                         "--warmup", "3", "--eval-every", "10", "--no-progress", "--json"])
    check(rc == 0, f"stories260K learning run ({se.strip()[-200:]})")
    if rc != 0:
        return
    res = json.loads(so)
    print(f"  stories260K held-out loss {res['val_loss_before']:.4f} -> {res['val_loss_after']:.4f} "
          f"(train {res['train_loss_first']:.4f} -> {res['train_loss_last']:.4f}, {res['tokens_per_s']:.0f} tok/s)")
    check(res["val_loss_after"] < 0.8 * res["val_loss_before"], "held-out loss drops by more than 20%")


def main():
    return fc.run_tests(TMP, [test_resume, test_interrupt, test_learning])


if __name__ == "__main__":
    sys.exit(main())

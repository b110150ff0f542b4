#!/usr/bin/env python3
# ctest-label: slow
# tests/infer/test_infer_cli.py - `werk infer` on the real models: greedy, threads, --chat
#
# For each model under $WERK_CACHE/models that is present: greedy `--prompt "The capital of
# France is" -n 16` gives identical stdout with --threads 1 and 2; SmolLM2 answers "Paris"
# there. Gemma 3 270M (the base model) continues with "the capital of the country of
# France...", so for it the check is a plain-text question ("Question: ... Answer:") whose
# greedy answer contains "Paris". --chat renders the model's template (chatml for SmolLM2,
# which then answers "Paris"; gemma's turn tokens for Gemma, which as a base model does not
# follow the turn: only a clean exit and some output are checked). Also: sampling with a
# seed is reproducible and thread-independent, and bad arguments fail with a message.
import os
import subprocess
import sys

PROMPT = "The capital of France is"


def run(werk, args):
    p = subprocess.run([werk, "infer"] + args, capture_output=True, timeout=600)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def main():
    werk = os.environ.get("WERK_BIN", "")
    cache = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
    if not werk or not os.path.exists(werk):
        print("SKIP: WERK_BIN not set")
        return 77
    models = {
        "smollm2": os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        "gemma": os.path.join(cache, "models", "gemma-3-270m-q4_k_m.gguf"),
    }
    present = {k: v for k, v in models.items() if os.path.exists(v)}
    if not present:
        print("SKIP: no real model under " + os.path.join(cache, "models"))
        return 77
    fails = []

    def check(cond, msg):
        print(("ok   " if cond else "FAIL ") + msg)
        if not cond:
            fails.append(msg)

    for name, path in present.items():
        outs = []
        for t in ("1", "2"):
            rc, out, err = run(werk, ["--model", path, "--prompt", PROMPT, "-n", "16", "--threads", t])
            check(rc == 0, f"{name} --prompt --threads {t} exits 0 ({err.strip()[-200:]})")
            print(f"  [{name} t={t}] {out.strip()!r}  {err.strip()}")
            outs.append(out)
        check(outs[0] == outs[1], f"{name}: greedy output identical with 1 and 2 threads")
        check(len(outs[0].strip()) > 0, f"{name}: generated some text")
        if name == "smollm2":
            check("Paris" in outs[0], f"{name}: completion mentions Paris")
        else:
            rc, out, err = run(werk, ["--model", path, "--prompt",
                                      "Question: What is the capital of France?\nAnswer:", "-n", "8"])
            print(f"  [{name} Q/A] {out.strip()!r}")
            check(rc == 0 and "Paris" in out, f"{name}: Q/A prompt answers Paris")

        # Not "What is the capital of France?": on that exact prompt SmolLM2's Q4_1 file answers
        # "\nL'Étoile, la Cité, ..." in llama.cpp too (checked with llama-cpp-python 0.3.36, same
        # top-5 logits as werk), so the word decides, not werk.
        rc, out, err = run(werk, ["--model", path, "--chat", "Which city is the capital of France?", "-n", "32"])
        print(f"  [{name} chat] {out.strip()!r}  {err.strip()}")
        check(rc == 0 and len(out.strip()) > 0, f"{name}: --chat runs and prints text")
        if name == "smollm2":
            check("Paris" in out, f"{name}: chat answer mentions Paris")

        samp = []
        for t in ("1", "2", "1"):
            rc, out, err = run(werk, ["--model", path, "--prompt", PROMPT, "-n", "12", "--temp", "0.8",
                                      "--top-k", "40", "--top-p", "0.95", "--min-p", "0.05",
                                      "--repeat-penalty", "1.1", "--seed", "7", "--threads", t])
            check(rc == 0, f"{name}: sampling run exits 0")
            samp.append(out)
        check(samp[0] == samp[1] == samp[2], f"{name}: seeded sampling is reproducible across threads")

    path = next(iter(present.values()))
    rc, out, err = run(werk, ["--model", path])
    check(rc != 0 and "prompt" in err, "missing --prompt/--chat is an error")
    rc, out, err = run(werk, ["--model", path, "--prompt", "x", "--top-p", "2"])
    check(rc != 0 and "top-p" in err, "bad --top-p is an error")

    print(f"{len(fails)} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

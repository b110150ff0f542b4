#!/usr/bin/env python3
# ctest-label: slow
# tests/infer/test_memory.py - peak RSS of `werk infer` on the real models stays under a bound
#
# For each real model under $WERK_CACHE/models that is present: a prompt of exactly 512
# tokens (a paragraph repeated and cut word by word, counted with `werk tokenize --bos`,
# as `werk infer` adds BOS) and -n 64 greedy tokens; the peak resident set of that one
# process (os.wait4's ru_maxrss) must stay under the model's bound. What the peak holds:
# the touched pages of the memory-mapped GGUF (every weight is read: ~ the file size;
# nothing is dequantized whole), the tokenizer, the KV cache for 512 + 64 positions (f32:
# Gemma 18 layers x 256 x 2 x 4 B = 36 KiB/token, SmolLM2 30 x 192 x 2 x 4 B = 45 KiB/token),
# the prompt's activations (prefill: 512 tokens x (n_embd + 3 n_ff + q/k/v) floats) and
# one row of logits. Measured (Release, 2 threads): Gemma 3 270M Q4_K_M 320 MiB, SmolLM2
# 135M Q4_1 146 MiB; the bounds are those plus ~25-30%:
BOUND_MIB = {
    "gemma-3-270m-q4_k_m.gguf": 410,
    "SmolLM2-135M-Instruct.Q4_1.gguf": 190,
}
import os
import subprocess
import sys
import tempfile

PARA = ("The old lighthouse stood on a rocky point at the edge of the bay, and every evening the keeper "
        "climbed its spiral stairs to light the lamp. Ships passing in the night relied on its beam to find "
        "their way between the reefs, and the villagers said that in a hundred years it had never once gone "
        "dark. ")


def tokens(werk, model, text):
    p = subprocess.run([werk, "tokenize", "--model", model, "--text", text, "--bos"], capture_output=True,
                       text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit("FAIL: werk tokenize: " + p.stderr)
    return len(p.stdout.split())


def prompt_of(werk, model, n_tok):
    words = (PARA * 12).split()
    lo, hi = 1, len(words)
    assert tokens(werk, model, " ".join(words)) >= n_tok, "paragraph too short"
    while lo < hi:  # fewest words giving >= n_tok tokens
        mid = (lo + hi) // 2
        if tokens(werk, model, " ".join(words[:mid])) >= n_tok:
            hi = mid
        else:
            lo = mid + 1
    text = " ".join(words[:lo])
    return text, tokens(werk, model, text)


def peak_rss_mib(cmd):
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(p.pid, 0)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    rc = os.waitstatus_to_exitcode(status)
    return rc, ru.ru_maxrss / 1024.0, text  # ru_maxrss is in KiB on Linux


def main():
    werk = os.environ.get("WERK_BIN", "")
    cache = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
    if not werk or not os.path.exists(werk):
        print("SKIP: WERK_BIN not set")
        return 77
    if os.environ.get("WERK_SANITIZED", "0") == "1":
        print("SKIP: sanitizer builds use more memory")
        return 77
    present = [m for m in BOUND_MIB if os.path.exists(os.path.join(cache, "models", m))]
    if not present:
        print("SKIP: no real model under " + os.path.join(cache, "models"))
        return 77
    fails = 0
    for name in present:
        model = os.path.join(cache, "models", name)
        text, n = prompt_of(werk, model, 512)
        if n < 512 or n > 516:
            print(f"FAIL: {name}: prompt of {n} tokens, wanted 512")
            fails += 1
            continue
        rc, mib, out = peak_rss_mib([werk, "infer", "--model", model, "--prompt", text, "-n", "64",
                                     "--threads", "2"])
        size = os.path.getsize(model) / 2**20
        if rc != 0:
            print(f"FAIL: {name}: werk infer exit {rc}: {out[-400:]}")
            fails += 1
            continue
        ok = mib <= BOUND_MIB[name]
        print(f"{'ok' if ok else 'FAIL'}: {name}: {n}-token prompt + 64 tokens: peak RSS {mib:.0f} MiB "
              f"(bound {BOUND_MIB[name]} MiB; file {size:.0f} MiB)")
        fails += 0 if ok else 1
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())

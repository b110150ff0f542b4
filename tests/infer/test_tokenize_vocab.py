#!/usr/bin/env python3
# tests/infer/test_tokenize_vocab.py - `werk tokenize` reproduces llama.cpp's vocab test ids
#
# For each ggml-vocab-*.gguf fixture with .inp/.out (llama.cpp's test-tokenizer-0 format:
# texts separated by "\n__ggml_vocab_test__\n", expected ids one line per text, no BOS),
# runs `werk tokenize --model VOCAB --file TEXT` and compares every line exactly. Also: --text
# with --bos, and the command's errors (missing file, usage, a tokenizer model werk lacks).
import os
import subprocess
import sys

VOCABS = ["ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"]
SEP = "\n__ggml_vocab_test__\n"


def main():
    fx = os.environ.get("WERK_FIXTURES", "")
    werk = os.environ.get("WERK_BIN", "")
    tmp = os.environ.get("WERK_TEST_TMP", "/tmp")
    if not werk or not os.path.exists(werk):
        print("SKIP: WERK_BIN not set")
        return 77
    n_fail = n_total = 0
    n_found = 0
    for v in VOCABS:
        gg = os.path.join(fx, "vocab", v)
        if not (os.path.exists(gg) and os.path.exists(gg + ".inp") and os.path.exists(gg + ".out")):
            continue
        n_found += 1
        with open(gg + ".inp", "rb") as f:
            texts = f.read().decode("utf-8").split(SEP)
        if texts and texts[-1] == "":
            texts.pop()
        with open(gg + ".out", "rb") as f:
            outs = f.read().decode("utf-8").split("\n")
        if outs and outs[-1] == "":
            outs.pop()
        if len(texts) != len(outs):
            print(f"FAIL {v}: {len(texts)} texts but {len(outs)} expected lines")
            n_fail += 1
            continue
        n_ok = 0
        for i, (t, want) in enumerate(zip(texts, outs)):
            p = os.path.join(tmp, f"tok_{v}_{i}.txt")
            with open(p, "wb") as f:
                f.write(t.encode("utf-8"))
            r = subprocess.run([werk, "tokenize", "--model", gg, "--file", p], capture_output=True)
            got = r.stdout.decode().strip()
            n_total += 1
            if r.returncode != 0 or got.split() != want.split():
                n_fail += 1
                print(f"FAIL {v} #{i} {t!r}: rc={r.returncode} {r.stderr.decode().strip()}\n  want {want}\n  got  {got}")
            else:
                n_ok += 1
        print(f"{v}: {n_ok}/{len(texts)} match")
    if n_found == 0:
        print("SKIP: no vocab fixtures under $WERK_FIXTURES/vocab")
        return 77
    print(f"{n_total - n_fail}/{n_total} match")
    n_fail += check_cli(werk, fx, tmp)
    return 1 if n_fail else 0


def check_cli(werk, fx, tmp):
    bad = 0
    spm = os.path.join(fx, "vocab", "ggml-vocab-llama-spm.gguf")
    if os.path.exists(spm):
        r = subprocess.run([werk, "tokenize", "--model", spm, "--text", "Hello world", "--bos"], capture_output=True)
        if r.returncode != 0 or r.stdout.decode().split() != ["1", "15043", "3186"]:
            print(f"FAIL --text --bos: rc={r.returncode} {r.stdout!r}")
            bad += 1
    r = subprocess.run([werk, "tokenize", "--model", os.path.join(tmp, "missing.gguf"), "--text", "x"],
                       capture_output=True)
    if r.returncode != 1 or b"missing.gguf" not in r.stderr:
        print(f"FAIL missing model: rc={r.returncode} {r.stderr!r}")
        bad += 1
    r = subprocess.run([werk, "tokenize", "--model", spm], capture_output=True)
    if r.returncode != 2:
        print(f"FAIL no text: rc={r.returncode}")
        bad += 1
    try:
        import gguf
        import numpy as np
    except ImportError:
        print("gguf module missing: unsupported-model check skipped")
        return bad
    p = os.path.join(tmp, "tok_bert.gguf")
    w = gguf.GGUFWriter(p, "bert")
    w.add_string("tokenizer.ggml.model", "bert")
    w.add_array("tokenizer.ggml.tokens", ["a", "b"])
    w.add_tensor("x", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = subprocess.run([werk, "tokenize", "--model", p, "--text", "ab"], capture_output=True)
    if r.returncode != 1 or b"bert" not in r.stderr:
        print(f"FAIL unsupported model: rc={r.returncode} {r.stderr!r}")
        bad += 1
    print(f"cli checks: {'ok' if bad == 0 else f'{bad} failed'}")
    return bad


if __name__ == "__main__":
    sys.exit(main())

"""tests/train/finetune_common.py - shared set-up for the `werk finetune` CLI tests

Makes the stories260K models and a small English JSONL corpus once per test folder:
  s260k_hf.gguf   `werk convert` of stories260K/hf (no vocab: pre-tokenized data only)
  s260k.gguf      `werk convert` of stories260K/llama2c with tok512.bin (has a vocab)
  train.jsonl / val.jsonl   {"text"} stories of one fixed pattern (names, colours, places)
  train_ids.jsonl {"input_ids"} of the same stories, tokenized with `werk tokenize`
"""
import json
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

WERK = wt.WERK
FIX = wt.FIX
SANITIZED = wt.SANITIZED
Checker = wt.Checker


def need_inputs():
    wt.need_werk()
    if not os.path.isdir(os.path.join(FIX, "stories260K", "hf")):
        wt.skip("fixture stories260K missing (../shared/fixtures not beside the checkout?)")


def test_env():
    """The environment for werk runs: OpenMP threads sleep instead of spinning (the test
    machine may be oversubscribed), one thread unless a test asks for more."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "passive")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run(args, timeout=600, env=None):
    p = wt.run(args, env=env or test_env(), timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def story(r):
    names = ["Tom", "Lily", "Max", "Sue", "Ben", "Mia", "Sam", "Anna"]
    colors = ["red", "blue", "green", "yellow", "pink", "purple"]
    things = ["hat", "ball", "kite", "car", "cup", "book"]
    places = ["park", "school", "beach", "shop", "garden", "river"]
    n, c, t, p = r.choice(names), r.choice(colors), r.choice(things), r.choice(places)
    return (f"{n} had a {c} {t}. Every day {n} took the {c} {t} to the {p}. "
            f"At the {p}, {n} played with the {c} {t} and was very happy.")


def setup(tmp):
    """Returns a dict of paths; builds what is missing."""
    os.makedirs(tmp, exist_ok=True)
    p = {k: os.path.join(tmp, v) for k, v in {
        "hf": "s260k_hf.gguf", "tok": "s260k.gguf", "train": "train.jsonl", "val": "val.jsonl",
        "train_ids": "train_ids.jsonl"}.items()}
    if not os.path.exists(p["hf"]):
        wt.stories260K_hf_gguf(p["hf"], env=test_env())
    if not os.path.exists(p["tok"]):
        wt.stories260K_gguf(p["tok"], env=test_env())
    r = random.Random(1)
    if not os.path.exists(p["val"]):
        train = [story(r) for _ in range(200)]
        val = [story(r) for _ in range(40)]
        with open(p["train"], "w") as f:
            f.writelines(json.dumps({"text": s}) + "\n" for s in train)
        with open(p["val"], "w") as f:
            f.writelines(json.dumps({"text": s}) + "\n" for s in val)
        with open(p["train_ids"], "w") as f:
            for s in train[:60]:
                rc, out, err = run(["tokenize", "--model", p["tok"], "--text", s, "--bos"])
                assert rc == 0, err
                f.write(json.dumps({"input_ids": [int(x) for x in out.split()]}) + "\n")
    return p


def run_tests(tmp, tests):
    """A finetune test's main: skips without werk or fixtures, makes the inputs in a fresh
    `tmp`, runs each test(check, paths) and returns the exit status."""
    need_inputs()
    shutil.rmtree(tmp, ignore_errors=True)
    p = setup(tmp)
    check = Checker()
    for test in tests:
        test(check, p)
    return check.done()


def read_peft(d):
    """{tensor name: float32 array} of a PEFT adapter dir."""
    from safetensors.numpy import load_file
    return load_file(os.path.join(d, "adapter_model.safetensors"))

#!/usr/bin/env python3
"""tests/convert/test_cli_bad_input.py - hostile files through the real command line

Truncated, bit-flipped and huge-count GGUF / safetensors / JSON files given to
`werk convert` and `werk inspect` must end with exit status 0, 1 or 2 (never a signal),
and when they fail, print exactly one line "werk: error: ..." naming the file (warnings
may precede it), leave no
output file behind, and (outside sanitizer builds) never allocate much memory: each run
has a 1 GiB address-space limit, far above what a small file needs.
"""
import os, random, resource, shutil, struct, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

WERK = wt.WERK
FIX = wt.FIX
TMP = os.path.join(wt.TMP, "cli_bad_input")
SANITIZED = wt.SANITIZED

wt.need_werk()
if not os.path.isdir(os.path.join(FIX, "stories260K")):
    wt.skip("../shared/fixtures missing")

shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)
check = wt.Checker(show_passes=False)


def limit_memory():
    if not SANITIZED:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run(args, label, bad_path):
    out = os.path.join(TMP, "out.gguf")
    if os.path.exists(out):
        os.unlink(out)
    argv = [WERK] + [out if a == "OUT" else a for a in args]
    p = subprocess.run(argv, capture_output=True, text=True, errors="replace", preexec_fn=limit_memory, timeout=120)
    check(p.returncode >= 0, f"{label}: killed by signal {-p.returncode}: {p.stderr[-500:]}")
    check(p.returncode in (0, 1, 2), f"{label}: exit {p.returncode}")
    if p.returncode != 0:
        lines = [l for l in p.stderr.splitlines() if l.strip() and not l.startswith("werk: warning: ")]
        check(len(lines) == 1 and lines[0].startswith("werk: error: "), f"{label}: want one error line, got {lines!r}")
        check(os.path.basename(bad_path) in p.stderr, f"{label}: error does not name the file: {p.stderr!r}")
        if "OUT" in args:
            check(not os.path.exists(out), f"{label}: output left behind after failure")
        leftovers = [f for f in os.listdir(TMP) if ".tmp." in f]
        check(not leftovers, f"{label}: temporaries left: {leftovers}")
    return p.returncode


rng = random.Random(1234)

# ---- GGUF: a small valid file written by werk, then damaged ----------------------------
good_gguf = os.path.join(TMP, "good.gguf")
wt.stories260K_gguf(good_gguf)
data = open(good_gguf, "rb").read()

def damaged(name, blob):
    path = os.path.join(TMP, name)
    open(path, "wb").write(blob)
    return path

cuts = sorted(set([0, 1, 3, 4, 7, 8, 15, 16, 23, 24, 40, 100, 1000, 5000] + [rng.randrange(len(data)) for _ in range(25)]))
for cut in cuts:
    bad = damaged(f"trunc_{cut}.gguf", data[:cut])
    rc = run(["convert", bad, "OUT"], f"gguf truncated at {cut}", bad)
    check(rc != 0, f"gguf truncated at {cut} must fail")
for i in range(40):
    blob = bytearray(data)
    pos = rng.randrange(min(len(blob), 20000))  # header, metadata and tensor infos
    blob[pos] ^= 1 << rng.randrange(8)
    bad = damaged(f"flip_{i}.gguf", bytes(blob))
    run(["inspect", bad], f"gguf bit flip at {pos}", bad)
    run(["convert", bad, "OUT", "--type", "f16"], f"gguf bit flip at {pos} (convert)", bad)
# huge counts: tensor count, kv count, first string length
for off, label in ((8, "tensor_count"), (16, "kv_count"), (24, "first key length")):
    blob = bytearray(data)
    blob[off:off + 8] = struct.pack("<Q", 0xFFFFFFFFFFFFFF00)
    bad = damaged(f"huge_{label.replace(' ', '_')}.gguf", bytes(blob))
    check(run(["inspect", bad], f"gguf huge {label}", bad) != 0, f"gguf huge {label} must fail")

# ---- safetensors -------------------------------------------------------------------------
st = open(os.path.join(FIX, "stories260K/hf/model.safetensors"), "rb").read()
hf_dir = os.path.join(TMP, "hf")
for cut in [0, 4, 8, 9, 50, 200, len(st) // 2, len(st) - 1]:
    shutil.rmtree(hf_dir, ignore_errors=True)
    os.makedirs(hf_dir)
    shutil.copy(os.path.join(FIX, "stories260K/hf/config.json"), hf_dir)
    open(os.path.join(hf_dir, "model.safetensors"), "wb").write(st[:cut])
    bad = os.path.join(hf_dir, "model.safetensors")
    check(run(["inspect", bad], f"safetensors truncated at {cut}", bad) != 0, f"safetensors truncated at {cut} must fail")
    check(run(["convert", hf_dir, "OUT"], f"HF dir, safetensors truncated at {cut}", bad) != 0, "must fail")
hlen = struct.unpack("<Q", st[:8])[0]
for i in range(30):
    blob = bytearray(st)
    pos = 8 + rng.randrange(hlen)
    blob[pos] = rng.choice(b'{}[]",:0123456789x\x00\xff')
    bad = damaged(f"flip_{i}.safetensors", bytes(blob))
    run(["inspect", bad], f"safetensors header byte {pos} changed", bad)
blob = bytearray(st)
blob[0:8] = struct.pack("<Q", 1 << 62)
bad = damaged("huge_header.safetensors", bytes(blob))
check(run(["inspect", bad], "safetensors huge header length", bad) != 0, "huge header length must fail")

# ---- config.json -----------------------------------------------------------------------------
cfg = open(os.path.join(FIX, "stories260K/hf/config.json"), "rb").read()
variants = {
    "truncated": cfg[: len(cfg) // 2],
    "garbage": b"\x00\xff{{{",
    "duplicate_key": cfg.replace(b'"hidden_size": 64,', b'"hidden_size": 64, "hidden_size": 65,'),
    "deep": b"[" * 100000 + b"]" * 100000,
    "wrong_type": cfg.replace(b'"num_hidden_layers": 5', b'"num_hidden_layers": "five"'),
    "huge_layers": cfg.replace(b'"num_hidden_layers": 5', b'"num_hidden_layers": 4000000000'),
    "unknown_arch": cfg.replace(b'"model_type": "llama"', b'"model_type": "mamba9"').replace(b"LlamaForCausalLM", b"Mamba9ForCausalLM"),
}
for name, blob in variants.items():
    shutil.rmtree(hf_dir, ignore_errors=True)
    os.makedirs(hf_dir)
    shutil.copy(os.path.join(FIX, "stories260K/hf/model.safetensors"), hf_dir)
    open(os.path.join(hf_dir, "config.json"), "wb").write(blob)
    rc = run(["convert", hf_dir, "OUT"], f"config.json {name}", "config.json")
    check(rc != 0, f"config.json {name} must fail")

# ---- usage errors ----------------------------------------------------------------------------
for args in (["convert"], ["convert", "a"], ["convert", good_gguf, "OUT", "--type", "q3_x"], ["convert", good_gguf, "OUT", "--bogus"], ["frobnicate"]):
    p = subprocess.run([WERK] + [os.path.join(TMP, "o.gguf") if a == "OUT" else a for a in args], capture_output=True, text=True)
    check(p.returncode == 2, f"usage error {args}: exit {p.returncode}")

sys.exit(check.done())

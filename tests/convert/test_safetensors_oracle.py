#!/usr/bin/env python3
"""tests/convert/test_safetensors_oracle.py - werk's safetensors reader/writer against the
reference implementation (the PyPI `safetensors` package, Rust core).

Part A (Python writes, werk reads): files with every dtype safetensors.numpy supports, BF16
through safetensors.serialize_file, a 0-d scalar, an empty tensor and metadata; a sharded
checkpoint with an index as transformers writes it; the fixtures' safetensors files. werk
reads each through `werk inspect --json --hash FILE`, which must report every tensor with
the right type, shape, byte count and SHA-256 of its bytes. Valid files with dtypes werk
does not handle (F8_E4M3, U16, ...) must fail with a message naming tensor and dtype.
Needs the werk program with its `inspect` command; skipped (with a message) otherwise.

Part B (werk writes, Python reads): test_safetensors.c leaves
$WERK_TEST_TMP/werk_written.safetensors and werk_written.manifest.json; the reference
reader must load it and find the manifest's dtypes, shapes, byte hashes and metadata.
Skipped (with a message) when the C test has not run yet.

Exit 0 = pass, 1 = fail, 77 = nothing could be checked (SKIP: reason).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    import safetensors
    import safetensors.numpy as stnp
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"SKIP: python module missing: {e}")
    sys.exit(77)

FAILS = []
CHECKS = 0

# safetensors dtype -> werk_dtype_name
WERK_TYPE = {"F64": "f64", "F32": "f32", "F16": "f16", "BF16": "bf16", "I64": "i64", "I32": "i32",
             "I16": "i16", "I8": "i8", "U8": "u8", "BOOL": "bool"}


def check(cond, msg):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILS.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)


def sha(b):
    return hashlib.sha256(bytes(b)).hexdigest()


def tmp_dir():
    root = os.environ.get("WERK_TEST_TMP") or "/tmp"
    return root


# ---- part A: python writes, werk reads ---------------------------------------------------

def werk_inspect_available(werk):
    if not werk or not os.path.isfile(werk) or not os.access(werk, os.X_OK):
        return False, f"werk program not built ({werk or 'WERK_BIN unset'})"
    r = subprocess.run([werk, "inspect", "--help"], capture_output=True, text=True)
    if r.returncode != 0 and "unknown command" in (r.stdout + r.stderr):
        return False, "werk has no inspect command yet"
    return True, ""


def inspect(werk, path):
    r = subprocess.run([werk, "inspect", "--json", "--hash", path], capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stdout + r.stderr).strip()
    try:
        return json.loads(r.stdout), ""
    except json.JSONDecodeError as e:
        return None, f"inspect printed invalid JSON: {e}: {r.stdout[:200]}"


def expected_from_file(path):
    """name -> (dtype, shape, nbytes, sha256) as the reference reader sees the file."""
    with open(path, "rb") as f:
        entries = safetensors.deserialize(f.read())
    return {name: (d["dtype"], list(d["shape"]), len(d["data"]), sha(d["data"])) for name, d in entries}


def compare(werk, path, expected, label, metadata=None):
    got, err = inspect(werk, path)
    check(got is not None, f"{label}: werk inspect failed: {err}")
    if got is None:
        return
    tensors = {t["name"]: t for t in got.get("tensors", [])}
    check(len(tensors) == len(got.get("tensors", [])), f"{label}: duplicate names in werk's listing")
    check(set(tensors) == set(expected),
          f"{label}: tensor names differ: werk-only {sorted(set(tensors) - set(expected))[:5]}, "
          f"reference-only {sorted(set(expected) - set(tensors))[:5]}")
    for name, (dtype, shape, nbytes, digest) in expected.items():
        t = tensors.get(name)
        if t is None:
            continue
        check(t["type"] == WERK_TYPE.get(dtype), f"{label}: {name}: type {t['type']} for {dtype}")
        check(list(t["shape"]) == shape, f"{label}: {name}: shape {t['shape']} != {shape}")
        check(t["nbytes"] == nbytes, f"{label}: {name}: {t['nbytes']} bytes != {nbytes}")
        check(t.get("sha256") == digest, f"{label}: {name}: bytes differ (sha256)")
    if metadata is not None and "metadata" in got:
        check(got["metadata"] == metadata, f"{label}: metadata {got['metadata']} != {metadata}")


# safetensors dtype -> the name TensorSpec (safetensors >= 0.8) takes
SPEC_NAME = {"BF16": "bfloat16", "F32": "float32", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
             "U16": "uint16", "U32": "uint32", "U64": "uint64", "C64": "complex64"}


def serialize_raw(path, tensors, metadata=None):
    """Writes {name: (st_dtype, shape, bytes)} with the reference serializer (any dtype)."""
    if hasattr(safetensors, "TensorSpec"):
        keep = []
        specs = {}
        for name, (dt, shape, data) in tensors.items():
            buf = np.frombuffer(bytes(data) or b"\0", dtype=np.uint8).copy()
            keep.append(buf)
            specs[name] = safetensors.TensorSpec(dtype=SPEC_NAME[dt], shape=list(shape),
                                                 data_ptr=buf.ctypes.data, data_len=len(data))
        safetensors.serialize_file(specs, path, metadata=metadata)
    else:
        safetensors.serialize_file({n: {"dtype": dt, "shape": list(sh), "data": bytes(b)}
                                    for n, (dt, sh, b) in tensors.items()}, path, metadata=metadata)


def bf16_bytes(values):
    f = np.asarray(values, dtype=np.float32)
    return (f.view(np.uint32) >> 16).astype("<u2").tobytes()


def part_a(werk):
    ok, why = werk_inspect_available(werk)
    if not ok:
        print(f"SKIP part A (python writes, werk reads): {why}")
        return False
    d = os.path.join(tmp_dir(), "st_oracle")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rng = np.random.default_rng(7)

    # Every numpy dtype safetensors.numpy writes, plus scalar, empty and metadata.
    arrays = {
        "f64": rng.standard_normal((3, 4)).astype(np.float64),
        "f32": rng.standard_normal((2, 3, 5)).astype(np.float32),
        "f16": rng.standard_normal((17,)).astype(np.float16),
        "i64": rng.integers(-2**40, 2**40, (4,), dtype=np.int64),
        "i32": rng.integers(-2**30, 2**30, (2, 2), dtype=np.int32),
        "i16": rng.integers(-2**15, 2**15, (3, 1, 2), dtype=np.int16),
        "i8": rng.integers(-128, 128, (2, 2, 2, 2), dtype=np.int8),
        "u8": rng.integers(0, 256, (10,), dtype=np.uint8),
        "bool": rng.integers(0, 2, (3, 3)).astype(np.bool_),
        "scalar": np.array(3.25, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float16),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
    }
    meta = {"format": "pt", "note": "gr\u00fc\u00df \"quoted\" \\ \u20ac"}
    p = os.path.join(d, "numpy_all.safetensors")
    stnp.save_file(arrays, p, metadata=meta)
    compare(werk, p, expected_from_file(p), "numpy dtypes", metadata=meta)

    # BF16 (numpy has no bfloat16): raw bytes through the generic serializer.
    p = os.path.join(d, "bf16.safetensors")
    vals = rng.standard_normal(24).astype(np.float32)
    serialize_raw(p, {"w.bf16": ("BF16", [4, 6], bf16_bytes(vals)), "b.f32": ("F32", [3], vals[:3].tobytes())},
                  metadata={"k": "v"})
    compare(werk, p, expected_from_file(p), "bf16")

    # No tensors at all.
    p = os.path.join(d, "nothing.safetensors")
    stnp.save_file({}, p, metadata={"only": "metadata"})
    compare(werk, p, expected_from_file(p), "no tensors")

    # Valid files werk does not handle: a clean failure naming tensor and dtype.
    for dt, size in (("F8_E4M3", 1), ("U16", 2), ("U32", 4), ("U64", 8)):
        p = os.path.join(d, f"unsupported_{dt}.safetensors")
        try:
            serialize_raw(p, {"odd": (dt, [2, 2], bytes(4 * size))})
        except Exception as e:  # an older safetensors may not know the dtype
            print(f"note: safetensors cannot write {dt}: {e}")
            continue
        r = subprocess.run([werk, "inspect", "--json", p], capture_output=True, text=True)
        msg = (r.stdout + r.stderr).strip()
        check(r.returncode != 0, f"unsupported {dt}: werk accepted it")
        check("odd" in msg and dt in msg and "not supported" in msg and msg.count("\n") == 0,
              f"unsupported {dt}: message {msg!r}")

    # A sharded checkpoint as transformers writes it: shards + index (indent 2, sorted).
    sd = os.path.join(d, "sharded")
    os.makedirs(sd)
    shards = {
        "model-00001-of-00002.safetensors": {"model.embed_tokens.weight": arrays["f32"].reshape(6, 5),
                                             "model.norm.weight": arrays["f16"]},
        "model-00002-of-00002.safetensors": {"lm_head.weight": arrays["f64"], "mask": arrays["bool"]},
    }
    expected = {}
    weight_map = {}
    total = 0
    for fname, tensors in shards.items():
        sp = os.path.join(sd, fname)
        stnp.save_file(tensors, sp, metadata={"format": "pt"})
        expected.update(expected_from_file(sp))
        for name, a in tensors.items():
            weight_map[name] = fname
            total += a.nbytes
    ip = os.path.join(sd, "model.safetensors.index.json")
    with open(ip, "w") as f:
        f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2,
                           sort_keys=True) + "\n")
    compare(werk, ip, expected, "sharded (index)")

    # Real files written by transformers / PEFT (fixtures), when present.
    fx = os.environ.get("WERK_FIXTURES", "")
    n_fx = 0
    if fx and os.path.isdir(fx):
        for root, _, files in os.walk(fx):
            for fn in sorted(files):
                if fn.endswith(".safetensors"):
                    p = os.path.join(root, fn)
                    compare(werk, p, expected_from_file(p), os.path.relpath(p, fx))
                    n_fx += 1
    print(f"part A: checked {n_fx} fixture files" if n_fx else "part A: no fixtures (WERK_FIXTURES unset)")
    return True


# ---- part B: werk writes, python reads ---------------------------------------------------

def part_b():
    p = os.path.join(tmp_dir(), "werk_written.safetensors")
    m = os.path.join(tmp_dir(), "werk_written.manifest.json")
    if not (os.path.isfile(p) and os.path.isfile(m)):
        print("SKIP part B (werk writes, python reads): run convert/test_safetensors first "
              f"({p} missing)")
        return False
    with open(m) as f:
        manifest = json.load(f)
    with open(p, "rb") as f:
        raw = f.read()
    try:
        entries = safetensors.deserialize(raw)
    except Exception as e:
        check(False, f"reference reader rejects werk's file: {e}")
        return True
    got = {name: d for name, d in entries}
    names = [t["name"] for t in manifest["tensors"]]
    check(sorted(got) == sorted(names), f"tensor names {sorted(got)} != {sorted(names)}")
    for t in manifest["tensors"]:
        d = got.get(t["name"])
        if d is None:
            continue
        check(d["dtype"] == t["dtype"], f"{t['name']}: dtype {d['dtype']} != {t['dtype']}")
        check(list(d["shape"]) == t["shape"], f"{t['name']}: shape {d['shape']} != {t['shape']}")
        check(sha(d["data"]) == t["sha256"], f"{t['name']}: bytes differ")
    with safetensors.safe_open(p, framework="numpy") as f:
        check(f.metadata() == manifest["metadata"], f"metadata {f.metadata()} != {manifest['metadata']}")
        # Tensors numpy can hold load with the right values too.
        for t in manifest["tensors"]:
            if t["dtype"] == "BF16":
                continue
            a = f.get_tensor(t["name"])
            check(list(a.shape) == t["shape"], f"{t['name']}: numpy shape {a.shape}")
            check(sha(np.ascontiguousarray(a).tobytes()) == t["sha256"], f"{t['name']}: numpy bytes differ")
    # Layout rules of the reference writer: header padded with spaces to a multiple of 8.
    n = int.from_bytes(raw[:8], "little")
    check(n % 8 == 0 and raw[8:9] == b"{", f"header length {n} / start {raw[8:9]!r}")
    # The index werk_st_write_index wrote (test_safetensors.c) has transformers' exact bytes:
    # json.dumps(index, indent=2, sort_keys=True) + "\n".
    ip = os.path.join(tmp_dir(), "st_shards", "model.safetensors.index.json")
    if os.path.isfile(ip):
        with open(ip, "rb") as f:
            text = f.read()
        want = (json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n").encode()
        check(text == want, f"index bytes differ from transformers' json.dumps:\n{text!r}\n{want!r}")
    return True


def main():
    werk = os.environ.get("WERK_BIN", "")
    did_a = part_a(werk)
    did_b = part_b()
    if not did_a and not did_b:
        print("SKIP: neither werk inspect nor werk_written.safetensors is available")
        return 77
    print(f"{CHECKS} checks, {len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())

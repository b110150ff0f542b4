#!/usr/bin/env python3
# tests/quant/test_quant_legacy_oracle.py - Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 quantization equals gguf-py's
#
# Issue 4, "must show" 1: werk's Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 quantizers produce the bytes
# of the PyPI gguf package's numpy quantizers (gguf.quants.quantize), bit for bit. Writes a
# small GGUF of f32 weights with gguf-py - random rows (Gaussian, heavy-tailed, zeros, exact
# ties, integers, huge and tiny magnitudes, one outlier per block) and, when the model is in
# $WERK_CACHE, rows of real Gemma 3 270M tensors - runs `werk quantize IN OUT --pure --type T`
# and compares every quantized tensor with gguf-py's quantizer on the same f32 data.
# Skips (77) without numpy/gguf or without the `werk quantize` command.
import os
import subprocess
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

WERK = os.environ.get("WERK_BIN", "werk")
TMP = os.environ.get("WERK_TEST_TMP", "/tmp")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
TYPES = [("Q4_0", QT.Q4_0), ("Q4_1", QT.Q4_1), ("Q5_0", QT.Q5_0), ("Q5_1", QT.Q5_1), ("Q8_0", QT.Q8_0)]


def have_command():
    try:
        r = subprocess.run([WERK, "help", "quantize"], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return r.returncode == 0 and "quantize" in (r.stdout + r.stderr)


def random_rows(rng):
    n = 256
    rows = {}
    rows["gauss"] = rng.standard_normal((16, n)).astype(np.float32)
    rows["heavy"] = (rng.standard_t(2, (16, n)) * 0.02).astype(np.float32)
    z = np.zeros((4, n), np.float32)
    z[1, 5::37] = 1.0  # mostly zero blocks
    z[2, :] = -0.0
    rows["zeros"] = z
    # exact ties: multiples of d/2 once the scale is set by an exact max
    t = (rng.integers(-16, 17, (8, n)).astype(np.float32) * np.float32(0.0625))
    t[:, ::32] = 1.0
    rows["ties"] = t
    rows["ints"] = rng.integers(-8, 8, (8, n)).astype(np.float32)
    rows["huge"] = (rng.standard_normal((4, n)) * 1e4).astype(np.float32)
    rows["tiny"] = (rng.standard_normal((4, n)) * 1e-30).astype(np.float32)
    rows["subnormal"] = (rng.standard_normal((2, n)) * 1e-41).astype(np.float32)
    o = (rng.standard_normal((8, n)) * 0.01).astype(np.float32)
    o[:, 7::32] = 3.0  # one outlier per block, both signs
    o[::2, 9::32] = -3.0
    rows["outlier"] = o
    c = np.full((2, n), 0.37, np.float32)
    rows["constant"] = c
    return rows


def real_rows():
    path = os.path.join(CACHE, "models", "gemma-3-270m-f32.gguf")
    if not os.path.exists(path):
        path = os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf")
    if not os.path.exists(path):
        return {}
    r = gguf.GGUFReader(path)
    out = {}
    for t in r.tensors:
        if len(t.shape) != 2 or not t.name.startswith("blk.0."):
            continue
        data = gguf.quants.dequantize(t.data, t.tensor_type) if t.tensor_type != QT.F32 else np.array(t.data)
        data = np.asarray(data, dtype=np.float32).reshape(-1, int(t.shape[0]))
        out["real_" + t.name.split(".")[2]] = np.ascontiguousarray(data[:: max(1, data.shape[0] // 16)][:16])
    return out


def main():
    if not have_command():
        print(f"SKIP: {WERK} has no `quantize` command yet")
        return 77
    rng = np.random.default_rng(20240611)
    rows = random_rows(rng)
    rows.update(real_rows())
    names = {}
    src = os.path.join(TMP, "legacy_oracle_in.gguf")
    w = gguf.GGUFWriter(src, "llama")
    w.add_block_count(1)
    for i, (k, v) in enumerate(sorted(rows.items())):
        name = f"blk.0.ffn_down_{i}.weight"  # 2-D weights: quantized under --pure
        names[name] = k
        w.add_tensor(name, v)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(256, np.float32))  # 1-D: stays f32
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    failures = 0
    for tname, qt in TYPES:
        out = os.path.join(TMP, f"legacy_oracle_{tname}.gguf")
        cmd = [WERK, "quantize", src, out, "--pure", "--type", tname, "--threads", "2"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            print(f"FAIL {' '.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}")
            failures += 1
            continue
        rd = gguf.GGUFReader(out)
        by_name = {t.name: t for t in rd.tensors}
        for name, kind in sorted(names.items()):
            t = by_name.get(name)
            if t is None:
                print(f"FAIL {tname}: {name} missing")
                failures += 1
                continue
            if t.tensor_type != qt:
                print(f"FAIL {tname}: {name} ({kind}) stored as {t.tensor_type.name}")
                failures += 1
                continue
            with np.errstate(all="ignore"):
                ref = gguf.quants.quantize(rows[kind], qt)
            got = np.asarray(t.data).reshape(ref.shape)
            bs, ts = gguf.GGML_QUANT_SIZES[qt]
            bad = (ref.reshape(-1, ts) != got.reshape(-1, ts)).any(axis=1)
            if bad.any():
                i = int(np.argmax(bad))
                print(f"FAIL {tname} {kind}: {int(bad.sum())} of {bad.size} blocks differ; "
                      f"first: block {i} werk {got.reshape(-1, ts)[i].tobytes().hex()} "
                      f"gguf {ref.reshape(-1, ts)[i].tobytes().hex()}")
                failures += 1
        norm = by_name.get("blk.0.attn_norm.weight")
        if norm is None or norm.tensor_type != QT.F32:
            print(f"FAIL {tname}: the 1-D tensor is not kept as f32")
            failures += 1
        print(f"{tname}: {len(names)} tensors compared")
    n_checks = len(TYPES) * (len(names) + 1)
    print(f"{n_checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

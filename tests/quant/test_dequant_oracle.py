#!/usr/bin/env python3
# ctest-label: slow  (real models; left out of the sanitizer pass)
# tests/quant/test_dequant_oracle.py - werk's block formats vs gguf-py, bit for bit
#
# Oracle: the PyPI `gguf` package (llama.cpp's gguf-py: numpy dequantizers for every
# block type, numpy quantizers for Q8_0/BF16, astype for F16). werk's C code is driven
# through the `werk convert` command on tiny GGUF files written with gguf.GGUFWriter:
#
#   1. dequantize: random blocks of every block type gguf-py handles (Q4_0 Q4_1 Q5_0
#      Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K, plus Q8_K against a numpy d*q reference),
#      random bytes with the fp16 (Q8_K: float32) scale fields set to random finite
#      values, all 65536 F16 and BF16 bit patterns, and F32 with NaN payloads;
#      `werk convert in.gguf out.gguf --type f32`; float32 bit patterns must be equal.
#   2. quantize: random and edge-case float32 rows (zeros, huge and tiny magnitudes,
#      subnormals, exact ties) -> `--type q8_0 | f16 | bf16`; bytes must equal
#      gguf.quants.quantize (F16: numpy astype, NaN payloads included).
#   3. real models (when cached in $WERK_CACHE/models): `werk convert real.gguf
#      out.gguf --type f32`, then a sample of tensors of every stored type (row samples
#      of the large ones) against gguf-py's dequantizer.
#
# Q8_1 is left to tests/quant/test_blocks_ref.c: gguf-py lists its block as 40 bytes
# (ggml's is 36), so it can neither write nor read a correct Q8_1 tensor.
#
# Exits 77 ("SKIP: ...") when numpy/gguf are missing or the werk binary does not run.
import os
import struct
import subprocess
import sys
import time

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as QT
    from gguf.constants import GGML_QUANT_SIZES
    from gguf.quants import dequantize, quantize
except ImportError as e:
    print(f"SKIP: python module missing: {e}")
    sys.exit(77)

SEED = 1234
# fp16 scale fields per block type: byte offsets inside one block (blocks.h tables)
HALF_FIELDS = {
    QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
    QT.Q2_K: [80, 82], QT.Q3_K: [108], QT.Q4_K: [0, 2], QT.Q5_K: [0, 2], QT.Q6_K: [208],
}
BLOCK_TYPES = list(HALF_FIELDS) + [QT.Q8_K]
ROWS = 16
ROW_ELEMS = 2048  # a multiple of 32 and 256

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)


def tmp_path(name):
    root = os.environ.get("WERK_TEST_TMP") or "/tmp"
    os.makedirs(root, exist_ok=True)
    return os.path.join(root, f"quant_oracle_{os.getpid()}_{name}")


def random_finite_halfs(rng, n):
    """n random fp16 bit patterns, all finite (subnormals and +-65504 included)."""
    h = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    bad = (h & 0x7C00) == 0x7C00
    h[bad] &= np.uint16(0xBFFF)  # clear the top exponent bit: finite now
    return h


def random_blocks(rng, qt, n_blocks):
    """Random bytes for n_blocks blocks of qt with finite scale fields, shape (n_blocks, type_size)."""
    _, ts = GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint16).astype(np.uint8)
    if qt == QT.Q8_K:
        d = rng.integers(0, 1 << 32, size=n_blocks, dtype=np.uint64).astype(np.uint32)
        bad = (d & 0x7F800000) == 0x7F800000
        d[bad] &= np.uint32(0xBFFFFFFF)
        # keep |d| <= 2^100 so d*q stays finite and comparisons stay meaningful
        d = np.where((d & 0x7F800000) > 0x71800000, d & np.uint32(0x807FFFFF) | np.uint32(0x71000000), d)
        raw[:, 0:4] = d.astype(np.uint32).view(np.uint8).reshape(n_blocks, 4)
        return raw
    for off in HALF_FIELDS[qt]:
        raw[:, off:off + 2] = random_finite_halfs(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw


def oracle_dequant(raw, qt):
    """gguf-py's dequantizer; numpy d*q for Q8_K (gguf-py has none)."""
    if qt == QT.Q8_K:
        blocks = raw.reshape(-1, GGML_QUANT_SIZES[qt][1])
        d = blocks[:, 0:4].copy().view(np.float32)
        q = blocks[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    return np.asarray(dequantize(raw, qt), dtype=np.float32).reshape(-1)


def same_bits(got, ref, label, show=5):
    got = np.ascontiguousarray(got, dtype=np.float32).reshape(-1).view(np.uint32)
    ref = np.ascontiguousarray(ref, dtype=np.float32).reshape(-1).view(np.uint32)
    if got.shape != ref.shape:
        check(False, f"{label}: {got.size} values, expected {ref.size}")
        return False
    bad = np.nonzero(got != ref)[0]
    for i in bad[:show]:
        g, r = got[i:i + 1].view(np.float32)[0], ref[i:i + 1].view(np.float32)[0]
        print(f"  {label}[{i}]: got {g!r} (0x{got[i]:08x}) ref {r!r} (0x{ref[i]:08x})", file=sys.stderr)
    check(bad.size == 0, f"{label}: {bad.size} of {got.size} values differ in their bits")
    return bad.size == 0


def same_bytes(got, ref, label):
    got = np.ascontiguousarray(got).reshape(-1).view(np.uint8)
    ref = np.ascontiguousarray(ref).reshape(-1).view(np.uint8)
    if got.shape != ref.shape:
        check(False, f"{label}: {got.size} bytes, expected {ref.size}")
        return False
    bad = np.nonzero(got != ref)[0]
    for i in bad[:5]:
        print(f"  {label} byte {i}: got 0x{got[i]:02x} ref 0x{ref[i]:02x}", file=sys.stderr)
    check(bad.size == 0, f"{label}: {bad.size} of {got.size} bytes differ")
    return bad.size == 0


# ---- werk convert driver ----------------------------------------------------------------


def werk_bin():
    b = os.environ.get("WERK_BIN", "")
    if not b or not os.access(b, os.X_OK):
        print(f"SKIP: werk binary not found (WERK_BIN='{b}')")
        sys.exit(77)
    try:
        r = subprocess.run([b, "convert", "--help"], capture_output=True, timeout=60)
    except OSError as e:
        print(f"SKIP: werk does not run: {e}")
        sys.exit(77)
    if r.returncode != 0:
        print(f"SKIP: 'werk convert --help' failed ({r.returncode}): {r.stderr.decode(errors='replace')[:200]}")
        sys.exit(77)
    return b


def run_convert(werk, src, dst, type_name):
    t0 = time.time()
    r = subprocess.run([werk, "convert", src, dst, "--type", type_name], capture_output=True, timeout=600)
    if r.returncode != 0:
        check(False, f"werk convert {os.path.basename(src)} --type {type_name} exited {r.returncode}: "
                     f"{r.stderr.decode(errors='replace').strip()[:500]}")
        return None
    print(f"  werk convert {os.path.basename(src)} --type {type_name}: {time.time() - t0:.1f}s")
    return gguf.GGUFReader(dst)


def write_gguf(path, tensors):
    """tensors: list of (name, array, raw_dtype or None)."""
    w = gguf.GGUFWriter(path, arch="llama")
    w.add_name("werk quant oracle")
    for name, arr, raw_dtype in tensors:
        if raw_dtype is None:
            w.add_tensor(name, arr)
        else:
            w.add_tensor(name, arr, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tensor_map(reader):
    return {t.name: t for t in reader.tensors}


# ---- 1. dequantize ---------------------------------------------------------------------


def dequant_cases(rng):
    """[(name, qtype, raw bytes shaped (rows, row_bytes), reference float32)]"""
    cases = []
    for qt in BLOCK_TYPES:
        bs, ts = GGML_QUANT_SIZES[qt]
        raw = random_blocks(rng, qt, ROWS * ROW_ELEMS // bs).reshape(ROWS, ROW_ELEMS // bs * ts)
        cases.append((f"deq.{qt.name}", qt, raw, oracle_dequant(raw, qt)))
    all16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    cases.append(("deq.F16", QT.F16, all16.view(np.uint8).reshape(256, 512),
                  all16.view(np.float16).astype(np.float32)))
    cases.append(("deq.BF16", QT.BF16, all16.view(np.uint8).reshape(256, 512), oracle_dequant_bf16(all16)))
    f32 = np.array([0x7FC00000, 0x7F800001, 0xFFC01234, 0x7F800000, 0xFF800000, 0x00000001, 0x80000000,
                    0x3F800000, 0x7F7FFFFF, 0x00800000, 0x807FFFFF, 0x12345678], dtype=np.uint32)
    f32 = np.resize(f32, 512)
    cases.append(("deq.F32", QT.F32, f32.view(np.uint8).reshape(16, 128), f32.view(np.float32)))
    return cases


def oracle_dequant_bf16(bits16):
    return np.asarray(dequantize(bits16.view(np.uint8), QT.BF16), dtype=np.float32).reshape(-1)


def test_dequantize(werk, rng):
    cases = dequant_cases(rng)
    src, dst = tmp_path("deq_in.gguf"), tmp_path("deq_out.gguf")
    write_gguf(src, [(name, raw, qt) for name, qt, raw, _ in cases])
    out = run_convert(werk, src, dst, "f32")
    if out is None:
        return
    tm = tensor_map(out)
    for name, qt, raw, ref in cases:
        t = tm.get(name)
        if t is None:
            check(False, f"{name}: missing in werk's output")
            continue
        check(t.tensor_type == QT.F32, f"{name}: output type {t.tensor_type.name}, expected F32")
        if same_bits(np.asarray(t.data), ref, f"dequantize {qt.name}"):
            print(f"  ok dequantize {qt.name}: {ref.size} values bit-identical")
    for p in (src, dst):
        os.unlink(p)


# ---- 2. quantize ---------------------------------------------------------------------


def quant_rows(rng):
    """float32 rows (ROWS x ROW_ELEMS each tensor) with edge cases, all finite."""
    t = {}
    t["q.normal"] = rng.standard_normal((ROWS, ROW_ELEMS)).astype(np.float32)
    scales = np.float32(10.0) ** rng.uniform(-38, 38, size=(ROWS * ROW_ELEMS // 32, 1)).astype(np.float32)
    t["q.scaled"] = (rng.standard_normal((ROWS * ROW_ELEMS // 32, 32)).astype(np.float32) * scales).reshape(
        ROWS, ROW_ELEMS)
    e = np.zeros((ROWS, ROW_ELEMS), dtype=np.float32).reshape(-1, 32)
    # block 0: zeros. 1: amax 127 -> d 1, exact .5 ties. 2: huge. 3: tiny normals.
    # 4: float32 subnormals whose d still has a finite inverse. 5: one nonzero value.
    # 6: -0.0 and sign mix. 7: amax 127*65504 (d = fp16 max). 8: d rounding to fp16 inf.
    e[1] = np.array([127, -127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 63.5, -63.5, 126.5, -126.5] + [3.25] * 20)
    e[2] = rng.uniform(-3.4e38, 3.4e38, 32).astype(np.float32)
    e[3] = rng.uniform(-1e-36, 1e-36, 32).astype(np.float32)
    e[4] = (rng.uniform(-1, 1, 32) * 1e-38).astype(np.float32)
    e[5, 7] = np.float32(-3.0e-3)
    e[6] = np.array([-0.0, 0.0, -1.0, 1.0] * 8, dtype=np.float32)
    e[7] = rng.uniform(-1, 1, 32).astype(np.float32) * np.float32(127 * 65504)
    e[7, 0] = np.float32(127 * 65504)
    e[8] = rng.uniform(-1, 1, 32).astype(np.float32) * np.float32(127 * 70000)
    e[8, 3] = np.float32(-127 * 70000)
    # random blocks whose products land on exact .5 ties after scaling by id
    for b in range(9, e.shape[0]):
        k = rng.integers(-254, 255, 32).astype(np.float32) * np.float32(0.5)
        k[rng.integers(0, 32)] = np.float32(127.0) * np.sign(rng.standard_normal())
        e[b] = k * np.float32(2.0) ** rng.integers(-20, 20)
    t["q.edge"] = e.reshape(ROWS, ROW_ELEMS)
    return t


def half_rows(rng):
    """float32 rows for f16/bf16 conversion: ties, subnormals, overflow, inf, NaN."""
    vals = []
    # every float32 exactly halfway between two adjacent fp16 / bf16 values, sampled
    h = np.arange(0, 0x7C00, 7, dtype=np.uint32).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float64)
    hi = (h + 1).astype(np.uint16).view(np.float16).astype(np.float64)
    vals.append(((lo + hi) / 2).astype(np.float32))  # exact in float32
    b = np.arange(0, 0x7F80, 5, dtype=np.uint32)
    lo = (b << 16).view(np.float32).astype(np.float64)
    hi = ((b + 1) << 16).view(np.float32).astype(np.float64)
    vals.append(((lo + hi) / 2).astype(np.float32))
    vals.append(np.array([65504, 65519.996, 65520, 65536, 1e5, 3.4e38, 5.96e-8, 2.98e-8, 2.9802322e-08,
                          2.9802326e-08, 6.1e-5, 6.097555e-05, 1e-45, 0.0, -0.0], dtype=np.float32))
    vals.append(rng.integers(0, 1 << 32, 60000, dtype=np.uint64).astype(np.uint32).view(np.float32))
    specials = np.array([0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF, 0x7FC01234,
                         0x7F802000, 0xFF801FFF, 0x7FFFFFFF, 0x7F7FFFFF, 0xFF7FFFFF], dtype=np.uint32)
    vals.append(specials.view(np.float32))
    x = np.concatenate([np.concatenate([v, -v]) for v in vals])
    n = (x.size + ROW_ELEMS - 1) // ROW_ELEMS * ROW_ELEMS
    x = np.resize(x, n)
    return x.reshape(-1, ROW_ELEMS)


def test_quantize(werk, rng):
    rows = quant_rows(rng)
    src = tmp_path("q_in.gguf")
    write_gguf(src, [(k, v, None) for k, v in rows.items()])
    dst = tmp_path("q_out.gguf")
    out = run_convert(werk, src, dst, "q8_0")
    if out is not None:
        tm = tensor_map(out)
        for name, x in rows.items():
            t = tm.get(name)
            if t is None:
                check(False, f"{name}: missing in werk's q8_0 output")
                continue
            check(t.tensor_type == QT.Q8_0, f"{name}: output type {t.tensor_type.name}, expected Q8_0")
            with np.errstate(all="ignore"):
                ref = quantize(x, QT.Q8_0)
            if same_bytes(np.asarray(t.data), ref, f"quantize Q8_0 {name}"):
                print(f"  ok quantize Q8_0 {name}: {x.size} values, bytes identical")
        os.unlink(dst)
    os.unlink(src)

    x = half_rows(rng)
    src = tmp_path("h_in.gguf")
    write_gguf(src, [("h.edge", x, None)])
    for type_name, qt in (("f16", QT.F16), ("bf16", QT.BF16)):
        dst = tmp_path(f"h_out_{type_name}.gguf")
        out = run_convert(werk, src, dst, type_name)
        if out is None:
            continue
        t = tensor_map(out).get("h.edge")
        if t is None:
            check(False, f"h.edge: missing in werk's {type_name} output")
            continue
        check(t.tensor_type == qt, f"h.edge: output type {t.tensor_type.name}, expected {qt.name}")
        with np.errstate(all="ignore"):
            ref = quantize(x, qt)
        if same_bytes(np.asarray(t.data), ref, f"convert to {qt.name}"):
            print(f"  ok convert to {qt.name}: {x.size} values (ties, subnormals, inf, NaN) bytes identical")
        os.unlink(dst)
    os.unlink(src)


# ---- 3. real models ------------------------------------------------------------------

REAL_MODELS = ["gemma-3-270m-q4_k_m.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"]
TENSORS_PER_TYPE = 3
MAX_ROWS = 512  # rows sampled from a large tensor


GGUF_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_tensors_fast(path):
    """Tensor list of a known-good GGUF v2/v3 file: [(name, qtype, rows, row_bytes, bytes)].

    A minimal reader for the real model files only (gguf.GGUFReader needs ~20 s to parse
    Gemma's 262144-entry vocabulary; werk's output is still read with GGUFReader)."""
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    magic, _version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", mm, 0)
    assert magic == b"GGUF", path
    off, alignment = 24, 32

    def read_str(o):
        n = struct.unpack_from("<Q", mm, o)[0]
        return bytes(mm[o + 8:o + 8 + n]).decode("utf-8", errors="replace"), o + 8 + n

    def skip_value(t, o):
        if t in GGUF_SCALAR_SIZES:
            return o + GGUF_SCALAR_SIZES[t]
        if t == 8:
            return o + 8 + struct.unpack_from("<Q", mm, o)[0]
        assert t == 9, f"{path}: value type {t}"
        et, n = struct.unpack_from("<IQ", mm, o)
        o += 12
        if et in GGUF_SCALAR_SIZES:
            return o + n * GGUF_SCALAR_SIZES[et]
        for _ in range(n):
            o = skip_value(et, o)
        return o

    for _ in range(n_kv):
        key, off = read_str(off)
        t = struct.unpack_from("<I", mm, off)[0]
        if key == "general.alignment":
            alignment = struct.unpack_from("<I", mm, off + 4)[0]
        off = skip_value(t, off + 4)
    infos = []
    for _ in range(n_tensors):
        name, off = read_str(off)
        n_dims = struct.unpack_from("<I", mm, off)[0]
        ne = struct.unpack_from(f"<{n_dims}Q", mm, off + 4)
        qtype, t_off = struct.unpack_from("<IQ", mm, off + 4 + 8 * n_dims)
        off += 4 + 8 * n_dims + 12
        infos.append((name, QT(qtype), ne, t_off))
    data_start = (off + alignment - 1) // alignment * alignment
    out = []
    for name, qt, ne, t_off in infos:
        bs, ts = GGML_QUANT_SIZES[qt]
        row_bytes = ne[0] // bs * ts
        rows = int(np.prod(ne[1:], dtype=np.int64)) if len(ne) > 1 else 1
        start = data_start + t_off
        out.append((name, qt, rows, row_bytes, mm[start:start + rows * row_bytes].reshape(rows, row_bytes)))
    return out


def test_real_models(werk, rng):
    cache = os.environ.get("WERK_CACHE") or os.path.expanduser("~/.cache/werk")
    found = False
    for fname in REAL_MODELS:
        path = os.path.join(cache, "models", fname)
        if not os.path.exists(path):
            print(f"  (real model {fname} not cached; skipped)")
            continue
        found = True
        src = gguf_tensors_fast(path)
        dst_path = tmp_path("real_f32.gguf")
        out = run_convert(werk, path, dst_path, "f32")
        if out is None:
            continue
        tm = tensor_map(out)
        by_type = {}
        for t in src:
            by_type.setdefault(t[1], []).append(t)
        for qt, ts in sorted(by_type.items(), key=lambda kv: kv[0].value):
            if qt not in BLOCK_TYPES and qt not in (QT.F32, QT.F16, QT.BF16):
                check(False, f"{fname}: tensor type {qt.name} not covered by this test")
                continue
            picks = [ts[i] for i in sorted(rng.choice(len(ts), min(TENSORS_PER_TYPE, len(ts)), replace=False))]
            embd = [t for t in ts if t[0] == "token_embd.weight"]
            if embd and all(t[0] != "token_embd.weight" for t in picks):
                picks += embd
            n_vals = 0
            for name, _, n_rows, _, data in picks:
                o = tm.get(name)
                if o is None:
                    check(False, f"{fname}: tensor {name} missing in werk's output")
                    continue
                got = np.asarray(o.data).reshape(n_rows, -1)
                rows = np.arange(n_rows)
                if n_rows > MAX_ROWS:
                    rows = np.sort(rng.choice(n_rows, MAX_ROWS, replace=False))
                sample = np.ascontiguousarray(data[rows])
                if qt == QT.F32:
                    ref = sample.view(np.float32)
                elif qt == QT.F16:
                    ref = sample.view(np.float16).astype(np.float32)
                elif qt == QT.BF16:
                    ref = oracle_dequant_bf16(sample.view(np.uint16))
                else:
                    ref = oracle_dequant(sample, qt)
                same_bits(got[rows], ref, f"{fname} {name} ({qt.name})")
                n_vals += ref.size
            print(f"  ok {fname}: {qt.name}: {len(picks)} tensors, {n_vals} values checked")
        del out, tm
        os.unlink(dst_path)
    if not found:
        print("  (no real models cached: part 3 skipped)")


def main():
    werk = werk_bin()
    rng = np.random.default_rng(SEED)
    t0 = time.time()
    test_dequantize(werk, rng)
    test_quantize(werk, rng)
    test_real_models(werk, rng)
    print(f"{len(failures)} failures ({time.time() - t0:.1f}s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# ctest-label: slow  (real models; left out of the sanitizer pass)
"""tests/convert/test_gguf_oracle.py - `werk convert` on GGUF files against the PyPI gguf package

The oracle is llama.cpp's own Python reader/writer/quantizers (gguf 0.19):
  (a) gguf.GGUFWriter writes a file with every metadata type (all scalars, bool, unicode
      string, arrays of ints/floats/strings/bools, nested arrays) and tensors of several
      types (F32, F16, Q8_0, a pre-quantized Q4_K via raw_dtype, I32); a second file made
      by hand adds what the writer refuses (an empty array, strings with NUL bytes, a v2
      header). `werk convert a b` must give back identical metadata (key order, types, raw
      value bytes) and identical tensor bytes; for the writer's file, the identical file.
  (b) the same round trip for third-party files in $WERK_FIXTURES (gguf/ and vocab/).
  (c) `--type f16 | bf16 | f32 | q8_0` of an f32 file: every tensor equals
      gguf.quants.quantize of the source in the type werk chose (the requested one for
      every 2-D tensor whose rows fit the block size), bit for bit; general.file_type set.
  (d) real models if present in $WERK_CACHE/models: `--type f32` equals
      gguf.quants.dequantize of every source tensor, bit for bit.
Exit 77 with "SKIP: ..." when numpy/gguf or the werk program is missing.
"""
import os
import struct
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as QT
    from gguf import GGUFValueType as VT
except ImportError as e:
    print(f"SKIP: python module missing: {e}")
    sys.exit(77)

WERK = os.environ.get("WERK_BIN", "")
if not WERK or not os.access(WERK, os.X_OK):
    print(f"SKIP: werk program not built ({WERK or 'WERK_BIN unset'})")
    sys.exit(77)
TMP = os.environ.get("WERK_TEST_TMP") or tempfile.mkdtemp()
FIXTURES = os.environ.get("WERK_FIXTURES", "")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))

failures = []
checks = 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print(f"FAIL: {msg}", file=sys.stderr)
    return cond


def tmp(name):
    return os.path.join(TMP, name)


def werk_convert(src, dst, *args):
    r = subprocess.run([WERK, "convert", src, dst, *args], capture_output=True, text=True)
    if not check(r.returncode == 0, f"werk convert {src} {dst} {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}"):
        return False
    return True


def raw(field):
    return [bytes(p.tobytes()) for p in field.parts]


def compare_metadata(ra, rb, label, ignore=()):
    ka = [k for k in ra.fields if not k.startswith("GGUF.") and k not in ignore]
    kb = [k for k in rb.fields if not k.startswith("GGUF.") and k not in ignore]
    if not check(ka == kb, f"{label}: key order differs:\n  {ka}\n  {kb}"):
        return
    for k in ka:
        fa, fb = ra.fields[k], rb.fields[k]
        check(list(fa.types) == list(fb.types), f"{label}: key {k}: types {fa.types} vs {fb.types}")
        check(raw(fa) == raw(fb), f"{label}: key {k}: value bytes differ")


def tensor_bytes(t):
    return np.ascontiguousarray(t.data).tobytes()


def compare_tensors(ra, rb, label):
    na = [t.name for t in ra.tensors]
    nb = [t.name for t in rb.tensors]
    if not check(na == nb, f"{label}: tensor names/order differ"):
        return
    for ta, tb in zip(ra.tensors, rb.tensors):
        check(ta.tensor_type == tb.tensor_type, f"{label}: {ta.name}: type {ta.tensor_type} vs {tb.tensor_type}")
        check(list(ta.shape) == list(tb.shape), f"{label}: {ta.name}: shape {list(ta.shape)} vs {list(tb.shape)}")
        check(tensor_bytes(ta) == tensor_bytes(tb), f"{label}: {ta.name}: data differs")
        check(tb.data_offset % rb.alignment == 0, f"{label}: {tb.name}: data offset {tb.data_offset} misaligned")


def roundtrip(src, label, same_file=False):
    dst = tmp(os.path.basename(src) + ".werk.gguf")
    if not werk_convert(src, dst):
        return
    ra, rb = gguf.GGUFReader(src), gguf.GGUFReader(dst)
    check(int(rb.fields["GGUF.version"].parts[0][0]) == 3, f"{label}: output is not GGUF v3")
    compare_metadata(ra, rb, label)
    compare_tensors(ra, rb, label)
    if same_file:
        with open(src, "rb") as fa, open(dst, "rb") as fb:
            check(fa.read() == fb.read(), f"{label}: output file differs from the input")
    os.remove(dst)


# ---- (a) every metadata type, several tensor types ---------------------------------------

def make_kitchen_sink(path):
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("kitchen sink")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -2147483648)
    w.add_float32("t.f32", 3.1415927)
    w.add_uint64("t.u64", 2**64 - 1)
    w.add_int64("t.i64", -(2**63))
    w.add_float64("t.f64", 1e-300)
    w.add_bool("t.true", True)
    w.add_bool("t.false", False)
    w.add_string("t.str", "Grüße, 世界 \u2581tok \U0001F600")
    w.add_string("t.empty_str", "")
    w.add_array("a.ints", [1, -2, 3, 2**31 - 1])
    w.add_array("a.floats", [0.5, -1.25, 1e30])
    w.add_array("a.strings", ["<s>", "</s>", "\u2581the", "ä", "x" * 300])
    w.add_array("a.bools", [True, False, True])
    w.add_array("a.nested", [[1, 2, 3], [4], [5, 6]])
    w.add_array("a.nested_str", [["a", "b"], ["c"]])
    w.add_key_value("a.u8s", [0, 1, 255], VT.ARRAY, sub_type=VT.UINT8)
    w.add_key_value("a.i64s", [-(2**63), 2**63 - 1], VT.ARRAY, sub_type=VT.INT64)
    w.add_key_value("a.f64s", [0.1, -0.0], VT.ARRAY, sub_type=VT.FLOAT64)
    w.add_tensor("token_embd.weight", rng.standard_normal((16, 64), dtype=np.float32))
    w.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(64, dtype=np.float32))
    w.add_tensor("blk.0.f16", rng.standard_normal((4, 32)).astype(np.float16))
    q8 = gguf.quants.quantize(rng.standard_normal((8, 64), dtype=np.float32), QT.Q8_0)
    w.add_tensor("blk.0.attn_q.weight", q8, raw_dtype=QT.Q8_0)
    # A valid Q4_K block row: f16 scales d, dmin = 1.0, then random scales and nibbles.
    q4k = rng.integers(0, 256, size=(2, 144), dtype=np.uint8)
    q4k[:, 0:4] = np.frombuffer(np.array([1.0, 1.0], dtype=np.float16).tobytes(), dtype=np.uint8)
    w.add_tensor("blk.0.ffn_down.weight", q4k, raw_dtype=QT.Q4_K)
    w.add_tensor("ids", np.arange(-3, 7, dtype=np.int32))
    w.add_tensor("t3d", rng.standard_normal((2, 3, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gstr(b):
    return struct.pack("<Q", len(b)) + b


def make_by_hand(path, version):
    """What GGUFWriter refuses to write: empty arrays, NULs in strings; also a v2 header."""
    kvs = [
        (b"general.architecture", struct.pack("<I", VT.STRING) + gstr(b"llama")),
        (b"h.empty_u32", struct.pack("<IIQ", VT.ARRAY, VT.UINT32, 0)),
        (b"h.empty_str", struct.pack("<IIQ", VT.ARRAY, VT.STRING, 0)),
        (b"h.nul_str", struct.pack("<I", VT.STRING) + gstr(b"a\0b\0")),
        (b"h.nul_strs", struct.pack("<IIQ", VT.ARRAY, VT.STRING, 2) + gstr(b"\0") + gstr(b"x\0y")),
        (b"h.nested_empty", struct.pack("<IIQ", VT.ARRAY, VT.ARRAY, 2) + struct.pack("<IQ", VT.INT16, 0)
         + struct.pack("<IQ", VT.INT16, 2) + struct.pack("<hh", -1, 7)),
        (b"h.nested3", struct.pack("<IIQ", VT.ARRAY, VT.ARRAY, 1) + struct.pack("<IQ", VT.ARRAY, 1)
         + struct.pack("<IQ", VT.FLOAT32, 2) + struct.pack("<ff", 1.0, -2.0)),
    ]
    data = np.arange(32, dtype=np.float32).tobytes()
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, 1, len(kvs)))
    for k, v in kvs:
        out += gstr(k) + v
    out += gstr(b"w") + struct.pack("<IQQIQ", 2, 8, 4, QT.F32, 0)
    out += b"\0" * (-len(out) % 32)
    out += data
    with open(path, "wb") as f:
        f.write(out)


def test_a():
    src = tmp("oracle_kitchen.gguf")
    make_kitchen_sink(src)
    roundtrip(src, "(a) gguf-py file", same_file=True)
    for version in (3, 2):
        src = tmp(f"oracle_by_hand_v{version}.gguf")
        make_by_hand(src, version)
        roundtrip(src, f"(a) hand-made v{version} file")


# ---- (b) third-party files ------------------------------------------------------------------

def test_b():
    paths = []
    if FIXTURES:
        for rel in ["gguf/llama-2-tiny-random.gguf"]:
            p = os.path.join(FIXTURES, rel)
            if os.path.exists(p):
                paths.append(p)
        vdir = os.path.join(FIXTURES, "vocab")
        if os.path.isdir(vdir):
            paths += [os.path.join(vdir, f) for f in sorted(os.listdir(vdir)) if f.endswith(".gguf")]
    if not paths:
        print("note: (b) skipped, no fixtures under WERK_FIXTURES")
    for p in paths:
        roundtrip(p, f"(b) {os.path.basename(p)}")


# ---- (c) type conversion of an f32 file --------------------------------------------------------

FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7, "bf16": 32}
QTYPE = {"f32": QT.F32, "f16": QT.F16, "q8_0": QT.Q8_0, "bf16": QT.BF16}


def make_f32_model(path):
    rng = np.random.default_rng(7)
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint32("llama.block_count", 1)
    # Rounding ties, subnormals, f16 overflow and infinities; 16 long, so never q8_0 (whose
    # numpy reference casts NaN to int8 for an infinite block, which is not portable).
    specials = np.array([0.0, -0.0, 1e-8, -3e-7, 6.1e-5, 65504.0, 65520.0, 1e6, -1e38, np.inf, -np.inf,
                         1.0 + 2**-11, 1.0 + 3 * 2**-11, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 3.4e38], dtype=np.float32)
    w.add_tensor("specials.weight", specials)
    big = rng.standard_normal((64, 256), dtype=np.float32) * 0.05
    big[0, :8] = [0.0, -0.0, 1e-8, -3e-7, 6.1e-5, 1.0 + 2**-11, 1.0 + 3 * 2**-11, 1e6]
    w.add_tensor("blk.0.attn_q.weight", big)
    w.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(256, dtype=np.float32) + 1.0)
    w.add_tensor("odd.weight", rng.standard_normal((8, 48), dtype=np.float32))  # rows not whole q8_0 blocks
    w.add_tensor("t3d.weight", rng.standard_normal((2, 4, 64), dtype=np.float32) * 100)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_c():
    src = tmp("oracle_f32.gguf")
    make_f32_model(src)
    ra = gguf.GGUFReader(src)
    for tname, want in QTYPE.items():
        dst = tmp(f"oracle_f32_to_{tname}.gguf")
        if not werk_convert(src, dst, "--type", tname):
            continue
        rb = gguf.GGUFReader(dst)
        label = f"(c) --type {tname}"
        ft = rb.fields.get("general.file_type")
        check(ft is not None and ft.contents() == FILE_TYPE[tname],
              f"{label}: general.file_type {ft.contents() if ft else None}, expected {FILE_TYPE[tname]}")
        if want == QT.Q8_0:
            qv = rb.fields.get("general.quantization_version")
            check(qv is not None and qv.contents() == 2, f"{label}: general.quantization_version missing")
        compare_metadata(ra, rb, label, ignore=("general.file_type", "general.quantization_version"))
        for ta, tb in zip(ra.tensors, rb.tensors):
            check(ta.name == tb.name, f"{label}: tensor order")
            block = gguf.GGML_QUANT_SIZES[want][0]
            fits = len(ta.shape) >= 2 and int(ta.shape[0]) % block == 0  # shape[0] is ne[0], the row length
            if fits:
                check(tb.tensor_type == want, f"{label}: {ta.name} stored as {tb.tensor_type.name}")
            else:
                check(tb.tensor_type in (want, QT.F32), f"{label}: {ta.name} stored as {tb.tensor_type.name}")
            src_arr = np.asarray(ta.data, dtype=np.float32).reshape([int(n) for n in reversed(ta.shape)])
            with np.errstate(over="ignore"):  # f16 overflow to inf is expected
                expect = gguf.quants.quantize(src_arr, tb.tensor_type)
            got = tensor_bytes(tb)
            if not check(got == np.ascontiguousarray(expect).tobytes(),
                         f"{label}: {ta.name} ({tb.tensor_type.name}) differs from gguf.quants.quantize"):
                e = np.frombuffer(np.ascontiguousarray(expect).tobytes(), dtype=np.uint8)
                g = np.frombuffer(got, dtype=np.uint8)
                if len(e) == len(g):
                    bad = np.nonzero(e != g)[0]
                    print(f"  {len(bad)} bytes differ, first at {bad[:8].tolist()}", file=sys.stderr)
        os.remove(dst)


# ---- (d) real models to f32 ------------------------------------------------------------------

def dequant_equal(ta, tb, label):
    """Compares werk's f32 tensor tb with gguf's dequantization of ta, in row chunks."""
    src = np.asarray(ta.data)
    dst = np.asarray(tb.data).reshape(-1)
    n_rows = src.shape[0] if src.ndim > 1 else 1
    src2 = src.reshape(n_rows, -1)
    row_len = dst.size // n_rows
    ok = True
    for r0 in range(0, n_rows, 4096):
        part = src2[r0:r0 + 4096]
        want = gguf.quants.dequantize(part, ta.tensor_type).astype(np.float32, copy=False).reshape(-1)
        got = dst[r0 * row_len:(r0 + part.shape[0]) * row_len]
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            bad = np.nonzero(want.view(np.uint32) != got.view(np.uint32))[0]
            print(f"  {label}: {ta.name}: {len(bad)} values differ, first {bad[:4].tolist()}: "
                  f"got {got[bad[:4]].tolist()} want {want[bad[:4]].tolist()}", file=sys.stderr)
            ok = False
            break
    return ok


def test_d():
    models = ["gemma-3-270m-q4_k_m.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"]
    found = False
    for m in models:
        src = os.path.join(CACHE, "models", m)
        if not os.path.exists(src):
            print(f"note: (d) {m} not in {CACHE}/models, skipped")
            continue
        found = True
        dst = tmp(m + ".f32.gguf")
        if not werk_convert(src, dst, "--type", "f32"):
            continue
        ra, rb = gguf.GGUFReader(src), gguf.GGUFReader(dst)
        label = f"(d) {m}"
        ft = rb.fields.get("general.file_type")
        check(ft is not None and ft.contents() == 0, f"{label}: general.file_type is not 0")
        compare_metadata(ra, rb, label, ignore=("general.file_type", "general.quantization_version"))
        check(len(ra.tensors) == len(rb.tensors), f"{label}: tensor count")
        for ta, tb in zip(ra.tensors, rb.tensors):
            check(ta.name == tb.name and tb.tensor_type == QT.F32, f"{label}: {tb.name} is {tb.tensor_type.name}")
            check(list(ta.shape) == list(tb.shape), f"{label}: {ta.name}: shape")
            check(dequant_equal(ta, tb, label), f"{label}: {ta.name} ({ta.tensor_type.name}) differs from "
                  "gguf.quants.dequantize")
        del ra, rb
        os.remove(dst)
    return found


def main():
    test_a()
    test_b()
    test_c()
    test_d()
    print(f"{checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

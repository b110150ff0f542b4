#!/usr/bin/env python3
# ctest-label: slow  (real models; left out of the sanitizer pass)
"""tests/quant/test_quantize_cli.py - `werk quantize` on real models, read by the gguf package

On the real Gemma 3 270M (made f32 with `werk convert --type f32` from the fetched Q4_K_M
GGUF that llama.cpp wrote) and SmolLM2-135M (Q4_1, so quantizing it requantizes):
  - --type Q4_K_M: the output is read by gguf.GGUFReader; every tensor's type equals the type
    llama.cpp chose in its own Q4_K_M Gemma file, tensor for tensor, and the type an
    independent Python transcription of llama.cpp's Q4_K_M rules gives (both models);
    metadata is kept, general.file_type = 15 and general.quantization_version = 2 are set;
    the reported relative RMSE equals one recomputed here with gguf's dequantizers;
  - --q8_0: every weight Q8_0, bit-identical to gguf's numpy Q8_0 quantizer; the same
    bytes with 1 and 2 threads;
  - --type Q4_1 on the Q4_1 SmolLM2: nothing is requantized, tensor data is copied;
  - requantizing warns; --dry-run writes nothing; options show in the plan; bad arguments
    exit 2 with one error line and leave no file; an imatrix is read and recorded.
Optional: if llama_cpp (llama-cpp-python) is importable, the Q4_K_M file is loaded in
llama.cpp and generates a few tokens (skipped with a message otherwise).
"""
import json, os, struct, subprocess, sys

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize, quantize
except ImportError as e:
    print(f"SKIP: python module missing: {e}"); sys.exit(77)

WERK = os.environ.get("WERK_BIN", "")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
TMP = os.path.join(os.environ.get("WERK_TEST_TMP", "/tmp"), "quantize_cli")
GEMMA = os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf")
SMOL = os.path.join(CACHE, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

if not WERK or not os.access(WERK, os.X_OK):
    print("SKIP: werk binary missing"); sys.exit(77)
if not os.path.exists(GEMMA) and not os.path.exists(SMOL):
    print("SKIP: no real model in $WERK_CACHE/models (run scripts/fetch-models)"); sys.exit(77)
os.makedirs(TMP, exist_ok=True)
n_checks = n_failed = 0


def check(cond, msg):
    global n_checks, n_failed
    n_checks += 1
    if not cond:
        n_failed += 1
        print("FAIL:", msg, flush=True)
    return cond


def werk(*args, ok=True):
    p = subprocess.run([WERK, *args], capture_output=True, text=True, errors="replace", timeout=1200)
    if ok:
        check(p.returncode == 0, f"werk {' '.join(args)}: exit {p.returncode}: {p.stderr[-2000:]}")
    return p


def fresh(name):
    path = os.path.join(TMP, name)
    if os.path.exists(path):
        os.unlink(path)
    return path


def field(r, key):
    f = r.fields.get(key)
    return None if f is None else f.contents()


def tensors(r):
    return {t.name: t for t in r.tensors}


def tname(t):
    return t.tensor_type.name.lower()


# ---- a small GGUF header reader for the inputs -----------------------------------------------
# gguf.GGUFReader spends ~20 s on the 262144-entry vocabulary of Gemma per file, so the
# inputs (llama.cpp's file, the f32 checkpoint) are read with this; werk's outputs are read
# with gguf.GGUFReader, the independent reader under test.
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
TYPE_NAMES = {t.value: t.name.lower() for t in gguf.GGMLQuantizationType}


class Quick:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            b = f.read(64 << 20)  # header and metadata; enough for these models
        self.b, self.off = b, 0
        assert self._take(4) == b"GGUF", path
        self._u(4)
        n_t, n_kv = self._u(8), self._u(8)
        self.kv = {}
        for _ in range(n_kv):
            key = self._str()
            self.kv[key] = self._value(self._u(4))
        self.tensors = {}
        for _ in range(n_t):
            name = self._str()
            ne = [self._u(8) for _ in range(self._u(4))]
            self.tensors[name] = (TYPE_NAMES[self._u(4)], ne, self._u(8))
        align = self.kv.get("general.alignment", 32)
        self.data_start = (self.off + align - 1) // align * align

    def _take(self, n):
        v = self.b[self.off:self.off + n]
        self.off += n
        return v

    def _u(self, n):
        return int.from_bytes(self._take(n), "little")

    def _str(self):
        return self._take(self._u(8)).decode("utf-8", "replace")

    def _value(self, t):
        if t == 8:
            return self._str()
        if t == 9:  # arrays: (element type, count, first element)
            et, n = self._u(4), self._u(8)
            first = None
            for i in range(n):
                v = self._value(et)
                first = v if i == 0 else first
            return ("array", et, n, first)
        fmt = SCALARS[t]
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self._take(size))[0]

    def types(self):
        return {n: v[0] for n, v in self.tensors.items()}

    def raw(self, name):
        typ, ne, off = self.tensors[name]
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[typ.upper()]]
        n = int(np.prod(ne)) // block * size
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=self.data_start + off, shape=(n,))

    def f32(self, name):
        typ, ne, off = self.tensors[name]
        assert typ == "f32", name
        n = int(np.prod(ne))
        return np.memmap(self.path, dtype="<f4", mode="r", offset=self.data_start + off, shape=(n,))


def rel_rmse(q, x):
    """||dequantize(q) - x|| / ||x|| over the whole tensor, in double; x: f32 values."""
    d = dequantize(q.data, q.tensor_type).astype(np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float32).astype(np.float64).reshape(-1)
    return float(np.sqrt(((d - x) ** 2).sum() / (x ** 2).sum()))


# ---- an independent transcription of llama.cpp's Q4_K_M rules (dense models) ---------------
# llama_tensor_get_type_impl: output / tied token_embd -> Q6_K (Q8_0 if the row does not fit
# Q4_K's 256); attn_v (index among attn_v) and ffn_down (layer) get Q6_K when
# use_more_bits(i, n); everything else Q4_K; then tensor_type_fallback for rows % 256 != 0.
FALLBACK = {"q4_k": "q5_0", "q5_k": "q5_1", "q6_k": "q8_0", "q2_k": "q4_0", "q3_k": "q4_0"}


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_q4_k_m(q):
    arch = q.kv["general.architecture"]
    n_layer = q.kv[f"{arch}.block_count"]
    names = list(q.tensors)
    tied = "output.weight" not in names
    layer = lambda n: int(n.split(".")[1]) if n.startswith("blk.") else -1
    want, i_v = {}, 0
    for name in sorted(names, key=lambda n: (layer(n), n)):
        typ0, ne, _ = q.tensors[name]
        row = ne[0]
        dims = sum(1 for s in ne[1:] if s > 1) + 1
        if dims < 2 or not name.endswith("weight") or "_norm.weight" in name:
            want[name] = typ0
            continue
        typ = "q4_k"
        if name == "output.weight" or (tied and name == "token_embd.weight"):
            typ = "q8_0" if row % 256 else "q6_k"
        elif "attn_v.weight" in name:
            typ = "q6_k" if use_more_bits(i_v, sum("attn_v.weight" in n for n in names)) else "q4_k"
            i_v += 1
        elif "ffn_down" in name:
            typ = "q6_k" if use_more_bits(layer(name), n_layer) else "q4_k"
        if row % 256 and typ in FALLBACK:
            typ = FALLBACK[typ]
        want[name] = typ
    return want


def check_types(label, got_r, want):
    got = {t.name: tname(t) for t in got_r.tensors}
    check(set(got) == set(want), f"{label}: tensor names differ: {sorted(set(got) ^ set(want))[:5]}")
    bad = [(n, got[n], want[n]) for n in want if n in got and got[n] != want[n]]
    check(not bad, f"{label}: {len(bad)} tensors with another type, e.g. {bad[:5]}")


def check_metadata(label, src_q, out_r, ftype):
    check(field(out_r, "general.file_type") == ftype, f"{label}: general.file_type {field(out_r, 'general.file_type')}")
    check(field(out_r, "general.quantization_version") == 2, f"{label}: general.quantization_version")
    lost, changed = [], []
    for k, v in src_q.kv.items():
        if k in ("general.file_type", "general.quantization_version"):
            continue
        f = out_r.fields.get(k)
        if f is None:
            lost.append(k)
        elif isinstance(v, tuple):  # array: count and first element
            if len(f.data) != v[2] or (v[2] and f.contents(0) != v[3]):
                changed.append(k)
        elif isinstance(v, float):
            if not np.float32(f.contents()) == np.float32(v):
                changed.append(k)
        elif f.contents() != v:
            changed.append(k)
    check(not lost, f"{label}: metadata lost: {lost}")
    check(not changed, f"{label}: metadata changed: {changed}")


# ---- bad arguments --------------------------------------------------------------------------
def bad_args():
    src = GEMMA if os.path.exists(GEMMA) else SMOL
    out = fresh("bad.gguf")
    cases = [
        [],
        [src, out],
        [src, out, "--type"],
        [src, out, "--type", "Q7_K_X"],
        [src, out, "--type", "Q4_K_M", "--q8_0"],
        [src, out, "--q4_k", "--q8_0"],
        [src, out, "--type", "Q4_K_M", "--frobnicate"],
        [src, out, "--type", "Q4_K_M", "--tensor-type", "attn_v"],
        [src, out, "--type", "Q4_K_M", "--tensor-type", "attn_v=q9_9"],
        [src, out, "--type", "Q4_K_M", "--tensor-type", "attn_(v=q8_0"],
        [src, out, "--type", "Q4_K_M", "--output-tensor-type", "q8_K"],
        [src, out, "--type", "Q4_K_M", "--threads", "0"],
        [src, out, "--type", "Q4_K_M", "--dry-run=yes"],
        [src, out, extra := "third.gguf", "--type", "Q4_K_M"],
    ]
    for args in cases:
        p = werk("quantize", *args, ok=False)
        lines = [l for l in p.stderr.splitlines() if l.strip() and not l.startswith("werk: warning: ")]
        check(p.returncode == 2, f"quantize {args}: exit {p.returncode}, want 2: {p.stderr[-300:]}")
        check(len(lines) == 1 and lines[0].startswith("werk: error: "), f"quantize {args}: want one error line: {lines}")
        check(not os.path.exists(out), f"quantize {args}: output written")
    p = werk("quantize", "/nonexistent/in.gguf", out, "--type", "Q4_K_M", ok=False)
    check(p.returncode == 1 and "/nonexistent/in.gguf" in p.stderr, f"missing input: {p.returncode} {p.stderr}")
    p = werk("quantize", "--help")
    check("Q4_K_M" in p.stdout and "--tensor-type" in p.stdout, "usage lists presets and options")


# ---- Gemma ------------------------------------------------------------------------------------
def gemma():
    ref = Quick(GEMMA)
    f32 = os.path.join(TMP, "gemma-f32.gguf")
    if not os.path.exists(f32) or os.path.getmtime(f32) < os.path.getmtime(WERK):
        werk("convert", GEMMA, f32, "--type", "f32")
    src = Quick(f32)

    # --dry-run: the plan equals llama.cpp's choices and writes nothing
    out = fresh("gemma-dry.gguf")
    p = werk("quantize", f32, out, "--type", "Q4_K_M", "--dry-run", "--json")
    check(not os.path.exists(out), "--dry-run wrote a file")
    plan = json.loads(p.stdout)
    got = {t["name"]: t["type"].lower() for t in plan["tensors"]}
    llama = ref.types()
    bad = [(n, got.get(n), llama[n]) for n in llama if got.get(n) != llama[n]]
    check(not bad, f"Gemma Q4_K_M plan differs from llama.cpp's file in {len(bad)} tensors: {bad[:5]}")
    check(plan["total"]["fallbacks"] == 90, f"Gemma fallbacks {plan['total']['fallbacks']} (llama.cpp: 90)")
    p = werk("quantize", f32, out, "--type", "Q4_K_M", "--dry-run")
    check("blk.0.attn_v.weight" in p.stdout and "fallback from q6_K" in p.stdout, "dry-run table")

    # options in the plan
    p = werk("quantize", f32, "--q4_k", "--dry-run", "--json", "--tensor-type", r"blk\.1[0-7]\.ffn_down=q8_0",
             "--token-embedding-type", "q6_k", "--tensor-type", "attn_output=q5_k")
    plan = {t["name"]: t for t in json.loads(p.stdout)["tensors"]}
    check(plan["token_embd.weight"]["type"] == "q8_0" and plan["token_embd.weight"]["wanted"] == "q6_K",
          f"--token-embedding-type q6_k falls back on rows of 640: {plan['token_embd.weight']}")
    check(plan["blk.12.ffn_down.weight"]["type"] == "q8_0", "--tensor-type regex")
    check(plan["blk.2.ffn_down.weight"]["type"] == "q4_K", "--q4_k is pure: no more bits on ffn_down")
    check(plan["blk.2.attn_output.weight"]["type"] == "q5_K", "second --tensor-type")
    check(plan["blk.0.attn_v.weight"]["type"] == "q5_0", "--q4_k: attn_v Q4_K -> Q5_0")

    # the real thing
    out = fresh("gemma-q4_k_m.gguf")
    p = werk("quantize", f32, out, "--type", "Q4_K_M", "--json")
    if not check(p.returncode == 0 and os.path.exists(out), "Gemma Q4_K_M written"):
        return
    rep = {t["name"]: t for t in json.loads(p.stdout)["tensors"]}
    r = gguf.GGUFReader(out)
    check_types("Gemma Q4_K_M vs llama.cpp's file", r, llama)
    check_types("Gemma Q4_K_M vs the rules", r, expected_q4_k_m(src))
    check_metadata("Gemma Q4_K_M", src, r, 15)
    rt = tensors(r)
    for name in ["blk.0.attn_v.weight", "blk.3.ffn_down.weight", "blk.0.ffn_down.weight", "blk.5.attn_q.weight",
                 "blk.5.attn_output.weight"]:
        e = rel_rmse(rt[name], src.f32(name))
        check(abs(e - rep[name]["rel_rmse"]) <= 1e-4 * e + 1e-7,
              f"{name}: reported rel_rmse {rep[name]['rel_rmse']:.6g}, gguf says {e:.6g}")
        limit = {"q4_k": 0.12, "q5_0": 0.06, "q6_k": 0.03, "q8_0": 0.01}[tname(rt[name])]
        check(e < limit, f"{name} ({tname(rt[name])}): rel_rmse {e:.4g} >= {limit}")
    if os.path.exists(out):
        llama_cpp_smoke(out)

    # --q8_0: every weight Q8_0, bit-identical to gguf's quantizer; threads do not change bytes
    o1, o2 = fresh("gemma-q8-t1.gguf"), fresh("gemma-q8-t2.gguf")
    werk("quantize", f32, o1, "--q8_0", "--threads", "1", "--no-measure")
    werk("quantize", f32, o2, "--q8_0", "--threads=2", "--no-measure")
    if check(os.path.exists(o1) and os.path.exists(o2), "Q8_0 files written"):
        with open(o1, "rb") as a, open(o2, "rb") as b:
            check(a.read() == b.read(), "--threads 1 and 2 give different bytes")
        r = gguf.GGUFReader(o1)
        check(field(r, "general.file_type") == 7, "Q8_0 file type")
        rt = tensors(r)
        for name in ["token_embd.weight", "blk.7.attn_k.weight", "blk.7.ffn_up.weight"]:
            check(tname(rt[name]) == "q8_0", f"{name}: {tname(rt[name])}")
            x = np.asarray(src.f32(name)).reshape(rt[name].data.shape[0], -1)
            want = quantize(x, gguf.GGMLQuantizationType.Q8_0)
            check(np.array_equal(np.asarray(rt[name].data), want), f"{name}: Q8_0 bytes differ from gguf's")
        check(tname(rt["blk.7.attn_norm.weight"]) == "f32", "1-D tensors stay f32")


def llama_cpp_smoke(path):
    try:
        import llama_cpp
    except ImportError:
        print("SKIP (optional): llama-cpp-python is not installed; not loading the file in llama.cpp")
        return
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, verbose=False)
    out = llm("The capital of France is", max_tokens=8, temperature=0)
    text = out["choices"][0]["text"]
    check(len(text.strip()) > 0, f"llama.cpp generated nothing from {path}")
    print(f"llama.cpp on {os.path.basename(path)}: {text!r}")


# ---- SmolLM2 (a Q4_1 input) -------------------------------------------------------------------
def smollm2():
    src = Quick(SMOL)
    # the file's own mix: nothing is requantized, data is copied
    out = fresh("smol-q4_1.gguf")
    p = werk("quantize", SMOL, out, "--type", "Q4_1")
    check("requantiz" not in p.stderr, f"Q4_1 -> Q4_1 warned about requantizing: {p.stderr[-300:]}")
    if os.path.exists(out):
        r = gguf.GGUFReader(out)
        rt = tensors(r)
        same = all(tname(rt[n]) == src.tensors[n][0] and
                   np.array_equal(np.asarray(rt[n].data).reshape(-1).view(np.uint8), src.raw(n)) for n in src.tensors)
        check(same, "Q4_1 -> Q4_1: tensors not copied unchanged")
        check_metadata("SmolLM2 Q4_1", src, r, 3)

    out = plain = fresh("smol-q4_k_m.gguf")
    p = werk("quantize", SMOL, out, "--type", "Q4_K_M", "--threads", "2")
    check("werk: warning:" in p.stderr and "requantiz" in p.stderr, f"requantizing does not warn: {p.stderr[-500:]}")
    if os.path.exists(out):
        r = gguf.GGUFReader(out)
        check_types("SmolLM2 Q4_K_M vs the rules", r, expected_q4_k_m(src))
        check_metadata("SmolLM2 Q4_K_M", src, r, 15)
        check(tname(tensors(r)["token_embd.weight"]) == "q8_0", "SmolLM2 tied embeddings: q8_0 (576 % 256)")

    # an imatrix (legacy .dat) for two tensors: read, used, recorded in the metadata
    imat = os.path.join(TMP, "smol.imatrix.dat")
    rng = np.random.default_rng(7)
    with open(imat, "wb") as f:
        entries = [("blk.0.ffn_down.weight", 1536), ("blk.0.attn_q.weight", 576)]
        f.write(struct.pack("<i", len(entries)))
        for name, n in entries:
            f.write(struct.pack("<i", len(name)) + name.encode() + struct.pack("<ii", 10, n))
            f.write((rng.random(n, dtype=np.float32) * 10).astype("<f4").tobytes())
        f.write(struct.pack("<ii", 10, 9) + b"smol.txt\x00"[:9])
    out = fresh("smol-imat.gguf")
    p = werk("quantize", SMOL, out, "--type", "Q4_K_M", "--imatrix", imat, "--json", "--no-measure")
    if p.returncode == 0:
        rep = {t["name"]: t for t in json.loads(p.stdout)["tensors"]}
        check(rep["blk.0.ffn_down.weight"]["imatrix"] and rep["blk.0.attn_q.weight"]["imatrix"], "imatrix used")
        check(not rep["blk.1.ffn_down.weight"]["imatrix"], "no entry, no imatrix")
        r = gguf.GGUFReader(out)
        check(field(r, "quantize.imatrix.file") == imat and field(r, "quantize.imatrix.entries_count") == 2,
              "imatrix recorded in the metadata")
        if os.path.exists(plain):  # the weights reach the quantizer: only tensors with an entry change
            rt, pt = tensors(r), tensors(gguf.GGUFReader(plain))
            same = lambda n: np.array_equal(np.asarray(rt[n].data), np.asarray(pt[n].data))
            check(not same("blk.0.ffn_down.weight"), "blk.0.ffn_down: the same bytes with and without the imatrix")
            check(same("blk.1.ffn_down.weight"), "blk.1.ffn_down (no entry) changed with the imatrix")
    # an imatrix of another model: wrong sizes are an error, no file
    with open(imat, "wb") as f:
        f.write(struct.pack("<i", 1) + struct.pack("<i", 19) + b"blk.0.attn_q.weight" + struct.pack("<ii", 1, 4))
        f.write(np.ones(4, dtype="<f4").tobytes())
    out = fresh("smol-imat-bad.gguf")
    p = werk("quantize", SMOL, out, "--type", "Q4_K_M", "--imatrix", imat, ok=False)
    check(p.returncode == 1 and "blk.0.attn_q.weight" in p.stderr and not os.path.exists(out),
          f"mismatched imatrix: exit {p.returncode}: {p.stderr[-300:]}")


bad_args()
if os.path.exists(GEMMA):
    gemma()
else:
    print("SKIP (part): Gemma 3 270M not in $WERK_CACHE/models")
if os.path.exists(SMOL):
    smollm2()
else:
    print("SKIP (part): SmolLM2 not in $WERK_CACHE/models")
print(f"{n_checks} checks, {n_failed} failed")
sys.exit(1 if n_failed else 0)

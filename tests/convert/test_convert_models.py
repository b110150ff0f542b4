#!/usr/bin/env python3
# ctest-label: slow  (real models; left out of the sanitizer pass)
"""tests/convert/test_convert_models.py - `werk convert` between llama2.c, HF and GGUF, checked
with independent readers (gguf.GGUFReader, safetensors.numpy, transformers.AutoConfig).

1. stories260K: llama2.c -> GGUF and HF -> GGUF give bit-identical tensors and the same
   hyper-parameters (keys other than vocab/name); GGUF -> HF -> GGUF is bit-identical for
   f32, f16 and bf16 (compared with a direct --type T conversion).
2. tiny/<family>: HF -> GGUF -> HF (f32) reproduces the original model.safetensors bit for
   bit with the same names, and config.json keeps the fields that matter. Exception,
   checked exactly: gemma3 norm weights come back as f32(f32(w + 1) - 1), because the GGUF
   stores 1 + w in f32 as llama.cpp does; bits of w below 2^-24 cannot survive that.
3. Real models if present ($WERK_CACHE/models): Gemma 3 270M and SmolLM2 -> f32 GGUF,
   f16 GGUF and an HF dir; with transformers installed, AutoConfig and AutoTokenizer load
   the HF dir, and HF -> GGUF gives back the f32 GGUF's tensors bit for bit.
Exit 77 (skip) when a Python module or the fixtures are missing.
"""
import json
import os
import shutil
import subprocess
import sys

try:
    import numpy as np
    from gguf import GGUFReader
    from safetensors.numpy import load_file
except ImportError as e:  # pragma: no cover
    print(f"SKIP: {e}")
    sys.exit(77)

WERK = os.environ.get("WERK_BIN", "")
FIX = os.environ.get("WERK_FIXTURES", "")
TMP = os.path.join(os.environ.get("WERK_TEST_TMP", "/tmp"), "convert_models")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
VOCAB_KEYS = ("tokenizer.", "general.name")

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, flush=True)


def werk(*args):
    r = subprocess.run([WERK, "convert", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"werk convert {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r.stderr


_readers = {}


def reader(path):
    """One GGUFReader per file (it takes seconds on a 262k-token vocab)."""
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _readers:
        while len(_readers) >= 2:  # keep two files mapped, not the whole test's worth
            del _readers[next(iter(_readers))]
        _readers[key] = GGUFReader(path)
    return _readers[key]


def tensors(path):
    """name -> (type name, raw bytes as a uint8 view of the memory map, ggml shape)."""
    r = reader(path)
    return {t.name: (t.tensor_type.name, np.asarray(t.data).reshape(-1).view(np.uint8), tuple(int(x) for x in t.shape))
            for t in r.tensors}


def st_header(path):
    """The JSON header of a safetensors file (numpy has no bfloat16, so not load_file)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def same_entry(x, y):
    return x[0] == y[0] and x[2] == y[2] and np.array_equal(x[1], y[1])


def fields(path):
    r = reader(path)
    out = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k.startswith(VOCAB_KEYS):
            continue
        out[k] = f.contents()
    return out


def same_gguf_tensors(a, b, label):
    ta = a if isinstance(a, dict) else tensors(a)
    tb = b if isinstance(b, dict) else tensors(b)
    check(set(ta) == set(tb), f"{label}: tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}")
    bad = [n for n in ta if n in tb and not same_entry(ta[n], tb[n])]
    check(not bad, f"{label}: {len(bad)} tensors differ, e.g. {bad[:3]}")
    return ta


def out(name):
    p = os.path.join(TMP, name)
    if os.path.isdir(p):
        shutil.rmtree(p)
    elif os.path.exists(p):
        os.remove(p)
    return p


# ---- 1. stories260K ---------------------------------------------------------------------------

def test_stories():
    base = os.path.join(FIX, "stories260K")
    l2c = out("s_l2c.gguf")
    hf = out("s_hf.gguf")
    werk(os.path.join(base, "llama2c/stories260K.bin"), l2c, "--vocab", os.path.join(base, "llama2c/tok512.bin"))
    werk(os.path.join(base, "hf"), hf)
    same_gguf_tensors(l2c, hf, "stories260K llama2c vs hf")
    fa, fb = fields(l2c), fields(hf)
    check(fa == fb, f"stories260K hyper-parameters differ: {set(fa.items()) ^ set(fb.items())}")
    check(GGUFReader(l2c).fields["tokenizer.ggml.tokens"].contents()[1] == "<s>", "llama2c vocab: BOS restored")
    for t in ("f32", "f16", "bf16"):
        direct = out(f"s_{t}.gguf")
        hfdir = out(f"s_{t}_hf")
        back = out(f"s_{t}_back.gguf")
        werk(l2c, direct, "--type", t)
        werk(l2c, hfdir, "--to", "hf", "--type", t)
        werk(hfdir, back, "--type", t)
        same_gguf_tensors(direct, back, f"stories260K GGUF -> HF -> GGUF ({t})")
        st = st_header(os.path.join(hfdir, "model.safetensors"))
        dt2 = {v["dtype"] for k, v in st.items() if k != "__metadata__" and len(v["shape"]) == 2}
        dt1 = {v["dtype"] for k, v in st.items() if k != "__metadata__" and len(v["shape"]) == 1}
        check(dt2 == {t.upper()}, f"HF export dtype of matrices {t}: {dt2}")
        check(dt1 == {"F32"}, f"HF export dtype of norms {t}: {dt1} (1-D tensors stay f32, as in GGUF)")
        check(st.get("__metadata__") == {"format": "pt"}, f"safetensors metadata {st.get('__metadata__')}")
        check("lm_head.weight" not in st, "tied embeddings: no lm_head")
        cfg = json.load(open(os.path.join(hfdir, "config.json")))
        check(cfg["dtype"] == {"f32": "float32", "f16": "float16", "bf16": "bfloat16"}[t], f"config dtype {t}")
    # the HF export of the llama2.c checkpoint holds the same bytes as the transformers-written one
    ref = load_file(os.path.join(base, "hf/model.safetensors"))
    got = load_file(os.path.join(TMP, "s_f32_hf/model.safetensors"))
    check(set(ref) == set(got), f"stories260K names: {sorted(set(ref) ^ set(got))[:5]}")
    bad = [k for k in ref if k in got and ref[k].tobytes() != got[k].tobytes()]
    check(not bad, f"stories260K llama2c -> HF differs from transformers' file: {bad[:3]}")


# ---- 2. tiny families -------------------------------------------------------------------------

CONFIG_FIELDS = ["architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
                 "rms_norm_eps", "vocab_size", "tie_word_embeddings", "rope_parameters", "sliding_window",
                 "layer_types", "query_pre_attn_scalar", "hidden_act", "hidden_activation", "attention_bias",
                 "bos_token_id", "eos_token_id", "pad_token_id", "final_logit_softcapping", "use_sliding_window"]


def test_tiny(fam):
    src = os.path.join(FIX, "tiny", fam, "hf")
    g = out(f"t_{fam}.gguf")
    hfdir = out(f"t_{fam}_hf")
    werk(src, g)
    werk(g, hfdir, "--to", "hf")
    a = load_file(os.path.join(src, "model.safetensors"))
    b = load_file(os.path.join(hfdir, "model.safetensors"))
    check(set(a) == set(b), f"{fam}: names differ: {sorted(set(a) ^ set(b))[:5]}")
    for k in a:
        if k not in b:
            continue
        want = a[k]
        if fam == "gemma3" and k.endswith("norm.weight"):
            want = (want + np.float32(1)) - np.float32(1)  # what a (1 + w) f32 GGUF can hold
        check(want.dtype == b[k].dtype and want.shape == b[k].shape and want.tobytes() == b[k].tobytes(),
              f"{fam}: {k} differs")
    ca = json.load(open(os.path.join(src, "config.json")))
    cb = json.load(open(os.path.join(hfdir, "config.json")))
    for f in CONFIG_FIELDS:
        if f in ca:
            check(ca[f] == cb.get(f), f"{fam}: config {f}: {ca[f]!r} -> {cb.get(f)!r}")
    if fam == "gemma3":
        check_gemma_bf16_norms(g)
    try:
        from transformers import AutoConfig
    except ImportError:
        return
    x, y = AutoConfig.from_pretrained(src).to_dict(), AutoConfig.from_pretrained(hfdir).to_dict()
    diff = {k for k in set(x) | set(y) if x.get(k) != y.get(k)} - {"_name_or_path", "transformers_version",
                                                                  "max_window_layers"}
    check(not diff, f"{fam}: AutoConfig differs in {sorted(diff)}")


def bf16_bits(x):
    """float32 array -> bfloat16 bit patterns, round to nearest even (as torch)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def all_bf16(path):
    """Rewrites a safetensors file so that every F32 tensor is BF16 (round to nearest even)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    hdr = json.loads(raw[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    items = sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0])
    blobs, off, new = [], 0, {}
    for name, v in items:
        a, b = v["data_offsets"]
        data = raw[8 + n + a:8 + n + b]
        if v["dtype"] == "F32":
            data = bf16_bits(np.frombuffer(data, dtype=np.float32)).tobytes()
            v = dict(v, dtype="BF16")
        new[name] = dict(v, data_offsets=[off, off + len(data)])
        blobs.append(data)
        off += len(data)
    if meta is not None:
        new["__metadata__"] = meta
    h = json.dumps(new, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def check_gemma_bf16_norms(gguf_f32):
    """A bf16 Gemma checkpoint: llama.cpp computes 1 + w in bf16 (torch) and then widens, so
    an f32 GGUF holds bf16(w + 1); werk must agree bit for bit."""
    hfdir = out("t_gemma3_bf16_hf")
    g = out("t_gemma3_bf16.gguf")
    werk(gguf_f32, hfdir, "--to", "hf", "--type", "bf16")
    path = os.path.join(hfdir, "model.safetensors")
    all_bf16(path)  # werk exports 1-D tensors as f32; transformers' bf16 checkpoints have bf16 norms
    werk(hfdir, g, "--type", "f32")
    hdr = st_header(path)
    raw = open(path, "rb").read()
    base = 8 + int.from_bytes(raw[:8], "little")
    got = tensors(g)
    n = 0
    for name, v in hdr.items():
        if not name.endswith("norm.weight"):
            continue
        a, b = v["data_offsets"]
        w = (np.frombuffer(raw[base + a:base + b], dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        want = (bf16_bits(w + np.float32(1)).astype(np.uint32) << 16).view(np.float32)
        gg = name.replace("model.layers.", "blk.").replace("input_layernorm", "attn_norm")
        gg = gg.replace("post_attention_layernorm", "post_attention_norm").replace("pre_feedforward_layernorm",
                                                                                    "ffn_norm")
        gg = gg.replace("post_feedforward_layernorm", "post_ffw_norm").replace("self_attn.q_norm", "attn_q_norm")
        gg = gg.replace("self_attn.k_norm", "attn_k_norm").replace("model.norm", "output_norm")
        check(gg in got and np.array_equal(got[gg][1], want.view(np.uint8)), f"gemma3 bf16 norm {name} -> {gg}")
        n += 1
    check(n == 37, f"gemma3 bf16: {n} norms checked")


# ---- 3. real models -------------------------------------------------------------------------

def test_real(name, fname):
    path = os.path.join(CACHE, "models", fname)
    if not os.path.exists(path):
        print(f"skip {name}: {path} not present")
        return
    f32, f16, hfdir, back = (out(f"r_{name}_{x}") for x in ("f32.gguf", "f16.gguf", "hf", "back.gguf"))
    try:
        check_real(name, path, f32, f16, hfdir, back)
    finally:  # a few GB: do not keep them around
        for p in (f32, f16, hfdir, back):
            out(os.path.basename(p))


def check_real(name, path, f32, f16, hfdir, back):
    werk(path, f32, "--type", "f32")
    werk(path, f16, "--type", "f16")
    werk(path, hfdir, "--to", "hf")
    ta, orig = tensors(f32), fields(f32)  # f32: converted straight from the original, all keys kept
    check(all(v[0] == "F32" for v in ta.values()), f"{name}: f32 GGUF has other types")
    n_vocab = ta["token_embd.weight"][2][1]
    tb = tensors(f16)
    check(all(v[0] == "F16" for v in tb.values() if len(v[2]) > 1), f"{name}: f16 GGUF has 2-D tensors not in F16")
    del tb
    werk(hfdir, back)
    same_gguf_tensors(ta, back, f"{name}: GGUF(f32) -> HF -> GGUF")
    got = fields(back)
    arch = orig["general.architecture"]
    check(got.get("general.architecture") == arch, f"{name}: architecture {arch} -> {got.get('general.architecture')}")
    for k, v in orig.items():
        if k.startswith(arch + ".") and k != f"{arch}.vocab_size":
            check(got.get(k) == v, f"{name}: {k}: {v} -> {got.get(k)}")
    check(os.path.exists(os.path.join(hfdir, "tokenizer.json")), f"{name}: no tokenizer.json in the HF dir")
    try:
        from transformers import AutoConfig, AutoTokenizer
    except ImportError:
        print("SKIP (part): transformers is not installed; AutoConfig/AutoTokenizer not checked")
        return
    cfg = AutoConfig.from_pretrained(hfdir)
    check(cfg.vocab_size == n_vocab, f"{name}: AutoConfig vocab_size {cfg.vocab_size} != {n_vocab}")
    if os.path.exists(os.path.join(hfdir, "tokenizer.json")):
        tok = AutoTokenizer.from_pretrained(hfdir)
        ids = tok("Hello world", add_special_tokens=False)["input_ids"]
        check(len(ids) > 0 and tok.decode(ids) == "Hello world", f"{name}: AutoTokenizer round trip {ids}")


def main():
    if not WERK or not os.path.exists(WERK):
        print("SKIP: WERK_BIN not set")
        return 77
    if not FIX or not os.path.isdir(os.path.join(FIX, "stories260K")):
        print("SKIP: fixtures missing")
        return 77
    os.makedirs(TMP, exist_ok=True)
    test_stories()
    for fam in ("llama", "qwen2", "qwen3", "gemma3"):
        if os.path.isdir(os.path.join(FIX, "tiny", fam, "hf")):
            test_tiny(fam)
    test_real("gemma3", "gemma-3-270m-q4_k_m.gguf")
    test_real("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
    print(f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# ctest-label: slow  (real models; left out of the sanitizer pass)
"""tests/convert/test_tokenizer_files.py - GGUF vocab -> HF tokenizer files -> GGUF, and HF's view of them

For llama.cpp's vocab-only GGUFs ($WERK_FIXTURES/vocab/ggml-vocab-{llama-spm,gpt-2}.gguf):
  1. `werk convert VOCAB.gguf OUT --to hf` writes tokenizer.json / tokenizer_config.json
     (+ tokenizer.model for SentencePiece vocabs); `werk convert OUT back.gguf` re-imports;
     every tokenizer.* key of back.gguf must equal the original (read with gguf.GGUFReader).
  2. If the PyPI `tokenizers` package is importable: OUT/tokenizer.json must encode every
     text of VOCAB.gguf.inp to the ids of VOCAB.gguf.out (llama.cpp's own test vectors, no
     BOS). If `sentencepiece` is importable: the same for OUT/tokenizer.model (llama-spm).
The real models, when present under $WERK_CACHE/models (Gemma 3 270M: SentencePiece, 262144
tokens; SmolLM2-135M-Instruct: byte-level BPE, pre "smollm"), go through the same round
trip (full model, bf16 safetensors) and `tokenizers` must load the exported tokenizer.json
and agree with sentencepiece on the Gemma tokenizer.model for the test texts.

If transformers is importable, AutoTokenizer must load the exported folders and give the
same ids (the exported tokenizer_class is PreTrainedTokenizerFast, so transformers runs
tokenizer.json as written).

Known differences between HF and llama.cpp on these vectors: none at the time of writing
(llama-spm 46/46 with tokenizers 0.23, sentencepiece 0.2 and transformers 5.23; gpt-2
46/46). Add an entry to
KNOWN_DIFFERENCES (vocab name -> {test index: reason}) if a future version disagrees for a
reason that is not werk's.
Exits 77 (skip) when the gguf package, the werk binary or the fixtures are missing.
"""
import os
import shutil
import subprocess
import sys
import time

try:
    import numpy as np
    import gguf
except ImportError as e:
    print(f"SKIP: Python package missing: {e.name}")
    sys.exit(77)

try:
    import tokenizers
except ImportError:
    tokenizers = None
try:
    import sentencepiece
except ImportError:
    sentencepiece = None
try:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoTokenizer
except Exception:  # not installed, or installed without what it needs
    AutoTokenizer = None

WERK = os.environ.get("WERK_BIN", "")
FIXTURES = os.environ.get("WERK_FIXTURES", "")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
TMP = os.environ.get("WERK_TEST_TMP", "/tmp")
SEP = "\n__ggml_vocab_test__\n"

KNOWN_DIFFERENCES = {}  # e.g. {"ggml-vocab-llama-spm.gguf": {12: "HF splits ... because ..."}}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def werk(*args):
    r = subprocess.run([WERK, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"werk {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return r


_kv_cache = {}


def tokenizer_kv(path):
    """Every tokenizer.* key of a GGUF as comparable Python values (type included). Cached:
    GGUFReader takes ~15 s on a 262k-token vocab."""
    if path in _kv_cache:
        return _kv_cache[path]
    r = gguf.GGUFReader(path)
    out = {}
    for k, f in r.fields.items():
        if not k.startswith("tokenizer."):
            continue
        t = f.types
        if t[0] == gguf.GGUFValueType.ARRAY:
            if t[-1] == gguf.GGUFValueType.STRING:
                v = [bytes(f.parts[i]) for i in f.data]
            else:
                a = np.concatenate([f.parts[i] for i in f.data]) if f.data else np.array([])
                v = (str(a.dtype), a.tobytes())  # bytes: -0.0 and NaN compared exactly
        elif t[0] == gguf.GGUFValueType.STRING:
            v = bytes(f.parts[-1])
        else:
            v = (int(t[0]), f.parts[-1].tobytes())
        out[k] = (tuple(int(x) for x in t), v)
    _kv_cache[path] = out
    return out


def compare_kv(orig, back, label):
    a, b = tokenizer_kv(orig), tokenizer_kv(back)
    for k in sorted(set(a) | set(b)):
        if k not in b:
            check(False, f"{label}: {k} lost in the round trip")
        elif k not in a:
            check(False, f"{label}: {k} appeared in the round trip")
        elif a[k] != b[k]:
            va, vb = a[k][1], b[k][1]
            if isinstance(va, list) and isinstance(vb, list):
                d = [i for i in range(min(len(va), len(vb))) if va[i] != vb[i]]
                check(False, f"{label}: {k} differs (len {len(va)} vs {len(vb)}, first diffs {d[:5]}: "
                             f"{[(va[i], vb[i]) for i in d[:3]]})")
            else:
                check(False, f"{label}: {k} differs: {str(a[k])[:120]} vs {str(b[k])[:120]}")
    print(f"{label}: {len(a)} tokenizer keys compared")


def test_vectors(name):
    inp = open(os.path.join(FIXTURES, "vocab", name + ".inp"), encoding="utf-8").read()
    out = open(os.path.join(FIXTURES, "vocab", name + ".out"), encoding="utf-8").read()
    texts = inp.split(SEP)
    if texts and texts[-1] == "":
        texts.pop()  # the file ends with a separator
    ids = out.split("\n")
    if ids and ids[-1] == "":
        ids.pop()
    if len(texts) != len(ids):
        raise RuntimeError(f"{name}: {len(texts)} texts but {len(ids)} id lines")
    return texts, [[int(x) for x in line.split()] for line in ids]


def run_vectors(label, name, encode, texts, expected):
    known = KNOWN_DIFFERENCES.get(name, {})
    ok, bad = 0, []
    for i, (text, exp) in enumerate(zip(texts, expected)):
        got = encode(text)
        if got == exp:
            ok += 1
        elif i in known:
            print(f"{label}: test {i} differs (known: {known[i]})")
        else:
            bad.append(i)
            print(f"{label}: test {i} {text!r}: expected {exp}, got {got}")
    print(f"{label}: {ok}/{len(texts)} test vectors match ({len(known)} known differences)")
    check(not bad, f"{label}: {len(bad)} unexpected mismatches: {bad}")


def fixture_vocab(name, spm):
    src = os.path.join(FIXTURES, "vocab", name)
    out = os.path.join(TMP, "tokfiles_" + name.replace(".gguf", ""))
    back = out + "_back.gguf"
    shutil.rmtree(out, ignore_errors=True)
    werk("convert", src, out, "--to", "hf")
    files = sorted(os.listdir(out))
    for f in ["tokenizer.json", "tokenizer_config.json"] + (["tokenizer.model"] if spm else []):
        check(f in files, f"{name}: {f} not written (got {files})")
    werk("convert", out, back)
    compare_kv(src, back, name)
    _kv_cache.pop(back, None)
    texts, expected = test_vectors(name)
    if tokenizers is None:
        print("SKIP part: tokenizers not installed (pip install tokenizers)")
    else:
        tok = tokenizers.Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        run_vectors(f"{name} tokenizers", name,
                    lambda t: tok.encode(t, add_special_tokens=False).ids, texts, expected)
    if AutoTokenizer is None:
        print("SKIP part: transformers not installed (optional)")
    else:
        hf = AutoTokenizer.from_pretrained(out)
        run_vectors(f"{name} transformers", name,
                    lambda t: hf(t, add_special_tokens=False)["input_ids"], texts, expected)
        add_bos = tokenizer_kv(src).get("tokenizer.ggml.add_bos_token")
        bos = tokenizer_kv(src).get("tokenizer.ggml.bos_token_id")
        if add_bos and bos:
            want = add_bos[1][1] == b"\x01"
            first = hf("Hello")["input_ids"][0]
            check((first == int.from_bytes(bos[1][1], "little")) == want,
                  f"{name}: transformers add_bos_token {want} but first id is {first}")
    if spm:
        if sentencepiece is None:
            print("SKIP part: sentencepiece not installed (pip install sentencepiece)")
        else:
            sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
            run_vectors(f"{name} sentencepiece", name, lambda t: sp.encode(t), texts, expected)
    shutil.rmtree(out, ignore_errors=True)
    os.remove(back)


def real_model(file, spm):
    src = os.path.join(CACHE, "models", file)
    if not os.path.exists(src):
        print(f"SKIP part: {src} not present (scripts/fetch-models)")
        return
    out = os.path.join(TMP, "tokfiles_" + file.replace(".gguf", ""))
    back = out + "_back.gguf"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    werk("convert", src, out, "--to", "hf", "--type", "bf16")
    werk("convert", out, back)
    print(f"{file}: GGUF -> HF -> GGUF in {time.time() - t0:.1f} s")
    compare_kv(src, back, file)
    texts, _ = test_vectors("ggml-vocab-llama-spm.gguf") if FIXTURES else (["Hello world"], None)
    texts = texts + ["<|im_start|>user\nHi<|im_end|>", "Grüße aus Köln!  12345\n\n\tx"]
    if tokenizers is None:
        print("SKIP part: tokenizers not installed")
    else:
        tok = tokenizers.Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        n_tokens = len(tokenizer_kv(src)["tokenizer.ggml.tokens"][1])
        check(tok.get_vocab_size() == n_tokens,
              f"{file}: tokenizers sees {tok.get_vocab_size()} tokens, GGUF has {n_tokens}")
        enc = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        for t, ids in zip(texts, enc):
            check(tok.decode(ids, skip_special_tokens=False) == t or not t.strip(),
                  f"{file}: tokenizers decode(encode({t!r})) != text")
        if spm and sentencepiece is not None:
            sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(out, "tokenizer.model"))
            check(sp.vocab_size() == n_tokens, f"{file}: sentencepiece sees {sp.vocab_size()} pieces")
            same = sum(1 for t, ids in zip(texts, enc) if sp.encode(t) == ids)
            print(f"{file}: tokenizer.json and tokenizer.model agree on {same}/{len(texts)} texts")
            check(same == len(texts), f"{file}: tokenizer.json and tokenizer.model disagree")
        if not spm:
            check(enc[-2][0] == 1, f"{file}: <|im_start|> is not one special token: {enc[-2][:3]}")
        if AutoTokenizer is not None:
            hf = AutoTokenizer.from_pretrained(out)
            check(len(hf) == n_tokens, f"{file}: transformers sees {len(hf)} tokens")
            same = sum(1 for t, ids in zip(texts, enc) if hf(t, add_special_tokens=False)["input_ids"] == ids)
            print(f"{file}: transformers and tokenizers agree on {same}/{len(texts)} texts")
            check(same == len(texts), f"{file}: transformers and tokenizers disagree")
            if hf.chat_template:
                hf.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    shutil.rmtree(out, ignore_errors=True)
    os.remove(back)
    _kv_cache.clear()


def main():
    if not WERK or not os.path.exists(WERK):
        print("SKIP: WERK_BIN not set or missing")
        return 77
    have_fixtures = FIXTURES and os.path.exists(os.path.join(FIXTURES, "vocab", "ggml-vocab-gpt-2.gguf"))
    if have_fixtures:
        fixture_vocab("ggml-vocab-llama-spm.gguf", spm=True)
        fixture_vocab("ggml-vocab-gpt-2.gguf", spm=False)
    else:
        print("SKIP part: fixtures missing ($WERK_FIXTURES/vocab)")
    real_model("gemma-3-270m-q4_k_m.gguf", spm=True)
    real_model("SmolLM2-135M-Instruct.Q4_1.gguf", spm=False)
    if not have_fixtures and not os.path.exists(os.path.join(CACHE, "models")):
        print("SKIP: neither fixtures nor real models present")
        return 77
    tf = "missing"
    if AutoTokenizer is not None:
        import transformers
        tf = transformers.__version__
    print(f"tokenizers {getattr(tokenizers, '__version__', 'missing')}, "
          f"sentencepiece {getattr(sentencepiece, '__version__', 'missing')}, transformers {tf}")
    if failures:
        print(f"{len(failures)} failures")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# ctest-label: slow
# tests/infer/test_lora_llamacpp.py - llama.cpp loads werk's LoRA GGUFs and agrees with werk
#
# Optional: needs llama_cpp (llama-cpp-python), which the system python3 has but the CI venv
# does not; skips with a message without it. Run by hand:
#   WERK_BIN=build/werk WERK_FIXTURES=../shared/fixtures python3 tests/infer/test_lora_llamacpp.py
# 1. stories260K (werk's llama2c conversion) + the golden case_a adapter converted with
#    `werk convert ADAPTER ad.gguf --base BASE.gguf`: llama.cpp's logits (lora_path=ad.gguf)
#    on the case's tokens against the golden adapter_logits, no further off than llama.cpp's
#    base logits are from base_logits (plus 1e-3), and far from the base logits; greedy text
#    from "Once upon a time" equal to `werk infer` with and without --lora.
# 2. SmolLM2-135M (Q4_1 converted to f32; llama with GQA: the k permutation uses n_head_kv)
#    and Gemma 3 270M (f32; gemma3) with a random PEFT adapter written here: the mean
#    next-token loss llama.cpp computes with the adapter's GGUF equals `werk eval --lora`
#    within 1e-3 relative, and differs from the base loss.
import json
import os
import subprocess
import sys

try:
    import numpy as np
    from safetensors.numpy import load_file, save_file
    import llama_cpp
except ImportError as e:
    print("SKIP: %s (llama-cpp-python is optional; run with the system python3)" % e)
    sys.exit(77)

werk = os.environ.get("WERK_BIN", "")
fx = os.environ.get("WERK_FIXTURES", "")
cache = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
tmp = os.path.join(os.environ.get("WERK_TEST_TMP", "/tmp"), "lora_llamacpp")
if not werk or not os.path.exists(werk):
    print("SKIP: WERK_BIN not set")
    sys.exit(77)
os.makedirs(tmp, exist_ok=True)
failed = 0


def check(cond, msg):
    global failed
    print(("ok: " if cond else "FAIL: ") + msg)
    failed += 0 if cond else 1


def run(args):
    p = subprocess.run([werk] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit("FAIL: werk %s: rc %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def llama_logits(model, lora, tokens):
    # f32 KV cache (type 0): llama.cpp's default f16 cache alone moves logits by ~1e-2
    kw = dict(model_path=model, n_ctx=max(64, len(tokens) + 8), logits_all=True, verbose=False, n_threads=2,
              type_k=0, type_v=0)
    if lora:
        kw["lora_path"] = lora
    llm = llama_cpp.Llama(**kw)
    llm.eval(list(int(t) for t in tokens))
    out = np.array(llm.scores[:len(tokens)], dtype=np.float64)
    llm.close()
    return out


def mean_ce(logits, tokens):
    lp = logits - logits.max(axis=1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
    return float(-np.mean([lp[i, tokens[i + 1]] for i in range(len(tokens) - 1)]))


ran = False
case = os.path.join(fx, "stories260K", "golden", "case_a")
if os.path.isdir(case):
    ran = True
    base = os.path.join(tmp, "stories.gguf")
    run(["convert", os.path.join(fx, "stories260K", "llama2c", "stories260K.bin"), "--vocab",
         os.path.join(fx, "stories260K", "llama2c", "tok512.bin"), base])
    ad = os.path.join(tmp, "stories_adapter.gguf")
    run(["convert", os.path.join(case, "adapter"), ad, "--base", base])
    ref = load_file(os.path.join(case, "reference.safetensors"))
    for row in range(ref["tokens"].shape[0]):
        toks = ref["tokens"][row]
        lb = llama_logits(base, None, toks)
        la = llama_logits(base, ad, toks)
        e_base = np.abs(lb - ref["base_logits"][row]).max()
        e_ad = np.abs(la - ref["adapter_logits"][row]).max()
        gap = np.abs(ref["adapter_logits"][row] - ref["base_logits"][row]).max()
        print("stories260K row %d: llama.cpp base max abs err %.3g, with werk's adapter.gguf %.3g "
              "(adapter effect %.3g)" % (row, e_base, e_ad, gap))
        check(e_ad <= e_base + 1e-3 and e_ad < 0.01 * gap, "stories260K row %d: llama.cpp + adapter.gguf "
              "matches the golden adapter logits" % row)
    # greedy text: llama.cpp with the adapter GGUF == `werk infer --lora` (and without it)
    for lora in (None, ad):
        kw = dict(model_path=base, n_ctx=128, verbose=False, type_k=0, type_v=0, n_threads=2)
        if lora:
            kw["lora_path"] = lora
        llm = llama_cpp.Llama(**kw)
        text = llm("Once upon a time", max_tokens=24, temperature=0)["choices"][0]["text"]
        llm.close()
        mine = run(["infer", "--model", base, "--prompt", "Once upon a time", "-n", "24"] +
                   (["--lora", lora] if lora else []))
        print("greedy %s: llama.cpp %r, werk %r" % ("adapter" if lora else "base", text, mine))
        check(text.strip() == mine.strip() and len(text.strip()) > 10,
              "stories260K greedy text %s adapter equal in llama.cpp and werk" % ("with" if lora else "without"))

def random_adapter_check(label, model, to_f32, b_std):
    import gguf
    r = gguf.GGUFReader(model)
    rng = np.random.default_rng(7)
    tensors, rank = {}, 8
    names = [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
             ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
             ("ffn_down", "mlp.down_proj")]
    shapes = {t.name: [int(x) for x in t.shape] for t in r.tensors}  # ggml ne: [in, out]
    il = 0
    while "blk.%d.attn_q.weight" % il in shapes:
        for g, h in names:
            n_in, n_out = shapes["blk.%d.%s.weight" % (il, g)]
            p = "base_model.model.model.layers.%d.%s" % (il, h)
            tensors[p + ".lora_A.weight"] = (rng.standard_normal((rank, n_in)) / np.sqrt(n_in)).astype(np.float32)
            tensors[p + ".lora_B.weight"] = (b_std * rng.standard_normal((n_out, rank))).astype(np.float32)
        il += 1
    del r
    pdir = os.path.join(tmp, label + "_peft")
    os.makedirs(pdir, exist_ok=True)
    save_file(tensors, os.path.join(pdir, "adapter_model.safetensors"), metadata={"format": "pt"})
    json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 16,
               "target_modules": [h.split(".")[1] for _, h in names], "lora_dropout": 0.0, "bias": "none"},
              open(os.path.join(pdir, "adapter_config.json"), "w"))
    if to_f32:
        # an f32 base: on quantized weights llama.cpp quantizes activations (~0.5% loss change)
        m32 = os.path.join(tmp, label + "_f32.gguf")
        run(["convert", model, m32, "--type", "f32"])
        model = m32
    ad = os.path.join(tmp, label + "_adapter.gguf")
    run(["convert", pdir, ad, "--base", model])
    text = ("The quick brown fox jumps over the lazy dog. Paris is the capital of France, and Berlin is "
            "the capital of Germany. Water boils at one hundred degrees.")
    toks = [int(t) for t in run(["tokenize", "--model", model, "--text", text, "--bos"]).split()]
    data = os.path.join(tmp, label + ".jsonl")
    with open(data, "w") as f:
        f.write(json.dumps({"input_ids": toks, "labels": toks}) + "\n")
    w_base = json.loads(run(["eval", "--model", model, "--data", data, "--json"]))["loss"]
    w_ad = json.loads(run(["eval", "--model", model, "--data", data, "--json", "--lora", ad]))["loss"]
    l_base = mean_ce(llama_logits(model, None, toks), toks)
    l_ad = mean_ce(llama_logits(model, ad, toks), toks)
    print("%s %d tokens: base loss werk %.6f llama.cpp %.6f; with adapter werk %.6f llama.cpp %.6f" %
          (label, len(toks), w_base, l_base, w_ad, l_ad))
    check(abs(w_ad - l_ad) / l_ad < 1e-3, "%s + random adapter: llama.cpp loss == werk loss (rel %.2e)" %
          (label, abs(w_ad - l_ad) / l_ad))
    check(abs(w_ad - w_base) > 0.05, "%s: the adapter changes the loss (%.4f -> %.4f)" % (label, w_base, w_ad))


smol = os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
if os.path.exists(smol):
    ran = True
    random_adapter_check("smollm2", smol, True, 0.1)
gemma = os.path.join(cache, "models", "gemma-3-270m-f32.gguf")
if os.path.exists(gemma):
    ran = True
    random_adapter_check("gemma3", gemma, False, 0.02)

if not ran:
    print("SKIP: neither stories260K fixtures nor SmolLM2 present")
    sys.exit(77)
sys.exit(1 if failed else 0)

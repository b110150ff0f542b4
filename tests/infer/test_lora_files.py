#!/usr/bin/env python3
# tests/infer/test_lora_files.py - LoRA adapter files at the command line: formats, eval, merge, bad input
#
# On stories260K (llama2c conversion, so q/k rows are permuted) with the golden case_a PEFT
# adapter, and on the tiny llama/qwen2/qwen3/gemma3 models with theirs:
#   - `werk convert ADAPTER_DIR ad.gguf --base BASE.gguf` writes a llama.cpp LoRA GGUF that
#     the gguf package reads with general.type "adapter", the base's architecture,
#     adapter.type "lora", adapter.lora.alpha, and per adapted base tensor <name>.lora_a
#     (ggml ne [in, r]) / .lora_b (ne [r, out]) in F32; A equals PEFT's lora_A and B equals
#     PEFT's lora_B with llama.cpp's q/k permutation (computed here with numpy) bit for bit;
#   - back to a PEFT dir (--to hf): adapter_config.json with the keys HF PEFT needs and the
#     safetensors holding the fixture's tensors bit for bit; --type f16 stores F16 in both;
#   - `werk eval --lora` gives the same loss from the dir, the GGUF and the re-exported dir
#     (and the golden adapter_loss); --lora-scaled 0 gives the base loss, two halves the
#     whole adapter;
#   - `werk convert BASE merged.gguf --lora A` then eval of merged (no adapter) equals eval
#     with the adapter within 1e-4 relative loss (f32 base; q8_0 base merged to f32; the
#     q8_0 base's default merge stores merged tensors as f16: within 1e-3); --type q4_k is
#     refused;
#   - bad adapter files (truncated, wrong shapes, wrong architecture, rank mismatch, a
#     missing half, bad config) fail with one "werk: error:" line and a non-zero exit.
import json
import os
import shutil
import sys

try:
    import numpy as np
    import gguf
    from safetensors.numpy import load_file, save_file
except ImportError as e:
    print("SKIP: python module missing: %s" % e)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

fx = wt.FIX
tmp = os.path.join(wt.TMP, "lora_files")
stories = os.path.join(fx, "stories260K")
if not wt.WERK or not os.path.isdir(os.path.join(stories, "golden", "case_a", "adapter")):
    wt.skip("WERK_BIN or stories260K fixtures missing")
os.makedirs(tmp, exist_ok=True)

check = wt.Checker()
SLOTS = [("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
         ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
         ("ffn_down", "mlp.down_proj")]


def run_bad(args, what):
    p = wt.run(args)
    errs = [l for l in p.stderr.splitlines() if l.startswith("werk: error:")]
    check(p.returncode not in (0,) and 0 < p.returncode < 128 and len(errs) == 1,
          "%s: rc %d, error line %r" % (what, p.returncode, errs[0] if errs else p.stderr[-200:]))


def field_str(r, key):
    f = r.fields[key]
    return bytes(f.parts[f.data[0]]).decode()


def field_num(r, key):
    f = r.fields[key]
    return f.parts[f.data[0]][0]


def llama_permute(w, n_head):
    # llama.cpp convert_hf_to_gguf's LlamaModel.permute on the output rows
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def check_adapter_gguf(path, base_path, peft_dir, arch, label):
    r = gguf.GGUFReader(path)
    base = gguf.GGUFReader(base_path)
    cfg = json.load(open(os.path.join(peft_dir, "adapter_config.json")))
    peft = load_file(os.path.join(peft_dir, "adapter_model.safetensors"))
    check(field_str(r, "general.type") == "adapter" and field_str(r, "adapter.type") == "lora" and
          field_str(r, "general.architecture") == arch, "%s: general.type/adapter.type/architecture" % label)
    alpha = float(field_num(r, "adapter.lora.alpha"))
    check(alpha == float(cfg["lora_alpha"]), "%s: adapter.lora.alpha %g" % (label, alpha))
    check("training.source" in r.fields, "%s: provenance key training.source" % label)
    n_head = int(field_num(base, arch + ".attention.head_count"))
    n_kv = int(field_num(base, arch + ".attention.head_count_kv")) if (
        arch + ".attention.head_count_kv") in base.fields else n_head
    btens = {t.name: t for t in base.tensors}
    tens = {t.name: t for t in r.tensors}
    rank = cfg["r"]
    n_layer = int(field_num(base, arch + ".block_count"))
    ok_shape, ok_vals, n_pairs = True, True, 0
    for il in range(n_layer):
        for gname, hname in SLOTS:
            key = "base_model.model.model.layers.%d.%s.lora_A.weight" % (il, hname)
            if key not in peft:
                continue
            n_pairs += 1
            bt = btens["blk.%d.%s.weight" % (il, gname)]
            ta, tb = tens.get("blk.%d.%s.weight.lora_a" % (il, gname)), tens.get("blk.%d.%s.weight.lora_b" % (il, gname))
            if ta is None or tb is None:
                ok_shape = False
                continue
            n_in, n_out = int(bt.shape[0]), int(bt.shape[1])
            ok_shape &= [int(x) for x in ta.shape] == [n_in, rank] and [int(x) for x in tb.shape] == [rank, n_out]
            ok_shape &= ta.tensor_type == gguf.GGMLQuantizationType.F32 and tb.tensor_type == gguf.GGMLQuantizationType.F32
            a_ref = peft[key].astype(np.float32)
            b_ref = peft[key.replace("lora_A", "lora_B")].astype(np.float32)
            if arch == "llama" and gname in ("attn_q", "attn_k"):
                b_ref = llama_permute(b_ref, n_head if gname == "attn_q" else n_kv)
            a = np.asarray(ta.data).reshape(rank, n_in)
            b = np.asarray(tb.data).reshape(n_out, rank)
            ok_vals &= np.array_equal(a, a_ref) and np.array_equal(b, b_ref)
    check(n_pairs > 0 and len(tens) == 2 * n_pairs, "%s: %d pairs, %d tensors" % (label, n_pairs, len(tens)))
    check(ok_shape, "%s: lora_a ne [in, r], lora_b ne [r, out], F32" % label)
    check(ok_vals, "%s: A and (permuted) B bit for bit" % label)


def check_peft_dir(out_dir, ref_dir, label):
    cfg = json.load(open(os.path.join(out_dir, "adapter_config.json")))
    ref = json.load(open(os.path.join(ref_dir, "adapter_config.json")))
    need = ["peft_type", "task_type", "r", "lora_alpha", "target_modules", "lora_dropout", "use_rslora", "bias",
            "base_model_name_or_path", "fan_in_fan_out", "inference_mode", "use_dora", "rank_pattern",
            "alpha_pattern", "modules_to_save", "layers_to_transform"]
    check(all(k in cfg for k in need), "%s: config keys %s" % (label, [k for k in need if k not in cfg]))
    check(cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["r"] == ref["r"] and
          cfg["lora_alpha"] == ref["lora_alpha"] and cfg["bias"] == "none" and cfg["fan_in_fan_out"] is False and
          cfg["use_rslora"] == ref.get("use_rslora", False) and sorted(cfg["target_modules"]) ==
          sorted(ref["target_modules"]), "%s: config values" % label)
    a, b = load_file(os.path.join(out_dir, "adapter_model.safetensors")), load_file(
        os.path.join(ref_dir, "adapter_model.safetensors"))
    same = set(a) == set(b) and all(np.array_equal(a[k], b[k].astype(np.float32)) and a[k].dtype == np.float32
                                    for k in b)
    check(same, "%s: safetensors tensors bit for bit (%d)" % (label, len(b)))


def eval_loss(model, data, extra=()):
    return json.loads(wt.stdout_of(["eval", "--model", model, "--data", data, "--json"] + list(extra)))["loss"]


# ---- stories260K ----------------------------------------------------------------------
case = os.path.join(stories, "golden", "case_a")
ad_dir = os.path.join(case, "adapter")
meta = json.load(open(os.path.join(case, "case.json")))
base = os.path.join(tmp, "stories.gguf")
wt.stories260K_gguf(base)
ad_gguf = os.path.join(tmp, "stories_adapter.gguf")
wt.stdout_of(["convert", ad_dir, ad_gguf, "--base", base])
check_adapter_gguf(ad_gguf, base, ad_dir, "llama", "stories260K adapter.gguf")
peft_out = os.path.join(tmp, "stories_peft")
shutil.rmtree(peft_out, ignore_errors=True)
wt.stdout_of(["convert", ad_gguf, peft_out, "--base", base, "--to", "hf"])
check_peft_dir(peft_out, ad_dir, "stories260K PEFT re-export")

tokens = load_file(os.path.join(case, "reference.safetensors"))["tokens"]
data = os.path.join(tmp, "stories_case_a.jsonl")
with open(data, "w") as f:
    for row in tokens.tolist():
        f.write(json.dumps({"input_ids": row, "labels": [-100 if i < 8 else t for i, t in enumerate(row)]}) + "\n")
l_base = eval_loss(base, data)
l_dir = eval_loss(base, data, ["--lora", ad_dir])
l_gguf = eval_loss(base, data, ["--lora", ad_gguf])
l_peft = eval_loss(base, data, ["--lora", peft_out])
print("losses: base %.9f dir %.9f gguf %.9f re-exported %.9f golden %.9f" %
      (l_base, l_dir, l_gguf, l_peft, meta["adapter_loss"]))
check(l_dir == l_gguf == l_peft, "eval --lora dir == gguf == re-exported dir")
check(abs(l_gguf - meta["adapter_loss"]) / meta["adapter_loss"] < 1e-5, "adapter.gguf loss vs golden")
l0 = eval_loss(base, data, ["--lora-scaled", ad_gguf, "0"])
check(l0 == l_base, "--lora-scaled 0 gives the base loss (%.9f)" % l0)
l_half = eval_loss(base, data, ["--lora-scaled", ad_gguf, "0.5", "--lora-scaled", ad_dir, "0.5"])
check(abs(l_half - l_dir) / l_dir < 1e-6, "two halves %.9f == whole %.9f" % (l_half, l_dir))
# f16 storage (--type f16), both formats
ad16 = os.path.join(tmp, "stories_adapter_f16.gguf")
wt.stdout_of(["convert", ad_dir, ad16, "--base", base, "--type", "f16"])
peft16 = os.path.join(tmp, "stories_peft_f16")
shutil.rmtree(peft16, ignore_errors=True)
wt.stdout_of(["convert", ad_dir, peft16, "--base", base, "--type", "f16", "--to", "hf"])
r16 = gguf.GGUFReader(ad16)
check(all(t.tensor_type == gguf.GGMLQuantizationType.F16 for t in r16.tensors) and
      int(field_num(r16, "general.file_type")) == 1, "--type f16 adapter.gguf: F16 tensors, file_type 1")
st16 = load_file(os.path.join(peft16, "adapter_model.safetensors"))
check(all(v.dtype == np.float16 for v in st16.values()), "--type f16 PEFT dir: F16 tensors")
l16, l16p = eval_loss(base, data, ["--lora", ad16]), eval_loss(base, data, ["--lora", peft16])
check(l16 == l16p and abs(l16 - l_dir) / l_dir < 1e-3, "f16 adapters: loss %.9f (f32 %.9f)" % (l16, l_dir))
run_bad(["convert", ad_dir, os.path.join(tmp, "x.gguf"), "--base", base, "--type", "q8_0"], "adapter --type q8_0")

# merge: f32 base, then q8_0 base (merged tensors f16)
merged = os.path.join(tmp, "stories_merged.gguf")
wt.stdout_of(["convert", base, merged, "--lora", ad_gguf])
l_m = eval_loss(merged, data)
rel = abs(l_m - l_dir) / l_dir
print("merged f32: loss %.9f vs adapter %.9f (rel %.2e)" % (l_m, l_dir, rel))
check(rel < 1e-4, "merged model loss equals adapter loss (rel %.2e)" % rel)
mt = {t.name: t for t in gguf.GGUFReader(merged).tensors}
check(mt["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F32, "merged f32 tensors stay f32")
outs = []
for threads in ("1", "3"):
    outs.append(os.path.join(tmp, "stories_merged_t%s.gguf" % threads))
    wt.stdout_of(["convert", base, outs[-1], "--lora", ad_gguf], env=dict(os.environ, OMP_NUM_THREADS=threads))
check(open(outs[0], "rb").read() == open(outs[1], "rb").read(), "merge: same bytes with 1 and 3 threads")
merged2 = os.path.join(tmp, "stories_merged_halves.gguf")
wt.stdout_of(["convert", base, merged2, "--lora-scaled", ad_dir, "0.5", "--lora-scaled", ad_gguf, "0.5"])
l_m2 = eval_loss(merged2, data)
check(abs(l_m2 - l_dir) / l_dir < 1e-4, "merge of two halves %.9f" % l_m2)
q8 = os.path.join(tmp, "stories_q8.gguf")
wt.stdout_of(["convert", base, q8, "--type", "q8_0"])
merged_q8 = os.path.join(tmp, "stories_q8_merged.gguf")
wt.stdout_of(["convert", q8, merged_q8, "--lora", ad_dir])
l_q8a = eval_loss(q8, data, ["--lora", ad_dir])
l_q8m = eval_loss(merged_q8, data)
rel = abs(l_q8m - l_q8a) / l_q8a
print("merged q8_0 base (f16 merged tensors): loss %.9f vs adapter %.9f (rel %.2e)" % (l_q8m, l_q8a, rel))
check(rel < 1e-3, "merged q8_0 base, f16 merged tensors: loss near adapter loss (rel %.2e)" % rel)
merged_q8f = os.path.join(tmp, "stories_q8_merged_f32.gguf")
wt.stdout_of(["convert", q8, merged_q8f, "--lora", ad_dir, "--type", "f32"])
l_q8f = eval_loss(merged_q8f, data)
rel = abs(l_q8f - l_q8a) / l_q8a
print("merged q8_0 base --type f32: loss %.9f vs adapter %.9f (rel %.2e)" % (l_q8f, l_q8a, rel))
check(rel < 1e-4, "merged q8_0 base --type f32: loss equals adapter loss (rel %.2e)" % rel)
mt = {t.name: t for t in gguf.GGUFReader(merged_q8).tensors}
check(mt["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16 and
      mt["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0,
      "q8_0 base: merged tensors f16, others copied")
merged_t = os.path.join(tmp, "stories_merged_q8t.gguf")
wt.stdout_of(["convert", base, merged_t, "--lora", ad_dir, "--type", "q8_0"])
mt = {t.name: t for t in gguf.GGUFReader(merged_t).tensors}
check(mt["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0, "--type q8_0 applies to merged")
run_bad(["convert", base, os.path.join(tmp, "x.gguf"), "--lora", ad_dir, "--type", "q4_k"], "merge --type q4_k")
run_bad(["convert", os.path.join(stories, "hf"), os.path.join(tmp, "x.gguf"), "--lora", ad_dir],
        "merge into an HF dir whose llama q/k rows are permuted while written")

# ---- tiny families: adapter GGUF format and the round trip -----------------------------
tiny_adapters = {}
for fam in ("llama", "qwen2", "qwen3", "gemma3"):
    hf = os.path.join(fx, "tiny", fam, "hf")
    fam_ad = os.path.join(fx, "tiny", fam, "case_a", "adapter")
    if not os.path.isdir(fam_ad):
        print("SKIP part: tiny %s fixtures missing" % fam)
        continue
    fam_base = os.path.join(tmp, "tiny_%s.gguf" % fam)
    wt.stdout_of(["convert", hf, fam_base])
    fam_gguf = os.path.join(tmp, "tiny_%s_adapter.gguf" % fam)
    wt.stdout_of(["convert", fam_ad, fam_gguf, "--base", fam_base])
    check_adapter_gguf(fam_gguf, fam_base, fam_ad, fam, "tiny %s adapter.gguf" % fam)
    fam_peft = os.path.join(tmp, "tiny_%s_peft" % fam)
    shutil.rmtree(fam_peft, ignore_errors=True)
    wt.stdout_of(["convert", fam_gguf, fam_peft + "/", "--base", fam_base])
    check_peft_dir(fam_peft, fam_ad, "tiny %s PEFT re-export" % fam)
    tiny_adapters[fam] = fam_gguf

# ---- bad adapter files ------------------------------------------------------------------
blob = open(ad_gguf, "rb").read()
trunc = os.path.join(tmp, "bad_truncated.gguf")
open(trunc, "wb").write(blob[:len(blob) // 2])
run_bad(["eval", "--model", base, "--data", data, "--lora", trunc], "truncated adapter.gguf")
run_bad(["convert", base, os.path.join(tmp, "x.gguf"), "--lora", trunc], "merge of truncated adapter.gguf")
if "llama" in tiny_adapters:
    run_bad(["eval", "--model", base, "--data", data, "--lora", tiny_adapters["llama"]], "wrong shapes")
if "qwen2" in tiny_adapters:
    run_bad(["eval", "--model", base, "--data", data, "--lora", tiny_adapters["qwen2"]], "wrong architecture")


def write_adapter(path, tensors, kv=None):
    w = gguf.GGUFWriter(path, "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    for k, v in (kv or {}).items():
        w.add_string(k, v)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


good = {t.name: np.asarray(t.data).reshape([int(x) for x in reversed(t.shape)]).copy()
        for t in gguf.GGUFReader(ad_gguf).tensors}
ok_path = os.path.join(tmp, "pyw_ok.gguf")
write_adapter(ok_path, good)
check(eval_loss(base, data, ["--lora", ok_path]) == l_gguf, "adapter.gguf written by gguf-py loads the same")
bad = dict(good)
bad["blk.1.attn_v.weight.lora_a"] = good["blk.1.attn_v.weight.lora_a"][:3].copy()
bad["blk.1.attn_v.weight.lora_b"] = good["blk.1.attn_v.weight.lora_b"][:, :3].copy()
write_adapter(os.path.join(tmp, "bad_rank.gguf"), bad)
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "bad_rank.gguf")], "rank mismatch")
bad = dict(good)
bad["blk.0.attn_q.weight.lora_b"] = good["blk.0.attn_q.weight.lora_b"][:, :3].copy()
write_adapter(os.path.join(tmp, "bad_pair.gguf"), bad)
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "bad_pair.gguf")], "A/B rank differ")
bad = dict(good)
del bad["blk.0.ffn_up.weight.lora_a"]
write_adapter(os.path.join(tmp, "bad_half.gguf"), bad)
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "bad_half.gguf")], "missing lora_a")
bad = dict(good)
bad["blk.0.attn_q.weight.lora_a"] = good["blk.0.attn_q.weight.lora_a"][:, :-1].copy()
write_adapter(os.path.join(tmp, "bad_shape.gguf"), bad)
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "bad_shape.gguf")], "wrong in dim")
bad = dict(good)
bad["blk.99.attn_q.weight.lora_a"] = good["blk.0.attn_q.weight.lora_a"]
write_adapter(os.path.join(tmp, "bad_layer.gguf"), bad)
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "bad_layer.gguf")], "unknown layer")
w = gguf.GGUFWriter(os.path.join(tmp, "bad_type.gguf"), "llama")
w.add_string("general.type", "model")
w.add_tensor("blk.0.attn_q.weight.lora_a", good["blk.0.attn_q.weight.lora_a"])
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "bad_type.gguf")], "not an adapter")
run_bad(["eval", "--model", base, "--data", data, "--lora", base], "a model given as adapter")

bad_dir = os.path.join(tmp, "bad_peft")
shutil.rmtree(bad_dir, ignore_errors=True)
shutil.copytree(ad_dir, bad_dir)
st = open(os.path.join(ad_dir, "adapter_model.safetensors"), "rb").read()
open(os.path.join(bad_dir, "adapter_model.safetensors"), "wb").write(st[:len(st) - 100])
run_bad(["eval", "--model", base, "--data", data, "--lora", bad_dir], "truncated PEFT safetensors")
shutil.copy(os.path.join(ad_dir, "adapter_model.safetensors"), bad_dir)
cfg = json.load(open(os.path.join(ad_dir, "adapter_config.json")))
cfg["r"] = 8
json.dump(cfg, open(os.path.join(bad_dir, "adapter_config.json"), "w"))
run_bad(["eval", "--model", base, "--data", data, "--lora", bad_dir], "PEFT config rank mismatch")
run_bad(["infer", "--model", base, "--prompt", "Once", "-n", "2", "--lora", bad_dir], "infer with a bad adapter")
run_bad(["eval", "--model", base, "--data", data, "--lora", os.path.join(tmp, "nonexistent")], "missing adapter")
run_bad(["eval", "--model", base, "--data", data, "--lora-scaled", ad_gguf, "x"], "bad --lora-scaled value")

sys.exit(check.done())

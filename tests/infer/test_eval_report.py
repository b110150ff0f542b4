#!/usr/bin/env python3
# tests/infer/test_eval_report.py - `werk eval --report DIR` and the chunked LM head
#
# On stories260K (the llama2.c checkpoint and its tok512 vocab, converted with `werk convert`) and a Q8_0 copy of it
# (`werk quantize --q8_0`) as the model against the f32 as reference, over a text file
# (sliding windows) and a JSONL file:
#   - report.json holds exactly the figures of `--json` (same doubles), records.jsonl one
#     line per record / window whose scored tokens and summed NLL add up to the totals,
#     and the per-record KLD / top-1 / reference loss average to the totals; report.md
#     exists and names the perplexity;
#   - the LM head in vocabulary chunks of 7 and 100 rows (--vocab-chunk) gives the
#     figures of the one-chunk run (512-token vocab in one piece): counts and top-1
#     exactly, losses within 1e-6 relative and KLD figures within 2e-7 absolute (the
#     logits of a chunk come from sgemm on another shape: float rounding of ~1e-7; the
#     online log-sum-exp / argmax / KL fold itself is exact up to double rounding);
#   - a second --report into the same DIR replaces the files; a failing run (bad data)
#     leaves no report behind.
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

tmp = wt.TMP
if not wt.WERK or not os.path.isdir(os.path.join(wt.FIX, "stories260K", "llama2c")):
    wt.skip("WERK_BIN or the stories260K llama2.c fixture missing")

check = wt.Checker()


def close(a, b, rel=1e-12):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)


f32 = os.path.join(tmp, "report_stories_f32.gguf")
q8 = os.path.join(tmp, "report_stories_q8.gguf")
wt.stories260K_gguf(f32)
wt.run_ok(["quantize", f32, q8, "--q8_0", "--no-measure"])

text = os.path.join(tmp, "report_text.txt")
story = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
         "One day, she saw a big red ball in the park. She ran to get it, but a dog took it first. ")
with open(text, "w") as f:
    f.write(story * 12)
jsonl = os.path.join(tmp, "report_data.jsonl")
with open(jsonl, "w") as f:
    f.write(json.dumps({"text": story}) + "\n")
    f.write(json.dumps({"prompt": "Lily saw a dog.", "completion": " The dog was big and happy."}) + "\n")
    f.write(json.dumps({"text": "Tom had a small boat. He liked the water."}) + "\n")

FIGS = ["records", "tokens", "loss", "ppl", "ref_loss", "ref_ppl", "delta_ppl", "kld_mean", "kld_median",
        "kld_p99", "top1"]

for data, extra in ((text, ["--ctx", "64"]), (jsonl, [])):
    name = os.path.basename(data)
    base = ["eval", "--model", q8, "--ref", f32, "--data", data] + extra
    js = json.loads(wt.run_ok(base + ["--json"]).stdout)
    check(js["kld_mean"] > 0 and js["top1"] > 0.5, "%s: q8 vs f32 KLD %.3g top-1 %.3f" % (name, js["kld_mean"], js["top1"]))
    rdir = os.path.join(tmp, "report_" + name)
    shutil.rmtree(rdir, ignore_errors=True)
    wt.run_ok(base + ["--report", rdir])
    rep = json.load(open(os.path.join(rdir, "report.json")))
    for k in FIGS:
        check(rep.get(k) == js[k], "%s: report.json %s %r == --json %r" % (name, k, rep.get(k), js[k]))
    check(rep["inputs"]["model"] == q8 and rep["inputs"]["ref"] == f32, "%s: report.json inputs" % name)
    recs = [json.loads(l) for l in open(os.path.join(rdir, "records.jsonl"))]
    check(len(recs) == js["records"], "%s: %d record lines == %d records" % (name, len(recs), js["records"]))
    n = sum(r["scored"] for r in recs)
    check(n == js["tokens"], "%s: record scored tokens add up (%d == %d)" % (name, n, js["tokens"]))
    nll = sum(r["nll"] for r in recs)
    check(close(nll / n, js["loss"], 1e-12), "%s: record NLL sums to the loss" % name)
    kld = sum(r["kld_mean"] * r["scored"] for r in recs) / n
    check(close(kld, js["kld_mean"], 1e-9), "%s: record KLD averages to kld_mean (%.9g vs %.9g)" % (name, kld, js["kld_mean"]))
    top = sum(r["top1"] * r["scored"] for r in recs) / n
    check(close(top, js["top1"], 1e-9), "%s: record top-1 averages to the total" % name)
    rl = sum(r["ref_loss"] * r["scored"] for r in recs) / n
    check(close(rl, js["ref_loss"], 1e-9), "%s: record ref loss averages to the total" % name)
    check([r["index"] for r in recs] == list(range(len(recs))), "%s: record indices in order" % name)
    md = open(os.path.join(rdir, "report.md")).read()
    check("perplexity" in md and "%.4f" % js["ppl"] in md, "%s: report.md shows the perplexity" % name)
    # chunked LM head: same figures for any chunk size
    for chunk in ("7", "100"):
        jc = json.loads(wt.run_ok(base + ["--json", "--vocab-chunk", chunk]).stdout)
        for k in FIGS:
            if k in ("records", "tokens", "top1"):
                ok = jc[k] == js[k]
            elif k.startswith("kld") or k == "delta_ppl":
                ok = abs(jc[k] - js[k]) <= 2e-7 + 1e-4 * abs(js[k])
            else:
                ok = close(jc[k], js[k], 1e-6)
            check(ok, "%s: chunk %s %s %.17g vs %.17g" % (name, chunk, k, jc[k], js[k]))
    # a rerun replaces the report; a failing run writes nothing
    wt.run_ok(base + ["--report", rdir])
    check(json.load(open(os.path.join(rdir, "report.json")))["loss"] == js["loss"], "%s: rerun replaces" % name)

bad = os.path.join(tmp, "report_bad.jsonl")
with open(bad, "w") as f:
    f.write('{"text": "Lily"}\n{"nope": 1}\n')
bdir = os.path.join(tmp, "report_bad")
shutil.rmtree(bdir, ignore_errors=True)
p = wt.run(["eval", "--model", f32, "--data", bad, "--report", bdir])
check(p.returncode != 0 and p.stderr.startswith("werk: error:"), "bad data fails with one error line")
left = os.listdir(bdir) if os.path.isdir(bdir) else []
check(not left, "failing run leaves no report files (%s)" % left)
p = wt.run(["eval", "--model", f32, "--data", text, "--vocab-chunk", "0"])
check(p.returncode != 0 and "vocab-chunk" in p.stderr, "--vocab-chunk 0 is refused")

sys.exit(check.done())

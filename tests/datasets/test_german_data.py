#!/usr/bin/env python3
# tests/datasets/test_german_data.py - the German corpus built by scripts/fetch-data
#
# Skips when $WERK_CACHE/data/de-docs-{train,val}.jsonl are missing (run scripts/fetch-data).
# Otherwise: every line of both files is a {"text"} record of 100..2000 characters of UTF-8
# German (umlauts or ß, common German function words), the sizes are in the planned range,
# train, validation and the held-out de-docs.txt share no record or paragraph, SOURCES.txt
# names the packages and licences.
import json
import os
import re
import sys

cache = os.environ.get("WERK_CACHE") or os.path.expanduser("~/.cache/werk")
data = os.path.join(cache, "data")
train_path = os.path.join(data, "de-docs-train.jsonl")
val_path = os.path.join(data, "de-docs-val.jsonl")
text_path = os.path.join(data, "de-docs.txt")
sources_path = os.path.join(data, "SOURCES.txt")

failed = 0
checks = 0


def check(cond, what):
    global failed, checks
    checks += 1
    if not cond:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)


if not (os.path.exists(train_path) and os.path.exists(val_path)):
    print(f"SKIP: {train_path} / {val_path} missing (run scripts/fetch-data)")
    sys.exit(77)

GERMAN_WORDS = re.compile(r"\b(der|die|das|und|ist|nicht|mit|werden|wird|eine?|für|auf)\b")


def load(path):
    recs = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                rec = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                check(False, f"{path}:{i}: not a UTF-8 JSON line ({e})")
                continue
            ok = isinstance(rec, dict) and list(rec) == ["text"] and isinstance(rec["text"], str)
            check(ok, f"{path}:{i}: not a {{\"text\"}} record")
            if ok:
                recs.append(rec["text"])
    return recs


train = load(train_path)
val = load(val_path)
train_bytes = os.path.getsize(train_path)
val_bytes = os.path.getsize(val_path)
print(f"train: {len(train)} records, {train_bytes} bytes; val: {len(val)} records, {val_bytes} bytes")
check(1_000_000 <= train_bytes <= 2_500_000, f"train size {train_bytes} bytes")
check(80_000 <= val_bytes <= 300_000, f"val size {val_bytes} bytes")

for name, recs in (("train", train), ("val", val)):
    check(len(recs) > 50, f"{name}: {len(recs)} records")
    lengths = [len(r) for r in recs]
    check(all(100 <= n <= 2000 for n in lengths), f"{name}: record lengths {min(lengths)}..{max(lengths)}")
    text = "\n".join(recs)
    umlauts = sum(text.count(c) for c in "äöüÄÖÜß")
    words = len(GERMAN_WORDS.findall(text))
    n_words = len(text.split())
    check(umlauts > len(text) / 200, f"{name}: {umlauts} umlauts/ß in {len(text)} characters")
    check(words > n_words / 10, f"{name}: {words} German function words of {n_words}")
    check(len(set(recs)) == len(recs), f"{name}: repeated records")

train_set, val_set = set(train), set(val)
check(not (train_set & val_set), f"{len(train_set & val_set)} records in both train and val")


def paragraphs(recs):
    return {p for r in recs for p in r.split("\n\n")}


tp, vp = paragraphs(train), paragraphs(val)
check(not (tp & vp), f"{len(tp & vp)} paragraphs in both train and val")
if os.path.exists(text_path):
    with open(text_path, encoding="utf-8") as f:
        held = {p for p in f.read().split("\n\n") if p.strip()}
    size = os.path.getsize(text_path)
    print(f"de-docs.txt: {len(held)} paragraphs, {size} bytes")
    check(100_000 <= size <= 300_000, f"de-docs.txt size {size}")
    check(not (held & (tp | vp)), f"{len(held & (tp | vp))} held-out paragraphs also in train/val")
else:
    check(False, f"{text_path} missing")
if os.path.exists(sources_path):
    with open(sources_path, encoding="utf-8") as f:
        src = f.read()
    for needle in ("manpages-de", "debian-reference-de", "GPL-3+", "GPL-2+", "stamp:"):
        check(needle in src, f"SOURCES.txt lacks {needle}")
else:
    check(False, f"{sources_path} missing")

print(f"{checks} checks, {failed} failed")
sys.exit(1 if failed else 0)

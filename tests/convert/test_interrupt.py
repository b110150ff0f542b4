#!/usr/bin/env python3
# ctest-label: slow  (real models; left out of the sanitizer pass)
"""tests/convert/test_interrupt.py - an interrupted conversion leaves no partial output

Converts the fetched Gemma 3 270M (Q4_K_M) to f32 (about 1.1 GB written) and stops it
part way with SIGINT, then with SIGKILL: the output path must not exist afterwards, no
temporary may be left in the folder, and an existing output file must stay untouched.
"""
import os, signal, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import werk_test as wt  # noqa: E402

WERK = wt.WERK
MODEL = os.path.join(wt.CACHE, "models", "gemma-3-270m-q4_k_m.gguf")
TMP = os.path.join(wt.TMP, "interrupt")

wt.need_werk()
if not os.path.exists(MODEL):
    wt.skip(f"{MODEL} missing (run scripts/fetch-models)")
os.makedirs(TMP, exist_ok=True)
for f in os.listdir(TMP):
    os.unlink(os.path.join(TMP, f))

check = wt.Checker(show_passes=False)

out = os.path.join(TMP, "gemma-f32.gguf")

def interrupted_run(sig, delay):
    p = subprocess.Popen([WERK, "convert", MODEL, out, "--type", "f32"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    time.sleep(delay)
    still_running = p.poll() is None
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    return still_running, p.returncode, err.decode(errors="replace")

for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGKILL, "SIGKILL")):
    for delay in (0.3, 1.0):
        running, rc, err = interrupted_run(sig, delay)
        if not running:
            print(f"note: conversion finished before {name} at {delay}s; nothing to interrupt")
            os.unlink(out)
            continue
        check(not os.path.exists(out), f"{name} at {delay}s left {out}")
        left = os.listdir(TMP)
        check(not left, f"{name} at {delay}s left files: {left}")
        if sig == signal.SIGINT:
            check(rc == 130, f"SIGINT: exit status {rc}, want 130 ({err.strip()})")

# an existing output stays intact when a new conversion over it is interrupted
open(out, "wb").write(b"previous contents")
running, rc, err = interrupted_run(signal.SIGINT, 0.5)
check(open(out, "rb").read() == b"previous contents", "interrupted conversion damaged the existing output")
check(sorted(os.listdir(TMP)) == ["gemma-f32.gguf"], f"leftovers: {os.listdir(TMP)}")

sys.exit(check.done())

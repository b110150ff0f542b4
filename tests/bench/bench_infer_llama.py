#!/usr/bin/env python3
"""tests/bench/bench_infer_llama.py - llama.cpp's prompt / decode speed on bench_infer's files

    python3 tests/bench/bench_infer_llama.py [MODEL.gguf]... [--threads N]... [--prompt T] [--gen G] [--reps R]

Where llama-cpp-python is installed (never installed by this script: it compiles llama.cpp),
the same files bench_infer.c times by default (Gemma 3 270M f32, Q8_0 from
$WERK_CACHE/bench/, the fetched Q4_K_M) with 1 and 2 threads (n_threads = n_threads_batch):
a prompt of T random tokens in one batch (n_batch = n_ubatch = T; logits of the last token
only), then G single-token evals each feeding the greedy argmax. Wall clock, best of R runs
(default 2), a fresh KV cache each run. TSV on stdout:
    model threads pp_tok_s tg_tok_s
Put beside bench_infer's table: same files, same shapes, same machine.
"""
import os
import random
import sys
import time

try:
    import numpy as np
    import llama_cpp
except ImportError as e:
    print(f"SKIP: {e} (llama-cpp-python is not installed)")
    sys.exit(0)

CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
args = sys.argv[1:]
models, threads, T, G, reps = [], [], 512, 128, 2
i = 0
while i < len(args):
    a = args[i]
    if a == "--threads":
        threads.append(int(args[i + 1])); i += 2
    elif a == "--prompt":
        T = int(args[i + 1]); i += 2
    elif a == "--gen":
        G = int(args[i + 1]); i += 2
    elif a == "--reps":
        reps = int(args[i + 1]); i += 2
    else:
        models.append(a); i += 1
if not models:
    models = [os.path.join(CACHE, "models", "gemma-3-270m-f32.gguf"), os.path.join(CACHE, "bench", "gemma-3-270m-q8_0.gguf"),
              os.path.join(CACHE, "models", "gemma-3-270m-q4_k_m.gguf")]
threads = threads or [1, 2]


def run_once(llm, prompt):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    nv = llm.n_vocab()
    for _ in range(G):
        # logits of the last evaluated token (the only output without logits_all)
        last = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), shape=(nv,))
        llm.eval([int(np.argmax(last))])
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


print("model\tthreads\tpp_tok_s\ttg_tok_s")
for path in models:
    if not os.path.exists(path):
        print(f"# {path} missing (run bench_infer first: it makes the Q8_0)", file=sys.stderr)
        continue
    for n in threads:
        llm = llama_cpp.Llama(model_path=path, n_ctx=T + G + 8, n_batch=T, n_ubatch=T, n_threads=n,
                              n_threads_batch=n, logits_all=False, verbose=False)
        rnd = random.Random(1)
        prompt = [rnd.randrange(2, min(llm.n_vocab(), 30002)) for _ in range(T)]
        best_pp, best_tg = 1e30, 1e30
        for _ in range(reps):
            pp, tg = run_once(llm, prompt)
            best_pp, best_tg = min(best_pp, pp), min(best_tg, tg)
        print(f"{os.path.basename(path)}\t{n}\t{T / best_pp:.1f}\t{G / best_tg:.2f}", flush=True)
        del llm

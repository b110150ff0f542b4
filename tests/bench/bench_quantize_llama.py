#!/usr/bin/env python3
"""tests/bench/bench_quantize_llama.py - `werk quantize` against llama.cpp's own quantizer

    WERK_BIN=build/werk python3 tests/bench/bench_quantize_llama.py [GEMMA_F32.gguf] [--reps N]

Where llama-cpp-python is installed (never installed by this script: it compiles llama.cpp
for many minutes), the Gemma 3 270M f32 checkpoint is quantized to Q4_K_M and Q8_0 with 1
and 2 threads by llama.cpp (llama_model_quantize) and by `werk quantize --no-measure`, file
to file, each timed N times (median wall clock). Both outputs are then compared: tensor
types (they must agree tensor for tensor) and the relative RMSE against the f32 weights
over all converted tensors (gguf's dequantizers). TSV on stdout:
    op shape variant threads ms_median MB/s ratio_vs_llama rel_rmse
MB/s counts the f32 input file. bench_quantize.c measures the kernels alone against
werk's implementation of ggml's reference algorithms; this one is the end-to-end view.
"""
import os, statistics, subprocess, sys, time

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize
except ImportError as e:
    print(f"SKIP: python module missing: {e}"); sys.exit(0)
try:
    import llama_cpp
except ImportError:
    print("SKIP: llama-cpp-python is not installed (pip install llama-cpp-python; it builds llama.cpp)")
    sys.exit(0)

WERK = os.environ.get("WERK_BIN", "build/werk")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
args = [a for a in sys.argv[1:]]
reps = 3
if "--reps" in args:
    i = args.index("--reps")
    reps = int(args[i + 1])
    del args[i:i + 2]
F32 = args[0] if args else os.path.join(CACHE, "models", "gemma-3-270m-f32.gguf")
if not os.path.exists(F32):
    print(f"SKIP: {F32} missing (werk convert gemma-3-270m-q4_k_m.gguf {F32} --type f32)"); sys.exit(0)
OUT = os.path.dirname(os.path.abspath(F32))
FTYPES = {"Q4_K_M": 15, "Q8_0": 7}


def llama_quantize(src, dst, ftype, threads):
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p)
    assert rc == 0, f"llama_model_quantize failed ({rc})"


def werk_quantize(src, dst, preset, threads):
    subprocess.run([WERK, "-q", "quantize", src, dst, "--type", preset, "--threads", str(threads), "--no-measure"],
                   check=True, stdout=subprocess.DEVNULL)


def timed(fn, *a):
    ms = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(*a)
        ms.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ms)


def compare(src_path, a_path, b_path):
    """Types of a and b tensor for tensor; rel RMSE of each against the f32 source."""
    src, a, b = (gguf.GGUFReader(p) for p in (src_path, a_path, b_path))
    st = {t.name: t for t in src.tensors}
    bt = {t.name: t for t in b.tensors}
    diff, err = [], [[0.0, 0.0], [0.0, 0.0]]
    for ta in a.tensors:
        tb = bt[ta.name]
        if ta.tensor_type != tb.tensor_type:
            diff.append((ta.name, ta.tensor_type.name, tb.tensor_type.name))
        if ta.tensor_type == gguf.GGMLQuantizationType.F32:
            continue
        x = np.asarray(st[ta.name].data, dtype=np.float64).reshape(-1)
        for k, t in enumerate((ta, tb)):
            d = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
            err[k][0] += float(((d - x) ** 2).sum())
            err[k][1] += float((x ** 2).sum())
    return diff, [np.sqrt(e / s) for e, s in err]


mb = os.path.getsize(F32) / 1e6
print("op\tshape\tvariant\tthreads\tms_median\tMB/s\tratio_vs_llama\trel_rmse", flush=True)
for preset, ftype in FTYPES.items():
    for threads in (1, 2):
        lo = os.path.join(OUT, f"bench-llama-{preset}.gguf")
        wo = os.path.join(OUT, f"bench-werk-{preset}.gguf")
        ms_l = timed(llama_quantize, F32, lo, ftype, threads)
        ms_w = timed(werk_quantize, F32, wo, preset, threads)
        diff, (rmse_l, rmse_w) = compare(F32, lo, wo)
        if diff:
            print(f"# {preset}: {len(diff)} tensors differ in type, e.g. {diff[:3]}", flush=True)
        shape = f"gemma-3-270m:{preset}"
        print(f"quantize\t{shape}\tllama.cpp\t{threads}\t{ms_l:.0f}\t{mb / ms_l * 1e3:.1f}\t1.00\t{rmse_l:.6f}")
        print(f"quantize\t{shape}\twerk\t{threads}\t{ms_w:.0f}\t{mb / ms_w * 1e3:.1f}\t{ms_l / ms_w:.2f}\t{rmse_w:.6f}",
              flush=True)
        os.unlink(lo)
        os.unlink(wo)

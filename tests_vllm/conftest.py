"""Fixtures for the vLLM tests (run in the environment scripts/setup-vllm.sh builds): the
converted SmolLM2 folder, the grammars, chat prompts, and engines started once per module."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from pathlib import Path

import pytest

GRAMMARS = Path(__file__).resolve().parent.parent / "grammars"
ENUM_GRAMMAR = 'start: "red" | "green" | "blue" | "yellow"\n'
# engine settings for a 2-core CPU: a small model, eager mode, a few GiB of KV cache at most
ENGINE = {"dtype": "bfloat16", "max_model_len": 1024, "enforce_eager": True, "gpu_memory_utilization": 0.2,
          "seed": 0}


@pytest.fixture(scope="session")
def folder() -> str:
    from gcd.hf import model_folder

    return str(model_folder("smollm2", progress=True))


@pytest.fixture(scope="session")
def grammars() -> dict[str, str]:
    return {"json": (GRAMMARS / "json.lark").read_text(), "sql": (GRAMMARS / "sql.lark").read_text(),
            "enum": ENUM_GRAMMAR}


@pytest.fixture(scope="session")
def chat(folder: str):
    from transformers import AutoTokenizer

    from gcd.hf import chat_prompt

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return lambda text: chat_prompt(tokenizer, text)


def shutdown(llm) -> None:
    """Stop an offline engine's processes now (the next module starts its own)."""
    llm.llm_engine.engine_core.shutdown()

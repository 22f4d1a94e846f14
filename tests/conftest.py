"""Shared fixtures, loaded once per session: the built-in tokenizers, their vocabularies, the
JSON and SQL grammars compiled for SmolLM2, and the SmolLM2 model."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import TYPE_CHECKING

import pytest

import gcd
from gcd.errors import GCDError
from gcd.vocab import Vocabulary

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

GRAMMARS = Path(__file__).resolve().parent.parent / "grammars"


def missing_model(error: GCDError) -> None:
    """A built-in model package is not installed: fail, since scripts/setup.sh installs them;
    skip only where ``GCD_SKIP_MISSING_MODELS=1`` says that is expected."""
    if os.environ.get("GCD_SKIP_MISSING_MODELS") == "1":
        pytest.skip(str(error))
    pytest.fail(f"{error} (set GCD_SKIP_MISSING_MODELS=1 to skip the tests that need it)")


def _tokenizer(name: str) -> PreTrainedTokenizerBase:
    from gcd.hf import load_tokenizer

    try:
        return load_tokenizer(name)
    except GCDError as e:  # the model package is not installed; the message has the pip command
        missing_model(e)


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    return _tokenizer("smollm2")


@pytest.fixture(scope="session")
def gemma3_tokenizer() -> PreTrainedTokenizerBase:
    return _tokenizer("gemma3")


@pytest.fixture(scope="session")
def smollm2_vocab(smollm2_tokenizer: PreTrainedTokenizerBase) -> Vocabulary:
    return Vocabulary.from_hf(smollm2_tokenizer)


@pytest.fixture(scope="session")
def gemma3_vocab(gemma3_tokenizer: PreTrainedTokenizerBase) -> Vocabulary:
    return Vocabulary.from_hf(gemma3_tokenizer)


@pytest.fixture(scope="session")
def json_grammar() -> gcd.Grammar:
    return gcd.Grammar.from_file(GRAMMARS / "json.lark")


@pytest.fixture(scope="session")
def sql_grammar() -> gcd.Grammar:
    return gcd.Grammar.from_file(GRAMMARS / "sql.lark")


@pytest.fixture(scope="session")
def json_compiled(smollm2_vocab: gcd.Vocabulary, json_grammar: gcd.Grammar) -> gcd.CompiledGrammar:
    return gcd.GrammarCompiler(smollm2_vocab).compile(json_grammar)


@pytest.fixture(scope="session")
def sql_compiled(smollm2_vocab: gcd.Vocabulary, sql_grammar: gcd.Grammar) -> gcd.CompiledGrammar:
    return gcd.GrammarCompiler(smollm2_vocab).compile(sql_grammar)


@pytest.fixture(scope="session")
def smollm2():
    from gcd.hf import load_model

    try:
        return load_model("smollm2")
    except GCDError as e:  # the model package is missing; the message says how to install it
        missing_model(e)

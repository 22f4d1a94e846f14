"""Shared fixtures: the built-in tokenizers and their vocabularies, loaded once per session."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import TYPE_CHECKING

import pytest

from gcd.errors import GCDError
from gcd.vocab import Vocabulary

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


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

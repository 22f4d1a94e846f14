"""gcd inside vLLM's v1 engine: ``GrammarLogitsProcessor``, a batch-level logits processor.

Offline::

    llm = LLM(model=folder, logits_processors=[gcd.vllm.GrammarLogitsProcessor])
    llm.generate(prompt, SamplingParams(extra_args={"gcd_grammar": lark_text}))

Served: ``vllm serve FOLDER --logits-processors gcd.vllm:GrammarLogitsProcessor``, with the
same keys in the OpenAI request's ``vllm_xargs``. Per-request keys (``extra_args``):

- ``gcd_grammar``: Lark grammar text, or ``gcd_json_schema``: a JSON Schema (a dict, or its
  JSON text, which is what ``vllm_xargs`` can carry); at most one of the two;
- ``gcd_max_trailing`` (optional): ``%ignore``-only tokens allowed after the text is a word
  before only EOS is (default 2, ``-1`` for no bound; see ``gcd.Matcher``).

Requests without these keys are left untouched. This module imports vLLM; ``import gcd`` does not.

``GCD_VLLM_STATS=FILE`` (environment of the engine): each time its batch empties, the
processor writes the time it has spent so far as JSON to FILE (``steps``, ``rows``,
``seconds`` in its calls, ``compile_seconds`` compiling grammars) — the per-step cost gcd
adds, which ``bench/vllm_throughput.py`` reports.
"""
from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from vllm.exceptions import VLLMValidationError
from vllm.logger import init_logger
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from gcd.compiler import CompiledGrammar, GrammarCompiler
from gcd.errors import GCDError, one_line
from gcd.grammar import Grammar
from gcd.masks import apply_token_bitmask_
from gcd.matcher import Matcher
from gcd.sampling import DEFAULT_MAX_TRAILING
from gcd.vocab import Vocabulary

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

__all__ = ["GRAMMAR_KEY", "MAX_TRAILING_KEY", "SCHEMA_KEY", "GrammarLogitsProcessor", "request_grammar",
           "request_source"]

GRAMMAR_KEY = "gcd_grammar"
SCHEMA_KEY = "gcd_json_schema"
MAX_TRAILING_KEY = "gcd_max_trailing"
COMPILED_CACHE_SIZE = 32   # compiled grammars kept by one processor (least recently used evicted)

logger = init_logger(__name__)


def request_source(params: SamplingParams) -> tuple[str, str, int | None] | None:
    """(key, text, max_trailing) of the grammar a request asks for in ``extra_args`` (key
    ``gcd_grammar`` with Lark text, or ``gcd_json_schema`` with the schema as JSON text), or
    None when it asks for none. Raises ``ValueError`` for malformed keys; the text itself is
    checked by ``request_grammar``."""
    args = params.extra_args or {}
    if GRAMMAR_KEY in args and SCHEMA_KEY in args:
        raise ValueError(f"pass {GRAMMAR_KEY} or {SCHEMA_KEY}, not both")
    if GRAMMAR_KEY in args:
        key, text = GRAMMAR_KEY, args[GRAMMAR_KEY]
        if not isinstance(text, str):
            raise ValueError(f"{GRAMMAR_KEY} must be Lark grammar text, not {type(text).__name__}")
    elif SCHEMA_KEY in args:
        key, schema = SCHEMA_KEY, args[SCHEMA_KEY]
        text = schema if isinstance(schema, str) else json.dumps(schema, sort_keys=True)
    else:
        if MAX_TRAILING_KEY in args:
            raise ValueError(f"{MAX_TRAILING_KEY} needs {GRAMMAR_KEY} or {SCHEMA_KEY}")
        return None
    trailing = args.get(MAX_TRAILING_KEY, DEFAULT_MAX_TRAILING)
    if isinstance(trailing, bool) or not isinstance(trailing, int) or trailing < -1:
        raise ValueError(f"{MAX_TRAILING_KEY} must be an int >= 0 (or -1: no bound), not {trailing!r}")
    return key, text, None if trailing == -1 else trailing


def request_grammar(key: str, text: str) -> Grammar:
    """The grammar of a ``request_source``: raises ``GCDError`` (or ``ValueError`` for a
    schema that is not JSON) when the text is not a grammar gcd can use."""
    if key == GRAMMAR_KEY:
        return Grammar(text)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{SCHEMA_KEY} is not JSON: {e}") from e
    return Grammar.from_json_schema(schema)


@dataclass
class _Request:
    """One constrained request in the persistent batch."""

    matcher: Matcher | None           # None: its grammar failed to compile; only EOS is allowed
    output_ids: list[int]             # vLLM's live list of the request's output tokens
    consumed: int = 0                 # how many of them the matcher has consumed
    dead: bool = False                # a token the mask did not allow was generated: only EOS


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks each constrained request's logits to the tokens its grammar allows next (EOS
    exactly when the text is a word). All rows of a step are written into one int32 bitmask
    and applied in one op on the logits' device. Compiled grammars are shared by requests
    (keyed by grammar text; the vocabulary is the engine's tokenizer's) and cached on disk
    by ``GrammarCompiler``. A request that cannot continue (its grammar failed to compile in
    the engine, or a token outside its mask was forced on it) gets only EOS, never an
    unconstrained token.
    """

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        """Reject a bad grammar, schema or key before the request runs (HTTP 400 when served)."""
        try:
            source = request_source(sampling_params)
        except ValueError as e:
            raise VLLMValidationError(f"gcd: {one_line(e)}") from e
        if source is None:
            return
        error = _grammar_error(*source[:2])
        if error is not None:
            raise VLLMValidationError(error)
        if sampling_params.ignore_eos:
            raise VLLMValidationError("gcd: a grammar-constrained request cannot set ignore_eos "
                                      "(after a complete word only EOS is allowed)")
        if sampling_params.min_tokens:
            raise VLLMValidationError("gcd: a grammar-constrained request cannot set min_tokens "
                                      "(it would forbid EOS when the grammar allows nothing else)")
        if getattr(sampling_params, "structured_outputs", None) is not None:
            raise VLLMValidationError("gcd: a request takes either gcd's grammar or vLLM's structured_outputs")

    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        from vllm.tokenizers import cached_tokenizer_from_config

        model_config = vllm_config.model_config
        tokenizer = cached_tokenizer_from_config(model_config)
        self.vocab = Vocabulary.from_hf(tokenizer, eos_token_ids=_stop_ids(model_config, tokenizer))
        self.compiler = GrammarCompiler(self.vocab)
        self.width = (model_config.get_vocab_size() + 31) // 32
        max_rows = vllm_config.scheduler_config.max_num_seqs
        self._bitmask = torch.full((max_rows, self.width), -1, dtype=torch.int32)
        eos_only = np.zeros(self.width, dtype=np.uint32)
        for e in self.vocab.eos_token_ids:
            eos_only[e >> 5] |= np.uint32(1 << (e & 31))
        self._eos_only = eos_only.view(np.int32)
        self._compiled: OrderedDict[tuple[str, str], CompiledGrammar | Exception] = OrderedDict()
        self._rows: dict[int, _Request] = {}
        self._stats_file = os.environ.get("GCD_VLLM_STATS")
        # steps: apply calls with constrained rows; seconds: in update_state and apply, less compiling
        self.stats = {"steps": 0, "rows": 0, "seconds": 0.0, "compile_seconds": 0.0}

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        start = time.perf_counter()
        if batch_update is not None:
            for index in batch_update.removed:
                self._rows.pop(index, None)
            for index, params, _prompt, output_ids in batch_update.added:
                self._rows.pop(index, None)
                source = request_source(params)   # validated already: cannot raise here
                if source is not None:
                    self._rows[index] = _Request(self._matcher(*source), output_ids)
            for a, b, direction in batch_update.moved:
                ra, rb = self._rows.pop(a, None), self._rows.pop(b, None)
                if ra is not None:
                    self._rows[b] = ra
                if direction == MoveDirectionality.SWAP and rb is not None:
                    self._rows[a] = rb
        self.stats["seconds"] += time.perf_counter() - start
        if batch_update is not None and not self._rows and self._stats_file and self.stats["steps"]:
            tmp = f"{self._stats_file}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(self.stats, f)
            os.replace(tmp, self._stats_file)   # readers never see half a file

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._rows:
            return logits
        batch = logits.shape[0]
        rows = sorted(i for i in self._rows if i < batch)
        if not rows:
            return logits
        start = time.perf_counter()
        bitmask = self._bitmask
        if bitmask.shape[0] < batch:   # more rows than max_num_seqs (speculative tokens): grow once
            bitmask = self._bitmask = torch.full((batch, self.width), -1, dtype=torch.int32)
        target = bitmask.numpy()
        for i in rows:
            request = self._rows[i]
            # the tokens are read here, not in update_state: under async scheduling vLLM
            # writes the last sampled token over its placeholder (-1) only just before apply
            _advance(request)
            if request.matcher is None or request.dead:
                target[i] = self._eos_only
            else:
                request.matcher.fill_bitmask(bitmask, i)
        if len(rows) == batch:
            apply_token_bitmask_(logits, bitmask[:batch])
        else:
            index = torch.tensor(rows, device=logits.device)
            sub = logits.index_select(0, index)
            apply_token_bitmask_(sub, bitmask[rows])
            logits.index_copy_(0, index, sub)
        for i in rows:   # leave unconstrained rows' words all ones for the next step
            target[i] = -1
        self.stats["steps"] += 1
        self.stats["rows"] += len(rows)
        self.stats["seconds"] += time.perf_counter() - start
        return logits

    def _matcher(self, key: str, text: str, max_trailing: int | None) -> Matcher | None:
        """A fresh matcher for the grammar; None when it cannot be compiled (logged once)."""
        compiled = self._compiled.get((key, text))
        if compiled is None:
            start = time.perf_counter()
            try:
                compiled = self.compiler.compile(request_grammar(key, text))
            except (GCDError, ValueError) as e:
                logger.error("gcd: cannot compile a request's grammar: %s", one_line(e))
                compiled = e
            elapsed = time.perf_counter() - start
            self.stats["compile_seconds"] += elapsed
            self.stats["seconds"] -= elapsed   # update_state adds it back
            self._compiled[key, text] = compiled
            if len(self._compiled) > COMPILED_CACHE_SIZE:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end((key, text))
        return compiled.matcher(max_trailing=max_trailing) if isinstance(compiled, CompiledGrammar) else None


@lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _grammar_error(key: str, text: str) -> str | None:
    """gcd's one-line error for a request's grammar text, or None if it is usable (memoised:
    the server's front end checks every request)."""
    try:
        request_grammar(key, text)
    except (GCDError, ValueError) as e:
        return f"gcd: {one_line(e)}"
    return None


def _advance(request: _Request) -> None:
    """Feed the matcher the request's new output tokens."""
    ids = request.output_ids
    if request.matcher is None or request.dead:
        request.consumed = len(ids)
        return
    while request.consumed < len(ids):
        token = ids[request.consumed]
        if token < 0:   # a placeholder for a token still being sampled (async scheduling)
            return
        if not request.matcher.consume_token(token):
            logger.warning("gcd: token %d was not allowed by the request's grammar; only EOS from now on", token)
            request.dead = True
            request.consumed = len(ids)
            return
        request.consumed += 1


def _stop_ids(model_config: Any, tokenizer: Any) -> list[int]:
    """The tokens vLLM stops a request on by default: the tokenizer's EOS and the generation
    config's ``eos_token_id``s (gcd allows them exactly when the text is a word)."""
    ids = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    config = model_config.try_get_generation_config() or {}
    extra = config.get("eos_token_id")
    ids += [extra] if isinstance(extra, int) else list(extra or [])
    return list(dict.fromkeys(ids))

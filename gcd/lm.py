"""Language models as the samplers see them: next-token log-probabilities after a prompt.

Any object with ``vocab_size`` and ``logprobs(token_ids)`` is a ``LanguageModel`` (no
subclassing); ``logprobs_batch(continuations)`` is optional and used when present.
``HFLanguageModel`` wraps a Hugging Face causal LM, keeping the KV cache of the prompt and of
the rows it evaluated last, so that extending every row by one token (what the samplers do at
each step) costs one batched forward pass of one token per row.
"""
from __future__ import annotations

import copy
import inspect
from typing import Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class LanguageModel(Protocol):
    """``vocab_size`` and ``logprobs(token_ids) -> Tensor[vocab_size]``: the log-probabilities
    of the next token after the prompt followed by ``token_ids``. An optional
    ``logprobs_batch(list_of_continuations) -> Tensor[B, vocab_size]`` evaluates many at once."""

    vocab_size: int

    def logprobs(self, token_ids: Sequence[int]) -> torch.Tensor: ...


def logprobs_batch(lm: LanguageModel, continuations: Sequence[Sequence[int]]) -> torch.Tensor:
    """``[B, vocab_size]`` log-probabilities: ``lm.logprobs_batch`` if it has one, else row by row."""
    batch = getattr(lm, "logprobs_batch", None)
    if batch is not None:
        return batch(continuations)
    return torch.stack([torch.as_tensor(lm.logprobs(c)) for c in continuations])


class HFLanguageModel:
    """A Hugging Face causal LM after a fixed ``prompt`` (text, tokenized without special
    tokens, or token ids). The prompt's KV cache is computed once; the rows of the last call
    are kept with their cache, so a call whose continuations each extend one of them by a
    token runs one forward pass of ``[B, 1]`` tokens (rows are picked with an index, so
    resampled or dropped rows cost nothing). Other calls start from the prompt's cache, one
    batched pass per continuation length. Log-probabilities are float32 on the model's device.
    """

    def __init__(self, model: torch.nn.Module, tokenizer=None, prompt: str | Sequence[int] = "") -> None:
        if isinstance(prompt, str):
            if tokenizer is None:
                raise ValueError("a text prompt needs the tokenizer")
            prompt = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        prompt = [int(t) for t in prompt]
        if not prompt:
            bos = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
            if bos is None:
                raise ValueError("the prompt is empty and the tokenizer has no BOS token to start from")
            prompt = [bos]
        self.model = model
        self.device = next(model.parameters()).device
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.prompt_ids = prompt
        self.forward_passes = 0
        with torch.no_grad():
            out = model(torch.tensor([prompt], device=self.device), use_cache=True)
        self.forward_passes += 1
        self._prompt_cache = _cache_of(out)
        # transformers 5.24 renamed the forward's ``past_key_values`` argument to ``cache``
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._prompt_logprobs = torch.log_softmax(out.logits[0, -1].float(), -1)
        self._rows: list[tuple[int, ...]] = []     # continuations held in self._cache, by row
        self._cache = None
        self._logprobs: torch.Tensor | None = None   # [len(rows), V]

    def logprobs(self, token_ids: Sequence[int]) -> torch.Tensor:
        return self.logprobs_batch([token_ids])[0]

    def logprobs_batch(self, continuations: Sequence[Sequence[int]]) -> torch.Tensor:
        conts = [tuple(int(t) for t in c) for c in continuations]
        if not conts:
            return torch.empty(0, self.vocab_size, device=self.device)
        row = {c: i for i, c in enumerate(self._rows)}
        if all(c in row for c in conts):
            return self._logprobs[[row[c] for c in conts]]
        if all(c and c[:-1] in row for c in conts):
            cache = self._cache
            cache.reorder_cache(torch.tensor([row[c[:-1]] for c in conts], device=self.device))
            return self._forward(conts, cache, [[c[-1]] for c in conts])
        out = torch.empty(len(conts), self.vocab_size, device=self.device)
        by_length: dict[int, list[int]] = {}
        for i, c in enumerate(conts):
            by_length.setdefault(len(c), []).append(i)
        for length, idx in by_length.items():
            if length == 0:
                out[idx] = self._prompt_logprobs
                continue
            cache = copy.deepcopy(self._prompt_cache)
            cache.batch_repeat_interleave(len(idx))
            out[idx] = self._forward([conts[i] for i in idx], cache, [list(conts[i]) for i in idx])
        return out

    def _forward(self, conts: list[tuple[int, ...]], cache, new: list[list[int]]) -> torch.Tensor:
        """Log-probabilities after ``new`` tokens on ``cache``; keeps rows and cache for the next call."""
        with torch.no_grad():
            out = self.model(torch.tensor(new, device=self.device), use_cache=True, **{self._cache_arg: cache})
        self.forward_passes += 1
        self._rows, self._cache = conts, _cache_of(out)
        self._logprobs = torch.log_softmax(out.logits[:, -1].float(), -1)
        return self._logprobs


def _cache_of(out):
    """The KV cache of a forward pass's output (``cache`` or, before 5.24, ``past_key_values``)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values

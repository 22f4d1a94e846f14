"""``generate``: prompts -> grammar-constrained completions with a Hugging Face causal LM,
through ``model.generate`` and ``GrammarLogitsProcessor`` (the ``mask`` method)."""
from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

from gcd.compiler import CompiledGrammar
from gcd.hf import chat_prompt
from gcd.processor import GrammarLogitsProcessor
from gcd.sampling import DEFAULT_MAX_TRAILING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["Completion", "generate"]


@dataclass(frozen=True)
class Completion:
    """One generated text. ``complete``: it is a word of the grammar (``None`` when unconstrained);
    ``stopped``: the model ended it with EOS rather than running out of tokens."""

    prompt: str
    text: str
    token_ids: list[int]
    complete: bool | None
    stopped: bool


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, compiled: CompiledGrammar | None,
             prompts: Sequence[str], *, max_new_tokens: int = 256, temperature: float = 0.0,
             num_samples: int = 1, num_beams: int = 1, chat: bool = True, progress: bool = False,
             stream: Callable[[str], None] | None = None,
             max_trailing: int | None = DEFAULT_MAX_TRAILING) -> list[Completion]:
    """``num_samples`` completions per prompt (in prompt order) in one batch.

    ``temperature`` 0 is greedy search (beam search with ``num_beams`` > 1), otherwise sampling;
    seed ``torch.manual_seed`` for reproducible samples. ``compiled=None`` generates
    unconstrained. ``chat`` wraps each prompt in the tokenizer's chat template, if it has one.
    ``progress`` shows a progress bar (one tick per generated token) on stderr. ``stream``
    (one prompt, one sample, no beams) is called with the text as it is generated, piece by
    piece, up to EOS. ``max_trailing`` bounds ``%ignore``-only tokens after the text is a
    word (then EOS is forced; ``None``: no bound), see ``gcd.Matcher``.
    """
    if stream is not None and (len(prompts) != 1 or num_samples != 1 or num_beams != 1):
        raise ValueError("stream needs one prompt, one sample and no beam search")
    from tqdm.auto import tqdm

    eos = sorted(set(compiled.vocab.eos_token_ids if compiled else ())
                 | set(_ids(model.generation_config.eos_token_id)) | set(_ids(tokenizer.eos_token_id)))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = eos[0]
    templated = chat and bool(getattr(tokenizer, "chat_template", None))  # the template has the BOS
    texts = [chat_prompt(tokenizer, p) for p in prompts] if templated else list(prompts)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not templated)
        inputs = inputs.to(model.device)
    finally:
        tokenizer.padding_side = side
    processors: list[LogitsProcessor] = [GrammarLogitsProcessor(compiled, max_trailing=max_trailing)] if compiled is not None else []
    sampling = temperature > 0
    streamer = _Streamer(stream, compiled, tokenizer, set(eos)) if stream is not None else None
    with tqdm(total=max_new_tokens, desc="gcd: generating", unit="tok", disable=not progress or streamer is not None,
              leave=False) as bar:
        out = model.generate(
            **inputs, logits_processor=[*processors, _Tick(bar)], max_new_tokens=max_new_tokens,
            do_sample=sampling, temperature=temperature if sampling else None, num_beams=num_beams,
            num_return_sequences=num_samples, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
            streamer=streamer)
    new = out[:, inputs["input_ids"].shape[1]:].tolist()
    return [_completion(prompts[row // num_samples], ids, tokenizer, compiled, set(eos))
            for row, ids in enumerate(new)]


def _ids(value: int | Sequence[int] | None) -> list[int]:
    return [] if value is None else [value] if isinstance(value, int) else list(value)


def _completion(prompt: str, ids: list[int], tokenizer: PreTrainedTokenizerBase,
                compiled: CompiledGrammar | None, eos: set[int]) -> Completion:
    """The tokens up to the first EOS; the text from the tokens' bytes when constrained (exact)."""
    end = next((i for i, t in enumerate(ids) if t in eos), None)
    kept = ids if end is None else ids[: end + 1]
    body = kept if end is None else kept[:-1]
    if compiled is None:
        return Completion(prompt, tokenizer.decode(body, skip_special_tokens=True), kept, None, end is not None)
    matcher = compiled.matcher()
    complete = all(matcher.consume_token(t) for t in body) and matcher.is_accepting()
    text = b"".join(compiled.vocab.token_bytes(t) for t in body).decode("utf-8", errors="replace")
    return Completion(prompt, text, kept, complete, end is not None)


class _Streamer:
    """A ``model.generate`` streamer: passes the generated text on as it comes, decoded from
    the tokens' bytes (a character split across tokens waits for its last byte), up to EOS."""

    def __init__(self, write: Callable[[str], None], compiled: CompiledGrammar | None,
                 tokenizer: PreTrainedTokenizerBase, eos: set[int]) -> None:
        self.write, self.compiled, self.tokenizer, self.eos = write, compiled, tokenizer, eos
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.prompt_seen = self.done = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:   # the first call passes the prompt
            self.prompt_seen = True
            return
        for t in value.reshape(-1).tolist():
            if self.done or t in self.eos:
                self.done = True
                return
            data = (self.compiled.vocab.token_bytes(t) if self.compiled is not None
                    else self.tokenizer.decode([t], skip_special_tokens=True).encode("utf-8"))
            text = self.decoder.decode(data)
            if text:
                self.write(text)

    def end(self) -> None:
        text = self.decoder.decode(b"", final=True)
        if text and not self.done:
            self.write(text)


class _Tick(LogitsProcessor):
    """Advances a progress bar once per generation step; leaves the scores alone."""

    def __init__(self, bar) -> None:
        self.bar = bar

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.bar.update()
        return scores

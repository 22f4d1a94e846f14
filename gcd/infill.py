"""``gcd.infill``: fill the holes of a template with a language model, left to right, so that
the whole text is a word of the grammar.

The template's fixed text is forced (its tokens are fed to the model as they are: greedy
longest-match over the vocabulary's bytes); inside a hole, the model's candidate tokens are
tried in order of probability (greedy) or in Gumbel order (sampling, as AWRS draws), and a
token is taken only if the text so far, the token and the rest of the template with its
holes can still be completed (one incremental ``gcd.Canvas``: a cell per fixed chunk and per
token a hole may take, so a check costs about the work that reads the cell it tries). A hole
closes when the model's next candidate reaches into the fixed text that follows it (the
token's text is the end of the hole's text and then the beginning of the fixed text; EOS for
a hole at the end) and the text is still completable that way; then that fixed text is
forced. Masks of the whole vocabulary are never computed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from gcd.errors import GCDError
from gcd.grammar import Grammar
from gcd.holes import BudgetExceeded, Canvas, can_complete
from gcd.lm import LanguageModel
from gcd.vocab import Vocabulary

HOLE = "{}"


@dataclass(frozen=True)
class Infill:
    """The template with its holes filled (``text``; if not ``finished``, the text up to where
    it stopped), what went into each hole (``fills``), whether every hole closed and the text
    is a word (``finished``), the completion checks made and the tokens generated for holes."""
    text: str
    fills: list[str]
    finished: bool
    checks: int
    tokens: int


def parse_template(template: str | list) -> list:
    """A template as chunks: ``"SELECT {} FROM t"`` -> ``["SELECT ", None, " FROM t"]`` (``{{``
    and ``}}`` stand for braces); a list of str/None is taken as it is. Adjacent holes are one."""
    if isinstance(template, list):
        parts = template
    else:
        parts = []
        for i, part in enumerate(re.split(r"(?<!\{)\{\}(?!\})", template)):
            if i:
                parts.append(None)
            if part:
                parts.append(part.replace("{{", "{").replace("}}", "}"))
    out: list = []
    for part in parts:
        if part is None and out and out[-1] is None:
            continue
        if part is not None and out and out[-1] is not None:
            out[-1] += part
            continue
        out.append(part)
    return out


def infill(lm: LanguageModel, vocab: Vocabulary, grammar: Grammar, template: str | list, *,
           max_new_tokens: int = 32, temperature: float = 0.0, seed: int = 0, max_candidates: int = 32) -> Infill:
    """Fill ``template``'s holes (``{}``, or ``None`` in a list of chunks) with ``lm`` (whose
    prompt is whatever comes before the template's text), at most ``max_new_tokens`` tokens a
    hole, testing at most ``max_candidates`` tokens a step. ``temperature`` 0 is greedy."""
    chunks = parse_template(template)
    if not can_complete(grammar, chunks):
        raise GCDError("the template cannot be completed to a word of the grammar")
    rng = np.random.default_rng(seed)
    encoder = _Encoder(vocab)
    eos = vocab.eos_token_ids[0]
    ids: list[int] = []
    text = b""
    fills: list[str] = []
    checks = tokens = 0

    def force(chunk: str) -> None:
        nonlocal text
        ids.extend(encoder.encode(chunk.encode("utf-8")))
        text += chunk.encode("utf-8")

    # the canvas: each chunk a cell; a hole as max_new_tokens cells for its tokens (b"" until
    # taken), then the hole itself (None while open, b"" once closed)
    slots, cells = [], []
    for chunk in chunks:
        if chunk is None:
            slots.append(len(cells))
            cells += [b""] * max_new_tokens + [None]
        else:
            cells.append(chunk.encode("utf-8"))
    canvas = Canvas(grammar, cells)

    def completable(changes: dict) -> bool:
        """Whether the canvas with ``changes`` (cell -> text or hole) can be completed; the
        canvas is left as it was."""
        nonlocal checks
        checks += 1
        old = {k: canvas.cells[k] for k in changes}
        for k, v in changes.items():
            canvas.set(k, v)
        try:
            return canvas.can_complete()
        except BudgetExceeded:   # unknown: not taken; the final text is verified anyway
            return False
        finally:
            for k, v in old.items():
                canvas.set(k, v)

    i = 0
    holes = iter(slots)
    while i < len(chunks):
        if chunks[i] is not None:
            force(chunks[i])
            i += 1
            continue
        after = chunks[i + 1] if i + 1 < len(chunks) else None       # the fixed text after this hole
        fixed = after.encode("utf-8") if after else b""
        fill = b""
        closed = False
        first = next(holes)
        hole = first + max_new_tokens
        for n in range(max_new_tokens):
            cell = first + n
            logp = lm.logprobs(ids).detach().to("cpu", torch.float64).numpy()
            taken = None
            for t in _order(logp, temperature, rng, max_candidates):
                piece = vocab.token_bytes(t) if t < vocab.size else b""
                if t == eos and not fixed:
                    closed = completable({hole: b""})
                    if closed:
                        break
                    continue
                if t in vocab.special_token_ids or t >= vocab.size:
                    continue
                # the model moves on: the token ends the hole's text and begins the fixed text
                split = next((k for k in range(len(piece)) if fixed and fixed.startswith(piece[k:])), None)
                if split is not None and completable({cell: piece[:split], hole: b""}):
                    if split:
                        canvas.set(cell, piece[:split])
                        ids.extend(encoder.encode(piece[:split]))
                        text += piece[:split]
                        fill += piece[:split]
                        tokens += 1
                    closed = True
                    break
                if completable({cell: piece}):
                    taken = t
                    break
            if closed or taken is None:
                break
            ids.append(taken)
            canvas.set(cell, vocab.token_bytes(taken))
            text += vocab.token_bytes(taken)
            fill += vocab.token_bytes(taken)
            tokens += 1
        if not closed:   # out of tokens or candidates: close if the template allows it here
            closed = completable({hole: b""})
        if closed:
            canvas.set(hole, b"")
        fills.append(fill.decode("utf-8", "replace"))
        if not closed:
            return Infill(_text(text), fills, False, checks, tokens)
        i += 1
    word = _text(text)
    return Infill(word, fills, grammar.accepts(text), checks, tokens)


def _order(logp: np.ndarray, temperature: float, rng: np.random.Generator, count: int) -> list[int]:
    """The first ``count`` token ids by descending probability (greedy) or in Gumbel order
    (sampling), tokens of probability 0 left out."""
    keys = logp if temperature == 0 else logp / temperature - np.log(-np.log(rng.random(len(logp))))
    top = np.argsort(-keys, kind="stable")
    return top[np.isfinite(logp[top])][:count].tolist()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


class _Encoder:
    """Fixed text as tokens: greedy longest match over the vocabulary's bytes."""

    def __init__(self, vocab: Vocabulary) -> None:
        self.ids = vocab.ids_by_bytes   # built once per vocabulary
        self.longest = int(vocab.lengths.max(initial=1))

    def encode(self, data: bytes) -> list[int]:
        out, i = [], 0
        while i < len(data):
            for n in range(min(self.longest, len(data) - i), 0, -1):
                ids = self.ids.get(data[i:i + n])
                if ids is not None:
                    out.append(ids[0])
                    i += n
                    break
            else:
                raise GCDError(f"the vocabulary cannot spell the template's text {data[i:i + 20]!r}")
        return out

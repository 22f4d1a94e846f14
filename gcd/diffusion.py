"""Constrained decoding for masked diffusion language models.

A canvas of ``gen_length`` mask tokens follows the prompt. Each step runs the model once and
unmasks the most confident positions (``steps`` steps in all; with ``block_length``, block
by block from the left, semi-autoregressively, as LLaDA does). Every proposal is checked
before it is written: the canvas as text, with each masked position a hole (see ``_Checker``:
exact for a byte-level vocabulary), must still be completable to a word (``gcd.Canvas``); a
rejected token's logit becomes -inf and the position is picked again from the same logits,
without a new forward pass; a position whose best candidates are all refused takes EOS if that
fits, else the token of a completion found (byte-level vocabularies), else waits. An EOS (or
padding) token ends the text: the positions after it may only hold EOS. At the end the text
before the first EOS is checked with ``Grammar.accepts``.

Models: any object with ``mask_token_id`` and ``logits(input_ids) -> Tensor[L, V]`` (one
sequence, all positions). ``MaskedLM`` adapts a Hugging Face ``AutoModelForMaskedLM`` (BERT,
ModernBERT); ``DiffusionLM`` adapts LLaDA/Dream-style causal-shaped models whose forward
takes ``input_ids`` and returns ``.logits`` over all positions, given their mask token id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from gcd.errors import GCDError
from gcd.grammar import Grammar
from gcd.holes import BudgetExceeded, Canvas, Hole
from gcd.vocab import Vocabulary


BYTE_EOS, BYTE_MASK = 256, 257      # the shipped model's vocabulary: the 256 bytes, EOS, mask
BYTE_VOCAB_SIZE = 258
BOUNDED_WIDTH = 4                   # masked positions as holes of bounded length up to this token length
SHIPPED = Path(__file__).resolve().parent / "models" / "diffusion-json-sql"


def byte_vocabulary() -> Vocabulary:
    """The shipped model's vocabulary: token i < 256 is byte i; 256 is EOS, 257 the mask."""
    return Vocabulary([bytes([i]) for i in range(256)] + [None, None], eos_token_id=BYTE_EOS,
                      special_token_ids=[BYTE_MASK])


def load_shipped() -> "MaskedLM":
    """The small masked-diffusion model gcd ships (a byte-level BERT trained on JSON and SQL by
    ``scripts/train_diffusion.py``; see its ``TRAINING.md``), on the CPU."""
    from transformers import AutoModelForMaskedLM

    if not (SHIPPED / "config.json").exists():
        raise GCDError(f"the shipped diffusion model is missing from {SHIPPED} (scripts/train_diffusion.py makes it)")
    return MaskedLM(AutoModelForMaskedLM.from_pretrained(SHIPPED).eval(), BYTE_MASK)


class DiffusionModel(Protocol):
    mask_token_id: int

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor: ...


class MaskedLM:
    """A Hugging Face masked LM (``AutoModelForMaskedLM``) as a ``DiffusionModel``."""

    def __init__(self, model: torch.nn.Module, mask_token_id: int) -> None:
        self.model, self.mask_token_id = model, int(mask_token_id)
        self.device = next(model.parameters()).device

    def logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(input_ids=input_ids[None].to(self.device)).logits[0].float()


class DiffusionLM(MaskedLM):
    """LLaDA/Dream-style models: the same call (``model(input_ids).logits`` over every
    position, bidirectional attention), with the model's own mask token id (LLaDA: 126336)."""


@dataclass(frozen=True)
class Decoded:
    """A diffusion run: the generated ``token_ids`` (cut at the first EOS), their ``text``,
    ``finished`` (every position unmasked and, when constrained, the text a word: check
    unconstrained outputs with ``Grammar.accepts``), the model calls and the proposals the
    grammar rejected."""
    token_ids: list[int]
    text: str
    finished: bool
    forward_passes: int
    rejections: int


def generate(model: DiffusionModel, vocab: Vocabulary, grammar: Grammar | None, prompt_ids: Sequence[int],
             gen_length: int, steps: int, *, block_length: int | None = None, temperature: float = 0.0,
             seed: int = 0, max_rejections: int = 64) -> Decoded:
    """Fill ``gen_length`` masked positions after ``prompt_ids`` in ``steps`` model calls,
    constrained to ``grammar`` (None: unconstrained). ``temperature`` 0 picks each position's
    most likely token, otherwise samples it (Gumbel noise on the logits); positions are
    unmasked by confidence. A position whose ``max_rejections`` best tokens are all refused
    in a pass gets EOS if that fits there, else waits for a later pass while other positions
    are filled; when a pass can place nothing at all, the run stops, unfinished."""
    if gen_length < 1 or steps < 1:
        raise ValueError("gen_length and steps must be >= 1")
    block = block_length or gen_length
    if gen_length % block or steps % (gen_length // block):
        raise ValueError("block_length must divide gen_length, and the number of blocks must divide steps")
    rng = np.random.default_rng(seed)
    eos = set(vocab.eos_token_ids)
    fill = min(eos)
    mask = model.mask_token_id
    prompt = [int(t) for t in prompt_ids]
    canvas = np.full(gen_length, -1, dtype=np.int64)    # -1: masked
    checker = _Checker(grammar, vocab, gen_length) if grammar is not None else None
    passes = rejections = 0
    per_block = steps // (gen_length // block)
    schedule = _schedule(gen_length, block, steps)
    step = 0
    while (canvas < 0).any():
        if step < len(schedule):
            count, lo = schedule[step], (step // per_block) * block
        else:            # positions left over (all of a step's candidates were refused): more passes
            count, lo = int((canvas < 0).sum()), 0
        hi = lo + block if step < len(schedule) else gen_length
        step += 1
        ids = torch.tensor(prompt + [mask if t < 0 else int(t) for t in canvas])
        logits = model.logits(ids)[len(prompt):].double().cpu().numpy()[:, : vocab.size]
        passes += 1
        if temperature > 0:
            logits = logits / temperature - np.log(-np.log(rng.random(logits.shape)))
        tried = np.zeros(gen_length, dtype=np.int64)     # refusals per position in this pass
        placed_any = False
        for _ in range(count):
            while True:
                open_ = [i for i in range(lo, hi) if canvas[i] < 0 and tried[i] < max_rejections]
                if not open_:
                    break
                best = max(open_, key=lambda i: logits[i].max())
                ended = any(t in eos for t in canvas[:best].tolist())
                token = fill if ended else int(np.argmax(logits[best]))   # after EOS, only EOS
                if not np.isfinite(logits[best, token]):
                    tried[best] = max_rejections
                    continue
                if checker is None or checker.allowed(canvas, best, token):
                    canvas[best] = token
                    placed_any = True
                    break
                logits[best, token] = -np.inf
                rejections += 1
                tried[best] += 1
                if tried[best] >= max_rejections:   # nothing the model wants fits here: EOS, if that
                    known = fill                   # does, else the token a completion has there
                    if not checker.allowed(canvas, best, fill):
                        known = checker.witness(canvas, best)
                        if known is not None and not checker.allowed(canvas, best, known):
                            known = None
                    if known is not None:
                        canvas[best] = known
                        placed_any = True
                        break
        if not placed_any and step >= len(schedule):
            break                             # no position can take any candidate: stop
    return _stop(canvas, vocab, grammar, passes, rejections)


class _Checker:
    """Completion checks of a diffusion canvas through incremental ``gcd.Canvas``es. A masked
    position holds a token of 1 to ``width`` bytes, or EOS from the first EOS on. Where the
    vocabulary's tokens are at most ``BOUNDED_WIDTH`` bytes long, a masked position before the
    last placed token is a hole of 1 to ``width`` bytes, and those after it, where EOS may
    pad, share a hole of at most ``width`` bytes each: exact for a byte-level vocabulary.
    That tail is checked first as a hole of any length (one canvas state, not one per byte);
    only when the word found is longer than the tail has room for is the bounded canvas
    asked. With longer tokens, a masked position is a hole of at least one byte (any length
    after the last placed token). EOS ends the text."""

    def __init__(self, grammar: Grammar, vocab: Vocabulary, length: int) -> None:
        self.vocab, self.eos = vocab, set(vocab.eos_token_ids)
        lengths = [int(n) for t, n in enumerate(vocab.lengths) if t not in vocab.special_token_ids and n > 0]
        self.width = max(lengths, default=1)
        self.bounded = self.width <= BOUNDED_WIDTH
        self.loose, self.exact = Canvas(grammar, [None] * length), Canvas(grammar, [None] * length)

    def allowed(self, canvas: np.ndarray, pos: int, token: int) -> bool:
        """Whether ``token`` at ``pos`` leaves a canvas that can still be completed."""
        trial = canvas.copy()
        trial[pos] = token
        return self._fill(trial) is not None

    def witness(self, canvas: np.ndarray, pos: int) -> int | None:
        """A token for ``pos`` that a word completing the canvas has there, where one is known
        (a byte-level vocabulary: the word's byte there, or EOS past its end)."""
        fill = self._fill(canvas)
        if fill is None or self.width != 1:
            return None
        if not fill[pos]:
            return min(self.eos)
        ids = self.vocab.ids_by_bytes.get(fill[pos], ())
        return ids[0] if ids else None

    def _fill(self, canvas: np.ndarray) -> list[bytes] | None:
        """The bytes each position holds in a word completing ``canvas`` (None: no word fits;
        budget exhausted counts as none)."""
        tokens = canvas.tolist()
        ends = [i for i, t in enumerate(tokens) if t in self.eos]
        if ends and any(t >= 0 and t not in self.eos for t in tokens[ends[0]:]):
            return None                       # text after EOS
        if any(t in self.vocab.special_token_ids and t not in self.eos for t in tokens if t >= 0):
            return None
        stop = ends[0] if ends else len(tokens)
        last = max((i for i in range(stop) if tokens[i] >= 0), default=-1)
        inner = Hole(1, self.width) if self.bounded else Hole(1)
        cells = [b"" if i >= stop else self.vocab.token_bytes(t) if t >= 0 else inner if i < last else None
                 for i, t in enumerate(tokens)]
        try:
            fill = _fill_cells(self.loose, cells)
            if fill is None or not self.bounded:
                return fill
            tail = b"".join(fill[last + 1:stop])
            if len(tail) <= self.width * (stop - last - 1):   # the word fits the positions: pack it
                packed = [tail[k:k + self.width] for k in range(0, self.width * (stop - last - 1), self.width)]
                return fill[:last + 1] + packed + fill[stop:]
            return _fill_cells(self.exact, [Hole(0, self.width) if c is None else c for c in cells])
        except BudgetExceeded:
            return None


def _fill_cells(canvas: Canvas, cells: list) -> list[bytes] | None:
    """``canvas.fill()`` once its cells are ``cells`` (only those that differ are set)."""
    for i, cell in enumerate(cells):
        if canvas.cells[i] != cell:
            canvas.set(i, cell)
    return canvas.fill()


def _schedule(gen_length: int, block: int, steps: int) -> list[int]:
    """How many positions each step unmasks: each block's positions spread over its steps."""
    blocks = gen_length // block
    per_block = steps // blocks
    base, extra = divmod(block, per_block)
    one = [base + (1 if i < extra else 0) for i in range(per_block)]
    return one * blocks


def _stop(canvas: np.ndarray, vocab: Vocabulary, grammar: Grammar | None, passes: int, rejections: int) -> Decoded:
    eos = set(vocab.eos_token_ids)
    ids = []
    for t in canvas.tolist():
        if t < 0 or t in eos:
            break
        ids.append(t)
    data = b"".join(vocab.token_bytes(t) for t in ids)
    filled = all(t >= 0 for t in canvas.tolist())
    return Decoded(ids, data.decode("utf-8", "replace"), filled and (grammar is None or grammar.accepts(data)),
                  passes, rejections)

"""``Matcher``: the grammar state of one sequence, token by token."""
from __future__ import annotations

import numpy as np
import torch

from gcd.compiler import CompiledGrammar


class Matcher:
    """Tracks one sequence: which tokens may come next, consume one, undo.

    ``fill_bitmask`` writes row ``row`` of an int32 ``[batch, ceil(V/32)]`` tensor: bit j of
    word i set iff token ``32*i + j`` is allowed. EOS is allowed exactly when the text so far
    is a complete word; after EOS is consumed only EOS stays allowed. ``copy()`` is O(1)
    whatever the history: the history is a persistent list shared by the copies.

    ``max_trailing``: once the text is a word and this many tokens that are only ``%ignore``
    text (``CompiledGrammar.ignorable_tokens``) have followed it, only EOS (0: EOS as soon as
    the text is a word). ``None`` (the
    default) is the grammar's exact language; samplers and the CLI set a small bound, since a
    model that wants to stop in a way the grammar forbids (a closing code fence) otherwise
    pads a finished word with whitespace until its token budget runs out.
    """

    def __init__(self, compiled: CompiledGrammar, *, max_trailing: int | None = None) -> None:
        if max_trailing is not None and (not isinstance(max_trailing, int) or max_trailing < 0):
            raise ValueError(f"max_trailing must be None or an int >= 0, not {max_trailing!r}")
        self.compiled = compiled
        self.max_trailing = max_trailing
        self._ignorable = compiled.ignorable_tokens() if max_trailing is not None else None
        self._automata = compiled.automata
        self._rec = compiled.automata.recognizer
        self._state = self._rec.initial
        self._terminated = False
        self._trailing = 0   # ignorable-only tokens since the text last became a word
        self._history: tuple | None = None   # (state, terminated, trailing, older history) before each step
        self._steps = 0
        self._view: tuple | None = None   # see _numpy_view: the bitmask of the last fill
        self._shown: tuple | None = None  # (state, its automata mask) last asked for
        self._eos = frozenset(compiled.vocab.eos_token_ids)
        self._special = compiled.vocab.special_token_ids
        self._size = compiled.vocab.size

    def copy(self) -> "Matcher":
        other = Matcher.__new__(Matcher)
        other.__dict__.update(self.__dict__)
        return other

    def mask(self) -> np.ndarray:
        """The allowed-token bitset as uint32 ``[ceil(V/32)]`` (read-only: it is shared)."""
        if self._terminated or self._trailing_full():
            return self._automata.eos_bits
        bits = self._automata.mask(self._state)
        self._shown = (self._state, bits)
        return bits

    def _trailing_full(self) -> bool:
        """The bound on trailing ignorable tokens is reached (and the text is a word)."""
        return (self.max_trailing is not None and self._trailing >= self.max_trailing
                and self._rec.is_accepting(self._state)[0])

    def fill_bitmask(self, bitmask: torch.Tensor, row: int = 0) -> None:
        """Write the allowed tokens into ``bitmask[row]`` (int32; extra words are zeroed)."""
        words = self.mask()
        view = self._view
        if view is None or view[0] is not bitmask or view[1] != bitmask.data_ptr():
            view = self._view = _numpy_view(bitmask, len(words))
        target = view[2]
        if target is None:   # off the CPU
            n = len(words)
            bitmask[row, :n].copy_(torch.from_numpy(words.view(np.int32).copy()), non_blocking=False)
            bitmask[row, n:] = 0
        elif view[3]:   # rows longer than the vocabulary's words: zero the rest
            target[row, :len(words)] = words
            target[row, len(words):] = 0
        else:   # one numpy copy into the tensor's memory, no torch dispatch
            target[row] = words

    def allowed_token_ids(self) -> np.ndarray:
        """The allowed token ids, ascending."""
        bits = np.unpackbits(self.mask().view(np.uint8), bitorder="little")[: self._size]
        return np.flatnonzero(bits)

    def accepts_token(self, token_id: int) -> bool:
        """Would ``consume_token(token_id)`` succeed? Checks this one token only (no mask is
        computed, nothing advances): microseconds once the step is memoised."""
        return self._next(token_id) is not None

    def consume_token(self, token_id: int) -> bool:
        """Advance by one token; False (state unchanged) if it is not allowed."""
        nxt = self._next(token_id)
        if nxt is None:
            return False
        self._push(*nxt)
        return True

    def _next(self, token_id: int) -> tuple | None:
        """(state, terminated, trailing) after ``token_id``, or None if it is not allowed."""
        token_id = int(token_id)
        if not 0 <= token_id < self._size:
            return None
        if token_id in self._eos:
            if not (self._terminated or self._rec.is_accepting(self._state)[0]):
                return None
            return self._state, True, self._trailing
        if self._terminated or token_id in self._special or self._trailing_full():
            return None
        trailing = 0
        if self._ignorable is not None and self._ignorable[token_id] and self._rec.is_accepting(self._state)[0]:
            trailing = self._trailing + 1
        shown = self._shown
        if shown is not None and shown[0] is self._state:   # the mask decides, without lexing
            if not shown[1][token_id >> 5] >> (token_id & 31) & 1:
                return None
            state = self._automata.advance(self._state, token_id, allowed=True)
        else:
            state = self._automata.advance(self._state, token_id)
        if state is None:
            return None
        if trailing and not self._rec.is_accepting(state)[0]:
            trailing = 0
        return state, False, trailing

    def consume_bytes(self, data: bytes | str) -> bool:
        """Advance by raw text (e.g. a forced prefix); False (unchanged) if it cannot continue."""
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError:   # a lone surrogate: no text can hold it
                return False
        if self._terminated:
            return not data
        state, _ = self._rec.advance(self._state, data)
        if state is None or not self._rec.is_viable(state)[0]:
            return False
        self._push(state, False, 0)
        return True

    def _push(self, state: tuple, terminated: bool, trailing: int) -> None:
        self._history = (self._state, self._terminated, self._trailing, self._history)
        self._state, self._terminated, self._trailing = state, terminated, trailing
        self._steps += 1

    def is_accepting(self) -> bool:
        """The text so far is a complete word (EOS is allowed now, or was consumed)."""
        return self._terminated or self._rec.is_accepting(self._state)[0]

    def is_terminated(self) -> bool:
        """EOS has been consumed."""
        return self._terminated

    def rollback(self, n: int = 1) -> None:
        """Undo the last ``n`` consumed tokens (or consume_bytes calls)."""
        if not 0 <= n <= self._steps:
            raise ValueError(f"cannot roll back {n} steps: {self._steps} consumed")
        for _ in range(n):
            self._state, self._terminated, self._trailing, self._history = self._history
        self._steps -= n

    def reset(self) -> None:
        self._state, self._terminated, self._trailing = self._rec.initial, False, 0
        self._history, self._steps = None, 0


def _numpy_view(bitmask: torch.Tensor, words: int) -> tuple:
    """(bitmask, data pointer, a uint32 numpy view sharing its memory or None off the CPU,
    whether its rows are longer than ``words``), checked once."""
    if bitmask.shape[-1] < words:
        raise ValueError(f"bitmask rows have {bitmask.shape[-1]} words, the vocabulary needs {words}")
    target = bitmask.numpy().view(np.uint32) if bitmask.device.type == "cpu" else None
    return bitmask, bitmask.data_ptr(), target, bitmask.shape[-1] > words

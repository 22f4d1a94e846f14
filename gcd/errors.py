"""Exceptions raised by gcd. Every error a user can cause is a ``GCDError``."""
from __future__ import annotations


class GCDError(Exception):
    """Base class of all gcd errors."""


class GrammarError(GCDError):
    """The grammar text cannot be compiled: syntax, undefined names, empty language,
    a terminal that is not regular, or an automaton over its size cap.

    ``line`` and ``column`` (1-based) point into the grammar text when known;
    ``terminal`` names the terminal at fault when there is one.
    """

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 terminal: str | None = None, context: str | None = None) -> None:
        self.message, self.line, self.column, self.terminal, self.context = message, line, column, terminal, context
        where = []
        if line is not None:
            where.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        if terminal is not None:
            where.append(f"terminal {terminal}")
        text = f"{', '.join(where)}: {message}" if where else message
        if context:
            text += "\n" + context
        super().__init__(text)


class VocabularyError(GCDError, ValueError):
    """A vocabulary cannot be built: a tokenizer whose tokens cannot be mapped to bytes, or
    ``Vocabulary(...)`` arguments of the wrong type or out of range."""


class StoreError(GCDError):
    """A cache file (or pickled compiled grammar) that cannot be used: not one of gcd's,
    truncated, altered, or unreadable."""


def one_line(e: BaseException, limit: int | None = None) -> str:
    """An exception's message on one line (many libraries' span several), at most ``limit``
    characters when given."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if limit is None or len(text) <= limit else text[:limit - 1] + "…"

"""Contextual longest-match lexer over bytes: one lazily grown DFA over terminal DFAs.

A candidate set is the set of terminals the parser can take at a lexeme's start (plus the
``%ignore`` ones). The lexer DFA runs all of a candidate set's terminal DFAs at once: a
state is the set of (terminal, terminal-DFA state) pairs still alive, so the same situation
(say, inside an identifier no keyword matches any more) is one state whatever candidate set
the lexeme started with; each candidate set has its own start state. Within a lexeme, once
a terminal of priority p has matched, terminals of lower priority are dropped (Lark tries
higher priorities first). The lexeme is the longest match; on a tie the highest priority
wins, then a string literal over a regex (Lark's keyword rule), then Lark's own order
(longer max width, longer pattern, name).

A lexer state is ``(DFA state, last)``: ``last`` is ``None`` or ``(terminal, bytes read
since that terminal last matched)``, so that when the DFA dies the lexeme ends at the last
match and the bytes after it are lexed again (``UNION`` in ``UNION SELECT`` when the
terminal is ``"UNION ALL" | "UNION"``).
"""
from __future__ import annotations

import numpy as np
from lark.lexer import PatternStr, TerminalDef

from gcd.errors import GrammarError
from gcd.terminals import ByteDFA, regex_to_dfa

LexState = tuple  # (lexer DFA state, None | (terminal, bytes since it matched))
MAX_LEXER_STATES = 200_000
_START = "start"


class Lexer:
    """Terminal DFAs and the lexer DFA built from them on demand.

    ``table`` (int32 [n, 256], -1 dead), ``accept`` (terminal the lexeme is if it ends here,
    -1 if none) and ``alive`` (bitmask of the terminals still alive) cover the states built
    so far; every state reachable from a candidate set's start is built on its first use.
    """

    def __init__(self, terminals: list[TerminalDef], ignore: list[str], terminal_index: dict[str, int],
                 dfas: dict[str, ByteDFA] | None = None) -> None:
        self.n_terminals = len(terminal_index)
        self.names = [""] * self.n_terminals
        self.dfas: list[ByteDFA | None] = [None] * self.n_terminals
        self.priority = [0] * self.n_terminals
        rank_key = {}
        for t in terminals:
            i = terminal_index[t.name]
            self.names[i] = t.name
            self.dfas[i] = dfas[t.name] if dfas else regex_to_dfa(t.pattern.to_regexp(), name=t.name)
            self.priority[i] = t.priority
            rank_key[i] = (-t.priority, not isinstance(t.pattern, PatternStr), -t.pattern.max_width,
                           -len(t.pattern.value), t.name)
        self.rank = [0] * self.n_terminals
        for r, i in enumerate(sorted(rank_key, key=rank_key.__getitem__)):
            self.rank[i] = r
        self.ignore_mask = 0
        for name in ignore:
            if name in terminal_index:
                self.ignore_mask |= 1 << terminal_index[name]
        self._starts: dict[int, int] = {}       # candidate mask -> start state
        self._index: dict[tuple, int] = {}      # state key -> state
        self._keys: list[tuple] = []
        self._table = np.full((64, 256), -1, dtype=np.int32)
        self._accept = np.full(64, -1, dtype=np.int32)
        self.rows: list[list[int]] = []         # the table as Python lists, for scalar stepping
        self.accept_list: list[int] = []
        self.alive: list[int] = []

    @property
    def n_states(self) -> int:
        return len(self.rows)

    @property
    def table(self) -> np.ndarray:
        return self._table[: self.n_states]

    @property
    def accept(self) -> np.ndarray:
        return self._accept[: self.n_states]

    @property
    def n_candidate_sets(self) -> int:
        return len(self._starts)

    def start(self, expected: int) -> int:
        """The start state for a lexeme whose candidates are ``expected`` plus the ignored terminals."""
        mask = (expected | self.ignore_mask) & ((1 << self.n_terminals) - 1)
        s = self._starts.get(mask)
        if s is None:
            pairs = tuple((i, 0) for i in range(self.n_terminals) if mask >> i & 1 and self.dfas[i] is not None)
            s = self._starts[mask] = self._state((_START,) + pairs)
            self._build_reachable()
        return s

    def is_start(self, s: int) -> bool:
        return self._keys[s][0] == _START

    def _state(self, key: tuple) -> int:
        s = self._index.get(key)
        if s is None:
            s = len(self._keys)
            if s >= MAX_LEXER_STATES:
                raise GrammarError(f"the lexer automaton exceeds {MAX_LEXER_STATES} states")
            self._index[key] = s
            self._keys.append(key)
            pairs = _pairs(key)
            matching = [i for i, q in pairs if self.dfas[i].accepting[q]]
            self.accept_list.append(min(matching, key=self.rank.__getitem__, default=-1))
            self.alive.append(sum(1 << i for i, _ in pairs))
        return s

    def _build_reachable(self) -> None:
        """Build the rows of all states created but not built yet (and of those they reach)."""
        while len(self.rows) < len(self._keys):
            s = len(self.rows)
            pairs = _pairs(self._keys[s])
            row = np.full(256, -1, dtype=np.int32)
            if pairs:
                nxt = np.stack([self.dfas[i].transitions[q] for i, q in pairs])
                live = np.flatnonzero((nxt >= 0).any(axis=0))
                if len(live):
                    cols, inverse = np.unique(nxt[:, live].T, axis=0, return_inverse=True)
                    targets = [self._state(self._prune([(i, int(q)) for (i, _), q in zip(pairs, col) if q >= 0]))
                               for col in cols]
                    row[live] = np.array(targets, dtype=np.int32)[inverse.reshape(-1)]
            if s >= len(self._table):
                self._table = np.concatenate([self._table, np.full_like(self._table, -1)])
                self._accept = np.concatenate([self._accept, np.full_like(self._accept, -1)])
            self._table[s] = row
            self._accept[s] = self.accept_list[s]
            self.rows.append(row.tolist())

    def _prune(self, pairs: list[tuple[int, int]]) -> tuple:
        """Drop terminals of lower priority than the best one matching here."""
        matching = [self.priority[i] for i, q in pairs if self.dfas[i].accepting[q]]
        if matching:
            best = max(matching)
            pairs = [(i, q) for i, q in pairs if self.priority[i] >= best]
        return tuple(pairs)

    # -- scalar stepping -------------------------------------------------------------
    def step(self, state: LexState, byte: int):
        """One byte: ``("cont", state)``, ``("emit", terminal, replay_bytes)`` or ``None`` (dead)."""
        s, last = state
        nxt = self.rows[s][byte]
        accept = self.accept_list
        if nxt >= 0:
            if accept[nxt] >= 0:
                return ("cont", (nxt, None))
            if accept[s] >= 0:
                return ("cont", (nxt, (accept[s], bytes((byte,)))))
            if last is not None:
                return ("cont", (nxt, (last[0], last[1] + bytes((byte,)))))
            return ("cont", (nxt, None))
        if accept[s] >= 0:
            return ("emit", accept[s], bytes((byte,)))
        if last is not None:
            return ("emit", last[0], last[1] + bytes((byte,)))
        return None

    def end(self, state: LexState):
        """End of input: ``("emit", terminal, replay)``, ``("empty",)`` or ``None``."""
        s, last = state
        if self.is_start(s):
            return ("empty",)
        t = self.accept_list[s]
        if t >= 0:
            return ("emit", t, b"")
        if last is not None:
            return ("emit", last[0], last[1])
        return None


def _pairs(key: tuple) -> tuple:
    return key[1:] if key and key[0] == _START else key

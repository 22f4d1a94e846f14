"""Contextual longest-match lexer over bytes: one lazily grown DFA over the terminals' DFAs.

A candidate set is the set of terminals the parser can take at a lexeme's start (plus the
``%ignore`` ones). The lexer DFA runs all of a candidate set's terminal DFAs at once: a
state is the set of (terminal, terminal-DFA state) pairs still alive, so the same situation
(say, inside an identifier no keyword matches any more) is one state whatever candidate set
the lexeme started with; each candidate set has its own start state, and all states
reachable from it are built when it is first asked for.

The lexeme is the longest match; on a tie the highest priority wins, then a string literal
over a regex (Lark's keyword rule), then Lark's own order (longer max width, longer
pattern, name). Once a terminal of priority p has matched, terminals of lower priority are
dropped (Lark tries higher priorities first). Each terminal matches what ``re.match`` takes
for it (see ``gcd.terminals``); a terminal ending in a lookahead matches only once the next
byte is known, so the match "before byte b" is ``match_before(state, b)``.
"""
from __future__ import annotations

import threading

import numpy as np

from gcd.errors import GrammarError
from gcd.terminals import END, ByteDFA

MAX_LEXER_STATES = 200_000
_START = "start"


class Lexer:
    """Terminal DFAs and the lexer DFA built from them on demand.

    Per lexer state ``s``: ``rows[s]`` (list of 256 next states, -1 dead), ``accept[s]`` (the
    terminal the lexeme is if it ends here whatever follows, -1 if none), ``alive[s]``
    (bitmask of the terminals still alive). ``table``/``accept_array`` are the same as arrays.
    """

    def __init__(self, names: list[str], dfas: list[ByteDFA], priorities: list[int], ranks: list[tuple],
                 ignore_mask: int) -> None:
        self.names, self.dfas, self.priority = names, dfas, priorities
        self.n_terminals = len(names)
        self.rank = [0] * self.n_terminals
        for r, i in enumerate(sorted(range(self.n_terminals), key=ranks.__getitem__)):
            self.rank[i] = r
        self.ignore_mask = ignore_mask
        self.has_lookahead = any(d.lookahead is not None for d in dfas)
        self._lock = threading.RLock()
        self._starts: dict[int, int] = {}       # candidate mask -> start state
        self._index: dict[tuple, int] = {}      # state key -> state
        self.keys: list[tuple] = []
        self._table = np.full((64, 256), -1, dtype=np.int32)
        self._accept = np.full(64, -1, dtype=np.int32)
        self._before = np.full((64, 257), -1, dtype=np.int32) if self.has_lookahead else None
        self.rows: list[list[int]] = []
        self.accept: list[int] = []
        self.alive: list[int] = []
        self.before_rows: list[list[int] | None] = []   # per state: match_before by next byte, if it varies

    @property
    def n_states(self) -> int:
        return len(self.rows)

    @property
    def table(self) -> np.ndarray:
        return self._table[: self.n_states]

    @property
    def accept_array(self) -> np.ndarray:
        return self._accept[: self.n_states]

    @property
    def before_table(self) -> np.ndarray | None:
        """int32 [n, 257]: ``match_before`` for every state and next byte (column 256: the end),
        or None when no terminal ends in a lookahead (then it is ``accept`` in every column)."""
        return None if self._before is None else self._before[: self.n_states]

    @property
    def n_candidate_sets(self) -> int:
        return len(self._starts)

    def start(self, expected: int) -> int:
        """The start state for a lexeme whose candidates are ``expected`` plus the ignored terminals."""
        mask = (expected | self.ignore_mask) & ((1 << self.n_terminals) - 1)
        s = self._starts.get(mask)
        if s is None:
            with self._lock:
                s = self._starts.get(mask)
                if s is None:
                    pairs = tuple((i, 0) for i in range(self.n_terminals) if mask >> i & 1)
                    s = self._state((_START,) + pairs)
                    self._build_reachable()
                    self._starts[mask] = s
        return s

    def reachable(self, s: int) -> list[int]:
        """The states a lexeme reaches from ``s`` (``s`` excluded), breadth-first."""
        seen, order = {s}, [s]
        for state in order:
            for t in self.rows[state]:
                if t >= 0 and t not in seen:
                    seen.add(t)
                    order.append(t)
        return order[1:]

    def is_start(self, s: int) -> bool:
        return self.keys[s][0] == _START

    def match_before(self, s: int, byte: int) -> int:
        """The terminal the lexeme is if it ends at state ``s`` and ``byte`` comes next
        (``terminals.END``: the text ends), -1 if none."""
        row = self.before_rows[s]
        return self.accept[s] if row is None else row[byte]

    # -- the cache file ---------------------------------------------------------------------
    def export(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The states built so far: (JSON-able structure, arrays), for ``restore``."""
        with self._lock:
            n = self.n_states
            meta = {"keys": [[int(k[0] == _START)] + [x for pair in _pairs(k) for x in pair] for k in self.keys[:n]],
                    "starts": [[format(mask, "x"), s] for mask, s in self._starts.items()]}
            arrays = {"table": self.table.copy(), "accept": self.accept_array.copy()}
            if self._before is not None:
                arrays["before"] = self.before_table.copy()
        return meta, arrays

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Take the states of an ``export`` (of a lexer over the same terminals); the arrays
        stay read-only until the lexer grows."""
        with self._lock:
            self.keys = [((_START,) if k[0] else ()) + tuple(zip(k[1::2], k[2::2])) for k in meta["keys"]]
            self._index = {k: s for s, k in enumerate(self.keys)}
            self._starts = {int(mask, 16): s for mask, s in meta["starts"]}
            self._table, self._accept = arrays["table"], arrays["accept"]
            self.rows = self._table.tolist()
            self.accept = self._accept.tolist()
            self.alive = [sum(1 << i for i, _ in _pairs(k)) for k in self.keys]
            if self.has_lookahead:
                self._before = arrays["before"]
                self.before_rows = [row if any(x != a for x in row) else None
                                     for row, a in zip(self._before.tolist(), self.accept)]
            else:
                self.before_rows = [None] * len(self.keys)

    # -- building ---------------------------------------------------------------------
    def _state(self, key: tuple) -> int:
        s = self._index.get(key)
        if s is None:
            s = len(self.keys)
            if s >= MAX_LEXER_STATES:
                raise GrammarError(f"the lexer automaton exceeds {MAX_LEXER_STATES} states")
            self._index[key] = s
            self.keys.append(key)
        return s

    def _best(self, terminals: list[int]) -> int:
        return min(terminals, key=self.rank.__getitem__, default=-1)

    def _build_reachable(self) -> None:
        """Build the rows of all states created but not built yet (and of those they reach)."""
        while len(self.rows) < len(self.keys):
            s = len(self.rows)
            pairs = _pairs(self.keys[s])
            dfas = self.dfas
            accept = self._best([i for i, q in pairs if dfas[i].accepting[q]])
            before = None
            conditional = [(i, dfas[i].lookahead[q]) for i, q in pairs
                           if dfas[i].lookahead is not None and dfas[i].lookahead[q].any()]
            if conditional:
                before = [self._best(([accept] if accept >= 0 else []) + [i for i, look in conditional if look[b]])
                          for b in range(257)]
            row = np.full(256, -1, dtype=np.int32)
            if pairs:
                nxt = np.stack([dfas[i].transitions[q] for i, q in pairs])
                # after a byte that confirms a conditional match, lower priorities are dropped too
                floor = np.full(256, -(1 << 62), dtype=np.int64)
                if before is not None:
                    floor = np.array([self.priority[t] if t >= 0 else -(1 << 62) for t in before[:256]], np.int64)
                live = np.flatnonzero((nxt >= 0).any(axis=0))
                if len(live):
                    cols, inverse = np.unique(np.vstack([nxt[:, live], floor[live]]).T, axis=0, return_inverse=True)
                    targets = [self._state(self._prune([(i, int(q)) for (i, _), q in zip(pairs, col[:-1])
                                                        if q >= 0 and self.priority[i] >= col[-1]]))
                               for col in cols]
                    row[live] = np.array(targets, dtype=np.int32)[inverse.reshape(-1)]
            if s >= len(self._table) or not self._table.flags.writeable:
                grow = max(len(self._table), 64)
                self._table = np.concatenate([self._table, np.full((grow, 256), -1, np.int32)])
                self._accept = np.concatenate([self._accept, np.full(grow, -1, np.int32)])
                if self._before is not None:
                    self._before = np.concatenate([self._before, np.full((grow, 257), -1, np.int32)])
            self._table[s] = row
            self._accept[s] = accept
            if self._before is not None:
                self._before[s] = before if before is not None else accept
            self.accept.append(accept)
            self.alive.append(sum(1 << i for i, _ in pairs))
            self.before_rows.append(before)
            self.rows.append(row.tolist())

    def _prune(self, pairs: list[tuple[int, int]]) -> tuple:
        """Drop terminals of lower priority than the best one matching here."""
        matching = [self.priority[i] for i, q in pairs if self.dfas[i].accepting[q]]
        if matching:
            best = max(matching)
            pairs = [(i, q) for i, q in pairs if self.priority[i] >= best]
        return tuple(pairs)


def _pairs(key: tuple) -> tuple:
    return key[1:] if key and key[0] == _START else key


__all__ = ["END", "Lexer"]

"""Can text with holes still be completed to a word of the grammar? (additive infilling)

A canvas is a list of chunks: ``str``/``bytes`` (fixed text) and ``None`` (a hole: any text,
possibly empty). ``can_complete(grammar, chunks)`` says whether the holes can be filled so that
the whole text is a word; ``complete`` returns such a word. After Mündler, Dekoninck and
Vechev (2025), the question is decided over terminals:

1. **The canvas** is a byte automaton: states ``0..S`` along the fixed bytes, with a loop on
   every byte at the states where a hole is.
2. **Terminal edges.** For each terminal ``T`` and canvas state ``p``, the product of ``T``'s
   DFA (its full-match language) with the canvas gives every ``q`` such that some lexeme of
   ``T`` reads the canvas from ``p`` to ``q``: chunks may begin or end inside a terminal, and
   one lexeme may span holes and whole chunks (half a string literal, a hole, its other half).
   ``%ignore`` terminals give edges too, allowed before any terminal and at the end.
3. **Emptiness.** The grammar, binarised, is intersected with the edge graph (Bar-Hillel): a
   worklist derives triples ``(p, A, q)`` (``A`` derives a terminal sequence that reads the
   canvas from ``p`` to ``q``) and stops as soon as the start symbol spans the canvas.

**Two readings.** Step 3 asks whether *some* terminal sequence of the grammar spells a
completion; ``Grammar.accepts`` lexes by longest match, which can split a text otherwise
(``NAME NAME`` cannot spell ``ab`` + ``cd`` with nothing between: longest match reads one
``NAME``). The first reading contains the second, so "no" is final. For "yes", a witness
is built from the derivation (the shortest lexemes along it, printable ASCII inside holes;
then the same with newlines first among the bytes holes get (a newline ends a line
comment); then, if that text is not a word, the same with short ignorable text, a space, a newline,
between lexemes that meet inside a hole; first from a chart that keeps only the lexeme ends
the lexer could take, then from the full one) and checked with ``Grammar.accepts``: ``complete`` returns
only verified words and ``can_complete`` is True only with one. When a completion exists
under the loose reading but neither witness is a word, ``BudgetExceeded`` says so: the
answer is not known, and never a silent yes or no.

``budget`` caps the worklist's steps; past it, ``BudgetExceeded``.
"""
from __future__ import annotations

import weakref
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gcd.errors import GCDError
from gcd.grammar import Grammar
from gcd.terminals import literal_dfa, regex_to_dfa

DEFAULT_BUDGET = 2_000_000
_PRINTABLE = [*range(0x61, 0x7B), *range(0x30, 0x3A), *range(0x41, 0x5B), 0x20,
              *range(0x21, 0x30), *range(0x3A, 0x41), *range(0x5B, 0x61), *range(0x7B, 0x7F), 0x0A, 0x09]
_OTHER = [b for b in range(256) if b not in set(_PRINTABLE)]
_LINES_FIRST = [0x0A, *(b for b in _PRINTABLE if b != 0x0A)]   # a newline ends line comments


@dataclass(frozen=True)
class Hole:
    """A hole of at least ``min_bytes`` bytes (``None`` is ``Hole(0)``): e.g. masked diffusion
    positions, each of which will hold a token of one byte or more."""
    min_bytes: int = 0


class BudgetExceeded(GCDError):
    """A completion check ran out of its budget, or found completions only under the loose
    reading (see ``gcd.holes``): its answer is not known."""


def can_complete(grammar: Grammar, chunks: list, *, budget: int = DEFAULT_BUDGET) -> bool:
    """Whether the holes (``None``) among ``chunks`` can be filled so that the text is a word."""
    return complete(grammar, chunks, budget=budget) is not None


def complete(grammar: Grammar, chunks: list, *, budget: int = DEFAULT_BUDGET,
             cache: "_EdgeCache | None" = None) -> str | None:
    """A word of ``grammar`` made of ``chunks`` with each hole filled (None: there is none).
    ``cache``: a ``Canvas``'s lexeme ends, kept between its checks."""
    canvas = _Canvas.of(chunks)
    if canvas is None:
        return None
    if not any(canvas.loop) and not any(canvas.wild):   # no hole: the text is what it is
        try:
            text = canvas.data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return text if grammar.accepts(text) else None
    tables = _tables(grammar)
    if cache is not None:
        cache.arrange(canvas)
    chart = _Chart(canvas, tables, budget, cache=cache)
    root = chart.run()
    if root is None:
        return None
    # witnesses: from a chart whose lexemes end where the lexer would end them, then from this one
    strict = _Chart(canvas, tables, budget, strict=True, cache=cache)
    for source in (strict, chart):
        top = strict.run() if source is strict else root
        if top is None:
            continue
        spans = source.spans(top)
        for separator, alphabet in [(None, _PRINTABLE), (None, _LINES_FIRST),
                                    *((sep, _PRINTABLE) for sep in tables.separators)]:
            text = b"".join(separator if kind is None else source.lexeme(kind, a, b, alphabet)
                            for kind, a, b in _separated(spans, canvas, separator is not None))
            try:
                word = text.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if grammar.accepts(word):
                return word
    raise BudgetExceeded("a completion exists as a sequence of the grammar's terminals, but the witnesses tried "
                         "do not lex as a word under longest match; the answer is not known")


class Canvas:
    """Repeated completion checks on a canvas of cells, as its cells are filled in (diffusion
    decoding sets one position at a time): ``Canvas(grammar, cells)``, ``set(i, text)``,
    ``can_complete()``, ``try_texts(i, texts)``. A cell is fixed text (``str``/``bytes``) or a
    hole (``None`` or ``Hole``). The answer is ``can_complete(grammar, cells)``'s; what is kept
    between checks is every terminal's lexeme ends from every canvas state (the bulk of a
    check), keyed by the cells they read, so setting a cell recomputes only the lexemes that
    read it, wherever the cells around it have moved."""

    def __init__(self, grammar: Grammar, cells: list, *, budget: int = DEFAULT_BUDGET) -> None:
        self.grammar, self.budget = grammar, budget
        self.cells = list(cells)
        self.cache = _EdgeCache()

    def set(self, i: int, cell) -> None:
        """Put ``cell`` (text or a hole) at position ``i``."""
        self.cells[i] = cell
        self.cache.invalidate(i)

    def can_complete(self) -> bool:
        return complete(self.grammar, self.cells, budget=self.budget, cache=self.cache) is not None

    def try_texts(self, i: int, texts: list) -> list[bool]:
        """For each candidate cell in ``texts``, whether the canvas with it at ``i`` can be
        completed (the canvas is left as it was)."""
        old = self.cells[i]
        out = []
        for text in texts:
            self.set(i, text)
            out.append(self.can_complete())
        self.set(i, old)
        return out


class _EdgeCache:
    """Lexeme ends by terminal and start, in cell coordinates (cell, offset), with the range
    of cells each walk read, across the checks of a ``Canvas``."""

    def __init__(self) -> None:
        self.entries: dict[tuple, tuple] = {}   # (cell, offset, name, strict) -> (ends, extend, first, last)
        self.layout: tuple | None = None

    def arrange(self, canvas: "_Canvas") -> None:
        """Record where each cell starts in ``canvas`` (built from the cells)."""
        starts, pos = list(canvas.starts), canvas.final
        touch_lo, touch_hi = [len(starts)] * (pos + 1), [-1] * (pos + 1)
        for k, start in enumerate(starts):
            end = starts[k + 1] if k + 1 < len(starts) else pos
            for state in range(start, end + 1):
                touch_lo[state] = min(touch_lo[state], k)
                touch_hi[state] = max(touch_hi[state], k)
        self.layout = (starts, touch_lo, touch_hi)

    def _cell(self, state: int) -> tuple[int, int]:
        starts, touch_lo, _ = self.layout
        k = touch_lo[state]
        return (k, state - (starts[k] if k < len(starts) else 0))

    def _state(self, cell: tuple[int, int]) -> int:
        starts = self.layout[0]
        return (starts[cell[0]] if cell[0] < len(starts) else 0) + cell[1]

    def get(self, p: int, name: str, strict: bool):
        hit = self.entries.get((*self._cell(p), name, strict))
        if hit is None:
            return None
        ends, extend = hit[0], hit[1]
        return [self._state(c) for c in ends], [self._state(c) for c in extend]

    def put(self, p: int, name: str, strict: bool, ends: list[int], extend: list[int], last: int) -> None:
        _, touch_lo, touch_hi = self.layout
        first, final = touch_lo[p], max(touch_hi[last], touch_lo[last])
        self.entries[(*self._cell(p), name, strict)] = ([self._cell(q) for q in ends],
                                                       [self._cell(q) for q in extend], first, final)

    def invalidate(self, i: int) -> None:
        self.entries = {k: v for k, v in self.entries.items() if not v[2] <= i <= v[3]}


# -- the canvas --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Canvas:
    """Fixed bytes ``data``; ``loop[s]``: a hole sits at state ``s`` (before ``data[s]``);
    ``wild[s]``: ``data[s]`` is any byte (a ``Hole`` with a minimum length); ``starts[k]``:
    the state where chunk ``k`` begins."""
    data: bytes
    loop: tuple[bool, ...]
    wild: tuple[bool, ...]
    starts: tuple[int, ...]

    @staticmethod
    def of(chunks: list) -> "_Canvas | None":
        data, loop, wild, starts = bytearray(), [False], [], []
        for chunk in chunks:
            starts.append(len(data))
            if chunk is None or isinstance(chunk, Hole):
                n = 0 if chunk is None else chunk.min_bytes
                data += bytes(n)
                wild += [True] * n
                loop += [False] * n
                loop[-1] = True
                continue
            if isinstance(chunk, str):
                try:
                    chunk = chunk.encode("utf-8")
                except UnicodeEncodeError:   # a lone surrogate: no text holds it
                    return None
            if not isinstance(chunk, (bytes, bytearray)):
                raise TypeError(f"a chunk is str, bytes or None (a hole), not {type(chunk).__name__}")
            data += chunk
            loop += [False] * len(chunk)
            wild += [False] * len(chunk)
        return _Canvas(bytes(data), tuple(loop), tuple(wild), tuple(starts))

    def fixed(self, p: int, q: int) -> bool:
        """Are the bytes read from state ``p`` to ``q`` all given (no hole on the way)?"""
        return not any(self.loop[p:q]) and not any(self.wild[p:q])

    @property
    def final(self) -> int:
        return len(self.data)


# -- grammar tables (built once per grammar) ------------------------------------------------

@dataclass
class _Tables:
    terminals: dict[str, tuple[np.ndarray, np.ndarray]]   # name -> (transitions, accepting)
    rank: dict[str, tuple]                       # how the lexer breaks ties (smaller wins)
    lexical: list[str]                           # the terminals the rules use
    ignore: list[str]
    start: str
    units: dict[str, list[str]]                  # B -> [A] for A -> B
    firsts: dict[str, list[tuple[str, str]]]     # B -> [(A, C)] for A -> B C
    seconds: dict[str, list[tuple[str, str]]]    # C -> [(A, B)] for A -> B C
    separators: list[bytes]                      # short ignored lexemes with different first bytes
    reach: dict = field(default_factory=dict)    # DFA-state closures, shared by every check


_TABLES: "weakref.WeakKeyDictionary[Grammar, _Tables]" = weakref.WeakKeyDictionary()


def _tables(grammar: Grammar) -> _Tables:
    tables = _TABLES.get(grammar)
    if tables is None:
        tables = _TABLES[grammar] = _build(grammar)
    return tables


def _build(grammar: Grammar) -> _Tables:
    terminals, rank = {}, {}
    for t in grammar.terminals:
        p = t.pattern
        rank[t.name] = Grammar.terminal_rank(t)
        if p.type == "str" and not p.flags:
            dfa = literal_dfa(p.value.encode("utf-8"))
        else:
            dfa = regex_to_dfa(p.to_regexp(), name=t.name, fullmatch=True)
        terminals[t.name] = (dfa.transitions, dfa.accepting)
    units: dict = {}
    firsts: dict = {}
    seconds: dict = {}
    for i, rule in enumerate(grammar.rules):
        names = [s.name for s in rule.expansion]
        head = rule.origin.name
        while len(names) > 2:   # A -> X Y Z ...  as  A -> X A', A' -> Y Z ...
            rest = f"{head}\0{i}.{len(names)}"
            firsts.setdefault(names[0], []).append((head, rest))
            seconds.setdefault(rest, []).append((head, names[0]))
            head, names = rest, names[1:]
        if len(names) == 2:
            firsts.setdefault(names[0], []).append((head, names[1]))
            seconds.setdefault(names[1], []).append((head, names[0]))
        else:
            units.setdefault(names[0], []).append(head)
    ignore = [n for n in grammar.ignore if n in terminals]
    separators = sorted({w for n in ignore for w in _short_lexemes(*terminals[n])}, key=lambda w: (len(w), w != b" "))
    lexical = sorted({s.name for r in grammar.rules for s in r.expansion if s.is_term})
    return _Tables(terminals, rank, lexical, ignore, grammar.start, units, firsts, seconds, separators[:4])


def _short_lexemes(trans: np.ndarray, accepting: np.ndarray) -> list[bytes]:
    """A shortest word of a DFA for each printable first byte it takes."""
    out = []
    for first in _PRINTABLE:
        d = int(trans[0, first])
        if d < 0:
            continue
        seen, queue = {d: bytes([first])}, deque([d])
        while queue:
            d = queue.popleft()
            if accepting[d]:
                out.append(seen[d])
                break
            for b in _PRINTABLE:
                e = int(trans[d, b])
                if e >= 0 and e not in seen:
                    seen[e] = seen[d] + bytes([b])
                    queue.append(e)
    return out


# -- the chart ----------------------------------------------------------------------------

class _Chart:
    """Terminal edges over the canvas and the worklist of derived triples, with one
    derivation kept per triple (for the witness)."""

    def __init__(self, canvas: _Canvas, tables: _Tables, budget: int, strict: bool = False,
                 cache: "_EdgeCache | None" = None) -> None:
        self.canvas, self.tables, self.budget, self.strict, self.cache = canvas, tables, budget, strict, cache
        self.ends: dict[tuple[int, str], set[int]] = {}     # (p, X) -> {q}
        self.starts: dict[tuple[int, str], set[int]] = {}   # (q, X) -> {p}
        self.back: dict[tuple[int, str, int], tuple] = {}
        self.queue: deque = deque()
        self._edges: dict[tuple[int, str], list[int]] = {}
        self._reach = tables.reach
        self._ignored: dict[int, dict[int, int | None]] = {}
        self._extend: set[tuple[str, int, int]] = set()   # strict: lexemes that must read hole text at their end

    # edges
    def edges(self, p: int, name: str) -> list[int]:
        """The canvas states a lexeme of terminal ``name`` can end at, starting at ``p``."""
        key = (p, name)
        out = self._edges.get(key)
        if out is None:
            hit = self.cache.get(p, name, self.strict) if self.cache is not None else None
            if hit is not None:
                out, extend = hit
                self._extend.update((name, p, q) for q in extend)
            else:
                out, last = self._walk(p, name)
                if self.strict:
                    out = self._lexer_ends(p, name, out)
                if self.cache is not None:
                    self.cache.put(p, name, self.strict, out, [q for q in out if (name, p, q) in self._extend], last)
            self._edges[key] = out
        return out

    def _lexer_ends(self, p: int, name: str, ends: list[int]) -> list[int]:
        """Of ``ends``, those the lexer can also end at (a heuristic for witnesses, never for
        "no"): not where the same terminal matches on through fixed text, and not a lexeme of
        fixed text that a terminal the lexer prefers on a tie also matches (a keyword that
        ``NAME`` matches too); before a hole, such a lexeme must go on into the hole."""
        loop, data = self.canvas.loop, self.canvas.data
        out = []
        for i, q in enumerate(ends):
            nxt = ends[i + 1] if i + 1 < len(ends) else None
            if nxt is not None and self.canvas.fixed(q, nxt):
                continue
            if self.canvas.fixed(p, q) and self._preferred(data[p:q]) != name:
                if not loop[q]:
                    continue
                self._extend.add((name, p, q))   # only a lexeme that goes on into the hole
                if self._lexeme(name, p, q, _PRINTABLE) is None:
                    continue
            out.append(q)
        return out

    def _preferred(self, text: bytes) -> str | None:
        """The terminal the lexer takes for ``text`` on a tie among those that match it whole."""
        best = None
        for name in (*self.tables.lexical, *self.tables.ignore):
            trans, accepting = self.tables.terminals[name]
            d = 0
            for byte in text:
                d = int(trans[d, byte])
                if d < 0:
                    break
            if d >= 0 and accepting[d] and (best is None or self.tables.rank[name] < self.tables.rank[best]):
                best = name
        return best

    def _walk(self, p: int, name: str) -> tuple[list[int], int]:
        """(the ends of ``name``'s lexemes from ``p``, the last state whose byte was read)."""
        trans, accepting = self.tables.terminals[name]
        data, loop = self.canvas.data, self.canvas.loop
        states = self._close(name, {0}) if loop[p] else {0}
        out = []
        s = p
        while True:
            self._spend(len(states))
            if any(accepting[d] for d in states):
                out.append(s)
            if s == len(data):
                return out, s
            if self.canvas.wild[s]:
                states = {e for d in states for e in self._any(name, d)}
            else:
                byte = data[s]
                states = {e for d in states if (e := int(trans[d, byte])) >= 0}
            if not states:
                return out, s
            s += 1
            if loop[s]:
                states = self._close(name, states)

    def _any(self, name: str, d: int) -> list[int]:
        """The DFA states one byte (any) leads to from ``d``."""
        key = (name, -1 - d)
        out = self._reach.get(key)
        if out is None:
            out = self._reach[key] = [e for e in np.unique(self.tables.terminals[name][0][d]).tolist() if e >= 0]
        return out

    def _close(self, name: str, states: set[int]) -> set[int]:
        """The DFA states reachable from ``states`` by any bytes (inside a hole)."""
        out: set[int] = set()
        for d in states:
            r = self._reach.get((name, d))
            if r is None:
                trans = self.tables.terminals[name][0]
                seen, stack = {d}, [d]
                while stack:
                    e = stack.pop()
                    for f in np.unique(trans[e]).tolist():
                        if f >= 0 and f not in seen:
                            seen.add(f)
                            stack.append(f)
                r = self._reach[(name, d)] = frozenset(seen)
            out |= r
        return out

    def ignored(self, p: int) -> dict[int, int | None]:
        """States reachable from ``p`` through ignored lexemes, each with its predecessor."""
        out = self._ignored.get(p)
        if out is None:
            out, queue = {p: None}, deque([p])
            while queue:
                a = queue.popleft()
                for name in self.tables.ignore:
                    for b in self.edges(a, name):
                        if b not in out:
                            out[b] = a
                            queue.append(b)
            self._ignored[p] = out
        return out

    def _spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise BudgetExceeded("the completion check ran out of its budget")

    # worklist
    def add(self, p: int, name: str, q: int, how: tuple) -> None:
        if q in self.ends.get((p, name), ()):
            return
        self.ends.setdefault((p, name), set()).add(q)
        self.starts.setdefault((q, name), set()).add(p)
        self.back[(p, name, q)] = how
        self.queue.append((p, name, q))

    def run(self) -> tuple | None:
        """Derive triples from state 0 on; the start triple spanning the canvas, or None."""
        tables, final = self.tables, self.canvas.final
        seeded: set[int] = set()

        def seed(p: int) -> None:   # terminal triples from p: ignored text, then a lexeme
            if p in seeded:
                return
            seeded.add(p)
            for mid in self.ignored(p):
                for name in tables.lexical:
                    for q in self.edges(mid, name):
                        self.add(p, name, q, ("lexeme", mid))

        seed(0)
        while self.queue:
            p, x, q = self.queue.popleft()
            self._spend(1)
            if x == tables.start and p == 0 and final in self.ignored(q):
                return (0, x, q)
            seed(q)
            for a in tables.units.get(x, ()):
                self.add(p, a, q, ("unit", x))
            for a, c in tables.firsts.get(x, ()):
                for r in list(self.ends.get((q, c), ())):
                    self.add(p, a, r, ("pair", x, q, c))
            for a, b in tables.seconds.get(x, ()):
                for o in list(self.starts.get((p, b), ())):
                    self.add(o, a, q, ("pair", b, p, x))
        return None

    # witness
    def spans(self, root: tuple) -> list[tuple[str | None, int, int]]:
        """The lexemes of the derivation of ``root`` as (terminal, from, to), ignored text
        included (terminal name of an ignored lexeme)."""
        out: list = []
        stack = [root]
        while stack:
            p, x, q = stack.pop()
            how = self.back[(p, x, q)]
            if how[0] == "lexeme":
                out += self._ignored_path(p, how[1])
                out.append((x, how[1], q))
            elif how[0] == "unit":
                stack.append((p, how[1], q))
            else:
                _, b, mid, c = how
                stack.append((mid, c, q))   # popped after the left part
                stack.append((p, b, mid))
        out += self._ignored_path(root[2], self.canvas.final)
        return out

    def _ignored_path(self, a: int, b: int) -> list[tuple[str, int, int]]:
        pred = self.ignored(a)
        path = []
        while b != a:
            prev = pred[b]
            name = next(n for n in self.tables.ignore if b in self.edges(prev, n))
            path.append((name, prev, b))
            b = prev
        return path[::-1]

    def lexeme(self, name: str, a: int, b: int, first: list[int] = None) -> bytes:
        """A shortest lexeme of ``name`` reading the canvas from ``a`` to ``b`` (printable
        ASCII where it is inside a hole, tried in the order of ``first``)."""
        for alphabet in (first or _PRINTABLE, _PRINTABLE + _OTHER):
            out = self._lexeme(name, a, b, alphabet)
            if out is not None:
                return out
        raise AssertionError(f"no lexeme of {name} from {a} to {b}")

    def _lexeme(self, name: str, a: int, b: int, alphabet: list[int]) -> bytes | None:
        trans, accepting = self.tables.terminals[name]
        data, loop = self.canvas.data, self.canvas.loop
        extend = (name, a, b) in self._extend
        start = (a, 0, False)
        prev: dict = {start: None}
        queue = deque([start])
        while queue:
            s, d, grown = node = queue.popleft()
            if s == b and accepting[d] and (grown or not extend):
                out = bytearray()
                while prev[node] is not None:
                    node, byte = prev[node]
                    out.append(byte)
                return bytes(reversed(out))
            steps = []
            if s < len(data) and s < b:
                steps += [(s + 1, byte) for byte in alphabet] if self.canvas.wild[s] else [(s + 1, data[s])]
            if loop[s]:
                steps += [(s, byte) for byte in alphabet]
            for t, byte in steps:
                e = int(trans[d, byte])
                nxt = (t, e, grown or (t == s == b))
                if e >= 0 and nxt not in prev:
                    prev[nxt] = (node, byte)
                    queue.append(nxt)
        return None


def _separated(spans: list, canvas: _Canvas, separate: bool) -> list:
    """``spans``, with a separator (``None``) between lexemes that meet inside a hole if ``separate``."""
    if not separate:
        return spans
    out = []
    for i, span in enumerate(spans):
        if i and canvas.loop[span[1]]:
            out.append((None, span[1], span[1]))
        out.append(span)
    return out

"""Can text with holes still be completed to a word of the grammar? (additive infilling)

A canvas is a list of chunks: ``str``/``bytes`` (fixed text) and ``None`` (a hole: any text,
possibly empty). ``can_complete(grammar, chunks)`` says whether the holes can be filled so that
the whole text is a word; ``complete`` returns such a word. After Mündler, Dekoninck and
Vechev (2025), the question is decided over terminals:

1. **The canvas** is a byte automaton: states along the fixed bytes, with a loop on every byte
   at the states where a hole is (``Hole(min_bytes, max_bytes)``: that many bytes, each any
   byte, those past the minimum optional).
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

**Incremental checks** (``Canvas``): each cell gets room for a longer text, so canvas states
keep their numbers when a cell changes. Between checks a ``Canvas`` keeps every terminal's
lexeme ends (with the last state each walk read) and the worklist's chart: the triples that
read none of the changed cells' states stay, the states left of them whose lexemes reached
into the change are seeded again, and the worklist goes on from there. The last witness is
kept with the bytes it gave each cell: a check whose cells it still fits is answered by it.
The kept charts may hold other derivations than a fresh check's, so where their witnesses all
fail, a fresh check is made before the answer is called unknown.

**Candidates for one cell in one pass** (``Canvas.candidates``, ``Canvas.try_texts``): the
cell becomes a fork state with an arm per candidate (the arms' states numbered after the
canvas's, so no cell moves); lexeme walks go along every arm and meet again past the cell,
and every derived triple carries the bits of the candidates it can be derived through (set
intersection when two triples combine, union over derivations). A run asks for some bits and
works only on triples that carry one of them (the rest wait for a run that wants them), so
asking in order of preference stops at the first candidate derived; a candidate whose work
runs out does not fit, and that is final. One that is derived is verified like any check: a
witness from its derivation in the pass (kept per bit), else from the witness chart brought to
that candidate, else a fresh check.

``budget`` caps the worklist's steps; past it, ``BudgetExceeded``.
"""
from __future__ import annotations

import bisect
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
    """A hole of at least ``min_bytes`` and at most ``max_bytes`` bytes (None: no limit;
    ``None`` as a chunk is ``Hole(0)``): e.g. a masked diffusion position, which will hold a
    token of one byte or more."""
    min_bytes: int = 0
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.min_bytes < 0 or (self.max_bytes is not None and self.max_bytes < self.min_bytes):
            raise ValueError(f"a hole needs 0 <= min_bytes <= max_bytes, not {self.min_bytes}, {self.max_bytes}")


class BudgetExceeded(GCDError):
    """A completion check ran out of its budget, or found completions only under the loose
    reading (see ``gcd.holes``): its answer is not known."""


def can_complete(grammar: Grammar, chunks: list, *, budget: int = DEFAULT_BUDGET) -> bool:
    """Whether the holes (``None``) among ``chunks`` can be filled so that the text is a word."""
    return complete(grammar, chunks, budget=budget) is not None


def complete(grammar: Grammar, chunks: list, *, budget: int = DEFAULT_BUDGET) -> str | None:
    """A word of ``grammar`` made of ``chunks`` with each hole filled (None: there is none)."""
    cells = _completion(grammar, chunks, budget, None)
    return None if cells is None else b"".join(cells).decode("utf-8")


def _completion(grammar: Grammar, chunks: list, budget: int, memory: "_Memory | None") -> list[bytes] | None:
    """The bytes each chunk holds in a word of ``grammar`` (None: no word has that shape)."""
    cells = [_cell(c) for c in chunks]
    if any(c is None for c in cells):   # a lone surrogate: no text holds it
        return None
    if all(c[0] is not None for c in cells):   # no hole: the text is what it is
        try:
            word = b"".join(c[0] for c in cells).decode("utf-8")
        except UnicodeDecodeError:
            return None
        return [c[0] for c in cells] if grammar.accepts(word) else None
    if memory is not None:
        kept = memory.witness_for(cells)
        if kept is not None:
            return kept
        canvas = memory.prepare(cells)
    else:
        canvas = _Canvas.of(cells)
    tables = _tables(grammar)

    def chart(strict: bool) -> _Chart:
        return (memory.chart(strict, tables, canvas, cells, budget) if memory is not None
                else _Chart(canvas, tables, budget, strict))

    def run(chart: _Chart) -> list:
        return memory.run(chart) if memory is not None else chart.run()

    decision = chart(False)
    roots = run(decision)
    if not roots:
        return None
    # witnesses: from a chart whose lexemes end where the lexer would end them, then from this one
    strict = chart(True)
    for source, found in ((strict, run(strict)), (decision, roots)):
        out = _verified(grammar, tables, canvas, source, source.spans(found[0][0])) if found else None
        if out is not None:
            if memory is not None:
                memory.witness = out
            return out
    if memory is not None:   # the kept charts' derivations differ from a fresh check's: try one
        out = _completion(grammar, chunks, budget, None)
        memory.witness = out
        return out
    raise BudgetExceeded("a completion exists as a sequence of the grammar's terminals, but the witnesses tried "
                         "do not lex as a word under longest match; the answer is not known")


def _verified(grammar: Grammar, tables: "_Tables", canvas: "_Canvas", chart: "_Chart",
              spans: list[tuple[str | None, int, int]]) -> list[bytes] | None:
    """The bytes each cell holds in the first word built from the lexemes ``spans`` (shortest
    lexemes, printable text in holes, then newlines first, then separators between lexemes
    that meet in a hole) that ``Grammar.accepts``; None if none is a word."""
    for separator, alphabet in [(None, _PRINTABLE), (None, _LINES_FIRST),
                                *((sep, _PRINTABLE) for sep in tables.separators)]:
        pieces = [[(byte, ("loop", a)) for byte in separator] if kind is None else chart.lexeme(kind, a, b, alphabet)
                  for kind, a, b in _separated(spans, canvas, separator is not None)]
        placed = [pair for piece in pieces for pair in piece]
        try:
            word = bytes(byte for byte, _ in placed).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if grammar.accepts(word):
            return canvas.split(placed)
    return None


def _cell(chunk) -> tuple | None:
    """A chunk as (text or None, min bytes, max bytes or None); None for text no UTF-8 holds."""
    if chunk is None:
        return (None, 0, None)
    if isinstance(chunk, Hole):
        return (None, chunk.min_bytes, chunk.max_bytes)
    if isinstance(chunk, str):
        try:
            chunk = chunk.encode("utf-8")
        except UnicodeEncodeError:
            return None
    if not isinstance(chunk, (bytes, bytearray)):
        raise TypeError(f"a chunk is str, bytes or None (a hole), not {type(chunk).__name__}")
    return (bytes(chunk), len(chunk), len(chunk))


class Canvas:
    """Repeated completion checks on a canvas of cells, as its cells are filled in (diffusion
    decoding sets one position at a time): ``Canvas(grammar, cells)``, ``set(i, cell)``,
    ``can_complete()``, ``fill()``, ``try_texts(i, texts)``. A cell is fixed text
    (``str``/``bytes``) or a hole (``None`` or ``Hole``). The answer is
    ``can_complete(grammar, cells)``'s; what is kept between checks (see ``gcd.holes``) makes
    a check after one cell changed cost about the work that reads that cell."""

    def __init__(self, grammar: Grammar, cells: list, *, budget: int = DEFAULT_BUDGET) -> None:
        self.grammar, self.budget = grammar, budget
        self.cells = list(cells)
        self._memory = _Memory()

    def set(self, i: int, cell) -> None:
        """Put ``cell`` (text or a hole) at position ``i``."""
        self.cells[i] = cell

    def can_complete(self) -> bool:
        return self.fill() is not None

    def fill(self) -> list[bytes] | None:
        """The bytes each cell holds in a word of the grammar (their join is the word), or None."""
        return _completion(self.grammar, self.cells, self.budget, self._memory)

    def try_texts(self, i: int, texts: list) -> list[bool]:
        """For each candidate text in ``texts``, whether the canvas with it at ``i`` can be
        completed (the canvas is left as it was); see ``candidates``."""
        options = self.candidates(i, texts)
        return [options.fill(j) is not None for j in range(len(texts))]

    def candidates(self, i: int, texts: list) -> "Candidates":
        """Candidate texts (``str``/``bytes``) for cell ``i``, decided in one pass: the cell
        becomes a fork into every candidate's bytes and each derived triple carries the set of
        candidates it reads through (a bit mask), so the chart outside the cell and every
        triple that reads it are derived once for all. A candidate no derivation reads through
        does not fit (final); ``Candidates.fill(j)`` verifies the others one at a time, when
        asked, with a witness built from that pass."""
        return Candidates(self, i, texts)


class Candidates:
    """The answers of ``Canvas.candidates``: ``fill(j)`` is the bytes each cell holds in a word
    with candidate ``j`` at the cell (None: none fits), as ``Canvas.fill`` with that text set
    would say. The pass stops as soon as the candidate asked about is derived and goes on
    from there when another is asked about (asking in order of preference, the first that
    fits costs about one check; a candidate that does not fit costs the whole pass, which
    then answers every other one too)."""

    def __init__(self, canvas: Canvas, i: int, texts: list) -> None:
        self._canvas, self._i = canvas, i
        self._chunks = [[*canvas.cells[:i], t, *canvas.cells[i + 1:]] for t in texts]
        self._fills: dict[int, list[bytes] | None] = {}
        options = [_cell(t) for t in texts]
        if any(o is not None and o[0] is None for o in options):
            raise TypeError("a candidate is text (str or bytes), not a hole")
        cells = [_cell(c) for c in canvas.cells]
        usable = [j for j, o in enumerate(options) if o is not None]   # a lone surrogate never fits
        if any(c is None for k, c in enumerate(cells) if k != i):
            usable = []
        self._bits = {j: 1 << n for n, j in enumerate(usable)}
        self._roots: dict[int, tuple] = {}
        self._refused = 0                            # bits the pass ran out of work for
        self._tables = _tables(canvas.grammar)
        if usable:
            memory = canvas._memory
            cells[i] = (_Choice(tuple(options[j][0] for j in usable)), 0, 0)
            self._union = memory.prepare(cells)
            self._chart = memory.chart(False, self._tables, self._union, cells, canvas.budget)
            self._moves = memory.moves[False]

    def fill(self, j: int) -> list[bytes] | None:
        """The bytes each cell holds in a word with candidate ``j`` at the cell, or None."""
        if j not in self._fills:
            self._fills[j] = self._fill(j)
        return self._fills[j]

    def _fill(self, j: int) -> list[bytes] | None:
        canvas, memory, tables = self._canvas, self._canvas._memory, self._tables
        if j not in self._roots and (j not in self._bits or self._bits[j] & self._refused):
            return None                              # no derivation reads through it: final
        cells = [_cell(c) for c in self._chunks[j]]
        kept = memory.witness_for(cells)
        if kept is not None:
            return kept
        intact = memory.charts.get(False) is self._chart and memory.moves[False] == self._moves
        if j not in self._roots:
            if not intact:                           # the pass is gone: a check of its own
                return _completion(canvas.grammar, self._chunks[j], canvas.budget, memory)
            self._run(self._bits[j])
            if j not in self._roots:
                return None
        # a witness: from the pass (no chart to run), then from the witness chart brought to this candidate
        out = None
        if intact:
            room = list(memory.room)
            room[self._i] = max(room[self._i], len(cells[self._i][0]))
            line = _Canvas.of(cells, room)
            place = self._placement(j, len(cells[self._i][0]), room[self._i] - memory.room[self._i])
            spans = [(kind, place(a), place(b)) for kind, a, b in self._chart.spans(self._roots[j], self._bits[j])]
            out = _verified(canvas.grammar, tables, line, _Chart(line, tables, canvas.budget), spans)
        if out is None:
            line = memory.prepare(cells)
            strict = memory.chart(True, tables, line, cells, canvas.budget)
            found = memory.run(strict)
            out = _verified(canvas.grammar, tables, line, strict, strict.spans(found[0][0])) if found else None
        if out is None:                              # the kept charts' derivations differ from a fresh check's
            out = _completion(canvas.grammar, self._chunks[j], canvas.budget, None)
        memory.witness = out
        return out

    def _run(self, want: int) -> None:
        """Go on with the pass until the candidates ``want`` are derived or nothing is left."""
        roots = self._canvas._memory.run(self._chart, want)
        found = 0
        for root, bits in roots:
            found |= bits
            for j, bit in self._bits.items():
                if bits & bit:
                    self._roots.setdefault(j, root)
        self._refused |= want & ~found

    def _placement(self, j: int, length: int, grown: int):
        """State numbers of the canvas with the choice -> those of the canvas with candidate ``j``
        (``length`` bytes; its cell has ``grown`` more positions)."""
        fork = self._union.starts[self._i]
        join, arms = self._union.fork[fork]
        first = arms[self._bits[j].bit_length() - 1][0]
        after = self._union.starts[self._i + 1] if self._i + 1 < len(self._union.starts) else self._union.final
        end = first + length

        def place(s: int) -> int:
            if s == fork:
                return fork if first != join else join + grown
            if first <= s < end and first != join:
                return fork + (s - first)
            return s + grown if s >= after else s
        return place


class _Memory:
    """What a ``Canvas`` keeps between checks: the room each cell has, the two charts
    (decision, witness; each with its lexeme ends) with the cells each was last brought to,
    the last witness."""

    def __init__(self) -> None:
        self.room: list[int] | None = None
        self.charts: dict[bool, _Chart] = {}    # strict -> chart
        self.cells: dict[bool, list] = {}       # strict -> the cells its chart and lexeme ends are of
        self.moves = {False: 0, True: 0}        # strict -> how often its chart was brought to other cells
        self.witness: list[bytes] | None = None

    def witness_for(self, cells: list) -> list[bytes] | None:
        """The last witness, if its bytes still fit every cell."""
        w = self.witness
        if w is None or len(w) != len(cells):
            return None
        for (text, lo, hi), got in zip(cells, w):
            if (got != text) if text is not None else not (lo <= len(got) and (hi is None or len(got) <= hi)):
                return None
        return w

    def prepare(self, cells: list) -> "_Canvas":
        """The canvas of ``cells``, each cell with the room it keeps (when one outgrows it, all
        get more and everything kept is dropped)."""
        size = [_positions(c) for c in cells]
        if self.room is None or len(self.room) != len(cells) or any(s > r for s, r in zip(size, self.room)):
            self.room = [max(2 * s, 8) for s in size]
            self.cells.clear()
            self.charts.clear()
        return _Canvas.of(cells, self.room)

    def chart(self, strict: bool, tables: "_Tables", canvas: "_Canvas", cells: list, budget: int) -> "_Chart":
        """The kept chart (``strict``: of the lexer's lexeme ends) brought to ``cells``
        (``canvas``, prepared): what read the cells that changed is dropped."""
        chart = self.charts.get(strict)
        if chart is None or chart.tables is not tables:
            chart = self.charts[strict] = _Chart(canvas, tables, budget, strict)
            self.moves[strict] += 1
        else:
            changed = [k for k, (a, b) in enumerate(zip(self.cells[strict], cells)) if a != b]
            chart.canvas = canvas
            if changed:   # (the loops of the cells that changed sit up to where the next one begins)
                chart.resume(canvas.starts[changed[0]], canvas.begins[changed[-1] + 1])
                self.moves[strict] += 1
        self.cells[strict] = list(cells)
        chart.canvas, chart.budget = canvas, budget
        return chart

    def run(self, chart: "_Chart", want: int = -1) -> list:
        """``chart.run(want)``; a kept chart the budget stopped half way is dropped (the next
        check starts it afresh)."""
        try:
            return chart.run(want)
        except BudgetExceeded:
            if self.charts.get(chart.strict) is chart:
                del self.charts[chart.strict]
            raise


def _positions(cell: tuple) -> int:
    """How many byte positions a cell takes on the canvas (a choice: its fork state)."""
    text, lo, hi = cell
    if isinstance(text, _Choice):
        return 1
    return len(text) if text is not None else (lo if hi is None else hi)


@dataclass(frozen=True)
class _Choice:
    """The text of a cell that holds one of several candidates (``Canvas.candidates``)."""
    texts: tuple[bytes, ...]


# -- the canvas --------------------------------------------------------------------------

@dataclass(frozen=True)
class _Canvas:
    """A byte automaton. The byte at position ``s`` is read from state ``s`` and leads to
    ``nxt[s]`` (cells may have room left after their bytes: the next cell's states keep their
    numbers when a cell grows); ``data[s]`` is that byte, or any byte where ``wild[s]``, and
    may be left out where ``skip[s]``; ``loop[s]``: a hole of any length sits at state ``s``.
    ``starts[k]``: where cell ``k``'s positions begin; ``begins[k]``: the state where it begins
    (an empty cell's is the next one's); words run from ``begins[0]`` to ``final``. A choice
    cell begins with a fork state, which reads no byte and leads to each candidate's first
    position (or past the cell, for an empty one) with the candidate's bit: ``fork[s]``; the
    candidates' positions come after ``final`` (their last byte leads past the cell), so the
    states of the cells keep their numbers."""
    data: bytes
    nxt: tuple[int, ...]
    loop: tuple[bool, ...]
    wild: tuple[bool, ...]
    skip: tuple[bool, ...]
    starts: tuple[int, ...]
    begins: tuple[int, ...]
    final: int
    loop_cell: dict                      # loop state -> the hole cell it belongs to
    fork: dict                           # fork state -> (state past the cell, ((first state, bit), ...))

    @staticmethod
    def of(cells: list, room: list[int] | None = None) -> "_Canvas":
        size = [_positions(c) for c in cells]
        room = room or size
        starts = [0]
        for r in room:
            starts.append(starts[-1] + r)
        final = starts.pop()
        canon = [final] * (len(cells) + 1)   # the state where cell k begins (empty cells share the next one's)
        for k in range(len(cells) - 1, -1, -1):
            canon[k] = starts[k] if size[k] else canon[k + 1]
        arms = sum(len(option) for text, _, _ in cells if isinstance(text, _Choice) for option in text.texts)
        data, nxt = bytearray(final + 1 + arms), list(range(1, final + 2 + arms))
        loop, wild, skip = [False] * (final + 1 + arms), [False] * (final + 1 + arms), [False] * (final + 1 + arms)
        loop_cell, fork = {}, {}
        at = final + 1                        # candidates' bytes: after the canvas, so no cell moves
        for k, (text, lo, hi) in enumerate(cells):
            b, n = starts[k], size[k]
            if isinstance(text, _Choice):
                firsts = []
                for bit, option in enumerate(text.texts):
                    data[at:at + len(option)] = option
                    firsts.append((at if option else canon[k + 1], 1 << bit))
                    at += len(option)
                    if option:
                        nxt[at - 1] = canon[k + 1]
                fork[b] = (canon[k + 1], tuple(firsts))
                continue
            if text is not None:
                data[b:b + n] = text
            else:
                wild[b:b + n] = [True] * n
                if hi is None:
                    loop[canon[k + 1]] = True
                    loop_cell.setdefault(canon[k + 1], k)
                else:
                    skip[b + lo:b + n] = [True] * (n - lo)
            if n:
                nxt[b + n - 1] = canon[k + 1]
        return _Canvas(bytes(data), tuple(nxt), tuple(loop), tuple(wild), tuple(skip), tuple(starts),
                       tuple(canon), final, loop_cell, fork)

    @property
    def start(self) -> int:
        return self.begins[0]

    def fixed(self, p: int, q: int) -> bool:
        """Are the bytes read from state ``p`` to ``q`` all given (no hole on the way)?"""
        return not any(self.loop[p:q]) and not any(self.wild[p:q])

    def text(self, p: int, q: int) -> bytes:
        """The bytes from state ``p`` to ``q`` (fixed ones)."""
        out = bytearray()
        while p != q:
            out.append(self.data[p])
            p = self.nxt[p]
        return bytes(out)

    def split(self, placed: list[tuple[int, tuple]]) -> list[bytes]:
        """Bytes placed on the canvas (each with ("at", position) or ("loop", state)) as the
        bytes of each cell."""
        out = [bytearray() for _ in self.starts]
        for byte, (how, s) in placed:
            out[self.loop_cell[s] if how == "loop" else bisect.bisect_right(self.starts, s) - 1].append(byte)
        return [bytes(b) for b in out]


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
        rank[str(t.name)] = Grammar.terminal_rank(t)
        if p.type == "str" and not p.flags:
            dfa = literal_dfa(p.value.encode("utf-8"))
        else:
            dfa = regex_to_dfa(p.to_regexp(), name=t.name, fullmatch=True)
        terminals[str(t.name)] = (dfa.transitions, dfa.accepting)
    units: dict = {}
    firsts: dict = {}
    seconds: dict = {}
    for i, rule in enumerate(grammar.rules):
        names = [str(s.name) for s in rule.expansion]   # plain str: lark's Token compares slowly
        head = str(rule.origin.name)
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
    ignore = [str(n) for n in grammar.ignore if n in terminals]
    separators = sorted({w for n in ignore for w in _short_lexemes(*terminals[n])}, key=lambda w: (len(w), w != b" "))
    lexical = sorted({str(s.name) for r in grammar.rules for s in r.expansion if s.is_term})
    return _Tables(terminals, rank, lexical, ignore, str(grammar.start), units, firsts, seconds, separators[:4])


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
    derivation kept per triple (for the witness). On a canvas with a choice cell, a triple
    has a tag: the bits of the candidates it can be derived through (none kept: all of
    them), and keeps for each bit the first derivation that gave it. ``store`` memoises
    lexeme ends: (p, terminal) -> (ends, their bits, extend, last state read)."""

    def __init__(self, canvas: _Canvas, tables: _Tables, budget: int, strict: bool = False) -> None:
        self.canvas, self.tables, self.budget, self.strict = canvas, tables, budget, strict
        self.store: dict[tuple[int, str], tuple] = {}
        self.ends: dict[tuple[int, str], set[int]] = {}     # (p, X) -> {q}
        self.starts: dict[tuple[int, str], set[int]] = {}   # (q, X) -> {p}
        self.back: dict[tuple[int, str, int], tuple] = {}   # triple -> its first derivation
        self.tags: dict[tuple[int, str, int], int] = {}     # triple -> its bits, where not all
        self.via: dict[tuple[int, str, int], list[tuple[int, tuple]]] = {}   # tagged triple -> [(bits, derivation)]
        self.queue: deque = deque()                         # (p, X, q, bits new to it; -1: all)
        self.later: list[tuple] = []                        # queued for candidates not asked about yet
        self.forked = False                                 # has run on a canvas with a choice
        self.seeded: dict[int, int] = {}                    # seeded state -> last state its lexemes read
        self._reseed: list[int] = []
        self._reach = tables.reach
        self._ignored: dict[int, tuple[dict, dict, int]] = {}
        self._extend: set[tuple[str, int, int]] = set()   # strict: lexemes that must read hole text at their end

    def resume(self, lo: int, hi: int) -> None:
        """Go on with ``canvas`` (set first), whose states up to ``hi`` may be read otherwise
        from ``lo`` on: the lexeme ends and triples that read any of ``lo..hi`` or a candidate's
        bytes (states past ``final``) are dropped, and the states left of them whose lexemes
        read into them are seeded again when the worklist runs."""
        final = self.canvas.final
        forked, self.forked = self.forked, False
        stale = [k for k, v in self.store.items() if v[3] >= lo and k[0] <= hi or forked and k[0] > final]
        if self.strict:   # a lexeme the lexer ends only if it stops there may be read differently
            lo = min([lo, *(self.store[k][0][0] for k in stale if self.store[k][0])])   # from the first end on
        for key in stale:
            del self.store[key]
        for t in [t for t in self.back if t[2] >= lo and t[0] <= hi or forked and t[0] > final]:
            p, x, q = t
            del self.back[t]
            self.ends[(p, x)].discard(q)
            self.starts[(q, x)].discard(p)
            if self.via:
                self.tags.pop(t, None)
                self.via.pop(t, None)
        self.queue = deque(t for t in self.queue if t[:3] in self.back)
        self.later = [t for t in self.later if t[:3] in self.back]
        for p, last in list(self.seeded.items()):
            if lo <= p <= hi or p > final:
                del self.seeded[p]
            elif p < lo <= last:
                del self.seeded[p]
                self._reseed.append(p)
        self._ignored = {p: v for p, v in self._ignored.items() if hi < p <= final or v[2] < lo}
        self._extend = {e for e in self._extend if e[2] < lo or e[1] > hi}

    # edges
    def _edge(self, p: int, name: str) -> tuple[list[int], list[int] | None, list[int], int]:
        """(the ends of ``name``'s lexemes from ``p``, the bits of the candidates each reads
        through (None: all, the lexeme reads no choice), those that must read hole text at
        their end (strict), the last state whose byte the walk read)."""
        key = (p, name)
        hit = self.store.get(key)
        if hit is None:
            ends, bits, last = self._walk(p, name)
            extend: list[int] = []
            if self.strict:
                ends, extend = self._lexer_ends(p, name, ends)
            hit = self.store[key] = (ends, bits, extend, last)
        if hit[2]:
            self._extend.update((name, p, q) for q in hit[2])
        return hit

    def _lexer_ends(self, p: int, name: str, ends: list[int]) -> tuple[list[int], list[int]]:
        """Of ``ends`` (on a canvas without a choice), those the lexer can also end at (a
        heuristic for witnesses, never for "no"): not where the same terminal matches on
        through fixed text, and not a lexeme of fixed text that a terminal the lexer prefers on
        a tie also matches (a keyword that ``NAME`` matches too); before a hole, such a lexeme
        must go on into the hole (the second list)."""
        canvas = self.canvas
        out, extend = [], []
        for i, q in enumerate(ends):
            nxt = ends[i + 1] if i + 1 < len(ends) else None
            if nxt is not None and canvas.fixed(q, nxt):
                continue
            if canvas.fixed(p, q) and self._preferred(canvas.text(p, q)) != name:
                if not canvas.loop[q]:
                    continue
                self._extend.add((name, p, q))   # only a lexeme that goes on into the hole
                if self._lexeme(name, p, q, _PRINTABLE) is None:
                    continue
                extend.append(q)
            out.append(q)
        return out, extend

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


    def _walk(self, p: int, name: str) -> tuple[list[int], list[int] | None, int]:
        """(the ends of ``name``'s lexemes from ``p``, the bits of the candidates each reads
        through (None on a canvas without a choice: all), the last state whose byte was read).
        At a fork the walk goes on along each candidate; those that meet past the choice in
        the same DFA states go on from there as one."""
        trans, accepting = self.tables.terminals[name]
        canvas = self.canvas
        data, loop, wild, skip, nxt, final, fork = (canvas.data, canvas.loop, canvas.wild, canvas.skip, canvas.nxt,
                                                    canvas.final, canvas.fork)
        if not loop[p] and p != final and not wild[p] and p not in fork and trans[0, data[p]] < 0:
            return [], None, p                # the first byte already fails
        ends: dict[int, int] = {}
        walks = [(p, self._close(name, {0}) if loop[p] else {0}, -1, None)]
        met: dict[tuple[int, frozenset], int] = {}   # (state past the choice, DFA states) -> bits
        last = p
        while walks or met:
            if not walks:
                walks = [(s, set(states), bits, None) for (s, states), bits in met.items()]
                met = {}
            s, states, bits, join = walks.pop()
            while True:
                if s == join:             # past the choice: wait for the other candidates' walks
                    key = (s, frozenset(states))
                    met[key] = met.get(key, 0) | bits
                    break
                self._spend(len(states))
                if any(accepting[d] for d in states):
                    ends[s] = ends.get(s, 0) | bits
                if s > last:
                    last = s
                if s == final:
                    break
                if s in fork:
                    join, arms = fork[s]
                    for first, bit in arms:
                        if bits & bit:
                            walks.append((first, self._close(name, states) if loop[first] else states, bits & bit, join))
                    break
                if wild[s]:
                    after = {e for d in states for e in self._any(name, d)}
                    if skip[s]:
                        after |= states
                else:
                    byte = data[s]
                    after = {e for d in states if (e := int(trans[d, byte])) >= 0}
                if not after:
                    break
                s = nxt[s]
                states = self._close(name, after) if loop[s] else after
        if not fork:
            return list(ends), None, last     # one walk: in order, every candidate
        order = sorted(ends)
        return order, [ends[q] for q in order], last
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

    def ignored(self, p: int) -> tuple[dict[int, int], dict[int, list[tuple]], int]:
        """(the states reachable from ``p`` through ignored lexemes and left-out bytes, each
        with its bits; how each was reached: [(predecessor, ignored terminal or None for a
        left-out byte, bits)], first first; the last state read)."""
        hit = self._ignored.get(p)
        if hit is None:
            final = self.canvas.final
            reach, how = {p: -1}, {p: []}
            queue, last = deque([(p, -1)]), p
            while queue:
                a, bits = queue.popleft()
                last = max(last, a)
                steps = ([] if a == final or not self.canvas.skip[a] else [(self.canvas.nxt[a], None, bits)])
                for name in self.tables.ignore:
                    ends, tags, _, read = self._edge(a, name)
                    last = max(last, read)
                    steps += ([(b, name, bits & tag) for b, tag in zip(ends, tags)] if tags else
                              [(b, name, bits) for b in ends])
                for b, name, tag in steps:
                    new = tag & ~reach.get(b, 0)
                    if new:
                        reach[b] = reach.get(b, 0) | new
                        how.setdefault(b, []).append((a, name, new))
                        queue.append((b, new))
            hit = self._ignored[p] = (reach, how, last)
        return hit

    def _spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise BudgetExceeded("the completion check ran out of its budget")

    # worklist
    def add(self, p: int, name: str, q: int, bits: int, how: tuple) -> None:
        """Derive the triple (p, name, q) through the candidates ``bits`` (-1: all), by ``how``."""
        t = (p, name, q)
        if q in self.ends.get((p, name), ()):
            old = self.tags.get(t, -1)
            bits &= ~old
            if not bits:
                return
            self.tags[t] = old | bits
            self.via[t].append((bits, how))
        else:
            self.ends.setdefault((p, name), set()).add(q)
            self.starts.setdefault((q, name), set()).add(p)
            self.back[t] = how
            if bits != -1:
                self.tags[t] = bits
                self.via[t] = [(bits, how)]
        self.queue.append((p, name, q, bits))

    def _seed(self, p: int) -> None:
        """Terminal triples from ``p``: ignored text, then a lexeme."""
        reach, _, last = self.ignored(p)
        for mid, bits in reach.items():
            for name in self.tables.lexical:
                ends, tags, _, read = self._edge(mid, name)
                if read > last:
                    last = read
                if tags is None:
                    for q in ends:
                        self.add(p, name, q, bits, ("lexeme", mid))
                else:
                    for q, tag in zip(ends, tags):
                        if bits & tag:
                            self.add(p, name, q, bits & tag, ("lexeme", mid))
        self.seeded[p] = last

    def run(self, want: int = -1) -> list[tuple[tuple, int]]:
        """Derive triples from the canvas's start on until the start triples spanning the canvas
        cover the bits ``want`` (-1: any one, on a canvas without a choice) or nothing is left
        to derive for them (work only other candidates need waits for a run that wants them);
        those start triples with their bits."""
        tables, start, final, top = self.tables, self.canvas.start, self.canvas.final, self.tables.start
        self.forked = self.forked or bool(self.canvas.fork)
        roots: list[tuple[tuple, int]] = []
        found = 0

        def spans_all(p: int, x: str, q: int, bits: int) -> bool:
            nonlocal found
            if x == tables.start and p == start:
                bits &= self.ignored(q)[0].get(final, 0)
                if bits & ~found:
                    roots.append(((p, x, q), bits & ~found))
                    found |= bits
            return found & want == want

        for q in list(self.ends.get((start, top), ())):   # carried over from an earlier check
            if spans_all(start, top, q, self.tags.get((start, top, q), -1)):
                return roots
        if self.later:
            waiting = self.later
            self.queue.extend(item for item in waiting if item[3] & want)
            self.later = [item for item in waiting if not item[3] & want]
        if start not in self.seeded:
            self._seed(start)
        while self._reseed:
            self._seed(self._reseed.pop())
        seeded, units, firsts, seconds, ends, starts, add, tags = (
            self.seeded, tables.units, tables.firsts, tables.seconds, self.ends, self.starts, self.add, self.tags)
        while self.queue:
            p, x, q, bits = item = self.queue.popleft()
            if x == top and p == start and spans_all(p, x, q, bits):
                self.queue.appendleft(item)   # not combined yet: left for a later check
                return roots
            if not bits & want:
                self.later.append(item)
                continue
            self._spend(1)
            if q not in seeded:
                self._seed(q)
            if tags:   # a choice: a triple there already may gain bits
                for a in units.get(x, ()):
                    add(p, a, q, bits, ("unit", x))
                for a, c in firsts.get(x, ()):
                    for r in list(ends.get((q, c), ())):
                        if bits & tags.get((q, c, r), -1):
                            add(p, a, r, bits & tags.get((q, c, r), -1), ("pair", x, q, c))
                for a, b in seconds.get(x, ()):
                    for o in list(starts.get((p, b), ())):
                        if bits & tags.get((o, b, p), -1):
                            add(o, a, q, bits & tags.get((o, b, p), -1), ("pair", b, p, x))
                continue
            for a in units.get(x, ()):
                if q not in ends.get((p, a), ()):
                    add(p, a, q, -1, ("unit", x))
            for a, c in firsts.get(x, ()):
                have = ends.get((p, a), ())
                for r in list(ends.get((q, c), ())):
                    if r not in have:
                        add(p, a, r, -1, ("pair", x, q, c))
                        have = ends[(p, a)]
            for a, b in seconds.get(x, ()):
                for o in list(starts.get((p, b), ())):
                    if q not in ends.get((o, a), ()):
                        add(o, a, q, -1, ("pair", b, p, x))
        return roots

    # witness
    def spans(self, root: tuple, bit: int = -1) -> list[tuple[str | None, int, int]]:
        """The lexemes of a derivation of ``root`` through the candidate ``bit`` (-1: no
        choice) as (terminal, from, to), ignored text included (terminal name of an ignored
        lexeme)."""
        out: list = []
        stack = [root]
        while stack:
            p, x, q = stack.pop()
            how = next(how for bits, how in self.via[(p, x, q)] if bits & bit) if (p, x, q) in self.via else self.back[(p, x, q)]
            if how[0] == "lexeme":
                out += self._ignored_path(p, how[1], bit)
                out.append((x, how[1], q))
            elif how[0] == "unit":
                stack.append((p, how[1], q))
            else:
                _, b, mid, c = how
                stack.append((mid, c, q))   # popped after the left part
                stack.append((p, b, mid))
        out += self._ignored_path(root[2], self.canvas.final, bit)
        return out

    def _ignored_path(self, a: int, b: int, bit: int) -> list[tuple[str, int, int]]:
        how = self.ignored(a)[1]
        path = []
        while b != a:
            prev, name, _ = next(step for step in how[b] if step[2] & bit)
            if name is not None:   # None: a left-out byte
                path.append((name, prev, b))
            b = prev
        return path[::-1]

    def lexeme(self, name: str, a: int, b: int, first: list[int] = None) -> list[tuple[int, tuple]]:
        """A shortest lexeme of ``name`` reading the canvas from ``a`` to ``b`` (printable
        ASCII where it is inside a hole, tried in the order of ``first``), each byte with
        where it sits: ("at", position) or ("loop", state)."""
        canvas = self.canvas
        if canvas.fixed(a, b) and (name, a, b) not in self._extend:   # fixed text: itself, if a lexeme
            trans, accepting = self.tables.terminals[name]
            out, s, d = [], a, 0
            while s != b and d >= 0:
                out.append((canvas.data[s], ("at", s)))
                d, s = int(trans[d, canvas.data[s]]), canvas.nxt[s]
            if d >= 0 and accepting[d]:
                return out
        for alphabet in (first or _PRINTABLE, _PRINTABLE + _OTHER):
            out = self._lexeme(name, a, b, alphabet)
            if out is not None:
                return out
        raise AssertionError(f"no lexeme of {name} from {a} to {b}")

    def _lexeme(self, name: str, a: int, b: int, alphabet: list[int]) -> list[tuple[int, tuple]] | None:
        """A shortest lexeme of ``name`` from ``a`` to ``b`` that no terminal the lexer prefers on
        a tie also matches (the rivals' DFA states go along in the search), else a shortest one."""
        trans, accepting = self.tables.terminals[name]
        tables = self.tables
        rivals = [tables.terminals[n] for n in (*tables.lexical, *tables.ignore) if tables.rank[n] < tables.rank[name]]
        canvas = self.canvas
        data, loop, nxt = canvas.data, canvas.loop, canvas.nxt
        extend = (name, a, b) in self._extend
        start = (a, 0, False, tuple(0 for _ in rivals))
        prev: dict = {start: None}
        queue = deque([start])
        fallback = None
        while queue:
            s, d, grown, rs = node = queue.popleft()
            if s == b and accepting[d] and (grown or not extend):
                out, back = [], node
                while prev[back] is not None:
                    back, byte, where = prev[back]
                    if byte is not None:
                        out.append((byte, where))
                out.reverse()
                if not any(r >= 0 and rival[1][r] for r, rival in zip(rs, rivals)):
                    return out
                fallback = fallback or out   # a terminal the lexer prefers on a tie matches it too
            steps = []
            if s != canvas.final and s < b:
                t = nxt[s]
                steps += [(t, byte) for byte in alphabet] if canvas.wild[s] else [(t, data[s])]
                if canvas.skip[s] and (t, d, grown, rs) not in prev:
                    prev[(t, d, grown, rs)] = (node, None, None)
                    queue.append((t, d, grown, rs))
            if loop[s]:
                steps += [(s, byte) for byte in alphabet]
            for t, byte in steps:
                e = int(trans[d, byte])
                if e < 0:
                    continue
                after = tuple(int(rival[0][r, byte]) if r >= 0 else -1 for r, rival in zip(rs, rivals))
                nxt_node = (t, e, grown or (t == s == b), after if any(r >= 0 for r in after) else ())
                if nxt_node not in prev:
                    prev[nxt_node] = (node, byte, ("loop", s) if t == s else ("at", s))
                    queue.append(nxt_node)
        return fallback


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

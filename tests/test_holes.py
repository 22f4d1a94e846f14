"""``gcd.can_complete`` / ``gcd.complete``: text with holes against the grammar.

- exact against brute force on a grammar with a finite language (every word enumerated, so a
  canvas has a completion iff some word matches ``c1 .* c2 .* ...``);
- words of user-style grammars (JSON, a config language with comments) cut into chunks, with
  holes where text was cut out, chunks starting and ending inside terminals, whitespace and
  comments: always completable, and the witness is a word that keeps every chunk in order;
- where gcd's longest-match lexing and "some terminal sequence" differ, the answer is a
  verified word or ``BudgetExceeded``, never a wrong yes.
"""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gcd
from gcd.testing import derivations

ROOT = Path(__file__).resolve().parent.parent

PAIRS = """
start: "(" item ("," item)? ")" | item
item: NUM | "x"
NUM: /[01]/
"""
ALPHABET = "()01x,"

CONFIG = r"""
start: stmt+
stmt: NAME "=" value ";"
value: NUMBER | STRING | "[" [value ("," value)*] "]"
NAME: /[a-z_][a-z0-9_]*/
NUMBER: /-?[0-9]+(\.[0-9]+)?/
STRING: /"[^"\n]*"/
COMMENT: /#[^\n]*/
%ignore /[ \t\n]+/
%ignore COMMENT
"""


def pattern(chunks: list) -> re.Pattern:
    """The canvas as a regular expression over bytes (match ``word.encode()``)."""
    def part(c) -> bytes:
        if c is None:
            return b".*"
        if isinstance(c, gcd.Hole):
            return b".{%d,%s}" % (c.min_bytes, b"" if c.max_bytes is None else b"%d" % c.max_bytes)
        return re.escape(c.encode() if isinstance(c, str) else c)
    return re.compile(b"".join(map(part, chunks)), re.DOTALL)


def fits(chunks: list, word: str) -> bool:
    return pattern(chunks).fullmatch(word.encode()) is not None


@pytest.fixture(scope="module")
def pairs():
    grammar = gcd.Grammar(PAIRS)
    language = [w for n in range(1, 6) for w in map("".join, itertools.product(ALPHABET, repeat=n))
                if grammar.accepts(w)]
    return grammar, language


def test_the_finite_language(pairs):
    _, language = pairs
    assert {"0", "x", "(1)", "(0,x)", "(x,x)"} <= set(language) and len(language) == 3 + 3 + 9


HOLES = st.one_of(st.none(), st.builds(lambda m, extra: gcd.Hole(m, None if extra is None else m + extra),
                                       st.integers(0, 2), st.none() | st.integers(0, 2)))


def canvases(text: st.SearchStrategy[str], holes: st.SearchStrategy = st.none()) -> st.SearchStrategy[list]:
    """Chunks of a text with holes cut into it (a hole may also replace nothing)."""
    @st.composite
    def cut(draw):
        s = draw(text)
        points = sorted(draw(st.lists(st.integers(0, len(s)), max_size=6)))
        out, last = [], 0
        for a, b in zip(points[::2], points[1::2] + [None] * (len(points) % 2)):
            b = len(s) if b is None else b
            out += [s[last:a], draw(holes)]
            last = b
        out.append(s[last:])
        return [c for c in out if c != ""]
    return cut()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_equals_brute_force_on_a_finite_language(pairs, data):
    grammar, language = pairs
    source = st.one_of(st.sampled_from(language), st.text(ALPHABET, max_size=6))
    chunks = data.draw(canvases(source, HOLES))   # holes of any length, or of bounded lengths
    expected = any(fits(chunks, w) for w in language)
    word = gcd.complete(grammar, chunks)
    assert (word is not None) == expected == gcd.can_complete(grammar, chunks), (chunks, word)
    if word is not None:
        assert grammar.accepts(word) and fits(chunks, word)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_a_canvas_changed_cell_by_cell_equals_brute_force(pairs, data):
    """A ``Canvas`` of a few cells set again and again (text, holes of any or bounded length,
    empty cells) answers every check as brute force does, and its fill is a word in its cells."""
    grammar, language = pairs
    cell = st.one_of(HOLES, st.text(ALPHABET, max_size=3))
    cells = data.draw(st.lists(cell, min_size=1, max_size=5))
    canvas = gcd.Canvas(grammar, cells)
    for _ in range(8):
        i = data.draw(st.integers(0, len(cells) - 1))
        cells[i] = data.draw(cell)
        canvas.set(i, cells[i])
        fill = canvas.fill()
        assert (fill is not None) == any(fits(cells, w) for w in language), cells
        if fill is not None:
            word = b"".join(fill).decode()
            assert grammar.accepts(word) and all(pattern([c]).fullmatch(f) for c, f in zip(cells, fill)), (cells, fill)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_candidates_for_one_cell_equal_brute_force(pairs, data):
    """Several candidate texts for one cell, decided in one pass (``Canvas.candidates``),
    answer each as brute force does, on a canvas that was checked before (kept charts) or
    not, and the canvas's own answers afterwards are still brute force's."""
    grammar, language = pairs
    cell = st.one_of(HOLES, st.text(ALPHABET, max_size=3))
    cells = data.draw(st.lists(cell, min_size=1, max_size=5))
    canvas = gcd.Canvas(grammar, cells)
    if data.draw(st.booleans()):
        canvas.can_complete()
    i = data.draw(st.integers(0, len(cells) - 1))
    texts = data.draw(st.lists(st.text(ALPHABET, max_size=3), min_size=1, max_size=6))
    options = canvas.candidates(i, texts)
    for j in data.draw(st.permutations(range(len(texts)))):   # asked in any order
        trial = cells[:i] + [texts[j]] + cells[i + 1:]
        fill = options.fill(j)
        assert (fill is not None) == any(fits(trial, w) for w in language), (trial, fill)
        if fill is not None:
            assert grammar.accepts(b"".join(fill).decode()) and fill[i] == texts[j].encode(), (trial, fill)
    assert canvas.cells == cells and canvas.can_complete() == any(fits(cells, w) for w in language)


def test_candidates_arguments(pairs):
    """Text no UTF-8 holds never fits; a hole is no candidate; the canvas's own cells stay."""
    grammar, _ = pairs
    canvas = gcd.Canvas(grammar, ["(", None, ")"])
    assert canvas.try_texts(1, ["0", "\ud800", "x,1", "((", b"1"]) == [True, False, True, False, True]
    assert canvas.try_texts(1, []) == [] and canvas.cells == ["(", None, ")"]
    with pytest.raises(TypeError):
        canvas.candidates(1, ["0", None])
    assert gcd.Canvas(grammar, ["\ud800", None]).try_texts(1, ["0"]) == [False]


@pytest.mark.parametrize("name", ["json", "sql"])
def test_candidates_equal_checks_one_at_a_time(name):
    """On JSON and SQL canvases (cells of a word, some of them holes), a pass over the
    candidates for one cell (the right piece, pieces of other places, wrong characters, the
    empty text, a text longer than the cell's room) gives each the answer of a fresh check
    with that candidate set; a witness is a word holding the candidate."""
    import random

    grammar = gcd.Grammar.from_file(ROOT / "grammars" / f"{name}.lark")
    text = ('{"name": "Tom", "tags": ["a", "b"], "n": -1.5e2, "ok": true}' if name == "json" else
            "SELECT a, b FROM t AS x JOIN u ON x.id = u.id WHERE s = 'O''Brien' LIMIT 5;")
    rng = random.Random(2)
    pieces = pieces_of(text, rng, 1, 4)
    kinds = [None, gcd.Hole(1), gcd.Hole(0, 3), gcd.Hole(1, 1)]
    for _ in range(6 if name == "json" else 2):   # SQL's fresh checks take ~0.5 s each
        cells = [rng.choice(kinds) if rng.random() < 0.4 else p for p in pieces]
        canvas = gcd.Canvas(grammar, cells)
        outcome(canvas.can_complete)
        for _ in range(3 if name == "json" else 2):
            i = rng.randrange(len(cells))
            texts = [pieces[i], *rng.sample(pieces, 4), *rng.sample(['"', "]", "x", " ", ",", "'", "1", "("], 3), "",
                     " " * 10 + pieces[i]]   # longer than the room the cell has
            options = canvas.candidates(i, texts)
            for j, t in enumerate(texts):
                trial = cells[:i] + [t] + cells[i + 1:]
                fresh = outcome(lambda: gcd.can_complete(grammar, trial))
                fill = outcome(lambda: options.fill(j))
                got = fill if isinstance(fill, str) else fill is not None
                assert got == fresh or (fresh == "unknown" and got is True), (trial, got, fresh)
                if got is True:
                    assert grammar.accepts(b"".join(fill).decode()) and fill[i] == t.encode()
            assert canvas.cells == cells


@pytest.mark.parametrize("name, text", [("json", None), ("config", CONFIG)])
def test_words_cut_into_chunks_can_be_completed(name, text):
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "json.lark") if text is None else gcd.Grammar(text)
    source = derivations(grammar.text, grammar.start, separator=" ")

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(canvases(source.filter(grammar.accepts)))
    def check(chunks):
        word = gcd.complete(grammar, chunks)
        assert word is not None and grammar.accepts(word) and fits(chunks, word), (chunks, word)

    check()


@pytest.mark.parametrize("chunks, possible", [
    (['{"a": ', None, "}"], True),
    (['{"na', None, 'me": "Tom', None, '"}'], True),          # holes inside a key and a string
    (['{"a": ]', None], False),                                 # a bracket that cannot close
    (["[1, 2", None], True),                                    # ends inside a number
    (["tr", None], True),                                       # half a keyword
    ([None, "\\u12", None], True),                              # half an escape, inside a string
    ([None, "\x01", None], False),                              # a control character: not in strings either
    (["1", None, "2"], True),                                   # one number through a hole: 12
    (["{} ", None, " []"], False),                              # two values
    (["\"a\u00e9", None], True),                                # multi-byte text
])
def test_json_canvases(chunks, possible):
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "json.lark")
    word = gcd.complete(grammar, chunks)
    assert (word is not None) == possible == gcd.can_complete(grammar, chunks)
    if word is not None:
        assert grammar.accepts(word) and fits(chunks, word)


@pytest.mark.parametrize("chunks, possible", [
    (["SELECT ", None, " FROM users WHERE ", None], True),
    (["SELECT name, ", None, " FROM ", None, " WHERE age > ", None], True),   # a witness needs UNION ALL,
    (["SELECT name, ", None, " FROM ", None, " WHERE age > ", None, " ORDER BY ", None, ";"], True),  # not UNION
    (["SELECT ", None, " FROM users WHERE x;;"], False),
])
def test_sql_templates(chunks, possible):
    """Where the shortest lexeme of a terminal in a hole is one the lexer gives another
    terminal on a tie (``UNION`` is a ``NAME`` here), the witness takes a longer one."""
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "sql.lark")
    word = gcd.complete(grammar, chunks)
    assert (word is not None) == possible
    if word is not None:
        assert grammar.accepts(word) and fits(chunks, word)


def test_comments_and_whitespace_in_chunks():
    grammar = gcd.Grammar(CONFIG)
    for chunks in (["a = 1; # note", None, "b = [", None], ["# only a comm", None],
                   ["x = \"a # not a comment", None, "\";"], ["x = 1", None, "\n"]):
        word = gcd.complete(grammar, chunks)
        assert word is not None and grammar.accepts(word) and fits(chunks, word), chunks
    # a hole can open a comment that takes the rest of its line, not the next line
    assert gcd.complete(grammar, ["x = 1;", None, "= = 2;"]) == "x = 1;#= = 2;"
    assert gcd.can_complete(grammar, ["x = 1;", None, "=\n= 2;"])    # a = 2; across lines
    assert not gcd.can_complete(grammar, ["x = 1;", None, "=\n=;"])  # "= ;" has no value


def test_longest_match_versus_any_terminal_sequence():
    """``NAME NAME`` spells ``ab`` + ``cd`` only with text between; a keyword that ``NAME``
    wins on a tie is never a keyword: "some terminal sequence" would say yes, gcd's words say
    no, and the check answers with a verified word or BudgetExceeded, never a wrong yes."""
    names = gcd.Grammar('start: NAME NAME\nNAME: /[a-z]+/\n%ignore " "\n')
    assert gcd.complete(names, ["ab", None, "cd"]) == "ab cd"
    assert gcd.complete(names, ["ab", "cd"]) is None          # no hole: exactly accepts()
    tie = gcd.Grammar('start: KW "!" | NAME "?"\nKW: "if" | "in"\nNAME: /[a-z]{1,3}/\n')
    assert not tie.accepts("if!") and tie.accepts("if?")       # NAME is longer-capable: it wins the tie
    assert gcd.complete(tie, ["if", None]) == "if?"
    with pytest.raises(gcd.BudgetExceeded):
        gcd.can_complete(tie, ["if", None, "!"])


def test_budget_and_arguments():
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "json.lark")
    with pytest.raises(gcd.BudgetExceeded):
        gcd.can_complete(grammar, ['{"a": [1, 2, 3], "b": ', None, "}"], budget=10)
    with pytest.raises(TypeError):
        gcd.can_complete(grammar, ["1", 2])
    assert not gcd.can_complete(grammar, ["\ud800", None])
    assert gcd.complete(grammar, [None]) is not None and gcd.complete(grammar, []) is None


def pieces_of(text: str, rng, shortest: int, longest: int) -> list[str]:
    """``text`` in pieces of ``shortest`` to ``longest`` characters (random lengths)."""
    pieces = []
    while text:
        n = rng.randint(shortest, longest)
        pieces.append(text[:n])
        text = text[n:]
    return pieces


def outcome(check) -> bool | str:
    """True, False, or "unknown" (BudgetExceeded: the loose reading says yes, no witness is a word)."""
    try:
        return check()
    except gcd.BudgetExceeded:
        return "unknown"


@pytest.mark.parametrize("name, text", [
    ("json", '{"name": "Tom", "tags": ["a", "b"], "n": -1.5e2, "ok": true}'),
    ("config", 'x = 1; # a note\nname = "a b"; l = [1, [3]];'),
])
def test_incremental_checks_equal_from_scratch_checks(name, text):
    """A canvas filled cell by cell in random orders (cells: pieces of a word; masked cells
    holes of any length, of at least their length, or of at most their length, as diffusion
    positions are) answers as a fresh check would, for the right piece and for a wrong one."""
    import random

    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "json.lark") if name == "json" else gcd.Grammar(CONFIG)
    rng = random.Random(0)
    pieces = pieces_of(text, rng, 2, 5)
    unknown = 0
    for order in range(3):   # masked cells: at least their length, any length, at most their length
        cells = [[gcd.Hole(len(p.encode())), None, gcd.Hole(0, len(p.encode()))][order] for p in pieces]
        canvas = gcd.Canvas(grammar, cells)
        positions = list(range(len(pieces)))
        rng.shuffle(positions)
        for i in positions:
            wrong = rng.choice(['"', "]", "x", "{", "#", " "])
            for piece in (pieces[i], wrong):
                fresh = outcome(lambda: gcd.can_complete(grammar, cells[:i] + [piece] + cells[i + 1:]))
                canvas.set(i, piece)
                got = outcome(canvas.can_complete)   # a kept witness may know a word a fresh check misses
                assert got == fresh or (fresh == "unknown" and got is True), (cells, i, piece)
                assert piece != pieces[i] or fresh is not False   # the word's own piece always fits
                unknown += fresh == "unknown"
            canvas.set(i, pieces[i])
            cells[i] = pieces[i]
        assert canvas.can_complete() and grammar.accepts("".join(cells))
    assert canvas.try_texts(0, [pieces[0], "]"]) == [True, False] and canvas.cells[0] == pieces[0]
    assert unknown <= len(pieces) // 2


def test_random_changes_equal_from_scratch_checks():
    """A ``Canvas`` of SQL pieces changed cell by cell at random (the right piece, holes of four
    kinds, a wrong character) answers every check as a fresh ``can_complete`` does: where its
    kept charts' witnesses fail, it must not say "unknown" when a fresh check finds a word."""
    import random

    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "sql.lark")
    queries = ["SELECT name FROM users WHERE age > 18 ORDER BY name;",
               "SELECT a, b FROM t AS x JOIN u ON x.id = u.id WHERE s = 'O''Brien' LIMIT 5"]
    kinds = [None, gcd.Hole(1), gcd.Hole(0, 3), gcd.Hole(1, 1)]
    rng = random.Random(1)
    for text in queries * 3:
        pieces = pieces_of(text, rng, 1, 4)
        cells = [rng.choice(kinds) if rng.random() < 0.5 else p for p in pieces]
        canvas = gcd.Canvas(grammar, cells)
        for _ in range(15):
            i = rng.randrange(len(cells))
            r = rng.random()
            cells[i] = pieces[i] if r < 0.4 else rng.choice(kinds) if r < 0.7 else rng.choice(['"', "x", " ", ",", ""])
            canvas.set(i, cells[i])
            fresh = outcome(lambda: gcd.can_complete(grammar, cells))
            got = outcome(canvas.can_complete)
            assert got == fresh or (fresh == "unknown" and got is True), (cells, got, fresh)

"""``Grammar.accepts`` / ``accepts_prefix`` against independent oracles.

Oracles: Lark's LALR parser for LALR(1) grammars, Lark's Earley parser for the others
(grammars chosen so that lexing is unambiguous), Python's ``json`` module for JSON. Words come
from ``gcd.testing.words`` (derivations of the grammar, as Hypothesis' ``from_lark`` draws
them) and their near misses.

gcd's contextual lexer offers the terminals the parser can really take next; Lark's offers
every terminal with an action in the LALR state, a superset after LALR state merging. So
gcd is compared with Lark's LALR parser driven by that exact contextual lexer
(``lark_oracle(exact_context=True)``), and with stock Lark one way: whatever stock Lark
accepts, gcd accepts (``test_divergence_from_lark_contextual_lexer`` pins the difference).
"""
from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lark import Lark
from lark.exceptions import LarkError

import gcd
from gcd.testing import derivations, edits, lark_oracle

HERE = Path(__file__).parent
FILES = {
    "json": HERE.parent / "grammars" / "json.lark",
    "sql": HERE.parent / "grammars" / "sql.lark",
    "arith": HERE / "grammars" / "arith.lark",
    "keywords": HERE / "grammars" / "keywords.lark",
    "ambiguous": HERE / "grammars" / "ambiguous.lark",
}
LALR = ("json", "sql", "arith", "keywords")
# Text an %ignore terminal matches, appended to terminals half the time (keyword grammars).
SEPARATOR = {"sql": " ", "keywords": " ", "arith": " "}
MAX_DEPTH = {"sql": 3, "arith": 5}

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.large_base_example,
    HealthCheck.data_too_large])
MAX_WORD = 400  # characters; accepts_prefix on every prefix is quadratic in pure Python


@functools.cache
def load(name: str) -> tuple[str, gcd.Grammar, object]:
    text = FILES[name].read_text(encoding="utf-8")
    grammar = gcd.Grammar.from_file(FILES[name])
    oracle = lark_oracle(text, parser="lalr" if name in LALR else "earley")
    return text, grammar, oracle


@functools.cache
def stock_lark(name: str):
    """Lark exactly as shipped (LALR state lookahead sets as lexer contexts)."""
    text = FILES[name].read_text(encoding="utf-8")
    return lark_oracle(text, parser="lalr" if name in LALR else "earley", exact_context=False)


def check_word(name: str, word: str) -> bool:
    """gcd agrees with the oracle, and accepts all that stock Lark accepts. Returns the verdict."""
    _, grammar, oracle = load(name)
    expected = oracle(word)
    assert grammar.accepts(word) == expected, word
    if not expected:
        assert not stock_lark(name)(word), f"stock Lark accepts {word!r}, the exact-context oracle does not"
    return expected


@functools.cache
def word_strategy(name: str, max_depth: int | None = None):
    depth = MAX_DEPTH.get(name, 6) if max_depth is None else max_depth
    return derivations(load(name)[0], separator=SEPARATOR.get(name), max_depth=depth)


def check_prefixes(grammar: gcd.Grammar, word: str) -> None:
    """Every byte prefix of an accepted word (UTF-8 characters split included) is viable."""
    data = word.encode("utf-8")
    for i in range(len(data) + 1):
        assert grammar.accepts_prefix(data[:i]), (word, data[:i])


# -- which parser ----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(FILES))
def test_is_lalr(name):
    assert load(name)[1].is_lalr == (name in LALR)


def test_accepts_str_and_bytes_alike():
    g = load("json")[1]
    for s in ['{"é": "日本"}', "[1, 2]", '"\\u00e9"', "[1,", "", " "]:
        assert g.accepts(s) == g.accepts(s.encode("utf-8"))
        assert g.accepts_prefix(s) == g.accepts_prefix(s.encode("utf-8"))
    assert not g.accepts(b'"\xff"')           # not UTF-8: never a word
    assert not g.accepts_prefix(b'"\xff')
    assert g.accepts_prefix(b'"\xc3')         # half of "é" inside a string
    assert not g.accepts(b'"\xc3"')
    assert g.accepts(b'"\xc3\xa9"')


# -- agreement with Lark on drawn words and near misses --------------------------------

def words_agree_with_lark(name, data):
    _, grammar, _ = load(name)
    word = data.draw(word_strategy(name), label="word")
    assume(len(word) <= MAX_WORD)
    if check_word(name, word):
        check_prefixes(grammar, word)
    miss = data.draw(edits(word), label="near miss")
    if check_word(name, miss):
        assert grammar.accepts_prefix(miss)


@pytest.mark.parametrize("name", sorted(set(FILES) - {"sql"}))
@SETTINGS
@given(data=st.data())
def test_words_agree_with_lark(name, data):
    words_agree_with_lark(name, data)


@settings(SETTINGS, max_examples=15)      # SQL words are long: drawing them is slow
@given(data=st.data())
def test_sql_words_agree_with_lark(data):
    words_agree_with_lark("sql", data)


# Hand-picked cases, each a trap for one part of the lexer or parser.
CASES = {
    "arith": [
        ("1+2*3", True), ("a - -b / (c)", True), ("f(1, x*2)", True), ("f()", True),
        ("1.5e3*.5", True), ("1.", True), ("((1)", False), ("1 2", False), ("", False),
        ("1e", False), ("- - 1", True), ("f(1,)", False), ("x1_y", True), ("1x", False),
    ],
    "keywords": [
        ("let x = 1;", True), ("letx = 1;", False), ("letx;", True),
        ("let end = 1;", True),        # after `let` only CNAME is expected: `end` is a name
        ("let true = 1;", True),       # BOOL has priority 2, but is not expected after `let`
        ("trueish;", False),           # BOOL.2 wins the first 4 bytes, then `ish` is a CNAME
        ("true;", True), ("truex;", False),
        ("if c then x; end", True), ("if c then x; else y; end", True), ("if c then end", False),
        ("iffy;", True), ("if;", False),
        ("BEGIN x; End", True), ("Begin;", False), ("beginx;", True), ("begin end", True),
        ("begin end end", False),
        ("END;", True), ("if c then END; end", True), ("begin x; END", True),
        ('print "a", "b";', True),     # ESCAPED_STRING is lazy: two strings, not one
        ('print "a\\"b";', True), ('print "a\\\\";', True), ('print "a\\";', False),
        ('"a" "b";', False), ('"a"b";', False),
        ("x <= y;", True), ("x < = y;", False), ("x == y;", True), ("x = y;", False),
        ("x + +1;", True), ("x +1;", True), ("x + -1.5e3;", True), ("not not x;", True),
        ("print 1,-2;", True), ("print;", False),
    ],
    "json": [
        ('{"a": [1, -2.5e+3, true, null, "x"]}', True), ("01", False), ("-0", True),
        ("1.", False), (".5", False), ('"\\u00e9"', True), ('"\\x"', False), ('"\t"', False),
        ("[1,]", False), ("{}", True), (" [ ] ", True), ("NaN", False), ("tru", False),
        ('"\U0001F600"', True), ("\ufeff1", False), ("\u00a01", False),
    ],
    "ambiguous": [
        ("=1+2*3", True), ("=(1+2)*3+4", True), ("=1+", False), ("!abba.", True),
        ("!.", True), ("!ab.", False), ("!abab.", False), ("!aabbaa.", True),
        ("?qyz", True), ("?qyu", True), ("?qyy", False),
    ],
}


@pytest.mark.parametrize("name,text,expected", [(n, t, e) for n, cs in CASES.items() for t, e in cs])
def test_cases(name, text, expected):
    _, grammar, oracle = load(name)
    assert oracle(text) == expected, "the test case is wrong: Lark disagrees"
    assert stock_lark(name)(text) == expected, "the test case is wrong: stock Lark disagrees"
    assert grammar.accepts(text) == expected
    if expected:
        check_prefixes(grammar, text)


# After a statement, Lark's LALR state (merged from every context a statement ends in) has
# actions on `else`, `end` and the block's "end"i, so its contextual lexer reads these words
# as keywords even where only a new statement can follow, and the parse fails. gcd offers
# the lexer only what the parser can take there, and reads an identifier. (Words gcd accepts
# and stock Lark rejects; never the other way round.)
DIVERGENT = [
    ("keywords", "x; END;"), ("keywords", "x; end;"), ("keywords", "x; else;"),
    ("keywords", "if c then x; END; end"), ("keywords", "begin x; else; end"),
]


@pytest.mark.parametrize("name,text", DIVERGENT)
def test_divergence_from_lark_contextual_lexer(name, text):
    _, grammar, oracle = load(name)
    assert not stock_lark(name)(text)
    assert oracle(text)
    assert grammar.accepts(text)
    check_prefixes(grammar, text)


# Within one terminal, gcd takes what Python's re.match takes, as Lark's lexer does: the
# first alternative that matches wins, even if a later one would match more.
RE_MATCH = [
    ('start: T\nT: /a|ab/\n', "ab", False),               # T matches "a", then "b" is left
    ('start: T "b"?\nT: /a|ab/\n', "abb", False),
    ('start: T "b"\nT: /a|ab/\n', "ab", True),
    ('start: C\nC: /\\/\\*(.|\\n)*?\\*\\//\n', "/* a */ */", False),   # lazy: ends at the first */
    ('start: A\nA: /x[a-z]*|y.*?z/\n', "xabc", True),       # laziness stays in its own alternative
]


@pytest.mark.parametrize("text,word,expected", RE_MATCH)
def test_terminals_match_what_re_match_takes(text, word, expected):
    assert lark_oracle(text, parser="lalr", exact_context=False)(word) == expected
    assert gcd.Grammar(text).accepts(word) == expected


# Across terminals gcd takes the longest match; Lark's lexer is one Python regex alternation,
# tried terminal by terminal (priority, then longest max width), so the first terminal that
# matches wins. Where the two differ, gcd accepts and Lark rejects. (Documented divergence.)
LONGEST_MATCH = [
    ('start: A | B\nA: /a|bbbbb/\nB: "ab"\n', "ab"),       # A (max width 5) is tried first, takes "a"
]


@pytest.mark.parametrize("text,word", LONGEST_MATCH)
def test_divergence_longest_match(text, word):
    assert not lark_oracle(text, parser="lalr", exact_context=False)(word)
    assert gcd.Grammar(text).accepts(word)


# -- Lark's LALR is not the oracle for grammars with conflicts -------------------------

PAL = """
start: pal
pal: "a" pal "a"
   | "b" pal "b"
   |
"""


def test_palindromes_need_general_parsing():
    g = gcd.Grammar(PAL)
    assert not g.is_lalr
    lalr, earley = Lark(PAL, parser="lalr"), Lark(PAL, parser="earley")
    # Lark's LALR builder resolves the shift/reduce conflict silently (always shift), so it
    # rejects words of the grammar: it cannot be the oracle here; Earley can.
    with pytest.raises(LarkError):
        lalr.parse("abba")
    earley.parse("abba")
    for s in ["", "aa", "abba", "baab", "abaaba", "bbbbbb", "aabbaa"]:
        assert g.accepts(s), s
        check_prefixes(g, s)
    for s in ["a", "ab", "aba", "abab", "abbb", "abbaa"]:
        assert not g.accepts(s), s
    assert g.accepts_prefix("abbaa")      # -> abbaaaabba
    assert not g.accepts_prefix("c")


@SETTINGS
@given(st.text(alphabet="ab", max_size=10))
def test_palindromes_agree_with_earley(s):
    g = gcd.Grammar(PAL)
    assert g.accepts(s) == (s == s[::-1] and len(s) % 2 == 0)
    assert g.accepts_prefix(s)             # every string over {a, b} extends to s + reverse(s)


# Small grammars that are not LALR(1), each checked on every string up to a length: the
# general parser must read exactly what Earley reads (one-character terminals throughout).
GENERAL = {
    "lr2": ('start: x "y" "z" | w "y" "u"\nx: "q"\nw: "q"\n', "qyzu", 4),
    "ambiguous_concat": ('start: start start | "a"\n', "ab", 6),
    "odd_palindromes": ('start: "a" start "a" | "b" start "b" | "a" | "b" |\n', "ab", 7),
    "unit_cycle": ('start: b | "a"\nb: start\n', "ab", 3),
    "dangling_else": ('start: s\ns: "i" s | "i" s "e" s | "x"\n', "iex", 6),
    # empty rules in front of recursion (hidden left recursion), and an ambiguous
    # balanced-parentheses grammar with an empty alternative
    "hidden_left_recursion": ('start: a start "x" | "y"\na:\n', "xy", 4),
    "balanced_parentheses": ('start: start start | "(" start ")" |\n', "()", 6),
}


@pytest.mark.parametrize("name", sorted(GENERAL))
def test_general_grammars_agree_with_earley(name):
    text, alphabet, max_len = GENERAL[name]
    g, earley = gcd.Grammar(text), Lark(text, parser="earley")
    # gcd removes empty rules first, which makes hidden_left_recursion plain left recursion
    assert g.is_lalr == (name == "hidden_left_recursion")

    def oracle(s: str) -> bool:
        try:
            earley.parse(s)
        except LarkError:
            return False
        return True

    words_seen = []
    for n in range(max_len + 1):
        for letters in itertools.product(alphabet, repeat=n):
            s = "".join(letters)
            assert g.accepts(s) == oracle(s), s
            if oracle(s):
                words_seen.append(s)
    assert words_seen
    for s in words_seen:           # every prefix of a word is viable
        check_prefixes(g, s)


# -- JSON against Python's json module ---------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


def json_oracle(s: str) -> bool:
    """RFC 8259 JSON per Python's json module, minus its NaN/Infinity/-Infinity extension."""
    def no_constants(name):
        raise ValueError(name)
    try:
        json.loads(s, parse_constant=no_constants)
    except (ValueError, RecursionError):
        return False
    return True


@SETTINGS
@given(value=JSON_VALUES, indent=st.sampled_from([None, 0, 2, "\t", " \r\n"]),
       separators=st.sampled_from([None, (",", ":"), (", ", ": "), (" , ", " : ")]),
       ensure_ascii=st.booleans(), data=st.data())
def test_json_dumps_accepted(value, indent, separators, ensure_ascii, data):
    grammar = load("json")[1]
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=ensure_ascii)
    assume(len(text) <= 400)
    assert grammar.accepts(text), text
    assert grammar.accepts(text.encode("utf-8"))
    check_prefixes(grammar, text)
    miss = data.draw(edits(text), label="near miss")
    assert grammar.accepts(miss) == json_oracle(miss), miss


def test_json_oracle_knows_python_extensions():
    assert json_oracle("[1, 2]") and not json_oracle("NaN") and not json_oracle("[-Infinity]")
    assert math.isnan(json.loads("NaN"))   # what json_oracle must exclude


# -- completeness: a viable prefix always extends to a word -------------------------------

# Pieces to complete prefixes with, most closing first (search order).
COMPLETION_UNITS = {
    "arith": [")", "0", "x", "+", "(", "-", "*", ".", " "],
    "ambiguous": [".", ")", "a", "b", "0", "+", "*", "(", "y", "z", "u", "q", "=", "!", "?"],
    "json": ['"', "]", "}", "0", ":", ",", "e", "r", "u", "l", "s", "\\", "n", "[", "{", " ", ".",
             "-", "+", "t", "f", "a"],
    "keywords": [";", " ", "end", ")", '"', "0", "x", "then", "=", "+", "(", "if", "else", "END",
                 "let", "print", "\\"],
}
MAX_NODES = 5000


def complete(grammar: gcd.Grammar, prefix: str, units: list[str], max_depth: int = 12) -> str | None:
    """A shortest completion of ``prefix`` (in ``units``) that ``grammar`` accepts, by a
    breadth-first search through the extensions ``accepts_prefix`` calls viable, keeping one
    string per recogniser state (strings in the same state have the same completions);
    None if there is none within ``max_depth`` units or ``MAX_NODES`` states."""
    rec = grammar.recognizer
    level, seen = [prefix], {rec.advance(rec.initial, prefix.encode())[0]}
    for _ in range(max_depth + 1):
        for s in level:
            if grammar.accepts(s):
                return s
        nxt = []
        for s in level:
            for u in units:
                t = s + u
                if not grammar.accepts_prefix(t):
                    continue
                state = rec.advance(rec.initial, t.encode())[0]
                if state not in seen:
                    seen.add(state)
                    nxt.append(t)
        if not nxt or len(seen) > MAX_NODES:
            return None
        level = nxt
    return None


@pytest.mark.parametrize("name", ["arith", "ambiguous", "json", "keywords"])
@settings(SETTINGS, max_examples=25, derandomize=True)
@given(data=st.data())
def test_viable_prefixes_complete(name, data):
    _, grammar, oracle = load(name)
    word = data.draw(word_strategy(name, max_depth=3), label="word")
    assume(len(word) <= 60)
    if data.draw(st.booleans(), label="use a near miss"):
        word = data.draw(edits(word), label="near miss")
    prefix = word[:data.draw(st.integers(0, len(word)), label="cut")]
    assume(grammar.accepts_prefix(prefix))
    found = complete(grammar, prefix, COMPLETION_UNITS[name])
    assert found is not None, f"no completion of viable prefix {prefix!r} found"
    assert oracle(found), f"gcd accepts {found!r}, Lark does not"

"""Tests for gcd.terminals: Lark terminal regex -> minimal byte DFA."""
from __future__ import annotations

import functools
import itertools
import os
import re
import time

import lark
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark.load_grammar import load_grammar

from gcd.errors import GrammarError
from gcd.terminals import END, ByteDFA, literal_dfa, regex_to_dfa

JSON_STRING = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
JSON_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
PATTERNS = [
    "abc", "[a-z]+", r"[^a-z\n]+", r"[^\x00-\x7f]+", "é+ü?", "[α-ω]{2,3}", "😀|€|ñ|\U0010ffff",
    "(?i:select)", "(?i:[a-zé]+)", "(?i:σας)", "(?i:привет)", "(?i:[^k]s)",
    "cat|dog|bird", "(ab|cd){2,4}", "((a|b)c)*d", r"\d+", r"\w+", r"\s+", r"\d\w\s", r"[^\d\s]+\W",
    "a.b", "(?s:a.b)", ".+", JSON_STRING, JSON_NUMBER, "[_a-zA-Z][_a-zA-Z0-9]*", "x(?:y|z?){1,3}",
    "(?x: a b  # comment\n c+ )", "^ab$", r"(?a:\w+)",
]
MUTATION_CHARS = 'ab0 "\\\n\x00é€😀Σσ_-.eE'
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@functools.cache
def dfa(pattern: str) -> ByteDFA:
    """The language: what re.fullmatch accepts."""
    return regex_to_dfa(pattern, fullmatch=True)


@functools.cache
def lexer_dfa(pattern: str) -> ByteDFA:
    """What the lexer reads: what re.match takes."""
    return regex_to_dfa(pattern)


def no_surrogates(s: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def re_match_end(pattern: str, s: str) -> int | None:
    """Bytes that re.match takes from s (None: no match, or an empty one)."""
    m = re.match(pattern, s)
    return len(s[:m.end()].encode()) if m and m.end() else None


def agree(pattern: str, s: str) -> None:
    if no_surrogates(s):
        assert dfa(pattern).matches(s.encode()) == bool(re.fullmatch(pattern, s)), (pattern, s)
        if "$" not in pattern:  # an end anchor is ignored: a terminal ends where its match ends
            assert lexer_dfa(pattern).match_end(s.encode()) == re_match_end(pattern, s), (pattern, s)


def equivalence_classes(d: ByteDFA) -> int:
    """Number of Myhill-Nerode classes among d's states plus an explicit dead sink (Moore)."""
    n = len(d.accepting)
    trans = np.vstack([np.where(d.transitions >= 0, d.transitions, n), np.full((1, 256), n)])
    block, count = np.r_[d.accepting, False].astype(np.int64), 2
    while True:
        block = np.unique(np.column_stack([block, block[trans]]), axis=0, return_inverse=True)[1].ravel()
        if block.max() + 1 == count:
            return count
        count = int(block.max()) + 1


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("reading", [dfa, lexer_dfa])
def test_invariants_minimal_and_trimmed(pattern: str, reading) -> None:
    d = reading(pattern)
    assert d.lookahead is None   # no lookahead at these patterns' ends
    n = len(d.accepting)
    assert d.transitions.shape == (n, 256) and d.transitions.dtype == np.int32
    assert d.accepting.dtype == bool and n >= 1
    assert ((d.transitions >= -1) & (d.transitions < n)).all()
    reach, frontier = {0}, [0]
    while frontier:
        for t in set(d.transitions[frontier.pop()].tolist()) - reach - {-1}:
            reach.add(t)
            frontier.append(t)
    assert reach == set(range(n))
    alive = d.accepting.copy()
    for _ in range(n):
        alive |= ((d.transitions >= 0) & alive[d.transitions]).any(axis=1)
    assert alive.all()
    assert equivalence_classes(d) == n + 1  # minimal: no two states (nor the dead one) are equivalent


@pytest.mark.parametrize("pattern", PATTERNS)
@SETTINGS
@given(data=st.data())
def test_agrees_with_re(pattern: str, data: st.DataObject) -> None:
    s = data.draw(st.from_regex(pattern, fullmatch=True), label="positive")
    agree(pattern, s)
    for _ in range(data.draw(st.integers(1, 3))):  # mutants: mostly negatives
        i = data.draw(st.integers(0, len(s)))
        c = data.draw(st.sampled_from(MUTATION_CHARS) | st.characters())
        s = data.draw(st.sampled_from([s[:i] + c + s[i:], s[:i] + c + s[i + 1:], s[:i] + s[i + 1:]]))
        agree(pattern, s)
    agree(pattern, data.draw(st.text(max_size=8), label="text"))


@pytest.mark.parametrize("pattern", ["(a|b)*abb", "a[bc]*c", "(ab|c){2,3}", "a{2,4}b?", "(?:a|bc)+c?", "ab|ac|bca"])
def test_is_prefix_brute_force(pattern: str) -> None:
    words = ["".join(w) for k in range(5) for w in itertools.product("abc", repeat=k)]
    for s in words:
        expected = any(re.fullmatch(pattern, s + t) for t in words)  # completions of length <= 4 suffice
        assert dfa(pattern).is_prefix(s.encode()) == expected, (pattern, s)
        assert dfa(pattern).matches(s.encode()) == bool(re.fullmatch(pattern, s))


def test_multibyte_chars_walk_through_alive_states() -> None:
    for pattern in [r'[^"]+', "(?s:.)", ".+", r"\w+"]:
        for ch in "aé€😀\u07ff\u0800\uffff\U00010000\U0010ffffжΣ":
            if not re.fullmatch(pattern, ch):
                continue
            data = ch.encode()
            for i in range(1, len(data)):
                assert dfa(pattern).is_prefix(data[:i]) and not dfa(pattern).matches(data[:i]), (pattern, ch, i)
            assert dfa(pattern).matches(data)


@pytest.mark.parametrize("data", [b"\xff", b"\xc0", b"\xc1\x80", b"\xe0\x80", b"\xed\xa0", b"\xf0\x80",
                                  b"\xf4\x90", b"\xf5", b"\x80", b"\xc3\xc3"])
def test_invalid_utf8_is_dead(data: bytes) -> None:
    assert not dfa("(?s:.)+").is_prefix(data)
    assert not dfa(r'[^"]+').is_prefix(data)


def test_any_char_dfa_is_the_utf8_automaton() -> None:
    assert len(dfa("(?s:.)").accepting) == 9  # start, accept, 7 continuation states
    assert dfa("(?s:.)").matches("\n".encode()) and not dfa(".").matches(b"\n")


def test_minimal_state_count() -> None:
    assert len(dfa("(a|b)*abb").accepting) == 4
    assert len(dfa("abc|abd").accepting) == 4
    assert len(dfa("(?:a|aa|aaa)b").accepting) == 5


CASE_CHARS = [chr(c) for c in itertools.chain(range(0x600), range(0x1E00, 0x2200), range(0x2C00, 0x2D30),
                                               range(0xA640, 0xA800), range(0xAB70, 0xABC0), range(0x10400, 0x10450))]


@pytest.mark.parametrize("pattern", ["(?i:[a-zé])", "(?i:σ)", "(?i:k)", "(?i:s)", "(?i:[^i])", "(?i:ǅ)",
                                     "(?i:ß)", "(?i:[α-ω])", "(?i:[А-я])", "(?i:ι)", "(?a:(?i:[k-s]))", "(?i)Ω",
                                     "(?i:[^\\W\\d])", "(?i:[a\\W])", "(?i:[^s\\w])", "(?i:[\\U00010400-\\U00010410])"])
def test_ignorecase_agrees_with_re(pattern: str) -> None:
    for c in CASE_CHARS:
        assert dfa(pattern).matches(c.encode()) == bool(re.fullmatch(pattern, c)), (pattern, c, hex(ord(c)))


@pytest.mark.parametrize("pattern", [r"\d", r"\w", r"\s", r"\D", r"[^\W\d_]", r"(?a:\w)", r"(?a:\s)"])
def test_categories_agree_with_re(pattern: str) -> None:
    cps = itertools.chain(range(0x3000), range(0x3000, 0x110000, 89))
    for c in map(chr, cps):
        if no_surrogates(c):
            assert dfa(pattern).matches(c.encode()) == bool(re.fullmatch(pattern, c)), (pattern, hex(ord(c)))


LOOKAROUNDS = [r"a(?!b)[a-c]", r"(?:[ab](?<!a)c|a)+", r"a(?=b)[b-c]c?", r"(?:x(?<=x)|y(?!y))+",
               r"[ab]+(?<!a)", r"x(?<![a-c])a+", r"(?:a|b(?=a))+", r"c(?<=[bc])(?!c)\w*",
               r"[a-c]+(?=\()", r"a+(?=b)", r"a+(?!b)", r"(?:ab|a)(?![bc])", r"x(?:a|b(?=c))*"]


@pytest.mark.parametrize("pattern", LOOKAROUNDS)
def test_lookarounds_agree_with_re(pattern: str) -> None:
    for k in range(1, 6):
        for s in map("".join, itertools.product("abcxy(", repeat=k)):
            agree(pattern, s)


def test_lookahead_at_the_end_looks_at_the_next_byte() -> None:
    d = lexer_dfa(r"[a-z]+(?=\()")
    assert d.lookahead is not None and not d.accepting.any()
    state = int(d.transitions[0, ord("f")])
    assert d.lookahead[state, ord("(")] and not d.lookahead[state, ord(" ")] and not d.lookahead[state, END]
    assert d.match_end(b"f(") == 1 and d.match_end(b"f") is None and d.match_end(b"fg(x") == 2
    assert lexer_dfa(r"a+(?!b)").match_end(b"aa") == 2 and lexer_dfa(r"a+(?!b)").match_end(b"aab") == 1


@pytest.mark.parametrize("pattern", [r"a(?=\w)", r"a(?!\w)", r"a(?=[^\x00-\x7f])"])
def test_lookahead_decided_by_the_first_byte_only(pattern: str) -> None:
    if pattern == r"a(?=[^\x00-\x7f])":  # every non-ASCII character: the lead byte decides
        assert lexer_dfa(pattern).match_end("aé".encode()) == 1
        return
    with pytest.raises(GrammarError, match="first byte"):
        regex_to_dfa(pattern, name="T")
    regex_to_dfa(f"(?a:{pattern})")   # ASCII \w: decided by one byte


@functools.cache
def escaped_string_regex() -> str:
    parser = lark.Lark("%import common.ESCAPED_STRING\nstart: ESCAPED_STRING")
    (terminal,) = [t for t in parser.terminals if t.name == "ESCAPED_STRING"]
    return terminal.pattern.to_regexp()


def test_escaped_string_exhaustive() -> None:
    pattern = escaped_string_regex()
    assert pattern == '".*?(?<!\\\\)(\\\\\\\\)*?"'
    reference = r'"(?:[^"\\\n]|\\.)*"'
    for k in range(1, 8):
        for s in map("".join, itertools.product('"\\a\n', repeat=k)):
            whole = re_match_end(pattern, s) == len(s)
            assert whole == bool(re.fullmatch(reference, s)), s
            assert (lexer_dfa(pattern).match_end(s.encode()) == len(s)) == whole, s
            agree(pattern, s)


@SETTINGS
@given(st.booleans(), st.text(alphabet=st.sampled_from('"\\a\né😀 ') | st.characters(), max_size=14))
def test_escaped_string_lexer_semantics(quote: bool, s: str) -> None:
    s = '"' + s if quote else s
    agree(escaped_string_regex(), s)


@pytest.mark.parametrize(("pattern", "alphabet"), [
    (r"/\*(.|\n)*?\*/", "/*a\n"), (r"<.+?>", "<>a"), (r"a+?", "ab"), (r"a*?b", "ab"),
    (r"x(?:ab|a)*?b", "xab"), (r"\/\/[^\n]*|\/\*(.|\n)*?\*\/", "/*a\n"), (r"x[a-z]*|y.*?z", "xyza"),
    (r"a|ab", "ab"), (r"(a|ab)(c|bcd)", "abcd"), (r"a{2,4}?", "ab"), (r"(?:ab)+?c|a", "abc"),
])
def test_lazy_and_alternatives_follow_re(pattern: str, alphabet: str) -> None:
    """Laziness applies inside its own alternative; the first alternative that matches wins."""
    for k in range(1, 7):
        for s in map("".join, itertools.product(alphabet, repeat=k)):
            agree(pattern, s)


# Regexes from the subset gcd supports: alternation, classes, repeats (greedy and lazy), and
# one-character lookarounds; over a small alphabet so that matches are frequent.
ATOMS = st.sampled_from(["a", "b", "c", "[ab]", "[^a]", ".", "(?:ab)", r"\.", "[a-c]"])
LOOKS = st.sampled_from(["(?=a)", "(?!a)", "(?=[bc])", "(?<=a)", "(?<!b)", "(?<=[ac])"])


def _regexes() -> st.SearchStrategy[str]:
    def extend(inner):
        repeat = st.tuples(inner, st.sampled_from(["*", "+", "?", "{1,2}", "{2}", "{0,3}"]), st.booleans()).map(
            lambda t: f"(?:{t[0]}){t[1]}{'?' if t[2] else ''}")
        alternation = st.lists(inner, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")")
        sequence = st.lists(inner | LOOKS, min_size=2, max_size=3).map("".join)
        return repeat | alternation | sequence
    return st.recursive(ATOMS, extend, max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(_regexes(), st.lists(st.text("abc.", max_size=6), min_size=8, max_size=8))
def test_drawn_regexes_agree_with_re(pattern: str, texts: list[str]) -> None:
    """The language DFA answers re.fullmatch; the lexer's DFA ends where re.match ends."""
    try:
        language = regex_to_dfa(pattern, fullmatch=True)
    except GrammarError as e:
        assert "lookbehind at the start" in str(e) or "max_states" in str(e), e
        return
    for s in texts:
        assert language.matches(s.encode()) == bool(re.fullmatch(pattern, s)), (pattern, s)
    try:
        lexer = regex_to_dfa(pattern)
    except GrammarError as e:
        assert "empty string" in str(e) or "matches nothing" in str(e), e
        assert all(re_match_end(pattern, s) is None for s in texts) or "empty" in str(e)
        return
    for s in texts:
        assert lexer.match_end(s.encode()) == re_match_end(pattern, s), (pattern, s)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(_regexes(), st.text("abc.", min_size=1, max_size=6))
def test_drawn_regexes_lex_as_lark_does(pattern: str, text: str) -> None:
    """A one-terminal grammar: gcd's lexeme is the one Lark's lexer takes."""
    try:
        lark_parser = lark.Lark(f"start: T\nT: /{pattern}/\n", lexer="basic", parser="lalr")
        regex_to_dfa(pattern)
    except (lark.exceptions.LarkError, GrammarError):
        return   # a zero-width terminal, or a lookbehind at the start: both refused
    try:
        first = next(iter(lark_parser.lex(text)))
        taken = len(first.value.encode()) if first.start_pos == 0 else None
    except lark.exceptions.LarkError:
        taken = None
    assert regex_to_dfa(pattern).match_end(text.encode()) == taken, (pattern, text)


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(a)\1", "backreference"), (r"(?<=ab)c", "lookaround"), (r"a(?=bc)", "lookaround"),
    (r"(a)?(?(1)b|c)", "conditional"), (r"(?>ab)c", "atomic"), (r"a*+b", "possessive"),
    (r"a\bb", "anchor"), (r"a^b", "anchor"), (r"(?:a$)+", "anchor"),
    (r"a*", "empty string"), (r"(?:)", "empty string"), (r"a?|b", "empty string"), (r"\d*?", "empty string"),
    (r"a?(?=b)", "empty string"), (r"(?<=a)b", "lookbehind at the start"), (r"c|(?<!a)b", "lookbehind at the start"),
    (r"[^\x00-\U0010ffff]", "nothing"), (r"[\ud800-\udfff]", "nothing"), (r"a(?=b)c", "nothing"),
    (r"[a", "valid"), (r"(a|b){1,10000}", "max_states=5000"),
    (r"((a|b){1,1000}){1,1000}", "too large"), (r"[a-z]{100}\w{40}", "max_states=5000"),
    ("(" * 2000 + "a" + ")" * 2000, "nested too deeply"),
])
def test_refused_with_terminal_name(pattern: str, why: str) -> None:
    start = time.perf_counter()
    with pytest.raises(GrammarError) as info:
        regex_to_dfa(pattern, name="MY_TERM")
    assert time.perf_counter() - start < 5
    assert info.value.terminal == "MY_TERM" and "MY_TERM" in str(info.value) and why in str(info.value)


def test_max_states_is_the_cap() -> None:
    assert len(regex_to_dfa("a{1,99}", max_states=100).accepting) == 100
    with pytest.raises(GrammarError, match="max_states=99"):
        regex_to_dfa("a{1,99}", name="A", max_states=99)


def test_anchors_at_the_ends_are_ignored() -> None:
    for pattern in [r"^ab$", r"\Aab\Z", r"(?i:^ab$)", r"^a|^b$", r"(?m:^ab$)"]:
        d = regex_to_dfa(pattern, fullmatch=True)
        assert d.matches(b"ab") or d.matches(b"b")
        assert not d.matches(b"ab\n") and not d.matches(b"\nab")


def test_literal_dfa_matches_exactly_the_literal() -> None:
    d = literal_dfa("if€".encode())
    assert d.matches("if€".encode()) and not d.matches(b"if") and d.is_prefix(b"if")
    assert d.match_end("if€x".encode()) == 5 and d.match_end(b"i") is None


def common_terminals() -> dict[str, str]:
    """Every terminal of lark's common.lark, each from a grammar that imports it."""
    path = os.path.join(os.path.dirname(lark.__file__), "grammars", "common.lark")
    names = re.findall(r"^(_?[A-Z][A-Z_]*)\s*:", open(path, encoding="utf-8").read(), re.M)
    found = {}
    for name in names:  # load_grammar also takes the zero-width ones, which Lark's lexers refuse
        grammar, _ = load_grammar(f"%import common.{name}\nstart: {name}", "<test>", [], False)
        terminals, _, _ = grammar.compile(["start"], set())
        found.update((t.name, t.pattern.to_regexp()) for t in terminals)
    assert len(found) == len(names)
    return found


@pytest.mark.parametrize(("name", "pattern"), sorted(common_terminals().items()))
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_common_lark_terminals(name: str, pattern: str, data: st.DataObject) -> None:
    if re.fullmatch(pattern, ""):  # _STRING_INNER, _STRING_ESC_INNER
        with pytest.raises(GrammarError, match=name):
            regex_to_dfa(pattern, name=name)
        return
    s = data.draw(st.from_regex(pattern, fullmatch=True))
    s += data.draw(st.text(alphabet="0aZ_ .e-+\t\n\r#/*\"", max_size=3))
    agree(pattern, s)

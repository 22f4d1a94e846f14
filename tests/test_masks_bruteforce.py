"""Token masks against brute force: at every step the matcher's mask equals
``gcd.testing.reference_allowed`` (one ``accepts_prefix`` call per token), on small grammars
with made-up vocabularies of ~60-120 tokens: every single character, tokens spanning several
terminals and ignored text, tokens that split a UTF-8 character, special tokens and an EOS.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import gcd
from gcd.testing import assert_mask_exact, derivations, edits, lark_oracle, mask_token_ids, reference_allowed

HERE = Path(__file__).parent

TINY_JSON = r"""
start: value
?value: "[" [value ("," value)*] "]"
      | "{" [pair ("," pair)*] "}"
      | STRING | NUMBER | "true" | "false" | "null"
pair: STRING ":" value
STRING: /"([^"\\\n]|\\["\\n])*"/
NUMBER: /-?(0|[1-9][0-9]*)/
%ignore " "
"""

COMMENTS = r"""
start: "(" item* ")"
?item: WORD | start
WORD: /[a-z]+/
COMMENT: /#[^\n]*\n/
%ignore COMMENT
%ignore " "
"""

# Terminals that end in a lookahead: a name followed by "(" is a call.
CALLS = r"""
start: expr
?expr: CALL "(" [expr ("," expr)*] ")" | NAME | NUMBER
CALL: /[a-z_]+(?=\()/
NAME: /[a-z_]+/
NUMBER: /[0-9]+(?![0-9_])/
%ignore " "
"""

# Lexemes that must end at an earlier match: SQL-style strings with '' inside, operators that
# are prefixes of longer ones.
FALLBACK = r"""
start: (STRING | WORD | OP)+
STRING: /'([^']|'')*'/
WORD: /[a-z]+/
OP: "<" | "<=" | "<=>"
%ignore " "
"""

E_ACUTE = "é".encode()          # c3 a9
NICHI = "日".encode()           # e6 97 a5
UTF8_PIECES = [E_ACUTE[:1], E_ACUTE[1:], E_ACUTE, NICHI[:2], NICHI[2:], NICHI, NICHI[:1], NICHI[1:]]


def _pieces(singles: str, multi: list[str], utf8: list[bytes]) -> list[bytes]:
    out = list(dict.fromkeys([c.encode() for c in singles] + [m.encode() for m in multi] + utf8))
    return out


PIECES = {
    "arith": _pieces(
        "0123456789xyzfabeE_+-*/()., \n\t\r\x0c",
        ["1+", "+1", "12", "10", ")*(", "( ", " )", "x)", "f(", "1.", ".5", "e1", "1e", "e+", "e-3",
         "+-", "--", "**", "()", "x1", "(x", ", ", ",1", ") ", " +", "+ ", " * ", "1 ", "  ", "\n ",
         "(((", ")))", "1.5", "x*y", "ab", "abc", "foo(", "1e+", "0)", "2)", "))", "(1", "-1", "/2"],
        UTF8_PIECES),
    "tiny_json": _pieces(
        '{}[],:" \\-0123456789truefalsnxab',
        ['", "', '": ', '"\\', '\\"', '\\n', '\\\\', '["', '"]', '{"', '"}', '"a', 'a"', ', ', ': ',
         '1,', ',1', '[1', '1]', '[]', '{}', 'true', 'tr', 'ue', 'fal', 'se', 'nul', 'null', '-1',
         '10', ' ]', '}]', ']}', '":', '"é', 'é"', '01', '"x"'],
        UTF8_PIECES + [b'"\xc3', b'\xa9"', b'"\xe6\x97', b'\xa5"']),
    "json": _pieces(
        '{}[],:" \\-+.0123456789abcdefABEtrulsn/\n\t\r',
        ['", "', '": ', '"\\', '\\"', '\\u', '\\n', '00', 'e9', '0e', 'E+', '.5', '1.', '\n  ',
         ',\n  ', '["', '"]', '{"', '"}', 'true', 'false', 'null', 'nu', 'll', '-0', '1e', 'e-',
         ' ]', '}]', '\\u00', '"é', '10', '01'],
        UTF8_PIECES + [b'"\xc3', b'\xa9"']),
    "comments": _pieces(
        "()# \nabxc",
        ["ab", " #", "#c", "c\n", "\n)", ")(", "x)", "(x", "# x", "x #", "\n(", "((", "))", "#\n",
         " \n", "()", "a b", "#é", "# (", ")\n", "ba", "abc", "xx", "(a", "b)", ") ", " (", "  ",
         "(ab", "ab)", "x\n", "\n\n", "##", "#)", "#(", "c)", "x (", ") #", "(#", "\n #", "a\n", "(()"],
        UTF8_PIECES),
    "calls": _pieces(
        "abf_(), 0123x",
        ["f(", "ab(", "a(", "(a", "()", "),", ", ", "ab", "f", "x)", "1)", "12", "1(", "(1", "a b", " (",
         "(", "_x(", "ab,", "f(x)", "g(1,", "a)", "))", ",b", "0,", "x y", "1_", "ba(", "b(", "(b", "fa",
         "a (", "x(", "(x(", "),a", "f((", "0)", "23", "3,", ",(", "( ", " )", "_", "__(", "ab_", "a1",
         ") ", " a", "b,a", "(0"],
        UTF8_PIECES),
    "fallback": _pieces(
        "'ab<=> x",
        ["''", "'a", "a'", "''a", "a''", "' '", "'' ", "ab", "<=", "<=>", "=>", "<a", "=a", "<=a", "'<'",
         "a<", "> ", " '", "'x'", "x''", "'''", "ba", "<<", ">a", "<=>a", "a<=", "''''", "'b", "b'",
         "' a", "a '", "xa", "ax", "<'", "'<=", "=>'", " <", "< ", "ab'", "'ab", "<=<", "'='", "a ",
         "'>", ">'", "''b", "b''"],
        UTF8_PIECES),
    "ambiguous": _pieces(
        "=!?0123+*()ab.qyzu",
        ["1+", "+1", "*(", ")*(", "1)", "ab", "ba", "aa", "bb", "abba", "a.", "b.", "!a", "!.", "?q",
         "qy", "yz", "yu", "qyz", "=(", "((", "))", "2*3", "baab", "aab", "bba", "a", "!ab", "!b",
         "=1", "=(1", "+(", ")+", "*2", "3)", "?qy", "yzu", "q", "zz", "ab.", "ba.", "aa.", ".!"],
        UTF8_PIECES),
}

TEXTS = {
    "arith": (HERE / "grammars" / "arith.lark").read_text(encoding="utf-8"),
    "tiny_json": TINY_JSON,
    "json": (HERE.parent / "grammars" / "json.lark").read_text(encoding="utf-8"),
    "comments": COMMENTS,
    "ambiguous": (HERE / "grammars" / "ambiguous.lark").read_text(encoding="utf-8"),
    "calls": CALLS,
    "fallback": FALLBACK,
}
EARLEY = {"ambiguous"}
NAMES = sorted(TEXTS)


class Setup:
    """A grammar, its made-up vocabulary and compiled form, and Lark as the oracle."""

    def __init__(self, name: str) -> None:
        pieces = PIECES[name]
        assert len(set(pieces)) == len(pieces)
        # specials: a BOS-like None first, EOS (None) in the middle, a declared special whose
        # bytes the grammar would take ("1" / "a"), and an empty entry at the end
        half = len(pieces) // 2
        fits = b"a" if name in ("comments", "fallback") else b"1"
        tokens: list[bytes | None] = [None, *pieces[:half], None, *pieces[half:], fits, b""]
        self.eos = half + 1
        self.declared_special = len(tokens) - 2
        self.vocab = gcd.Vocabulary(tokens, eos_token_id=self.eos, special_token_ids=[self.declared_special])
        assert 60 <= self.vocab.size <= 150 and self.vocab.size % 32, self.vocab.size
        self.specials = {0, self.eos, self.declared_special, len(tokens) - 1}
        self.grammar = gcd.Grammar(TEXTS[name])
        self.compiled = gcd.GrammarCompiler(self.vocab, cache=False, progress=False).compile(self.grammar)
        self.oracle = lark_oracle(TEXTS[name], parser="earley" if name in EARLEY else "lalr")
        self.by_bytes = {bytes(t): i for i, t in enumerate(tokens) if t and i not in self.specials}
        self.alphabet = sorted({p.decode() for p in pieces if len(p) == 1 and p < b"\x80"} | {"é", "日"})
        self.words = derivations(TEXTS[name], alphabet=st.sampled_from(self.alphabet), max_depth=3 if name == "arith" else 4)

    def tokenize(self, data: bytes, draw=None) -> list[int] | None:
        """Split ``data`` into vocabulary tokens: greedily (longest first) or, with ``draw``,
        by random choices; None if impossible (greedy dead end)."""
        out, i = [], 0
        while i < len(data):
            options = [n for n in range(4, 0, -1) if data[i:i + n] in self.by_bytes]
            if not options:
                return None
            n = options[0] if draw is None else draw(st.sampled_from(options))
            out.append(self.by_bytes[data[i:i + n]])
            i += n
        return out

    def allowed(self, m) -> set[int]:
        ids = set(m.allowed_token_ids().tolist())
        assert mask_token_ids(m) == ids
        return ids


@functools.cache
def setup(name: str) -> Setup:
    return Setup(name)


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
MAX_BYTES = 40


# -- walks along drawn words ----------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_word_walks(name, data):
    s = setup(name)
    word = data.draw(s.words, label="word")
    if data.draw(st.booleans(), label="near miss"):
        word = data.draw(edits(word, alphabet="".join(s.alphabet)), label="near miss")
    raw = word.encode()
    assume(len(raw) <= MAX_BYTES)
    randomly = data.draw(st.booleans(), label="random split")
    tokens = s.tokenize(raw, data.draw if randomly else None)
    assume(tokens is not None)
    m = assert_mask_exact(s.compiled, [*tokens, s.eos])
    assert m.is_terminated() == s.oracle(word), (word, tokens)


# -- random walks through allowed tokens ------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(data=st.data())
def test_random_walks(name, data):
    s = setup(name)
    g, vocab = s.grammar, s.vocab
    m = s.compiled.matcher()
    prefix, taken, masks, prefixes = b"", [], [], []
    saved = None
    for step in range(data.draw(st.integers(1, 16), label="steps")):
        allowed = s.allowed(m)
        assert allowed == reference_allowed(g, vocab, prefix), prefix
        assert not allowed & (s.specials - {s.eos})
        assert m.is_accepting() == s.oracle(prefix) == (s.eos in allowed), prefix
        masks.append(allowed)
        prefixes.append(prefix)
        if saved is None and data.draw(st.booleans(), label="copy here"):
            saved = (step, m.copy())
        # a disallowed token is refused and changes nothing
        refused = sorted(set(range(vocab.size)) - allowed)
        bad = data.draw(st.sampled_from(refused), label="refused token")
        assert not m.consume_token(bad)
        assert s.allowed(m) == allowed and m.is_accepting() == (s.eos in allowed)
        if not allowed:
            pytest.fail(f"empty mask after {prefix!r}: a dead end")
        t = data.draw(st.sampled_from(sorted(allowed)), label="token")
        assert m.consume_token(t)
        taken.append(t)
        if t == s.eos:
            assert m.is_accepting() and m.is_terminated()
            break
        prefix += vocab.token_bytes(t)
    else:
        masks.append(s.allowed(m))
        prefixes.append(prefix)
        assert masks[-1] == reference_allowed(g, vocab, prefix)

    # copy() is independent of the original's later steps
    if saved is not None:
        step, c = saved
        assert s.allowed(c) == masks[step]
    # rollback(k) on a copy restores the mask k tokens back; replaying reproduces the masks
    n = len(taken)
    k = data.draw(st.integers(0, n), label="rollback")
    c = m.copy()
    c.rollback(k)
    back = n - k
    if back < len(masks):
        assert s.allowed(c) == masks[back]
        assert c.is_accepting() == (s.eos in masks[back])
    for i, t in enumerate(taken[back:], start=back):
        assert c.consume_token(t)
        if i + 1 < len(masks):
            assert s.allowed(c) == masks[i + 1]
    # the original is untouched by its copy's rollback; rollback(n) returns to the start
    m.rollback(n)
    assert s.allowed(m) == masks[0] and not m.is_terminated()
    with pytest.raises(ValueError):
        m.rollback(1)


# -- hand-picked steps: UTF-8 splits, multi-terminal tokens, specials --------------------------

def ids(s: Setup, *pieces: bytes | str) -> set[int]:
    return {s.by_bytes[p.encode() if isinstance(p, str) else p] for p in pieces}


def walk(s: Setup, text: bytes | str):
    data = text.encode() if isinstance(text, str) else text
    m = s.compiled.matcher()
    for t in s.tokenize(data):
        assert m.consume_token(t), (data, t)
    assert s.allowed(m) == reference_allowed(s.grammar, s.vocab, data)
    return m


def test_utf8_split_inside_strings():
    s = setup("tiny_json")
    m = walk(s, '["')
    allowed = s.allowed(m)
    assert ids(s, E_ACUTE[:1], NICHI[:2], NICHI[:1], E_ACUTE, NICHI, '"', 'a"', "\\") <= allowed
    assert not allowed & ids(s, '"x"', '"é', '"a')      # a second string cannot start here
    assert not allowed & ids(s, E_ACUTE[1:], NICHI[2:], NICHI[1:], b'\xa9"', b'\xa5"')  # continuation bytes
    # only the rest of the character: one continuation byte (c3 a9 = é, c3 a5 = å), or two
    assert s.allowed(walk(s, b'["\xc3')) == ids(s, b"\xa9", b'\xa9"', b"\xa5", b'\xa5"')
    assert s.allowed(walk(s, b'["\xe6')) == ids(s, b"\x97\xa5", b"\xa9", b"\xa5")
    assert s.allowed(walk(s, b'["\xe6\x97')) == ids(s, b"\xa9", b'\xa9"', b"\xa5", b'\xa5"')
    m = walk(s, '["日"')
    assert s.eos not in s.allowed(m) and ids(s, "]", ",", ", ", " ]") <= s.allowed(m)


def test_utf8_never_outside_strings():
    s = setup("tiny_json")
    for prefix in ["", "[", "[1", '{"a": ']:
        assert not s.allowed(walk(s, prefix)) & ids(s, *UTF8_PIECES)
    s = setup("arith")
    assert not s.allowed(walk(s, "x+")) & ids(s, *UTF8_PIECES)


def test_tokens_spanning_terminals():
    s = setup("arith")
    assert ids(s, ")*(", "))", ") ") <= s.allowed(walk(s, "((1"))
    assert ids(s, ")))") <= s.allowed(walk(s, "(((1"))
    assert not s.allowed(walk(s, "((1")) & ids(s, ")))")         # only two to close
    assert not s.allowed(walk(s, "(1")) & ids(s, ")))", "))")
    assert ids(s, " * ", " +", "+1", "(1", "x1", "ab", "f(") <= s.allowed(walk(s, "x"))   # x+1, x(1, x1...
    assert ids(s, "1 ") <= s.allowed(walk(s, "x"))                                       # the name x1
    assert not s.allowed(walk(s, "x")) & ids(s, "1.", "x)", ")")      # x1. / no ( open
    after_op = s.allowed(walk(s, "x*"))
    assert ids(s, "1", "(", ".5", "-1", "x*y") <= after_op and not after_op & ids(s, "*", ")", "+1")
    s = setup("tiny_json")
    assert ids(s, '": ', '":', '"') <= s.allowed(walk(s, '{"a'))
    assert not s.allowed(walk(s, '{"a')) & ids(s, '", "', '"}', '"]')
    assert ids(s, '", "', '"]') <= s.allowed(walk(s, '["a'))
    assert not s.allowed(walk(s, '["a')) & ids(s, '": ', '":', '"}')   # no members in a list
    s = setup("comments")
    m = walk(s, "(x #")                       # inside a comment: anything but what ends the word
    assert ids(s, ")", "\n)", "c\n", "#é", E_ACUTE[:1]) <= s.allowed(m)
    assert s.eos not in s.allowed(walk(s, "(x #c"))
    assert s.eos in s.allowed(walk(s, "(x #c\n)"))
    assert s.eos not in s.allowed(walk(s, "(x) #c"))          # a comment needs its newline
    assert s.eos in s.allowed(walk(s, "(x) #c\n"))


def test_terminals_ending_in_a_lookahead():
    s = setup("calls")
    m = walk(s, "f")                       # a NAME, or a CALL if "(" comes next
    assert s.eos in s.allowed(m) and ids(s, "(", "()", "(a", "(1", "(x(") <= s.allowed(m)
    assert not s.allowed(m) & ids(s, ",", "),", ")")
    m = walk(s, "f(1")
    assert ids(s, ",", ")", "0,", "23") <= s.allowed(m) and s.eos not in s.allowed(m)
    assert not s.allowed(m) & ids(s, "),")            # f(1) is the whole word: no comma after it
    assert not s.allowed(walk(s, "f(1")) & ids(s, "1_", "a1")   # NUMBER may not run into a name
    for text in ["f(x)", "f(a,b(1))", "ab", "f( 1 )", "f ( 1 )", "x(a(b(0)))", "f(1a)", "ab(1)(", "f(12_)"]:
        assert s.grammar.accepts(text) == s.oracle(text), text   # "f (": a NAME, then a stray "("
        if s.grammar.accepts_prefix(text):
            walk(s, text)


def test_lexemes_ending_at_an_earlier_match():
    s = setup("fallback")
    for text in ["'a''", "'a'''", "'ab''b'", "<=", "<=>", "<=a", "'x''a' <=> a", "a<=''"]:
        assert s.grammar.accepts(text) == s.oracle(text), text
        walk(s, text)          # the mask after the text, by brute force
    m = walk(s, "'a''")        # inside the string again, or the string 'a' and a new one
    assert ids(s, "'", "a'", "'a", "'' ", "''") <= s.allowed(m)
    m = walk(s, "<=")
    assert ids(s, ">", ">a", "a", "'a", "<") <= s.allowed(m) and s.eos in s.allowed(m)


def test_specials_and_eos():
    for name in NAMES:
        s = setup(name)
        m = s.compiled.matcher()
        assert not s.allowed(m) & s.specials
        for t in s.specials:
            assert not m.consume_token(t)
        assert not m.consume_token(s.vocab.size) and not m.consume_token(-1)
    s = setup("arith")
    m = walk(s, "1")
    assert s.eos in s.allowed(m) and s.declared_special not in s.allowed(m)
    assert not m.consume_token(s.declared_special)        # its bytes "1" would fit; it is special
    assert m.consume_token(s.eos) and m.is_terminated() and m.is_accepting()


def test_bitmask_rows_and_width():
    s = setup("arith")
    m = walk(s, "(1+")
    bitmask = gcd.allocate_token_bitmask(3, s.vocab.size)
    assert bitmask.dtype.is_signed and bitmask.shape == (3, (s.vocab.size + 31) // 32)
    m.fill_bitmask(bitmask, row=2)
    assert not bitmask[:2].any()
    words_ = bitmask[2].numpy().view(np.uint32)
    got = {32 * i + j for i, w in enumerate(words_) for j in range(32) if int(w) >> j & 1}
    assert got == set(m.allowed_token_ids().tolist()) == reference_allowed(s.grammar, s.vocab, b"(1+")

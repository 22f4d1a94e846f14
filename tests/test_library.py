"""The grammars in grammars/: accept/reject tables of real examples (checked against Lark too),
gcd.testing.check_grammar with the SmolLM2 vocabulary for each, and outside oracles where one
exists (Python's ast for python_expr, Python's csv module in strict mode for csv)."""
from __future__ import annotations

import ast
import csv
import io
import keyword

import pytest
from conftest import GRAMMARS
from hypothesis import HealthCheck, given, settings

import gcd
import gcd.testing
from gcd.testing import lark_oracle, tokenizations, words

TABLES = {
    "arithmetic": (["1 + 2 * 3", "8 - 3 - 2", "-(x + 1) ^ 2", "max(a, b) / 2.5e3", "pi()", "2 ^ 3 ^ 2",
                    "2 ^ -1", "100 % 7", "sqrt(b ^ 2 - 4 * a * c)", "  x\t*  y "],
                   ["", "1 +", "(1", "1 2", "f(,)", ".5", "1.", "2 ** 3", "(1))", "x = 1"]),
    "csv": (["a,b,c", "a,b\r\nc,d\r\n", '"x, y","say ""hi"""\n1,2', "", ",,", '"multi\nline",x',
             "name,age\nAnn,31\nBo,4\n", 'a, b ,"c"', '""'],
            ['a"b', '"a', '"a"b', 'x,"y"z', '"""', "a\rb"]),
    "smiles": (["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "[NH4+].[Cl-]",
                "C[C@@H](N)C(=O)O", "F/C=C/F", "[2H]C", "C%10CC%10", "[Fe++]", "[CH3:1]C", "C=1CC=1",
                "CC(C)(C)C", "Clc1ccc(Br)cc1", "[13CH4]", "O=C=O", "C#N", "[Na+].[O-]c1ccccc1"],
               ["", "C(", "C1CC(", "[NH4", "c1ccccc1)", "X", "[Xx]", "C)C", "CC==O", "C(C)1CC1", ".C", "C..C",
                "[C@@@H]", "CC O"]),
    "python_expr": (["1 + 2 * 3", "x if y else z", "lambda a, b: a + b", "f(x, *args, key=1, **kw)",
                     "a[1:2, ::3]", '{"a": 1, "b": [1, 2]}', "{1, 2}", "()", "(1,)", "not a in b",
                     "a is not None", "-x ** 2", "0x1F + 0o7 + 0b1 + 1.5e-3j", "r'\\d+' 'abc'", "a.b.c(d)[e]",
                     "[1, 2,]", "{}", 'print("hi")', "a < b <= c != d", "android + orx * iff", "None_ or Truex",
                     "lambda lambda_: match"],
                    ["1 +", "(1, 2", "lambda: ", "a not b", "x if y", "01", "a = 1", "'abc", "f(**)", "[1,,2]",
                     "'\\x4'", "A andA", "x if 1else 2", "a isnot b", "0x0j", "lambda: or", "f(and)",
                     "x.if", "lambda async: 1", "yield"]),
}


def grammar(name: str) -> gcd.Grammar:
    return gcd.Grammar.from_file(GRAMMARS / f"{name}.lark")


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables(name):
    g, oracle = grammar(name), lark_oracle(grammar(name))
    accept, reject = TABLES[name]
    assert [w for w in accept if not g.accepts(w)] == []
    assert [w for w in reject if g.accepts(w)] == []
    assert all(oracle(w) for w in accept) and not any(oracle(w) for w in reject)


def test_python_names_are_identifiers_but_not_keywords():
    """Keywords, words near them, and an attribute of each: a word exactly when Python parses it."""
    g = grammar("python_expr")
    near = {w for k in keyword.kwlist for w in (k, k[:-1], k[1:], k + "x", k + "_1", "x" + k, k.upper(), k.title())}
    texts = sorted(near | {f"a.{w}" for w in near})
    assert [t for t in texts if g.accepts(t) != _is_python(t)] == []


def _is_python(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def test_every_grammar_file_has_a_table_or_its_own_tests():
    covered = set(TABLES) | {"json", "sql"}   # json and sql: test_grammar.py, test_masks_bruteforce.py
    assert {p.stem for p in GRAMMARS.glob("*.lark")} == covered


@pytest.mark.parametrize("name, examples", [("arithmetic", 60), ("csv", 60), ("smiles", 60), ("python_expr", 40),
                                            ("json", 40), ("sql", 20)])
def test_check_grammar_passes(name, examples, smollm2_vocab):
    report = gcd.testing.check_grammar(grammar(name), smollm2_vocab, examples=examples)
    assert report.ok, str(report)
    assert report.checks["token walks"] >= examples // 2


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(words(grammar("python_expr")))
def test_python_expressions_are_python(expression):
    ast.parse(expression, mode="eval")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(words(grammar("csv")))
def test_csv_words_read_strictly(text):
    rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert len(rows) <= text.count("\n") + 1


def test_check_grammar_reports_what_gcd_gets_wrong(monkeypatch, smollm2_vocab):
    """check_grammar must fail where gcd disagrees with Lark: a Grammar.accepts that rejects
    words with a 7, and a matcher that refuses the token after '('."""
    g = grammar("arithmetic")
    real = gcd.Grammar.accepts
    monkeypatch.setattr(gcd.Grammar, "accepts", lambda self, text: real(self, text) and "7" not in str(text))
    report = gcd.testing.check_grammar(g, examples=100)
    assert not report.ok
    failure = next(f for f in report.failures if f.check == "words")
    assert "7" in failure.text and "Grammar.accepts" in failure.detail
    monkeypatch.setattr(gcd.Grammar, "accepts", real)

    real_consume = gcd.Matcher.consume_token

    def consume(self, token):
        if self._steps and self.compiled.vocab.token_bytes(token).startswith(b"(") is False and \
                getattr(self, "_after_paren", False):
            return False
        ok = real_consume(self, token)
        self._after_paren = self.compiled.vocab.token_bytes(token).endswith(b"(")
        return ok

    monkeypatch.setattr(gcd.Matcher, "consume_token", consume)
    report = gcd.testing.check_grammar(g, smollm2_vocab, examples=100)
    assert [f.check for f in report.failures] == ["token walks"], str(report)
    assert "(" in report.failures[0].text and "refused" in report.failures[0].detail


def test_tokenizations_spell_the_text_or_nothing():
    vocab = gcd.Vocabulary([b"a", b"b", b"ab", b"ba", b"</s>"], eos_token_id=4)
    found = set()

    @settings(max_examples=60, deadline=None)
    @given(tokenizations("abab", vocab))
    def spell(ids):
        assert b"".join(vocab.token_bytes(t) for t in ids) == b"abab" and 4 not in ids
        found.add(tuple(ids))

    spell()
    assert len(found) >= 4   # a|b|a|b, ab|ab, a|ba|b, ab|a|b, ...
    assert tokenizations("abc", vocab).is_empty

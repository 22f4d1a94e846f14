"""Bad grammars raise ``gcd.GrammarError`` (a ``GCDError``) saying where and what, never
another exception type."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gcd
from gcd.testing import edits

HERE = Path(__file__).parent
VOCAB = gcd.Vocabulary([b"a", b"b", b"x", b"1", b" ", None], eos_token_id=5)


def build(text: str, **kwargs) -> gcd.Grammar:
    """Everything a user does before decoding: parse the grammar, build its automata, compile."""
    g = gcd.Grammar(text, **kwargs)
    g.accepts("")
    gcd.GrammarCompiler(VOCAB, cache=False, progress=False).compile(g)
    return g


def raises(text: str, **kwargs) -> gcd.GrammarError:
    with pytest.raises(gcd.GrammarError) as info:
        build(text, **kwargs)
    e = info.value
    assert isinstance(e, gcd.GCDError) and type(e) is gcd.GrammarError
    assert str(e).strip()
    return e


def test_hierarchy():
    """Every exception class gcd exports is a GCDError (what users catch)."""
    exported = [getattr(gcd, name) for name in gcd.__all__]
    errors = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert {e.__name__ for e in errors} >= {"GCDError", "GrammarError", "VocabularyError", "StoreError"}
    assert all(issubclass(e, gcd.GCDError) for e in errors)
    assert issubclass(gcd.VocabularyError, ValueError)


def test_public_api_is_curated():
    """``gcd.__all__`` is the contract other tools drive gcd through: sorted, all resolvable."""
    assert gcd.__all__ == sorted(gcd.__all__) and len(set(gcd.__all__)) == len(gcd.__all__)
    assert all(getattr(gcd, name) is not None for name in gcd.__all__)
    public = {n for n in dir(gcd) if not n.startswith("_") and not isinstance(getattr(gcd, n), type(gcd))}
    assert public - {"annotations"} <= set(gcd.__all__) | {"GrammarLogitsProcessor"}


def test_a_damaged_pickle_is_a_store_error():
    import pickle
    compiled = gcd.GrammarCompiler(gcd.Vocabulary([b"a", b"b", b"<e>"], eos_token_id=2),
                                   cache=False, progress=False).compile('start: "a"+')
    data = bytearray(pickle.dumps(compiled))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(gcd.StoreError):
        pickle.loads(bytes(data))


# -- syntax --------------------------------------------------------------------------------

@pytest.mark.parametrize("text,line,column", [
    ('start: "a"\nfoo: ( "b"\n', 2, 11),        # unclosed parenthesis, seen at the line's end
    ('start: "a" ]\n', 1, 12),                  # stray bracket
    ('start: "a"\n\nrule: "b" -> \n', 3, 14),   # alias without a name (seen at the newline)
    ('start: "a"\nfoo: ) "b"\n', 2, 6),          # a closing parenthesis first
    ('start: A\nA: /abc\n', 2, 4),              # an unterminated regex
    ('start: "a" @ "b"\n', 1, 12),              # a character of no syntax
    ('start: "a"\x00\n', 1, 11),                # a NUL
])
def test_syntax_error_has_line_and_column(text, line, column):
    e = raises(text)
    assert (e.line, e.column) == (line, column)
    assert f"line {line}" in str(e) and f"column {column}" in str(e)


# -- names ----------------------------------------------------------------------------------

def test_undefined_rule():
    e = raises('start: "a" item\nother: "b"\n')
    assert "item" in str(e) and e.line == 1


def test_undefined_terminal():
    e = raises('start: "a"\n   | WORD\n')
    assert "terminal 'WORD' is used but not defined" in str(e) and e.line == 2


def test_a_declared_terminal_without_a_pattern():
    with pytest.raises(gcd.GrammarError, match=r"no pattern \(%declare\)") as e:
        gcd.Grammar('start: A "b"\n%declare A\n')
    assert (e.value.line, e.value.terminal) == (2, "A")


def test_nul_is_shown_escaped():
    e = raises('start: "a"\x00\n')
    assert "\\x00" in str(e) and "(" not in str(e).splitlines()[0]


def test_import_of_a_missing_name_says_so():
    e = raises("%import common.NOPE\nstart: NOPE\n")
    assert "%import common.NOPE" in str(e) and "common.lark defines no 'NOPE'" in str(e) and e.line == 1
    e = raises("%import common (WS, NOPE)\nstart: NOPE\n")
    assert "NOPE" in str(e) and "%import" in str(e)


def test_deep_nesting_in_a_rule():
    g = build("start: " + "(" * 500 + '"a"' + ")" * 500 + "\n")
    assert g.accepts("a") and not g.accepts("aa")
    e = raises("start: " + "(" * 30000 + '"a"' + ")" * 30000 + "\n")
    assert "nests groups 30000 deep" in str(e) and e.line == 1
    assert build('start: "(((" /[(]+/ "a"\n// (((((\n').accepts("((((a")   # brackets in strings, regexes, comments


def test_grammar_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "binary.lark"
    path.write_bytes(b'start: "a"\nB: "\xff\xfe"\n')
    with pytest.raises(gcd.GrammarError) as info:
        gcd.Grammar.from_file(path)
    assert "not UTF-8" in str(info.value) and "0xff" in str(info.value) and info.value.line == 2


def test_missing_start_rule():
    assert "start" in str(raises('begin: "a"\n'))
    build('begin: "a"\n', start="begin")


def test_rule_defined_twice():
    e = raises('start: "a"\nstart: "b"\n')
    assert "start" in str(e) and e.line is not None


# -- the language ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    'start: a\na: "x" a\n',                            # a never finishes
    'start: a b\na: "x"\nb: b "y"\n',                  # b never finishes
])
def test_empty_language(text):
    assert "empty" in str(raises(text))


def test_unproductive_alternative_is_fine():
    g = build('start: a | "y"\na: "x" a\n')     # one alternative is dead, the language is not empty
    assert g.accepts("y") and not g.accepts("x")


# -- terminals --------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern,why", [
    (r"/(a)\1/", "backreference"),
    (r"/(?P<q>a)(?P=q)/", "backreference"),
    (r"/(a)?(?(1)b|c)/", "conditional"),
    (r"/a(?=bc)/", "lookaround"),
    (r"/(?<=ab)c/", "lookaround"),
    (r"/a*/", "empty"),                               # matches the empty string
])
def test_terminal_not_regular_names_it(pattern, why):
    e = raises(f'start: "x" ODD\nODD: {pattern}\n')
    assert e.terminal == "ODD" and "ODD" in str(e)
    assert why in str(e).lower()


@pytest.mark.parametrize("pattern", [r"/[ab]*a[ab]{30}/", r"/(a|b){1,100000}/"])
def test_automaton_over_cap_names_terminal(pattern):
    # [ab]*a[ab]{30} needs 2^31 DFA states; the cap must stop it quickly, not exhaust memory
    e = raises(f'start: BIG\nBIG: {pattern}\n')
    assert e.terminal == "BIG" and "BIG" in str(e)


def test_common_terminals_with_lazy_and_lookbehind_are_fine():
    g = build('start: ESCAPED_STRING\n%import common.ESCAPED_STRING\n')
    assert g.accepts('"a\\"b"') and not g.accepts('"a"b"')


# -- imports ----------------------------------------------------------------------------------

def test_relative_import_from_string_refused(tmp_path, monkeypatch):
    (tmp_path / "other.lark").write_text('X: "x"\n')
    monkeypatch.chdir(tmp_path)          # Lark would resolve it next to __main__ or the cwd
    e = raises('%import .other.X\nstart: X\n')
    assert "import" in str(e)


def test_library_import_does_not_read_the_cwd(tmp_path, monkeypatch):
    (tmp_path / "secret.lark").write_text('X: "x"\n')
    monkeypatch.chdir(tmp_path)
    raises('%import secret.X\nstart: X\n')
    raises('%import nosuchlibrary.X\nstart: X\n')


def test_relative_import_from_file(tmp_path):
    (tmp_path / "words.lark").write_text('X: "x"\nY: "y"\n')
    (tmp_path / "main.lark").write_text('%import .words (X, Y)\nstart: X Y\n')
    g = gcd.Grammar.from_file(tmp_path / "main.lark")
    assert g.accepts("xy") and not g.accepts("x")


def test_file_grammar_cannot_read_outside_its_folder(tmp_path, monkeypatch):
    (tmp_path / "outside.lark").write_text('X: "x"\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    monkeypatch.chdir(tmp_path)
    for statement in ["%import .outside.X", "%import outside.X"]:
        (inner / "g.lark").write_text(f"{statement}\nstart: X\n")
        with pytest.raises(gcd.GrammarError):
            build_file(inner / "g.lark")


def build_file(path: Path) -> gcd.Grammar:
    g = gcd.Grammar.from_file(path)
    g.accepts("")
    return g


def test_import_through_a_link_out_of_the_folder_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the first line of a private file\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "words.lark").symlink_to(secret)
    (inner / "g.lark").write_text("%import .words.X\nstart: X\n")
    with pytest.raises(gcd.GrammarError) as info:
        build_file(inner / "g.lark")
    assert "leaves the grammar's folder" in str(info.value) and "private" not in str(info.value)
    (inner / "ok.lark").write_text('X: "x"\n')
    (inner / "alias.lark").symlink_to(inner / "ok.lark")   # a link that stays inside is fine
    (inner / "g.lark").write_text("%import .alias.X\nstart: X\n")
    assert build_file(inner / "g.lark").accepts("x")


def test_missing_file():
    with pytest.raises(gcd.GrammarError) as info:
        gcd.Grammar.from_file(HERE / "grammars" / "no-such-grammar.lark")
    assert "no-such-grammar.lark" in str(info.value)


# -- nothing but GrammarError, whatever the text ---------------------------------------------

SOURCES = [path.read_text(encoding="utf-8") for path in (
    HERE / "grammars" / "arith.lark", HERE / "grammars" / "keywords.lark",
    HERE / "grammars" / "ambiguous.lark", HERE.parent / "grammars" / "json.lark")]
MUTATION_CHARACTERS = ' \n"/\\()[]{}|*+?:.%-_>~#aAzZ019'


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SOURCES).flatmap(lambda t: edits(t, MUTATION_CHARACTERS))
       .flatmap(lambda t: edits(t, MUTATION_CHARACTERS)))
def test_mutated_grammars_raise_only_grammar_errors(text):
    try:
        g = gcd.Grammar(text)
        g.accepts("1")
        g.accepts_prefix("(")
    except gcd.GrammarError as e:
        assert str(e).strip()


def test_a_regex_lark_cannot_compile_is_a_grammar_error():
    """Found by the mutation test: an alternation Lark joins into one regex and compiles
    itself (a bad range: ``\\x00`` read as ``\\`` then ``x00``), not only gcd's own check."""
    raises('start: C\nC: /[^"\\\\x00-\\x1f]/ | "a"\n')
    raises('start: A\nA: /[0-\\d]/\n')

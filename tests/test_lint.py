"""gcd.lint.lint and `gcd check`: each warning has a grammar that triggers it and one, close to
it, that does not; the shipped grammars raise none."""
from __future__ import annotations

import pytest
from conftest import GRAMMARS

import gcd
from gcd.cli import main
from gcd.lint import lint

CASES = [  # (kind, grammar that triggers it, line, the same grammar fixed)
    ("unreachable", 'start: greeting\ngreeting: "hi" | "hello"\nfarewell: "bye"\n', 3,
     'start: greeting | farewell\ngreeting: "hi" | "hello"\nfarewell: "bye"\n'),
    ("unproductive", 'start: item | list\nitem: "x"\nlist: "[" list "]"\n', 3,
     'start: item | list\nitem: "x"\nlist: "[" (list | item) "]"\n'),
    ("unused-terminal", 'start: NAME\nNAME: /[a-z]+/\nNUMBER: /[0-9]+/\n', 3,
     'start: NAME | NUMBER\nNAME: /[a-z]+/\nNUMBER: /[0-9]+/\n'),
    ("whitespace-vs-ignore", 'start: line (NL line)*\nline: WORD+\nWORD: /[a-z]+/\nNL: "\\n"\n%ignore /\\s+/\n', 4,
     'start: line (NL line)*\nline: WORD+\nWORD: /[a-z]+/\nNL: "\\n"\n%ignore /[ \\t]+/\n'),
    ("stop-string", 'start: answer "<|im_end|>"\nanswer: "yes" | "no"\n', 1,
     'start: answer "."\nanswer: "yes" | "no"\n'),
    ("shadowed", 'start: (NULL | WORD)+\nNULL: "null"\nWORD.1: /[a-z]+/\n%ignore " "\n', 2,
     'start: (NULL | WORD)+\nNULL: "null"\nWORD: /[a-z]+/\n%ignore " "\n'),
    ("blank-loop", 'start: "begin" body "end"\nbody: (stmt | NL)+\nstmt: "x" ";"\nNL: /\\n/\n%ignore " "\n', 2,
     'start: "begin" body "end"\nbody: stmt+\nstmt: "x" ";"\n%ignore /\\s/\n'),
    ("not-lalr", 'start: pal\npal: "a" pal "a" | "b" pal "b" |\n', None,
     'start: pal\npal: "a" pal "a" | "b" pal "b" | "c"\n'),
]


@pytest.mark.parametrize("kind, bad, line, good", CASES, ids=[c[0] for c in CASES])
def test_each_warning_triggers_and_its_fix_does_not(kind, bad, line, good):
    warnings = [w for w in lint(gcd.Grammar(bad)) if w.kind == kind]
    assert len(warnings) == 1 and warnings[0].line == line, warnings
    assert [w.kind for w in lint(gcd.Grammar(good)) if w.kind == kind] == []


def test_stop_strings_are_the_chat_markers_or_those_given():
    g = gcd.Grammar('start: "x" "<|endoftext|>" | "y" "<repo_name>"\n')
    assert [w.line for w in lint(g) if w.kind == "stop-string"] == [1]
    assert len([w for w in lint(g, ["<repo_name>", "<|endoftext|>"]) if w.kind == "stop-string"]) == 2
    assert [w for w in lint(g, []) if w.kind == "stop-string"] == []


def test_check_adds_the_tokenizer_special_tokens(tmp_path, capsys):
    path = tmp_path / "g.lark"
    path.write_text('start: "<repo_name>" NAME\nNAME: /[a-z]+/\n')
    assert main(["check", str(path)]) == 0
    assert "warning: line 1: '<repo_name>' is a chat stop string or special token" in capsys.readouterr().out


EXPECTED = {"csv": ["blank-loop"]}   # RFC 4180 allows empty records: blank lines may go on (csv.lark says so)


@pytest.mark.parametrize("path", sorted(GRAMMARS.glob("*.lark")), ids=lambda p: p.stem)
def test_shipped_grammars_have_no_warnings_but_the_documented_ones(path):
    assert [w.kind for w in lint(gcd.Grammar.from_file(path))] == EXPECTED.get(path.stem, [])


def test_check_prints_warnings_with_lines(tmp_path, capsys):
    path = tmp_path / "g.lark"
    path.write_text(CASES[0][1])
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: line 3: rule farewell cannot be reached from start [unreachable]" in out

"""``lint``: warnings about a grammar that compiles but may not mean what its author thinks
(``gcd check`` prints them with their lines)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lark.lexer import PatternStr
from lark.load_grammar import load_grammar

from gcd.grammar import _confined_loader, _productive

if TYPE_CHECKING:
    from collections.abc import Iterable

    from gcd.grammar import Grammar

__all__ = ["CHAT_STOP_STRINGS", "LintWarning", "lint"]

# end-of-turn and end-of-text markers of common chat templates: a model emits them as one
# special token, never as text
CHAT_STOP_STRINGS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<eos>", "</s>",
                     "<|end_of_text|>", "<|im_start|>")
_WHITESPACE_SAMPLES = (" ", "  ", "\t", "\n", "\r\n", "\n\n")


@dataclass(frozen=True)
class LintWarning:
    """One warning: what (``kind``), where (``line``, None when unknown) and why (``message``)."""

    kind: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{'line ' + str(self.line) if self.line else 'grammar'}: {self.message} [{self.kind}]"


def lint(grammar: Grammar, stop_strings: Iterable[str] = CHAT_STOP_STRINGS) -> list[LintWarning]:
    """Warnings, in line order: rules not reachable from the start symbol (``unreachable``),
    rules that derive no finite string (``unproductive``), terminals defined but never used
    (``unused-terminal``), a terminal that matches whitespace an ``%ignore`` terminal also
    matches (``whitespace-vs-ignore``: which one the text becomes depends on longest match
    and priority), a string terminal that is one of ``stop_strings`` (``stop-string``: chat
    end markers and special tokens, which a model emits as one special token that gcd never
    allows as text; ``gcd check`` adds its tokenizer's special tokens), and a grammar that is not LALR(1) (``not-lalr``: gcd then parses
    it with its general parser, exact but slower per step)."""
    text = grammar.text
    loaders = [_confined_loader(grammar.base_dir)] if grammar.base_dir is not None else []
    built, _ = load_grammar(text, "<grammar>", loaders, False)
    terminals, rules, ignore = built.compile([grammar.start], set())
    found: list[LintWarning] = []

    defined = [_name(d) for d in built.rule_defs if not _params(d)]
    reachable = {r.origin.name for r in rules}
    for name in defined:
        if name not in reachable:
            found.append(LintWarning("unreachable", _line(text, name),
                                     f"rule {name} cannot be reached from {grammar.start}"))
    productive = {r.origin.name for r in _productive(rules)}
    for name in sorted(reachable - productive):
        if not name.startswith("__"):
            found.append(LintWarning("unproductive", _line(text, name),
                                     f"rule {name} derives no finite string (every alternative recurses forever)"))
    used = {s.name for r in rules for s in r.expansion if s.is_term} | set(ignore)
    code = re.sub(r"//[^\n]*", "", text)
    for name in (_name(d) for d in built.term_defs):
        # a terminal used only inside other terminals' definitions (JSON's CHAR) is used too
        if name not in used and not name.startswith("__") and len(re.findall(rf"\b{re.escape(name)}\b", code)) < 2:
            found.append(LintWarning("unused-terminal", _line(text, name), f"terminal {name} is never used"))

    by_name = {t.name: t for t in terminals}
    ignored = [by_name[n] for n in ignore if n in by_name]
    specials = set(stop_strings)
    for t in terminals:
        if t.name in ignore:
            continue
        regex = re.compile(t.pattern.to_regexp())
        for sample in _WHITESPACE_SAMPLES:
            other = next((i for i in ignored if re.fullmatch(i.pattern.to_regexp(), sample)), None)
            if other is not None and regex.fullmatch(sample):
                found.append(LintWarning(
                    "whitespace-vs-ignore", _line(text, t.name),
                    f"terminal {_shown(t.name)} matches {sample!r}, which %ignore ({_shown(other.name)}) matches too: "
                    "which of the two the text becomes depends on longest match and priority"))
                break
        if isinstance(t.pattern, PatternStr) and t.pattern.value in specials:
            found.append(LintWarning(
                "stop-string", _line(text, t.name, t.pattern.value),
                f"{t.pattern.value!r} is a chat stop string or special token: a model emits it as one special "
                "token, which gcd never allows as text, so it can only be spelled out of ordinary pieces"))
    table = grammar.recognizer.parser.table
    if table.conflicts:
        found.append(LintWarning("not-lalr", None,
                                 f"not LALR(1) ({len(table.conflicts)} conflicts, e.g. {table.conflicts[0]}): "
                                 "gcd parses it with its general (GLR) parser: exact, but steps may cost more"))
    return sorted(found, key=lambda w: (w.line or 0, w.kind))


def _name(definition) -> str:
    return str(definition[0] if isinstance(definition, tuple) else definition.name)


def _params(definition) -> tuple:
    return tuple(definition[1] if isinstance(definition, tuple) else definition.params)


def _shown(name: str) -> str:
    """A terminal's name, or "a string/regex" for the names Lark makes up for anonymous ones."""
    return "an anonymous terminal" if name.startswith("__") else name


def _line(text: str, name: str, literal: str | None = None) -> int | None:
    """The line defining ``name`` (or, for an anonymous terminal, where ``literal`` appears)."""
    m = re.search(rf"(?m)^[ \t]*[?!]?{re.escape(name)}(?:\.-?\d+)?[ \t]*:", text)
    if m is None and literal is not None:
        m = re.search(re.escape(literal), text)
    return text.count("\n", 0, m.start()) + 1 if m else None

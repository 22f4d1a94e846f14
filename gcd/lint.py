"""``lint``: warnings about a grammar that compiles but may not mean what its author thinks
(``gcd check`` prints them with their lines)."""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
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
    allows as text; ``gcd check`` adds its tokenizer's special tokens), a terminal the lexer
    can never produce because wherever the parser can take it another terminal takes every
    text it matches (``shadowed``: by longest match and priority), rules that can repeat
    forever on whitespace alone (``blank-loop``: a model can then write whitespace without
    end, beyond what ``max_trailing`` bounds), and a grammar that is not LALR(1) (``not-lalr``:
    gcd then parses it with its general parser, exact but slower per step)."""
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
    found += _shadowed_terminals(grammar)
    found += _blank_loops(grammar, rules)
    table = grammar.recognizer.parser.table
    if table.conflicts:
        found.append(LintWarning("not-lalr", None,
                                 f"not LALR(1) ({len(table.conflicts)} conflicts, e.g. {table.conflicts[0]}): "
                                 "gcd parses it with its general (GLR) parser: exact, but steps may cost more"))
    return sorted(found, key=lambda w: (w.line or 0, w.kind))


_NOT_BLANK = [b for b in range(256) if b not in b" \t\n\r\f\v"]   # bytes other than whitespace
_SEARCH_LIMIT = 20_000   # product states searched per shadowing question


def _shadowed_terminals(grammar: Grammar) -> list[LintWarning]:
    """Terminals every text of which another terminal takes, in every parser state that can
    take them: a better-ranked terminal matching the same text, or a higher-priority one
    matching a prefix of it (the lexer then drops lower priorities)."""
    table = grammar.recognizer.parser.table
    rank = {t.name: grammar.terminal_rank(t) for t in grammar.terminals}
    ignored = [n for n in grammar.ignore if n in rank]
    classes = dict(zip(table.terminal_names, table.terminal_class))
    candidates = [{n for n in table.terminal_names if classes[n] in actions} | set(ignored) for actions in table.actions]
    found, memo = [], {}
    for a in grammar.terminals:
        if a.name in grammar.ignore or a.name not in classes:
            continue
        sets = {frozenset(n for n in present if n != a.name and rank[n] < rank[a.name])
                for present in candidates if a.name in present}
        if not sets or not all(sets):
            continue
        verdicts = []
        for beaters in sets:
            key = (a.name, beaters)
            if key not in memo:
                memo[key] = _covered(grammar, a.name, [(n, rank[n][0] < rank[a.name][0]) for n in sorted(beaters)])
            verdicts.append(memo[key])
        if all(verdicts):
            names = sorted(n for n in set().union(*sets) if n not in grammar.ignore) or sorted(set().union(*sets))
            found.append(LintWarning("shadowed", _line(grammar.text, a.name, getattr(a.pattern, "value", None)),
                                     f"terminal {_shown(a.name)} can never be lexed: wherever it can come, "
                                     f"{', '.join(_shown(n) for n in names[:4])} take(s) every text it matches "
                                     "(longest match, then priority, then string literals before regexes)"))
    return found


def _covered(grammar: Grammar, a: str, beaters: list[tuple[str, bool]]) -> bool:
    """Whether every text terminal ``a`` matches is lost to one of ``beaters`` (name, whether of
    higher priority); False when the search is too large to tell, or a terminal ends in a
    lookahead."""
    dfas = grammar.terminal_dfas
    da = dfas[a]
    others = [dfas[n] for n, _ in beaters]
    higher = [h for _, h in beaters]
    if da.lookahead is not None or any(d.lookahead is not None for d in others):
        return False
    start = (0, (0,) * len(others))
    seen, todo = {start}, deque([start])
    while todo:
        qa, qs = todo.popleft()   # breadth first: short texts first
        if da.accepting[qa] and not any(q >= 0 and d.accepting[q] for d, q in zip(others, qs)):
            return False       # a text ``a`` wins
        rows = np.stack([da.transitions[qa]] + [d.transitions[q] if q >= 0 else np.full(256, -1, np.int32)
                                                 for d, q in zip(others, qs)])
        for column in np.unique(rows, axis=1).T:
            na, nqs = int(column[0]), tuple(int(x) for x in column[1:])
            if na < 0 or any(h and q >= 0 and d.accepting[q] for h, d, q in zip(higher, others, nqs)):
                continue       # dead for ``a``, or a higher priority matched and ``a`` was dropped
            state = (na, nqs)
            if state not in seen:
                if len(seen) >= _SEARCH_LIMIT:
                    return False
                seen.add(state)
                todo.append(state)
    return True


def _blank_loops(grammar: Grammar, rules) -> list[LintWarning]:
    """Rules that can derive themselves with only whitespace (terminals matching nothing but
    whitespace) added around: ``lines: line lines | line`` with ``line: NEWLINE``."""
    def blank(name: str) -> bool:   # matches something, not the empty text, and only whitespace
        dfa = grammar.terminal_dfas.get(name)
        return dfa is not None and not (dfa.transitions[:, _NOT_BLANK] >= 0).any() and bool(
            dfa.accepting.any()) and not dfa.accepting[0]

    blank_terms = {s.name for r in rules for s in r.expansion if s.is_term and blank(s.name)}
    # nonterminals that can derive a string of blanks, and those that can derive a non-empty one
    can_blank: set[str] = set()
    some_blank: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in rules:
            if all((s.name in blank_terms) if s.is_term else (s.name in can_blank) for s in r.expansion):
                nonempty = any((s.name in blank_terms) if s.is_term else (s.name in some_blank) for s in r.expansion)
                for group, add in ((can_blank, True), (some_blank, nonempty)):
                    if add and r.origin.name not in group:
                        group.add(r.origin.name)
                        changed = True
    edges: dict[str, set[str]] = {}
    eats: list[tuple[str, str]] = []   # (rule, symbol it can derive with blanks beside it)
    for r in rules:
        for i, s in enumerate(r.expansion):
            if s.is_term:
                continue
            edges.setdefault(r.origin.name, set()).add(s.name)
            rest = r.expansion[:i] + r.expansion[i + 1:]
            if all((x.name in blank_terms) if x.is_term else (x.name in can_blank) for x in rest) and any(
                    (x.name in blank_terms) if x.is_term else (x.name in some_blank) for x in rest):
                eats.append((r.origin.name, s.name))

    def reaches(a: str, b: str) -> bool:
        seen, todo = {a}, [a]
        while todo:
            x = todo.pop()
            if x == b:
                return True
            for y in edges.get(x, ()):
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
        return False

    found, named = [], set()
    for origin, target in eats:
        owner = re.sub(r"^__(.+?)_(?:plus|star|opt|alias|inline)?_?\d+$", r"\1", origin)   # Lark's x+ / x* rules
        if reaches(target, origin) and owner not in named and not owner.startswith("__"):
            named.add(owner)
            found.append(LintWarning("blank-loop", _line(grammar.text, owner),
                                     f"rule {owner} can repeat forever adding only whitespace terminals "
                                     f"({', '.join(_shown(n) for n in sorted(blank_terms))}): a model may write "
                                     "whitespace without end"))
    return found


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

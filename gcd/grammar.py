"""``Grammar``: Lark grammar text -> terminals, rules and the byte-level recogniser.

Lark reads the grammar (templates, ``?rule`` inlining, ``%import``, ``%ignore``, priorities);
gcd keeps what defines the language: the terminals with their regexes and priorities, the
context-free rules, the ignored terminals and the start symbol.
"""
from __future__ import annotations

import itertools
import os
import re
import sys
import threading
from functools import cached_property
from pathlib import Path

from lark.exceptions import GrammarError as LarkGrammarError
from lark.exceptions import UnexpectedInput, VisitError
from lark.grammar import NonTerminal, Rule
from lark.lexer import PatternStr, TerminalDef
from lark.load_grammar import load_grammar

from gcd.errors import GrammarError
from gcd.terminals import ByteDFA, literal_dfa, regex_to_dfa

_RELATIVE_IMPORT = re.compile(r"^\s*%import\s+\.", re.MULTILINE)
_AT = re.compile(r",? at line (\d+) column (\d+)")
_UNDEFINED = re.compile(r"(?:Rule|Terminal) '(\w+)' used but not defined(?: \(in rule (\w+)\))?")
RECURSION_LIMIT = 10_000   # Lark reads nested groups recursively: 500 levels need ~4,000 frames
MAX_NESTING = 1000         # and in time quadratic in the depth (1,000 levels: about 1.5 s)
_LEXEME = re.compile(r'"(?:[^"\\\n]|\\.)*"i?|/(?:[^/\\\n]|\\.)+/[imslux]*|//[^\n]*|[()\[\]]')
_recursion_lock = threading.Lock()


class Grammar:
    """A Lark grammar. ``Grammar(text)`` or ``Grammar.from_file(path)``.

    The language is the one Lark's LALR parser reads for conflict-free LALR(1) grammars
    (contextual, longest-match lexing; ``%ignore`` between terminals); other context-free
    grammars are parsed generally with the same lexing.
    """

    def __init__(self, text: str, *, start: str = "start", base_dir: str | Path | None = None) -> None:
        self.text = text
        self.start = start
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.path: Path | None = None    # the file it was read from, if any
        self.terminals, self.rules, self.ignore = _load(text, start, self.base_dir)
        self.terminal_dfas = {t.name: _terminal_dfa(t, text) for t in self.terminals}

    @classmethod
    def from_json_schema(cls, schema, *, whitespace: str = "flexible", property_order: str = "schema") -> "Grammar":
        """The grammar of the JSON documents valid under ``schema`` (a dict, JSON text, or an
        object with ``model_json_schema()``, e.g. a pydantic model class); see ``gcd.schema``
        for what is supported. A keyword it cannot express exactly raises
        ``gcd.UnsupportedSchemaError`` naming the keyword and its JSON pointer."""
        from gcd.schema import schema_to_lark

        return cls(schema_to_lark(schema, whitespace=whitespace, property_order=property_order))

    @classmethod
    def from_file(cls, path: str | Path, *, start: str = "start") -> "Grammar":
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise GrammarError(f"cannot read grammar file {path}: {e.strerror or e}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise GrammarError(f"grammar file {path} is not UTF-8 text: byte 0x{data[e.start]:02x} at offset "
                               f"{e.start}", line=line, column=e.start - data.rfind(b"\n", 0, e.start)) from None
        grammar = cls(text, start=start, base_dir=path.resolve().parent)
        grammar.path = path
        return grammar

    def __reduce__(self):
        return _rebuild, (self.text, self.start, self.base_dir, self.path)

    def __repr__(self) -> str:
        return f"Grammar({len(self.rules)} rules, {len(self.terminals)} terminals, start={self.start!r})"

    @cached_property
    def recognizer(self):
        """The byte-level recogniser (lexer + parser) for this grammar; built on first use."""
        from gcd.recognizer import Recognizer

        return Recognizer(self)

    @staticmethod
    def terminal_rank(terminal: TerminalDef) -> tuple:
        """How the lexer breaks a tie between terminals matching the same text (smaller wins):
        priority, then a string literal over a regex (Lark's keyword rule), then Lark's order."""
        pattern = terminal.pattern
        return (-terminal.priority, not isinstance(pattern, PatternStr), -pattern.max_width, -len(pattern.value),
                terminal.name)

    @property
    def is_lalr(self) -> bool:
        """True when the grammar is LALR(1) (no conflicts in its parse table)."""
        return self.recognizer.parser.table.is_lalr

    def accepts(self, text: str | bytes) -> bool:
        """Is ``text`` a complete word of the grammar? (A ``str`` that has no UTF-8 encoding,
        such as one holding a lone surrogate, is not.)"""
        data, r = _as_bytes(text), self.recognizer
        state = r.advance(r.initial, data)[0] if data is not None else None
        return state is not None and r.is_accepting(state)[0]

    def accepts_prefix(self, text: str | bytes) -> bool:
        """Can ``text`` still be completed to a word of the grammar?"""
        data, r = _as_bytes(text), self.recognizer
        state = r.advance(r.initial, data)[0] if data is not None else None
        return state is not None and r.is_viable(state)[0]


def _rebuild(text: str, start: str, base_dir: Path | None, path: Path | None) -> Grammar:
    grammar = Grammar(text, start=start, base_dir=base_dir)
    grammar.path = path
    return grammar


def _as_bytes(text: str | bytes) -> bytes | None:
    """UTF-8 bytes of ``text``; None for a ``str`` with no UTF-8 encoding (lone surrogates)."""
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return bytes(text)


def _load(text: str, start: str, base_dir: Path | None) -> tuple[list[TerminalDef], list[Rule], list[str]]:
    """Terminals, productive rules and ignored terminal names of a Lark grammar."""
    if not isinstance(text, str):
        raise TypeError(f"grammar text must be str, not {type(text).__name__}")
    if base_dir is None and _RELATIVE_IMPORT.search(text):
        raise GrammarError("a relative %import needs a grammar file: use Grammar.from_file(path)")
    depth, line = _nesting(text)
    if depth > MAX_NESTING:
        raise GrammarError(f"the grammar nests groups {depth} deep; gcd reads at most {MAX_NESTING}", line=line)
    source = str(base_dir / "<grammar>.lark") if base_dir is not None else "<string>"
    loaders = [_confined_loader(base_dir)] if base_dir is not None else []
    try:
        with _recursion_lock:
            limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(limit, RECURSION_LIMIT))
            try:
                built, _ = load_grammar(text, source, loaders, False)
                terminals, rules, ignore = built.compile([start], set())
            finally:
                sys.setrecursionlimit(limit)
    except UnexpectedInput as e:
        raise GrammarError(f"syntax error: {_lark_message(e)}", line=e.line, column=e.column,
                           context=e.get_context(text).rstrip()) from None
    except (LarkGrammarError, KeyError, AssertionError) as e:
        raise _grammar_error(text, str(e)) from None
    except VisitError as e:   # e.g. a regex Lark's `regex`/`re` cannot compile, found while building
        raise _grammar_error(text, f"{type(e.orig_exc).__name__}: {e.orig_exc}") from None
    except RecursionError:
        raise GrammarError(f"the grammar nests groups too deeply (more than Python's recursion limit of "
                           f"{RECURSION_LIMIT} frames allows)") from None
    except OSError as e:
        raise GrammarError(f"%import failed: {e.strerror or e} ({e.filename})") from None
    if not any(r.origin.name == start for r in rules):
        raise GrammarError(f"the grammar has no rule for the start symbol {start!r}")
    rules = _productive(rules)
    if not any(r.origin.name == start for r in rules):
        raise GrammarError(f"the grammar's language is empty: {start!r} derives no finite string")
    rules = _productive(_without_empty_rules(rules, start))
    used = {s.name for r in rules for s in r.expansion if s.is_term}
    # sorted by name: their order means nothing (ties go by ``terminal_rank``), so grammars
    # that differ only in the order of their definitions compile to the same automata
    terminals = sorted((t for t in terminals if t.name in used or t.name in ignore), key=lambda t: t.name)
    declared = sorted(used - {t.name for t in terminals})
    if declared:   # %declare: a terminal some other lexer would produce; gcd lexes the text itself
        at = re.search(rf"(?m)^\s*%declare\b.*\b{re.escape(declared[0])}\b", text)
        raise GrammarError("no pattern (%declare): gcd lexes the text itself, so every terminal a rule uses needs "
                           "a definition", line=at and text.count("\n", 0, at.start()) + 1, terminal=declared[0])
    return terminals, rules, list(ignore)


def _terminal_dfa(terminal: TerminalDef, text: str) -> ByteDFA:
    """The terminal's byte DFA (what ``re.match`` takes for it); its errors carry the line where
    the terminal is defined."""
    pattern = terminal.pattern
    if isinstance(pattern, PatternStr) and not pattern.flags:
        return literal_dfa(pattern.value.encode("utf-8"))
    try:
        return regex_to_dfa(pattern.to_regexp(), name=terminal.name)
    except GrammarError as e:
        if e.line is not None:
            raise
        m = re.search(rf"(?m)^[ \t]*{re.escape(terminal.name)}\b", text)
        line = text.count("\n", 0, m.start()) + 1 if m else None
        raise GrammarError(e.message, line=line, terminal=e.terminal, context=e.context) from None


def _productive(rules: list[Rule]) -> list[Rule]:
    """The rules whose symbols all derive some finite string."""
    productive: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in rules:
            if r.origin.name not in productive and all(
                    s.is_term or s.name in productive for s in r.expansion):
                productive.add(r.origin.name)
                changed = True
    return [r for r in rules if all(s.is_term or s.name in productive for s in r.expansion)]


PARSE_START = "__gcd_start"
MAX_OPTIONAL = 10


def _without_empty_rules(rules: list[Rule], start: str) -> list[Rule]:
    """The same language without empty rules (except ``PARSE_START -> <empty>`` when the
    empty string is a word), so that LR parsing never loops on hidden left recursion or
    cycles through empty rules. ``PARSE_START -> start`` becomes the rule to parse from."""
    nullable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for r in rules:
            if r.origin.name not in nullable and all(not s.is_term and s.name in nullable for s in r.expansion):
                nullable.add(r.origin.name)
                changed = True
    seen: set[tuple] = set()
    out: list[Rule] = []
    for r in rules:
        optional = [i for i, sym in enumerate(r.expansion) if not sym.is_term and sym.name in nullable]
        if len(optional) > MAX_OPTIONAL:
            raise GrammarError(f"rule {r.origin.name} has more than {MAX_OPTIONAL} symbols that can be empty")
        for drop in itertools.product((False, True), repeat=len(optional)):
            dropped = {i for i, d in zip(optional, drop) if d}
            expansion = [sym for i, sym in enumerate(r.expansion) if i not in dropped]
            key = (r.origin.name, tuple(sym.name for sym in expansion))
            if expansion and expansion != [r.origin] and key not in seen:
                seen.add(key)
                out.append(Rule(r.origin, expansion, order=len(out), alias=r.alias, options=r.options))
    root = NonTerminal(PARSE_START)
    out.append(Rule(root, [NonTerminal(start)]))
    if start in nullable:
        out.append(Rule(root, []))
    return out


def _lark_message(e: UnexpectedInput) -> str:
    expected = getattr(e, "expected", None) or getattr(e, "allowed", None)
    found = getattr(e, "token", None) or getattr(e, "char", None)
    msg = f"unexpected {found!r}" if found is not None else "unexpected input"
    if expected:
        msg += f", expected one of {', '.join(sorted(map(str, expected))[:12])}"
    return msg


def _grammar_error(text: str, message: str) -> GrammarError:
    """A gcd ``GrammarError`` for a Lark grammar error: the line and column it names (or the
    line of the name it quotes), and for an undefined name, whether an ``%import`` or a
    terminal or a rule is missing."""
    lines = message.strip().splitlines()
    first = lines[0] if lines else "invalid grammar"
    at = _AT.search(first)
    if at:
        line, column = int(at[1]), int(at[2])
        what = first[:at.start()].strip().rstrip(":") or "syntax error"
        source_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        near = source_line[column - 1:column + 19]
        if what.startswith("Unexpected input"):
            what = "syntax error"
        detail = f"{what} at {near!r}" if near else what
        return GrammarError(detail, line=line, column=column,
                            context=f"{source_line}\n{' ' * (column - 1)}^" if source_line else None)
    undefined = _UNDEFINED.match(first)
    if undefined:
        name, rule = undefined[1], undefined[2]
        imported = re.search(rf"(?m)^[ \t]*%import[ \t]+([\w.]+?)\.{name}\b|"
                             rf"^[ \t]*%import[ \t]+([\w.]+)[ \t]*\([^)]*\b{name}\b", text)
        where = f" (in rule {rule})" if rule else ""
        if imported:
            module = imported[1] or imported[2]
            return GrammarError(f"%import {module}.{name}: {module.lstrip('.')}.lark defines no {name!r}",
                                line=text.count("\n", 0, imported.start()) + 1)
        kind = "terminal" if name.lstrip("_")[:1].isupper() else "rule"
        return GrammarError(f"{kind} {name!r} is used but not defined{where}", line=_line_of(text, first))
    return GrammarError(first, line=_line_of(text, first))


def _nesting(text: str) -> tuple[int, int]:
    """The deepest nesting of ``( )`` and ``[ ]`` outside strings, regexes and comments, and
    the line where it is reached."""
    depth = deepest = 0
    at = 0
    for m in _LEXEME.finditer(text):
        c = m.group()
        if c in "([":
            depth += 1
            if depth > deepest:
                deepest, at = depth, m.start()
        elif c in ")]":
            depth = max(depth - 1, 0)
    return deepest, text.count("\n", 0, at) + 1


def _confined_loader(root: Path):
    """A Lark import loader for relative imports that reads only files whose real path (links
    resolved) lies in ``root``'s real folder; library imports pass on to Lark's own."""
    root = Path(os.path.realpath(root))

    def load(base_path, grammar_path: str):
        if base_path is None or not isinstance(base_path, str):
            raise OSError("not a relative import")
        joined = Path(os.path.realpath(os.path.join(base_path, grammar_path)))
        if not joined.is_relative_to(root):
            raise GrammarError(f"%import of {grammar_path} leaves the grammar's folder {root} "
                               f"(it resolves to {joined})")
        return str(joined), joined.read_text(encoding="utf-8")

    return load


def _line_of(text: str, message: str) -> int | None:
    """Best-effort line of the first name quoted in a Lark error message."""
    for name in re.findall(r"'([A-Za-z_][A-Za-z_0-9]*)'", message):
        m = re.search(rf"(?m)^\s*[?!]?{re.escape(name)}\b|\b{re.escape(name)}\b", text)
        if m:
            return text.count("\n", 0, m.start()) + 1
    return None

"""Byte-level recogniser: the contextual lexer driving the GLR parser.

A recogniser ``State`` is ``(parser configuration, lexer state)``. The lexer state is
``(lexer DFA state, fallback)``: while a lexeme is being read, the text may still have to
end it at its last match (the DFA dies later: ``UNION`` in ``UNION SELECT`` with the
terminal ``"UNION ALL" | "UNION"``); ``fallback`` is the ``State`` that taking that match and
lexing the bytes after it again leads to, or None when there is no such match or it leads
nowhere. Keeping the fallback as a state, not as the bytes after the match, keeps states
finite: inside a string after ``''`` every further byte would otherwise make a new state.

Inside one token the automata use the *raw* form ``(DFA state, last)``, ``last`` being
``None`` or ``(terminal, bytes read since it matched)``, which does not need the parser
(``advance_raw``, ``is_viable_raw``). Everything the token-level automata compute is defined
by this module; ``Grammar.accepts`` and ``Grammar.accepts_prefix`` use it byte by byte.

Every question returns, beside its answer, the lowest parser stack height it read (see
``gcd.parser``); ``UNREAD`` when it read none.
"""
from __future__ import annotations

from gcd.cache import LRU
from gcd.grammar import PARSE_START
from gcd.lexer import END, Lexer
from gcd.parser import Config, Parser, ParseTable, build_parse_table

State = tuple   # (Config, LexState)
LexState = tuple  # (lexer DFA state, fallback State | None)
RawLex = tuple    # (lexer DFA state, None | (terminal, bytes since it matched))
UNREAD = 1 << 60


class Recognizer:
    """The byte-level recogniser of a grammar. ``table`` (a ``ParseTable``) and ``lexer``
    (a lexer's ``export``) come from a cache file; else they are built. Its caches and its
    parser's keep ``cache_items`` entries each."""

    def __init__(self, grammar, table: ParseTable | None = None,
                 lexer: tuple[dict, dict] | None = None, cache_items: int = 200_000) -> None:
        names = [t.name for t in grammar.terminals]
        ranks = [grammar.terminal_rank(t) for t in grammar.terminals]
        index = {n: i for i, n in enumerate(names)}
        ignore = sum(1 << index[n] for n in grammar.ignore if n in index)
        self.lexer = Lexer(names, [grammar.terminal_dfas[n] for n in names],
                           [t.priority for t in grammar.terminals], ranks, ignore)
        if lexer is not None:
            self.lexer.restore(*lexer)
        self.parser = Parser(table if table is not None else build_parse_table(grammar.rules, names, PARSE_START),
                             cache_items)
        self.ignore_mask = ignore
        self._viable = LRU(cache_items)
        self.initial: State = (self.parser.initial, self.lexeme_start(self.parser.initial)[0])

    def export(self) -> tuple[dict, dict]:
        """(JSON-able structure, arrays) to rebuild this recogniser from a cache file."""
        meta, arrays = self.lexer.export()
        return {"table": self.parser.table.to_json(), "lexer": meta}, {f"lexer.{k}": v for k, v in arrays.items()}

    # -- parser steps ---------------------------------------------------------------------
    def lexeme_start(self, config: Config) -> tuple[LexState, int]:
        """The lexer state at the start of a lexeme: its candidates are the terminals the
        parser can really take next (plus ignored ones). Lark's contextual lexer uses the
        LALR state's lookahead set instead, a superset after LALR state merging."""
        mask, floor = self.parser.next_terminals(config)
        return (self.lexer.start(mask), None), floor

    def lexeme_starts(self) -> list[LexState]:
        """The lexer states at the start of a lexeme that a single parser stack can lead to."""
        return list(dict.fromkeys((self.lexer.start(mask), None) for mask in self.parser.terminal_sets()))

    def advance_parser(self, config: Config, terminal: int) -> tuple[Config | None, int]:
        """The parser after a completed lexeme (unchanged for ignored terminals); None if rejected."""
        if self.ignore_mask >> terminal & 1:
            return config, UNREAD
        nxt, floor = self.parser.advance(config, terminal)
        return (nxt or None), floor

    def after_lexeme(self, config: Config, terminal: int) -> tuple[State | None, int]:
        """The state at the start of the next lexeme once ``terminal`` ends this one; None if
        the parser rejects it."""
        after, floor = self.advance_parser(config, terminal)
        if after is None:
            return None, floor
        lex, f = self.lexeme_start(after)
        return (after, lex), min(floor, f)

    # -- decoding states ------------------------------------------------------------------
    def advance(self, state: State, data: bytes) -> tuple[State | None, int]:
        """The state after ``data``; None when the text can no longer be a word's prefix."""
        config, (s, fallback) = state
        lexer, floor = self.lexer, UNREAD
        rows, accept, before = lexer.rows, lexer.accept, lexer.before_rows
        for i in range(len(data)):
            b = data[i]
            t = rows[s][b]
            if t >= 0 and accept[t] >= 0:  # a match right after b: no earlier one matters
                s, fallback = t, None
                continue
            m = accept[s] if before[s] is None else before[s][b]   # the match before b, if any
            if m >= 0:  # the lexeme may end before b: take it, and b starts the next one
                fallback, f = self.after_lexeme(config, m)
                floor = min(floor, f)
                if fallback is not None:
                    fallback, f = self.advance(fallback, data[i:i + 1])
                    floor = min(floor, f)
            elif fallback is not None:
                fallback, f = self.advance(fallback, data[i:i + 1])
                floor = min(floor, f)
            if fallback is not None:
                viable, f = self.is_viable(fallback)
                floor = min(floor, f)
                if not viable:
                    fallback = None
            if t >= 0:
                s = t
            elif fallback is None:
                return None, floor
            else:  # the lexeme ends at its last match; the fallback has read b already
                config, (s, fallback) = fallback
        return (config, (s, fallback)), floor

    def is_viable(self, state: State) -> tuple[bool, int]:
        """Can the text so far be completed to a word? (The pending lexeme can still become a
        terminal the parser takes, or its fallback can.)"""
        hit = self._viable.get(state)
        if hit is None:
            config, (s, fallback) = state
            hit = self._main_viable(config, s)
            if not hit[0] and fallback is not None:
                viable, floor = self.is_viable(fallback)
                hit = (viable, min(hit[1], floor))
            self._viable.put(state, hit)
        return hit

    def _main_viable(self, config: Config, s: int) -> tuple[bool, int]:
        if self.lexer.is_start(s):
            return True, UNREAD
        mask, floor = self.parser.next_terminals(config)
        return bool(self.lexer.alive[s] & (mask | self.ignore_mask)), floor

    def is_accepting(self, state: State) -> tuple[bool, int]:
        """Is the text so far a complete word?"""
        config, (s, fallback) = state
        floor = UNREAD
        while True:
            if self.lexer.is_start(s):
                accepting, f = self.parser.is_accepting(config)
                return accepting, min(floor, f)
            m = self.lexer.match_before(s, END)
            if m >= 0:   # the lexeme ends with the text: the parser takes it, then the end
                after, f = self.advance_parser(config, m)
                floor = min(floor, f)
                if after is None:
                    return False, floor
                accepting, f = self.parser.is_accepting(after)
                return accepting, min(floor, f)
            if fallback is None:
                return False, floor
            config, (s, fallback) = fallback

    # -- raw states, inside a token -------------------------------------------------------
    def advance_raw(self, config: Config, lex: RawLex, data: bytes) -> tuple[tuple[Config, RawLex] | None, int]:
        """``advance`` with the raw lexer state: (config, raw lexer state) after ``data``."""
        s, last = lex
        lexer, floor = self.lexer, UNREAD
        rows, accept, before = lexer.rows, lexer.accept, lexer.before_rows
        i = 0
        while i < len(data):
            b = data[i]
            t = rows[s][b]
            m = accept[s] if before[s] is None else before[s][b]
            if t >= 0:
                if accept[t] >= 0:
                    last = None
                elif m >= 0:
                    last = (m, data[i:i + 1])
                elif last is not None:
                    last = (last[0], last[1] + data[i:i + 1])
                s, i = t, i + 1
                continue
            if m >= 0:  # dies: the lexeme ends before b, or at its last match, and the rest is lexed again
                terminal, replay = m, data[i:i + 1]
            elif last is not None:
                terminal, replay = last[0], last[1] + data[i:i + 1]
            else:
                return None, floor
            after, f = self.after_lexeme(config, terminal)
            floor = min(floor, f)
            if after is None:
                return None, floor
            after, f = self.advance_raw(after[0], after[1], replay)
            floor = min(floor, f)
            if after is None:
                return None, floor
            config, (s, last) = after
            i += 1
        return (config, (s, last)), floor

    def is_viable_raw(self, config: Config, lex: RawLex) -> tuple[bool, int]:
        """``is_viable`` for a raw lexer state."""
        s, last = lex
        viable, floor = self._main_viable(config, s)
        if viable or last is None:
            return viable, floor
        after, f = self.after_lexeme(config, last[0])
        floor = min(floor, f)
        if after is None:
            return False, floor
        state, f = self.advance_raw(after[0], after[1], last[1])
        floor = min(floor, f)
        if state is None:
            return False, floor
        viable, f = self.is_viable_raw(*state)
        return viable, min(floor, f)

"""Byte-level recogniser: the contextual lexer driving the GLR parser.

A recogniser state is ``(parser configuration, lexer state)``. Everything the token-level
automata compute is defined by this module's semantics; ``Grammar.accepts`` and
``Grammar.accepts_prefix`` use it directly, byte by byte.
"""
from __future__ import annotations

from gcd.grammar import PARSE_START
from gcd.lexer import Lexer, LexState
from gcd.parser import Config, Parser, build_parse_table, top_height

State = tuple  # (Config, LexState)


class Recognizer:
    def __init__(self, grammar) -> None:
        names = [t.name for t in grammar.terminals]
        index = {n: i for i, n in enumerate(names)}
        self.lexer = Lexer(grammar.terminals, grammar.ignore, index, grammar.terminal_dfas)
        self.parser = Parser(build_parse_table(grammar.rules, names, PARSE_START))
        self._start()

    def _start(self) -> None:
        self.ignore_mask = self.lexer.ignore_mask
        self._viable: dict[State, tuple[bool, int]] = {}  # (viable, parser low-water mark)
        self.initial: State = (self.parser.initial, self.fresh(self.parser.initial))

    def __getstate__(self) -> dict:
        return {"lexer": self.lexer, "parser": self.parser}

    def __setstate__(self, state: dict) -> None:
        self.lexer, self.parser = state["lexer"], state["parser"]
        self._start()

    def fresh(self, config: Config) -> LexState:
        """The lexer state at the start of a lexeme: its candidates are the terminals the
        parser can really take next (plus ignored ones). Lark's contextual lexer uses the
        LALR state's lookahead set instead, a superset after LALR state merging."""
        return (self.lexer.start(self.parser.shiftable(config)), None)

    def shift(self, config: Config, terminal: int) -> Config | None:
        """The parser after a completed lexeme (unchanged for ignored terminals); None if rejected."""
        if self.ignore_mask >> terminal & 1:
            return config
        return self.parser.feed(config, terminal) or None

    def feed_bytes(self, state: State, data: bytes) -> State | None:
        """The state after ``data``, or None when the input can no longer be a word's prefix."""
        config, lex = state
        step = self.lexer.step
        for b in data:
            r = step(lex, b)
            if r is None:
                return None
            if r[0] == "cont":
                lex = r[1]
                continue
            config = self.shift(config, r[1])
            if config is None:
                return None
            after = self.feed_bytes((config, self.fresh(config)), r[2])
            if after is None:
                return None
            config, lex = after
        return (config, lex)

    def is_viable(self, state: State) -> bool:
        """Can the input so far be completed to a word? (The pending lexeme can still become
        a terminal the parser takes, or end at its last match with the rest re-lexed.)"""
        parser = self.parser
        hit = self._viable.get(state)
        if hit is None:
            saved, parser.low = parser.low, top_height(state[0])
            hit = self._viable[state] = (self._compute_viable(state), parser.low)
            parser.low = saved
        if hit[1] < parser.low:
            parser.low = hit[1]
        return hit[0]

    def _compute_viable(self, state: State) -> bool:
        config, (s, last) = state
        if self.lexer.is_start(s):
            return True
        if self.lexer.alive[s] & (self.parser.shiftable(config) | self.ignore_mask):
            return True
        if last is not None:
            after_shift = self.shift(config, last[0])
            if after_shift is not None:
                after = self.feed_bytes((after_shift, self.fresh(after_shift)), last[1])
                return after is not None and self.is_viable(after)
        return False

    def is_accepting(self, state: State) -> bool:
        """Is the input so far a complete word?"""
        config, lex = state
        while True:
            r = self.lexer.end(lex)
            if r is None:
                return False
            if r[0] == "empty":
                return self.parser.accepts_end(config)
            config = self.shift(config, r[1])
            if config is None:
                return False
            after = self.feed_bytes((config, self.fresh(config)), r[2])
            if after is None:
                return False
            config, lex = after

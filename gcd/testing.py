"""Property-testing helpers: Hypothesis strategies for a grammar's words, Lark as an oracle,
and brute-force reference masks.

Use them to test your own grammars (and gcd itself)::

    import gcd
    from hypothesis import given
    from gcd.testing import check_grammar, near_misses, prefixes, words

    grammar = gcd.Grammar.from_file("my.lark")

    def test_my_grammar():                      # all of the below, and token walks with a vocabulary
        report = check_grammar(grammar, vocab)  # vocab=None: text only
        assert report.ok, report

    @given(words(grammar))                      # words Lark accepts
    def test_words(w):
        assert grammar.accepts(w)

    @given(near_misses(grammar))                # one edit from a word, and not a word
    def test_near_misses(s):
        assert not grammar.accepts(s)

``derivations`` draws from the rules without the Lark filter, ``edits`` edits one string,
``prefixes`` cuts words, ``tokenizations(text, vocab)`` draws token sequences spelling a text.

``reference_allowed`` and ``assert_mask_exact`` check token masks against their definition
(see ``reference_allowed``) by brute force: one ``accepts_prefix`` call per vocabulary token
and step, so keep vocabularies small (hundreds of tokens, not 50k).

``TableModel`` is a language model given by a function of the prefix, and
``exact_distributions`` enumerates, for such a model and a grammar with short words, the exact
target ``p(y | y in grammar)`` and the distribution masking samples from: what the samplers'
tests compare with.

Hypothesis is imported lazily, so ``import gcd.testing`` works without it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hypothesis.strategies import SearchStrategy

    import torch

    from gcd.compiler import CompiledGrammar
    from gcd.grammar import Grammar
    from gcd.matcher import Matcher
    from gcd.vocab import Vocabulary

__all__ = ["Counterexample", "GrammarReport", "TableModel", "assert_mask_exact", "check_grammar", "derivations",
           "edits", "exact_distributions", "lark_oracle", "mask_token_ids", "near_misses", "prefixes",
           "reference_allowed", "tokenizations", "words"]

# Characters near_misses inserts besides the word's own: structure, quotes, escapes, space,
# digits, letters, a control character and multi-byte UTF-8 (2, 3 and 4 bytes).
NEAR_MISS_CHARACTERS = " \t\n\"'\\{}[]()<>,.;:=+-*/#_0129eEaxzXZ\x00\x1fé日😀"


def _lark(grammar_text: str, start: str, parser: str):
    from lark import Lark

    return Lark(grammar_text, parser=parser, start=start)


def derivations(grammar: Grammar | str, start: str = "start", *, alphabet: SearchStrategy[str] | None = None,
                separator: str | None = None, max_depth: int = 6) -> SearchStrategy[str]:
    """Strings derived from the grammar's rules (a ``Grammar`` or Lark text), as ``hypothesis.extra.lark.from_lark`` draws
    them, but with the derivation depth bounded: beyond ``max_depth`` nested rules only the
    alternatives that finish soonest are taken. (``from_lark`` picks alternatives uniformly;
    on recursive grammars such as SQL most of its draws grow until Hypothesis gives up, and
    40 examples take minutes.) Like ``from_lark``, each terminal is drawn from its regex
    (``hypothesis.strategies.from_regex``) and ``%ignore`` text is drawn after a quarter of
    the symbols.

    Beware: the draw follows the context-free grammar over terminals and joins terminals
    *without looking at lexing*. Adjacent terminals may lex differently once joined
    (``let`` + ``x`` is the identifier ``letx``; an identifier drawn as ``if`` is the
    keyword), and a lazy terminal such as ``ESCAPED_STRING`` may be drawn longer than the
    lexer would match. So a drawn string is often **not** a word of the grammar: compare it
    with an oracle (``lark_oracle``), never assume it is accepted; ``words`` keeps only the
    draws Lark accepts.

    ``alphabet`` restricts the characters regex terminals are drawn from (default: any
    character encodable in UTF-8; string literals are drawn as they are; as in ``from_lark``,
    terminals ``from_regex`` cannot draw from it are left out, with the rules using them).
    ``separator``, text that an ``%ignore`` terminal matches (say ``" "``), is appended to
    each drawn terminal half of the time, so that keywords and identifiers are often kept
    apart. Grammars using ``%declare`` are not supported.
    """
    from hypothesis import strategies as st
    from hypothesis.errors import InvalidArgument
    from lark.lexer import PatternStr

    grammar_text, start = _source(grammar, start)
    # the grammar as Lark compiles it (templates expanded, ?rules inlined); Earley builds for
    # every grammar, Lark's LALR builder refuses reduce/reduce conflicts
    terminals, rules, ignore = _lark(grammar_text, start, "earley").grammar.compile([start], ())
    chars = st.characters(codec="utf-8") if alphabet is None else alphabet
    lexemes = {}
    for t in terminals:
        if isinstance(t.pattern, PatternStr) and not t.pattern.flags:
            lexemes[t.name] = st.just(t.pattern.value)
            continue
        lexeme = st.from_regex(t.pattern.to_regexp(), fullmatch=True, alphabet=chars)
        try:
            lexeme.validate()
        except InvalidArgument:  # not drawable from the alphabet: as in from_lark, rules using it go
            continue
        lexemes[t.name] = lexeme
    if separator is not None:
        for name in set(lexemes) - set(ignore):
            lexemes[name] = st.tuples(lexemes[name], st.sampled_from(["", separator])).map("".join)
    declared = {t.name for t in terminals}
    missing = {s.name for r in rules for s in r.expansion if s.is_term and s.name not in declared}
    if missing:
        raise ValueError(f"terminals without a pattern (%declare?): {sorted(missing)}")
    expansions: dict[str, list[tuple]] = {}
    for r in rules:
        if all(s.name in lexemes for s in r.expansion if s.is_term):
            expansions.setdefault(r.origin.name, []).append(tuple((s.name, s.is_term) for s in r.expansion))
        else:
            expansions.setdefault(r.origin.name, [])
    ignore = [n for n in ignore if n in lexemes]

    # height: the fewest nested rules needed to finish a nonterminal (unproductive: absent)
    height: dict[str, int] = {}
    changed = True
    while changed:
        changed = False
        for name, exps in expansions.items():
            best = min((1 + max((height[n] for n, term in e if not term), default=0) for e in exps
                        if all(term or n in height for n, term in e)), default=None)
            if best is not None and best < height.get(name, best + 1):
                height[name], changed = best, True
    if start not in height:
        raise ValueError(f"the grammar derives no string from {start!r}")

    def cost(e: tuple) -> tuple:
        return (max((height.get(n, 1 << 30) for n, term in e if not term), default=0), len(e))

    choices, finishing = {}, {}
    for name, exps in expansions.items():
        usable = sorted((e for e in exps if all(term or n in height for n, term in e)), key=cost)
        if usable:
            choices[name] = st.sampled_from(usable)
            least = cost(usable[0])[0]
            finishing[name] = st.sampled_from([e for e in usable if cost(e)[0] == least])
    ignored = st.sampled_from(sorted(ignore)) if ignore else None

    @st.composite
    def draw_word(draw) -> str:
        out: list[str] = []

        def expand(name: str, depth: int) -> None:
            expansion = draw(choices[name] if depth < max_depth else finishing[name])
            for symbol, is_terminal in expansion:
                if is_terminal:
                    out.append(draw(lexemes[symbol]))
                else:
                    expand(symbol, depth + 1)
                if ignored is not None and draw(st.integers(0, 3)) == 0:
                    out.append(draw(lexemes[draw(ignored)]))

        expand(start, 0)
        return "".join(out)

    return draw_word()


def edits(word: str, alphabet: str = NEAR_MISS_CHARACTERS) -> SearchStrategy[str]:
    """Strings one edit away from ``word``: one character deleted, inserted, replaced, two
    adjacent characters swapped, or the word truncated. The characters inserted are those of
    ``word`` and ``alphabet``. The result may or may not be a word: compare it with an oracle
    (``near_misses`` keeps the edits of words that are not words).
    """
    from hypothesis import strategies as st

    chars = st.sampled_from(sorted(set(word) | set(alphabet)))
    n = len(word)
    position = st.integers(0, n)
    edits = [
        st.tuples(position, chars).map(lambda pc: word[:pc[0]] + pc[1] + word[pc[0]:]),  # insert
        position.map(lambda i: word[:i]),                                                # truncate
    ]
    if n:
        index = st.integers(0, n - 1)
        edits += [
            index.map(lambda i: word[:i] + word[i + 1:]),                                 # delete
            st.tuples(index, chars).map(lambda ic: word[:ic[0]] + ic[1] + word[ic[0] + 1:]),  # replace
        ]
    if n >= 2:
        edits.append(st.integers(0, n - 2).map(
            lambda i: word[:i] + word[i + 1] + word[i] + word[i + 2:]))                  # swap
    return st.one_of(edits)


def words(grammar: Grammar | str, start: str = "start", *, separator: str | None = None,
          max_depth: int = 6, alphabet: SearchStrategy[str] | None = None) -> SearchStrategy[str]:
    """Words of the grammar: ``derivations`` that Lark (``lark_oracle``) accepts. ``separator``
    defaults to a space where an ``%ignore`` terminal matches one (keywords then stay apart)."""
    g = _grammar(grammar, start)
    return _words(g, lark_oracle(g), separator, max_depth, alphabet)


def _words(g: Grammar, oracle: Callable[[str], bool], separator: str | None, max_depth: int,
           alphabet: SearchStrategy[str] | None) -> SearchStrategy[str]:
    if separator is None:
        separator = _space_if_ignored(g)
    return derivations(g, alphabet=alphabet, separator=separator, max_depth=max_depth).filter(oracle)


def prefixes(grammar: Grammar | str, start: str = "start", **options) -> SearchStrategy[str]:
    """Prefixes (cut at any character) of ``words(grammar, start, **options)``: each can still
    be completed to a word."""
    from hypothesis import strategies as st

    return words(grammar, start, **options).flatmap(lambda w: st.integers(0, len(w)).map(lambda i: w[:i]))


def near_misses(grammar: Grammar | str, start: str = "start", *, alphabet: str = NEAR_MISS_CHARACTERS,
                separator: str | None = None, max_depth: int = 6) -> SearchStrategy[str]:
    """Strings one edit (``edits``) away from a word of the grammar that are not words (per Lark)."""
    g = _grammar(grammar, start)
    oracle = lark_oracle(g)
    return (_words(g, oracle, separator, max_depth, None).flatmap(lambda w: edits(w, alphabet))
            .filter(lambda s: not oracle(s)))


def tokenizations(text: str | bytes, vocab: Vocabulary) -> SearchStrategy[list[int]]:
    """Token id sequences of ``vocab`` (special tokens left out) whose bytes are exactly
    ``text``: any segmentation, not only the tokenizer's own. No sequence when the vocabulary
    cannot spell the text (``hypothesis.strategies.nothing()``)."""
    from hypothesis import strategies as st

    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    by_bytes = vocab.ids_by_bytes
    longest = int(vocab.lengths.max(initial=1))
    n = len(data)
    reach = [False] * n + [True]          # reach[i]: the rest from i can be spelled
    options: list[list[tuple[int, int]]] = [[] for _ in range(n + 1)]   # (next position, token id)
    for i in range(n - 1, -1, -1):
        for length in range(1, min(longest, n - i) + 1):
            if reach[i + length]:
                options[i] += [(i + length, t) for t in by_bytes.get(data[i:i + length], ())]
        reach[i] = bool(options[i])
    if not reach[0]:
        return st.nothing()
    choice = [st.sampled_from(o) if o else None for o in options]

    @st.composite
    def draw(draw_) -> list[int]:
        ids, i = [], 0
        while i < n:
            i, token = draw_(choice[i])
            ids.append(token)
        return ids

    return draw()


def _source(grammar: Grammar | str, start: str) -> tuple[str, str]:
    """(Lark text, start) of a ``Grammar`` (its own start) or of grammar text."""
    text = getattr(grammar, "text", None)
    return (text, grammar.start) if text is not None else (grammar, start)


def _grammar(grammar: Grammar | str, start: str) -> Grammar:
    """``grammar`` as a ``gcd.Grammar`` (Lark text is read with ``start``)."""
    from gcd.grammar import Grammar

    return grammar if isinstance(grammar, Grammar) else Grammar(grammar, start=start)


def _space_if_ignored(g: Grammar) -> str | None:
    """``" "`` where one of the grammar's ``%ignore`` terminals matches a space, else None."""
    import re

    patterns = [t.pattern.to_regexp() for t in g.terminals if t.name in g.ignore]
    return " " if any(re.fullmatch(p, " ") for p in patterns) else None


def lark_oracle(grammar: Grammar | str, start: str = "start", *, parser: str | None = None,
                exact_context: bool = True) -> Callable[[str | bytes], bool]:
    """``s -> does Lark parse s`` for the grammar (a ``Grammar`` or Lark text): the
    reference for ``Grammar.accepts``.

    ``parser`` is ``"lalr"`` or ``"earley"``; by default LALR for LALR(1) grammars (per
    ``gcd.Grammar(...).is_lalr``: Lark's LALR builder resolves shift/reduce conflicts silently
    and then rejects words of the grammar) and Earley otherwise. Earley's dynamic lexer is not
    greedy, so it reads the same language as gcd only where lexing is unambiguous (e.g.
    one-character or clearly delimited terminals). Bytes that are not UTF-8 are never words.

    ``exact_context`` (LALR only): lex each token among the terminals the parser can really
    take next, as gcd does, rather than among all terminals with an action in the LALR state,
    as Lark's contextual lexer does. After LALR state merging that set can hold terminals the
    parser then rejects: with an identifier terminal and a keyword that only ends a block,
    Lark lexes the identifier ``end`` after a statement as the keyword and fails, where gcd
    reads an identifier. Whatever Lark's own contextual lexer accepts, this oracle accepts too
    (a token Lark lexes that the parser cannot take fails Lark's parse at once); it accepts
    more exactly where such a merged-in terminal would steal the text. Among the candidates
    it takes the highest priority, then the longest match (each terminal matched by Python's
    ``re``), as gcd does; Lark's own lexer takes the first alternative that matches instead.
    """
    from lark.exceptions import LarkError

    grammar_text, start = _source(grammar, start)
    if parser is None:
        parser = "lalr" if _grammar(grammar, start).is_lalr else "earley"
    lark = _lark(grammar_text, start, parser)
    if parser == "lalr" and exact_context:
        _use_exact_context(lark)

    def accepts(s: str | bytes) -> bool:
        if isinstance(s, (bytes, bytearray)):
            try:
                s = bytes(s).decode("utf-8")
            except UnicodeDecodeError:
                return False
        try:
            lark.parse(s)
        except LarkError:
            return False
        return True

    return accepts


def _use_exact_context(lark) -> None:
    """Swap Lark's contextual lexer for one whose candidates are the terminals the LALR parser
    can shift (after its reductions) from the current state, plus the ignored ones."""
    from lark.exceptions import UnexpectedInput
    from lark.lexer import Lexer, Token

    conf = lark.lexer_conf
    by_name = conf.terminals_by_name

    def can_take(parser_state, name: str) -> bool:
        try:
            parser_state.copy(deepcopy_values=False).feed_token(Token(name, ""))
        except UnexpectedInput:
            return False
        return True

    import re

    from lark.exceptions import UnexpectedCharacters
    from lark.lexer import PatternStr

    patterns = {n: re.compile(t.pattern.to_regexp()) for n, t in by_name.items()}
    order = {t.name: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name) for t in by_name.values()}

    def longest(text: str, pos: int, names: frozenset) -> tuple[str, int] | None:
        """The lexeme at ``pos``: among the candidates that match (each by Python's own
        ``re.match``), the highest priority, then the longest match, then a string literal
        over a regex, then Lark's order."""
        best = None
        for n in names:
            m = patterns[n].match(text, pos)
            if m and m.end() > pos:
                t = by_name[n]
                key = (t.priority, m.end() - pos, isinstance(t.pattern, PatternStr))
                if best is None or key > best[0] or (key == best[0] and order[n] < order[best[1]]):
                    best = (key, n)
        return (best[1], best[0][1]) if best else None

    class ExactContextualLexer(Lexer):
        """Candidates: the terminals the parser can shift, plus ignored ones; longest match."""

        def __init__(self) -> None:
            pass

        def lex(self, lexer_state, parser_state):
            text = getattr(lexer_state.text, "text", lexer_state.text)   # Lark >= 1.3 passes a TextSlice
            end = getattr(lexer_state.text, "end", None) or len(text)
            while True:
                pos = lexer_state.line_ctr.char_pos
                if pos >= end:
                    return
                actions = parser_state.parse_conf.parse_table.states[parser_state.position]
                names = frozenset(n for n in actions if n in by_name and can_take(parser_state, n))
                found = longest(text, pos, names | frozenset(conf.ignore))
                if found is None:
                    raise UnexpectedCharacters(text, pos, lexer_state.line_ctr.line, lexer_state.line_ctr.column,
                                               allowed=names)
                name, length = found
                value = text[pos:pos + length]
                lexer_state.line_ctr.feed(value)
                if name not in conf.ignore:
                    yield Token(name, value, pos)

    if not isinstance(lark.parser.lexer, Lexer):  # pragma: no cover - a postlexer is in the way
        raise TypeError("exact_context needs a Lark LALR parser without a postlexer")
    lark.parser.lexer = ExactContextualLexer()


def reference_allowed(grammar: Grammar, vocab: Vocabulary, prefix: bytes) -> set[int]:
    """The exact mask after ``prefix``, by brute force from its definition:

    ``{t : grammar.accepts_prefix(prefix + bytes(t))}`` over non-special tokens, plus the EOS
    ids iff ``grammar.accepts(prefix)``. Special tokens (``None``/``b""`` entries, declared
    special ids) are never allowed. The grammar's byte-level recogniser reads the prefix once
    and then each token from there (the same as ``accepts_prefix`` on the joined bytes), so a
    call costs one token's bytes per vocabulary token.
    """
    rec = grammar.recognizer
    state, _ = rec.advance(rec.initial, bytes(prefix))
    if state is None:
        return set()
    allowed = set(vocab.eos_token_ids) if rec.is_accepting(state)[0] else set()
    special = vocab.special_token_ids
    for t in range(vocab.size):
        data = vocab.token_bytes(t)
        if data and t not in special:
            after, _ = rec.advance(state, data)
            if after is not None and rec.is_viable(after)[0]:
                allowed.add(t)
    return allowed


def mask_token_ids(matcher: Matcher) -> set[int]:
    """The allowed tokens as ``fill_bitmask`` writes them (bits past the vocabulary must be 0)."""
    from gcd.masks import allocate_token_bitmask

    size = matcher.compiled.vocab.size
    bitmask = allocate_token_bitmask(2, size)
    bitmask.fill_(-1)  # stale bits must be overwritten, not OR-ed into
    matcher.fill_bitmask(bitmask, row=1)
    if bitmask[0].ne(-1).any():
        raise AssertionError("fill_bitmask(row=1) wrote outside row 1")
    words = bitmask[1].numpy().view(np.uint32)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")
    if bits[size:].any():
        extra = np.flatnonzero(bits[size:]) + size
        raise AssertionError(f"fill_bitmask set bits past the vocabulary size {size}: {extra}")
    return set(np.flatnonzero(bits).tolist())


def _check_step(matcher: Matcher, grammar: Grammar, vocab: Vocabulary, prefix: bytes) -> set[int]:
    expected = reference_allowed(grammar, vocab, prefix)
    ids = matcher.allowed_token_ids()
    listed = [int(t) for t in ids]
    if listed != sorted(set(listed)):
        raise AssertionError(f"allowed_token_ids() not strictly ascending after {prefix!r}: {listed}")
    got = set(listed)
    if got != expected:
        raise AssertionError(
            f"mask after {prefix!r} is not exact:\n"
            f"  allowed but dead ends: {_show(vocab, got - expected)}\n"
            f"  viable but forbidden:  {_show(vocab, expected - got)}")
    bits = mask_token_ids(matcher)
    if bits != got:
        raise AssertionError(f"fill_bitmask and allowed_token_ids() differ after {prefix!r}: "
                             f"{_show(vocab, bits ^ got)}")
    if matcher.is_accepting() != grammar.accepts(prefix):
        raise AssertionError(f"is_accepting() is {matcher.is_accepting()} after {prefix!r}")
    return got


def _show(vocab: Vocabulary, ids: Iterable[int]) -> str:
    return ", ".join(f"{t}:{vocab.token_bytes(t)!r}" for t in sorted(ids)) or "-"


def assert_mask_exact(compiled: CompiledGrammar, token_ids: Iterable[int]) -> Matcher:
    """Walk ``token_ids`` through a fresh matcher, checking every step against
    ``reference_allowed``: ``allowed_token_ids()`` and ``fill_bitmask`` equal the reference,
    ``is_accepting()`` equals ``grammar.accepts(prefix)``, and ``consume_token`` returns
    whether the token is allowed. The walk stops at the first disallowed token, which must
    leave the matcher unchanged (its mask is checked again), or after an EOS token is
    consumed. Raises ``AssertionError`` at the first difference; returns the matcher where
    the walk stopped (``is_terminated()`` tells whether it consumed every token, EOS last).
    For small vocabularies only (``reference_allowed`` is brute force).
    """
    grammar, vocab = compiled.grammar, compiled.vocab
    eos = set(vocab.eos_token_ids)
    matcher = compiled.matcher()
    prefix = b""
    allowed = _check_step(matcher, grammar, vocab, prefix)
    for t in token_ids:
        t = int(t)
        took = matcher.consume_token(t)
        if took != (t in allowed):
            raise AssertionError(f"consume_token({t}:{vocab.token_bytes(t)!r}) returned {took} after {prefix!r}")
        if not took:
            if _check_step(matcher, grammar, vocab, prefix) != allowed:
                raise AssertionError(f"a refused token {t} changed the matcher after {prefix!r}")
            break
        if t in eos:
            if not matcher.is_accepting():
                raise AssertionError(f"EOS consumed after {prefix!r} but the matcher is not accepting")
            break
        prefix += vocab.token_bytes(t)
        allowed = _check_step(matcher, grammar, vocab, prefix)
    return matcher


class TableModel:
    """A ``gcd.LanguageModel`` given as a function: ``table(prefix_tuple)`` returns the
    next-token logits (any array of ``vocab_size`` floats; normalised here). Calls are counted."""

    def __init__(self, vocab_size: int, table: Callable[[tuple[int, ...]], np.ndarray]) -> None:
        self.vocab_size = vocab_size
        self.table = table
        self.calls = 0

    def logprobs(self, token_ids) -> "torch.Tensor":
        import torch

        self.calls += 1
        logits = torch.as_tensor(np.asarray(self.table(tuple(int(t) for t in token_ids)), dtype=np.float64))
        return torch.log_softmax(logits, -1)


def exact_distributions(lm, compiled: "CompiledGrammar", max_new_tokens: int, *,
                        max_trailing: int | None = None) -> tuple[dict, dict, float]:
    """``(target, masked, evidence)`` by enumerating every token sequence the matcher allows
    (ending with EOS, at most ``max_new_tokens`` tokens): ``target[y] = p(y) / evidence``, where
    ``evidence = P(y in grammar, len(y) <= max_new_tokens)`` under ``lm``, and ``masked[y]``,
    the probability that locally constrained sampling (``method="mask"``) returns ``y``
    (dead ends and truncation take the rest of its mass). Exponential in the length: toy
    vocabularies and short words only."""
    eos = set(compiled.vocab.eos_token_ids)
    target: dict[tuple[int, ...], float] = {}
    masked: dict[tuple[int, ...], float] = {}

    def walk(matcher, ids: tuple[int, ...], p: float, q: float) -> None:
        if len(ids) == max_new_tokens:
            return
        probs = np.exp(lm.logprobs(list(ids)).double().numpy())
        allowed = matcher.allowed_token_ids()
        z = probs[allowed].sum()
        for t in allowed.tolist():
            if probs[t] == 0.0:
                continue
            child = ids + (t,)
            if t in eos:
                target[child] = p * probs[t]
                masked[child] = q * probs[t] / z
                continue
            m = matcher.copy()
            m.consume_token(t)
            walk(m, child, p * probs[t], q * probs[t] / z)

    walk(compiled.matcher(max_trailing=max_trailing), (), 1.0, 1.0)
    evidence = sum(target.values())
    return {y: v / evidence for y, v in target.items()}, masked, evidence


@dataclass(frozen=True)
class Counterexample:
    """One disagreement ``check_grammar`` found (the shortest text it saw for that check)."""

    check: str      # "words", "near misses", "prefixes", "token walks", "near-miss token walks"
    text: str
    detail: str


@dataclass
class GrammarReport:
    """What ``check_grammar`` ran (examples per check) and what it found; ``ok`` when nothing."""

    checks: dict[str, int]
    failures: list[Counterexample]

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [f"{name}: {count} examples" for name, count in self.checks.items()]
        lines += [f"FAIL {f.check}: {f.text!r}: {f.detail}" for f in self.failures]
        return "\n".join(lines + ["ok" if self.ok else f"{len(self.failures)} failing check(s)"])


def check_grammar(grammar: Grammar | str, vocab: Vocabulary | None = None, *, examples: int = 100,
                  seed: int = 0, start: str = "start") -> GrammarReport:
    """Fuzz a grammar with Lark as the oracle. For each of ``examples`` words drawn
    (``words``, seeded by ``seed``): gcd accepts the word (``Grammar.accepts``); a prefix of
    it is viable (``accepts_prefix``); an edit of it (``edits``) is accepted by gcd exactly
    when Lark accepts it; with ``vocab``, the word walks token by token through a matcher of
    the compiled grammar along a random tokenization (``tokenizations``: every token allowed
    by the mask and by ``accepts_token``, EOS allowed at the end), and a walk along an edit
    that is not a word never ends as a word. Reports, per failing check, the shortest
    counterexample seen. For a test suite::

        def test_my_grammar():
            report = gcd.testing.check_grammar(gcd.Grammar.from_file("my.lark"), vocab)
            assert report.ok, report
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st
    from hypothesis.errors import Unsatisfiable

    g = _grammar(grammar, start)
    oracle = lark_oracle(g)
    compiled = None
    if vocab is not None:
        from gcd.compiler import GrammarCompiler

        compiled = GrammarCompiler(vocab).compile(g)
    checks = {name: 0 for name in ("words", "prefixes", "near misses")}
    if compiled is not None:
        checks |= {"token walks": 0, "near-miss token walks": 0}
    shortest: dict[str, Counterexample] = {}

    def record(check: str, text: str, run: Callable[[], str | None]) -> None:
        checks[check] += 1
        try:
            detail = run()
        except Exception as e:   # gcd failing on the example is a counterexample too
            detail = f"raised {type(e).__name__}: {e}"
        if detail is not None and (check not in shortest or len(text) < len(shortest[check].text)):
            shortest[check] = Counterexample(check, text, detail)

    @fix_seed(seed)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(words(g), st.data())
    def run(word: str, data) -> None:
        record("words", word, lambda: None if g.accepts(word) else "Lark accepts it, Grammar.accepts does not")
        cut = word[:data.draw(st.integers(0, len(word)))]
        record("prefixes", cut, lambda: None if g.accepts_prefix(cut) else
               "a prefix of a word, but accepts_prefix says it cannot be completed")
        miss = data.draw(edits(word))
        is_word = oracle(miss)
        record("near misses", miss, lambda: None if g.accepts(miss) == is_word else
               f"Lark {'accepts' if is_word else 'rejects'} it, Grammar.accepts does not agree")
        if compiled is not None:
            ids = data.draw(tokenizations(word, vocab))
            record("token walks", word, lambda: _walk(compiled, ids, word=True))
            if not is_word:
                miss_ids = data.draw(st.one_of(tokenizations(miss, vocab), st.just(None)))
                if miss_ids is not None:
                    record("near-miss token walks", miss, lambda: _walk(compiled, miss_ids, word=False))

    try:
        run()
    except Unsatisfiable as e:
        shortest["words"] = Counterexample("words", "", f"could not draw words of the grammar ({e})")
    return GrammarReport(checks, list(shortest.values()))


def _walk(compiled: CompiledGrammar, ids: list[int], *, word: bool) -> str | None:
    """Why a token walk disagrees with the text being a word (``word``) or not; None if it agrees."""
    matcher = compiled.matcher()
    vocab = compiled.vocab
    for i, token in enumerate(ids):
        if _in_mask(matcher, token) != matcher.accepts_token(token):
            return f"token {i} {vocab.token_bytes(token)!r}: the mask and accepts_token disagree"
        if not matcher.consume_token(token):
            return f"token {i} {vocab.token_bytes(token)!r} refused" if word else None
    eos_allowed = any(_in_mask(matcher, e) for e in vocab.eos_token_ids)
    if word and not (matcher.is_accepting() and eos_allowed):
        return "every token allowed, but EOS is not at the end"
    if not word and matcher.is_accepting():
        return "the matcher accepts it as a word"
    return None


def _in_mask(matcher: Matcher, token: int) -> bool:
    """Token ``token``'s bit in the matcher's mask."""
    return bool(matcher.mask()[token >> 5] >> np.uint32(token & 31) & np.uint32(1))

"""The token-level automata under load: several threads on one fresh compile, caches far too
small for the walk, and decoding states whose fallbacks would otherwise grow without bound."""
from __future__ import annotations

import hashlib
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import gcd
from gcd.testing import reference_allowed

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
JSON_DOCS = [json.loads(line)["text"] for line in (DATA / "json_docs.jsonl").read_text().splitlines() if line.strip()]
SQL = [q for q in (DATA / "sql_queries.txt").read_text().splitlines() if q.strip()]


def streams(tokenizer, texts: list[str], n: int) -> list[int]:
    """``n`` tokens: the texts' tokens back to back, each text ending with EOS."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    out: list[list[int]] = []
    while sum(map(len, out)) < n:
        for text in texts:
            out.append(tokenizer.encode(text, add_special_tokens=False) + [eos])
    return out


def walk_digests(compiled: gcd.CompiledGrammar, docs: list[list[int]], limit: int) -> list[bytes]:
    """The digest of every mask along ``docs`` (a fresh matcher per document), ``limit`` steps."""
    out = []
    for ids in docs:
        m = compiled.matcher()
        for t in ids:
            if len(out) == limit:
                return out
            out.append(hashlib.blake2b(m.mask().tobytes(), digest_size=16).digest())
            assert m.consume_token(t)
    return out


@pytest.fixture(scope="module")
def workloads(smollm2_tokenizer):
    tok = smollm2_tokenizer
    return {"json": (gcd.Grammar.from_file(ROOT / "grammars" / "json.lark"), streams(tok, JSON_DOCS, 1000)),
            "sql": (gcd.Grammar.from_file(ROOT / "grammars" / "sql.lark"), streams(tok, SQL, 1000))}


@pytest.mark.parametrize("name", ["json", "sql"])
def test_eight_threads_on_a_fresh_compile(name, workloads, smollm2_vocab):
    grammar, docs = workloads[name]
    def single_threaded(docs_order):
        compiler = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False, precompute_seconds=0)
        return walk_digests(compiler.compile(grammar), docs_order, 1000)

    reference = single_threaded(docs)
    shared = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False, precompute_seconds=0).compile(grammar)
    results, errors = [None] * 8, []

    def run(i: int) -> None:
        try:   # each thread starts at another document, so the first visits interleave
            results[i] = walk_digests(shared, docs[i % 3:] + docs[:i % 3], 1000)
        except BaseException as e:   # reported below, with the thread it came from
            errors.append((i, e))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    for i, got in enumerate(results):
        assert got == (single_threaded(docs[i % 3:] + docs[:i % 3]) if i % 3 else reference), i
    # and against brute force at a few steps of the shared compile's run
    m, prefix = shared.matcher(), b""
    for step, t in enumerate(docs[0][:60]):
        if step % 20 == 7:
            assert set(m.allowed_token_ids().tolist()) == reference_allowed(grammar, smollm2_vocab, prefix)
        assert m.consume_token(t)
        prefix += smollm2_vocab.token_bytes(t)


@pytest.mark.parametrize("name", ["json", "sql"])
def test_tiny_caches_give_the_same_masks(name, workloads, smollm2_vocab):
    """With budgets far below what the walk needs, every cache evicts all the time; the masks
    must not change."""
    grammar, docs = workloads[name]
    unbounded = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False).compile(grammar)
    tiny = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False, precompute_seconds=0,
                               cache_bytes=1 << 20).compile(grammar)
    evictions = [0]
    automata = tiny.automata
    for cache in (automata._outcomes, automata._masks, automata._trie, automata._top):
        def counted(key, value, nbytes=0, cache=cache, put=cache.put):
            before = len(cache)
            put(key, value, nbytes)
            evictions[0] += before + 1 - len(cache)
        cache.put = counted
    assert walk_digests(tiny, docs, 500) == walk_digests(unbounded, docs, 500)
    assert evictions[0] > 100, evictions   # the caches really were too small
    assert automata._masks.nbytes <= 256 << 10 and automata._outcomes.nbytes <= 384 << 10
    assert automata._trie.nbytes + automata._pool.nbytes <= 384 << 10   # its levels and the masks they hold
    assert len(automata.recognizer.parser._advance) <= 256


def test_fallbacks_do_not_grow_with_the_text(smollm2_tokenizer, smollm2_vocab):
    """After '' inside an SQL string, the lexeme may still end at an earlier match; that
    possibility is kept as a state, dropped when it leads nowhere, so the decoding state of a
    long string with escapes does not grow (and its mask is a cache hit)."""
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "sql.lark")
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False).compile(grammar)
    query = ("SELECT name FROM people WHERE name = 'O''Brien and his friends from the north side, "
             "''the'' ''best'' of them' ORDER BY name;")
    m, prefix = compiled.matcher(), b""
    for t in smollm2_tokenizer.encode(query, add_special_tokens=False):
        assert m.consume_token(t)
        prefix += smollm2_vocab.token_bytes(t)
        assert m._state[1][1] is None, prefix      # no live fallback: the next string cannot start here
    assert m.is_accepting()
    m = compiled.matcher()
    m.consume_bytes(query[:60])
    assert set(m.allowed_token_ids().tolist()) == reference_allowed(grammar, smollm2_vocab, query[:60].encode())


def test_a_fallback_that_stays_alive():
    """Where the fallback is viable (two strings may follow each other), it is kept, and masks
    are still exact."""
    text = "start: STRING+\nSTRING: /'([^']|'')*'/\n%ignore \" \"\n"
    pieces = [b"'", b"''", b"a", b"'a", b"a'", b" ", b"'' ", b"a''", None]
    vocab = gcd.Vocabulary(pieces, eos_token_id=len(pieces) - 1)
    compiled = gcd.GrammarCompiler(vocab, cache=False, progress=False).compile(text)
    grammar = compiled.grammar
    rng = np.random.default_rng(3)
    m, prefix = compiled.matcher(), b""
    for _ in range(60):
        allowed = set(m.allowed_token_ids().tolist())
        assert allowed == reference_allowed(grammar, vocab, prefix), prefix
        t = int(rng.choice(sorted(allowed - {len(pieces) - 1})))
        assert m.consume_token(t)
        prefix += vocab.token_bytes(t)
    assert grammar.accepts(b"'a''b'") and grammar.accepts(b"'a' 'b'") and not grammar.accepts(b"'a''")


def _check_moves(compiled: gcd.CompiledGrammar, walks: list[list[int]], candidates) -> int:
    """Along each walk, compare the lexer-only shortcut (``TokenAutomata.move``) with
    ``Recognizer.advance`` for ``candidates(matcher)``; returns how many tokens took it."""
    automata, rec, vocab = compiled.automata, compiled.automata.recognizer, compiled.vocab
    checked = 0
    for ids in walks:
        m = compiled.matcher()
        for t in ids:
            config, (s, fallback) = m._state
            for c in candidates(m):
                end = automata.move(s, c)
                if fallback is None and end >= 0:
                    checked += 1
                    assert rec.advance(m._state, vocab.token_bytes(c))[0] == (config, (end, None))
            assert m.consume_token(t)
    return checked


@pytest.mark.parametrize("name", ["json", "sql"])
def test_lexer_only_moves_equal_the_recognizers_steps(name, workloads, smollm2_vocab):
    """The shortcut for tokens that end no lexeme the parser sees leads to the state
    ``Recognizer.advance`` reaches byte by byte, for allowed and random tokens alike."""
    grammar, docs = workloads[name]
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False, precompute_seconds=0).compile(grammar)
    rng = np.random.default_rng(0)

    def candidates(m):
        allowed = m.allowed_token_ids()
        return np.concatenate([rng.choice(allowed, min(30, len(allowed)), replace=False),
                               rng.integers(0, smollm2_vocab.size, 30)]).tolist()

    assert _check_moves(compiled, [ids[:-1] for ids in docs[:6]], candidates) > 500


def test_lexer_only_moves_keep_live_fallbacks():
    """A token that passes a match and reads on (``''`` inside a string, where the string may
    also end and a new one begin) leaves a live fallback: the shortcut must not take it."""
    text = "start: STRING+\nSTRING: /'([^']|'')*'/\n%ignore \" \"\n"
    pieces = [b"'", b"''", b"a", b"'a", b"a'", b" ", b"'' ", b"a''", b"'''", None]
    vocab = gcd.Vocabulary(pieces, eos_token_id=len(pieces) - 1)
    compiled = gcd.GrammarCompiler(vocab, cache=False, progress=False).compile(text)
    rng = np.random.default_rng(5)
    walks = []
    for _ in range(20):
        m, walk = compiled.matcher(), []
        for _ in range(8):
            walk.append(int(rng.choice([t for t in m.allowed_token_ids().tolist() if t != len(pieces) - 1])))
            m.consume_token(walk[-1])
        walks.append(walk)
    assert _check_moves(compiled, walks, lambda m: range(len(pieces) - 1)) > 200


CALLS = r"""
start: (call | NAME)+
call: FUNC "(" [start] ")"
FUNC: /[a-z_]+(?=\()/
NAME: /[a-z_]+/
%ignore " "
"""


@pytest.mark.parametrize("name", ["json", "sql", "calls"])
def test_both_vocabulary_walks_agree(name, workloads, smollm2_vocab):
    """Lexing a few tokens one by one (plain Python) and many at once (numpy) give the same
    end states, last matches and deaths, from lexeme starts and from inside lexemes, for whole
    tokens and for rests; "calls" has a terminal that ends in a lookahead."""
    grammar = gcd.Grammar(CALLS) if name == "calls" else workloads[name][0]
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False, precompute_seconds=0).compile(grammar)
    automata, lexer = compiled.automata, compiled.automata.recognizer.lexer
    rng = np.random.default_rng(1)
    lengths = smollm2_vocab.lengths
    parens = [t for t in range(smollm2_vocab.size) if b"(" in (smollm2_vocab.token_bytes(t) or b"")[1:]]
    for s in rng.choice(lexer.n_states, min(40, lexer.n_states), replace=False).tolist():
        ids = np.concatenate([rng.choice(np.flatnonzero(lengths > 0), 150, replace=False),
                              rng.choice(parens, 50, replace=False)])   # where a lookahead decides
        rng.shuffle(ids)
        offsets = (rng.random(200) * lengths[ids]).astype(np.int64)   # rests, some empty
        offsets[:100] = 0                                              # and whole tokens
        few, many = automata._walk_few(s, ids, offsets), automata._walk_many(s, ids, offsets)
        for a, b in zip(few, many):
            assert a.tolist() == b.tolist()

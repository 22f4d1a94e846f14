"""Real tokenizers (SmolLM2 byte-level BPE, Gemma 3 SentencePiece with byte fallback) walking
real JSON documents and SQL queries token by token, with masks checked against brute force
(every token tried byte by byte with the recogniser) at sampled steps."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import gcd
from gcd.testing import reference_allowed

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
JSON_DOCS = [json.loads(line)["text"] for line in (DATA / "json_docs.jsonl").read_text().splitlines() if line.strip()]
SQL = [q for q in (DATA / "sql_queries.txt").read_text().splitlines() if q.strip()]


def walk(compiled: gcd.CompiledGrammar, tokenizer, text: str, check_steps: set[int] = frozenset()) -> None:
    vocab, grammar = compiled.vocab, compiled.grammar
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert b"".join(vocab.token_bytes(t) for t in ids) == text.encode()
    m = compiled.matcher()
    bitmask = gcd.allocate_token_bitmask(1, vocab.size)
    prefix = b""
    for i, t in enumerate(ids):
        m.fill_bitmask(bitmask, 0)
        word = int(bitmask[0, t // 32]) & 0xFFFFFFFF
        assert word >> (t % 32) & 1, f"token {i} ({tokenizer.convert_ids_to_tokens(t)!r}) masked out after {prefix[-40:]!r}"
        if i in check_steps:
            assert set(m.allowed_token_ids().tolist()) == reference_allowed(grammar, vocab, prefix), prefix[-40:]
        assert not any(m.accepts_token(e) for e in vocab.eos_token_ids) or grammar.accepts(prefix)
        assert m.consume_token(t)
        prefix += vocab.token_bytes(t)
    assert m.is_accepting()
    assert all(m.accepts_token(e) for e in vocab.eos_token_ids)
    assert not any(m.accepts_token(s) for s in vocab.special_token_ids - set(vocab.eos_token_ids))


@pytest.fixture(scope="module")
def json_grammar() -> gcd.Grammar:
    return gcd.Grammar.from_file(ROOT / "grammars" / "json.lark")


WORKLOADS = {"json": (JSON_DOCS, 40, 0), "sql": (SQL, 12, 1)}   # texts, step range to check, seed


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("name", ["smollm2", "gemma3"])
def test_texts_walk_with_exact_masks(name, workload, request):
    tokenizer = request.getfixturevalue(f"{name}_tokenizer")
    vocab = request.getfixturevalue(f"{name}_vocab")
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / f"{workload}.lark")
    compiled = gcd.GrammarCompiler(vocab, cache=False, progress=False).compile(grammar)
    texts, span, seed = WORKLOADS[workload]
    rng = random.Random(seed)
    for k, text in enumerate(texts):
        steps = {rng.randrange(span) for _ in range(2)} if k < (3 if name == "smollm2" else 1) else set()
        walk(compiled, tokenizer, text, steps)


def test_first_token_may_be_whitespace_as_in_lark(smollm2_tokenizer, smollm2_vocab, json_grammar):
    import lark

    assert lark.Lark(json_grammar.text, parser="lalr").parse('  {"a": 1}')
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False).compile(json_grammar)
    space = smollm2_tokenizer.convert_tokens_to_ids("Ġ")
    assert compiled.matcher().accepts_token(space)


def test_json_mask_forbids_special_tokens_inside_strings(smollm2_tokenizer, smollm2_vocab, json_grammar):
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False).compile(json_grammar)
    m = compiled.matcher()
    assert m.consume_bytes('{"key": "some text')
    allowed = set(m.allowed_token_ids().tolist())
    specials = smollm2_vocab.special_token_ids
    assert specials and not allowed & specials
    assert smollm2_tokenizer.convert_tokens_to_ids("Ġworld") in allowed


def test_token_splitting_a_utf8_character(gemma3_tokenizer, gemma3_vocab, json_grammar):
    compiled = gcd.GrammarCompiler(gemma3_vocab, cache=False, progress=False).compile(json_grammar)
    text = '["\U00013000 ok"]'     # a hieroglyph Gemma spells as four <0xNN> byte tokens
    ids = gemma3_tokenizer.encode(text, add_special_tokens=False)
    assert any(len(gemma3_vocab.token_bytes(t)) == 1 and gemma3_vocab.token_bytes(t)[0] >= 0x80 for t in ids)
    walk(compiled, gemma3_tokenizer, text, set(range(len(ids))))

"""Compiling: the disk cache, pickling, stats, and the compiled object's independence."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gcd

ROOT = Path(__file__).resolve().parents[1]
ARITH = """
start: expr
?expr: expr "+" term | term
?term: term "*" atom | atom
?atom: NUMBER | "(" expr ")"
%import common.NUMBER
%import common.WS
%ignore WS
"""
TOKENS = [b"1", b"2", b"12", b"+", b"*", b"(", b")", b" ", b"1+", b"(1", b") *", b"+ (", b"3.5", None]


def toy_vocab() -> gcd.Vocabulary:
    return gcd.Vocabulary(TOKENS + [b"<eos>"], eos_token_id=len(TOKENS))


def walk_masks(compiled: gcd.CompiledGrammar, tokens: list[int]) -> list[list[int]]:
    m = compiled.matcher()
    masks = []
    for t in tokens:
        masks.append(m.allowed_token_ids().tolist())
        assert m.consume_token(t)
    masks.append(m.allowed_token_ids().tolist())
    return masks




def test_cache_roundtrip_gives_identical_masks(tmp_path):
    vocab = toy_vocab()
    walk = [5, 0, 3, 1, 6, 4, 0]      # ( 1 + 2 ) * 1
    first = gcd.GrammarCompiler(vocab, cache_dir=tmp_path).compile(gcd.Grammar(ARITH))
    files = list((tmp_path / "compiled").glob("*.pkl"))
    assert len(files) == 1
    second = gcd.GrammarCompiler(vocab, cache_dir=tmp_path).compile(gcd.Grammar(ARITH))
    assert second is not first
    assert walk_masks(first, walk) == walk_masks(second, walk)
    fresh = gcd.GrammarCompiler(vocab, cache=False).compile(gcd.Grammar(ARITH))
    assert walk_masks(fresh, walk) == walk_masks(first, walk)


def test_cache_key_depends_on_grammar_and_vocabulary(tmp_path):
    vocab = toy_vocab()
    other_vocab = gcd.Vocabulary(TOKENS + [b"<eos>", b"3"], eos_token_id=len(TOKENS))
    c = gcd.GrammarCompiler(vocab, cache_dir=tmp_path)
    keys = {c.cache_key(gcd.Grammar(ARITH)), c.cache_key(gcd.Grammar(ARITH.replace('"*"', '"/"'))),
            gcd.GrammarCompiler(other_vocab, cache_dir=tmp_path).cache_key(gcd.Grammar(ARITH))}
    assert len(keys) == 3
    assert c.cache_key(gcd.Grammar(ARITH)) == c.cache_key(gcd.Grammar(ARITH))


def test_damaged_cache_entry_is_rebuilt_with_a_warning(tmp_path):
    vocab = toy_vocab()
    compiler = gcd.GrammarCompiler(vocab, cache_dir=tmp_path)
    compiler.compile(gcd.Grammar(ARITH))
    (entry,) = (tmp_path / "compiled").glob("*.pkl")
    entry.write_bytes(b"not a pickle")
    with pytest.warns(UserWarning, match="unreadable compile cache"):
        compiled = compiler.compile(gcd.Grammar(ARITH))
    assert compiled.matcher().consume_token(0)


def test_compiled_grammar_pickles_and_keeps_working():
    compiled = gcd.GrammarCompiler(toy_vocab(), cache=False).compile(gcd.Grammar(ARITH))
    walk = [5, 0, 3, 1, 6, 4, 0]
    before = walk_masks(compiled, walk)
    clone = pickle.loads(pickle.dumps(compiled))
    assert walk_masks(clone, walk) == before


def test_second_compile_in_a_new_process_reads_the_cache(tmp_path):
    script = (
        "import time, gcd\n"
        f"v = gcd.Vocabulary({TOKENS + [b'<eos>']!r}, eos_token_id={len(TOKENS)})\n"
        f"c = gcd.GrammarCompiler(v, cache_dir={str(tmp_path)!r}).compile(gcd.Grammar.from_file({str(ROOT / 'grammars/sql.lark')!r}))\n"
        "print(c.compile_seconds)\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # the cached object carries the first compile's own timing: it was loaded, not rebuilt
    assert first.stdout == second.stdout


def test_stats_describe_the_grammar():
    stats = gcd.GrammarCompiler(toy_vocab(), cache=False).compile(gcd.Grammar(ARITH)).stats()
    assert stats["parser"] == "LALR(1)"
    assert stats["vocab_size"] == len(TOKENS) + 1
    assert stats["terminals"] == 6   # NUMBER, WS, PLUS, STAR, LPAR, RPAR
    ambiguous = gcd.Grammar('start: e\ne: e "+" e | "1"')
    assert gcd.GrammarCompiler(toy_vocab(), cache=False).compile(ambiguous).stats()["parser"].startswith("general")


def test_compile_accepts_text_and_rejects_other_vocab_types():
    compiled = gcd.GrammarCompiler(toy_vocab(), cache=False).compile(ARITH)
    assert isinstance(compiled, gcd.CompiledGrammar)
    with pytest.raises(TypeError):
        gcd.GrammarCompiler(["a", "b"])


def test_bitmask_layout_is_word_major_bit_minor():
    tokens = [bytes([65 + i % 26]) for i in range(70)]   # A..Z repeated: ids 0..69
    vocab = gcd.Vocabulary(tokens + [b"<eos>"], eos_token_id=70)
    compiled = gcd.GrammarCompiler(vocab, cache=False).compile(gcd.Grammar('start: "C"'))
    m = compiled.matcher()
    bitmask = gcd.allocate_token_bitmask(2, vocab.size)
    assert bitmask.shape == (2, 3) and bitmask.dtype == torch.int32
    m.fill_bitmask(bitmask, row=1)
    allowed = [i for i in range(70) if tokens[i] == b"C"]     # 2, 28, 54
    words = bitmask[1].numpy().view(np.uint32)
    expected = np.zeros(3, np.uint32)
    for i in allowed:
        expected[i // 32] |= np.uint32(1 << (i % 32))
    assert (words == expected).all() and (bitmask[0] == 0).all()
    assert m.allowed_token_ids().tolist() == allowed
    assert m.consume_token(28) and m.is_accepting()
    m.fill_bitmask(bitmask, row=0)
    assert m.allowed_token_ids().tolist() == [70]             # only EOS once the word is complete

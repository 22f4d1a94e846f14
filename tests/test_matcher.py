"""The Matcher's contract at its edges: ids outside the vocabulary, shared masks, copies,
text that has no UTF-8 encoding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gcd

TOKENS = [b"[", b"]", b"1", b",", b" ", b"12", b"[1", None]
VOCAB = gcd.Vocabulary(TOKENS, eos_token_id=len(TOKENS) - 1)
EOS = len(TOKENS) - 1
LIST = 'start: "[" [NUM ("," NUM)*] "]"\nNUM: /[0-9]+/\n%ignore " "\n'


@pytest.fixture(scope="module")
def compiled() -> gcd.CompiledGrammar:
    return gcd.GrammarCompiler(VOCAB, cache=False, progress=False).compile(LIST)


def test_ids_outside_the_vocabulary_are_not_allowed(compiled):
    m = compiled.matcher()
    for bad in (VOCAB.size, VOCAB.size + 100, -1, 2**40):
        assert not m.accepts_token(bad)
        assert not m.consume_token(bad)
    assert m.accepts_token(0) and m.consume_token(0)


def test_the_mask_is_shared_and_read_only(compiled):
    a, b = compiled.matcher(), compiled.matcher()
    mask = a.mask()
    with pytest.raises(ValueError):
        mask[0] = 0
    with pytest.raises(ValueError):
        mask |= 1
    assert np.array_equal(b.mask(), mask) and b.allowed_token_ids().tolist() == [0, 4, 6]


def test_copy_shares_its_history_and_is_independent(compiled):
    m = compiled.matcher()
    for t in [0, 2, 3, 5]:
        assert m.consume_token(t)
    c = m.copy()
    assert c._history is m._history          # O(1): the history is shared, not copied
    assert c.consume_token(1) and c.is_accepting()
    assert not m.is_accepting() and m.allowed_token_ids().tolist() == [1, 2, 3, 4, 5]   # "[1,12" goes on
    c.rollback(5)
    assert c.allowed_token_ids().tolist() == [0, 4, 6]
    assert m.consume_token(1) and m.consume_token(EOS) and m.is_terminated()
    assert m.allowed_token_ids().tolist() == [EOS]
    with pytest.raises(ValueError):
        c.rollback(1)


def test_text_without_a_utf8_encoding(compiled):
    grammar = compiled.grammar
    assert not grammar.accepts("[1\ud800]") and not grammar.accepts_prefix("\ud800")
    m = compiled.matcher()
    assert not m.consume_bytes("[\udfff") and m.consume_bytes("[1")
    assert m.allowed_token_ids().tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("path", [[0, 2, 3, 4, 5, 1], [6, 3, 4, 2, 1, EOS], [0, 4, 4, 1, 4, 4]])
def test_accepts_token_agrees_with_the_mask_and_does_not_advance(compiled, path):
    m = compiled.matcher(max_trailing=1)
    for token in path:
        allowed = set(m.allowed_token_ids().tolist())
        assert {t for t in range(VOCAB.size) if m.accepts_token(t)} == allowed
        assert m.accepts_token(token) == (token in allowed)
        if not m.consume_token(token):
            break


def test_trailing_ignorable_tokens_are_bounded_then_eos_is_forced(compiled):
    m = compiled.matcher(max_trailing=2)
    for token in (0, 2, 1):                       # "[1]": a word
        assert m.consume_token(token)
    assert m.consume_token(4) and m.consume_token(4)   # two spaces after it
    assert m.allowed_token_ids().tolist() == [EOS] and not m.accepts_token(4)
    m.rollback(1)
    assert m.accepts_token(4)                      # rollback restores the count
    exact = compiled.matcher()                     # no bound: the grammar's language
    for token in (0, 2, 1, 4, 4, 4, 4):
        assert exact.consume_token(token)
    # spaces inside the list are not trailing: the text is not a word there
    inner = compiled.matcher(max_trailing=1)
    assert all(inner.consume_token(t) for t in (0, 4, 4, 4, 2, 4, 4, 1, 4))
    assert inner.allowed_token_ids().tolist() == [EOS]


def test_max_trailing_zero_ends_at_the_first_word(compiled):
    m = compiled.matcher(max_trailing=0)
    assert m.consume_token(0) and m.consume_token(2) and m.accepts_token(5)
    assert m.consume_token(1) and m.allowed_token_ids().tolist() == [EOS]
    with pytest.raises(ValueError):
        compiled.matcher(max_trailing=-1)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("vocab_size, logits_width", [(100, 100), (100, 140), (96, 96), (130, 64)])
def test_apply_token_bitmask_matches_the_bits(device, vocab_size, logits_width):
    """Bit j of word i allows column 32*i+j; columns past the bitmask (a padded model vocabulary)
    are forbidden; allowed logits keep their values. Rows of a larger bitmask, sliced, work too."""
    rng = np.random.default_rng(vocab_size + logits_width)
    bitmask = gcd.allocate_token_bitmask(5, vocab_size)
    bitmask.copy_(torch.from_numpy(rng.integers(-2**31, 2**31, size=bitmask.shape, dtype=np.int64).astype(np.int32)))
    logits = torch.from_numpy(rng.normal(size=(3, logits_width)).astype(np.float32)).to(device)
    rows = bitmask[1:4]
    expect = logits.clone().cpu()
    for r in range(3):
        for col in range(logits_width):
            word = col // 32
            if word >= rows.shape[1] or not (int(rows[r, word]) >> (col % 32)) & 1:
                expect[r, col] = float("-inf")
    out = gcd.apply_token_bitmask_(logits, rows)
    assert out is logits and logits.device.type == device
    assert torch.equal(logits.cpu(), expect)

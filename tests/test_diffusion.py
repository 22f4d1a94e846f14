"""``gcd.diffusion.generate`` with a tiny randomly initialised masked LM (BERT interface) and
the LLaDA-style adapter: constrained outputs are words whenever they are marked finished, a
canvas too short for any word is never marked finished, unconstrained outputs of the same
model mostly are not words."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import gcd
from gcd.diffusion import DiffusionLM, MaskedLM, generate

TOKENS = [b"[", b"]", b",", b"a", b"b", b"c", b"ab", b"<e>", b"<mask>"]
VOCAB = gcd.Vocabulary(TOKENS, eos_token_id=7, special_token_ids=[8])
LIST = gcd.Grammar('start: "[" ITEM ("," ITEM)* "]"\nITEM: /[abc]+/\n')


def tiny_bert(seed: int):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(TOKENS), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=64)
    return BertForMaskedLM(config).eval()


@pytest.mark.parametrize("adapter", [MaskedLM, DiffusionLM])
@pytest.mark.parametrize("block_length", [None, 4])
def test_constrained_outputs_are_words(adapter, block_length):
    finished = 0
    for seed in range(6):
        model = adapter(tiny_bert(seed), mask_token_id=8)
        out = generate(model, VOCAB, LIST, [0], gen_length=8, steps=8, block_length=block_length,
                       temperature=1.0, seed=seed)
        assert out.forward_passes <= 8 + 8   # the steps, then passes for positions left over
        if out.finished:
            finished += 1
            assert LIST.accepts(out.text), out
    assert finished >= 4


def test_unconstrained_outputs_of_the_same_models_are_mostly_not_words():
    valid = 0
    for seed in range(6):
        out = generate(MaskedLM(tiny_bert(seed), 8), VOCAB, None, [0], gen_length=8, steps=8, temperature=1.0, seed=seed)
        valid += out.finished and LIST.accepts(out.text)
    assert valid <= 2


def test_a_canvas_too_short_is_never_a_word():
    for seed in range(3):
        out = generate(MaskedLM(tiny_bert(seed), 8), VOCAB, LIST, [0], gen_length=2, steps=2, seed=seed)
        assert not out.finished and not LIST.accepts(out.text)


def test_arguments():
    model = MaskedLM(tiny_bert(0), 8)
    with pytest.raises(ValueError):
        generate(model, VOCAB, LIST, [0], gen_length=8, steps=3, block_length=4)
    with pytest.raises(ValueError):
        generate(model, VOCAB, LIST, [0], gen_length=0, steps=1)


def test_the_shipped_model_with_the_json_grammar():
    from gcd.diffusion import byte_vocabulary, load_shipped

    model, vocab = load_shipped(), byte_vocabulary()
    grammar = gcd.Grammar.from_file(Path(__file__).resolve().parent.parent / "grammars" / "json.lark")
    finished = 0
    for seed in range(8):   # a small model: most runs stop unfinished (never marked finished unless a word)
        out = generate(model, vocab, grammar, [], gen_length=64, steps=64, temperature=1.0, seed=seed)
        if out.finished:
            finished += 1
            assert grammar.accepts(out.text)
    assert finished >= 1

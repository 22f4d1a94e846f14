"""``gcd.diffusion.generate`` with a tiny randomly initialised masked LM (BERT interface) and
the LLaDA-style adapter: constrained outputs are words whenever they are marked finished, a
canvas too short for any word is never marked finished, unconstrained outputs of the same
model mostly are not words."""
from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import gcd
from gcd.diffusion import DiffusionLM, MaskedLM, _Checker, byte_vocabulary, generate

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
    from gcd.diffusion import load_shipped

    model, vocab = load_shipped(), byte_vocabulary()
    grammar = gcd.Grammar.from_file(Path(__file__).resolve().parent.parent / "grammars" / "json.lark")
    for seed in range(8):   # byte-level: the checks are exact, so every run ends with a word
        out = generate(model, vocab, grammar, [], gen_length=64, steps=64, temperature=1.0, seed=seed)
        assert out.finished and grammar.accepts(out.text), out


def test_checks_on_a_byte_level_vocabulary_are_exact():
    """With one byte per token, a proposal is allowed exactly when some filling of the other
    masked positions (bytes, or EOS from some position on) makes a word: brute force over
    the grammar's bytes on canvases of five positions."""
    vocab, eos, rng = byte_vocabulary(), 256, random.Random(0)
    alphabet = [ord(c) for c in "[],ab"] + [eos]
    checker = _Checker(LIST, vocab, 5)

    def possible(canvas: list) -> bool:
        masked = [i for i, t in enumerate(canvas) if t < 0]
        for fill in itertools.product(alphabet, repeat=len(masked)):
            full = list(canvas)
            for i, t in zip(masked, fill):
                full[i] = t
            cut = full.index(eos) if eos in full else len(full)
            if all(t == eos for t in full[cut:]) and LIST.accepts(bytes(full[:cut])):
                return True
        return False

    answers = []
    for _ in range(150):
        canvas = [rng.choice(alphabet) if rng.random() < 0.25 else -1 for _ in range(5)]
        pos = rng.randrange(5)
        canvas[pos] = -1
        token = rng.choice(alphabet)
        trial = list(canvas)
        trial[pos] = token
        answers.append(checker.allowed(np.array(canvas), pos, token))
        assert answers[-1] == possible(trial), (canvas, pos, token)
    assert 20 < sum(answers) < 130, sum(answers)   # both answers are exercised

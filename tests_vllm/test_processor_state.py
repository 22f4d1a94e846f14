"""GrammarLogitsProcessor's batch bookkeeping without an engine: requests added, removed,
moved and swapped in the persistent batch, tokens fed as vLLM appends them."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from vllm import SamplingParams
from vllm.exceptions import VLLMValidationError
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

import gcd
import gcd.vllm
from gcd.masks import bitmask_to_bool


@pytest.fixture(scope="module")
def tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture
def processor(tokenizer, monkeypatch):
    import vllm.tokenizers

    monkeypatch.setattr(vllm.tokenizers, "cached_tokenizer_from_config", lambda config: tokenizer)
    model_config = SimpleNamespace(get_vocab_size=lambda: len(tokenizer) + 64,   # a padded model vocabulary
                                   try_get_generation_config=lambda: {"eos_token_id": tokenizer.eos_token_id})
    config = SimpleNamespace(model_config=model_config, scheduler_config=SimpleNamespace(max_num_seqs=4))
    return gcd.vllm.GrammarLogitsProcessor(config, torch.device("cpu"), False)


def params(grammar: str | None = None, **extra) -> SamplingParams:
    args = dict(extra)
    if grammar is not None:
        args[gcd.vllm.GRAMMAR_KEY] = grammar
    return SamplingParams(extra_args=args or None)


def update(processor, size, removed=(), added=(), moved=()) -> None:
    processor.update_state(BatchUpdate(batch_size=size, removed=list(removed), added=list(added), moved=list(moved)))


def allowed(processor, width: int, rows: int) -> torch.Tensor:
    logits = torch.zeros(rows, width)
    return torch.isfinite(processor.apply(logits))


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def test_rows_follow_adds_moves_swaps_and_removals(processor, tokenizer, grammars):
    json_g, enum_g = gcd.Grammar(grammars["json"]), gcd.Grammar(grammars["enum"])
    width = len(tokenizer) + 64
    out0, out1, out2 = ids(tokenizer, '{"a": '), ids(tokenizer, "gre"), []
    update(processor, 3, added=[(0, params(grammars["json"]), [1], out0), (1, params(grammars["enum"]), [1], out1),
                                (2, params(), [1], out2)])
    mask = allowed(processor, width, 3)
    compiled = processor.compiler.compile(json_g)
    expect = compiled.matcher()
    assert all(expect.consume_token(t) for t in out0)
    assert torch.equal(mask[0, :len(tokenizer)], torch.from_numpy(_bools(expect, len(tokenizer))))
    assert not mask[0, len(tokenizer):].any() and not mask[1, len(tokenizer):].any()
    assert mask[2].all()                                      # unconstrained row untouched, padding included
    picked = [t for t in mask[1].nonzero().flatten().tolist()]
    assert picked and all(enum_g.accepts_prefix(tokenizer.decode(out1 + [t])) or t == tokenizer.eos_token_id
                          for t in picked)

    out1.append(ids(tokenizer, "en")[0])                      # vLLM appends to the live list
    update(processor, 3)
    assert allowed(processor, width, 3)[1, tokenizer.eos_token_id]   # "green" is a word: EOS allowed

    update(processor, 3, moved=[(0, 2, MoveDirectionality.SWAP)])     # json <-> unconstrained
    mask = allowed(processor, width, 3)
    assert mask[0].all() and not mask[2].all() and torch.equal(mask[2, :len(tokenizer)],
                                                               torch.from_numpy(_bools(expect, len(tokenizer))))
    update(processor, 2, removed=[0], moved=[(2, 0, MoveDirectionality.UNIDIRECTIONAL)])   # condense
    mask = allowed(processor, width, 2)
    assert not mask[0].all() and not mask[1].all() and set(processor._rows) == {0, 1}
    update(processor, 0, removed=[0, 1])
    assert processor._rows == {} and allowed(processor, width, 1).all()


def test_a_resumed_request_replays_its_output(processor, tokenizer, grammars):
    """A preempted request comes back with the tokens it had: the new matcher consumes them."""
    out = ids(tokenizer, '{"name": "Al')
    update(processor, 1, added=[(0, params(grammars["json"]), [1], out)])
    mask = allowed(processor, len(tokenizer), 1)
    quote = ids(tokenizer, '"')[0]
    assert mask[0, quote] and not mask[0, tokenizer.eos_token_id]


def test_a_token_outside_the_mask_leaves_only_eos(processor, tokenizer, grammars):
    out = ids(tokenizer, "purple")
    update(processor, 1, added=[(0, params(grammars["enum"]), [1], out)])
    mask = allowed(processor, len(tokenizer), 1)
    assert mask[0].nonzero().flatten().tolist() == [tokenizer.eos_token_id]


@pytest.mark.parametrize("args, message", [
    ({gcd.vllm.GRAMMAR_KEY: "start: foo"}, "gcd: line 1: rule 'foo' is used but not defined"),
    ({gcd.vllm.GRAMMAR_KEY: 'start: "a"', gcd.vllm.SCHEMA_KEY: "{}"}, "not both"),
    ({gcd.vllm.SCHEMA_KEY: "{not json"}, "is not JSON"),
    ({gcd.vllm.SCHEMA_KEY: '{"type": "array", "uniqueItems": true}'}, "'uniqueItems' at #/uniqueItems"),
    ({gcd.vllm.GRAMMAR_KEY: 'start: "a"', gcd.vllm.MAX_TRAILING_KEY: "2"}, "gcd_max_trailing"),
    ({gcd.vllm.MAX_TRAILING_KEY: 2}, "needs gcd_grammar"),
])
def test_validate_params_rejects_bad_requests(args, message):
    with pytest.raises(VLLMValidationError, match=message):
        gcd.vllm.GrammarLogitsProcessor.validate_params(SamplingParams(extra_args=args))


def test_validate_params_rejects_settings_that_defeat_the_grammar(grammars):
    for bad in ({"ignore_eos": True}, {"min_tokens": 3}):
        with pytest.raises(VLLMValidationError, match=next(iter(bad))):
            gcd.vllm.GrammarLogitsProcessor.validate_params(
                SamplingParams(extra_args={gcd.vllm.GRAMMAR_KEY: grammars["enum"]}, **bad))
    gcd.vllm.GrammarLogitsProcessor.validate_params(SamplingParams(ignore_eos=True))   # no grammar: not ours


def _bools(matcher, size):
    bitmask = gcd.allocate_token_bitmask(1, size)
    matcher.fill_bitmask(bitmask)
    return bitmask_to_bool(bitmask, size)[0].numpy()

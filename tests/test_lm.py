"""``HFLanguageModel``: cached, batched log-probabilities equal a plain forward pass over the
whole text, whatever order the calls come in (extensions, resampled rows, mixed lengths)."""
from __future__ import annotations

import pytest
import torch

import gcd

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def tiny_llama(device: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval().to(device)


def reference(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = model(torch.tensor([ids], device=model.device)).logits[0, -1].float()
    return torch.log_softmax(logits, -1)


@pytest.mark.parametrize("device", DEVICES)
def test_cached_batches_equal_full_forward_passes(device):
    model = tiny_llama(device)
    prompt = [1, 5, 7]
    lm = gcd.HFLanguageModel(model, prompt=prompt)
    assert isinstance(lm, gcd.LanguageModel) and lm.vocab_size == 40
    calls = [
        [[]],                                   # the prompt alone
        [[3], [4], [5]],                        # fresh rows
        [[3, 9], [3, 10], [5, 11]],             # extensions, one row duplicated, one dropped
        [[5, 11, 2], [3, 9, 2], [3, 9, 8], [3, 10, 1]],   # reordered, duplicated
        [[5, 11, 2]],                           # already computed
        [[1], [2, 2, 2], []],                   # mixed lengths: from the prompt's cache
        [[2, 2, 2, 6]],
    ]
    for conts in calls:
        got = lm.logprobs_batch(conts)
        assert got.shape == (len(conts), 40) and got.device.type == device
        for row, c in zip(got, conts):
            torch.testing.assert_close(row, reference(model, prompt + c), atol=1e-4, rtol=1e-4)
    # one pass for the prompt, one per call that needed new tokens, two for the mixed lengths
    assert lm.forward_passes == 1 + 4 + 2
    torch.testing.assert_close(lm.logprobs([3, 9, 8]), reference(model, prompt + [3, 9, 8]), atol=1e-4, rtol=1e-4)


def test_text_prompts_need_the_tokenizer_and_empty_ones_a_bos():
    model = tiny_llama("cpu")
    with pytest.raises(ValueError, match="tokenizer"):
        gcd.HFLanguageModel(model, prompt="hello")
    with pytest.raises(ValueError, match="BOS"):
        gcd.HFLanguageModel(model, prompt=[])

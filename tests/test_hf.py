"""GrammarLogitsProcessor and model loading: unit tests on fixed token streams, then
end-to-end generation with the real SmolLM2-135M-Instruct (loaded once per session)."""
from __future__ import annotations

import json
from conftest import GRAMMARS

import pytest
import torch

import gcd
from gcd.errors import GCDError
from gcd.generate import generate
from gcd.hf import GrammarLogitsProcessor, load_model

JSON_PROMPTS = [
    "Describe a cat as a JSON object with the keys name, age and color.",
    "Describe a book as a JSON object with the keys title and author.",
    "Describe a dog as a JSON object with the keys name and breed.",
]
SQL_PROMPTS = [
    "Write an SQL query that lists the names of the customers who live in Paris.",
    "Write an SQL query that counts the orders per customer.",
    "Write a SQL query selecting all products cheaper than 10 dollars, ordered by price.",
]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _allowed(scores: torch.Tensor) -> set[int]:
    return set(torch.isfinite(scores).nonzero().flatten().tolist())


def _expected(compiled: gcd.CompiledGrammar, tokens: list[int]) -> set[int]:
    m = compiled.matcher()
    for t in tokens:
        assert m.consume_token(t)
    return set(m.allowed_token_ids().tolist())


# --- the processor on fixed token streams ---------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_mask_on_device_with_padded_model_vocab(device, json_compiled, smollm2_tokenizer):
    """The allowed logits are exactly the matcher's tokens; extra model columns are masked."""
    vocab = json_compiled.vocab
    tokens = _ids(smollm2_tokenizer, '{"a": [1, tr')
    proc = GrammarLogitsProcessor(json_compiled)
    prompt = torch.tensor([[1, 2, 3]], device=device)
    for k in range(len(tokens) + 1):
        ids = torch.cat([prompt, torch.tensor([tokens[:k]], dtype=torch.long, device=device)], dim=1)
        scores = torch.zeros(1, vocab.size + 64, device=device)
        out = proc(ids, scores)
        assert out.device == scores.device and out.shape == scores.shape
        allowed = _allowed(out[0].cpu())
        assert allowed == _expected(json_compiled, tokens[:k])
        assert not allowed & vocab.special_token_ids - set(vocab.eos_token_ids)


def test_rows_follow_their_tokens_when_beams_reorder(json_compiled, smollm2_tokenizer):
    a, b = _ids(smollm2_tokenizer, '{"x": 1'), _ids(smollm2_tokenizer, '[true, ')
    n = min(len(a), len(b))
    proc = GrammarLogitsProcessor(json_compiled)
    prompt = torch.tensor([[7, 8], [7, 8]])
    for k in range(n + 1):
        rows = [a[:k], b[:k]] if k % 2 else [b[:k], a[:k]]  # swap the rows every step
        out = proc(torch.cat([prompt, torch.tensor(rows, dtype=torch.long)], dim=1), torch.zeros(2, 49152))
        for row, tokens in enumerate(rows):
            assert _allowed(out[row]) == _expected(json_compiled, tokens)


def test_eos_only_when_complete_and_forced_then_kept(smollm2_vocab, smollm2_tokenizer):
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False).compile('start: "ab" "c"?')
    eos = set(smollm2_vocab.eos_token_ids)
    proc = GrammarLogitsProcessor(compiled)
    pad = smollm2_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    done = _ids(smollm2_tokenizer, "abc")
    for tokens, eos_allowed in [([], False), (_ids(smollm2_tokenizer, "ab"), True), (done, True)]:
        out = proc(torch.tensor([[5, *tokens]]), torch.zeros(1, smollm2_vocab.size))
        assert (eos <= _allowed(out[0])) == eos_allowed
    assert _allowed(out[0]) == eos  # "abc" is complete and cannot go on: EOS is forced
    for tail in ([2], [2, pad]):  # after EOS only EOS, whatever generate pads finished rows with
        out = proc(torch.tensor([[5, *done, *tail]]), torch.zeros(1, smollm2_vocab.size))
        assert _allowed(out[0]) == eos


def test_reused_across_batches_and_grammars_per_row(json_compiled, sql_compiled, smollm2_tokenizer):
    proc = GrammarLogitsProcessor([json_compiled, sql_compiled])
    sel = _ids(smollm2_tokenizer, "SELECT")
    out = proc(torch.tensor([[1, 2, 3], [1, 2, 3]]), torch.zeros(2, 49152))
    assert _allowed(out[0]) == _expected(json_compiled, [])
    assert _allowed(out[1]) == _expected(sql_compiled, [])
    out = proc(torch.tensor([[1, 2, 3, *sel], [1, 2, 3, *sel]]), torch.zeros(2, 49152))
    assert not _allowed(out[0]) - set(json_compiled.vocab.eos_token_ids)  # dead row: only EOS
    assert _allowed(out[1]) == _expected(sql_compiled, sel)
    out = proc(torch.tensor([[9, 9], [9, 9]]), torch.zeros(2, 49152))  # a new batch starts afresh
    assert _allowed(out[0]) == _expected(json_compiled, [])
    with pytest.raises(ValueError, match="3 rows"):
        proc(torch.tensor([[1], [1], [1]]), torch.zeros(3, 49152))
    with pytest.raises(ValueError, match="columns"):
        proc(torch.tensor([[1], [1]]), torch.zeros(2, 100))


def test_load_model_unknown_path_is_a_gcd_error(tmp_path):
    with pytest.raises(GCDError, match="no model"):
        load_model(str(tmp_path / "missing"))
    with pytest.raises(GCDError, match="cannot load model"):
        load_model(str(tmp_path))  # a folder without a model


# --- end to end on SmolLM2 ------------------------------------------------------------------

def test_json_greedy_batch(smollm2, json_compiled):
    model, tokenizer = smollm2
    out = generate(model, tokenizer, json_compiled, JSON_PROMPTS, max_new_tokens=60)
    assert [o.prompt for o in out] == JSON_PROMPTS
    for o in out:
        assert o.complete, o
        json.loads(o.text)


def test_json_sampled_batch(smollm2, json_compiled):
    model, tokenizer = smollm2
    torch.manual_seed(2)
    out = generate(model, tokenizer, json_compiled, JSON_PROMPTS, max_new_tokens=60, temperature=0.7)
    for o in out:
        assert o.complete, o
        json.loads(o.text)


def test_sql_greedy_batch(smollm2, sql_compiled, sql_grammar):
    from gcd.testing import lark_oracle

    model, tokenizer = smollm2
    # Lark with gcd's contextual lexing (the terminals the parser can take; see grammars/README.md):
    # stock Lark LALR rejects some valid SQL, but this oracle must accept every output
    oracle = lark_oracle((GRAMMARS / "sql.lark").read_text())
    for o in generate(model, tokenizer, sql_compiled, SQL_PROMPTS, max_new_tokens=50):
        assert o.complete and sql_grammar.accepts(o.text), o
        assert oracle(o.text), o.text


def test_beam_search_returns_words(smollm2, json_compiled, json_grammar):
    model, tokenizer = smollm2
    out = generate(model, tokenizer, json_compiled, JSON_PROMPTS[:1], max_new_tokens=50, num_beams=3,
                   num_samples=3)
    assert len(out) == 3
    for o in out:
        assert o.complete and json_grammar.accepts(o.text), o
        json.loads(o.text)


def test_generate_with_one_processor_per_row_grammar_reused(smollm2, json_compiled, sql_compiled, sql_grammar):
    """model.generate directly: left padding, a grammar per row, one processor for two calls."""
    from gcd.hf import chat_prompt

    model, tokenizer = smollm2
    proc = GrammarLogitsProcessor([json_compiled, sql_compiled])
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        for prompts in ([JSON_PROMPTS[0], SQL_PROMPTS[0]], [JSON_PROMPTS[1], SQL_PROMPTS[2]]):
            inputs = tokenizer([chat_prompt(tokenizer, p) for p in prompts], return_tensors="pt", padding=True,
                               add_special_tokens=False)
            out = model.generate(**inputs, logits_processor=[proc], max_new_tokens=50, do_sample=False,
                                 eos_token_id=proc.eos_token_ids)
            texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            json.loads(texts[0])
            assert sql_grammar.accepts(texts[1]), texts[1]
    finally:
        tokenizer.padding_side = side


def test_token_budget_too_small_is_incomplete(smollm2, json_compiled):
    model, tokenizer = smollm2
    [o] = generate(model, tokenizer, json_compiled, JSON_PROMPTS[:1], max_new_tokens=4)
    assert not o.complete and not o.stopped and len(o.token_ids) == 4


def test_stream_passes_the_text_on_as_it_is_generated(smollm2, json_compiled):
    model, tokenizer = smollm2
    pieces: list[str] = []
    [o] = generate(model, tokenizer, json_compiled, JSON_PROMPTS[:1], max_new_tokens=40, stream=pieces.append)
    assert len(pieces) > 5 and "".join(pieces) == o.text
    with pytest.raises(ValueError, match="one prompt"):
        generate(model, tokenizer, json_compiled, JSON_PROMPTS[:2], max_new_tokens=4, stream=pieces.append)


@pytest.mark.parametrize("method", ["mask", "awrs", "smc", "asap"])
def test_every_method_on_smollm2_gives_json(smollm2, json_compiled, method):
    import json

    from gcd.hf import chat_prompt

    model, tokenizer = smollm2
    lm = gcd.HFLanguageModel(model, tokenizer, chat_prompt(tokenizer, "Give a JSON object with a name and an age."))
    out = gcd.sample(lm, json_compiled, method, num_samples=2, max_new_tokens=40, seed=0, particles=3)
    assert len(out) == (6 if method == "smc" else 2)
    for s in out:
        if s.finished:
            json.loads(s.text)
            assert s.token_ids[-1] in json_compiled.vocab.eos_token_ids
        else:
            assert method == "mask" or s.log_weight == float("-inf")
    assert any(s.finished for s in out)

"""``GrammarLogitsProcessor``'s methods, driven as ``generate`` drives it (a call per step with
the rows' ``input_ids`` and scores), on the toy model of ``test_sampling`` whose exact
distributions are enumerated; then inside a real ``generate``."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gcd
from gcd.processor import GrammarLogitsProcessor
from gcd.testing import TableModel, exact_distributions
from test_sampling import EOS, GRAMMAR, MAX_NEW, TOKENS, VOCAB, assert_fits, empirical, kl, kl_bound, table


@pytest.fixture(scope="module")
def toy():
    lm = TableModel(len(TOKENS), table)
    compiled = gcd.GrammarCompiler(VOCAB, cache=False, progress=False).compile(GRAMMAR)
    return lm, compiled, *exact_distributions(lm, compiled, MAX_NEW, max_trailing=2)


def drive(proc, lm, rows: int, seed: int) -> tuple[torch.Tensor, list[float]]:
    """What ``generate`` does: score, process, sample from the processed scores, append;
    rows that ended are padded with EOS. Returns the sequences and the weights after each row's end."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(rows, 1, dtype=torch.long)        # a one-token prompt
    done = [False] * rows
    for _ in range(MAX_NEW):
        scores = torch.stack([lm.logprobs(r[1:].tolist()).float() for r in ids])
        out = proc(ids, scores)
        probs = torch.softmax(out, -1)
        nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
        nxt = torch.where(torch.tensor(done), torch.tensor(EOS), nxt)
        ids = torch.cat([ids, nxt[:, None]], 1)
        done = [d or int(t) == EOS for d, t in zip(done, nxt)]
        if all(done):
            break
    return ids, list(proc.log_weights)


def samples(ids: torch.Tensor, weights: list[float] | None = None) -> list[gcd.Sample]:
    out = []
    for row, r in enumerate(ids[:, 1:].tolist()):
        seq = r[: r.index(EOS) + 1] if EOS in r else r
        w = weights[row] if weights else 0.0
        out.append(gcd.Sample(seq, "", w if EOS in seq else -math.inf, EOS in seq))
    return out


def test_awrs_processor_draws_the_masked_distribution_with_unbiased_weights(toy):
    lm, compiled, target, masked, evidence = toy
    proc = GrammarLogitsProcessor(compiled, method="awrs", seed=1)
    out = []
    for batch in range(50):
        ids, weights = drive(proc, lm, rows=40, seed=batch)
        out += samples(ids, weights)
    counts: dict = {}
    for s in out:
        assert s.finished and gcd.Grammar(GRAMMAR).accepts(b"".join(TOKENS[t] for t in s.token_ids[:-1]))
        counts[tuple(s.token_ids)] = counts.get(tuple(s.token_ids), 0) + 1
    assert_fits(counts, masked, len(out))
    w = np.exp([s.log_weight for s in out])
    assert abs(w.mean() - evidence) < 4 * w.std() / math.sqrt(len(w))
    assert kl(empirical(out, weighted=True), target) < kl_bound(out, target)
    assert all(c >= 2 for c in proc.checks)


def test_asap_processor_approaches_the_target(toy):
    lm, compiled, target, masked, _ = toy
    proc = GrammarLogitsProcessor(compiled, method="asap")
    out = []
    for batch in range(1500):
        ids, _ = drive(proc, lm, rows=2, seed=batch)
        proc.update(ids)
        out += samples(ids)
    later = empirical(out[1500:])
    assert kl(later, target) < 0.02 < 0.5 < kl(masked, target)


def test_methods_and_arguments_are_checked(toy):
    _, compiled, *_ = toy
    with pytest.raises(ValueError, match="method"):
        GrammarLogitsProcessor(compiled, method="smc")
    with pytest.raises(ValueError, match="temperature"):
        GrammarLogitsProcessor(compiled, method="awrs", temperature=0.0)
    with pytest.raises(ValueError, match="asap"):
        GrammarLogitsProcessor(compiled).update(torch.zeros(1, 2, dtype=torch.long))


@pytest.mark.parametrize("method", ["mask", "awrs", "asap"])
def test_generate_with_each_method_on_smollm2(smollm2, json_compiled, method):
    import json

    from gcd.hf import chat_prompt

    model, tokenizer = smollm2
    proc = GrammarLogitsProcessor(json_compiled, method=method, seed=0)
    text = chat_prompt(tokenizer, "Describe a cat as JSON.")
    inputs = tokenizer([text, text], return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    out = model.generate(**inputs, logits_processor=[proc], max_new_tokens=48, do_sample=True,
                         eos_token_id=proc.eos_token_ids, pad_token_id=proc.eos_token_ids[0])
    new = out[:, inputs["input_ids"].shape[1]:].tolist()
    for row, ids in enumerate(new):
        if any(t in proc.eos_token_ids for t in ids):
            end = min(ids.index(e) for e in proc.eos_token_ids if e in ids)
            json.loads(tokenizer.decode(ids[:end]))
            if method == "awrs":
                assert math.isfinite(proc.log_weights[row])
    if method == "asap":
        before = proc.trie.size
        proc.update(out)
        assert proc.trie.size >= before > 1 and proc.trie.theta(()) == 1.0   # the root is the prompt's start


@pytest.mark.parametrize("method", ["awrs", "asap"])
def test_several_grammars_per_batch(toy, method):
    """Rows are split among grammars in equal blocks, as with masking."""
    lm, compiled, *_ = toy
    other = gcd.GrammarCompiler(VOCAB, cache=False, progress=False).compile('start: "b"+ "c"')
    proc = GrammarLogitsProcessor([compiled, other], method=method, seed=2)
    ids, _ = drive(proc, lm, rows=8, seed=0)
    for row, seq in enumerate(ids[:, 1:].tolist()):
        grammar = gcd.Grammar(GRAMMAR) if row < 4 else gcd.Grammar('start: "b"+ "c"')
        if EOS in seq:
            assert grammar.accepts(b"".join(TOKENS[t] for t in seq[: seq.index(EOS)])), (row, seq)
    assert method != "awrs" or all(math.isfinite(w) for w, s in zip(proc.log_weights, ids.tolist()) if EOS in s)

"""The samplers against exact distributions computed by enumeration, on a toy model given as a
table and a grammar with short words, where masking is visibly biased.

Statistical checks run at fixed seeds with sizes chosen so that a correct sampler passes by a
wide margin (chi-square statistics below df + 6 sqrt(2 df), means within 4 standard errors).
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

import gcd
from gcd.awrs import awrs_step
from gcd.testing import TableModel, exact_distributions

TOKENS = [b"a", b"b", b"c", b"ab", b"x", b"<e>"]
EOS = 5
VOCAB = gcd.Vocabulary(TOKENS, eos_token_id=EOS)
GRAMMAR = "start: /[ab]{1,3}c/"   # a few a/b letters then c: 19 tokenizations within 6 tokens
MAX_NEW = 6


def table(prefix: tuple[int, ...]) -> np.ndarray:
    """Fixed pseudo-random logits per prefix; after an ``a`` the model wants ``x`` (forbidden),
    so words through ``a`` rarely finish and masking over-weights them; after ``c`` it wants EOS."""
    seed = int.from_bytes(hashlib.sha256(repr(prefix).encode()).digest()[:8], "little")
    logits = np.random.default_rng(seed).normal(0.0, 1.0, len(TOKENS))
    text = b"".join(TOKENS[t] for t in prefix)
    if text.endswith(b"a"):
        logits[4] += 3.0
    if text.endswith(b"c"):
        logits[EOS] += 3.0
    return logits


@pytest.fixture(scope="module")
def toy():
    lm = TableModel(len(TOKENS), table)
    compiled = gcd.GrammarCompiler(VOCAB, cache=False, progress=False).compile(GRAMMAR)
    target, masked, evidence = exact_distributions(lm, compiled, MAX_NEW)
    return lm, compiled, target, masked, evidence


def kl(p: dict, q: dict) -> float:
    """KL(p || q) over p's support."""
    return sum(v * math.log(v / q[k]) for k, v in p.items() if v > 0)


def empirical(samples, weighted: bool = False) -> dict:
    out: dict = {}
    for s in samples:
        if s.finished:
            out[tuple(s.token_ids)] = out.get(tuple(s.token_ids), 0.0) + (math.exp(s.log_weight) if weighted else 1.0)
    total = sum(out.values())
    return {k: v / total for k, v in out.items()}


def kl_bound(samples, target: dict) -> float:
    """A bound on KL(weighted empirical || target) for correctly weighted samples: for n exact
    draws over K outcomes, 2 n KL is about chi-square(K - 1), of mean K - 1; weighted draws
    count as their effective sample size; three times the mean is rarely reached."""
    w = np.exp([s.log_weight for s in samples if s.finished])
    ess = w.sum() ** 2 / (w ** 2).sum()
    return 3 * (len(target) - 1) / (2 * ess)


def chi_square(counts: dict, probs: dict, n: int) -> tuple[float, int]:
    assert set(counts) <= set(probs), "a sample outside the support"
    stat = sum((counts.get(k, 0) - n * p) ** 2 / (n * p) for k, p in probs.items())
    return stat, len(probs) - 1


def assert_fits(counts: dict, probs: dict, n: int) -> None:
    stat, df = chi_square(counts, probs, n)
    assert stat < df + 6 * math.sqrt(2 * df), (stat, df)


def test_the_toy_model_biases_masking(toy):
    _, _, target, masked, evidence = toy
    assert len(target) == 19 and 0.01 < evidence < 0.05
    assert kl(masked, target) > 0.5 and math.isclose(sum(masked.values()), 1.0)


# -- AWRS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", [(), (3,), (0,), (1, 1)])
@pytest.mark.parametrize("max_rejections", [32, 1])
def test_awrs_draws_the_masked_distribution_with_an_unbiased_normaliser(toy, prefix, max_rejections):
    lm, compiled, *_ = toy
    m = compiled.matcher()
    for t in prefix:
        assert m.consume_token(t)
    logp = lm.logprobs(list(prefix)).double().numpy()
    probs = np.exp(logp)
    allowed = m.allowed_token_ids()
    z = probs[allowed].sum()
    rng = np.random.default_rng(1)
    n = 4000
    steps = [awrs_step(m, logp, rng, max_rejections) for _ in range(n)]
    counts: dict = {}
    for s in steps:
        counts[s.token] = counts.get(s.token, 0) + 1
    assert_fits(counts, {int(t): probs[t] / z for t in allowed}, n)
    w = np.exp([s.log_weight for s in steps])
    assert abs(w.mean() - z) < 4 * w.std() / math.sqrt(n) + 1e-12
    assert m.allowed_token_ids().tolist() == allowed.tolist()   # nothing advanced
    mean_checks = np.mean([s.checks for s in steps])
    assert 1 <= mean_checks <= len(TOKENS) + 1


def test_awrs_returns_nothing_when_the_model_forbids_every_allowed_token(toy):
    _, compiled, *_ = toy
    m = compiled.matcher()
    logp = np.full(len(TOKENS), -np.inf)
    logp[4] = 0.0   # all mass on "x", which the grammar never allows
    for max_rejections in (32, 1):
        step = awrs_step(m, logp, np.random.default_rng(0), max_rejections)
        assert step.token is None and step.log_weight == -np.inf


# -- gcd.sample ----------------------------------------------------------------------------

def test_mask_samples_the_locally_constrained_distribution(toy):
    lm, compiled, _, masked, _ = toy
    out = gcd.sample(lm, compiled, "mask", num_samples=3000, max_new_tokens=MAX_NEW, seed=3)
    assert all(s.log_weight == 0.0 for s in out) and out.log_evidence is None
    counts: dict = {}
    for s in out:
        assert s.finished and s.token_ids[-1] == EOS and gcd.Grammar(GRAMMAR).accepts(s.text)
        counts[tuple(s.token_ids)] = counts.get(tuple(s.token_ids), 0) + 1
    assert_fits(counts, masked, len(out))


def test_awrs_weights_estimate_the_evidence_and_correct_the_bias(toy):
    lm, compiled, target, masked, evidence = toy
    out = gcd.sample(lm, compiled, "awrs", num_samples=4000, max_new_tokens=MAX_NEW, seed=4)
    w = np.exp([s.log_weight for s in out])
    assert abs(w.mean() - evidence) < 4 * w.std() / math.sqrt(len(w))
    assert math.isclose(math.exp(out.log_evidence), w.mean(), rel_tol=1e-9)
    assert kl(empirical(out, weighted=True), target) < kl_bound(out, target) < 0.5 < kl(empirical(out), target)
    assert all(s.checks >= len(s.token_ids) for s in out)


def test_smc_evidence_is_unbiased_and_its_particles_approach_the_target(toy):
    lm, compiled, target, _, evidence = toy
    runs = 300
    kls = {}
    for particles in (1, 4, 32):
        out = gcd.sample(lm, compiled, "smc", num_samples=runs, particles=particles, max_new_tokens=MAX_NEW,
                         seed=particles)
        assert len(out) == runs * particles and len(out.run_log_evidence) == runs
        est = np.exp(out.run_log_evidence)
        assert abs(est.mean() - evidence) < 4 * est.std() / math.sqrt(runs) + 1e-12, (particles, est.mean())
        # the weighted particle distribution of each run, averaged over the runs
        mix: dict = {}
        for r in range(runs):
            run = [s for s in out if s.run == r]
            for y, p in empirical(run, weighted=True).items() if any(s.finished for s in run) else ():
                mix[y] = mix.get(y, 0.0) + p / runs
        kls[particles] = kl(mix, target)
    assert kls[32] < kls[4] < kls[1] and kls[32] < 0.03, kls


def test_asap_later_samples_approach_the_target(toy):
    lm, compiled, target, masked, _ = toy
    trie = gcd.ASApTrie()
    out = gcd.sample(lm, compiled, "asap", num_samples=3000, max_new_tokens=MAX_NEW, seed=5, trie=trie)
    later = empirical(out[1500:])
    # 1,500 exact draws over 19 outcomes give 2n KL ~ chi-square(18): KL ~ 0.006, rarely 0.02;
    # masking's KL is 0.75
    assert kl(later, target) < 0.02 < 0.5 < kl(masked, target)
    # the bound at the root is an upper bound on P(a word), the evidence, and has all but met it
    exact = _exact_future(lm, compiled, ())
    assert exact == pytest.approx(toy[4], rel=1e-9)
    assert exact <= trie.theta(()) <= exact * (1 + 1e-3)


def _exact_future(lm, compiled, prefix) -> float:
    """P(a word follows ``prefix``) by enumeration: what ASAp's theta converges to."""
    m = compiled.matcher()
    for t in prefix:
        m.consume_token(t)
    probs = np.exp(lm.logprobs(list(prefix)).double().numpy())
    total = 0.0
    for t in m.allowed_token_ids().tolist():
        total += probs[t] if t == EOS else probs[t] * _exact_future(lm, compiled, prefix + (t,))
    return total


def test_asap_trie_saves_and_loads(toy, tmp_path):
    lm, compiled, *_ = toy
    trie = gcd.ASApTrie()
    gcd.sample(lm, compiled, "asap", num_samples=50, max_new_tokens=MAX_NEW, seed=6, trie=trie)
    trie.save(tmp_path / "t.gcd")
    again = gcd.ASApTrie.load(tmp_path / "t.gcd")
    assert again.size == trie.size and again.theta(()) == trie.theta(()) and again.theta((3,)) == trie.theta((3,))
    a = gcd.sample(lm, compiled, "asap", num_samples=20, max_new_tokens=MAX_NEW, seed=7, trie=trie)
    b = gcd.sample(lm, compiled, "asap", num_samples=20, max_new_tokens=MAX_NEW, seed=7, trie=again)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    (tmp_path / "bad.gcd").write_bytes(b"not a trie")
    with pytest.raises(gcd.StoreError):
        gcd.ASApTrie.load(tmp_path / "bad.gcd")


@pytest.mark.parametrize("method", ["mask", "awrs", "smc", "asap"])
def test_dead_ends_and_budgets_end_unfinished(toy, method):
    _, compiled, *_ = toy

    def forbidden(prefix):   # after one letter the model only wants "x"
        logits = np.zeros(len(TOKENS))
        if prefix:
            logits[:] = -np.inf
            logits[4] = 0.0
        return logits

    out = gcd.sample(TableModel(len(TOKENS), forbidden), compiled, method, num_samples=3, max_new_tokens=MAX_NEW)
    short = gcd.sample(toy[0], compiled, method, num_samples=3, max_new_tokens=1)
    for s in [*out, *short]:
        assert not s.finished and (s.log_weight == 0.0 if method == "mask" else s.log_weight == -np.inf)
        assert EOS not in s.token_ids
    assert method == "mask" or out.log_evidence == -np.inf


@pytest.mark.parametrize("method", ["mask", "awrs", "smc", "asap"])
def test_seeds_reproduce(toy, method):
    lm, compiled, *_ = toy
    a = gcd.sample(lm, compiled, method, num_samples=5, max_new_tokens=MAX_NEW, seed=11, particles=3)
    b = gcd.sample(lm, compiled, method, num_samples=5, max_new_tokens=MAX_NEW, seed=11, particles=3)
    assert a == b and [s.log_weight for s in a] == [s.log_weight for s in b]


def test_bad_arguments(toy):
    lm, compiled, *_ = toy
    for kwargs in ({"method": "beam"}, {"num_samples": 0}, {"particles": 0}, {"temperature": -1.0},
                   {"method": "awrs", "temperature": 0.0}, {"ess_threshold": 2.0}):
        with pytest.raises(ValueError):
            gcd.sample(lm, compiled, **kwargs)
    with pytest.raises(ValueError, match="logits"):
        gcd.sample(TableModel(3, lambda p: np.zeros(3)), compiled)


def test_a_plain_object_is_a_language_model(toy):
    """The protocol needs no subclassing; ``logprobs_batch`` is optional."""
    _, compiled, *_ = toy

    class Uniform:
        vocab_size = len(TOKENS)

        def logprobs(self, token_ids):
            return torch.full((len(TOKENS),), -math.log(len(TOKENS)))

    assert isinstance(Uniform(), gcd.LanguageModel)
    out = gcd.sample(Uniform(), compiled, "smc", particles=4, max_new_tokens=MAX_NEW, seed=1)
    assert len(out) == 4 and all(gcd.Grammar(GRAMMAR).accepts(s.text) for s in out if s.finished)

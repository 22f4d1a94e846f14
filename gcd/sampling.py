"""``gcd.sample``: draw words of a grammar from a language model, locally constrained or
faithful to the model conditioned on the grammar.

- ``"mask"``: each token from the model renormalised over the allowed tokens (log_weight 0).
  It over-weights prefixes that are viable but unlikely to finish.
- ``"awrs"``: each token by adaptive weighted rejection sampling (``gcd.awrs``); the same
  token distribution as masking, a few checks instead of a mask per token, and a log weight
  whose exponential is an unbiased estimate of P(y in grammar) under the model. Weighted by
  it, samples are faithful to the target p(y | y in grammar) (importance sampling).
- ``"smc"``: sequential Monte Carlo: ``particles`` sequences per run extended with AWRS and
  resampled when the effective sample size falls below ``ess_threshold * particles``; every
  particle of every run is returned with its weight.
- ``"asap"``: adaptive sampling with approximate expected futures (``gcd.ASApTrie``): samples
  approach the target as the trie shared by the samples (and, if passed, across calls) tightens.

The weight of a sample that did not end by EOS within ``max_new_tokens``, or met a step where
the model gives no mass to any allowed token, is -inf (0 for ``"mask"``), and ``finished`` is
False. ``max_trailing`` (default 2) bounds ``%ignore``-only tokens after the text is a word
(then EOS is forced; ``None``: no bound), see ``Matcher``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gcd.asap import ASApTrie
from gcd.awrs import awrs_step
from gcd.compiler import CompiledGrammar
from gcd.lm import LanguageModel, logprobs_batch
from gcd.matcher import Matcher

METHODS = ("mask", "awrs", "smc", "asap")
DEFAULT_MAX_TRAILING = 2


@dataclass(frozen=True)
class Sample:
    """One output: its tokens (ending with EOS when ``finished``), their text without EOS, the
    log importance weight, whether it ended by EOS, the run it belongs to (SMC) and the
    grammar checks its tokens cost (AWRS and SMC: tokens tested; mask and ASAp: 0)."""
    token_ids: list[int]
    text: str
    log_weight: float
    finished: bool
    run: int = 0
    checks: int = 0


class Samples(list):
    """The list of ``Sample`` one call returns, with ``log_evidence``: the estimate of
    log P(y in grammar, within the budget) under the model from the whole call (None for
    ``"mask"``), and ``run_log_evidence``: one estimate per run (SMC) or per sample."""

    def __init__(self, samples: list[Sample], run_log_evidence: list[float] | None) -> None:
        super().__init__(samples)
        self.run_log_evidence = run_log_evidence
        self.log_evidence = None if run_log_evidence is None else _log_mean_exp(run_log_evidence)


@dataclass
class _Seq:
    """A sequence being sampled: its matcher, tokens, log weight and counters."""
    matcher: Matcher
    ids: list[int]
    log_weight: float = 0.0
    done: bool = False
    finished: bool = False
    checks: int = 0

    def copy(self) -> "_Seq":
        return _Seq(self.matcher.copy(), list(self.ids), self.log_weight, self.done, self.finished, self.checks)


def sample(lm: LanguageModel, compiled: CompiledGrammar, method: str = "mask", num_samples: int = 1,
           max_new_tokens: int = 128, seed: int = 0, *, temperature: float = 1.0,
           max_trailing: int | None = DEFAULT_MAX_TRAILING, particles: int = 8, ess_threshold: float = 0.5,
           max_rejections: int = 8, trie: ASApTrie | None = None) -> Samples:
    """``num_samples`` samples (SMC: ``num_samples`` runs of ``particles`` particles each) of
    at most ``max_new_tokens`` tokens from ``lm`` constrained by ``compiled`` (module docstring).
    ``temperature`` rescales the model's log-probabilities (0: greedy, ``"mask"`` only).
    ``trie``: an ``ASApTrie`` to continue from and to tighten (``"asap"``; default: a new one)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    for name, value in (("num_samples", num_samples), ("max_new_tokens", max_new_tokens), ("particles", particles),
                        ("max_rejections", max_rejections)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")
    if not (np.isfinite(temperature) and temperature >= 0) or (temperature == 0 and method != "mask"):
        raise ValueError(f"temperature must be finite and > 0 (0, greedy, only with method='mask'), "
                         f"not {temperature!r}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ValueError(f"ess_threshold must be in [0, 1], not {ess_threshold!r}")
    if int(lm.vocab_size) < compiled.vocab.size:
        raise ValueError(f"the model has {lm.vocab_size} logits, the grammar's vocabulary {compiled.vocab.size} tokens")
    rng = np.random.default_rng(seed)
    run = _Run(lm, compiled, max_new_tokens, temperature, max_trailing, rng)
    if method == "mask":
        return Samples(run.finish(run.mask(num_samples), weighted=False), None)
    if method == "awrs":
        seqs = run.awrs(num_samples, max_rejections)
        out = run.finish(seqs)
        return Samples(out, [s.log_weight for s in out])
    if method == "smc":
        out, evidence = [], []
        for r in range(num_samples):
            seqs = run.smc(particles, ess_threshold, max_rejections)
            out += run.finish(seqs, r)
            evidence.append(_log_mean_exp([s.log_weight for s in seqs]))
        return Samples(out, evidence)
    trie = ASApTrie() if trie is None else trie
    out = run.finish([run.asap(trie) for _ in range(num_samples)])
    return Samples(out, [s.log_weight for s in out])


class _Run:
    """The samplers' shared loop: model calls, tempering, ending a sequence."""

    def __init__(self, lm: LanguageModel, compiled: CompiledGrammar, max_new_tokens: int, temperature: float,
                 max_trailing: int | None, rng: np.random.Generator) -> None:
        self.lm, self.compiled, self.rng = lm, compiled, rng
        self.max_new_tokens, self.temperature, self.max_trailing = max_new_tokens, temperature, max_trailing
        self.eos = frozenset(compiled.vocab.eos_token_ids)

    def new(self) -> _Seq:
        return _Seq(self.compiled.matcher(max_trailing=self.max_trailing), [])

    def logprobs(self, seqs: list[_Seq]) -> np.ndarray:
        """Tempered float64 log-probabilities ``[len(seqs), V]`` after each sequence."""
        lp = logprobs_batch(self.lm, [s.ids for s in seqs]).detach().to("cpu", torch.float64)
        if self.temperature not in (0.0, 1.0):
            lp = torch.log_softmax(lp / self.temperature, -1)
        return lp.numpy()

    def push(self, seq: _Seq, token: int | None) -> None:
        """Extend ``seq`` by ``token`` (None: nothing allowed; the sequence fails)."""
        if token is None:
            seq.done, seq.log_weight = True, -np.inf
            return
        if not seq.matcher.consume_token(token):
            raise AssertionError(f"sampled token {token} that the matcher refuses")
        seq.ids.append(token)
        if token in self.eos:
            seq.done = seq.finished = True

    def steps(self, seqs: list[_Seq]):
        """(sequence, its log-probabilities) for each unfinished sequence, step by step."""
        for _ in range(self.max_new_tokens):
            alive = [s for s in seqs if not s.done]
            if not alive:
                return
            for seq, logp in zip(alive, self.logprobs(alive)):
                yield seq, logp

    def mask(self, n: int) -> list[_Seq]:
        seqs = [self.new() for _ in range(n)]
        for seq, logp in self.steps(seqs):
            allowed = seq.matcher.allowed_token_ids()
            scores = logp[allowed]
            if not len(allowed) or not np.isfinite(scores).any():
                self.push(seq, None)
            elif self.temperature == 0.0:
                self.push(seq, int(allowed[np.argmax(scores)]))
            else:
                self.push(seq, int(allowed[_draw(scores, self.rng)]))
        return seqs

    def awrs(self, n: int, max_rejections: int) -> list[_Seq]:
        seqs = [self.new() for _ in range(n)]
        for seq, logp in self.steps(seqs):
            self._awrs_step(seq, logp, max_rejections)
        return seqs

    def _awrs_step(self, seq: _Seq, logp: np.ndarray, max_rejections: int) -> None:
        step = awrs_step(seq.matcher, logp, self.rng, max_rejections)
        seq.checks += step.checks
        seq.log_weight += step.log_weight
        self.push(seq, step.token)

    def smc(self, n: int, ess_threshold: float, max_rejections: int) -> list[_Seq]:
        seqs = [self.new() for _ in range(n)]
        for _ in range(self.max_new_tokens):
            alive = [s for s in seqs if not s.done]
            if not alive:
                break
            for seq, logp in zip(alive, self.logprobs(alive)):
                self._awrs_step(seq, logp, max_rejections)
            seqs = self._resample(seqs, ess_threshold)
        return seqs

    def _resample(self, seqs: list[_Seq], ess_threshold: float) -> list[_Seq]:
        """Multinomial resampling when the effective sample size is below the threshold; every
        particle then carries the mean weight (so the run's evidence estimate is unchanged)."""
        logw = np.array([s.log_weight for s in seqs])
        if not np.isfinite(logw).any() or all(s.done for s in seqs):
            return seqs
        w = np.exp(logw - logw.max())
        w /= w.sum()
        if 1.0 / np.sum(w ** 2) >= ess_threshold * len(seqs):
            return seqs
        mean = _log_mean_exp(logw.tolist())
        picked = self.rng.choice(len(seqs), size=len(seqs), p=w)
        out = [seqs[i].copy() for i in picked]
        for s in out:
            s.log_weight = mean
        return out

    def asap(self, trie: ASApTrie) -> _Seq:
        seq = self.new()
        for seq, logp in self.steps([seq]):
            allowed = seq.matcher.allowed_token_ids()
            scores = trie.visit(seq.ids, logp, allowed)
            if not len(allowed) or not np.isfinite(scores).any():
                self.push(seq, None)
                break
            i = _draw(scores, self.rng)
            token = int(allowed[i])
            # importance weight of the step: target p(t|u) over proposal p(t|u) theta(ut) / c(u)
            seq.log_weight += _logsumexp(scores) - (scores[i] - logp[token])
            trie.add(seq.ids, token, float(logp[token]))
            self.push(seq, token)
        trie.update(seq.ids)
        return seq

    def finish(self, seqs: list[_Seq], run: int = 0, weighted: bool = True) -> list[Sample]:
        vocab = self.compiled.vocab
        out = []
        for s in seqs:
            text = b"".join(vocab.token_bytes(t) for t in s.ids if t not in self.eos).decode("utf-8", "replace")
            weight = 0.0 if not weighted else s.log_weight if s.finished else -np.inf
            out.append(Sample(list(s.ids), text, float(weight), s.finished, run, s.checks))
        return out


def _draw(scores: np.ndarray, rng: np.random.Generator) -> int:
    """An index drawn with probability proportional to ``exp(scores)``."""
    p = np.exp(scores - scores.max())
    return int(rng.choice(len(p), p=p / p.sum()))


def _logsumexp(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    top = x.max() if len(x) else -np.inf
    if not np.isfinite(top):
        return float(top)
    return float(top + np.log(np.exp(x - top).sum()))


def _log_mean_exp(values: list[float]) -> float:
    return _logsumexp(values) - float(np.log(len(values))) if values else -np.inf

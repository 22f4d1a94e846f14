"""Adaptive weighted rejection sampling (AWRS) of one token (after Lipkin et al. 2025).

Given next-token probabilities ``p`` over the vocabulary and the set ``A`` of tokens the
grammar allows (known only through a per-token check), ``awrs_step`` returns a token drawn
exactly from ``p`` restricted to ``A`` and renormalised, and an unbiased estimate of the local
normaliser ``Z = sum_{a in A} p(a)``, checking a handful of tokens instead of the vocabulary.

**The draw.** Tokens are visited in the order of ``log p(t) + G_t`` (``G_t`` i.i.d. standard
Gumbel), which is sampling without replacement from ``p``. The first visited token that is in
``A`` is the sample: conditioned on the tokens before it being rejected, the next token is
drawn from ``p`` over the tokens not yet visited, a set that contains all of ``A``; so the
first one in ``A`` has probability ``p(a) / Z``.

**The weight.** Let ``a`` be the accepted token, ``R`` the tokens rejected before it, and
``S = V - R - {a}`` the tokens not yet visited, of mass ``r = 1 - p(R) - p(a)``. One more token
``y`` is visited (the order continues: ``y`` is drawn from ``p`` over ``S``, ``P(y) = p(y)/r``)
and the weight is

    w = p(a) + r * [y in A].

Conditioned on ``(R, a)``, ``E[w] = p(a) + r * P(y in A) = p(a) + r * p(A & S) / r
= p(a) + p(A & S)``. Since ``R`` and ``A`` are disjoint, ``A = {a} + (A & S)``, so
``E[w | R, a] = Z``: the weight is unbiased for ``Z`` whatever token was drawn, which is what
SMC needs (``E[w f(a)] = sum_a p(a) f(a)`` over ``A`` for every ``f``: the pair is properly
weighted for ``p`` restricted to ``A``). If ``S`` is empty, ``Z = p(a)`` and ``w = p(a)``.
The cost is the rejections plus two checks.

**The bound.** After ``max_rejections`` rejections the step computes the exact mask: the
sample is then drawn from ``p`` over ``A`` (all of which is still unvisited) and the weight is
``Z`` itself, so a step never costs more than masking plus ``max_rejections`` checks. If
``A`` is empty the step returns no token and weight 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gcd.matcher import Matcher

CHUNK = 16   # tokens put in Gumbel order at a time (a full sort only when they run out)


@dataclass(frozen=True)
class Step:
    """One AWRS step: the token (None: nothing allowed), log of the weight, checks made, and
    whether the rejections ran out and the exact mask decided (``exact``)."""
    token: int | None
    log_weight: float
    checks: int
    exact: bool = False


def awrs_step(matcher: Matcher, logp: np.ndarray, rng: np.random.Generator, max_rejections: int = 8) -> Step:
    """Draw a token from ``exp(logp)`` restricted to what ``matcher`` allows (module docstring).
    ``logp``: float64 log-probabilities over the vocabulary (they sum to 1)."""
    keys = logp - np.log(-np.log(rng.random(len(logp))))   # log p + Gumbel
    probs = np.exp(logp)
    total = float(probs.sum())
    accepted, removed, checks, rejected = None, 0.0, 0, 0
    for token in _gumbel_order(keys):
        if probs[token] == 0.0:      # only tokens of zero mass are left
            break
        checks += 1
        ok = matcher.accepts_token(token)
        if accepted is not None:
            rest = max(total - removed, 0.0)
            return Step(accepted, float(np.log(probs[accepted] + (rest if ok else 0.0))), checks)
        removed += probs[token]
        if ok:
            accepted = int(token)
            continue
        rejected += 1
        if rejected >= max_rejections:
            return _exact(matcher, probs, rng, checks)
    if accepted is not None:         # every token of positive mass was visited
        return Step(accepted, float(np.log(probs[accepted])), checks)
    return Step(None, -np.inf, checks)


def _gumbel_order(keys: np.ndarray):
    """Token ids by descending key: the first ``CHUNK`` by partial selection, then the rest sorted."""
    n = len(keys)
    k = min(CHUNK, n)
    top = np.argpartition(-keys, k - 1)[:k] if k < n else np.arange(n)
    top = top[np.argsort(-keys[top], kind="stable")]
    yield from top.tolist()
    if k < n:
        rest = np.ones(n, dtype=bool)
        rest[top] = False
        ids = np.flatnonzero(rest)
        yield from ids[np.argsort(-keys[ids], kind="stable")].tolist()


def _exact(matcher: Matcher, probs: np.ndarray, rng: np.random.Generator, checks: int) -> Step:
    """The bounded fallback: draw from ``probs`` over the exact mask, weight the exact ``Z``."""
    allowed = matcher.allowed_token_ids()
    mass = probs[allowed]
    z = float(mass.sum())
    if z <= 0.0:
        return Step(None, -np.inf, checks, exact=True)
    token = int(allowed[rng.choice(len(allowed), p=mass / z)])
    return Step(token, float(np.log(z)), checks, exact=True)

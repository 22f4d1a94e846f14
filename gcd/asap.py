"""``ASApTrie``: adaptive sampling with approximate expected futures (Park et al. 2024).

The target is the model conditioned on the grammar, ``p(y | y in L)``. Its exact next-token
distribution at a prefix ``u`` is ``p(t | u) * F(ut) / F(u)``, where ``F(u)`` is the
probability that the model, continuing ``u``, ends with a word of ``L`` (its expected future
grammaticality). Masking takes ``F = 1`` for every viable prefix, which over-weights prefixes
that rarely finish. ASAp keeps, over the prefixes it has sampled, an upper bound

    theta(u) = sum over allowed t of p(t | u) * theta(ut),   theta = 1 where nothing is known,

(``theta(u EOS) = 1``: a finished word; a prefix with no allowed token has ``theta = 0``),
samples ``t`` with probability proportional to ``p(t | u) * theta(ut)`` and, after each
sample, recomputes ``theta`` along its path, bottom-up: O(depth) per sample. Each sample
tightens the bounds, and as they approach ``F`` the samples approach the target.

A node stores only scalars: its token's probability given its parent, the mass of the tokens
allowed after it (``sum of p(t | u)`` over the mask) and ``theta``; ``visit`` turns a
prefix's log-probabilities into sampling scores in one vectorised pass over the allowed
tokens. The trie can be kept across calls and saved (``save``/``load``, gcd's array file
format: nothing in it is executed on load); it is only meaningful for the model, prompt,
temperature and grammar it was built with.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from gcd import store


class _Node:
    __slots__ = ("children", "logp", "mass", "theta")

    def __init__(self, logp: float) -> None:
        self.children: dict[int, _Node] = {}
        self.logp = logp             # log p(this token | parent)
        self.mass: float | None = None   # sum of p(t | this prefix) over the allowed t, once visited
        self.theta = 1.0


class ASApTrie:
    """The sampled prefixes with their bounds ``theta`` (module docstring)."""

    def __init__(self) -> None:
        self.root = _Node(0.0)
        self.size = 1

    def theta(self, prefix: Sequence[int]) -> float:
        """The current upper bound on P(a word follows ``prefix``) (1.0 for unseen prefixes)."""
        node = self._find(prefix)
        return 1.0 if node is None else node.theta

    def visit(self, prefix: Sequence[int], logp: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Sampling scores ``log p(t | prefix) + log theta(prefix t)`` for the ``allowed`` ids;
        records the prefix's allowed mass. ``logp``: float64 over the vocabulary."""
        node = self._path(prefix)[-1]
        scores = logp[allowed].astype(np.float64, copy=True)
        if node.mass is None:
            node.mass = float(np.exp(scores).sum())
        if node.children:
            where = np.searchsorted(allowed, list(node.children))
            for (token, child), i in zip(node.children.items(), where):
                if i < len(allowed) and allowed[i] == token:
                    scores[i] += np.log(child.theta) if child.theta > 0 else -np.inf
        return scores

    def add(self, prefix: Sequence[int], token: int, logp: float) -> None:
        """Record that ``token`` (of log-probability ``logp``) followed ``prefix``."""
        node = self._path(prefix)[-1]
        child = node.children.get(int(token))
        if child is None:
            node.children[int(token)] = _Node(float(logp))
            self.size += 1
        elif np.isnan(child.logp):
            child.logp = float(logp)

    def update(self, token_ids: Sequence[int]) -> None:
        """Tighten ``theta`` along a sampled path, bottom-up."""
        for node in reversed(self._path(token_ids)):
            if node.mass is None:
                continue
            unseen = node.mass - sum(np.exp(c.logp) for c in node.children.values())
            node.theta = float(min(1.0, max(0.0, unseen) + sum(np.exp(c.logp) * c.theta
                                                                for c in node.children.values())))

    def _find(self, prefix: Sequence[int]) -> _Node | None:
        node = self.root
        for t in prefix:
            node = node.children.get(int(t))
            if node is None:
                return None
        return node

    def _path(self, prefix: Sequence[int]) -> list[_Node]:
        """The nodes from the root to ``prefix``, created (with unknown probability) where missing."""
        path = [self.root]
        for t in prefix:
            node = path[-1].children.get(int(t))
            if node is None:
                node = path[-1].children[int(t)] = _Node(np.nan)
                self.size += 1
            path.append(node)
        return path

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        parents, tokens, logps, masses, thetas = [], [], [], [], []
        stack = [(self.root, -1, -1)]
        while stack:
            node, parent, token = stack.pop()
            index = len(parents)
            parents.append(parent)
            tokens.append(token)
            logps.append(node.logp)
            masses.append(np.nan if node.mass is None else node.mass)
            thetas.append(node.theta)
            stack.extend((child, index, t) for t, child in node.children.items())
        arrays = {"parent": np.array(parents, np.int64), "token": np.array(tokens, np.int64),
                  "logp": np.array(logps), "mass": np.array(masses), "theta": np.array(thetas)}
        store.write(Path(path), {"kind": "gcd.ASApTrie", "nodes": len(parents)}, arrays)

    @classmethod
    def load(cls, path: str | Path) -> "ASApTrie":
        meta, arrays = store.read(Path(path))
        if meta.get("kind") != "gcd.ASApTrie":
            raise store.StoreError(f"{path} is not a saved ASApTrie")
        trie = cls()
        nodes: list[_Node] = []
        for parent, token, logp, mass, theta in zip(arrays["parent"].tolist(), arrays["token"].tolist(),
                                                    arrays["logp"].tolist(), arrays["mass"].tolist(),
                                                    arrays["theta"].tolist()):
            node = trie.root if parent < 0 else _Node(logp)
            node.mass = None if np.isnan(mass) else mass
            node.theta = theta
            if parent >= 0:
                nodes[parent].children[token] = node
            nodes.append(node)
        trie.size = len(nodes)
        return trie

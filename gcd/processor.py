"""``GrammarLogitsProcessor``: constrain Hugging Face ``model.generate`` to words of a grammar,
by masking (``"mask"``), by rejection sampling with weights (``"awrs"``) or with ASAp's
reweighting (``"asap"``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor

from gcd.asap import ASApTrie
from gcd.awrs import awrs_step
from gcd.compiler import CompiledGrammar
from gcd.masks import allocate_token_bitmask, apply_token_bitmask_
from gcd.matcher import Matcher
from gcd.sampling import DEFAULT_MAX_TRAILING

PROCESSOR_METHODS = ("mask", "awrs", "asap")


class GrammarLogitsProcessor(LogitsProcessor):
    """Constrains ``model.generate`` to words of a grammar::

        proc = GrammarLogitsProcessor(compiled)
        model.generate(**inputs, logits_processor=[proc], eos_token_id=proc.eos_token_ids)

    ``compiled`` is one ``CompiledGrammar`` for every row, or one per prompt (rows are
    assigned in order, in equal blocks: beams and ``num_return_sequences`` copies of a prompt
    share its grammar). Each call advances the matchers by the tokens after the prompt, found
    again from ``input_ids`` (so beam reordering is harmless). EOS is allowed exactly when
    the text is a complete word, and is the only token allowed once generated, or when a row
    cannot continue. A new prompt batch starts a fresh state (``reset()`` forces it).
    ``max_trailing`` (default 2; ``None``: no bound) bounds ``%ignore``-only tokens after
    the text is a word, then forces EOS (see ``Matcher``).

    ``method``:

    - ``"mask"``: disallowed logits become ``-inf`` (greedy, sampling, beam search).
    - ``"awrs"``: the processor draws each row's token itself by adaptive weighted rejection
      sampling from ``softmax(scores / temperature)`` of the scores it receives (a few
      grammar checks instead of a mask) and returns scores that leave only that token, so it
      works under greedy or sampling settings alike (no beams). ``generate`` applies its own
      temperature, top-k and top-p *after* user processors: pass the temperature here.
      ``log_weights`` holds each row's log importance weight (the sum over its steps of the
      log of an unbiased estimate of the allowed mass; -inf for a row that hit a dead end)
      and ``checks`` the tokens tested; ``seed`` seeds its generator.
    - ``"asap"``: the allowed logits get ``log theta`` of their continuation added
      (``gcd.ASApTrie``, shared by every row and call; pass ``trie`` to keep one). Call
      ``update(sequences)`` with ``generate``'s output to tighten the bounds along the
      sampled paths (a new batch also tightens them along what it saw). Use it with
      sampling at temperature 1 (the bounds refer to the distribution of the scores it
      receives).
    """

    def __init__(self, compiled: CompiledGrammar | Sequence[CompiledGrammar], *, method: str = "mask",
                 max_trailing: int | None = DEFAULT_MAX_TRAILING, temperature: float = 1.0, seed: int = 0,
                 max_rejections: int = 8, trie: ASApTrie | None = None) -> None:
        grammars = [compiled] if isinstance(compiled, CompiledGrammar) else list(compiled)
        if not grammars or not all(isinstance(g, CompiledGrammar) for g in grammars):
            raise TypeError("GrammarLogitsProcessor needs a CompiledGrammar or a non-empty sequence of them")
        if method not in PROCESSOR_METHODS:
            raise ValueError(f"method must be one of {', '.join(PROCESSOR_METHODS)}, not {method!r}")
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be finite and > 0, not {temperature!r}")
        self.grammars = grammars
        self.method = method
        self.max_trailing = max_trailing
        self.temperature = temperature
        self.max_rejections = max_rejections
        self.trie = trie if trie is not None else ASApTrie() if method == "asap" else None
        self.eos_token_ids: list[int] = sorted({e for g in grammars for e in g.vocab.eos_token_ids})
        self._vocab_size = max(g.vocab.size for g in grammars)
        self._width = max(g.bitmask_width for g in grammars)
        self._eos_words = np.zeros(self._width, dtype=np.uint32)
        for e in self.eos_token_ids:
            self._eos_words[e >> 5] |= np.uint32(1 << (e & 31))
        self._bitmask = allocate_token_bitmask(0, 32 * self._width)
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the current batch: the next call starts from its ``input_ids`` as the prompt."""
        if self.trie is not None and getattr(self, "_matchers", None):
            for key in self._matchers:
                self.trie.update(key[1])
        self._prompt: torch.Tensor | None = None
        self._prompts: list[tuple[int, ...]] = []
        self._matchers: dict[tuple[int, tuple[int, ...]], Matcher | None] = {}  # None: dead row
        self._weights: list[float] = []     # awrs: per row (rows keep their place without beams)
        self._checks: list[int] = []
        self._logp: dict[tuple[int, tuple[int, ...]], np.ndarray] = {}    # asap: last call's log-probabilities
        self._keys: list[tuple[int, tuple[int, ...]]] = []

    @property
    def log_weights(self) -> list[float]:
        """``"awrs"``: each row's log importance weight so far (-inf: a dead end)."""
        return list(self._weights)

    @property
    def checks(self) -> list[int]:
        """``"awrs"``: the tokens each row's steps tested, so far."""
        return list(self._checks)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows, length = input_ids.shape
        if scores.shape[-1] < self._vocab_size:
            raise ValueError(f"logits have {scores.shape[-1]} columns, the grammar's vocabulary {self._vocab_size}")
        if rows % len(self.grammars):
            raise ValueError(f"{rows} rows cannot be split among {len(self.grammars)} grammars")
        prompt = self._prompt
        if (prompt is None or prompt.shape[0] != rows or length <= prompt.shape[1]
                or not torch.equal(input_ids[:, :prompt.shape[1]], prompt)):
            self.reset()
            prompt = self._prompt = input_ids.clone()
            self._prompts = [tuple(r) for r in prompt.tolist()]
        block = rows // len(self.grammars)
        generated = input_ids[:, prompt.shape[1]:].tolist()
        # rows are told apart by prompt (ASAp's trie depends on it) and grammar
        keys = self._keys = [(row // block, (*self._prompts[row], -1, *tokens)) for row, tokens in enumerate(generated)]
        self._matchers = {key: self._advance(key) for key in dict.fromkeys(keys)}
        if self.method == "awrs":
            return self._awrs(keys, scores)
        if self._bitmask.shape[0] != rows:
            self._bitmask = allocate_token_bitmask(rows, 32 * self._width)
        words = self._bitmask.numpy()
        for row, key in enumerate(keys):
            matcher = self._matchers[key]
            if matcher is None:
                words[row] = self._eos_words.view(np.int32)
            else:
                matcher.fill_bitmask(self._bitmask, row)
        if self.method == "asap":   # the model's probabilities, before the mask renormalises them
            logps = torch.log_softmax(scores.detach().double(), -1).cpu().numpy()
        scores = apply_token_bitmask_(scores, self._bitmask)
        if self.method == "asap":
            self._asap(keys, scores, logps)
        return scores

    def _advance(self, key: tuple[int, tuple[int, ...]]) -> Matcher | None:
        """The matcher after ``key``'s tokens: its parent's (last call) plus one token, or replayed."""
        grammar, path = key
        tokens = self._generated(path)
        parent_key = (grammar, path[:-1])
        if tokens and parent_key in self._matchers:
            parent, todo = self._matchers[parent_key], tokens[-1:]
            self._follow(parent_key, key, tokens[-1])
        else:
            parent, todo = self.grammars[grammar].matcher(max_trailing=self.max_trailing), tokens
        if parent is None or parent.is_terminated():
            return parent
        matcher = parent.copy()
        for token in todo:
            if matcher.is_terminated():
                break  # generate pads finished rows
            if not matcher.consume_token(token):
                return None  # e.g. a beam kept at -inf score
        return matcher

    def _follow(self, parent: tuple, key: tuple, token: int) -> None:
        """Record in ASAp's trie the probability of the token that took ``parent`` to ``key``."""
        logp = self._logp.get(parent)
        if logp is not None:
            self.trie.add(parent[1], token, float(logp[token]))

    @staticmethod
    def _generated(path: tuple[int, ...]) -> tuple[int, ...]:
        return path[path.index(-1) + 1:]

    def _awrs(self, keys: list, scores: torch.FloatTensor) -> torch.FloatTensor:
        logps = torch.log_softmax(scores.detach().double() / self.temperature, -1).cpu().numpy()
        out = torch.full_like(scores, -torch.inf)
        if len(self._weights) != len(keys):
            self._weights, self._checks = [0.0] * len(keys), [0] * len(keys)
        for row, key in enumerate(keys):      # each row draws for itself, even where rows are equal
            matcher = self._matchers[key]
            token = self.grammars[key[0]].vocab.eos_token_ids[0]
            if matcher is None:
                self._weights[row] = -np.inf
            elif not matcher.is_terminated():
                step = awrs_step(matcher, logps[row], self._rng, self.max_rejections)
                self._weights[row] += step.log_weight
                self._checks[row] += step.checks
                if step.token is not None:    # else a dead end: EOS, and the weight is -inf
                    token = step.token
            out[row, token] = 0.0
        return out

    def _asap(self, keys: list, scores: torch.FloatTensor, logps: np.ndarray) -> None:
        """Add log theta of each allowed continuation to the (masked) scores, in place."""
        finite = torch.isfinite(scores).cpu().numpy()
        seen: dict = {}    # only this call's: the next call reads the probability of the token it took
        for row, key in enumerate(keys):
            matcher = self._matchers[key]
            if matcher is None or matcher.is_terminated():
                continue
            allowed = np.flatnonzero(finite[row])
            seen[key] = logps[row]
            adjusted = self.trie.visit(key[1], logps[row], allowed)   # log p + log theta: equal up to a constant
            index = torch.from_numpy(allowed).to(scores.device)
            scores[row, index] = torch.from_numpy(adjusted).to(scores.device, scores.dtype)
        self._logp = seen

    def update(self, sequences: torch.LongTensor) -> None:
        """``"asap"``: tighten the trie along ``generate``'s output rows (prompt included, as
        ``generate`` returns them), up to their EOS."""
        if self.trie is None:
            raise ValueError("update() is for method='asap'")
        if self._prompt is None:
            return
        width = self._prompt.shape[1]
        block = sequences.shape[0] // len(self.grammars)
        eos = set(self.eos_token_ids)
        for row, ids in enumerate(sequences.tolist()):
            tokens = []
            for t in ids[width:]:
                tokens.append(t)
                if t in eos:
                    break
            path = (*self._prompts[row % len(self._prompts)], -1)
            key = (row // block, path)
            for t in tokens:
                self._follow(key, (key[0], (*key[1], t)), t)
                key = (key[0], (*key[1], t))
            self.trie.update(key[1])
        self._matchers = {}

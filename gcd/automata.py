"""Token-level automata: the whole vocabulary lexed at once from a lexer state.

For a lexer state ``L`` and a group of tokens (the whole vocabulary, or the remainders of
tokens whose first lexeme ended inside them), ``lex_group`` runs every token's bytes through
the product DFA with numpy gathers, one byte position at a time, and splits the group into

* classes of tokens consumed whole, by the lexer state they end in; a class is allowed
  iff the recogniser finds that end state viable under the current parser configuration;
* sub-groups of tokens whose lexeme ended inside them (by terminal and replayed bytes):
  the parser takes the terminal, and the rest of each token is lexed again from the new
  lexer state, recursively.

None of this depends on the parser, so outcomes are cached per (lexer state, group) and
shared by all parser configurations; the mask for a (configuration, lexer state) pair is
cached too, since JSON and code revisit the same ones constantly.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from gcd.recognizer import Recognizer, State
from gcd.vocab import Vocabulary

DENSE_CLASS = 512          # classes with at least this many tokens are stored as dense bitsets
SMALL_GROUP = 8           # emitted sub-groups up to this size are checked token by token
GROUP, RESTRICT, TOKENS = 0, 1, 2   # kinds of emit entries
MASK_CACHE_BYTES = 256 << 20
MAX_STEP_CACHE = 200_000


@dataclass(frozen=True, eq=False)
class Outcome:
    """What one token group does from one lexer state."""

    dense_states: tuple           # lexer states of the dense classes
    dense_bits: np.ndarray        # uint32 [n_dense, words]
    sparse_states: tuple          # lexer states of the sparse classes
    sparse_ids: np.ndarray        # int32: token ids of the sparse classes, class after class
    sparse_starts: np.ndarray     # int64 [n_sparse + 1]: CSR offsets into sparse_ids
    emits: tuple                  # ((terminal, replay prefix, kind, payload), ...): payload is a
                                  # sub-group id (GROUP), a token bitset (RESTRICT: the tokens
                                  # replay whole from the next lexeme start) or (ids, offsets)


class TokenAutomata:
    """Lazily built token-level automata of one grammar over one vocabulary."""

    def __init__(self, recognizer: Recognizer, vocab: Vocabulary) -> None:
        self.recognizer = recognizer
        self.vocab = vocab
        self.words = (vocab.size + 31) // 32
        self._matrix = vocab.byte_matrix
        self._flat = self._matrix.ravel()
        self._lengths = vocab.lengths.astype(np.int32)
        top = np.flatnonzero(self._lengths > 0).astype(np.int64)
        first = self._matrix[top, 0]
        order = np.argsort(first, kind="stable")
        self._by_first = top[order]                     # tokens sorted by first byte
        self._first_starts = np.searchsorted(first[order], np.arange(257))
        flags = np.zeros((256, self.words * 32), dtype=bool)
        flags[first, top] = True
        self._first_bits = _pack(flags)                 # uint32 [256, words]: tokens by first byte
        self._groups: list[tuple[np.ndarray, np.ndarray]] = [(top, np.zeros(len(top), np.int32))]
        self._group_ids: dict[bytes, int] = {}   # content digest -> group id
        self._splits: dict[int, list[tuple[int, int]]] = {}   # group -> [(next byte, sub-group)]
        self._token_bytes = [vocab.token_bytes(i) for i in range(vocab.size)]
        self._outcomes: dict[tuple[tuple, int], Outcome] = {}
        self._masks: dict[tuple, tuple[np.ndarray, int]] = {}   # (config, key) -> (mask, stack depth read)
        self._trie: dict[tuple, dict] = {}
        self._step_masks: dict[State, np.ndarray] = {}          # decoding-step fast paths
        self._steps: dict[tuple, State | None] = {}
        self._mask_bytes = 0
        eos = np.zeros(self.words * 32, dtype=bool)
        eos[list(vocab.eos_token_ids)] = True
        self._eos_bits = _pack(eos)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # keyed by stack objects, which are per process; the trie (by state numbers) is kept
        for name in ("_masks", "_step_masks", "_steps"):
            del state[name]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._masks, self._step_masks, self._steps = {}, {}, {}

    # -- compile time -------------------------------------------------------------
    def explore(self, budget: int = 1000) -> list:
        """Parser configurations reachable from the initial one, breadth-first, skipping those
        whose top three stack states were seen already (they rarely lead anywhere new)."""
        rec = self.recognizer
        parser, n = rec.parser, rec.lexer.n_terminals
        queue, seen = [parser.initial], set()
        for config in queue:
            takes = parser.shiftable(config) & ~rec.ignore_mask
            for t in range(n):
                if takes >> t & 1:
                    nxt = parser.feed(config, t)
                    key = frozenset(_top(node, 3) for node in nxt)
                    if key not in seen and len(seen) < budget:
                        seen.add(key)
                        queue.append(nxt)
        return queue

    # -- masks ----------------------------------------------------------------------
    def mask(self, state: State) -> np.ndarray:
        """Packed allowed-token bitset (uint32 [words]) for a recogniser state, EOS included."""
        config, lex = state
        return self._cached(config, (lex, 0), lambda: self._top_mask(state))

    def step_mask(self, state: State) -> np.ndarray:
        """``mask(state)`` for a decoding step: a plain dict lookup when seen before."""
        m = self._step_masks.get(state)
        if m is None:
            if len(self._step_masks) > MAX_STEP_CACHE:
                self._step_masks.clear()
            m = self._step_masks[state] = self.mask(state)
        return m

    def step(self, state: State, token: int) -> State | None:
        """The recogniser state after ``token`` (None if it is not allowed), memoised."""
        key = (state, token)
        nxt = self._steps.get(key, False)
        if nxt is False:
            rec = self.recognizer
            nxt = rec.feed_bytes(state, self._token_bytes[token])
            if nxt is not None and not rec.is_viable(nxt):
                nxt = None
            if len(self._steps) > MAX_STEP_CACHE:
                self._steps.clear()
            self._steps[key] = nxt
        return nxt

    def _top_mask(self, state: State) -> np.ndarray:
        m = self._mask(state[0], state[1], 0)
        return m | self._eos_bits if self.recognizer.is_accepting(state) else m

    def _cached(self, config, key: tuple, compute) -> np.ndarray:
        """``compute()``, the mask of token group ``key = (lexer state, group)`` under
        ``config``, cached twice: by the exact configuration, and for single-stack
        configurations in a trie over the top stack states down to the deepest one the
        computation read (the parser's low-water mark). So the same construct at another
        nesting depth, or in another context that reads the same stack top, is a hit."""
        parser = self.recognizer.parser
        top = next(iter(config)) if len(config) == 1 else max(config, key=_height)
        exact = (config, key)
        hit = self._masks.get(exact)
        if hit is None and len(config) == 1:
            hit = self._trie_get(key, top)
        if hit is None:
            saved, parser.low = parser.low, top.height
            m = compute()
            hit = (m, top.height - parser.low)
            parser.low = saved
            if self._mask_bytes > MASK_CACHE_BYTES:
                self._masks.clear()
                self._trie.clear()
                self._mask_bytes = 0
            self._mask_bytes += m.nbytes
            if len(config) == 1:
                self._trie_put(key, top, hit)
        self._masks[exact] = hit
        low = top.height - hit[1]
        if low < parser.low:
            parser.low = low
        return hit[0]

    def _trie_get(self, key: tuple, node):
        level = self._trie.get(key)
        while level is not None and node is not None:
            entry = level.get(node.state)
            if type(entry) is tuple:
                return entry
            level, node = entry, node.parent
        return None

    def _trie_put(self, key: tuple, node, hit: tuple) -> None:
        level = self._trie.setdefault(key, {})
        for _ in range(hit[1]):
            nxt = level.get(node.state)
            if type(nxt) is not dict:
                nxt = level[node.state] = {}
            level, node = nxt, node.parent
        level[node.state] = hit

    def _mask(self, config, lex, group: int) -> np.ndarray:
        rec = self.recognizer
        out = self.outcome(lex, group)
        takes = rec.parser.shiftable(config) | rec.ignore_mask
        alive = rec.lexer.alive

        def viable(state) -> bool:
            if state[1] is None:
                return bool(alive[state[0]] & takes)
            return rec.is_viable((config, state))

        bits = np.zeros(self.words, dtype=np.uint32)
        if out.dense_states:
            sel = [i for i, s in enumerate(out.dense_states) if viable(s)]
            if sel:
                bits = np.bitwise_or.reduce(out.dense_bits[sel], axis=0)
        if out.sparse_states:
            sel = [i for i, s in enumerate(out.sparse_states) if viable(s)]
            if sel:
                ids = np.concatenate([out.sparse_ids[out.sparse_starts[i]:out.sparse_starts[i + 1]] for i in sel])
                if len(ids) < self.words:   # few tokens: set their bits one by one
                    np.bitwise_or.at(bits, ids >> 5, np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32)))
                else:
                    flags = np.zeros(self.words * 32, dtype=bool)
                    flags[ids] = True
                    bits |= _pack(flags)
        for terminal, prefix, kind, payload in out.emits:
            after = rec.shift(config, terminal)
            if after is None:
                continue
            if kind == RESTRICT:  # whole tokens lexed again from the next lexeme's start
                bits |= self.mask((after, rec.fresh(after))) & payload
                continue
            state = rec.feed_bytes((after, rec.fresh(after)), prefix)
            if state is None:
                continue
            if kind == GROUP:
                bits |= self._cached(state[0], (state[1], payload),
                                     lambda: self._mask(state[0], state[1], payload))
                continue
            for token, offset in zip(*payload):  # a few tokens: byte by byte
                end = rec.feed_bytes(state, self._token_bytes[token][offset:])
                if end is not None and rec.is_viable(end):
                    bits[token >> 5] |= np.uint32(1 << (token & 31))
        return bits

    # -- lexing the vocabulary ---------------------------------------------------------
    def outcome(self, lex: tuple, group: int) -> Outcome:
        key = (lex, group)
        out = self._outcomes.get(key)
        if out is None:
            if group == 0 or self.recognizer.lexer.is_start(lex[0]):
                out = self._by_next_byte(lex, group)
            else:
                out = self._lex_group(lex, group)
            self._outcomes[key] = out
        return out

    def _split(self, group: int) -> list[tuple[int, int]]:
        """The group's tokens by their next byte: [(byte, sub-group of the rest)]."""
        split = self._splits.get(group)
        if split is None:
            ids, offsets = self._groups[group]
            nxt = self._flat.take(ids * self._matrix.shape[1] + offsets)
            split = self._splits[group] = [(byte, self._group_id(ids[members], offsets[members] + 1))
                                           for byte, members in _group_by(nxt, np.arange(len(ids)))]
        return split

    def _by_next_byte(self, lex: tuple, group: int) -> Outcome:
        """A group's outcome assembled from its tokens' outcomes after their next byte. The
        state after one byte is shared by many lexer states (inside an identifier, a number,
        whitespace, whatever candidate set the lexeme started with), so most lexing is shared.
        Tokens dead at that byte end the pending lexeme before them. At a lexeme start,
        tokens whose first lexeme is an ignored terminal leave the parser as it is, so the
        rest of them is lexed from this same start and merged in."""
        s, last = lex
        lexer = self.recognizer.lexer
        row, accept = lexer.rows[s], lexer.accept_list
        parts, dead = [], []
        for byte, sub in self._split(group):
            t = row[byte]
            if t < 0:
                dead.append((byte, sub))
            elif accept[t] >= 0:
                parts.append(self.outcome((t, None), sub))
            elif accept[s] >= 0:
                parts.append(self.outcome((t, (accept[s], bytes((byte,)))), sub))
            elif last is not None:
                parts.append(self.outcome((t, (last[0], last[1] + bytes((byte,)))), sub))
            else:
                parts.append(self.outcome((t, None), sub))
        out = _concat(parts, self.words)
        ends = (accept[s], b"") if accept[s] >= 0 else last
        if dead and ends is not None:
            if group == 0 and not ends[1]:  # whole tokens: the next lexeme start's mask, restricted
                members = np.bitwise_or.reduce(self._first_bits[[b for b, _ in dead]], axis=0)
                entry = (ends[0], b"", RESTRICT, members)
            else:
                ids = np.concatenate([self._groups[sub][0] for _, sub in dead])
                offsets = np.concatenate([self._groups[sub][1] for _, sub in dead]) - 1
                entry = self._emit(ends[0], ends[1], ids, offsets.astype(np.int32))
            out = replace(out, emits=out.emits + (entry,))
        out = replace(out, emits=self._merge_emits(out.emits))
        ignored = self.recognizer.ignore_mask
        if lexer.is_start(s) and any(ignored >> e[0] & 1 and not e[1] for e in out.emits):
            rest = [e for e in out.emits if not (ignored >> e[0] & 1 and not e[1])]
            again = [self.outcome(lex, e[3] if e[2] == GROUP else self._group_id(*map(np.asarray, e[3])))
                     for e in out.emits if ignored >> e[0] & 1 and not e[1]]
            out = _concat([replace(out, emits=tuple(rest))] + again, self.words)
        return out

    def _emit(self, terminal: int, prefix: bytes, ids: np.ndarray, offsets: np.ndarray) -> tuple:
        """An emit entry for tokens whose remainders (from ``offsets``) follow ``prefix``."""
        if len(ids) <= SMALL_GROUP:
            return (terminal, prefix, TOKENS, (ids.tolist(), offsets.tolist()))
        return (terminal, prefix, GROUP, self._group_id(ids, offsets))

    def _merge_emits(self, emits: tuple) -> tuple:
        """One emit entry per (terminal, prefix): their token groups united."""
        by_key: dict[tuple, list] = {}
        for e in emits:
            by_key.setdefault((e[0], e[1], e[2] == RESTRICT), []).append(e)
        out = []
        for (terminal, prefix, restrict), entries in by_key.items():
            if len(entries) == 1:
                out.append(entries[0])
            elif restrict:
                out.append((terminal, prefix, RESTRICT, np.bitwise_or.reduce([e[3] for e in entries])))
            else:
                ids, offsets = zip(*(self._groups[e[3]] if e[2] == GROUP else map(np.asarray, e[3]) for e in entries))
                out.append(self._emit(terminal, prefix, np.concatenate(ids).astype(np.int64),
                                      np.concatenate(offsets).astype(np.int32)))
        return tuple(out)

    def _group_id(self, ids: np.ndarray, offsets: np.ndarray) -> int:
        """The id of the token group (token ids, offsets of their remainders), by content."""
        key = hashlib.blake2b(ids.tobytes() + b"|" + offsets.astype(np.int32).tobytes(), digest_size=16).digest()
        gid = self._group_ids.get(key)
        if gid is None:
            gid = self._group_ids[key] = len(self._groups)
            self._groups.append((ids, offsets))
        return gid

    def _lex_group(self, lex: tuple, group: int) -> Outcome:
        s0, last0 = lex
        dfa = self.recognizer.lexer
        start_accept = int(dfa.accept[s0])
        ids, offsets = self._groups[group]
        rem = self._lengths[ids] - offsets
        n = len(ids)
        state = np.full(n, s0, dtype=np.int32)
        last_pos = np.full(n, -1, dtype=np.int32)     # bytes into the remainder at the last match
        last_term = np.full(n, -1, dtype=np.int32)
        death = np.full(n, -1, dtype=np.int32)
        # one byte position at a time, with flat 1-D gathers (much faster than 2-D fancy indexing)
        table, accept = dfa.table.ravel(), dfa.accept
        where = ids * self._matrix.shape[1] + offsets        # flat index of each next byte
        active = np.flatnonzero(rem > 0)
        j = 0
        while len(active):
            nxt = table.take(state.take(active) * 256 + self._flat.take(where.take(active) + j))
            alive = nxt >= 0
            if not alive.all():
                death[active[~alive]] = j
                active, nxt = active[alive], nxt[alive]
            state[active] = nxt
            acc = accept.take(nxt)
            hit = acc >= 0
            if hit.any():
                matched = active[hit]
                last_pos[matched] = j + 1
                last_term[matched] = acc[hit]
            j += 1
            active = active[rem.take(active) > j]

        # tokens consumed whole: group by end lexer state
        whole = np.flatnonzero(death < 0)
        classes: dict[tuple, list[int]] = {}
        end_accepting = dfa.accept[state[whole]] >= 0
        simple = whole[end_accepting | ((last_pos[whole] < 0) & (start_accept < 0) & (last0 is None))]
        for s, members in _group_by(state[simple], simple):
            classes[(s, None)] = members
        for i in np.setdiff1d(whole, simple, assume_unique=True).tolist():
            tail = self._bytes(ids[i], offsets[i], rem[i])
            if last_pos[i] >= 0:
                last = (int(last_term[i]), tail[last_pos[i]:])
            elif start_accept >= 0:
                last = (start_accept, tail)
            else:
                last = (last0[0], last0[1] + tail)
            classes.setdefault((int(state[i]), last), []).append(i)

        # tokens whose lexeme ended inside them
        died = np.flatnonzero(death >= 0)
        emits = []
        inner = died[last_pos[died] >= 0]
        for t, members in _group_by(last_term[inner], inner):
            emits.append(self._emit(t, b"", ids[members], offsets[members] + last_pos[members]))
        before = died[last_pos[died] < 0]
        if len(before) and (start_accept >= 0 or last0 is not None):
            t, prefix = (start_accept, b"") if start_accept >= 0 else last0
            emits.append(self._emit(t, prefix, ids[before], offsets[before]))

        dense, dense_bits, sparse, sparse_ids = [], [], [], []
        for st, members in classes.items():
            tok = ids[np.asarray(members)]
            if len(tok) >= DENSE_CLASS:
                flags = np.zeros(self.words * 32, dtype=bool)
                flags[tok] = True
                dense.append(st)
                dense_bits.append(_pack(flags))
            else:
                sparse.append(st)
                sparse_ids.append(tok.astype(np.int32))
        starts = np.zeros(len(sparse_ids) + 1, dtype=np.int64)
        if sparse_ids:
            starts[1:] = np.cumsum([len(x) for x in sparse_ids])
        return Outcome(
            dense_states=tuple(dense),
            dense_bits=np.stack(dense_bits) if dense_bits else np.zeros((0, self.words), np.uint32),
            sparse_states=tuple(sparse),
            sparse_ids=np.concatenate(sparse_ids) if sparse_ids else np.zeros(0, np.int32),
            sparse_starts=starts, emits=tuple(emits))

    def _bytes(self, token: int, offset: int, length: int) -> bytes:
        return self._matrix[token, offset:offset + length].tobytes()


def _group_by(keys: np.ndarray, values: np.ndarray):
    """Yield (key, values with that key) for each distinct key, in one sort."""
    if not len(keys):
        return
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(keys)]])):
        yield int(keys[lo]), values[lo:hi]


def _concat(parts: list[Outcome], words: int) -> Outcome:
    """One outcome holding the classes and emits of ``parts`` (disjoint token sets);
    classes with the same end state are merged."""
    dense: dict[tuple, np.ndarray] = {}
    sparse: dict[tuple, list[np.ndarray]] = {}
    for p in parts:
        for st, bits in zip(p.dense_states, p.dense_bits):
            dense[st] = dense[st] | bits if st in dense else bits
        for i, st in enumerate(p.sparse_states):
            sparse.setdefault(st, []).append(p.sparse_ids[p.sparse_starts[i]:p.sparse_starts[i + 1]])
    sparse_ids = [np.concatenate(x) for x in sparse.values()]
    starts = np.zeros(len(sparse_ids) + 1, dtype=np.int64)
    starts[1:] = np.cumsum([len(x) for x in sparse_ids])
    return Outcome(
        dense_states=tuple(dense),
        dense_bits=np.stack(list(dense.values())) if dense else np.zeros((0, words), np.uint32),
        sparse_states=tuple(sparse),
        sparse_ids=np.concatenate(sparse_ids) if sparse_ids else np.zeros(0, np.int32),
        sparse_starts=starts,
        emits=sum((p.emits for p in parts), ()))


def _top(node, k: int) -> tuple:
    out = []
    while node is not None and len(out) < k:
        out.append(node.state)
        node = node.parent
    return tuple(out)


def _height(node) -> int:
    return node.height


def _pack(flags: np.ndarray) -> np.ndarray:
    """bool [..., 32 * words] -> uint32 [..., words]; bit j of word i is flags[..., 32 * i + j]."""
    return np.packbits(flags, axis=-1, bitorder="little").view("<u4").astype(np.uint32, copy=False)

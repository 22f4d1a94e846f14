"""Token-level automata: the whole vocabulary lexed at once from a lexer state.

For a raw lexer state ``L`` and a group of tokens (the whole vocabulary, or the rests of
tokens whose first lexeme ended inside them), ``outcome`` runs every token's bytes through
the lexer DFA with numpy gathers, one byte position at a time, and splits the group into

* classes of tokens consumed whole, by the raw lexer state they end in: a class is allowed
  iff that state is viable under the current parser configuration;
* ``Emit``s: tokens whose lexeme ended inside them, by terminal and the bytes to read again:
  the parser takes the terminal and the rest of each token is lexed from the next lexeme's
  start, recursively (``Emit.group`` holds the tokens and where their rest starts);
* the rest: tokens on which the lexeme dies before any match; only the fallback of a
  decoding state (``gcd.recognizer``) can take them.

None of this depends on the parser, so outcomes are cached per (lexer state, group) and
shared by all parser configurations. The mask of a group under a configuration is cached
under the states of the top of the stack down to the deepest one its computation read (the
floor the parser and recogniser return), so the same construct at another nesting depth is
a cache hit; where the stack is not a single one that deep, by the exact configuration.
"""
from __future__ import annotations

import hashlib
import itertools
import random
import threading
from dataclasses import dataclass, replace

import numpy as np

from gcd.cache import LRU, ArrayPool
from gcd.parser import Config, bit_indices
from gcd.recognizer import RawLex, Recognizer, State
from gcd.vocab import Vocabulary

DENSE_CLASS = 512          # classes with at least this many tokens are stored as bitsets
SMALL_GROUP = 8            # emit groups up to this size are checked token by token
SMALL_WALK = 64            # groups up to this size are lexed token by token, in plain Python
SPLIT_GROUP = 4096         # at a lexeme start, groups of at least this size are lexed by first byte


@dataclass(frozen=True)
class Emit:
    """Tokens whose current lexeme ends inside them."""

    terminal: int      # the lexeme that ends
    replay: bytes      # the bytes read after its match, lexed again before the tokens' rests
    group: int         # the tokens, and the offsets where their rests start (a group id)


@dataclass(frozen=True, eq=False)
class Outcome:
    """What the tokens of one group do from one raw lexer state."""

    dense_ends: tuple[RawLex, ...]   # raw lexer state each dense class ends in
    dense_bits: np.ndarray           # uint32 [n_dense, words]
    sparse_ends: tuple[RawLex, ...]
    sparse_ids: tuple[np.ndarray, ...]   # the token ids of each sparse class
    emits: tuple[Emit, ...]

    def or_sparse(self, bits: np.ndarray, classes: list[int]) -> None:
        """OR the tokens of the sparse classes ``classes`` into ``bits``, gathered in one array."""
        if classes:
            _set_bits(bits, np.concatenate([self.sparse_ids[i] for i in classes]))

    def nbytes(self) -> int:
        return (self.dense_bits.nbytes + sum(ids.nbytes for ids in self.sparse_ids)
                + 64 * (len(self.emits) + len(self.dense_ends) + 2 * len(self.sparse_ends)))


class TokenGroups:
    """Token groups: sets of token ids, each with the offset where its rest starts, numbered by
    content. Group 0 is every token with bytes, whole; ``first_byte_groups`` splits it by first
    byte (``by_first_byte`` splits any group by the first byte of its rests). These first groups
    depend on the vocabulary alone (``vocabulary_groups``); the others are the grammar's. A
    group whose tokens all rest at one offset and that is large is kept as a bitset (its ids
    are derived when asked for)."""

    def __init__(self, vocab: Vocabulary, shared: dict[str, np.ndarray] | None = None,
                 derived_bytes: int = 64 << 20) -> None:
        self.words = (vocab.size + 31) // 32
        self.offset_dtype = np.uint16 if int(vocab.lengths.max(initial=0)) < 1 << 16 else np.int32
        self._ids: list[np.ndarray | None] = []       # sorted token ids (None: derive from _bits)
        self._offsets: list[np.ndarray | int] = []    # per token, or one offset for all
        self._whole: dict[int, bool] = {}             # group -> is_whole, as asked
        self._sizes: dict[int, int] = {}              # group -> its size, as asked, for bitset groups
        self._split: dict[int, list] = {}             # group -> by_first_byte, as asked
        self._flat, self._token_starts = vocab.flat_bytes, vocab.token_starts
        self._bits: list[np.ndarray | None] = []
        self._digests: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._derived = LRU(1 << 10, max_bytes=derived_bytes)   # group -> ids derived from its bitset
        self._lock = threading.Lock()
        shared = vocabulary_groups(vocab) if shared is None else shared
        self._append_packed(shared)
        self.n_shared = len(self._ids)
        self.first_byte_groups = [(int(b), g + 1) for g, b in enumerate(shared["first_bytes"].tolist())]

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self, group: int) -> np.ndarray:
        ids = self._ids[group]
        if ids is None:
            ids = self._derived.get(group)
            if ids is None:
                ids = _readonly(_bits_to_ids(self._bits[group]))
                self._derived.put(group, ids, ids.nbytes)
        return ids

    def size(self, group: int) -> int:
        """How many tokens the group has (without deriving the ids of a bitset group)."""
        ids = self._ids[group]
        if ids is not None:
            return len(ids)
        size = self._sizes.get(group)
        if size is None:
            size = self._sizes[group] = int(np.bitwise_count(self._bits[group]).sum())
        return size

    def offsets(self, group: int) -> np.ndarray:
        offsets = self._offsets[group]
        if isinstance(offsets, int):
            return np.full(self.size(group), offsets, self.offset_dtype)
        return offsets

    def is_whole(self, group: int) -> bool:
        """Do all the group's tokens rest at offset 0 (whole tokens)?"""
        whole = self._whole.get(group)
        if whole is None:
            offsets = self._offsets[group]
            whole = self._whole[group] = offsets == 0 if isinstance(offsets, int) else not offsets.any()
        return whole

    def by_first_byte(self, group: int) -> list[tuple[int, int]]:
        """(byte, group) for each first byte of the group's rests: the tokens whose rest starts
        with it, with their rests one byte further."""
        if group == 0:
            return self.first_byte_groups
        split = self._split.get(group)
        if split is None:
            ids, offsets = self.ids(group), self.offsets(group)
            first = self._flat[self._token_starts[ids] + offsets]
            split = self._split[group] = [(b, self.add(ids[members], offsets[members] + 1))
                                          for b, members in _group_by(first, np.arange(len(ids)))]
        return split

    def bits(self, group: int) -> np.ndarray:
        """The group's tokens as a packed bitset (uint32 [words], read-only)."""
        b = self._bits[group]
        if b is None:
            b = self._bits[group] = _readonly(_ids_to_bits(self._ids[group], self.words))
        return b

    def add(self, ids: np.ndarray, offsets: np.ndarray) -> int:
        """The id of the group (token ids, offsets of their rests), by content."""
        ids = np.asarray(ids, np.int32)
        order = np.argsort(ids, kind="stable")
        ids, offsets = ids[order], np.asarray(offsets, self.offset_dtype)[order]
        key = _digest(ids, offsets)
        gid = self._index.get(key)
        if gid is None:
            with self._lock:
                gid = self._index.get(key)
                if gid is None:
                    gid = len(self._ids)
                    uniform = len(ids) and (offsets == offsets[0]).all() and len(ids) >= self.words
                    if uniform:   # a bitset is smaller than the ids
                        self._ids.append(None)
                        self._offsets.append(int(offsets[0]))
                        self._bits.append(_readonly(_ids_to_bits(ids, self.words)))
                    else:
                        self._ids.append(_readonly(ids))
                        self._offsets.append(_readonly(offsets))
                        self._bits.append(None)
                    self._digests.append(key)
                    self._index[key] = gid
        return gid

    def export(self) -> dict[str, np.ndarray]:
        """The grammar's groups (those after the shared ones) as flat arrays, and the splits
        by first byte made so far (rows of group, byte, the group of those tokens)."""
        with self._lock:
            packed = _pack_groups(self._ids[self.n_shared:], self._offsets[self.n_shared:], self._bits[self.n_shared:],
                                  self._digests[self.n_shared:], self.offset_dtype, self.words)
            packed["split"] = np.array([(g, b, sub) for g, split in self._split.items() for b, sub in split],
                                       np.int32).reshape(-1, 3)
            return packed

    def restore(self, packed: dict[str, np.ndarray]) -> None:
        """Append the groups of an ``export`` (of groups over the same vocabulary)."""
        with self._lock:
            self._append_packed(packed)
            for g, b, sub in packed["split"].tolist():
                self._split.setdefault(g, []).append((b, sub))

    def _append_packed(self, packed: dict[str, np.ndarray]) -> None:
        starts, ids, offsets, digests = packed["starts"], packed["ids"], packed["offsets"], packed["digests"]
        bitsets, rows, uniform = packed["bitsets"], packed["rows"].tolist(), packed["uniform"].tolist()
        for g in range(len(starts) - 1):
            key = digests[g].tobytes()
            self._index[key] = len(self._ids)
            if rows[g] >= 0:   # kept as a bitset, all its tokens at one offset
                self._ids.append(None)
                self._offsets.append(uniform[g])
                self._bits.append(bitsets[rows[g]])
            else:
                self._ids.append(ids[starts[g]:starts[g + 1]])
                self._offsets.append(offsets[starts[g]:starts[g + 1]])
                self._bits.append(None)
            self._digests.append(key)


def vocabulary_groups(vocab: Vocabulary) -> dict[str, np.ndarray]:
    """The groups every grammar over ``vocab`` starts with, as flat arrays: all tokens with
    bytes, whole; then those tokens by first byte (``first_bytes``), after it."""
    offset_dtype = np.uint16 if int(vocab.lengths.max(initial=0)) < 1 << 16 else np.int32
    top = np.flatnonzero(vocab.lengths > 0).astype(np.int32)
    first = vocab.flat_bytes[vocab.token_starts[top]]
    ids, offsets, first_bytes = [top], [np.zeros(len(top), offset_dtype)], []
    for b, members in _group_by(first, top):
        first_bytes.append(b)
        ids.append(members)
        offsets.append(np.ones(len(members), offset_dtype))
    packed = _pack_groups(ids, offsets, [None] * len(ids), [_digest(i, o) for i, o in zip(ids, offsets)],
                          offset_dtype, (vocab.size + 31) // 32)
    packed["first_bytes"] = np.array(first_bytes, np.uint8)
    return packed


def _pack_groups(ids: list, offsets: list, bits: list, digests: list, offset_dtype, words: int) -> dict:
    """Groups as flat arrays: explicit ones as slices ``starts[g]:starts[g + 1]`` of
    ``ids``/``offsets``; those kept as a bitset as row ``rows[g]`` of ``bitsets``, all their
    tokens at offset ``uniform[g]`` (``rows[g]`` is -1 for explicit groups)."""
    starts, flat_ids, flat_offsets, bitsets, rows, uniform = [0], [], [], [], [], []
    for g_ids, g_offsets, g_bits in zip(ids, offsets, bits):
        if g_ids is None:
            rows.append(len(bitsets))
            bitsets.append(g_bits)
            uniform.append(int(g_offsets))
        else:
            rows.append(-1)
            uniform.append(-1)
            flat_ids.append(g_ids)
            flat_offsets.append(g_offsets)
        starts.append(starts[-1] + (0 if g_ids is None else len(g_ids)))
    return {"starts": np.array(starts, np.int64),
            "ids": np.concatenate(flat_ids).astype(np.int32) if flat_ids else np.zeros(0, np.int32),
            "offsets": np.concatenate(flat_offsets).astype(offset_dtype) if flat_offsets else np.zeros(0, offset_dtype),
            "bitsets": np.stack(bitsets) if bitsets else np.zeros((0, words), np.uint32),
            "rows": np.array(rows, np.int32), "uniform": np.array(uniform, np.int32),
            "digests": np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 16)}


def _digest(ids: np.ndarray, offsets: np.ndarray) -> bytes:
    return hashlib.blake2b(np.asarray(ids, np.int32).tobytes() + b"|" + np.asarray(offsets, np.int32).tobytes(),
                           digest_size=16).digest()


class _TokenSets:
    """Token sets for a cache file (mask rows, outcome classes), each stored once: as token
    ids where that is smaller than a bitset, else as a bitset (see ``_delta_rows``)."""

    def __init__(self, words: int) -> None:
        self.words = words
        self._index: dict[bytes, int] = {}
        self._sets: list[tuple[np.ndarray | None, np.ndarray | None]] = []   # (bitset, sorted ids), one given

    def add_bits(self, row: np.ndarray) -> int:
        return self._add(b"b" + row.tobytes(), (row, None))

    def add_ids(self, ids: np.ndarray) -> int:
        ids = np.asarray(ids, np.int32)
        return self._add(b"i" + ids.tobytes(), (None, ids))

    def _add(self, key: bytes, value: tuple) -> int:
        i = self._index.get(key)
        if i is None:
            i = self._index[key] = len(self._sets)
            self._sets.append(value)
        return i

    def export(self) -> dict[str, np.ndarray]:
        dense, ids, starts, where = [], [], [0], []
        most = self.words * 4 // _compact_ids([], self.words).itemsize   # ids smaller than a bitset
        for bits, members in self._sets:
            if members is None:
                members = _bits_to_ids(bits)
            if len(members) < most:
                where.append(-len(starts))       # -(k + 1): the k-th set kept as ids
                ids.append(members)
                starts.append(starts[-1] + len(members))
            else:
                where.append(len(dense))
                dense.append(_ids_to_bits(members, self.words) if bits is None else bits)
        arrays = _delta_rows(np.stack(dense) if dense else np.zeros((0, self.words), np.uint32))
        arrays.update({"ids": _compact_ids(ids, self.words),
                       "starts": np.array(starts, np.int64), "where": np.array(where, np.int64)})
        return arrays

    @staticmethod
    def restore(arrays: dict[str, np.ndarray]) -> tuple[list[np.ndarray | None], list[np.ndarray | None]]:
        """The sets in the order they were added, as (bitsets, ids): each set is read-only and
        in one of the two lists (the ids a view of the file), None in the other."""
        dense, ids, starts = _undelta_rows(arrays), arrays["ids"], arrays["starts"].tolist()
        as_bits, as_ids = [], []
        for w in arrays["where"].tolist():
            as_bits.append(dense[w] if w >= 0 else None)
            as_ids.append(ids[starts[-w - 1]:starts[-w]] if w < 0 else None)
        return as_bits, as_ids


class TokenAutomata:
    """Lazily built token-level automata of one grammar over one vocabulary. Safe to use from
    several threads. Its caches share ``cache_bytes``: outcomes 3/8, masks by configuration
    1/8 (those the trie cannot hold), the stack-top trie 3/8 (its levels and the distinct
    masks they hold), decoding masks 1/8 (and derived token ids 1/8, in ``TokenGroups``);
    decoding steps and lexer moves keep one entry per 4 KiB of it each (see ``GrammarCompiler``)."""

    def __init__(self, recognizer: Recognizer, vocab: Vocabulary, cache_bytes: int = 512 << 20,
                 shared_groups: dict[str, np.ndarray] | None = None) -> None:
        self.recognizer = recognizer
        self.vocab = vocab
        self.cache_bytes = cache_bytes
        self.groups = TokenGroups(vocab, shared_groups, derived_bytes=cache_bytes // 8)
        self.words = self.groups.words
        self._flat = vocab.flat_bytes
        self._starts = vocab.token_starts
        self._lengths = vocab.lengths.astype(np.int32)
        self._token_bytes = vocab.tokens
        items = max(64, cache_bytes // 4096)
        self._outcomes = LRU(items, max_bytes=cache_bytes * 3 // 8)   # (raw lex, group) -> Outcome
        self._moves = LRU(items)                                      # (lexer state, token) -> lexer state (see move)
        self._masks = LRU(items, max_bytes=cache_bytes // 8)          # (config, raw lex, group) -> (bits, floor)
        pool = self._pool = ArrayPool()                               # the trie's masks, each held once
        self._trie = LRU(items, max_bytes=cache_bytes * 3 // 8, held=lambda: pool.nbytes, entry_bytes=64)   # see _trie_get
        self._trie_ids = itertools.count()
        self._top = LRU(items, max_bytes=cache_bytes // 8)            # decoding state -> mask with EOS
        self._steps = LRU(items)                                      # (state, token) -> state | None
        self.computed = 0   # masks of token groups computed (not found in a cache), for statistics
        eos = np.zeros(self.words * 32, dtype=bool)
        eos[list(vocab.eos_token_ids)] = True
        self.eos_bits = _readonly(_pack(eos))
        self._nothing = _readonly(np.zeros(self.words, dtype=np.uint32))   # shared by every empty mask

    # -- decoding -----------------------------------------------------------------------
    def mask(self, state: State) -> np.ndarray:
        """Packed allowed-token bitset (uint32 [words], read-only) of a decoding state, EOS included."""
        bits = self._top.get(state)
        if bits is None:
            rec = self.recognizer
            config, (s, fallback) = state
            bits, _ = self.group_mask(config, (s, None), 0)
            if fallback is not None:
                extra = self._fallback_tokens(config, s)
                if extra.any():
                    bits = bits | (extra & self.mask(fallback))
            if rec.is_accepting(state)[0]:
                bits = bits | self.eos_bits
            bits = _readonly(bits)
            self._top.put(state, bits, bits.nbytes)
        return bits

    def advance(self, state: State, token: int, allowed: bool = False) -> State | None:
        """The decoding state after ``token`` (None if it is not allowed), memoised where a
        lexeme ends inside the token. ``allowed``: the token is known to be in the state's
        mask, so the state after it is viable (the mask says exactly that)."""
        config, (s, fallback) = state
        rec = self.recognizer
        if fallback is None:
            end = self.move(s, token)
            if end >= 0:   # no lexeme the parser sees ends inside the token: only the lexer moves
                return (config, (end, None)) if allowed or rec.is_viable_raw(config, (end, None))[0] else None
        key = (state, token)
        nxt = self._steps.get(key, False)
        if nxt is False:
            nxt, _ = rec.advance(state, self._token_bytes[token])
            if nxt is not None and not (allowed or rec.is_viable(nxt)[0]):
                nxt = None
            self._steps.put(key, nxt)
        return nxt

    def move(self, s: int, token: int) -> int:
        """The lexer state ``token`` leads to from lexer state ``s`` (no fallback) where it ends
        no lexeme but ignored ones and leaves no earlier match pending (its class ends in a raw
        state without ``last``); -1 for other tokens. For those tokens the parser configuration
        stays as it is: ``Recognizer.advance`` gives the same state. Read off the classes of
        the vocabulary's outcome from ``s`` (the token's bit in each dense one, then the sparse
        ones), memoised per (state, token)."""
        key = (s, token)
        end = self._moves.get(key)
        if end is None:
            out = self.outcome((s, None), 0)
            row = np.flatnonzero(out.dense_bits[:, token >> 5] >> np.uint32(token & 31) & 1)
            at = np.flatnonzero(np.concatenate(out.sparse_ids) == token) if out.sparse_ids and not len(row) else ()
            if len(row):
                lex = out.dense_ends[int(row[0])]
            elif len(at):
                sizes = np.cumsum([len(ids) for ids in out.sparse_ids])
                lex = out.sparse_ends[int(np.searchsorted(sizes, at[0], side="right"))]
            else:
                lex = None
            end = lex[0] if lex is not None and lex[1] is None else -1
            self._moves.put(key, end)
        return end

    def token_ends(self, s: int) -> list[int]:
        """The lexer states whole tokens end in from lexer state ``s`` (no lexeme ending inside
        them, ``s`` itself left out), those that most tokens end in first."""
        out = self.outcome((s, None), 0)
        sizes: dict[int, int] = {}
        for (t, last), bits in zip(out.dense_ends, out.dense_bits):
            if last is None and t != s:
                sizes[t] = sizes.get(t, 0) + int(np.bitwise_count(bits).sum())
        for (t, last), ids in zip(out.sparse_ends, out.sparse_ids):
            if last is None and t != s:
                sizes[t] = sizes.get(t, 0) + len(ids)
        return sorted(sizes, key=lambda t: -sizes[t])

    def _fallback_tokens(self, config: Config, s: int) -> np.ndarray:
        """Tokens that a decoding state at lexer state ``s`` passes to its fallback: those the
        lexeme dies on before any match, and those read whole without a match, by which the
        lexeme cannot go on to a terminal the parser takes."""
        out = self.outcome((s, None), 0)
        rec, groups = self.recognizer, self.groups
        takes = rec.parser.next_terminals(config)[0] | rec.ignore_mask
        lexer = rec.lexer
        seen = np.zeros(self.words, dtype=np.uint32)     # tokens read whole or with a match inside
        bits = np.zeros(self.words, dtype=np.uint32)
        for i, (t, last) in enumerate(out.dense_ends):
            seen |= out.dense_bits[i]
            if last is None and lexer.accept[t] < 0 and not lexer.alive[t] & takes:
                bits |= out.dense_bits[i]
        stays = [i for i, (t, last) in enumerate(out.sparse_ends)
                 if last is None and lexer.accept[t] < 0 and not lexer.alive[t] & takes]
        out.or_sparse(seen, list(range(len(out.sparse_ends))))
        out.or_sparse(bits, stays)
        for emit in out.emits:
            seen |= groups.bits(emit.group)
        return bits | (groups.bits(0) & ~seen)

    # -- masks of token groups -----------------------------------------------------------
    def group_mask(self, config: Config, lex: RawLex, group: int) -> tuple[np.ndarray, int]:
        """The tokens of ``group`` whose rests keep the text viable from ``(config, lex)``,
        and the floor read; cached in the stack-top trie, or where the stack is not a single
        one down to the floor, by the exact configuration."""
        top = next(iter(config))
        chain = len(config) == 1
        if chain:
            hit, keys, node = self._trie_get(lex, group, top)
            if hit is not None:
                return hit
        exact = (config, lex, group)
        hit = self._masks.get(exact)
        if hit is not None:
            return hit
        bits, floor = self._compute_mask(config, lex, group)
        self.computed += 1
        bits = self._pool.share(_readonly(bits)) if bits.any() else self._nothing
        if not (chain and self._trie_put(keys, node, max(0, top.height - floor), bits)):
            self._masks.put(exact, (bits, floor), self._size(bits))
        return bits, floor

    def _trie_get(self, lex: RawLex, group: int, top) -> tuple[tuple[np.ndarray, int] | None, list, object]:
        """The mask kept for the states from ``top`` down, and where the walk ended: the keys
        of the levels it read and the node of the last one. The trie's levels are entries of
        one LRU: ``(raw lex, group, top state)`` for the first, ``(level id, state below)`` for
        the next ones; each holds ``(its id, None)`` where the computations read deeper, else
        ``(its id, (bits, depth))``."""
        node, key = top, (lex, group, top.state)
        keys = [key]
        while True:
            entry = self._trie.get(key)
            if entry is None:
                return None, keys, node
            level, found = entry
            if found is not None:
                bits, depth = found
                return (bits, top.height - depth), keys, node
            if len(node.parents) != 1:
                return None, keys, node
            node = node.parents[0]
            key = (level, node.state)
            keys.append(key)

    def _trie_put(self, keys: list, node, depth: int, bits: np.ndarray) -> bool:
        """Keep ``bits`` under the states down to ``depth``, from where ``_trie_get`` ended;
        False where the stack is not a single one that deep."""
        if depth < len(keys):
            key = keys[depth]
        else:
            key = keys[-1]
            for _ in range(depth + 1 - len(keys)):
                if len(node.parents) != 1:
                    return False
                entry = self._trie.get(key)
                if entry is None or entry[1] is not None:
                    entry = (next(self._trie_ids), None)
                    self._trie.put(key, entry)
                node = node.parents[0]
                key = (entry[0], node.state)
        self._trie.put(key, (next(self._trie_ids), (bits, depth)))   # 64 bytes; its mask is counted in the pool
        return True

    def _trie_levels(self) -> list[tuple[int, int, RawLex | None, int, tuple | None]]:
        """The trie's levels, least recently used first, as (index of the level above or -1,
        state, raw lex and group of a first level or None and -1, None or (bits, depth));
        levels under an evicted one are left out."""
        entries = self._trie.items()
        keys = {level: key for key, (level, _) in entries}
        kept: dict[int, bool] = {}
        index = {}
        for _, (level, _) in entries:
            if _reachable(level, keys, kept):
                index[level] = len(index)
        return [(-1, key[2], key[0], key[1], found) if len(key) == 3 else (index[key[0]], key[1], None, -1, found)
                for key, (level, found) in entries if level in index]

    def _size(self, bits: np.ndarray) -> int:
        """What a cache entry holding ``bits`` costs: the shared empty mask costs nothing extra."""
        return 64 if bits is self._nothing else bits.nbytes + 64

    def _compute_mask(self, config: Config, lex: RawLex, group: int) -> tuple[np.ndarray, int]:
        rec = self.recognizer
        out = self.outcome(lex, group)
        takes, floor = rec.parser.next_terminals(config)
        takes |= rec.ignore_mask
        alive = rec.lexer.alive

        def viable(end: RawLex) -> bool:
            nonlocal floor
            if end[1] is None:
                return bool(alive[end[0]] & takes)
            ok, f = rec.is_viable_raw(config, end)
            floor = min(floor, f)
            return ok

        bits = np.zeros(self.words, dtype=np.uint32)
        sel = [i for i, end in enumerate(out.dense_ends) if viable(end)]
        if sel:
            bits = np.bitwise_or.reduce(out.dense_bits[sel], axis=0)
        sel = [i for i, end in enumerate(out.sparse_ends) if viable(end)]
        if sel:
            out.or_sparse(bits, sel)   # bits is a new array: the reduction above made it
        for emit in out.emits:
            m, f = self._emit_mask(config, emit)
            floor = min(floor, f)
            if m is not None:
                bits |= m
        return bits, floor

    def _emit_mask(self, config: Config, emit: Emit) -> tuple[np.ndarray | None, int]:
        """The tokens of an emit whose rests are viable once the parser has taken its terminal."""
        rec, groups = self.recognizer, self.groups
        next_state, floor = rec.after_lexeme(config, emit.terminal)
        if next_state is None:
            return None, floor
        after, start = next_state
        if not emit.replay and groups.is_whole(emit.group):  # whole tokens from the next lexeme's start
            m, f = self.group_mask(after, start, 0)
            return m & groups.bits(emit.group), min(floor, f)
        state, f = rec.advance_raw(after, start, emit.replay)
        floor = min(floor, f)
        if state is None:
            return None, floor
        if groups.size(emit.group) > SMALL_GROUP:
            m, f = self.group_mask(state[0], state[1], emit.group)
            return m, min(floor, f)
        m = np.zeros(self.words, dtype=np.uint32)
        for token, offset in zip(groups.ids(emit.group).tolist(), groups.offsets(emit.group).tolist()):
            end, f = rec.advance_raw(state[0], state[1], self._token_bytes[token][offset:])
            floor = min(floor, f)
            if end is not None:
                ok, f = rec.is_viable_raw(*end)
                floor = min(floor, f)
                if ok:
                    m[token >> 5] |= np.uint32(1 << (token & 31))
        return m, floor

    # -- lexing the vocabulary -----------------------------------------------------------
    def outcome(self, lex: RawLex, group: int) -> Outcome:
        key = (lex, group)
        out = self._outcomes.get(key)
        if out is None:
            at_start = self.recognizer.lexer.is_start(lex[0])
            if group == 0 or (at_start and self.groups.size(group) >= SPLIT_GROUP):
                out = self._by_first_byte(lex, group)
            else:
                out = self._lex_group(lex, group)
            if at_start:
                out = self._merge_ignored(lex, out)
            self._outcomes.put(key, out, out.nbytes())
        return out

    def _by_first_byte(self, lex: RawLex, group: int) -> Outcome:
        """A large group's outcome assembled from the outcomes of its rests after their first
        byte. The lexer state after one byte is shared by many lexer states (inside an
        identifier, a number, whitespace, whatever candidate set the lexeme started with), so
        most lexing is shared."""
        s, last = lex
        lexer, groups = self.recognizer.lexer, self.groups
        row, accept = lexer.rows[s], lexer.accept
        parts, dead = [], []
        for byte, sub in groups.by_first_byte(group):
            t = row[byte]
            m = lexer.match_before(s, byte)
            if t < 0:
                ends = (m, b"") if m >= 0 else last
                if ends is not None:
                    dead.append((ends, sub))
                continue
            if accept[t] >= 0:
                child = (t, None)
            elif m >= 0:
                child = (t, (m, bytes((byte,))))
            elif last is not None:
                child = (t, (last[0], last[1] + bytes((byte,))))
            else:
                child = (t, None)
            parts.append(self.outcome(child, sub))
        emits = []
        for (terminal, replay), subs in _group_pairs(dead):
            ids = np.concatenate([groups.ids(g) for g in subs])
            offsets = np.concatenate([groups.offsets(g) for g in subs]) - 1   # the rests again
            emits.append(Emit(terminal, replay, groups.add(ids, offsets)))
        return self._merge_emits(_concat(parts, self.words, tuple(emits)))

    def _merge_ignored(self, lex: RawLex, out: Outcome) -> Outcome:
        """At a lexeme start, tokens whose first lexeme is an ignored terminal leave the parser
        as it is, so the rest of them is lexed from this same start and merged in."""
        ignored = self.recognizer.ignore_mask
        again = [e for e in out.emits if ignored >> e.terminal & 1 and not e.replay]
        if not again:
            return out
        rest = tuple(e for e in out.emits if not (ignored >> e.terminal & 1 and not e.replay))
        kept = replace(out, emits=rest)
        return self._merge_emits(_concat([kept] + [self.outcome(lex, e.group) for e in again], self.words, ()))

    def _merge_emits(self, out: Outcome) -> Outcome:
        """One emit per terminal and replay (whole tokens apart from rests): the parser takes
        the terminal once, and one outcome covers all their rests."""
        by_key: dict[tuple, list[Emit]] = {}
        for e in out.emits:
            by_key.setdefault((e.terminal, e.replay, self.groups.is_whole(e.group)), []).append(e)
        if len(by_key) == len(out.emits):
            return out
        groups, emits = self.groups, []
        for (terminal, replay, _), same in by_key.items():
            if len(same) == 1:
                emits.append(same[0])
                continue
            ids = np.concatenate([groups.ids(e.group) for e in same])
            offsets = np.concatenate([groups.offsets(e.group) for e in same])
            emits.append(Emit(terminal, replay, groups.add(ids, offsets)))
        return replace(out, emits=tuple(emits))

    def _lex_group(self, lex: RawLex, group: int) -> Outcome:
        s0, last0 = lex
        accept = self.recognizer.lexer.accept_array
        ids, offsets = self.groups.ids(group), self.groups.offsets(group)
        walk = self._walk_few if len(ids) <= SMALL_WALK else self._walk_many
        state, last_pos, last_term, death = walk(s0, ids, offsets)

        # tokens read whole: by the raw lexer state they end in
        whole = np.flatnonzero(death < 0)
        classes: dict[RawLex, list] = {}
        end_accepting = accept[state[whole]] >= 0
        is_simple = end_accepting | ((last_pos[whole] < 0) & (last0 is None))
        simple = whole[is_simple]
        for t, members in _group_by(state[simple], simple):
            classes[(t, None)] = [members]
        for i in whole[~is_simple].tolist():
            tail = self._rest(ids[i], offsets[i])
            if last_pos[i] >= 0:
                last = (int(last_term[i]), tail[last_pos[i]:])
            else:
                last = (last0[0], last0[1] + tail)
            classes.setdefault((int(state[i]), last), []).append(np.array([i]))

        # tokens on which the lexeme ended: at their last match, or at the state's own
        died = np.flatnonzero(death >= 0)
        emits = []
        inner = died[last_pos[died] >= 0]
        for t, members in _group_by(last_term[inner], inner):
            emits.append(Emit(t, b"", self.groups.add(ids[members], offsets[members] + last_pos[members])))
        before_any = died[last_pos[died] < 0]
        if len(before_any) and last0 is not None:
            emits.append(Emit(last0[0], last0[1], self.groups.add(ids[before_any], offsets[before_any])))
        return _classes_outcome({end: ids[np.concatenate(m)] for end, m in classes.items()}, self.words,
                                tuple(emits))

    def _walk_many(self, s0: int, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
        """Each token's rest run through the lexer DFA from ``s0``, all tokens at once: the state
        it ends (or dies) in, where in the rest and on which terminal its last match ended (-1:
        none), and where it died (-1: read whole)."""
        lexer = self.recognizer.lexer
        rem = self._lengths[ids] - offsets
        n = len(ids)
        state = np.full(n, s0, dtype=np.int32)
        last_pos = np.full(n, -1, dtype=np.int32)     # bytes into the rest where the last match ended
        last_term = np.full(n, -1, dtype=np.int32)
        death = np.full(n, -1, dtype=np.int32)
        # one byte position at a time, with flat 1-D gathers (much faster than 2-D fancy indexing)
        table = lexer.table.ravel()
        before = lexer.before_table
        before = before.ravel() if before is not None else None
        accept = lexer.accept_array
        where = self._starts[ids] + offsets       # flat index of each token's rest
        active = np.flatnonzero(rem > 0)
        j = 0
        while len(active):
            st = state.take(active)
            byte = self._flat.take(where.take(active) + j).astype(np.int64)
            matched = before.take(st * 257 + byte) if before is not None else accept.take(st)
            hit = matched >= 0
            if hit.any():
                last_pos[active[hit]] = j
                last_term[active[hit]] = matched[hit]
            nxt = table.take(st * 256 + byte)
            alive = nxt >= 0
            if not alive.all():
                death[active[~alive]] = j
                active, nxt = active[alive], nxt[alive]
            state[active] = nxt
            j += 1
            active = active[rem.take(active) > j]
        return state, last_pos, last_term, death

    def _walk_few(self, s0: int, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
        """``_walk_many`` token by token: for a few tokens, plain lists beat numpy's cost per call."""
        lexer = self.recognizer.lexer
        rows, before, accept = lexer.rows, lexer.before_rows, lexer.accept
        out = []
        for token, offset in zip(ids.tolist(), offsets.tolist()):
            s, last_pos, last_term, death = s0, -1, -1, -1
            for j, b in enumerate(self._token_bytes[token][offset:]):
                m = accept[s] if before[s] is None else before[s][b]
                if m >= 0:
                    last_pos, last_term = j, m
                t = rows[s][b]
                if t < 0:
                    death = j
                    break
                s = t
            out.append((s, last_pos, last_term, death))
        columns = np.array(out, dtype=np.int32).reshape(len(out), 4)
        return columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3]

    def _rest(self, token: int, offset: int) -> bytes:
        return self._token_bytes[token][offset:]

    # -- compile time -------------------------------------------------------------------
    def explore(self, budget: int = 1000) -> list:
        """Parser configurations reachable from the initial one, breadth-first, skipping those
        whose ``shape`` was seen already."""
        rec = self.recognizer
        parser = rec.parser
        classes = parser.table.terminal_class
        queue, seen = [parser.initial], set()
        for config in queue:
            takes = parser.next_terminals(config)[0] & ~rec.ignore_mask & ~(1 << parser.end)
            tried = set()
            for t in bit_indices(takes):
                if classes[t] in tried:  # interchangeable terminals lead to the same configuration
                    continue
                tried.add(classes[t])
                nxt, _ = parser.advance(config, t)
                key = shape(nxt)
                if key not in seen and len(seen) < budget:
                    seen.add(key)
                    queue.append(nxt)
        return queue

    def walk(self, rng: random.Random, length: int) -> list:
        """The parser configurations along a random walk from the initial one: ``length``
        terminals, each drawn uniformly from the classes of those the configuration takes
        (neither ignored ones nor $END). Walks reach the nested contexts (a subquery in a
        condition in a join) that breadth-first exploration runs out of budget before."""
        rec = self.recognizer
        parser = rec.parser
        classes = parser.table.terminal_class
        config, out = parser.initial, []
        for _ in range(length):
            takes = parser.next_terminals(config)[0] & ~rec.ignore_mask & ~(1 << parser.end)
            options = list({classes[t]: t for t in bit_indices(takes)}.values())
            if not options:
                break
            config, _ = parser.advance(config, rng.choice(options))
            out.append(config)
        return out

    # -- the cache file ---------------------------------------------------------------------
    def export(self) -> tuple[dict, dict[str, np.ndarray]]:
        """What was computed so far that does not depend on parser objects: the grammar's
        token groups, the outcomes and the stack-top trie of masks (JSON-able structure, arrays)."""
        sets = _TokenSets(self.words)
        outcomes = []
        for (lex, group), out in self._outcomes.items():
            outcomes.append([_lex_json(lex), group, [_lex_json(e) for e in out.dense_ends],
                             [sets.add_bits(r) for r in out.dense_bits], [_lex_json(e) for e in out.sparse_ends],
                             [sets.add_ids(ids) for ids in out.sparse_ids],
                             [[e.terminal, e.replay.hex(), e.group] for e in out.emits]])
        lexes: dict[RawLex, int] = {}
        trie = {"above": [], "state": [], "lex": [], "group": [], "row": [], "depth": []}
        for above, state, lex, group, found in self._trie_levels():   # as arrays: tens of thousands
            trie["above"].append(above)
            trie["state"].append(state)
            trie["lex"].append(-1 if lex is None else lexes.setdefault(lex, len(lexes)))
            trie["group"].append(group)
            trie["row"].append(-1 if found is None else sets.add_bits(found[0]))
            trie["depth"].append(0 if found is None else found[1])
        arrays = {f"groups.{k}": v for k, v in self.groups.export().items()}
        arrays.update({f"sets.{k}": v for k, v in sets.export().items()})
        arrays.update({f"trie.{k}": _narrow(v) for k, v in trie.items()})
        return {"outcomes": outcomes, "trie_lexes": [_lex_json(lex) for lex in lexes]}, arrays

    def restore(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Take what an ``export`` of automata for the same grammar, lexer and vocabulary holds."""
        self.groups.restore({k[len("groups."):]: v for k, v in arrays.items() if k.startswith("groups.")})
        as_bits, as_ids = _TokenSets.restore({k[len("sets."):]: v for k, v in arrays.items() if k.startswith("sets.")})

        def row(k: int) -> np.ndarray:   # set k as a bitset
            return as_bits[k] if as_bits[k] is not None else _ids_to_bits(as_ids[k], self.words)

        def mask(k: int) -> np.ndarray:   # set k as a trie mask, held once
            bits = row(k)
            return self._pool.share(_readonly(bits)) if bits.any() else self._nothing

        keys, outcomes = [], []
        for lex, group, dense_ends, dense_sets, sparse_ends, sparse_sets, emits in meta["outcomes"]:
            dense = np.stack([row(k) for k in dense_sets]) if dense_sets else np.zeros((0, self.words), np.uint32)
            sparse = tuple(as_ids[k] if as_ids[k] is not None else _readonly(_bits_to_ids(as_bits[k]))
                           for k in sparse_sets)
            outcomes.append(Outcome(tuple(map(_lex_tuple, dense_ends)), _readonly(dense),
                                    tuple(map(_lex_tuple, sparse_ends)), sparse,
                                    tuple(Emit(t, bytes.fromhex(r), g) for t, r, g in emits)))
            keys.append((_lex_tuple(lex), group))
        self._outcomes.load(keys, outcomes, [out.nbytes() for out in outcomes])
        lexes = [_lex_tuple(lex) for lex in meta["trie_lexes"]]
        above, state, lex, group, found_row, depth = (arrays[f"trie.{n}"].tolist()
                                                      for n in ("above", "state", "lex", "group", "row", "depth"))
        keys = [(lexes[x], g, s) if a < 0 else (a, s) for a, s, x, g in zip(above, state, lex, group)]
        masks = {r: mask(r) for r in set(found_row) if r >= 0}
        found = [(i, None if r < 0 else (masks[r], d)) for i, r, d in zip(range(len(keys)), found_row, depth)]
        self._trie_ids = itertools.count(len(keys))   # restored levels are numbered by their index
        self._trie.load(keys, found, [64] * len(keys))

    def stats(self) -> dict:
        return {"token_outcomes": len(self._outcomes), "token_groups": len(self.groups),
                "cached_masks": len(self._masks) + len(self._trie), "computed_masks": self.computed,
                "cache_bytes": self._outcomes.nbytes + self._masks.nbytes + self._trie.nbytes + self._pool.nbytes}


def _reachable(level: int, keys: dict, kept: dict) -> bool:
    """Does every level above this trie level still exist (``keys``: level -> its key)?
    ``kept`` memoises the answers."""
    path = []
    while level not in kept:
        key = keys.get(level)
        if key is None or len(key) == 3:
            kept[level] = key is not None
            break
        path.append(level)
        level = key[0]
    for above in path:
        kept[above] = kept[level]
    return kept[level]


def _lex_json(lex: RawLex) -> list:
    s, last = lex
    return [s] if last is None else [s, last[0], last[1].hex()]


def _lex_tuple(data: list) -> RawLex:
    return (data[0], None) if len(data) == 1 else (data[0], (data[1], bytes.fromhex(data[2])))


def _group_by(keys: np.ndarray, values: np.ndarray):
    """Yield (key, values with that key) for each distinct key, in one sort."""
    if not len(keys):
        return
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(keys)]])):
        yield int(keys[lo]), values[lo:hi]


def _group_pairs(pairs: list[tuple]):
    """(key, [values]) for each distinct key of ``pairs``, in first-seen order."""
    out: dict = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out.items()


def _classes_outcome(classes: dict[RawLex, np.ndarray], words: int, emits: tuple) -> Outcome:
    dense, dense_bits, sparse, sparse_ids = [], [], [], []
    for end, tok in classes.items():
        if len(tok) >= DENSE_CLASS:
            dense.append(end)
            dense_bits.append(_ids_to_bits(tok, words))
        else:
            sparse.append(end)
            sparse_ids.append(_readonly(np.sort(tok).astype(np.int32)))
    return Outcome(
        dense_ends=tuple(dense),
        dense_bits=np.stack(dense_bits) if dense_bits else np.zeros((0, words), np.uint32),
        sparse_ends=tuple(sparse), sparse_ids=tuple(sparse_ids), emits=emits)


def _concat(parts: list[Outcome], words: int, emits: tuple) -> Outcome:
    """One outcome holding the classes and emits of ``parts`` (disjoint token sets) and
    ``emits``; classes that end in the same state are merged (into a bitset where one of them
    is one, or where they hold ``DENSE_CLASS`` tokens)."""
    dense: dict[RawLex, np.ndarray] = {}
    sparse: dict[RawLex, list[np.ndarray]] = {}
    for p in parts:
        for end, bits in zip(p.dense_ends, p.dense_bits):
            dense[end] = dense[end] | bits if end in dense else bits
        for end, ids in zip(p.sparse_ends, p.sparse_ids):
            sparse.setdefault(end, []).append(ids)
        emits += p.emits
    sparse_ids = {}
    for end, x in sparse.items():
        ids = x[0] if len(x) == 1 else np.concatenate(x)
        if end in dense or len(ids) >= DENSE_CLASS:
            bits = _ids_to_bits(ids, words)
            dense[end] = dense[end] | bits if end in dense else bits
        else:
            sparse_ids[end] = ids if len(x) == 1 else _readonly(np.sort(ids))
    return Outcome(
        dense_ends=tuple(dense),
        dense_bits=np.stack(list(dense.values())) if dense else np.zeros((0, words), np.uint32),
        sparse_ends=tuple(sparse_ids), sparse_ids=tuple(sparse_ids.values()), emits=emits)


def shape(config: Config) -> frozenset:
    """The top three stack states of each stack of ``config``: configurations of one shape
    rarely lead anywhere new."""
    return frozenset(_top(node, 3) for node in config)


def _top(node, k: int) -> tuple:
    out = []
    while node is not None and len(out) < k:
        out.append(node.state)
        node = node.parents[0] if len(node.parents) == 1 else None
    return tuple(out)


def _pack(flags: np.ndarray) -> np.ndarray:
    """bool [..., 32 * words] -> uint32 [..., words]; bit j of word i is flags[..., 32 * i + j]."""
    return np.packbits(flags, axis=-1, bitorder="little").view("<u4").astype(np.uint32, copy=False)


def _delta_rows(rows: np.ndarray, near: int = 32) -> dict[str, np.ndarray]:
    """Bitset rows for a cache file, mostly as differences: taken in order of their token
    counts, each row is the tokens where it differs from the closest of the ``near`` rows
    before it (masks of related contexts differ in a few tokens: SQL at 262k tokens has 503
    rows of 32 KiB, a median 5 tokens from the closest other one), or the row itself where
    that is smaller."""
    words = rows.shape[1]
    order = np.argsort(np.bitwise_count(rows).sum(axis=1), kind="stable")
    base, whole, flips = [], [], []
    for k, i in enumerate(order.tolist()):
        lo = max(0, k - near)
        if k > lo:
            apart = np.bitwise_count(rows[order[lo:k]] ^ rows[i]).sum(axis=1)
            j = int(apart.argmin())
            if apart[j] < words:   # as int32 ids, smaller than the row
                base.append(lo + j)
                flips.append(_bits_to_ids(rows[order[lo + j]] ^ rows[i]))
                continue
        base.append(-1)
        whole.append(rows[i])
    return {"dense.order": order.astype(np.int32), "dense.base": np.array(base, np.int32),
            "dense.whole": np.stack(whole) if whole else np.zeros((0, words), np.uint32),
            "dense.flips": np.concatenate(flips).astype(np.int32) if flips else np.zeros(0, np.int32),
            "dense.flip_starts": np.cumsum([0] + [len(f) for f in flips], dtype=np.int64)}


def _undelta_rows(arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The rows of ``_delta_rows``, in their original order (read-only; whole ones are views)."""
    order, base, whole = arrays["dense.order"].tolist(), arrays["dense.base"].tolist(), arrays["dense.whole"]
    flips, flip_starts = arrays["dense.flips"], arrays["dense.flip_starts"].tolist()
    stored, rows = [], [None] * len(order)
    w = f = 0
    for i, b in zip(order, base):
        if b < 0:
            row = whole[w]
            w += 1
        else:
            row = stored[b].copy()
            np.bitwise_xor.at(row, *_word_bits(flips[flip_starts[f]:flip_starts[f + 1]]))
            row = _readonly(row)
            f += 1
        stored.append(row)
        rows[i] = row
    return rows


def _narrow(values: list[int]) -> np.ndarray:
    """Integers as int16 where they fit, else int32 (cache files)."""
    small = not values or -(1 << 15) <= min(values) and max(values) < 1 << 15
    return np.array(values, np.int16 if small else np.int32)


def _compact_ids(parts: list[np.ndarray], words: int) -> np.ndarray:
    """Token ids, concatenated, in 16 bits where the vocabulary allows (cache files)."""
    dtype = np.uint16 if words * 32 <= 1 << 16 else np.int32
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _ids_to_bits(ids: np.ndarray, words: int) -> np.ndarray:
    """Token ids -> packed bitset uint32 [words]."""
    return _set_bits(np.zeros(words, dtype=np.uint32), ids)


def _set_bits(bits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Set the bits of token ids in ``bits`` (uint32 [words]); returns ``bits``."""
    if len(ids) * 2 < len(bits):   # few tokens: one by one
        np.bitwise_or.at(bits, *_word_bits(ids))
    else:                          # many: a flag per token, packed
        flags = np.zeros(len(bits) * 32, dtype=bool)
        flags[ids] = True
        bits |= _pack(flags)
    return bits


def _word_bits(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For token ids: the index of the bitset word each is in, and its bit there."""
    ids = np.asarray(ids, np.int64)
    return ids >> 5, np.left_shift(np.uint32(1), (ids & 31).astype(np.uint32))


def _bits_to_ids(bits: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.unpackbits(bits.view(np.uint8), bitorder="little").view(bool)).astype(np.int32)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a

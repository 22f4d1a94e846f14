"""Compile a Lark terminal's regex into a minimal DFA over the UTF-8 bytes of the text.

The input is what ``TerminalDef.pattern.to_regexp()`` returns: Python ``re`` syntax with inline
flags.  It is parsed by ``re._parser`` and compiled: Thompson NFA over codepoint classes ->
subset construction -> Hopcroft minimisation -> expansion of every transition into UTF-8 byte
sequences.  The byte DFA is minimal and trimmed (every state can still reach acceptance).

Semantics (what gcd's lexer takes as the terminal's language):

* As ``re`` does for str patterns: ``\\d \\w \\s`` are the Unicode classes (ASCII under ``(?a)``),
  ``.`` excludes ``\\n`` unless ``(?s)``, ``(?i)`` folds case as ``re`` does.  Surrogates are
  never matched.
* Lazy quantifiers: Lark's lexer stops a lazy match at the shortest match, so a pattern with any
  lazy quantifier gets the prefix-minimal language {w in L : no proper prefix of w is in L}.  This
  is exactly ``re.match`` for the usual ones (``ESCAPED_STRING``, ``C_COMMENT``), not for all.
* Lookahead and lookbehind whose body is one character (class) look at the next / previous
  character *of the token*: there is none before its first or after its last character (the
  text around the token is not seen, as with ``re.fullmatch``).
* ``^``/``\\A`` at the very start and ``$``/``\\Z`` at the very end are ignored.

Refused with ``GrammarError``: other anchors, other lookarounds, backreferences, conditionals,
atomic groups, possessive quantifiers, a language that contains the empty string or is empty,
and automata over ``max_states`` states.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from re import _casefix, _parser  # type: ignore[attr-defined]
from re import _constants as C  # type: ignore[attr-defined]

import _sre  # type: ignore[import-not-found]
import numpy as np

from gcd.errors import GrammarError

_MAX_CP = 0x10FFFF
_FULL = np.array([[0, _MAX_CP]], dtype=np.int64)
_NO_NEWLINE = np.array([[0, 9], [11, _MAX_CP]], dtype=np.int64)
# UTF-8 encodings by length: (lead byte base, first codepoint, last codepoint).
_UTF8 = ((0x00, 0, 0x7F), (0xC0, 0x80, 0x7FF), (0xE0, 0x800, 0xFFFF), (0xF0, 0x10000, _MAX_CP))
_CATEGORIES = {
    C.CATEGORY_DIGIT: (r"\d", False), C.CATEGORY_NOT_DIGIT: (r"\d", True),
    C.CATEGORY_SPACE: (r"\s", False), C.CATEGORY_NOT_SPACE: (r"\s", True),
    C.CATEGORY_WORD: (r"\w", False), C.CATEGORY_NOT_WORD: (r"\w", True),
}
_UNSUPPORTED = {
    C.GROUPREF: "backreference", C.GROUPREF_EXISTS: "conditional group",
    C.ATOMIC_GROUP: "atomic group", C.POSSESSIVE_REPEAT: "possessive quantifier",
}

_Intervals = np.ndarray  # int64 [k, 2]: sorted, disjoint, non-adjacent inclusive codepoint ranges
_Cond = tuple[bool, int, bool]  # lookaround on an epsilon edge: (behind, set id, negated)


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """Minimal trimmed DFA over bytes; state 0 starts, ``-1`` is the (implicit) dead state."""

    transitions: np.ndarray  # int32 [n_states, 256]
    accepting: np.ndarray  # bool [n_states]

    def _run(self, data: bytes) -> int:
        state = 0
        for byte in data:
            state = int(self.transitions[state, byte])
            if state < 0:
                break
        return state

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` is in the language."""
        state = self._run(data)
        return state >= 0 and bool(self.accepting[state])

    def is_prefix(self, data: bytes) -> bool:
        """Whether ``data`` can be extended to a word of the language."""
        return self._run(data) >= 0


def _norm(iv: np.ndarray) -> _Intervals:
    iv = np.asarray(iv, dtype=np.int64).reshape(-1, 2)
    if not len(iv):
        return iv
    iv = iv[np.argsort(iv[:, 0], kind="stable")]
    hi = np.maximum.accumulate(iv[:, 1])
    first = np.flatnonzero(np.r_[True, iv[1:, 0] > hi[:-1] + 1])
    return np.stack([iv[first, 0], hi[np.r_[first[1:] - 1, len(iv) - 1]]], axis=1)


def _negate(iv: _Intervals) -> _Intervals:
    lo, hi = np.r_[0, iv[:, 1] + 1], np.r_[iv[:, 0] - 1, _MAX_CP]
    keep = lo <= hi
    return np.stack([lo[keep], hi[keep]], axis=1)


def _contains(iv: _Intervals, cps: np.ndarray) -> np.ndarray:
    i = np.searchsorted(iv[:, 0], cps, side="right") - 1
    return (i >= 0) & (cps <= iv[np.maximum(i, 0), 1]) if len(iv) else np.zeros(len(cps), bool)


@functools.cache
def _all_codepoints() -> str:
    return np.arange(_MAX_CP + 1, dtype="<u4").tobytes().decode("utf-32-le", "surrogatepass")


@functools.cache
def _category(escape: str, ascii: bool) -> _Intervals:
    """Codepoint ranges of ``\\d``, ``\\s`` or ``\\w``, found by running ``re`` over all codepoints."""
    runs = re.finditer(escape + "+", _all_codepoints(), re.ASCII if ascii else 0)
    return np.array([(m.start(), m.end() - 1) for m in runs], dtype=np.int64).reshape(-1, 2)


@functools.cache
def _case_table(ascii: bool) -> tuple[np.ndarray, np.ndarray]:
    """The codepoints ``re.IGNORECASE`` deems cased, with keys: two characters match each other
    iff their keys are equal (simple lowercases, joined by ``re._casefix``).

    Only planes 0-1 have cased characters; that is checked, not assumed."""
    if ascii:
        n, tolower, iscased, fixes = 128, _sre.ascii_tolower, _sre.ascii_iscased, {}
    else:
        high = _all_codepoints()[0x20000:]
        n = 0x20000 if high.lower() == high == high.upper() else _MAX_CP + 1
        tolower, iscased, fixes = _sre.unicode_tolower, _sre.unicode_iscased, _casefix._EXTRA_CASES
    cased = np.flatnonzero(np.fromiter(map(iscased, range(n)), bool, n))
    canonical = np.arange(n)
    for low, others in fixes.items():
        canonical[low] = min(low, *others)
    return cased, canonical[np.fromiter(map(tolower, cased.tolist()), np.int64, len(cased))]


def _fold(literals: _Intervals, ascii: bool) -> _Intervals:
    """Literals and ranges under ``re.IGNORECASE``: add every case-equivalent character."""
    cased, keys = _case_table(ascii)
    extra = cased[np.isin(keys, keys[_contains(literals, cased)])]
    return _norm(np.concatenate([literals, np.stack([extra, extra], axis=1)]))


def _partition(sets: list[_Intervals]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the non-surrogate codepoints into classes that no set cuts.

    Returns the bounds of elementary intervals ``[bounds[j], bounds[j+1])``, the class of each
    (-1 for surrogates) and the membership matrix bool [n_sets, n_classes]."""
    bounds = np.unique(np.concatenate([[0, 0xD800, 0xE000, _MAX_CP + 1]]
                                      + [iv[:, 0] for iv in sets] + [iv[:, 1] + 1 for iv in sets]))
    starts = bounds[:-1]
    member = np.array([_contains(iv, starts) for iv in sets])
    valid = (starts < 0xD800) | (starts >= 0xE000)
    columns, inverse = np.unique(member[:, valid].T, axis=0, return_inverse=True)
    cls = np.full(len(starts), -1, dtype=np.int64)
    cls[valid] = inverse.ravel()
    return bounds, cls, columns.T


class _Compiler:
    """Thompson NFA over codepoint sets, with lookaround conditions on epsilon edges."""

    def __init__(self, regex: str, name: str, max_states: int) -> None:
        self.regex, self.name, self.max_states = regex, name, max_states
        self.nfa_cap = 20 * max_states
        self.eps: list[list[tuple[int, _Cond | None]]] = []
        self.cons: list[list[tuple[int, int]]] = []  # (set id, target)
        self.sets: list[_Intervals] = [_FULL]  # one set at least, so the partition is never empty
        self.set_ids: dict[tuple, int] = {}  # repeats compile the same items again and again
        self.behind: list[int] = []  # set ids that lookbehinds test
        self.lazy = False

    def error(self, why: str) -> GrammarError:
        return GrammarError(f"pattern {self.regex!r} {why}", terminal=self.name)

    def unsupported(self, why: str) -> GrammarError:
        return self.error(f"is not regular / not supported: {why}")

    def too_large(self) -> GrammarError:
        return self.error(f"is too large (NFA over {self.nfa_cap} states, max_states={self.max_states})")

    def new(self) -> int:
        if len(self.eps) >= self.nfa_cap:
            raise self.too_large()
        self.eps.append([])
        self.cons.append([])
        return len(self.eps) - 1

    def set_id(self, op: object, av: object, flags: int) -> int | None:
        """Id of the codepoint set a one-character item matches; None if it is not one character."""
        if op not in (C.ANY, C.LITERAL, C.NOT_LITERAL, C.IN):
            return None
        key = (op, repr(av), flags)
        if key not in self.set_ids:
            self.set_ids[key] = len(self.sets)
            self.sets.append(self.charset(op, av, flags))
        return self.set_ids[key]

    def charset(self, op: object, av: object, flags: int) -> _Intervals:
        if op is C.ANY:
            return _FULL if flags & re.DOTALL else _NO_NEWLINE
        if op is C.IN:
            negate = bool(av) and av[0][0] is C.NEGATE
            items = av[int(negate):]
        else:
            items, negate = [(C.LITERAL, av)], op is C.NOT_LITERAL
        ascii = bool(flags & re.ASCII)
        literals, categories = [np.empty((0, 2), np.int64)], [np.empty((0, 2), np.int64)]
        for kind, value in items:
            if kind is C.LITERAL or kind is C.RANGE:
                literals.append(np.array([(value, value) if kind is C.LITERAL else value]))
            elif kind is C.CATEGORY and value in _CATEGORIES:
                escape, complement = _CATEGORIES[value]
                category = _category(escape, ascii)
                categories.append(_negate(category) if complement else category)
            else:
                raise self.unsupported(f"character class item {kind} {value}")
        if flags & re.IGNORECASE:  # re tests \d\s\w on the lowercased character: no codepoint changes class
            literals = [_fold(_norm(np.concatenate(literals)), ascii)]
        iv = _norm(np.concatenate(literals + categories))
        return _negate(iv) if negate else iv

    def seq(self, items: list, state: int, flags: int, first: bool, last: bool) -> int:
        """Compile ``items`` from ``state``; return the exit state."""
        for i, (op, av) in enumerate(items):
            state = self.item(op, av, state, flags, first and i == 0, last and i == len(items) - 1)
        return state

    def item(self, op: object, av: object, state: int, flags: int, first: bool, last: bool) -> int:
        set_id = self.set_id(op, av, flags)
        if set_id is not None:
            target = self.new()
            self.cons[state].append((set_id, target))
            return target
        if op is C.SUBPATTERN:
            _, add, remove, body = av
            return self.seq(body, state, (flags | add) & ~remove, first, last)
        if op is C.BRANCH:
            end = self.new()
            for alternative in av[1]:
                start = self.new()
                self.eps[state].append((start, None))
                self.eps[self.seq(alternative, start, flags, first, last)].append((end, None))
            return end
        if op is C.MAX_REPEAT or op is C.MIN_REPEAT:
            low, high, body = av
            self.lazy |= op is C.MIN_REPEAT and low != high
            unbounded = high == C.MAXREPEAT
            copies, end = low + (1 if unbounded else high - low), self.new()
            for i in range(copies):
                size = len(self.eps)
                if i >= low and unbounded:  # the loop
                    loop = self.new()
                    self.eps[state].append((loop, None))
                    self.eps[self.seq(body, loop, flags, False, False)].append((loop, None))
                    state = loop
                else:  # a mandatory copy, or an optional one that may skip to the end
                    if i >= low:
                        self.eps[state].append((end, None))
                    state = self.seq(body, state, flags, False, False)
                if i == 0 and len(self.eps) + (len(self.eps) - size) * (copies - 1) > self.nfa_cap:
                    raise self.too_large()
            self.eps[state].append((end, None))
            return end
        if op is C.ASSERT or op is C.ASSERT_NOT:
            direction, body = av
            set_id = self.set_id(*body[0], flags) if len(body) == 1 else None
            if set_id is None:
                raise self.unsupported("a lookaround body must be one character or character class")
            target = self.new()
            if direction < 0:
                self.behind.append(set_id)
            self.eps[state].append((target, (direction < 0, set_id, op is C.ASSERT_NOT)))
            return target
        if op is C.AT:
            if (first and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING)) or (
                    last and av in (C.AT_END, C.AT_END_STRING)):
                return state
            raise self.unsupported(f"anchor {av} inside the terminal")
        raise self.unsupported(_UNSUPPORTED.get(op, str(op)))

    def determinise(self, final: int, member: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Subset construction over the character classes; lookahead constraints ride on threads."""
        n_classes = member.shape[1]
        masks, ends = [np.ones(n_classes, bool)], [True]  # constraint 0: none
        constraint_ids = {(masks[0].tobytes(), True): 0}

        def constrain(cid: int, set_id: int, negated: bool) -> int:
            mask = masks[cid] & (~member[set_id] if negated else member[set_id])
            end = ends[cid] and negated
            if not (end or mask.any()):
                return -1
            key = (mask.tobytes(), end)
            if key not in constraint_ids:
                constraint_ids[key] = len(masks)
                masks.append(mask)
                ends.append(end)
            return constraint_ids[key]

        def closure(seeds: list[int], prev: int | None) -> frozenset[tuple[int, int]]:
            seen = {(q, 0) for q in seeds}
            stack = list(seen)
            while stack:
                q, cid = stack.pop()
                for target, cond in self.eps[q]:
                    new_cid = cid
                    if cond is not None:
                        behind, set_id, negated = cond
                        if behind and (prev is not None and bool(member[set_id, prev])) == negated:
                            continue
                        if not behind:
                            new_cid = constrain(cid, set_id, negated)
                    if new_cid >= 0 and (target, new_cid) not in seen:
                        seen.add((target, new_cid))
                        stack.append((target, new_cid))
            return frozenset((q, cid) for q, cid in seen if self.cons[q] or q == final)

        behind_rows = member[self.behind]
        states = [closure([0], None)]
        index = {states[0]: 0}
        rows, accepting = [], []
        for dstate in states:
            accepting.append(any(q == final and ends[cid] for q, cid in dstate))
            edges = [(target, set_id, cid) for q, cid in dstate for set_id, target in self.cons[q]]
            row = np.full(n_classes, -1, np.int32)
            if edges:
                fire = member[[e[1] for e in edges]] & np.array([masks[e[2]] for e in edges])
                # Classes that fire the same edges and pass the same lookbehinds behave alike.
                packed = np.packbits(np.vstack([fire, behind_rows]), axis=0).T.tobytes()
                width = len(packed) // n_classes
                groups: dict[bytes, list[int]] = {}
                for c in range(n_classes):
                    groups.setdefault(packed[c * width:(c + 1) * width], []).append(c)
                for in_group in groups.values():
                    nxt = closure([edges[i][0] for i in np.flatnonzero(fire[:, in_group[0]])], in_group[0])
                    if not nxt:
                        continue
                    if nxt not in index:
                        if len(states) >= self.max_states:
                            raise self.error(f"needs more than max_states={self.max_states} DFA states")
                        index[nxt] = len(states)
                        states.append(nxt)
                    row[in_group] = index[nxt]
            rows.append(row)
        return np.array(rows, np.int32).reshape(-1, n_classes), np.array(accepting, bool)


def _minimise(trans: np.ndarray, accepting: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Hopcroft's algorithm on the DFA completed with a dead sink.

    Returns the minimal trimmed DFA (the states reachable from 0 that can reach acceptance,
    numbered breadth-first), or None if the language is empty."""
    n, k = trans.shape
    total = np.vstack([np.where(trans >= 0, trans, n), np.full((1, k), n)])
    preds = []  # per class: (sources sorted by target, offsets by target)
    for a in range(k):
        offsets = np.r_[0, np.cumsum(np.bincount(total[:, a], minlength=n + 1))]
        preds.append((np.argsort(total[:, a], kind="stable").tolist(), offsets.tolist()))
    acc = np.r_[accepting, False]
    block = acc.astype(np.int64).tolist()
    blocks = [set(np.flatnonzero(~acc).tolist()), set(np.flatnonzero(acc).tolist())]
    if not blocks[1]:
        return None
    work = {(int(len(blocks[1]) < len(blocks[0])), a) for a in range(k)}
    while work:
        b, a = work.pop()
        sources, offsets = preds[a]
        hit: dict[int, list[int]] = {}
        for t in blocks[b]:
            for s in sources[offsets[t]:offsets[t + 1]]:
                hit.setdefault(block[s], []).append(s)
        for y, moved in hit.items():
            if len(moved) == len(blocks[y]):
                continue
            new = len(blocks)
            blocks.append(set(moved))
            blocks[y].difference_update(moved)
            for s in moved:
                block[s] = new
            smaller = new if len(moved) <= len(blocks[y]) else y
            work.update((new, c) if (y, c) in work else (smaller, c) for c in range(k))
    block_of = np.array(block)
    rep = np.empty(len(blocks), np.int64)
    rep[block_of] = np.arange(n + 1)
    btrans = block_of[total[rep]]
    dead = int(block_of[n])
    if block_of[0] == dead:
        return None
    order, seen = [int(block_of[0])], {int(block_of[0]), dead}
    for b in order:
        for t in dict.fromkeys(btrans[b].tolist()):
            if t not in seen:
                seen.add(t)
                order.append(t)
    renumber = np.full(len(blocks), -1, np.int32)
    renumber[order] = np.arange(len(order))
    return renumber[btrans[order]], acc[rep[order]]


def _to_bytes(trans: np.ndarray, bounds: np.ndarray, cls: np.ndarray, comp: _Compiler) -> np.ndarray:
    """Expand codepoint-class transitions into UTF-8 byte transitions.

    Intermediate states are shared by content (remaining continuation bytes, codepoint offset
    ranges with their targets), which keeps the result minimal when the input DFA is."""
    rows: list[np.ndarray | None] = [None] * len(trans)
    nodes: dict[tuple, int] = {}

    def node(k: int, items: tuple[tuple[int, int, int], ...]) -> int:
        if k == 0:
            return items[0][2]
        if (k, items) not in nodes:
            if len(rows) >= comp.max_states:
                raise comp.error(f"needs more than max_states={comp.max_states} DFA states")
            nodes[k, items] = len(rows)
            rows.append(None)
            rows[nodes[k, items]] = fill(np.full(256, -1, np.int32), 0x80, k - 1, items)
        return nodes[k, items]

    def fill(row: np.ndarray, base: int, k: int, items: tuple) -> np.ndarray:
        """Byte ``base + x`` selects offsets [x * 64**k, (x + 1) * 64**k); k bytes follow."""
        span, parts = 64 ** k, {}
        for lo, hi, target in items:
            x0, x1 = lo // span, hi // span
            parts.setdefault(x0, []).append((lo - x0 * span, min(hi - x0 * span, span - 1), target))
            if x1 > x0:
                parts.setdefault(x1, []).append((0, hi - x1 * span, target))
            if x1 > x0 + 1:
                row[base + x0 + 1:base + x1] = node(k, ((0, span - 1, target),))
        for x, sub in parts.items():
            row[base + x] = node(k, tuple(sub))
        return row

    starts, lasts = bounds[:-1], bounds[1:] - 1
    for state, class_row in enumerate(trans):
        target = np.where(cls >= 0, class_row[cls], -1)
        cut = np.flatnonzero(np.diff(target)) + 1
        items = [(int(starts[a]), int(lasts[b - 1]), int(target[a]))
                 for a, b in zip(np.r_[0, cut], np.r_[cut, len(target)]) if target[a] >= 0]
        row = np.full(256, -1, np.int32)
        for length, (lead, first, last) in enumerate(_UTF8):
            fill(row, lead, length, tuple((max(lo, first), min(hi, last), t)
                                          for lo, hi, t in items if lo <= last and hi >= first))
        rows[state] = row
    return np.array(rows, np.int32)


def regex_to_dfa(regex: str, *, name: str = "?", max_states: int = 5000) -> ByteDFA:
    """Compile a terminal's regex (Python ``re`` syntax) into a minimal, trimmed byte DFA."""
    comp = _Compiler(regex, name, max_states)
    try:
        parsed = _parser.parse(regex)
    except re.error as e:
        raise comp.error(f"is not a valid regex: {e}") from None
    final = comp.seq(parsed, comp.new(), parsed.state.flags, True, True)
    bounds, cls, member = _partition(comp.sets)
    trans, accepting = comp.determinise(final, member)
    if accepting[0]:
        raise comp.error("matches the empty string")
    if comp.lazy:
        trans[accepting] = -1
    minimal = _minimise(trans, accepting)
    if minimal is None:
        raise comp.error("matches nothing")
    trans, accepting = minimal
    byte_trans = _to_bytes(trans, bounds, cls, comp)
    byte_accepting = np.zeros(len(byte_trans), bool)
    byte_accepting[:len(accepting)] = accepting
    return ByteDFA(byte_trans, byte_accepting)

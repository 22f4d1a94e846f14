"""Compile a Lark terminal's regex into a minimal DFA over the UTF-8 bytes of the text.

The input is what ``TerminalDef.pattern.to_regexp()`` returns: Python ``re`` syntax with inline
flags. It is parsed by ``re._parser`` into an NFA whose epsilon edges are ordered by ``re``'s
backtracking priority (left alternative first; a greedy loop prefers another round, a lazy one
the exit), determinised over codepoint classes, minimised, and expanded into UTF-8 bytes.

Two readings of a pattern (``regex_to_dfa(..., fullmatch=...)``):

* ``fullmatch=False`` (the lexer's): what ``re.match`` takes at a position, which is what
  Lark's lexer runs. A DFA state is the *ordered* list of live NFA threads; once a thread
  matches, the threads of lower priority are cut (they can no longer win), as in a
  leftmost-first (Perl/RE2) DFA. So the longest prefix of a text this DFA accepts is exactly
  ``re.match(pattern, text).end()``: ``/a|ab/`` takes ``a`` of ``ab``; ``/\\/\\*(.|\\n)*?\\*\\//``
  ends at the first ``*/``; a lazy quantifier is lazy only inside its own alternative.
* ``fullmatch=True``: the language ``{s : re.fullmatch(pattern, s)}``.

Semantics otherwise as ``re`` for str patterns: ``\\d \\w \\s`` are the Unicode classes (ASCII
under ``(?a)``), ``.`` excludes ``\\n`` unless ``(?s)``, ``(?i)`` folds case as ``re`` does;
surrogates are never matched. ``^``/``\\A`` at the very start and ``$``/``\\Z`` at the very end
are ignored (a terminal is matched where the lexer is, and ends where its match ends).

Lookarounds whose body is one character (class) are supported inside a terminal, and a
lookahead may also end it (``/[a-z]+(?=\\()/``): it then looks at the first character *after*
the terminal, which belongs to the next lexeme. ``ByteDFA.lookahead`` holds, per state, which
next byte (or the end of the text, column 256) completes such a conditional match; the next
character must be decided by its first byte (an ASCII class, or one containing all or none
of the characters of each UTF-8 lead byte: ``(?a)`` makes ``\\w`` so).

Refused with a ``GrammarError`` naming the terminal and the construct: a lookbehind at the
start (it would look at the text before the terminal), other anchors, longer lookarounds,
backreferences, conditionals, atomic groups, possessive quantifiers, a pattern that matches
the empty string or nothing, and automata over ``max_states`` states.
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
END = 256  # the lookahead column for "no next character"
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
    """Minimal trimmed DFA over bytes; state 0 starts, ``-1`` is the (implicit) dead state.

    ``accepting[q]``: the text read so far is a match. ``lookahead`` (``None`` when the pattern
    has no lookahead at its end) is bool ``[n_states, 257]``: ``lookahead[q, b]`` says that the
    text read so far is a match *if* the next byte is ``b`` (column 256: if the text ends here).
    """

    transitions: np.ndarray  # int32 [n_states, 256]
    accepting: np.ndarray  # bool [n_states]
    lookahead: np.ndarray | None = None  # bool [n_states, 257]

    def _run(self, data: bytes) -> int:
        state = 0
        for byte in data:
            state = int(self.transitions[state, byte])
            if state < 0:
                break
        return state

    def matches(self, data: bytes) -> bool:
        """Whether ``data`` is a match with nothing after it."""
        state = self._run(data)
        return state >= 0 and self._matched(state, END)

    def is_prefix(self, data: bytes) -> bool:
        """Whether ``data`` can be extended to a match."""
        return self._run(data) >= 0

    def match_end(self, data: bytes) -> int | None:
        """Length of the longest prefix of ``data`` that is a match (for the lexer's DFA: the
        end of ``re.match`` on ``data``), or None."""
        state, end = 0, None
        for i, byte in enumerate(data):
            if self._matched(state, byte):
                end = i
            state = int(self.transitions[state, byte])
            if state < 0:
                return end
        return len(data) if self._matched(state, END) else end

    def _matched(self, state: int, following: int) -> bool:
        return bool(self.accepting[state]) or (self.lookahead is not None and bool(self.lookahead[state, following]))


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
    """Split the non-surrogate codepoints into classes that no set cuts (nor a UTF-8 length
    boundary, so that all characters of a class have the same encoded length).

    Returns the bounds of elementary intervals ``[bounds[j], bounds[j+1])``, the class of each
    (-1 for surrogates) and the membership matrix bool [n_sets, n_classes]."""
    bounds = np.unique(np.concatenate([[0, 0x80, 0x800, 0xD800, 0xE000, 0x10000, _MAX_CP + 1]]
                                      + [iv[:, 0] for iv in sets] + [iv[:, 1] + 1 for iv in sets]))
    starts = bounds[:-1]
    member = np.array([_contains(iv, starts) for iv in sets])
    valid = (starts < 0xD800) | (starts >= 0xE000)
    length = np.searchsorted([0x80, 0x800, 0x10000], starts, side="right")
    columns, inverse = np.unique(np.vstack([member, length])[:, valid].T, axis=0, return_inverse=True)
    cls = np.full(len(starts), -1, dtype=np.int64)
    cls[valid] = inverse.ravel()
    return bounds, cls, columns.T[:-1].astype(bool)


class _Compiler:
    """Thompson NFA over codepoint sets. Every node either consumes one character (``cons``)
    or has epsilon edges in priority order (``eps``), with lookaround conditions on them."""

    def __init__(self, regex: str, name: str, max_states: int) -> None:
        self.regex, self.name, self.max_states = regex, name, max_states
        self.nfa_cap = 20 * max_states
        self.eps: list[list[tuple[int, _Cond | None]]] = []
        self.cons: list[tuple[int, int] | None] = []  # (set id, target)
        self.sets: list[_Intervals] = [_FULL]  # one set at least, so the partition is never empty
        self.set_ids: dict[tuple, int] = {}  # repeats compile the same items again and again

    def error(self, why: str) -> GrammarError:
        shown = self.regex if len(self.regex) <= 160 else f"{self.regex[:120]}...{self.regex[-30:]}"
        return GrammarError(f"pattern {shown!r} {why}", terminal=self.name)

    def unsupported(self, why: str) -> GrammarError:
        return self.error(f"is not supported: {why}")

    def too_large(self) -> GrammarError:
        return self.error(f"is too large (NFA over {self.nfa_cap} states, max_states={self.max_states})")

    def new(self) -> int:
        if len(self.eps) >= self.nfa_cap:
            raise self.too_large()
        self.eps.append([])
        self.cons.append(None)
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

    def seq(self, items: list, entry: int, flags: int, first: bool, last: bool) -> int:
        """Compile ``items`` from ``entry`` (a node without edges); return the exit node (likewise)."""
        for i, (op, av) in enumerate(items):
            entry = self.item(op, av, entry, flags, first and i == 0, last and i == len(items) - 1)
        return entry

    def link(self, node: int, *targets: int, cond: _Cond | None = None) -> None:
        self.eps[node].extend((t, cond) for t in targets)

    def item(self, op: object, av: object, entry: int, flags: int, first: bool, last: bool) -> int:
        set_id = self.set_id(op, av, flags)
        if set_id is not None:
            exit_ = self.new()
            self.cons[entry] = (set_id, exit_)
            return exit_
        if op is C.SUBPATTERN:
            _, add, remove, body = av
            return self.seq(body, entry, (flags | add) & ~remove, first, last)
        if op is C.BRANCH:
            end, starts = self.new(), []
            for alternative in av[1]:
                starts.append(self.new())
                self.link(self.seq(alternative, starts[-1], flags, first, last), end)
            self.link(entry, *starts)
            return end
        if op is C.MAX_REPEAT or op is C.MIN_REPEAT:
            return self.repeat(av, entry, flags, lazy=op is C.MIN_REPEAT)
        if op is C.ASSERT or op is C.ASSERT_NOT:
            direction, body = av
            set_id = self.set_id(*body[0], flags) if len(body) == 1 else None
            if set_id is None:
                raise self.unsupported("a lookaround whose body is not one character or character class")
            exit_ = self.new()
            self.link(entry, exit_, cond=(direction < 0, set_id, op is C.ASSERT_NOT))
            return exit_
        if op is C.AT:
            if (first and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING)) or (
                    last and av in (C.AT_END, C.AT_END_STRING)):
                exit_ = self.new()
                self.link(entry, exit_)
                return exit_
            raise self.unsupported(f"anchor {av} inside the terminal")
        raise self.unsupported(_UNSUPPORTED.get(op, str(op)))

    def repeat(self, av: tuple, entry: int, flags: int, lazy: bool) -> int:
        """``body{low,high}``: ``low`` copies, then optional ones (a loop when unbounded), each
        choice ordered as ``re`` tries it: greedy takes another copy first, lazy stops first."""
        low, high, body = av
        unbounded = high == C.MAXREPEAT
        copies = low + (1 if unbounded else high - low)
        end = self.new()
        for i in range(copies):
            size = len(self.eps)
            if i < low:
                entry = self.seq(body, entry, flags, False, False)
            else:
                start = self.new()
                self.link(entry, *((end, start) if lazy else (start, end)))
                exit_ = self.seq(body, start, flags, False, False)
                if unbounded:
                    self.link(exit_, entry)  # back to the choice: another round or the exit
                    break
                entry = exit_
            if i == 0 and len(self.eps) + (len(self.eps) - size) * (copies - 1) > self.nfa_cap:
                raise self.too_large()
        else:
            self.link(entry, end)
        return end


class _Determiniser:
    """Subset construction over character classes. A DFA state is a tuple of threads
    ``(nfa node, constraint id)``: ordered by priority for the lexer's reading (cut after an
    unconditional match), sorted for the language (all threads kept). A constraint is a
    pending lookahead: the classes the next character may be in, and whether the text may
    end instead."""

    def __init__(self, comp: _Compiler, final: int, member: np.ndarray, fullmatch: bool) -> None:
        self.comp, self.final, self.member, self.fullmatch = comp, final, member, fullmatch
        n_classes = member.shape[1]
        self.masks, self.ends = [np.ones(n_classes, bool)], [True]  # constraint 0: none
        self.constraint_ids = {(self.masks[0].tobytes(), True): 0}

    def constrain(self, cid: int, set_id: int, negated: bool) -> int:
        mask = self.masks[cid] & (~self.member[set_id] if negated else self.member[set_id])
        end = self.ends[cid] and negated
        if not (end or mask.any()):
            return -1
        key = (mask.tobytes(), end)
        if key not in self.constraint_ids:
            self.constraint_ids[key] = len(self.masks)
            self.masks.append(mask)
            self.ends.append(end)
        return self.constraint_ids[key]

    def closure(self, seeds: list[int], prev: int | None) -> tuple[tuple[int, int], ...]:
        """Threads reachable from ``seeds`` through epsilon edges, in priority order (depth
        first, seeds first to last); ``prev`` is the class of the character just read."""
        comp, final = self.comp, self.final
        seen: set[tuple[int, int]] = set()
        out: list[tuple[int, int]] = []
        stack = [(q, 0) for q in reversed(seeds)]
        while stack:
            q, cid = stack.pop()
            if (q, cid) in seen:
                continue
            seen.add((q, cid))
            if comp.cons[q] is not None or q == final:
                out.append((q, cid))
                if q == final and cid == 0 and not self.fullmatch:
                    break  # an unconditional match: every thread after it has lower priority
            for target, cond in reversed(comp.eps[q]):
                new_cid = cid
                if cond is not None:
                    behind, set_id, negated = cond
                    if behind:
                        if prev is None:
                            raise comp.unsupported("a lookbehind at the start of the terminal (it would look at "
                                                   "the text before the terminal)")
                        if bool(self.member[set_id, prev]) == negated:
                            continue
                    else:
                        new_cid = self.constrain(cid, set_id, negated)
                        if new_cid < 0:
                            continue
                stack.append((target, new_cid))
        return tuple(sorted(out)) if self.fullmatch else tuple(out)

    def run(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(transitions int32 [n, classes], accepting bool [n], lookahead bool [n, classes + 1])."""
        comp, final, member = self.comp, self.final, self.member
        n_classes = member.shape[1]
        states = [self.closure([0], None)]
        index = {states[0]: 0}
        rows, accepting, looks = [], [], []
        for dstate in states:
            look = np.zeros(n_classes + 1, bool)
            fire, actions = [], []  # per thread: the classes it fires on, and what it does
            for q, cid in dstate:
                if q == final:
                    if cid:
                        look[:n_classes] |= self.masks[cid]
                        look[n_classes] |= self.ends[cid]
                        fire.append(self.masks[cid])
                        actions.append(None)  # a conditional match, confirmed by these classes
                else:
                    set_id, target = comp.cons[q]
                    fire.append(member[set_id] & self.masks[cid])
                    actions.append(target)
            accepting.append(any(q == final and (cid == 0 or (self.fullmatch and self.ends[cid]))
                                 for q, cid in dstate))
            row = np.full(n_classes, -1, np.int32)
            if fire:
                fire_rows = np.array(fire)
                # classes that fire the same threads and pass the same lookbehinds behave alike
                packed = np.packbits(np.vstack([fire_rows, member]), axis=0).T.tobytes()
                width = len(packed) // n_classes
                groups: dict[bytes, list[int]] = {}
                for c in range(n_classes):
                    groups.setdefault(packed[c * width:(c + 1) * width], []).append(c)
                for in_group in groups.values():
                    seeds = []
                    for i in np.flatnonzero(fire_rows[:, in_group[0]]):
                        if actions[i] is None:
                            if not self.fullmatch:
                                break  # the conditional match is confirmed: lower threads are cut
                        else:
                            seeds.append(actions[i])
                    nxt = self.closure(seeds, in_group[0]) if seeds else ()
                    if not nxt:
                        continue
                    if nxt not in index:
                        if len(states) >= comp.max_states:
                            raise comp.error(f"needs more than max_states={comp.max_states} DFA states")
                        index[nxt] = len(states)
                        states.append(nxt)
                    row[in_group] = index[nxt]
            rows.append(row)
            looks.append(look if not self.fullmatch else np.zeros(n_classes + 1, bool))
        return (np.array(rows, np.int32).reshape(-1, n_classes), np.array(accepting, bool),
                np.array(looks, bool).reshape(-1, n_classes + 1))


def _minimise(trans: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Hopcroft's algorithm on the DFA completed with a dead sink; ``labels`` (int [n], 0 for
    states that match nothing) are the states' outputs.

    Returns (transitions, representative state of each new state) of the minimal trimmed DFA
    (the states reachable from 0 that can reach a labelled state, numbered breadth-first),
    or None if the language is empty."""
    n, k = trans.shape
    total = np.vstack([np.where(trans >= 0, trans, n), np.full((1, k), n)])
    preds = []  # per class: (sources sorted by target, offsets by target)
    for a in range(k):
        offsets = np.r_[0, np.cumsum(np.bincount(total[:, a], minlength=n + 1))]
        preds.append((np.argsort(total[:, a], kind="stable").tolist(), offsets.tolist()))
    label = np.r_[labels, 0]
    _, block_arr = np.unique(label, return_inverse=True)
    block = block_arr.ravel().tolist()
    blocks: list[set[int]] = [set() for _ in range(max(block) + 1)]
    for s, b in enumerate(block):
        blocks[b].add(s)
    if not label.any():
        return None
    work = {(b, a) for b in range(len(blocks)) for a in range(k)}
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
    return renumber[btrans[order]], rep[order]


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


def _lookahead_bytes(look: np.ndarray, bounds: np.ndarray, cls: np.ndarray, comp: _Compiler) -> np.ndarray:
    """Per-class lookahead rows -> per-byte rows: byte b confirms iff every character whose
    UTF-8 encoding starts with b is in a confirming class (refused if only some are)."""
    out = np.zeros((len(look), 257), bool)
    out[:, END] = look[:, -1]
    starts = bounds[:-1]
    for b in range(256):
        if b < 0x80:
            lo, hi = b, b
        elif 0xC2 <= b < 0xE0:
            lo = (b - 0xC0) << 6
            hi = lo + 0x3F
        elif 0xE0 <= b < 0xF0:
            lo = (b - 0xE0) << 12
            hi = lo + 0xFFF
        elif 0xF0 <= b < 0xF5:
            lo = (b - 0xF0) << 18
            hi = min(lo + 0x3FFFF, _MAX_CP)
        else:
            continue  # never the first byte of a character
        lo = max(lo, {0xE0: 0x800, 0xF0: 0x10000}.get(b, lo))
        first, last = np.searchsorted(starts, lo, side="right") - 1, np.searchsorted(starts, hi, side="right")
        classes = np.unique(cls[first:last])
        classes = classes[classes >= 0]
        if not len(classes):
            continue
        cols = look[:, classes]
        if (cols.any(axis=1) != cols.all(axis=1)).any():
            raise comp.unsupported(
                f"a lookahead at the end whose next character is not decided by its first byte (0x{b:02x}); "
                "use an ASCII class, or (?a) for \\w \\d \\s")
        out[:, b] = cols[:, 0]
    return out


@functools.lru_cache(maxsize=4096)
def regex_to_dfa(regex: str, *, name: str = "?", max_states: int = 5000, fullmatch: bool = False) -> ByteDFA:
    """Compile a terminal's regex (Python ``re`` syntax) into a minimal, trimmed byte DFA:
    the lexer's reading (``re.match``) by default, the language with ``fullmatch=True``."""
    comp = _Compiler(regex, name, max_states)
    try:
        parsed = _parser.parse(regex)
    except re.error as e:
        raise comp.error(f"is not a valid regex: {e}") from None
    except RecursionError:
        raise comp.error("is nested too deeply") from None
    final = comp.seq(parsed, comp.new(), parsed.state.flags, True, True)
    bounds, cls, member = _partition(comp.sets)
    trans, accepting, look = _Determiniser(comp, final, member, fullmatch).run()
    if (accepting[0] or look[0].any()) and not fullmatch:
        raise comp.error("matches the empty string")
    labels = np.unique(np.column_stack([accepting, look]), axis=0, return_inverse=True)[1].ravel()
    labels = np.where(accepting | look.any(axis=1), labels + 1, 0)
    minimal = _minimise(trans, labels)
    if minimal is None:
        if fullmatch:  # a language may be empty: /a(?=b)/ never matches a whole text
            return ByteDFA(np.full((1, 256), -1, np.int32), np.zeros(1, bool))
        raise comp.error("matches nothing")
    trans, rep = minimal
    byte_trans = _to_bytes(trans, bounds, cls, comp)
    n = len(byte_trans)
    byte_accepting = np.zeros(n, bool)
    byte_accepting[:len(rep)] = accepting[rep]
    lookahead = None
    if look[rep].any():
        lookahead = np.zeros((n, 257), bool)
        lookahead[:len(rep)] = _lookahead_bytes(look[rep], bounds, cls, comp)
    for array in (byte_trans, byte_accepting, lookahead):
        if array is not None:
            array.flags.writeable = False
    return ByteDFA(byte_trans, byte_accepting, lookahead)


def literal_dfa(text: bytes) -> ByteDFA:
    """The DFA of one string literal (what a Lark string terminal without flags matches)."""
    n = len(text)
    trans = np.full((n + 1, 256), -1, np.int32)
    trans[np.arange(n), np.frombuffer(text, np.uint8)] = np.arange(1, n + 1)
    accepting = np.zeros(n + 1, bool)
    accepting[n] = True
    trans.flags.writeable = accepting.flags.writeable = False
    return ByteDFA(trans, accepting)

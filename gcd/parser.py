"""Canonical LR(1) parse tables (conflicts kept) and a GLR recogniser over them.

A parser *configuration* is the set of LR stacks the input so far allows, kept as a
graph-structured stack: its top nodes, one per LR state, each node holding its state and
the nodes below it. For a conflict-free grammar a configuration is a single stack and this
is plain LR(1) parsing; where the table has conflicts, every stack is kept, with shared
structure, so any context-free grammar is recognised in polynomial time. Nodes are
interned (equal structure, same object) and immutable, so configurations are cheap to
hash, share and use as cache keys. A node below another that it *covers* (same state, and
every stack under the other is under it too) is dropped: the set of stacks is unchanged,
and ambiguous grammars such as ``e: e e | NUM`` keep a configuration of constant size.

Every question a ``Parser`` answers is a pure function of the configuration and returns,
beside its answer, the lowest stack height whose state it read (``floor``): the answer
depends only on the part of the stack above it, which is what the token-level automata key
their mask cache on.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

from lark.grammar import Rule

from gcd.cache import LRU

END = "$END"
Config = frozenset  # frozenset[Node]: the top nodes; empty means dead
COVER_DEPTH = 64    # how deep ``_covers`` compares two stacks before giving up (exact either way)


@dataclass(frozen=True)
class ParseTable:
    """LR automaton over terminal classes: ``actions[state][class]`` is a tuple of actions,
    each a shift (target state, >= 0) or a reduce (``-(rule + 1)``); ``gotos[state][nonterminal]``.

    Terminals that the rules cannot tell apart (each rule using one, with it swapped for the
    other, is also a rule: the alternatives of ``kw: "if" | "else" | ...``) share a class, so
    a grammar with thousands of keywords has a small table. ``terminal_class[t]`` is the
    class of terminal t; the last class is $END."""

    terminal_names: tuple[str, ...]       # terminal index -> name
    terminal_class: tuple[int, ...]       # terminal index -> class index
    class_names: tuple[str, ...]          # class index -> a terminal of it; the last one is $END
    actions: tuple[dict[int, tuple[int, ...]], ...]
    gotos: tuple[dict[str, int], ...]
    rule_len: tuple[int, ...]
    rule_lhs: tuple[str, ...]
    start_state: int
    conflicts: tuple[str, ...]            # human-readable, empty for LALR(1) grammars

    @property
    def end(self) -> int:
        """The class of the end of the input."""
        return len(self.class_names) - 1

    @property
    def is_lalr(self) -> bool:
        return not self.conflicts

    def to_json(self) -> dict:
        return {"terminal_names": list(self.terminal_names), "terminal_class": list(self.terminal_class),
                "class_names": list(self.class_names),
                "actions": [{str(t): list(a) for t, a in acts.items()} for acts in self.actions],
                "gotos": [dict(g) for g in self.gotos], "rule_len": list(self.rule_len),
                "rule_lhs": list(self.rule_lhs), "start_state": self.start_state, "conflicts": list(self.conflicts)}

    @classmethod
    def from_json(cls, data: dict) -> "ParseTable":
        return cls(tuple(data["terminal_names"]), tuple(data["terminal_class"]), tuple(data["class_names"]),
                   tuple({int(t): tuple(a) for t, a in acts.items()} for acts in data["actions"]),
                   tuple(dict(g) for g in data["gotos"]), tuple(data["rule_len"]), tuple(data["rule_lhs"]),
                   int(data["start_state"]), tuple(data["conflicts"]))


def terminal_classes(rules: list[Rule], terminal_names: list[str]) -> list[int]:
    """For each terminal, the index of the first terminal the rules cannot tell it apart from:
    its *signature* (each rule using it, with one of its occurrences replaced by a
    placeholder) is the same. Then replacing any one occurrence of one terminal by the other
    in a rule gives a rule, so every mix of the two does: one class can stand for both.
    (``pal: "a" pal "a" | "b" pal "b"`` is symmetric in a and b, but "a" pal "b" is no rule.)"""
    symbols = {n: set() for n in terminal_names}
    for r in rules:
        names = tuple((s.is_term, s.name) for s in r.expansion)
        for i, (is_term, name) in enumerate(names):
            if is_term:
                symbols[name].add((r.origin.name, names[:i] + (None,) + names[i + 1:]))
    first: dict[frozenset, int] = {}
    return [first.setdefault(frozenset(symbols[n]), i) for i, n in enumerate(terminal_names)]


def build_parse_table(rules: list[Rule], terminal_names: list[str], start: str) -> ParseTable:
    """Canonical LR(1) table for ``rules`` (Lark rules) over terminal classes, keeping every
    conflicting action. Its ``conflicts`` are those of the LALR(1) table (these states merged
    by their LR(0) cores): the ones Lark's LALR parser meets.

    Canonical states are exact: a terminal has an action in the state on top of a stack iff
    the input so far can go on with it (every nonterminal deriving some text), so the parser
    answers "what can come next" from the top state alone, where LALR(1) states, merged,
    reduce on lookaheads that fail further down the stack."""
    representative = terminal_classes(rules, terminal_names)
    reps = sorted(set(representative))
    class_of = {terminal_names[r]: c for c, r in enumerate(reps)}
    terminal_class = tuple(class_of[terminal_names[r]] for r in representative)
    by_name = {n: terminal_class[i] for i, n in enumerate(terminal_names)}
    names = [terminal_names[r] for r in reps] + [END]
    end = len(names) - 1
    # rule 0 is the root, start -> the rules' start symbol; symbols are class indices or names
    lhs: list[str] = ["$root_" + start]
    bodies: list[tuple] = [(start,)]
    seen = set()
    for r in rules:
        body = tuple(by_name[s.name] if s.is_term else s.name for s in r.expansion)
        if (r.origin.name, body) not in seen:
            seen.add((r.origin.name, body))
            lhs.append(r.origin.name)
            bodies.append(body)
    first, nullable = _first_sets(lhs, bodies)
    of_lhs: dict[str, list[int]] = {}
    for i, name in enumerate(lhs):
        of_lhs.setdefault(name, []).append(i)
    # for each item (rule, dot) before a nonterminal: it, the FIRST of what follows it, and
    # whether what follows can be empty (then the item's own lookaheads follow it too)
    before = {(r, d): (sym, *_first_of(body[d + 1:], first, nullable))
              for r, body in enumerate(bodies) for d, sym in enumerate(body) if isinstance(sym, str)}

    def closure(kernel: dict) -> dict:
        items, work = dict(kernel), list(kernel)
        while work:
            item = work.pop()
            hit = before.get(item)
            if hit is None:
                continue
            sym, la, empty = hit
            if empty:
                la |= items[item]
            for r in of_lhs.get(sym, ()):
                old = items.get((r, 0), 0)
                if old | la != old:
                    items[(r, 0)] = old | la
                    work.append((r, 0))
        return items

    kernels = [frozenset({((0, 0), 1 << end)})]
    index = {kernels[0]: 0}
    actions, gotos = [], []
    cores: dict[frozenset, dict[int, set]] = {}   # LR(0) core -> class -> {"shift"} | reduced rules
    for state, kernel in enumerate(kernels):
        items = closure(dict(kernel))
        moves: dict[object, dict] = {}
        acts: dict[int, list[int]] = {}
        merged = cores.setdefault(frozenset(item for item, _ in kernel), {})
        for (r, d), la in items.items():
            if d < len(bodies[r]):
                target = moves.setdefault(bodies[r][d], {})
                target[(r, d + 1)] = target.get((r, d + 1), 0) | la
            elif r == 0:
                acts.setdefault(end, []).append(state)   # accept: $END is shifted onto this state
                merged.setdefault(end, set()).add("shift")
            else:
                for c in bit_indices(la):
                    acts.setdefault(c, []).append(-r)   # reduce rule r - 1 (rule 0 is the root)
                    merged.setdefault(c, set()).add(r)
        gos: dict[str, int] = {}
        for sym in sorted(moves, key=lambda x: (isinstance(x, str), x if isinstance(x, int) else 0, str(x))):
            key = frozenset(moves[sym].items())
            target = index.setdefault(key, len(kernels))
            if target == len(kernels):
                kernels.append(key)
            if isinstance(sym, int):
                acts.setdefault(sym, []).append(target)
                merged.setdefault(sym, set()).add("shift")
            else:
                gos[sym] = target
        actions.append({c: tuple(sorted(a, key=lambda x: (x < 0, abs(x)))) for c, a in sorted(acts.items())})
        gotos.append(gos)
    conflicts = []
    for merged in cores.values():
        for c, kinds in sorted(merged.items()):
            if len(kinds) > 1:
                reduces = sorted(f"reduce {lhs[k]} -> {_body_text(bodies[k], names)}" for k in kinds if k != "shift")
                conflicts.append(f"on {names[c]}: " + " / ".join(["shift"] * ("shift" in kinds) + reduces))
    return ParseTable(
        terminal_names=tuple(terminal_names), terminal_class=terminal_class, class_names=tuple(names),
        actions=tuple(actions), gotos=tuple(gotos),
        rule_len=tuple(len(b) for b in bodies[1:]), rule_lhs=tuple(lhs[1:]),
        start_state=0, conflicts=tuple(conflicts))


def _first_sets(lhs: list[str], bodies: list[tuple]) -> tuple[dict[str, int], set[str]]:
    """FIRST (a class mask) of each nonterminal, and the nonterminals that derive the empty text."""
    first = {name: 0 for name in lhs}
    nullable: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, body in zip(lhs, bodies):
            f, empty = _first_of(body, first, nullable)
            if f | first[name] != first[name]:
                first[name], changed = f | first[name], True
            if empty and name not in nullable:
                nullable.add(name)
                changed = True
    return first, nullable


def _first_of(symbols: tuple, first: dict[str, int], nullable: set[str]) -> tuple[int, bool]:
    """FIRST of a sequence of symbols (a class mask), and whether it can derive the empty text."""
    f = 0
    for x in symbols:
        if isinstance(x, int):
            return f | 1 << x, False
        f |= first.get(x, 0)
        if x not in nullable:
            return f, False
    return f, True


def bit_indices(mask: int):
    """The indices of the set bits of ``mask``, ascending."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _body_text(body: tuple, names: list[str]) -> str:
    return " ".join(names[x] if isinstance(x, int) else x for x in body) or "<empty>"


class Node:
    """A node of the graph-structured stack: an LR state over the nodes below it.
    ``height`` is the longest path down to the bottom (0 there)."""

    __slots__ = ("state", "parents", "height", "__weakref__")

    def __init__(self, state: int, parents: tuple["Node", ...]) -> None:
        self.state, self.parents = state, parents
        self.height = (parents[0].height if len(parents) == 1 else max([p.height for p in parents])) + 1 if parents else 0

    def __repr__(self) -> str:
        return f"Node({self.state}, h={self.height}, {len(self.parents)} below)"


def top_height(config: Config) -> int:
    return max([node.height for node in config])


class Parser:
    """GLR recogniser over a ``ParseTable``; memoised, safe to use from several threads."""

    def __init__(self, table: ParseTable, cache_items: int = 100_000) -> None:
        self.table = table
        self.end = len(table.terminal_names)   # the terminal index that stands for the end of the input
        self._nodes: dict[tuple, weakref.ref] = {}   # (state, parents) -> its node while one lives
        self._advance = LRU(cache_items)     # (config, class) -> (config, floor)
        self._next = LRU(cache_items)        # config of several stacks -> (terminal mask, floor)
        self._cover = LRU(cache_items)       # (node, node) -> bool
        self._expanded = LRU(cache_items)    # class mask -> terminal mask
        self._class = table.terminal_class
        self._class_terminals = [0] * len(table.class_names)
        for t, c in enumerate(self._class):
            self._class_terminals[c] |= 1 << t
        self._class_terminals[table.end] = 1 << self.end
        self.initial: Config = frozenset([self._node(table.start_state, ())])
        self._takes = [sum(1 << c for c in acts) for acts in table.actions]   # per state: classes with an action
        terminals = {mask: self._terminals(mask) for mask in set(self._takes)}
        self._state_terminals = [terminals[mask] for mask in self._takes]   # and their terminals

    def __getstate__(self) -> dict:
        return {"table": self.table}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["table"])

    def _node(self, state: int, parents) -> Node:
        """The interned node for ``state`` over ``parents`` (an iterable of nodes). Threads that
        race may each make one: equal nodes give equal answers, only the sharing is lost."""
        parents = tuple(parents)
        key = (state, parents[0]) if len(parents) == 1 else (state, frozenset(parents))
        nodes = self._nodes
        ref = nodes.get(key)
        node = ref() if ref is not None else None
        if node is None:
            node = Node(state, parents)
            nodes[key] = weakref.ref(node, lambda r, key=key: nodes.get(key) is r and nodes.pop(key, None))
        return node

    # -- questions ----------------------------------------------------------------------
    def advance(self, config: Config, terminal: int) -> tuple[Config, int]:
        """The configuration after ``terminal`` (reductions, then the shift; empty if it is
        rejected) and the floor read."""
        key = (config, self._class[terminal])
        hit = self._advance.get(key)
        if hit is None:
            hit = self._compute_advance(config, key[1])
            self._advance.put(key, hit)
        return hit

    def next_terminals(self, config: Config) -> tuple[int, int]:
        """Bitmask of the terminals that ``config`` can take next (bit ``self.end``: the end of
        the input), and the floor read: the top states alone answer (see ``build_parse_table``)."""
        if len(config) == 1:   # one top state: its own set, no cache needed
            node = next(iter(config))
            return self._state_terminals[node.state], node.height
        hit = self._next.get(config)
        if hit is None:
            mask = 0
            for node in config:
                mask |= self._takes[node.state]
            hit = (self._terminals(mask), min([node.height for node in config]))
            self._next.put(config, hit)
        return hit

    def terminal_sets(self) -> list[int]:
        """The distinct sets of terminals (bitmasks) a single stack can take next: one per
        state, whatever lies below it."""
        return list(dict.fromkeys(self._state_terminals))

    def is_accepting(self, config: Config) -> tuple[bool, int]:
        """Can the input end here? And the floor read (the top states alone)."""
        end = 1 << self.table.end
        return any(self._takes[node.state] & end for node in config), min([node.height for node in config])

    def _terminals(self, classes: int) -> int:
        """The terminals of a class mask."""
        out = self._expanded.get(classes)
        if out is None:
            out, c, rest = 0, 0, classes
            while rest:
                if rest & 1:
                    out |= self._class_terminals[c]
                rest >>= 1
                c += 1
            self._expanded.put(classes, out)
        return out

    # -- the work -------------------------------------------------------------------------
    def _compute_advance(self, config: Config, terminal: int) -> tuple[Config, int]:
        """``advance`` for a terminal class."""
        if len(config) == 1:
            hit = self._advance_one_stack(next(iter(config)), terminal)
            if hit is not None:
                return hit
        actions, gotos, rule_len, rule_lhs = (self.table.actions, self.table.gotos,
                                              self.table.rule_len, self.table.rule_lhs)
        floor = min([node.height for node in config])
        # the top level: state -> the nodes below it (grown by reductions), and the original node
        level: dict[int, list[Node]] = {node.state: list(node.parents) for node in config}
        original = {node.state: node for node in config}
        work = [(node.state, None) for node in config]   # (state, the one new node below it or None: all)
        while work:
            state, via = work.pop()
            for a in actions[state].get(terminal, ()):
                if a >= 0:
                    continue
                r = -a - 1
                k, lhs = rule_len[r], rule_lhs[r]
                if k == 0:  # only the root's empty rule: the stack does not move
                    ends = [self._level_node(state, level, original)]
                else:
                    firsts = level[state] if via is None else [via]
                    ends = [u for p in firsts for u in _below(p, k - 1)]
                for u in ends:
                    if u.height < floor:
                        floor = u.height
                    target = gotos[u.state][lhs]
                    below = level.get(target)
                    if below is None:
                        level[target] = [u]
                        work.append((target, u))
                    elif self._add_below(below, u):
                        work.append((target, u))
        shifted: dict[int, list[Node]] = {}
        for state in level:
            for a in actions[state].get(terminal, ()):
                if a >= 0:
                    shifted.setdefault(a, []).append(self._level_node(state, level, original))
        return frozenset(self._node(target, below) for target, below in shifted.items()), floor

    def _advance_one_stack(self, node: Node, terminal: int) -> tuple[Config, int] | None:
        """Plain LR parsing of one terminal on one stack, while every step has one action and
        every node popped one node below it; None where that fails (then the general parser
        runs). The states pushed by reductions are interned only if they stay on the stack."""
        actions, gotos, rule_len, rule_lhs = (self.table.actions, self.table.gotos,
                                              self.table.rule_len, self.table.rule_lhs)
        floor, base, pushed, state = node.height, node, [], node.state   # pushed: states above base
        while True:
            options = actions[state].get(terminal)
            if not options:
                return frozenset(), floor
            if len(options) > 1:
                return None
            a = options[0]
            if a >= 0:
                for s in pushed:
                    base = self._node(s, (base,))
                return frozenset([self._node(a, (base,))]), floor
            k = rule_len[-a - 1]
            if k <= len(pushed):
                del pushed[len(pushed) - k:]
            else:
                for _ in range(k - len(pushed)):
                    if len(base.parents) != 1:
                        return None
                    base = base.parents[0]
                pushed.clear()
                if base.height < floor:
                    floor = base.height
            state = gotos[pushed[-1] if pushed else base.state][rule_lhs[-a - 1]]
            pushed.append(state)

    def _level_node(self, state: int, level: dict, original: dict) -> Node:
        node = original.get(state)
        if node is not None and len(node.parents) == len(level[state]):
            return node
        return self._node(state, level[state])

    def _add_below(self, below: list[Node], u: Node) -> bool:
        """Add ``u`` to the nodes under one top node unless one of them covers it; drop those
        it covers. True if it was added."""
        for v in below:
            if v is u or (v.state == u.state and self._covers(v, u)):
                return False
        below[:] = [v for v in below if not (v.state == u.state and self._covers(u, v))]
        below.append(u)
        return True

    def _covers(self, v: Node, u: Node, depth: int = 0) -> bool:
        """Every stack through ``u`` also runs through ``v`` (same states down to the bottom):
        a simulation, compared to ``COVER_DEPTH`` levels (False beyond: never wrong, only
        less sharing)."""
        if v is u:
            return True
        if v.state != u.state or depth > COVER_DEPTH or (u.parents and not v.parents):
            return False
        key = (v, u)
        hit = self._cover.get(key)
        if hit is None:
            hit = all(any(self._covers(q, p, depth + 1) for q in v.parents if q.state == p.state)
                      for p in u.parents)
            self._cover.put(key, hit)
        return hit


def _below(node: Node, k: int):
    """The nodes ``k`` edges below ``node``."""
    if k == 0:
        return (node,)
    while k and len(node.parents) == 1:
        node, k = node.parents[0], k - 1
    if k == 0:
        return (node,)
    frontier = {node}
    for _ in range(k):
        frontier = {p for n in frontier for p in n.parents}
    return frontier

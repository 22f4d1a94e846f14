"""LR parse tables (LALR(1) lookaheads, conflicts kept) and a GLR-style recogniser over them.

For a conflict-free grammar every configuration holds exactly one stack, so this is plain
LALR(1) parsing; where the table has conflicts, a configuration holds every stack the
input allows (a set of LR stacks), so any context-free grammar is recognised exactly.
Stacks are persistent linked nodes, interned so that equal stacks are the same object:
a configuration is a frozenset of nodes, cheap to hash, copy and use as a cache key.
"""
from __future__ import annotations

from dataclasses import dataclass

from lark.common import ParserConf
from lark.grammar import Rule
from lark.parsers.lalr_analysis import LALR_Analyzer

from gcd.errors import ParserLimitError

END = "$END"
Config = frozenset  # frozenset[StackNode]; empty means dead
MAX_REDUCTIONS = 400


@dataclass(frozen=True)
class ParseTable:
    """LR automaton: ``actions[state][terminal]`` is a tuple of actions, each a shift
    (target state, >= 0) or a reduce (``-(rule + 1)``); ``gotos[state][nonterminal]``."""

    terminal_names: tuple[str, ...]       # terminal index -> name; the last one is $END
    actions: tuple[dict[int, tuple[int, ...]], ...]
    gotos: tuple[dict[str, int], ...]
    rule_len: tuple[int, ...]
    rule_lhs: tuple[str, ...]
    start_state: int
    conflicts: tuple[str, ...]            # human-readable, empty for LALR(1) grammars

    @property
    def end(self) -> int:
        return len(self.terminal_names) - 1

    @property
    def is_lalr(self) -> bool:
        return not self.conflicts

def build_parse_table(rules: list[Rule], terminal_names: list[str], start: str) -> ParseTable:
    """LALR(1) table for ``rules`` (Lark rules), keeping every conflicting action."""
    analyzer = LALR_Analyzer(ParserConf(rules, {}, [start]))
    analyzer.compute_lr0_states()
    analyzer.compute_reads_relations()
    analyzer.compute_includes_lookback()
    analyzer.compute_lookaheads()

    names = list(terminal_names) + [END]
    term_index = {n: i for i, n in enumerate(names)}
    root = analyzer.lr0_start_states[start]
    root_name = "$root_" + start
    order, index = [root], {root: 0}
    for itemset in order:  # BFS numbering: deterministic across processes
        for sym in sorted(itemset.transitions, key=lambda s: (not s.is_term, s.name)):
            nxt = itemset.transitions[sym]
            if nxt not in index:
                index[nxt] = len(order)
                order.append(nxt)

    rule_index: dict[Rule, int] = {}
    rule_list: list[Rule] = []
    actions, gotos, conflicts = [], [], []
    for itemset in order:
        acts: dict[int, list[int]] = {}
        gos: dict[str, int] = {}
        for sym, nxt in itemset.transitions.items():
            if sym.is_term:
                acts.setdefault(term_index[sym.name], []).append(index[nxt])
            else:
                gos[str(sym.name)] = index[nxt]
        if any(rp.is_satisfied and rp.rule.origin.name == root_name for rp in itemset.closure):
            acts.setdefault(term_index[END], []).append(index[itemset])  # accept: shift $END
        for la, las_rules in itemset.lookaheads.items():
            for rule in sorted(las_rules, key=str):
                if rule not in rule_index:
                    rule_index[rule] = len(rule_list)
                    rule_list.append(rule)
                r = rule_index[rule]
                acts.setdefault(term_index[la.name], []).append(-(r + 1))
        for t, a in acts.items():
            if len(a) > 1:
                kinds = ["shift" if x >= 0 else f"reduce {_rule_text(rule_list[-x - 1])}" for x in a]
                conflicts.append(f"on {names[t]}: " + " / ".join(kinds))
        actions.append({t: tuple(a) for t, a in acts.items()})
        gotos.append(gos)
    return ParseTable(
        terminal_names=tuple(names), actions=tuple(actions), gotos=tuple(gotos),
        rule_len=tuple(len(r.expansion) for r in rule_list),
        rule_lhs=tuple(str(r.origin.name) for r in rule_list),
        start_state=0, conflicts=tuple(conflicts))


def _rule_text(rule: Rule) -> str:
    return f"{rule.origin.name} -> {' '.join(s.name for s in rule.expansion) or '<empty>'}"


class StackNode:
    """One LR stack, as its top state, the node below it and its height (bottom = 0)."""

    __slots__ = ("state", "parent", "height")

    def __init__(self, state: int, parent: "StackNode | None") -> None:
        self.state, self.parent = state, parent
        self.height = 0 if parent is None else parent.height + 1


def top_height(config: Config) -> int:
    return max(node.height for node in config)


class Parser:
    """GLR recogniser over a ``ParseTable`` with memoised transitions.

    ``low`` is a low-water mark: every call lowers it to the smallest stack height whose
    state it read (memoised calls included), so a caller can learn how much of a stack a
    computation depended on (``TokenAutomata`` keys its mask cache on just that part).
    ``max_stacks`` bounds the work of one step; a grammar so ambiguous that one terminal
    produces more stacks raises ``ParserLimitError`` rather than hanging.
    """

    def __init__(self, table: ParseTable, max_stacks: int = 20000) -> None:
        self.table = table
        self.max_stacks = max_stacks
        self.low = 0
        self._nodes: dict[tuple[int, StackNode | None], StackNode] = {}
        self._feed: dict[tuple[Config, int], tuple[Config, int]] = {}
        self._shiftable: dict[Config, tuple[int, int]] = {}
        self.initial: Config = frozenset([self._push(None, table.start_state)])
        # per state: terminals with an action, those it shifts, and for each rule it reduces,
        # the terminals that do
        self._expected: list[int] = []
        self._shifts: list[int] = []
        self._reduces: list[list[tuple[int, int]]] = []
        for acts in table.actions:
            self._expected.append(sum(1 << t for t in acts))
            shifts, reduces = 0, {}
            for t, options in acts.items():
                for a in options:
                    if a >= 0:
                        shifts |= 1 << t
                    else:
                        reduces[-a - 1] = reduces.get(-a - 1, 0) | 1 << t
            self._shifts.append(shifts)
            self._reduces.append(list(reduces.items()))

    def __getstate__(self) -> dict:
        return {"table": self.table, "max_stacks": self.max_stacks}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["table"], state["max_stacks"])

    def _push(self, parent: StackNode | None, state: int) -> StackNode:
        key = (state, parent)
        node = self._nodes.get(key)
        if node is None:
            node = self._nodes[key] = StackNode(state, parent)
        return node

    def feed(self, config: Config, terminal: int) -> Config:
        """The configuration after shifting ``terminal`` (reductions first); empty if rejected."""
        key = (config, terminal)
        hit = self._feed.get(key)
        if hit is None:
            hit = self._feed[key] = self._compute_feed(config, terminal)
        if hit[1] < self.low:
            self.low = hit[1]
        return hit[0]

    def _compute_feed(self, config: Config, terminal: int) -> tuple[Config, int]:
        actions, gotos, rule_len, rule_lhs = self.table.actions, self.table.gotos, self.table.rule_len, self.table.rule_lhs
        shifted: set[StackNode] = set()
        work = list(config)
        seen = set(work)
        low = min(node.height for node in config)
        while work:
            node = work.pop()
            for a in actions[node.state].get(terminal, ()):
                if a >= 0:
                    shifted.add(self._push(node, a))
                    continue
                r = -a - 1
                base = node
                for _ in range(rule_len[r]):
                    base = base.parent
                if base.height < low:
                    low = base.height
                nxt = self._push(base, gotos[base.state][rule_lhs[r]])
                if nxt not in seen:
                    seen.add(nxt)
                    work.append(nxt)
                    if len(seen) > self.max_stacks:
                        raise ParserLimitError(
                            f"more than {self.max_stacks} parse stacks for one terminal: the grammar is too "
                            "ambiguous here (a cycle or hidden left recursion through empty rules?)")
        return frozenset(shifted), low

    def shiftable(self, config: Config) -> int:
        """Bitmask of the terminals (``$END`` included) that ``config`` can take next."""
        hit = self._shiftable.get(config)
        if hit is None:
            saved, self.low = self.low, min(node.height for node in config)
            mask = 0
            for node in config:
                mask |= self._takes(node, self._expected[node.state] & ~mask, 0, set())
            hit = self._shiftable[config] = (mask, self.low)
            self.low = saved
        if hit[1] < self.low:
            self.low = hit[1]
        return hit[0]

    def _takes(self, node: StackNode, candidates: int, depth: int, visiting: set) -> int:
        """Which of ``candidates`` can be shifted on stack ``node``: terminals that share a
        reduction are carried through it together, so each reduction is done once."""
        if depth > MAX_REDUCTIONS:
            raise ParserLimitError(f"more than {MAX_REDUCTIONS} reductions in a row without a shift: "
                                   "the grammar has a cycle through empty or unit rules")
        out = candidates & self._shifts[node.state]
        if (node, candidates) in visiting:  # a cycle of unit reductions adds nothing new
            return out
        visiting.add((node, candidates))
        for r, mask in self._reduces[node.state]:
            mask &= candidates & ~out
            if mask:
                base = node
                for _ in range(self.table.rule_len[r]):
                    base = base.parent
                if base.height < self.low:
                    self.low = base.height
                out |= self._takes(self._push(base, self.table.gotos[base.state][self.table.rule_lhs[r]]),
                                   mask, depth + 1, visiting)
        return out

    def expected(self, config: Config) -> int:
        """Terminals with an action in some top state (what Lark's contextual lexer admits)."""
        mask = 0
        for node in config:
            mask |= self._expected[node.state]
        return mask

    def accepts_end(self, config: Config) -> bool:
        return bool(self.shiftable(config) >> self.table.end & 1)

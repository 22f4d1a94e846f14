"""The GLR parser: ambiguous grammars cost polynomial work and never fail on a token the mask
allowed; long unit chains and grammars with thousands of keywords compile; terminal classes."""
from __future__ import annotations

import random

import pytest
from lark import Lark

import gcd
from gcd.parser import terminal_classes
from gcd.testing import reference_allowed

AMBIGUOUS = {
    # every split of a sum and of a juxtaposition is a parse: exponentially many trees
    "sums": 'start: e\ne: e e | e "+" e | NUM | "(" e ")"\nNUM: /[0-9]+/\n%ignore " "\n',
    # s s with an empty alternative: every word a^n has infinitely many derivations
    "pairs": 'start: s\ns: s s | "a" |\n',
}
PIECES = [b"1", b"2", b"3", b"12", b"0", b"+", b"(", b")", b" ", b"1+", b"+(", b")(", b"((", b"))", b" 1",
          b"2 ", b"(1", b"3)", b"a", b"aa", b"aaa", b"a a", b"+a", None]
VOCAB = gcd.Vocabulary(PIECES, eos_token_id=len(PIECES) - 1)
EOS = len(PIECES) - 1


def gss_nodes(config) -> int:
    seen, stack = set(), list(config)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.parents)
    return len(seen)


@pytest.mark.parametrize("name", sorted(AMBIGUOUS))
def test_ambiguous_walks_of_2000_tokens(name):
    """Random walks over the tokens the mask allows: no step fails, masks equal brute force at
    sampled steps, Lark's Earley parser accepts what gcd accepts, and the graph-structured
    stack grows by a bounded number of nodes a step."""
    text = AMBIGUOUS[name]
    compiled = gcd.GrammarCompiler(VOCAB, cache=False, progress=False).compile(text)
    grammar, earley = compiled.grammar, Lark(text, parser="earley")
    rng = random.Random(7)
    m, out, nodes = compiled.matcher(), b"", []
    for step in range(2000):
        allowed = m.allowed_token_ids().tolist()
        if step % 250 == 0:
            assert set(allowed) == reference_allowed(grammar, VOCAB, out), (name, step)
        if EOS in allowed and len(out) <= (400 if name == "sums" else 40):
            earley.parse(out.decode())          # raises if Lark disagrees
        choices = [t for t in allowed if t != EOS]
        assert choices, "a viable prefix always has a continuation"
        token = rng.choice(choices)
        assert m.consume_token(token)
        out += VOCAB.token_bytes(token)
        nodes.append(gss_nodes(m._state[0]))
    assert all(b - a <= 8 for a, b in zip(nodes, nodes[1:])), max(b - a for a, b in zip(nodes, nodes[1:]))
    assert max(nodes) <= len(out) + 10
    if name == "sums":   # close the parentheses: Lark's Earley parser (cubic) takes it in a second
        depth = out.count(b"(") - out.count(b")")
        word = out.decode() + ("" if grammar.accepts(out + b")" * depth) else "1") + ")" * depth
        assert grammar.accepts(word)
        earley.parse(word)
    else:
        assert grammar.accepts(out) == (set(out) <= {ord("a")})   # the language is a*


def test_unit_chain_of_400_rules():
    text = "start: r0\n" + "".join(f"r{i}: r{i + 1}\n" for i in range(400)) + 'r400: "z"\n'
    compiled = gcd.GrammarCompiler(gcd.Vocabulary([b"z", b"zz", None], eos_token_id=2), cache=False,
                                   progress=False).compile(text)
    m = compiled.matcher()
    assert m.allowed_token_ids().tolist() == [0]
    assert m.consume_token(0) and m.is_accepting() and m.allowed_token_ids().tolist() == [2]


def test_thousands_of_keywords_share_one_parser_symbol():
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(3, 12)))
                    for _ in range(2000)})
    text = "start: kw+\nkw: " + " | ".join(f'"{w}"' for w in words) + '\n%ignore " "\n'
    grammar = gcd.Grammar(text)
    assert len(grammar.recognizer.parser.table.actions) < 10     # one class for all 2000 terminals
    sample = " ".join(words[::97])
    assert grammar.accepts(sample) and not grammar.accepts(sample + "q" * 13)
    vocab = gcd.Vocabulary([w.encode() for w in words[:50]] + [b" ", None], eos_token_id=51)
    m = gcd.GrammarCompiler(vocab, cache=False, progress=False).compile(grammar).matcher()
    assert m.consume_token(3) and m.consume_token(50) and m.consume_token(7) and m.is_accepting()


def test_terminal_classes_merge_only_interchangeable_terminals():
    def classes(text: str) -> dict[str, int]:
        g = gcd.Grammar(text)
        names = [t.name for t in g.terminals]
        return dict(zip(names, terminal_classes(g.rules, names)))

    merged = classes('start: kw "=" kw\nkw: "if" | "then" | "else"\n')
    assert len({merged["IF"], merged["THEN"], merged["ELSE"]}) == 1 and merged["EQUAL"] != merged["IF"]
    pal = classes('start: pal\npal: "a" pal "a" | "b" pal "b" |\n')   # symmetric, not mergeable
    assert pal["A"] != pal["B"]
    assert gcd.Grammar('start: pal\npal: "a" pal "a" | "b" pal "b" |\n').accepts("abba")
    assert not gcd.Grammar('start: pal\npal: "a" pal "a" | "b" pal "b" |\n').accepts("abab")


@pytest.mark.parametrize("name", ["sql", "sums"])
def test_the_top_state_alone_says_what_can_come_next(name, sql_grammar):
    """Canonical LR(1) states are exact: along random walks, the terminals the top states take
    are those ``advance`` (reductions down the stack, then the shift) accepts, and answering
    reads no state below the top."""
    grammar = sql_grammar if name == "sql" else gcd.Grammar(AMBIGUOUS["sums"])
    parser = grammar.recognizer.parser
    n_terminals = len(parser.table.terminal_names)
    rng = random.Random(1)
    checked = 0
    for _ in range(30):
        config = parser.initial
        for _ in range(40):
            takes, floor = parser.next_terminals(config)
            assert floor == min(node.height for node in config)
            advances = {t for t in range(n_terminals) if parser.advance(config, t)[0]}
            assert advances == {t for t in range(n_terminals) if takes >> t & 1}
            assert parser.is_accepting(config)[0] == bool(takes >> parser.end & 1)
            checked += 1
            if not advances:
                break
            config = parser.advance(config, rng.choice(sorted(advances)))[0]
    assert checked > 600


def test_a_grammar_lr1_but_not_lalr1_is_parsed_without_forks():
    """Merging the states after ``a x`` and ``b x`` (LALR) makes a reduce/reduce conflict that
    the canonical states do not have: gcd reports the grammar as not LALR(1) (Lark's LALR
    parser refuses it) and parses it with one stack."""
    text = 'start: "a" e "c" | "a" f "d" | "b" f "c" | "b" e "d"\ne: "x"\nf: "x"\n'
    grammar = gcd.Grammar(text)
    table = grammar.recognizer.parser.table
    assert not grammar.is_lalr and all("reduce e -> X / reduce f -> X" in c for c in table.conflicts)
    assert all(len(options) == 1 for acts in table.actions for options in acts.values())
    for word in ["axc", "axd", "bxc", "bxd"]:
        assert grammar.accepts(word)
    for word in ["ax", "axx", "abc", "xc", "axcd"]:
        assert not grammar.accepts(word)
    compiled = gcd.GrammarCompiler(gcd.Vocabulary([b"a", b"x", b"c", b"d", b"xc", b"b", None], eos_token_id=6),
                                   cache=False, progress=False).compile(grammar)
    m = compiled.matcher()
    assert m.consume_token(0) and sorted(m.allowed_token_ids().tolist()) == [1, 4]
    assert m.consume_token(1) and sorted(m.allowed_token_ids().tolist()) == [2, 3]
    assert len(m._state[0]) == 1

"""Compiling: the disk cache (its key, its files), pickling, stats, the bitmask layout."""
from __future__ import annotations

import mmap
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gcd
from gcd import compiler as compiler_module
from gcd import store

ROOT = Path(__file__).resolve().parents[1]
ARITH = """
start: expr
?expr: expr "+" term | term
?term: term "*" atom | atom
?atom: NUMBER | "(" expr ")"
%import common.NUMBER
%import common.WS
%ignore WS
"""
TOKENS = [b"1", b"2", b"12", b"+", b"*", b"(", b")", b" ", b"1+", b"(1", b") *", b"+ (", b"3.5", None]


def toy_vocab() -> gcd.Vocabulary:
    return gcd.Vocabulary(TOKENS + [b"<eos>"], eos_token_id=len(TOKENS))


def walk_masks(compiled: gcd.CompiledGrammar, tokens: list[int]) -> list[list[int]]:
    m = compiled.matcher()
    masks = []
    for t in tokens:
        masks.append(m.allowed_token_ids().tolist())
        assert m.consume_token(t)
    masks.append(m.allowed_token_ids().tolist())
    return masks


WALK = [5, 0, 3, 1, 6, 4, 0]      # ( 1 + 2 ) * 1


def test_cache_roundtrip_gives_identical_masks(tmp_path):
    vocab = toy_vocab()
    first = gcd.GrammarCompiler(vocab, cache_dir=tmp_path).compile(gcd.Grammar(ARITH))
    assert len(list((tmp_path / "compiled").glob("*.gcd"))) == 1
    second = gcd.GrammarCompiler(vocab, cache_dir=tmp_path).compile(gcd.Grammar(ARITH))
    assert second is not first and second.compile_seconds == first.compile_seconds   # loaded, not rebuilt
    assert walk_masks(first, WALK) == walk_masks(second, WALK)
    fresh = gcd.GrammarCompiler(vocab, cache=False).compile(gcd.Grammar(ARITH))
    assert walk_masks(fresh, WALK) == walk_masks(first, WALK)


# -- the cache key ---------------------------------------------------------------------------

def test_string_and_regex_terminals_do_not_share_a_key(tmp_path):
    """A string literal beats a regex on a tie, so A: "if" and A: /if/ are different grammars."""
    literal = 'start: A "!" | NAME "?"\nA: "if"\nNAME: /[a-z]+/\n'
    regex = literal.replace('A: "if"', "A: /if/")
    tokens = [b"if", b"!", b"?", b"x"]
    vocab = gcd.Vocabulary(tokens + [b"<eos>"], eos_token_id=len(tokens))
    compiler = gcd.GrammarCompiler(vocab, cache_dir=tmp_path)
    assert gcd.Grammar(literal).accepts("if!") and gcd.Grammar(regex).accepts("if?")   # as Lark reads them
    compiler.compile(gcd.Grammar(literal))
    m = compiler.compile(gcd.Grammar(regex)).matcher()
    assert m.consume_token(0) and m.consume_token(2) and m.is_accepting()


TERMINAL_FIELDS = ("kind", "pattern", "flags", "priority", "name")


@st.composite
def grammar_fields(draw) -> dict:
    n = draw(st.integers(1, 3))
    terminals = [{"name": f"T{i}", "kind": draw(st.sampled_from(["string", "regex"])),
                  "pattern": draw(st.text("abcxyz", min_size=1, max_size=4)),
                  "flags": draw(st.booleans()), "priority": draw(st.integers(0, 2))} for i in range(n)]
    rules = [[f"T{draw(st.integers(0, n - 1))}" for _ in range(draw(st.integers(1, 3)))]
             for _ in range(draw(st.integers(1, 3)))]
    rules += [[t["name"]] for t in terminals if not any(t["name"] in r for r in rules)]   # all used
    return {"terminals": terminals, "rules": rules, "ignore": draw(st.booleans()),
            "start": draw(st.sampled_from(["start", "top"]))}


def render(fields: dict, layout: int = 0) -> str:
    """Lark text for ``fields``; ``layout`` changes only how it is written."""
    sep = ["\n", "\n\n// a comment\n", "\n  \n"][layout % 3]
    def terminal(t):
        body = f'"{t["pattern"]}"' if t["kind"] == "string" else f'/{t["pattern"]}/'
        return f'{t["name"]}{"." + str(t["priority"]) if t["priority"] else ""}: {body}{"i" if t["flags"] else ""}'
    alternatives = [" ".join(r) for r in fields["rules"]]
    if layout % 2:
        alternatives = alternatives[::-1]
    lines = [f'{fields["start"]}: ' + " | ".join(alternatives)] + [terminal(t) for t in fields["terminals"]]
    if fields["ignore"]:
        lines += ['WS: " "', "%ignore WS"]
    return sep.join(lines[::-1] if layout % 2 else lines) + "\n"


def key(fields: dict, layout: int = 0, vocab: gcd.Vocabulary | None = None) -> str:
    grammar = gcd.Grammar(render(fields, layout), start=fields["start"])
    return gcd.GrammarCompiler(vocab or toy_vocab(), cache=False).cache_key(grammar)


@settings(max_examples=40, deadline=None)
@given(grammar_fields(), st.data())
def test_cache_key_changes_with_every_field(fields, data):
    base = key(fields)
    assert key(fields, layout=data.draw(st.integers(1, 5))) == base   # the same grammar written otherwise
    changed = {**fields, "terminals": [dict(t) for t in fields["terminals"]]}
    what = data.draw(st.sampled_from(TERMINAL_FIELDS + ("rules", "ignore", "start")), label="field")
    t = data.draw(st.sampled_from(changed["terminals"]), label="terminal")
    if what == "kind":
        t["kind"] = "regex" if t["kind"] == "string" else "string"
    elif what == "pattern":
        t["pattern"] += "z"
    elif what == "flags":
        t["flags"] = not t["flags"]
    elif what == "priority":
        t["priority"] += 1
    elif what == "name":
        old = t["name"]
        t["name"] = old + "X"
        changed["rules"] = [[s + "X" if s == old else s for s in r] for r in fields["rules"]]
    elif what == "rules":
        longest = max(len(r) for r in fields["rules"])   # an alternative that is not there yet
        changed["rules"] = fields["rules"] + [fields["rules"][0] * (longest + 1)]
    elif what == "ignore":
        changed["ignore"] = not fields["ignore"]
    else:
        changed["start"] = "top" if fields["start"] == "start" else "start"
    assert key(changed) != base, what


def test_cache_key_covers_vocabulary_and_source(monkeypatch):
    fields = {"terminals": [{"name": "T0", "kind": "string", "pattern": "a", "flags": False, "priority": 0}],
              "rules": [["T0"]], "ignore": False, "start": "start"}
    base = key(fields)
    other = gcd.Vocabulary(TOKENS + [b"<eos>", b"3"], eos_token_id=len(TOKENS))
    assert key(fields, vocab=other) != base
    monkeypatch.setattr(compiler_module, "source_digest", lambda: "edited")
    assert key(fields) != base


# -- cache files -------------------------------------------------------------------------

def test_damaged_cache_files_are_rebuilt_with_a_warning(tmp_path):
    vocab = toy_vocab()
    compiler = gcd.GrammarCompiler(vocab, cache_dir=tmp_path)
    compiler.compile(gcd.Grammar(ARITH))
    (entry,) = (tmp_path / "compiled").glob("*.gcd")
    good = entry.read_bytes()
    damages = {"truncated": good[:-10], "altered": good[:-1] + bytes([good[-1] ^ 1]), "empty": b"",
               "not ours": b"something else entirely"}
    for what, data in damages.items():
        entry.write_bytes(data)
        with pytest.warns(UserWarning, match="rebuilding the unusable cache file"):
            compiled = compiler.compile(gcd.Grammar(ARITH))
        assert walk_masks(compiled, WALK) == walk_masks(gcd.GrammarCompiler(vocab, cache=False).compile(ARITH), WALK)
        assert entry.read_bytes() != data, what   # rewritten


class _Payload:
    """A pickle of this runs code when loaded: it creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_in_the_cache_is_refused_without_being_loaded(tmp_path):
    vocab = toy_vocab()
    compiler = gcd.GrammarCompiler(vocab, cache_dir=tmp_path / "cache")
    path = compiler.cache_path(gcd.Grammar(ARITH))
    path.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.warns(UserWarning, match="not a gcd cache file"):
        compiled = compiler.compile(gcd.Grammar(ARITH))
    assert not marker.exists()
    assert compiled.matcher().consume_token(0)


def test_grammars_over_one_vocabulary_share_its_file(tmp_path):
    vocab = gcd.Vocabulary([bytes([c]) for c in range(32, 127)] + [b"<eos>"], eos_token_id=95)
    compiler = gcd.GrammarCompiler(vocab, cache_dir=tmp_path)
    compiler.compile(gcd.Grammar.from_file(ROOT / "grammars" / "json.lark"))
    compiler.compile(gcd.Grammar.from_file(ROOT / "grammars" / "sql.lark"))
    (vocab_file,) = (tmp_path / "vocab").glob("*.gcd")
    _, shared = store.read(vocab_file)
    assert {"flat_bytes", "token_starts", "groups.ids"} <= set(shared)
    for path in (tmp_path / "compiled").glob("*.gcd"):
        _, arrays = store.read(path)
        assert not {"flat_bytes", "token_starts"} & set(arrays)
        assert all(not a.flags.writeable for a in arrays.values())


def test_store_refuses_object_arrays_and_reads_back_read_only_maps(tmp_path):
    with pytest.raises(TypeError):
        store.encode({}, {"x": np.array([object()])})
    path = tmp_path / "f.gcd"
    store.write(path, {"a": 1}, {"x": np.arange(5, dtype=np.int32), "y": np.ones((2, 3), np.uint8)})
    meta, arrays = store.read(path)
    assert meta == {"a": 1} and arrays["x"].tolist() == [0, 1, 2, 3, 4] and arrays["y"].shape == (2, 3)
    assert _mapped(arrays["x"]) and type(arrays["x"]) is np.ndarray   # a plain array over the file's map
    with pytest.raises(ValueError):
        arrays["x"][0] = 1


def test_compiled_grammar_pickles_and_keeps_working():
    compiled = gcd.GrammarCompiler(toy_vocab(), cache=False).compile(gcd.Grammar(ARITH))
    before = walk_masks(compiled, WALK)
    data = pickle.dumps(compiled)
    assert store.MAGIC in data   # the automata travel in the cache format
    clone = pickle.loads(data)
    assert walk_masks(clone, WALK) == before


def trie_paths(automata) -> dict:
    """The stack-top mask trie as {(raw lex, group, states from the top): None (read deeper) or
    (mask bytes, depth)}."""
    levels = automata._trie_levels()
    paths: dict[int, tuple] = {}

    def path(i: int) -> tuple:
        if i not in paths:
            above, state, lex, group, _ = levels[i]
            paths[i] = (lex, group, (state,)) if above < 0 else (*path(above)[:2], path(above)[2] + (state,))
        return paths[i]

    return {path(i): None if found is None else (found[0].tobytes(), found[1])
            for i, (*_, found) in enumerate(levels)}


def outcome_contents(automata) -> dict:
    """The token outcomes as {(raw lex, group): (dense classes, sparse classes, emits)}, each
    class as (the raw lexer state it ends in, its token ids)."""
    return {key: (sorted((end, tuple(np.flatnonzero(np.unpackbits(bits.view(np.uint8), bitorder="little"))))
                         for end, bits in zip(out.dense_ends, out.dense_bits)),
                  sorted((end, tuple(sorted(ids.tolist()))) for end, ids in zip(out.sparse_ends, out.sparse_ids)),
                  out.emits)
            for key, out in automata._outcomes.items()}


def test_the_mask_trie_and_the_outcomes_survive_the_cache_format(smollm2_vocab):
    """Every level of the trie compiling warmed (deep ones included) comes back from the cache
    format with its mask; every token outcome with its classes and emits; every group's split
    by first byte."""
    compiled = gcd.GrammarCompiler(smollm2_vocab, cache=False, progress=False, precompute_seconds=0.5).compile(
        gcd.Grammar.from_file(ROOT / "grammars/json.lark"))
    clone = pickle.loads(pickle.dumps(compiled))
    before = trie_paths(compiled.automata)
    assert len(before) > 500 and max(len(states) for _, _, states in before) >= 6
    assert trie_paths(clone.automata) == before
    outcomes = outcome_contents(compiled.automata)
    assert len(outcomes) > 100 and any(sparse for _, sparse, _ in outcomes.values())
    assert outcome_contents(clone.automata) == outcomes
    splits = compiled.automata.groups._split
    assert splits and clone.automata.groups._split == splits


def test_bitset_rows_come_back_from_their_differences():
    """Cache files store mask rows as differences from a close row: random rows stay whole,
    rows a few bits apart from another become differences, and all come back equal."""
    from gcd.automata import _delta_rows, _undelta_rows

    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 1 << 32, 64, dtype=np.uint64).astype(np.uint32) for _ in range(5)]
    for _ in range(40):
        row = rows[rng.integers(len(rows))].copy()
        for bit in rng.choice(64 * 32, rng.integers(0, 20), replace=False):
            row[bit >> 5] ^= np.uint32(1 << (bit & 31))
        rows.append(row)
    arrays = _delta_rows(np.stack(rows))
    assert all(np.array_equal(a, b) for a, b in zip(_undelta_rows(arrays), rows))
    assert len(arrays["dense.whole"]) <= 10 and (arrays["dense.base"] >= 0).sum() >= 35


def test_second_compile_in_a_new_process_reads_the_cache(tmp_path):
    script = (
        "import time, gcd\n"
        f"v = gcd.Vocabulary({TOKENS + [b'<eos>']!r}, eos_token_id={len(TOKENS)})\n"
        f"c = gcd.GrammarCompiler(v, cache_dir={str(tmp_path)!r}).compile(gcd.Grammar.from_file({str(ROOT / 'grammars/sql.lark')!r}))\n"
        "print(c.compile_seconds)\n"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    # the cached object carries the first compile's own timing: it was loaded, not rebuilt
    assert first.stdout == second.stdout


def test_stats_describe_the_grammar():
    stats = gcd.GrammarCompiler(toy_vocab(), cache=False).compile(gcd.Grammar(ARITH)).stats()
    assert stats["parser"] == "LALR(1)"
    assert stats["vocab_size"] == len(TOKENS) + 1
    assert stats["terminals"] == 6   # NUMBER, WS, PLUS, STAR, LPAR, RPAR
    ambiguous = gcd.Grammar('start: e\ne: e "+" e | "1"')
    assert gcd.GrammarCompiler(toy_vocab(), cache=False).compile(ambiguous).stats()["parser"].startswith("general")


def test_compile_accepts_text_and_rejects_other_vocab_types():
    compiled = gcd.GrammarCompiler(toy_vocab(), cache=False).compile(ARITH)
    assert isinstance(compiled, gcd.CompiledGrammar)
    with pytest.raises(TypeError):
        gcd.GrammarCompiler(["a", "b"])


def test_bitmask_layout_is_word_major_bit_minor():
    tokens = [bytes([65 + i % 26]) for i in range(70)]   # A..Z repeated: ids 0..69
    vocab = gcd.Vocabulary(tokens + [b"<eos>"], eos_token_id=70)
    compiled = gcd.GrammarCompiler(vocab, cache=False).compile(gcd.Grammar('start: "C"'))
    m = compiled.matcher()
    bitmask = gcd.allocate_token_bitmask(2, vocab.size)
    assert bitmask.shape == (2, 3) and bitmask.dtype == torch.int32
    m.fill_bitmask(bitmask, row=1)
    allowed = [i for i in range(70) if tokens[i] == b"C"]     # 2, 28, 54
    words = bitmask[1].numpy().view(np.uint32)
    expected = np.zeros(3, np.uint32)
    for i in allowed:
        expected[i // 32] |= np.uint32(1 << (i % 32))
    assert (words == expected).all() and (bitmask[0] == 0).all()
    assert m.allowed_token_ids().tolist() == allowed
    assert m.consume_token(28) and m.is_accepting()
    m.fill_bitmask(bitmask, row=0)
    assert m.allowed_token_ids().tolist() == [70]             # only EOS once the word is complete


def _mapped(a: np.ndarray) -> bool:
    """``a`` is a view of a memory map (not a copy in memory)."""
    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False

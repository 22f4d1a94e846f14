"""``gcd.infill``: the template's fixed text stays verbatim, every finished output is a word,
templates that no word fits are refused, budgets end unfinished; on the toy model of
``test_sampling`` and on SmolLM2 with the SQL and JSON grammars."""
from __future__ import annotations

import re

import numpy as np
import pytest

import gcd
from gcd.errors import GCDError
from gcd.infill import parse_template
from gcd.testing import TableModel
from conftest import GRAMMARS
from test_sampling import TOKENS, VOCAB, table

LIST = gcd.Grammar('start: "[" ITEM ("," ITEM)* "]"\nITEM: /[abc]+/\n')
LIST_TOKENS = [b"[", b"]", b",", b"a", b"b", b"c", b"ab", b"<e>"]
LIST_VOCAB = gcd.Vocabulary(LIST_TOKENS, eos_token_id=len(LIST_TOKENS) - 1)


def shape(chunks: list) -> re.Pattern:
    return re.compile("".join(".*" if c is None else re.escape(c) for c in chunks), re.DOTALL)


def test_parse_template():
    assert parse_template("SELECT {} FROM t WHERE {}") == ["SELECT ", None, " FROM t WHERE ", None]
    assert parse_template("{}{} {{x}} {}") == [None, " {x} ", None]
    assert parse_template(["a", None, None, "b", "c"]) == ["a", None, "bc"]


@pytest.mark.parametrize("template", ["[{}]", "[a{}]", "[{},{}]", "[{}c,b{}", "{}"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_fixed_text_is_kept_and_outputs_are_words(template, temperature):
    def model(prefix):   # random preferences, so holes are filled with varied text
        return np.random.default_rng(len(prefix) * 7 + sum(prefix)).normal(0, 2, len(LIST_TOKENS))

    for seed in range(5):
        out = gcd.infill(TableModel(len(LIST_TOKENS), model), LIST_VOCAB, LIST, template,
                         temperature=temperature, seed=seed, max_new_tokens=6)
        chunks = parse_template(template)
        if out.finished:   # the whole template, its holes filled, and a word
            assert shape(chunks).fullmatch(out.text) and LIST.accepts(out.text), (template, out)
            assert len(out.fills) == sum(c is None for c in chunks)
        else:              # the text up to where it stopped
            assert out.text.startswith(chunks[0] or "")


def test_a_template_no_word_fits_is_refused_and_budgets_end_unfinished():
    lm = TableModel(len(LIST_TOKENS), lambda p: np.zeros(len(LIST_TOKENS)))
    with pytest.raises(GCDError, match="cannot be completed"):
        gcd.infill(lm, LIST_VOCAB, LIST, "[a]{}]")
    # a model that only wants to add commas and letters never closes within 2 tokens: the
    # hole still closes if the text allows it, else the output is unfinished
    def greedy_comma(prefix):
        logits = np.full(len(LIST_TOKENS), -5.0)
        logits[2] = 5.0   # ","
        return logits

    out = gcd.infill(TableModel(len(LIST_TOKENS), greedy_comma), LIST_VOCAB, LIST, "[{}", max_new_tokens=2)
    assert not out.finished and out.text.startswith("[") and not LIST.accepts(out.text)


def test_toy_grammar_of_the_samplers():
    lm = TableModel(len(TOKENS), table)
    grammar = gcd.Grammar("start: /[ab]{1,3}c/")
    out = gcd.infill(lm, VOCAB, grammar, "a{}c")
    assert out.finished and grammar.accepts(out.text) and out.text.startswith("a") and out.text.endswith("c")


@pytest.mark.parametrize("name, template, prompt", [
    ("sql", "SELECT {} FROM users WHERE {}", "List the names of the users older than 30."),
    ("json", ['{"name": ', None, ', "age": ', None, "}"],
     'Describe a cat as JSON by filling in the blanks: {"name": ___, "age": ___}'),
])
def test_smollm2_fills_templates(smollm2, smollm2_vocab, name, template, prompt):
    from gcd.hf import chat_prompt

    model, tokenizer = smollm2
    grammar = gcd.Grammar.from_file(GRAMMARS / f"{name}.lark")
    lm = gcd.HFLanguageModel(model, tokenizer, chat_prompt(tokenizer, prompt))
    out = gcd.infill(lm, smollm2_vocab, grammar, template, max_new_tokens=24)
    chunks = parse_template(template)
    assert shape(chunks).fullmatch(out.text), out
    assert out.finished and grammar.accepts(out.text), out
    assert out.checks >= out.tokens

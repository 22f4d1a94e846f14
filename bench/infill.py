#!/usr/bin/env python3
"""``gcd.infill`` time per filled token beside plain masked generation (``gcd.sample``,
method "mask", greedy), SmolLM2 on the CPU, one thread: templates of grammars/sql.lark and
grammars/json.lark; prints tokens, completion checks, seconds and ms per token, and the text
(unfinished: the model's candidates ran out in a hole; never marked finished unless a word).

    OMP_NUM_THREADS=1 .venv/bin/python bench/infill.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import gcd
from gcd.hf import chat_prompt, load_model

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = [
    ("sql", "SELECT {} FROM users WHERE {}", "Write an SQL query."),
    ("sql", "SELECT name, {} FROM {} WHERE age > {} ORDER BY {};", "Write an SQL query."),
    ("json", '{{"name": {}, "age": {}, "tags": [{}]}}', "Describe a person as JSON."),
]


def main() -> int:
    torch.set_num_threads(1)
    model, tokenizer = load_model("smollm2")
    vocab = gcd.Vocabulary.from_hf(tokenizer)
    compiler = gcd.GrammarCompiler(vocab)
    print("SmolLM2-135M, greedy, 1 thread")
    print(f"{'run':<58} {'tokens':>6} {'checks':>6} {'s':>6} {'ms/token':>9}")
    for name, template, ask in TEMPLATES:
        grammar = gcd.Grammar.from_file(ROOT / "grammars" / f"{name}.lark")
        lm = gcd.HFLanguageModel(model, tokenizer, chat_prompt(tokenizer, f"{ask} Fill in: {template}"))
        t0 = time.perf_counter()
        out = gcd.infill(lm, vocab, grammar, template)
        s = time.perf_counter() - t0
        assert not out.finished or grammar.accepts(out.text), out
        print(f"{'infill ' + template:<58} {out.tokens:>6} {out.checks:>6} {s:6.2f} {1e3 * s / max(out.tokens, 1):9.1f}"
              f"  {'finished' if out.finished else 'unfinished'}: {out.text!r}", flush=True)
        compiled = compiler.compile(grammar)
        lm = gcd.HFLanguageModel(model, tokenizer, chat_prompt(tokenizer, ask))
        t0 = time.perf_counter()
        got = gcd.sample(lm, compiled, "mask", max_new_tokens=32, temperature=0)[0]
        s = time.perf_counter() - t0
        print(f"{'masked generation, ' + name:<58} {len(got.token_ids):>6} {'':>6} {s:6.2f} "
              f"{1e3 * s / max(len(got.token_ids), 1):9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Time ``gcd.can_complete`` on JSON canvases: documents of about 64 and 256 SmolLM2 tokens
with 1-3 holes cut out (at token boundaries, random places, each hole one to three tokens).
From scratch: one ``gcd.can_complete`` on the canvas. Incremental: a ``gcd.Canvas`` with a
cell per token (the cut ones holes) checked once, then one hole token set back to its text
and checked again (timed). Candidates: for another hole token, 16 candidate texts (its own
token and 15 drawn from the vocabulary) decided in one pass (``Canvas.try_texts``) against
one check each on a second ``Canvas`` of the same cells (``set``, ``can_complete``; the
answers must agree). Prints median and p99 per canvas size and hole count, and how many
answers were True.

    OMP_NUM_THREADS=1 .venv/bin/python bench/holes.py [--canvases 40]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

import gcd
from gcd.hf import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--canvases", type=int, default=40, help="canvases per size and hole count")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tokenizer = load_tokenizer("smollm2")
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "json.lark")
    docs = [json.loads(line)["text"] for line in (ROOT / "tests" / "data" / "json_docs.jsonl").read_text().splitlines()
            if line.strip()]
    tokens = [tokenizer.encode(d, add_special_tokens=False) for d in docs]
    gcd.can_complete(grammar, ["{", None])   # build the grammar's tables once
    print(f"grammars/json.lark, SmolLM2 tokens, {args.canvases} canvases per row")
    print(f"{'tokens':>6} {'holes':>5} {'scratch p50':>12} {'p99 ms':>8} {'True':>5} {'incr. p50':>10} {'p99 ms':>8} "
          f"{'True':>5} {'pass p50':>9} {'p99 ms':>8} {'1-by-1 p50':>11} {'p99 ms':>8} {'fit':>5}")
    vocabulary = [tokenizer.decode([t]) for t in range(tokenizer.vocab_size)]
    for size in (64, 256):
        pool = [t for t in tokens if len(t) >= size] or [max(tokens, key=len)]
        for holes in (1, 2, 3):
            times, yes, steps, yes_steps, passes, singles, fit = [], 0, [], 0, [], [], 0
            for _ in range(args.canvases):
                ids = rng.choice(pool)
                start = rng.randrange(0, len(ids) - size + 1) if len(ids) > size else 0
                window = ids[start:start + size]
                cuts = sorted(rng.sample(range(len(window)), min(holes, len(window))))
                chunks: list = []
                cells = [tokenizer.decode([t]) for t in window]
                last = 0
                for c in cuts:   # each hole replaces one to three tokens
                    chunks += [tokenizer.decode(window[last:c]), None]
                    last = max(last, min(len(window), c + rng.randint(1, 3)))
                    cells[c:last] = [None] * (last - c)
                chunks.append(tokenizer.decode(window[last:]))
                chunks = [c for c in chunks if c != ""]
                if start > 0:
                    chunks = [None, *chunks]
                if start + size < len(ids):
                    chunks = [*chunks, None]
                t0 = time.perf_counter()
                try:
                    yes += gcd.can_complete(grammar, chunks)
                except gcd.BudgetExceeded:
                    pass
                times.append(time.perf_counter() - t0)
                cells = ([None] if start > 0 else []) + cells + ([None] if start + size < len(ids) else [])
                canvas = gcd.Canvas(grammar, cells)
                holes_at = [i for i, c in enumerate(cells) if c is None and (i or start == 0)
                            and (i < len(cells) - 1 or start + size >= len(ids))]
                try:
                    canvas.can_complete()
                    i = rng.choice(holes_at)
                    canvas.set(i, tokenizer.decode([window[i - (start > 0)]]))
                    t0 = time.perf_counter()
                    yes_steps += canvas.can_complete()
                except gcd.BudgetExceeded:
                    pass
                steps.append(time.perf_counter() - t0)
                others = [k for k in holes_at if k != i and cells[k] is None]
                if others:
                    k = rng.choice(others)
                    texts = [tokenizer.decode([window[k - (start > 0)]]), *rng.sample(vocabulary, 15)]
                    twin = gcd.Canvas(grammar, [c if n != i else canvas.cells[i] for n, c in enumerate(cells)])
                    try:
                        canvas.can_complete()
                        twin.can_complete()
                        t0 = time.perf_counter()
                        together = canvas.try_texts(k, texts)
                        passes.append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        alone = []
                        for text in texts:
                            twin.set(k, text)
                            alone.append(twin.can_complete())
                        twin.set(k, None)
                        singles.append(time.perf_counter() - t0)
                        assert together == alone, (texts, together, alone)
                        fit += sum(together)
                    except gcd.BudgetExceeded:
                        pass
            ms, inc = np.array(times) * 1e3, np.array(steps) * 1e3
            one, each = np.array(passes or [np.nan]) * 1e3, np.array(singles or [np.nan]) * 1e3
            print(f"{size:>6} {holes:>5} {np.percentile(ms, 50):12.2f} {np.percentile(ms, 99):8.2f} {yes:>5} "
                  f"{np.percentile(inc, 50):10.2f} {np.percentile(inc, 99):8.2f} {yes_steps:>5} "
                  f"{np.percentile(one, 50):9.2f} {np.percentile(one, 99):8.2f} {np.percentile(each, 50):11.2f} "
                  f"{np.percentile(each, 99):8.2f} {fit:>5}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Constrained against unconstrained masked-diffusion decoding on the shipped model: wall time
per canvas, valid outputs (``Grammar.accepts`` on the text), completion checks and refused
proposals per canvas, for JSON and SQL (64-byte canvases, 64 steps, temperature 1).

    OMP_NUM_THREADS=1 .venv/bin/python bench/diffusion.py [--seeds 8] [--block-length 16]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import gcd
from gcd.diffusion import byte_vocabulary, generate, load_shipped

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--block-length", type=int, default=None)
    ap.add_argument("--grammars", nargs="+", default=["json", "sql"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, vocab = load_shipped(), byte_vocabulary()
    print(f"shipped byte-level model, 64 positions, 64 steps, block {args.block_length or 64}, "
          f"temperature 1, {args.seeds} seeds")
    print(f"{'grammar':<8} {'decoding':<13} {'s/canvas':>9} {'valid':>6} {'finished':>9} {'refused':>8}")
    for name in args.grammars:
        grammar = gcd.Grammar.from_file(ROOT / "grammars" / f"{name}.lark")
        generate(model, vocab, grammar, [], gen_length=8, steps=8)   # the grammar's tables, once
        seconds = {}
        for constrained in (False, True):
            valid = finished = refused = 0
            t0 = time.perf_counter()
            for seed in range(args.seeds):
                out = generate(model, vocab, grammar if constrained else None, [], gen_length=64, steps=64,
                               block_length=args.block_length, temperature=1.0, seed=seed)
                valid += grammar.accepts(out.text) and all(t >= 0 for t in out.token_ids)
                finished += out.finished
                refused += out.rejections
            seconds[constrained] = (time.perf_counter() - t0) / args.seeds
            print(f"{name:<8} {'constrained' if constrained else 'unconstrained':<13} {seconds[constrained]:9.2f} "
                  f"{valid:>3}/{args.seeds:<2} {finished:>6}/{args.seeds:<2} {refused / args.seeds:8.1f}", flush=True)
        print(f"{name:<8} constrained / unconstrained time: {seconds[True] / seconds[False]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

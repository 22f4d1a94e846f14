#!/usr/bin/env python3
"""Soak: JSON and SQL words back to back through one compiled grammar each, 100,000 tokens per
tokenizer; prints the resident memory as it goes, the step-time percentiles, the worst step
after the first 1,000 tokens, and the garbage collector's longest pause (a full collection
with torch loaded takes ~100 ms whatever gcd does; it is reported apart).

    OMP_NUM_THREADS=1 .venv/bin/python bench/soak.py --tokenizer smollm2 --tokens 100000
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

import gcd
from gcd.cli import _drawn_words, _rss_mib
from gcd.hf import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="smollm2")
    ap.add_argument("--tokens", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=300, help="distinct words drawn per grammar")
    ap.add_argument("--freeze", action="store_true", help="gc.freeze() after compiling (the README's advice "
                    "for latency-sensitive servers): full collections then walk only what the run creates")
    ap.add_argument("--bound-ms", type=float, default=None, help="the worst-step bound to count steps above "
                    "(default: 50 ms below 100k tokens, else 150 ms)")
    args = ap.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    vocab = gcd.Vocabulary.from_hf(tokenizer)
    bound = (args.bound_ms or (50.0 if vocab.size < 100_000 else 150.0)) / 1e3
    eos = vocab.eos_token_ids[0]
    grammars = {name: gcd.Grammar.from_file(ROOT / "grammars" / f"{name}.lark") for name in ("json", "sql")}
    docs = {"json": [json.loads(line)["text"] for line in (ROOT / "tests" / "data" / "json_docs.jsonl")
                     .read_text().splitlines() if line.strip()],
            "sql": [q for q in (ROOT / "tests" / "data" / "sql_queries.txt").read_text().splitlines() if q.strip()]}
    streams = {}
    for name, grammar in grammars.items():
        words = docs[name] + _drawn_words(grammar, args.words, seed=7)[0]
        encoded = [tokenizer.encode(w, add_special_tokens=False) for w in words]
        streams[name] = [[*ids, eos] for ids in encoded
                         if grammar.accepts(b"".join(vocab.token_bytes(t) for t in ids))]
    print(f"# {args.tokenizer} ({vocab.size} tokens): {len(streams['json'])} JSON and {len(streams['sql'])} SQL "
          f"words, {args.tokens} tokens", flush=True)
    rss0 = _rss_mib()
    compiled = {name: gcd.GrammarCompiler(vocab, cache=False, progress=False).compile(g) for name, g in grammars.items()}
    gc.collect()
    if args.freeze:
        gc.freeze()
    rss1 = _rss_mib()
    print(f"RSS {rss0:.0f} MiB before compiling, {rss1:.0f} MiB after", flush=True)
    pauses = []
    started = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - started[0])
    gc.callbacks.append(on_gc)

    bitmask = gcd.allocate_token_bitmask(1, vocab.size)
    order = itertools.cycle(zip(itertools.cycle(streams["json"]), itertools.cycle(streams["sql"])))
    times, where = [], []
    report_every = args.tokens // 10
    while len(times) < args.tokens:
        for name, ids in zip(("json", "sql"), next(order)):
            m = compiled[name].matcher()
            for t in ids:
                t0 = time.perf_counter()
                m.fill_bitmask(bitmask, 0)
                ok = m.consume_token(t)
                times.append(time.perf_counter() - t0)
                where.append(name)
                assert ok, "a word of the grammar was refused"
                if len(times) % report_every == 0:
                    print(f"  {len(times):>7} tokens: RSS {_rss_mib():.0f} MiB", flush=True)
    gc.callbacks.remove(on_gc)
    us = np.array(times) * 1e6
    after = us[1000:]
    worst = int(np.argmax(after)) + 1000
    print(f"per token (µs): p50 {np.percentile(us, 50):.1f}  p99 {np.percentile(us, 99):.1f}  mean {us.mean():.1f}; "
          f"after the first 1,000 tokens: p99 {np.percentile(after, 99):.1f}, max {after.max() / 1e3:.1f} ms "
          f"(token {worst}, {where[worst]}), {int((after > bound * 1e6).sum())} steps above {bound * 1e3:.0f} ms")
    print(f"full garbage collections: {len(pauses)}, longest {max(pauses, default=0) * 1e3:.0f} ms; "
          f"{len(gc.get_objects())} objects tracked ({gc.get_freeze_count()} frozen)")
    print(f"RSS growth over the run: {_rss_mib() - rss1:+.0f} MiB (now {_rss_mib():.0f} MiB); caches "
          + ", ".join(f"{name} {c.automata.stats()['cache_bytes'] / 2**20:.0f} MiB" for name, c in compiled.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Tokens/s of a model on CPU with and without a grammar, in the same run.

    HF_HUB_OFFLINE=1 python bench/throughput.py [--model smollm2] [--grammar grammars/json.lark]
        [--tokens 64] [--runs 3] [--threads N]

Greedy ``model.generate`` on the same prompts, a fixed token budget (prompts ask for long
outputs, so that both runs use all of it), runs alternating between unconstrained and
constrained after one warm-up each; prints the median tokens/s of each, their ratio, and the
time spent in the processor per step.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from transformers import LogitsProcessor  # noqa: E402

import gcd  # noqa: E402
from gcd.hf import GrammarLogitsProcessor, chat_prompt, load_model  # noqa: E402

PROMPTS = [  # long answers: both modes use the whole token budget
    "Write a JSON object that maps the names of 40 countries to their capitals.",
    "Write a JSON array with the first 50 prime numbers.",
    "Write a JSON object describing a library with 20 books, each with title, author, year and genres.",
]


class Timed(LogitsProcessor):
    """Wraps a processor and adds up the time spent in it."""

    def __init__(self, inner: GrammarLogitsProcessor) -> None:
        self.inner, self.seconds, self.calls = inner, 0.0, 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        t = time.perf_counter()
        out = self.inner(input_ids, scores)
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


def run(model, tokenizer, processor: LogitsProcessor | None, tokens: int) -> tuple[int, float]:
    """(tokens generated, seconds) over all prompts, one at a time."""
    count, seconds = 0, 0.0
    for prompt in PROMPTS:
        inputs = tokenizer(chat_prompt(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        t = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False,
                             logits_processor=[processor] if processor else None)
        seconds += time.perf_counter() - t
        count += out.shape[1] - inputs["input_ids"].shape[1]
    return count, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--grammar", default="grammars/json.lark")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    compiled = gcd.GrammarCompiler(gcd.Vocabulary.from_hf(tokenizer)).compile(gcd.Grammar.from_file(args.grammar))
    processor = Timed(GrammarLogitsProcessor(compiled))
    modes = {"unconstrained": None, "constrained": processor}
    for p in modes.values():  # warm-up: model kernels, the grammar's lazily built masks
        run(model, tokenizer, p, args.tokens)
    processor.seconds = processor.calls = 0
    runs: dict[str, list[tuple[int, float]]] = {mode: [] for mode in modes}
    for _ in range(args.runs):
        for mode, p in modes.items():
            runs[mode].append(run(model, tokenizer, p, args.tokens))
    rate = {mode: statistics.median(n / s for n, s in r) for mode, r in runs.items()}
    print(f"{args.model} on CPU ({torch.get_num_threads()} threads), greedy, {len(PROMPTS)} prompts x "
          f"{args.tokens} tokens, {args.runs} alternating runs, grammar {args.grammar}")
    for mode, r in runs.items():
        print(f"  {mode:<14} {rate[mode]:7.2f} tok/s  "
              f"(runs: {', '.join(f'{n / s:.2f}' for n, s in r)}; tokens per run: {r[0][0]})")
    print(f"  constrained / unconstrained: {rate['constrained'] / rate['unconstrained']:.1%}")
    total = sum(s for _, s in runs["constrained"])
    print(f"  in GrammarLogitsProcessor: {processor.seconds / processor.calls * 1e6:.0f} µs per step, "
          f"{processor.seconds / total:.1%} of the constrained runs' time")

if __name__ == "__main__":
    main()

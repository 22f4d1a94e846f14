"""The ``gcd`` command: ``gcd sample | check | bench``.

Every user error (missing file, grammar error, unknown model, bad argument) is one line on
stderr and a non-zero exit code: 1 for errors and incomplete outputs, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gcd.errors import GCDError
from gcd.grammar import Grammar

if TYPE_CHECKING:
    from gcd.compiler import CompiledGrammar

DEFAULT_PROMPTS = {
    "json": "Describe a cat as a JSON object with the keys name, age and color.",
    "sql": "Write an SQL query that lists the names of the customers who live in Paris.",
}
GENERIC_PROMPT = "Write an example of text in the requested format."


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print the usage and exit
        raise _UsageError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gcd`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except _UsageError as e:
        _fail(f"{e} (see gcd --help)")
        return 2
    try:
        return args.run(args)
    except _UsageError as e:
        _fail(f"{e} (see gcd --help)")
        return 2
    except GCDError as e:
        _fail(str(e))
        return 1
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130


def _fail(message: str) -> None:
    print(f"gcd: error: {message.strip().splitlines()[0] if message.strip() else 'failed'}", file=sys.stderr)


def _positive(text: str, least: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected an integer >= {least}, got {text!r}")
    return value


def _seed(text: str) -> int:
    return _positive(text, least=0)


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gcd", description="Grammar-constrained decoding with exact token masks.")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=_Parser)

    sample = sub.add_parser("sample", help="generate text that is a word of a grammar",
                            description="Generate with a language model, constrained to a grammar.")
    sample.add_argument("--grammar", required=True, help="a .lark grammar file")
    sample.add_argument("--prompt", help="the prompt (default: one suited to the grammar file's name)")
    sample.add_argument("--model", default="smollm2",
                        help="smollm2 (default), gemma3, a .gguf file, a local model folder or a Hub id")
    sample.add_argument("--max-new-tokens", type=_positive, default=256, metavar="N")
    sample.add_argument("--temperature", type=_temperature, default=0.0, metavar="T",
                        help="0 (default): greedy; > 0: sampling")
    sample.add_argument("--num-samples", type=_positive, default=1, metavar="K")
    sample.add_argument("--seed", type=_seed, default=0, metavar="S")
    sample.add_argument("--method", choices=["mask"], default="mask",
                        help="mask: the model's distribution restricted to allowed tokens, step by step")
    sample.add_argument("--json", action="store_true", help="print one JSON object with texts, token counts, timings")
    sample.set_defaults(run=_sample)

    check = sub.add_parser("check", help="validate a grammar and print its statistics",
                           description="Validate a grammar, compile it and print its statistics.")
    check.add_argument("grammar", help="a .lark grammar file")
    check.add_argument("--tokenizer", default="smollm2", help="smollm2 (default), gemma3, a .gguf file or a folder")
    check.set_defaults(run=_check)

    bench = sub.add_parser("bench", help="time compilation and per-token masks",
                           description="Compile time and per-token mask time on words drawn from the grammar.")
    bench.add_argument("--grammar", required=True, help="a .lark grammar file")
    bench.add_argument("--tokenizer", default="smollm2", help="smollm2 (default), gemma3, a .gguf file or a folder")
    bench.add_argument("--words", type=_positive, default=30, metavar="N", help="words to draw (default 30)")
    bench.add_argument("--seed", type=_seed, default=0, metavar="S")
    bench.set_defaults(run=_bench)
    return parser


def _grammar(path: str) -> Grammar:
    try:
        return Grammar.from_file(path)
    except GCDError as e:
        raise type(e)(str(e) if path in str(e) else f"{path}: {e}") from None


def _sample(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers.utils import logging as hf_logging

    from gcd.compiler import GrammarCompiler
    from gcd.generate import generate
    from gcd.hf import load_model
    from gcd.vocab import Vocabulary

    if args.num_samples > 1 and args.temperature == 0:
        raise _UsageError("gcd sample: --num-samples > 1 needs --temperature > 0 (0 is greedy: one output)")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    grammar = _grammar(args.grammar)
    prompt = args.prompt if args.prompt is not None else DEFAULT_PROMPTS.get(Path(args.grammar).stem, GENERIC_PROMPT)
    t0 = time.perf_counter()
    model, tokenizer = load_model(args.model)
    t1 = time.perf_counter()
    compiled = GrammarCompiler(Vocabulary.from_hf(tokenizer)).compile(grammar)
    t2 = time.perf_counter()
    torch.manual_seed(args.seed)
    outputs = generate(model, tokenizer, compiled, [prompt], max_new_tokens=args.max_new_tokens,
                       temperature=args.temperature, num_samples=args.num_samples, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t2
    tokens = sum(len(o.token_ids) for o in outputs)
    incomplete = [i for i, o in enumerate(outputs) if not o.complete]
    if args.json:
        print(json.dumps({
            "model": args.model, "grammar": args.grammar, "prompt": prompt, "method": args.method,
            "temperature": args.temperature, "seed": args.seed, "max_new_tokens": args.max_new_tokens,
            "samples": [{"text": o.text, "complete": o.complete, "stopped": o.stopped, "tokens": len(o.token_ids)}
                        for o in outputs],
            "tokens": tokens, "load_seconds": round(t1 - t0, 3), "compile_seconds": round(t2 - t1, 3),
            "generate_seconds": round(seconds, 3), "tokens_per_second": round(tokens / seconds, 2),
        }, ensure_ascii=False, indent=2))
    else:
        for i, o in enumerate(outputs):
            if o.complete:
                if len(outputs) > 1:
                    print(f"# sample {i + 1}/{len(outputs)} ({len(o.token_ids)} tokens)")
                print(o.text)
    for i in incomplete:
        which = f"sample {i + 1}/{len(outputs)}" if len(outputs) > 1 else "the output"
        _fail(f"{which} is incomplete: --max-new-tokens {args.max_new_tokens} ran out before it was a word "
              f"of the grammar; partial text: {outputs[i].text!r}")
    return 1 if incomplete else 0


def _check(args: argparse.Namespace) -> int:
    from gcd.compiler import GrammarCompiler
    from gcd.hf import load_tokenizer
    from gcd.vocab import Vocabulary

    grammar = _grammar(args.grammar)
    t0 = time.perf_counter()
    grammar.recognizer  # parser tables: conflicts, lexer
    parse_seconds = time.perf_counter() - t0
    vocab = Vocabulary.from_hf(load_tokenizer(args.tokenizer))
    compiled = GrammarCompiler(vocab, cache=False, progress=sys.stderr.isatty()).compile(grammar)
    print(f"{args.grammar}: OK")
    stats = {"start": grammar.start, **compiled.stats(), "tokenizer": args.tokenizer,
             "parser_build_seconds": round(parse_seconds, 3)}
    width = max(map(len, stats))
    for key, value in stats.items():
        print(f"  {key:<{width}}  {value}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import numpy as np

    from gcd.compiler import GrammarCompiler
    from gcd.hf import load_tokenizer
    from gcd.vocab import Vocabulary

    grammar = _grammar(args.grammar)
    tokenizer = load_tokenizer(args.tokenizer)
    vocab = Vocabulary.from_hf(tokenizer)
    t0 = time.perf_counter()
    compiled = GrammarCompiler(vocab, cache=False, progress=False).compile(grammar)
    compile_seconds = time.perf_counter() - t0
    words = _draw_words(grammar, args.words, args.seed)
    if not words:
        raise GCDError(f"{args.grammar}: drew no word of the grammar to benchmark on")
    eos = vocab.eos_token_ids[0]
    streams = [[*tokenizer.encode(w, add_special_tokens=False), eos] for w in words]
    streams = [s for s in streams if _replays(compiled, s)]  # else the tokenizer normalised the text
    if not streams:
        raise GCDError(f"{args.grammar}: none of the {len(words)} drawn words survived tokenization")
    print(f"{args.grammar} with {args.tokenizer} ({vocab.size} tokens)")
    print(f"  compile      {compile_seconds:.3f} s")
    print(f"  words        {len(streams)} drawn from the grammar, {sum(map(len, streams))} tokens")
    print("  per token (fill_bitmask + consume_token), µs:")
    for label in ("first pass", "second pass"):  # the first builds the masks compiling left to do
        us = np.array(_time_steps(compiled, streams)) * 1e6
        print(f"    {label:<12} p50 {np.percentile(us, 50):8.1f}   p99 {np.percentile(us, 99):10.1f}   "
              f"mean {us.mean():8.1f}   max {us.max():10.1f}")
    return 0


def _replays(compiled: CompiledGrammar, tokens: list[int]) -> bool:
    matcher = compiled.matcher()
    return all(matcher.consume_token(t) for t in tokens)


def _time_steps(compiled: CompiledGrammar, streams: list[list[int]]) -> list[float]:
    """Seconds of fill_bitmask + consume_token for every token of every stream."""
    from gcd.masks import allocate_token_bitmask

    bitmask = allocate_token_bitmask(1, compiled.vocab.size)
    times = []
    for tokens in streams:
        matcher = compiled.matcher()
        for token in tokens:
            t = time.perf_counter()
            matcher.fill_bitmask(bitmask, 0)
            matcher.consume_token(token)
            times.append(time.perf_counter() - t)
    return times


def _draw_words(grammar: Grammar, count: int, seed: int) -> list[str]:
    """Up to ``count`` distinct words of the grammar drawn with ``gcd.testing.words``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    from gcd.testing import words

    found: dict[str, None] = {}
    try:
        strategy = words(grammar.text, grammar.start, separator=" ")
    except ValueError as e:
        raise GCDError(f"cannot draw words from the grammar: {e}") from None

    @fix_seed(seed)
    @settings(max_examples=20 * count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(word: str) -> None:
        if len(found) < count and grammar.accepts(word):
            found[word] = None

    draw()
    return list(found)


if __name__ == "__main__":
    sys.exit(main())

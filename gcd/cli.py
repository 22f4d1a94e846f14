"""The ``gcd`` command: ``gcd sample | check | bench | cache``.

Every user error (missing file, grammar error, unknown model, bad argument) is one line on
stderr and a non-zero exit code: 1 for errors and incomplete outputs, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
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
MAX_TEMPERATURE = 1e4   # beyond it the distribution is uniform to float32 precision


class _UsageError(Exception):
    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print the usage and exit
        raise _UsageError(self.prog, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gcd`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        args = _parser().parse_args(argv)
        return args.run(args)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except _UsageError as e:
        print(f"{e.prog}: error: {e} (see {e.prog} --help)", file=sys.stderr)
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


def _trailing(text: str) -> int | None:
    return None if text == "none" else _positive(text, least=0)


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= MAX_TEMPERATURE):
        raise argparse.ArgumentTypeError(f"must be a number from 0 to {MAX_TEMPERATURE:g}, got {text}")
    return value


def default_threads() -> int:
    """Torch threads for the CLI: half the cores, at most 4. Torch's own default (every core)
    makes a small model ~20x slower when other work shares the machine."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gcd", description="Grammar-constrained decoding with exact token masks.")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND", parser_class=_Parser)
    defaults = argparse.ArgumentDefaultsHelpFormatter

    sample = sub.add_parser("sample", help="generate text that is a word of a grammar", formatter_class=defaults,
                            description="Generate with a language model, constrained to a grammar. A single "
                                        "sample streams to the terminal as it is generated.")
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument("--grammar", help="a .lark grammar file")
    source.add_argument("--json-schema", metavar="FILE", help="a JSON Schema file: generate JSON valid under it")
    sample.add_argument("--prompt", help="the prompt (default: one suited to the grammar file's name)")
    sample.add_argument("--model", default="smollm2",
                        help="smollm2, gemma3, a .gguf file, a local model folder or a Hub id")
    sample.add_argument("--max-new-tokens", type=_positive, default=256, metavar="N",
                        help="stop after N tokens (an output that is not a word by then is reported incomplete)")
    sample.add_argument("--temperature", type=_temperature, default=None, metavar="T",
                        help="0: greedy; > 0: sampling at temperature T (default: 0 for mask, 1 for the others)")
    sample.add_argument("--num-samples", type=_positive, default=1, metavar="K",
                        help="samples to draw (mask: needs --temperature > 0; smc: runs)")
    sample.add_argument("--seed", type=_seed, default=0, metavar="S", help="random seed (sampling)")
    sample.add_argument("--threads", type=_positive, default=default_threads(), metavar="N",
                        help="torch CPU threads")
    sample.add_argument("--method", choices=["mask", "awrs", "smc", "asap"], default="mask",
                        help="mask: the model restricted to allowed tokens, step by step (through HF generate); "
                             "awrs: the same tokens by weighted rejection sampling (a few checks a token); "
                             "smc: sequential Monte Carlo over --particles, faithful to the model conditioned "
                             "on the grammar (prints one particle per run, drawn by weight); asap: grammar-aligned "
                             "sampling whose samples approach that target as they accumulate")
    sample.add_argument("--particles", type=_positive, default=4, metavar="N", help="smc: particles per run")
    sample.add_argument("--diffusion", action="store_true",
                        help="decode with the small masked-diffusion model gcd ships (byte-level, unconditional: "
                             "no prompt; at most 64 bytes) instead of --model")
    sample.add_argument("--max-trailing", type=_trailing, default=2, metavar="N",
                        help="once the text is a word, at most N tokens of %%ignore text (whitespace) before EOS "
                             "is forced ('none': no bound)")
    sample.add_argument("--json", action="store_true", help="print one JSON object with texts, token counts, timings")
    sample.set_defaults(run=_sample)

    check = sub.add_parser("check", help="validate a grammar and print its statistics", formatter_class=defaults,
                           description="Validate a grammar, compile it and print its statistics, then warnings "
                                       "with their lines: unreachable or unproductive rules, unused terminals, "
                                       "terminals that compete with %%ignore for whitespace, chat stop strings as "
                                       "text, and a grammar that is not LALR(1).")
    check.add_argument("grammar", nargs="?", help="a .lark grammar file")
    check.add_argument("--json-schema", metavar="FILE",
                       help="print the grammar gcd makes of this JSON Schema (or the keyword it cannot express)")
    check.add_argument("--tokenizer", default="smollm2", help="smollm2, gemma3, a .gguf file or a folder")
    check.set_defaults(run=_check)

    bench = sub.add_parser("bench", help="time compilation and per-token masks", formatter_class=defaults,
                           description="Compile time, per-token mask time (first and second pass) and memory, "
                                       "on words drawn from the grammar.")
    bench.add_argument("--grammar", required=True, help="a .lark grammar file")
    bench.add_argument("--tokenizer", default="smollm2", help="smollm2, gemma3, a .gguf file or a folder")
    bench.add_argument("--words", type=_positive, default=30, metavar="N", help="distinct words to draw")
    bench.add_argument("--seed", type=_seed, default=0, metavar="S", help="seed of the drawing")
    bench.set_defaults(run=_bench)

    test = sub.add_parser("test", help="fuzz a grammar against Lark, and token walks with a tokenizer",
                          formatter_class=defaults,
                          description="Draw words of the grammar (Lark as the oracle) and check that gcd accepts "
                                      "them, their prefixes and their one-edit near misses as Lark does, and that "
                                      "each walks token by token through the compiled grammar "
                                      "(gcd.testing.check_grammar). Exit 1 with the counterexamples on a failure.")
    test.add_argument("grammar", help="a .lark grammar file")
    test.add_argument("--tokenizer", default="smollm2",
                      help="smollm2, gemma3, a .gguf file, a folder, or 'none' (text checks only)")
    test.add_argument("--examples", type=_positive, default=100, metavar="N", help="words to draw")
    test.add_argument("--seed", type=_seed, default=0, metavar="S", help="seed of the drawing")
    test.set_defaults(run=_test)

    fill = sub.add_parser("infill", help="fill the {} holes of a template so that the text is a word of a grammar",
                          formatter_class=defaults,
                          description="Fill each {} of a template with the model, left to right, so that the whole "
                                      "text is a word of the grammar; the template's other text is kept verbatim "
                                      "({{ and }} stand for braces).")
    fill.add_argument("--grammar", required=True, help="a .lark grammar file")
    fill.add_argument("--template", required=True, help='e.g. "SELECT {} FROM users WHERE {}"')
    fill.add_argument("--prompt", help="what to ask the model (default: to fill in the template)")
    fill.add_argument("--model", default="smollm2", help="smollm2, gemma3, a .gguf file, a local model folder or a Hub id")
    fill.add_argument("--max-new-tokens", type=_positive, default=32, metavar="N", help="at most N tokens per hole")
    fill.add_argument("--temperature", type=_temperature, default=0.0, metavar="T", help="0: greedy")
    fill.add_argument("--seed", type=_seed, default=0, metavar="S", help="random seed (sampling)")
    fill.add_argument("--threads", type=_positive, default=default_threads(), metavar="N", help="torch CPU threads")
    fill.add_argument("--json", action="store_true", help="print one JSON object with the text, fills, checks, timings")
    fill.set_defaults(run=_infill)

    cache = sub.add_parser("cache", help="show or remove what gcd keeps on disk", formatter_class=defaults,
                           description="Show (info) or remove (clear) the compiled grammars and vocabulary "
                                       "files in gcd's cache folder ($GCD_CACHE_DIR or ~/.cache/gcd).")
    cache.add_argument("action", choices=["info", "clear"])
    cache.add_argument("--all", action="store_true",
                       help="clear: the converted models and tokenizers too (converting them again takes ~30 s)")
    cache.set_defaults(run=_cache)
    return parser


def _schema_grammar(path: str) -> Grammar:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise GCDError(f"cannot read the JSON Schema file {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return Grammar.from_json_schema(text)
    except GCDError as e:
        raise GCDError(f"{path}: {e}") from None


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

    if args.temperature is None:
        args.temperature = 0.0 if args.method == "mask" else 1.0
    if args.method == "mask" and args.num_samples > 1 and args.temperature == 0:
        raise _UsageError("gcd sample", "--num-samples > 1 needs --temperature > 0 (0 is greedy: one output)")
    if args.method != "mask" and args.temperature == 0:
        raise _UsageError("gcd sample", f"--method {args.method} samples: it needs --temperature > 0")
    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.json_schema:
        grammar = _schema_grammar(args.json_schema)
        default = f"Write a JSON value valid under this JSON Schema: {Path(args.json_schema).read_text().strip()}"
    else:
        grammar = _grammar(args.grammar)
        default = DEFAULT_PROMPTS.get(Path(args.grammar).stem, GENERIC_PROMPT)
    prompt = args.prompt if args.prompt is not None else default
    if args.diffusion:
        return _sample_diffusion(args, grammar)
    t0 = time.perf_counter()
    model, tokenizer = load_model(args.model, progress=True)
    t1 = time.perf_counter()
    compiled = GrammarCompiler(Vocabulary.from_hf(tokenizer), progress=sys.stderr.isatty()).compile(grammar)
    t2 = time.perf_counter()
    gc.collect()
    gc.freeze()   # the model's and the compile's objects: full collections then skip them (no 100+ ms pauses)
    torch.manual_seed(args.seed)
    if args.method != "mask":
        return _sample_faithful(args, model, tokenizer, compiled, prompt, {"load_seconds": round(t1 - t0, 3),
                                                                           "compile_seconds": round(t2 - t1, 3)})
    # one sample to a terminal streams; a pipe gets only finished words, at the end
    streaming = args.num_samples == 1 and not args.json and sys.stdout.isatty()
    stream = (lambda text: print(text, end="", flush=True)) if streaming else None
    outputs = generate(model, tokenizer, compiled, [prompt], max_new_tokens=args.max_new_tokens,
                       temperature=args.temperature, num_samples=args.num_samples,
                       progress=sys.stderr.isatty(), stream=stream, max_trailing=args.max_trailing)
    seconds = time.perf_counter() - t2
    tokens = sum(len(o.token_ids) for o in outputs)
    if args.json:
        print(json.dumps({
            **_settings(args, prompt),
            "samples": [{"text": o.text, "complete": o.complete, "stopped": o.stopped, "tokens": len(o.token_ids)}
                        for o in outputs],
            "tokens": tokens, "load_seconds": round(t1 - t0, 3), "compile_seconds": round(t2 - t1, 3),
            "generate_seconds": round(seconds, 3), "tokens_per_second": round(tokens / seconds, 2),
        }, ensure_ascii=False, indent=2))
    elif streaming:
        print()
    return _report(args, [(o.text, bool(o.complete), len(o.token_ids)) for o in outputs], printed=not args.json
                   and not streaming)


def _sample_diffusion(args: argparse.Namespace, grammar: Grammar) -> int:
    """``--diffusion``: the shipped byte-level masked-diffusion model, one canvas per sample."""
    from gcd.diffusion import byte_vocabulary, generate, load_shipped

    if args.method != "mask":
        raise _UsageError("gcd sample", "--diffusion decodes by masking only (no --method)")
    model, vocab = load_shipped(), byte_vocabulary()
    length = min(64, args.max_new_tokens)
    outputs = []
    t0 = time.perf_counter()
    for k in range(args.num_samples):
        out = generate(model, vocab, grammar, [], gen_length=length, steps=length, temperature=args.temperature,
                       seed=args.seed + k)
        outputs.append(out)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"model": "gcd diffusion-json-sql", "grammar": args.grammar, "json_schema": args.json_schema,
                          "samples": [{"text": o.text, "complete": o.finished, "forward_passes": o.forward_passes,
                                       "rejections": o.rejections} for o in outputs],
                          "generate_seconds": round(seconds, 3)}, ensure_ascii=False, indent=2))
    return _report(args, [(o.text, o.finished, len(o.token_ids)) for o in outputs], printed=not args.json)


def _settings(args: argparse.Namespace, prompt: str) -> dict:
    return {"model": args.model, "grammar": args.grammar, "json_schema": args.json_schema, "prompt": prompt,
            "method": args.method,
            "temperature": args.temperature, "seed": args.seed, "max_new_tokens": args.max_new_tokens,
            "max_trailing": args.max_trailing, "threads": args.threads,
            **({"particles": args.particles} if args.method == "smc" else {})}


def _report(args: argparse.Namespace, outputs: list[tuple[str, bool, int]], printed: bool) -> int:
    """Print the complete outputs (unless ``printed`` is False) and say which are incomplete."""
    if printed:
        for i, (text, complete, tokens) in enumerate(outputs):
            if complete:
                if len(outputs) > 1:
                    print(f"# sample {i + 1}/{len(outputs)} ({tokens} tokens)")
                print(text)
    incomplete = [i for i, o in enumerate(outputs) if not o[1]]
    for i in incomplete:
        which = f"sample {i + 1}/{len(outputs)}" if len(outputs) > 1 else "the output"
        _fail(f"{which} is incomplete: --max-new-tokens {args.max_new_tokens} ran out before it was a word "
              f"of the grammar (or no allowed token had any probability); partial text: {outputs[i][0]!r}")
    return 1 if incomplete else 0


def _finite(x: float | None) -> float | None:
    """JSON has no infinities: -inf (no weight) is written as null."""
    return x if x is not None and math.isfinite(x) else None


def _sample_faithful(args: argparse.Namespace, model, tokenizer, compiled: CompiledGrammar, prompt: str,
                     timings: dict) -> int:
    """``--method awrs|smc|asap`` through ``gcd.sample``; SMC prints one particle per run, drawn by weight."""
    import numpy as np

    from gcd.hf import chat_prompt
    from gcd.lm import HFLanguageModel
    from gcd.sampling import sample

    t0 = time.perf_counter()
    lm = HFLanguageModel(model, tokenizer, chat_prompt(tokenizer, prompt))
    out = sample(lm, compiled, args.method, num_samples=args.num_samples, max_new_tokens=args.max_new_tokens,
                 seed=args.seed, temperature=args.temperature, max_trailing=args.max_trailing,
                 particles=args.particles)
    seconds = time.perf_counter() - t0
    tokens = sum(len(s.token_ids) for s in out)
    if args.method == "smc":   # one output per run: a particle drawn by its weight
        rng = np.random.default_rng(args.seed)
        shown = []
        for r in range(args.num_samples):
            run = [s for s in out if s.run == r]
            w = np.array([s.log_weight for s in run])
            if np.isfinite(w).any():
                p = np.exp(w - w.max())
                shown.append(run[int(rng.choice(len(run), p=p / p.sum()))])
            else:
                shown.append(max(run, key=lambda s: len(s.token_ids)))
    else:
        shown = list(out)
    if args.json:
        print(json.dumps({
            **_settings(args, prompt),
            "samples": [{"text": s.text, "finished": s.finished, "log_weight": _finite(s.log_weight), "run": s.run,
                         "tokens": len(s.token_ids), "checks": s.checks,
                         "checks_per_token": round(s.checks / max(1, len(s.token_ids)), 3)} for s in out],
            "log_evidence": _finite(out.log_evidence), "tokens": tokens, **timings,
            "generate_seconds": round(seconds, 3), "tokens_per_second": round(tokens / seconds, 2),
            "forward_passes": lm.forward_passes,
        }, ensure_ascii=False, indent=2))
    return _report(args, [(s.text, s.finished, len(s.token_ids)) for s in shown], printed=not args.json)


def _infill(args: argparse.Namespace) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers.utils import logging as hf_logging

    from gcd.hf import chat_prompt, load_model
    from gcd.infill import infill, parse_template
    from gcd.lm import HFLanguageModel
    from gcd.vocab import Vocabulary

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    grammar = _grammar(args.grammar)
    shown = "".join("___" if c is None else c for c in parse_template(args.template))
    prompt = args.prompt if args.prompt is not None else f"Fill in each ___ of this text and write it out in full: {shown}"
    model, tokenizer = load_model(args.model, progress=True)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    lm = HFLanguageModel(model, tokenizer, chat_prompt(tokenizer, prompt))
    out = infill(lm, Vocabulary.from_hf(tokenizer), grammar, args.template, max_new_tokens=args.max_new_tokens,
                 temperature=args.temperature, seed=args.seed)
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"model": args.model, "grammar": args.grammar, "template": args.template, "prompt": prompt,
                          "text": out.text, "fills": out.fills, "finished": out.finished, "tokens": out.tokens,
                          "checks": out.checks, "seconds": round(seconds, 3),
                          "seconds_per_token": round(seconds / max(1, out.tokens), 3)}, ensure_ascii=False, indent=2))
    elif out.finished:
        print(out.text)
    if not out.finished:
        _fail(f"the output is incomplete: a hole could not be closed within --max-new-tokens {args.max_new_tokens}; "
              f"partial text: {out.text!r}")
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    from gcd.compiler import GrammarCompiler
    from gcd.hf import load_tokenizer
    from gcd.vocab import Vocabulary

    if args.json_schema:
        if args.grammar:
            raise _UsageError("gcd check", "give a grammar file or --json-schema, not both")
        print(_schema_grammar(args.json_schema).text, end="")
        return 0
    if not args.grammar:
        raise _UsageError("gcd check", "a grammar file (or --json-schema FILE) is required")
    grammar = _grammar(args.grammar)
    t0 = time.perf_counter()
    grammar.recognizer  # parser tables: conflicts, lexer
    parse_seconds = time.perf_counter() - t0
    tokenizer = load_tokenizer(args.tokenizer)
    vocab = Vocabulary.from_hf(tokenizer)
    compiled = GrammarCompiler(vocab, cache=False, progress=sys.stderr.isatty()).compile(grammar)
    print(f"{args.grammar}: OK")
    stats = {"start": grammar.start, **compiled.stats(), "tokenizer": args.tokenizer,
             "parser_build_seconds": round(parse_seconds, 3)}
    width = max(map(len, stats))
    for key, value in stats.items():
        print(f"  {key:<{width}}  {value}")
    from gcd.lint import CHAT_STOP_STRINGS, lint

    specials = [t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special]
    for warning in lint(grammar, [*CHAT_STOP_STRINGS, *specials]):
        print(f"warning: {warning}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from gcd.testing import check_grammar

    grammar = _grammar(args.grammar)
    vocab = None
    if args.tokenizer != "none":
        from gcd.hf import load_tokenizer
        from gcd.vocab import Vocabulary

        vocab = Vocabulary.from_hf(load_tokenizer(args.tokenizer))
    t0 = time.perf_counter()
    report = check_grammar(grammar, vocab, examples=args.examples, seed=args.seed)
    print(f"{args.grammar} ({'text only' if vocab is None else args.tokenizer}, {time.perf_counter() - t0:.1f} s)")
    print(report)
    return 0 if report.ok else 1


def _bench(args: argparse.Namespace) -> int:
    import numpy as np

    from gcd.compiler import GrammarCompiler
    from gcd.hf import load_tokenizer
    from gcd.vocab import Vocabulary

    grammar = _grammar(args.grammar)
    tokenizer = load_tokenizer(args.tokenizer)
    vocab = Vocabulary.from_hf(tokenizer)
    words, tries = _drawn_words(grammar, args.words, args.seed)
    if not words:
        raise GCDError(f"{args.grammar}: drew no word of the grammar in {tries} tries")
    eos = vocab.eos_token_ids[0]
    rss0 = _rss_mib()
    t0 = time.perf_counter()
    compiled = GrammarCompiler(vocab, cache=False, progress=False).compile(grammar)
    compile_seconds = time.perf_counter() - t0
    rss1 = _rss_mib()
    streams = [tokenizer.encode(w, add_special_tokens=False) for w in words]
    # a tokenizer may normalise text: keep the words whose tokens still spell a word
    kept = [[*s, eos] for s in streams if grammar.accepts(b"".join(vocab.token_bytes(t) for t in s))]
    if not kept:
        raise GCDError(f"{args.grammar}: none of the {len(words)} drawn words survived tokenization")
    print(f"{args.grammar} with {args.tokenizer} ({vocab.size} tokens)")
    print(f"  compile      {compile_seconds:.3f} s (cold, no disk cache)")
    drawn = f"{len(words)} distinct words" + (f" (of {args.words} asked: {tries} draws found no more)"
                                              if len(words) < args.words else "")
    lost = len(words) - len(kept)
    print(f"  words        {drawn}{f', {lost} changed by tokenization and left out' if lost else ''}; "
          f"{sum(map(len, kept))} tokens")
    print("  per token (fill_bitmask + consume_token), µs:")
    gc.collect()   # start the timed passes without the garbage of the set-up
    for label in ("first pass", "second pass"):  # the first builds the masks compiling left to do
        us = np.array(_time_steps(compiled, kept)) * 1e6
        print(f"    {label:<12} p50 {np.percentile(us, 50):8.1f}   p99 {np.percentile(us, 99):9.1f}   "
              f"mean {us.mean():8.1f}   max {us.max():10.1f}")
    stats = compiled.automata.stats()
    print(f"  memory       RSS {rss0:.0f} MiB before compiling, {rss1:.0f} after, {_rss_mib():.0f} after the "
          f"passes; caches {stats['cache_bytes'] / 2**20:.1f} MiB ({stats['cached_masks']} masks, "
          f"{stats['token_outcomes']} token outcomes)")
    return 0


def _rss_mib() -> float:
    """Resident memory of this process now, in MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


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


def _drawn_words(grammar: Grammar, count: int, seed: int) -> tuple[list[str], int]:
    """Up to ``count`` distinct words of the grammar and the draws tried, drawn in a child
    process where the platform can fork: Hypothesis leaves ~1M objects behind, which would
    make every garbage collection of the timed process slower."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return _draw_words(grammar, count, seed)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        return pool.apply(_draw_words, (grammar, count, seed))


def _draw_words(grammar: Grammar, count: int, seed: int) -> tuple[list[str], int]:
    """Up to ``count`` distinct words of the grammar drawn with ``gcd.testing.words``, and the
    number of draws tried (20 per word asked)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    from gcd.testing import derivations

    found: dict[str, None] = {}
    try:
        strategy = derivations(grammar.text, grammar.start, separator=" ")
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
    return list(found), 20 * count


def _cache(args: argparse.Namespace) -> int:
    from gcd import store
    from gcd.compiler import default_cache_dir

    root = default_cache_dir()
    entries = sorted((root / "compiled").glob("*.gcd")) + sorted((root / "vocab").glob("*.gcd"))
    extra = [p for p in (root / "models", root / "tokenizers") if p.is_dir()]
    if args.action == "clear":
        for path in entries + (sorted((root / "compiled").glob("*.tmp")) + sorted((root / "vocab").glob("*.tmp"))):
            path.unlink(missing_ok=True)
        removed = len(entries)
        if args.all:
            for folder in extra:
                shutil.rmtree(folder, ignore_errors=True)
        print(f"removed {removed} cache files from {root}" + (" and the converted models and tokenizers"
                                                               if args.all and extra else ""))
        return 0
    print(f"{root}:")
    total = 0
    for path in entries:
        size = path.stat().st_size
        total += size
        try:
            meta, _ = store.read(path)
            if path.parent.name == "compiled":
                g = meta.get("grammar", {})
                what = (f"grammar {g.get('path') or '(text)'}, start {g.get('start')!r}, {g.get('terminals')} "
                        f"terminals, vocabulary {meta.get('vocab', '?')[:12]}, compiled in "
                        f"{meta.get('compile_seconds', 0):.1f} s")
            else:
                what = f"vocabulary {meta.get('vocab', '?')[:12]} ({meta.get('size')} tokens)"
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.get("created", path.stat().st_mtime)))
        except store.StoreError as e:
            what, when = f"unusable ({e}); rebuilt when next needed", "-"
        print(f"  {path.parent.name}/{path.name}  {size / 2**20:7.2f} MiB  {when}  {what}")
    for folder in extra:
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        total += size
        print(f"  {folder.name}/  {size / 2**20:7.2f} MiB  converted {folder.name} (kept by `gcd cache clear`, "
              "removed by --all)")
    print(f"  total {total / 2**20:.2f} MiB in {len(entries)} cache files")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""vLLM (CPU) throughput with gcd's processor beside vLLM's own structured outputs, in one run.

    HF_HUB_OFFLINE=1 .venv-vllm/bin/python bench/vllm_throughput.py [--prompts 16] [--tokens 128]

One engine (SmolLM2, bfloat16, the processor loaded); each row is one batch of ``--prompts``
greedy requests of up to ``--tokens`` tokens, generated at once: unconstrained; vLLM's
structured outputs (xgrammar) with ``grammars/json.lark`` and ``grammars/sql.lark`` as Lark
grammars and its ``json_object`` mode; gcd with the same two grammars. A warm-up request per
grammar first (compiles, not timed in the rows; its time is printed). Prints tokens/s, the
share of unconstrained, outputs ended by EOS, outputs that are words of the grammar, outputs that end in 4 or more
blank characters (padding), and the
time gcd's processor spent per engine step (``GCD_VLLM_STATS``).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
JSON_TASKS = ["a person with a name, an age and a list of hobbies", "a book with title, author and year",
              "the weather in Paris today", "a shopping list of five items", "a user account with an email",
              "three cities and their countries", "a movie with its director and cast", "a laptop's specs"]
SQL_TASKS = ["the names of users older than 30", "the number of orders per customer", "the ten most expensive products",
             "employees hired after 2020 with their departments", "the average salary per department",
             "customers who never placed an order", "the total sales per month in 2023", "the oldest user"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    stats_file = Path(tempfile.mkdtemp()) / "gcd-stats.json"
    os.environ["GCD_VLLM_STATS"] = str(stats_file)   # read by the processor in the engine process

    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    import gcd
    import gcd.vllm
    from gcd.hf import chat_prompt, model_folder

    folder = str(model_folder("smollm2"))
    t0 = time.perf_counter()
    llm = LLM(model=folder, dtype="bfloat16", max_model_len=1024, enforce_eager=True, seed=0,
              gpu_memory_utilization=0.3, logits_processors=[gcd.vllm.GrammarLogitsProcessor])
    print(f"engine loaded in {time.perf_counter() - t0:.1f} s")
    tokenizer = llm.get_tokenizer()
    texts = {name: (ROOT / "grammars" / f"{name}.lark").read_text() for name in ("json", "sql")}
    prompts = {"json": [chat_prompt(tokenizer, f"Reply with a JSON object describing {t}.") for t in JSON_TASKS],
               "sql": [chat_prompt(tokenizer, f"Write one SQL query that selects {t}.") for t in SQL_TASKS]}
    prompts = {k: [v[i % len(v)] for i in range(args.prompts)] for k, v in prompts.items()}

    def params(**kw) -> SamplingParams:
        return SamplingParams(max_tokens=args.tokens, temperature=0, **kw)

    rows = [("unconstrained", "json", params(), None), ("unconstrained", "sql", params(), None),
            ("vLLM json_object", "json", params(structured_outputs=StructuredOutputsParams(json_object=True)), None),
            ("vLLM xgrammar json.lark", "json",
             params(structured_outputs=StructuredOutputsParams(grammar=texts["json"])), "json"),
            ("vLLM xgrammar sql.lark", "sql",
             params(structured_outputs=StructuredOutputsParams(grammar=texts["sql"])), "sql"),
            ("gcd json.lark", "json", params(extra_args={gcd.vllm.GRAMMAR_KEY: texts["json"]}), "json"),
            ("gcd sql.lark", "sql", params(extra_args={gcd.vllm.GRAMMAR_KEY: texts["sql"]}), "sql")]
    for name, kind, p, _ in rows:   # warm-up: compiles each grammar once
        if name != "unconstrained":
            t = time.perf_counter()
            llm.generate(prompts[kind][:1], p, use_tqdm=False)
            print(f"warm-up {name}: {time.perf_counter() - t:.2f} s (one request, compile included)")
    grammars = {k: gcd.Grammar(v) for k, v in texts.items()}
    print(f"gcd compiled its two grammars in {_stats(stats_file)['compile_seconds']:.2f} s"
          " (from gcd's disk cache when an earlier run compiled them)")
    print(f"\n{args.prompts} prompts x up to {args.tokens} tokens, greedy, one batch")
    print(f"{'row':30} {'tokens':>6} {'s':>6} {'tok/s':>7} {'vs unc.':>7} {'EOS':>5} {'valid':>5} {'padded':>6} {'gcd ms/step':>11}")
    base: dict[str, float] = {}
    seen = _stats(stats_file)   # what the warm-ups cost is not in the rows

    def row(label: str, kind: str, p: SamplingParams | list[SamplingParams], check: str | None,
            versus: float | None = None) -> tuple[list, float]:
        nonlocal seen
        stats_file.unlink(missing_ok=True)
        t = time.perf_counter()
        done = [o.outputs[0] for o in llm.generate(prompts[kind], p, use_tqdm=False)]
        seconds = time.perf_counter() - t
        tokens = sum(len(c.token_ids) for c in done)
        rate = tokens / seconds
        base.setdefault(kind, rate)
        eos = sum(c.finish_reason == "stop" for c in done)
        padded = sum(len(c.text) - len(c.text.rstrip()) >= 4 for c in done)   # ends in 4+ blank characters
        valid = (str(sum(grammars[check].accepts(c.text) for c in done)) if check
                 else str(sum(_is_json(c.text) for c in done)) if "json_object" in label else "-")
        per_step = "-"
        if label.startswith("gcd"):
            after = _stats(stats_file)
            steps = after["steps"] - seen["steps"]
            per_step = f"{1e3 * (after['seconds'] - seen['seconds']) / steps:.3f}" if steps else "?"
            seen = after
        print(f"{label:30} {tokens:6d} {seconds:6.1f} {rate:7.1f} {rate / (versus or base[kind]):7.0%} {eos:5d} "
              f"{valid:>5} {padded:6d} {per_step:>11}")
        if check:
            print(f"{'':30} e.g. {done[0].text[:90]!r}")
        return done, rate

    for label, kind, p, check in rows:
        done, rate = row(label if label != "unconstrained" else f"unconstrained ({kind})", kind, p, check)
        if label.startswith("gcd"):   # the same lengths without a grammar: the cost of gcd alone
            same = [SamplingParams(max_tokens=len(c.token_ids), min_tokens=len(c.token_ids), ignore_eos=True,
                                   temperature=0) for c in done]
            _, plain = row("  unconstrained, same lengths", kind, same, None)
            print(f"{'':30} gcd at {rate / plain:.0%} of unconstrained for the same tokens")
    return 0


def _stats(path: Path) -> dict:
    """The processor's cumulative stats, written by the engine when its batch empties."""
    for _ in range(50):
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.1)
    raise SystemExit(f"the processor wrote no stats to {path}")



def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Faithful sampling on SmolLM2 (CPU, one thread) with the JSON grammar: tokens/s of each
method (SMC: tokens over all particles per second, batched forward passes), AWRS grammar checks
per token (mean, p99), and how often outputs end by EOS within the budget, with and without the
bound on trailing whitespace; optionally genlm-control's AWRS-SMC on the same model, grammar and
prompt in the same run (``--genlm-python``: a Python that has genlm-control, see
``bench/genlm_peer.py``).

    OMP_NUM_THREADS=1 .venv/bin/python bench/sampling.py [--samples 4] [--max-new-tokens 128]
        [--genlm-python /path/to/venv/bin/python]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import gcd  # noqa: E402
import gcd.sampling  # noqa: E402
from gcd.hf import chat_prompt, load_model, model_folder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Describe a cat as JSON."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=4, help="samples per method (SMC: runs)")
    ap.add_argument("--particles", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--genlm-python", help="a Python with genlm-control installed, to run it beside gcd")
    ap.add_argument("--genlm-max-tokens", type=int, default=48)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_model("smollm2")
    grammar = gcd.Grammar.from_file(ROOT / "grammars" / "json.lark")
    compiled = gcd.GrammarCompiler(gcd.Vocabulary.from_hf(tokenizer), progress=False).compile(grammar)
    prompt = chat_prompt(tokenizer, PROMPT)
    checks: list[int] = []
    exact: list[bool] = []
    step = gcd.sampling.awrs_step

    def counted(*a, **k):
        out = step(*a, **k)
        checks.append(out.checks)
        exact.append(out.exact)
        return out

    gcd.sampling.awrs_step = counted
    print(f"SmolLM2-135M-Instruct, grammars/json.lark, prompt {PROMPT!r}, 1 thread, {args.samples} samples "
          f"(SMC: runs of {args.particles} particles), at most {args.max_new_tokens} tokens, temperature 1")
    print(f"{'method':<6} {'max_trailing':>12} {'tokens/s':>9} {'checks/token':>13} {'p99':>4} {'exact':>6} "
          f"{'EOS-ended':>10} {'valid JSON':>10}")
    for trailing in (gcd.sampling.DEFAULT_MAX_TRAILING, None):
        for method in ("mask", "awrs", "smc", "asap"):
            checks.clear()
            exact.clear()
            lm = gcd.HFLanguageModel(model, tokenizer, prompt)
            t0 = time.perf_counter()
            out = gcd.sample(lm, compiled, method, num_samples=args.samples, max_new_tokens=args.max_new_tokens,
                             seed=args.seed, max_trailing=trailing, particles=args.particles)
            seconds = time.perf_counter() - t0
            tokens = sum(len(s.token_ids) for s in out)
            ended = sum(s.finished for s in out)
            valid = sum(_is_json(s.text) for s in out if s.finished)
            c = (f"{np.mean(checks):13.2f} {np.percentile(checks, 99):4.0f} {np.mean(exact):6.1%}" if checks
                 else f"{'-':>13} {'-':>4} {'-':>6}")
            print(f"{method:<6} {str(trailing):>12} {tokens / seconds:9.2f} {c} {ended:>5}/{len(out):<4} "
                  f"{valid:>5}/{ended:<4}", flush=True)
    if args.genlm_python:
        cmd = [args.genlm_python, str(ROOT / "bench" / "genlm_peer.py"), "--model", str(model_folder("smollm2")),
               "--grammar", str(ROOT / "grammars" / "json.lark"), "--prompt", PROMPT,
               "--particles", str(args.particles), "--max-tokens", str(args.genlm_max_tokens),
               "--runs", str(args.samples)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if res.returncode:
            print(f"genlm-control failed: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else res.returncode}")
        else:
            peer = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"genlm-control {peer['version']} AWRS-SMC ({args.particles} particles, max_tokens "
                  f"{args.genlm_max_tokens}): {peer['tokens']} tokens in {peer['seconds']:.1f} s = "
                  f"{peer['tokens'] / peer['seconds']:.2f} tokens/s, {peer['checks_per_token']:.2f} checks/token, "
                  f"EOS-ended before the budget {peer['finished']}/{peer['particles']}")
            lm = gcd.HFLanguageModel(model, tokenizer, prompt)
            checks.clear()
            t0 = time.perf_counter()
            out = gcd.sample(lm, compiled, "smc", num_samples=args.samples, particles=args.particles,
                             max_new_tokens=args.genlm_max_tokens, seed=args.seed)
            seconds = time.perf_counter() - t0
            tokens = sum(len(s.token_ids) for s in out)
            print(f"gcd smc, same settings: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.2f} tokens/s, "
                  f"{np.mean(checks):.2f} checks/token, EOS-ended {sum(s.finished for s in out)}/{len(out)}")
    return 0


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""genlm-control's AWRS-SMC as a peer for ``bench/sampling.py`` (run in an environment that
has genlm-control 0.4.1, never gcd's): ``BoolCFG.from_lark`` of the grammar coerced to the model's tokens,
``AWRS(llm, condition).smc(n_particles, ess_threshold=0.5, max_tokens)`` on a local HF model
folder, one thread. Prints one JSON line: tokens over all particles, seconds, constraint checks
(calls of AWRS's accept test) per token, particles that ended by EOS before ``max_tokens``.

    OMP_NUM_THREADS=1 /path/to/genlm-venv/bin/python bench/genlm_peer.py --model FOLDER \
        --grammar grammars/json.lark --prompt "Describe a cat as JSON." [--particles 4] [--max-tokens 48]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from importlib.metadata import version

import torch
from genlm.control import AWRS, BoolCFG, PromptedLLM
from genlm.control.sampler import token as token_samplers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--grammar", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--particles", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    llm = PromptedLLM.from_name(args.model, backend="hf")
    tokenizer = llm.model.tokenizer
    text = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], tokenize=False,
                                         add_generation_prompt=True)
    llm.prompt_ids = tokenizer.encode(text, add_special_tokens=False)
    condition = BoolCFG.from_lark(open(args.grammar).read()).coerce(llm, f=b"".join)   # bytes of the tokens
    checks = [0]
    accept = token_samplers.AWRS._accept

    async def counted(self, context, token, verbosity=0):
        checks[0] += 1
        return await accept(self, context, token, verbosity)

    token_samplers.AWRS._accept = counted
    sampler = AWRS(llm, condition)
    tokens = finished = particles = 0
    t0 = time.perf_counter()
    for _ in range(args.runs):
        seqs = asyncio.run(sampler.smc(n_particles=args.particles, ess_threshold=0.5, max_tokens=args.max_tokens))
        for ctx in seqs.contexts:
            particles += 1
            tokens += len(ctx)
            # genlm ends a particle that reaches max_tokens with EOS too: count EOS before the budget
            finished += bool(ctx) and str(ctx[-1]) == "EOS" and len(ctx) < args.max_tokens
    seconds = time.perf_counter() - t0
    print(json.dumps({"version": version("genlm-control"), "tokens": tokens, "seconds": seconds,
                      "checks_per_token": checks[0] / max(tokens, 1), "finished": finished, "particles": particles}))


if __name__ == "__main__":
    main()

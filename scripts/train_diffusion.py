#!/usr/bin/env python3
"""Train the small masked-diffusion model gcd ships (gcd/models/diffusion-json-sql): a
byte-level BERT (4 layers, 128 wide, ~0.6M parameters) trained with the masked-diffusion
objective (a mask ratio t ~ U(0, 1) per sequence, every position masked with probability t,
cross-entropy on the masked positions weighted by 1/t, as LLaDA trains) on JSON documents
and SQL queries, one per 64-byte canvas, EOS-padded. Runs on this CPU:

    OMP_NUM_THREADS=2 .venv/bin/python scripts/train_diffusion.py [--steps 2000]

The data: the JSON and SQL files under tests/data plus JSON objects and SELECT queries
generated from small vocabularies (seeded), each at most 63 bytes.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from gcd.diffusion import BYTE_EOS, BYTE_MASK, BYTE_VOCAB_SIZE

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "gcd" / "models" / "diffusion-json-sql"
LENGTH = 64
NAMES = ["name", "age", "city", "id", "price", "tags", "color", "ok", "email", "items"]
WORDS = ["Ada", "Tom", "Paris", "red", "blue", "cat", "x", "Lyon", "a b", "ok"]
TABLES = ["users", "orders", "people", "items", "t"]
COLUMNS = ["name", "age", "id", "price", "city", "total"]


def value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["str", "int", "float", "bool", "null"] + (["list", "obj"] if depth < 2 else []))
    if kind == "str":
        return rng.choice(WORDS)
    if kind == "int":
        return rng.randint(-5, 120)
    if kind == "float":
        return round(rng.uniform(0, 100), rng.randint(1, 2))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(NAMES): value(rng, depth + 1) for _ in range(rng.randint(1, 3))}


def query(rng: random.Random) -> str:
    cols = ", ".join(rng.sample(COLUMNS, rng.randint(1, 3))) if rng.random() < 0.7 else "*"
    q = f"SELECT {cols} FROM {rng.choice(TABLES)}"
    if rng.random() < 0.6:
        q += f" WHERE {rng.choice(COLUMNS)} {rng.choice(['=', '>', '<'])} {rng.randint(0, 99)}"
    if rng.random() < 0.3:
        q += f" ORDER BY {rng.choice(COLUMNS)}"
    return q + ";"


def corpus(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        text = json.dumps(value(rng, 1) if rng.random() < 0.2 else {k: value(rng, 1) for k in
                          rng.sample(NAMES, rng.randint(1, 3))}) if rng.random() < 0.6 else query(rng)
        data = text.encode()
        if len(data) < LENGTH:
            out.append(data)
    return out


def batch(docs: list[bytes], size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    idx = torch.randint(len(docs), (size,), generator=gen)
    x = torch.full((size, LENGTH), BYTE_EOS, dtype=torch.long)
    for row, i in enumerate(idx.tolist()):
        d = docs[i]
        x[row, : len(d)] = torch.tensor(list(d))
    t = torch.rand(size, 1, generator=gen).clamp(min=1e-3)
    masked = torch.rand(size, LENGTH, generator=gen) < t
    return x, masked, t


def main() -> None:
    from transformers import BertConfig, BertForMaskedLM

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    docs = corpus(20000, args.seed)
    config = BertConfig(vocab_size=BYTE_VOCAB_SIZE, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                        num_attention_heads=4, max_position_embeddings=LENGTH, type_vocab_size=1,
                        pad_token_id=BYTE_EOS)
    model = BertForMaskedLM(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    for step in range(args.steps):
        x, masked, t = batch(docs, args.batch, gen)
        inputs = torch.where(masked, torch.tensor(BYTE_MASK), x)
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), x, reduction="none")
        loss = ((loss * masked) / t).sum() / (args.batch * LENGTH)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.perf_counter() - t0:.0f} s", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    (OUT / "TRAINING.md").write_text(
        f"Trained by scripts/train_diffusion.py --steps {args.steps} --batch {args.batch} --seed {args.seed} "
        f"in {time.perf_counter() - t0:.0f} s on a 2-core CPU; final loss {loss.item():.3f}.\n")


if __name__ == "__main__":
    main()

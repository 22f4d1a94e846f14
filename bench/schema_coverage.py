#!/usr/bin/env python3
"""JSON Schema coverage and exactness on real-world schemas, gcd beside llguidance.

For each schema of the corpus (``bench/schema_corpus.py``): does gcd compile it exactly
(``Grammar.from_json_schema`` raising ``UnsupportedSchemaError`` counts as not), does
llguidance accept it; compile times (gcd: schema -> grammar -> automata for SmolLM2, disk
cache off; llguidance: matcher creation plus its first mask, as it compiles lazily); and, on
what each compiles, every disagreement with ``jsonschema`` (format checker on):

- valid instances of the corpus that are rejected (walked token by token with SmolLM2's
  tokenizer: a token outside the mask, or no accepting end, is a rejection; an instance the
  tokenizer does not decode back to the same text is counted apart and not walked);
- invalid instances (one edit of a valid one: a key dropped or added, a value of another type
  or out of range, that ``jsonschema`` rejects) that are accepted;
- words gcd's grammar generates (``gcd.testing.words``) that are not valid instances.

Keys are written in the schema's order (gcd's ``property_order="schema"``; llguidance also
keeps that order) and text as ``json.dumps(..., ensure_ascii=False)`` writes it. Per-token
mask times (fill only) are over the valid instances' tokens.

    python bench/schema_coverage.py [--corpus ~/.cache/gcd-bench/schemas.jsonl] [--json out.json]

Needs a Python with gcd, jsonschema and (optional) llguidance; ``bench/schema_corpus.py``
needs hypothesis-jsonschema, which needs Hypothesis < 6.113 (a scratch venv).
"""
from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import random
import re
import signal
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jsonschema  # noqa: E402
import torch  # noqa: E402

import gcd  # noqa: E402
from gcd.hf import load_tokenizer  # noqa: E402


class Timeout(Exception):
    pass


def limited(seconds: int, fn, *args):
    """``fn(*args)``, or ``Timeout`` after ``seconds``."""
    def stop(*_):
        raise Timeout

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        return fn(*args)
    finally:
        signal.alarm(0)


def validator(schema: dict):
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def canonical(v, schema, x):
    """``x`` with object keys in the order gcd writes them (``gcd.schema``): the properties of
    what a schema inherits (its ``allOf`` parts, then its ``$ref``), then its own, then those of
    the ``anyOf``/``oneOf`` branch ``x`` is valid under; required names without a declaration
    after them; the other keys as they were."""
    if isinstance(x, dict):
        declared: dict = {}
        required: list = []
        _declared(v, schema, x, declared, required, 0)
        for name in required:
            declared.setdefault(name, True)
        keys = sorted(x, key=lambda k: (list(declared).index(k) if k in declared else len(declared), list(x).index(k)))
        own = _resolved(v, schema)

        def other(k):   # an undeclared key's schema: a pattern's, or additionalProperties
            for pattern, sub in own.get("patternProperties", {}).items():
                if re.search(pattern, k):
                    return sub
            return own.get("additionalProperties", True)
        return {k: canonical(v, declared[k] if k in declared else other(k), x[k]) for k in keys}
    if isinstance(x, list):
        schema = _resolved(v, schema)
        prefix = schema.get("prefixItems", schema.get("items") if isinstance(schema.get("items"), list) else [])
        rest = schema.get("items", True) if not isinstance(schema.get("items"), list) else True
        for key in ("allOf", "anyOf", "oneOf"):   # an array schema held in a combinator: its first branch
            if not prefix and rest is True and schema.get(key):
                return canonical(v, schema[key][0], x)
        return [canonical(v, prefix[i] if i < len(prefix) else rest, e) for i, e in enumerate(x)]
    return x


def _resolved(v, schema):
    while isinstance(schema, dict) and "$ref" in schema and not schema.get("properties"):
        try:
            schema = v.resolver.resolve(schema["$ref"])[1]
        except Exception:
            return {}
    return schema if isinstance(schema, dict) else {}


def _declared(v, schema, x, out: dict, required: list, depth: int) -> None:
    """Property name -> schema, in gcd's order, for the object ``x`` under ``schema`` (and the
    required names)."""
    if not isinstance(schema, dict) or depth > 30:
        return
    old_draft = "draft-0" in str(v.schema.get("$schema", ""))
    for part in schema.get("allOf", []):
        _declared(v, part, x, out, required, depth + 1)
    if "$ref" in schema:
        try:
            _declared(v, v.resolver.resolve(schema["$ref"])[1], x, out, required, depth + 1)
        except Exception:
            pass
        if old_draft:
            return   # before 2019-09 a $ref's siblings are ignored
    for name, sub in schema.get("properties", {}).items():
        out.setdefault(name, sub)
    required += [name for name in schema.get("required", []) if name not in required]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key) or []
        chosen = next((b for b in branches if v.evolve(schema=b).is_valid(x)), None)
        if chosen is not None:
            _declared(v, chosen, x, out, required, depth + 1)


def edits(x, rng: random.Random, n: int) -> list:
    """Up to ``n`` one-edit variants of ``x``."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, e in node.items():
                walk(e, path + [k])
        elif isinstance(node, list):
            for i, e in enumerate(node):
                walk(e, path + [i])

    walk(x, [])
    out = []
    for _ in range(n):
        y = copy.deepcopy(x)
        path = rng.choice(paths)
        parent = y
        for p in path[:-1]:
            parent = parent[p]
        node = parent[path[-1]] if path else y
        kind = rng.randrange(4)
        if kind == 0 and isinstance(node, dict) and node:
            del node[rng.choice(list(node))]
        elif kind == 1 and isinstance(node, dict):
            node["zz_unexpected"] = 1
        else:
            new = rng.choice(["text", 10 ** 12, -(10 ** 12), 0.5, None, True, [], {}, ""])
            if not path:
                y = new
            else:
                parent[path[-1]] = new
        out.append(y)
    return out


class GcdEngine:
    name = "gcd"

    def __init__(self, tok):
        self.compiler = gcd.GrammarCompiler(gcd.Vocabulary.from_hf(tok), cache=False, progress=False)
        self.bitmask = gcd.allocate_token_bitmask(1, self.compiler.vocab.size)

    def compile(self, schema):
        grammar = gcd.Grammar.from_json_schema(schema)
        return grammar, self.compiler.compile(grammar)

    def walk(self, compiled, tokens, eos, times) -> bool:
        m = compiled[1].matcher()
        for t in tokens:
            t0 = time.perf_counter()
            m.fill_bitmask(self.bitmask, 0)
            if times is not None:
                times.append(time.perf_counter() - t0)
            if not m.consume_token(t):
                return False
        return m.is_accepting()


class LLGuidanceEngine:
    name = "llguidance"

    def __init__(self, tok):
        import llguidance
        import llguidance.hf
        import llguidance.torch

        self.llg = llguidance
        self.tok = llguidance.hf.from_tokenizer(tok)
        self.fill = llguidance.torch.fill_next_token_bitmask
        self.bitmask = llguidance.torch.allocate_token_bitmask(1, self.tok.vocab_size)

    def compile(self, schema):
        grammar = self.llg.LLMatcher.grammar_from_json_schema(schema)
        m = self.llg.LLMatcher(self.tok, grammar)
        if m.is_error():
            raise ValueError(m.get_error())
        self.fill(m, self.bitmask, 0)   # it compiles lazily: the first mask is part of compiling
        if m.is_error():
            raise ValueError(m.get_error())
        return grammar

    def walk(self, grammar, tokens, eos, times) -> bool:
        m = self.llg.LLMatcher(self.tok, grammar)
        for t in tokens:
            t0 = time.perf_counter()
            self.fill(m, self.bitmask, 0)
            if times is not None:
                times.append(time.perf_counter() - t0)
            if not m.consume_token(t) or m.is_error():
                return False
        return m.is_accepting()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def gcd_words(grammar, k: int, seconds: int) -> list[str]:
    from hypothesis import HealthCheck, Phase, given, settings

    import gcd.testing

    found: list[str] = []

    @settings(max_examples=k, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(gcd.testing.words(grammar))
    def collect(w):
        found.append(w)

    try:
        limited(seconds, collect)
    except BaseException:
        pass
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path.home() / ".cache" / "gcd-bench" / "schemas.jsonl")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--engines", default="gcd,llguidance")
    ap.add_argument("--compile-seconds", type=int, default=120, help="per schema and engine")
    ap.add_argument("--words", type=int, default=5, help="gcd words checked per compiled schema")
    ap.add_argument("--json", type=Path, help="write per-schema results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    entries = [json.loads(line) for line in args.corpus.open()][:args.limit]
    tok = load_tokenizer("smollm2")
    eos = tok.eos_token_id
    engines = []
    for cls in (GcdEngine, LLGuidanceEngine):
        if cls.name in args.engines.split(","):
            try:
                engines.append(cls(tok))
            except ImportError as e:
                print(f"# {cls.name}: not installed ({e.name})", file=sys.stderr)
    rng = random.Random(0)
    results = []
    stats = {e.name: {"compiled": 0, "compile_s": [], "mask_s": [], "valid": 0, "valid_rejected": [], "unspellable": 0,
                      "invalid": 0, "invalid_accepted": [], "words": 0, "words_invalid": [],
                      "refusals": collections.Counter()} for e in engines}
    for i, entry in enumerate(entries):
        schema = entry["schema"]
        try:
            v = validator(schema)
            instances = [canonical(v, schema, x) for x in entry["valid"]]
            invalid = [y for x in instances for y in edits(x, rng, 3) if not v.is_valid(y)]
        except Exception as e:   # a schema jsonschema itself cannot use (bad $ref, ...)
            print(f"# {entry['id']}: jsonschema fails on it ({type(e).__name__})", file=sys.stderr)
            instances, invalid, v = [], [], None
        row = {"id": entry["id"], "source": entry["source"]}
        for eng in engines:
            s = stats[eng.name]
            t0 = time.perf_counter()
            try:
                compiled = limited(args.compile_seconds, eng.compile, schema)
            except gcd.UnsupportedSchemaError as e:
                row[eng.name] = f"unsupported: {e.keyword}"
                s["refusals"][f"{e.keyword}: {str(e).split(': ', 1)[1]}"[:90]] += 1
                continue
            except Timeout:
                row[eng.name] = "timeout"
                s["refusals"]["compile timeout"] += 1
                continue
            except Exception as e:
                row[eng.name] = f"error: {type(e).__name__}: {str(e)[:200]}"
                s["refusals"][f"{type(e).__name__}: {str(e)[:70]}"] += 1
                continue
            s["compiled"] += 1
            s["compile_s"].append(time.perf_counter() - t0)
            row[eng.name] = "compiled"
            for x in instances:
                text = json.dumps(x, ensure_ascii=False)
                tokens = tok.encode(text, add_special_tokens=False)
                if tok.decode(tokens) != text:   # the tokenizer does not give the text back: no walk
                    s["unspellable"] += 1
                    continue
                s["valid"] += 1
                if not eng.walk(compiled, tokens, eos, s["mask_s"]):
                    s["valid_rejected"].append((entry["id"], text[:300]))
            for y in invalid:
                text = json.dumps(y, ensure_ascii=False)
                s["invalid"] += 1
                if eng.walk(compiled, tok.encode(text, add_special_tokens=False), eos, None):
                    s["invalid_accepted"].append((entry["id"], text[:300]))
            if eng.name == "gcd" and v is not None and args.words:
                for w in gcd_words(compiled[0], args.words, 20):
                    s["words"] += 1
                    try:
                        ok = v.is_valid(json.loads(w))
                    except ValueError:
                        ok = False
                    if not ok:
                        s["words_invalid"].append((entry["id"], w[:300]))
        results.append(row)
        print(f"\r{i + 1}/{len(entries)} " + " ".join(f"{n}={stats[n]['compiled']}" for n in stats),
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    n = len(entries)
    by_source = collections.Counter(e["source"] for e in entries)
    print(f"{n} schemas ({', '.join(f'{k} {c}' for k, c in by_source.items())}), "
          f"{sum(len(e['valid']) for e in entries)} valid instances\n")
    print("| engine | compiled | compile median s | p90 s | mask p50 µs | p99 µs | valid rejected "
          "| invalid accepted | gcd words invalid |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, s in stats.items():
        words = f"{len(s['words_invalid'])}/{s['words']}" if name == "gcd" else "–"
        print(f"| {name} | {s['compiled']}/{n} ({100 * s['compiled'] / n:.0f}%) | "
              f"{statistics.median(s['compile_s']) if s['compile_s'] else float('nan'):.3f} | "
              f"{pct(s['compile_s'], 0.9):.3f} | {1e6 * pct(s['mask_s'], 0.5):.0f} | {1e6 * pct(s['mask_s'], 0.99):.0f} | "
              f"{len(s['valid_rejected'])}/{s['valid']} | {len(s['invalid_accepted'])}/{s['invalid']} | {words} |")
    for name, s in stats.items():
        print(f"\n{name}: why not compiled")
        for why, c in s["refusals"].most_common():
            print(f"  {c:4d}  {why}")
        print(f"  valid instances the tokenizer does not spell back (not walked): {s['unspellable']}")
        for label in ("valid_rejected", "invalid_accepted", "words_invalid"):
            for sid, text in s[label][:8]:
                print(f"  {label}: {sid}: {text[:160]}")
    if len(stats) == 2:
        both = collections.Counter((r.get("gcd") == "compiled", r.get("llguidance") == "compiled") for r in results)
        print(f"\nboth {both[True, True]}, only gcd {both[True, False]}, only llguidance {both[False, True]}, "
              f"neither {both[False, False]}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "stats": {
            k: {kk: (vv if not isinstance(vv, collections.Counter) else dict(vv)) for kk, vv in s.items()}
            for k, s in stats.items()}}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``gcd`` command: ``sample`` on the real SmolLM2 (in-process and as a subprocess),
``check``, ``bench``, and one-line errors with a non-zero exit code for every user mistake."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gcd.cli import main
from gcd.errors import GCDError

ROOT = Path(__file__).resolve().parent.parent
JSON_LARK = str(ROOT / "grammars" / "json.lark")


@pytest.fixture(scope="module")
def model_installed() -> None:
    from gcd.hf import default_model_source

    try:
        default_model_source()
    except GCDError as e:
        pytest.skip(str(e))


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gcd: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_sample_json_in_process(model_installed, capsys):
    code = main(["sample", "--grammar", JSON_LARK, "--max-new-tokens", "60", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    [sample] = report["samples"]
    assert sample["complete"] and sample["tokens"] == report["tokens"] > 0
    assert report["generate_seconds"] > 0 and report["tokens_per_second"] > 0
    json.loads(sample["text"])


def test_sample_json_subprocess(model_installed):
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "gcd.cli", "sample", "--grammar", JSON_LARK,
                           "--max-new-tokens", "60"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    json.loads(proc.stdout)


def test_sample_token_budget_too_small_is_reported_incomplete(model_installed, capsys):
    code = main(["sample", "--grammar", JSON_LARK, "--max-new-tokens", "3"])
    out = capsys.readouterr()
    assert code == 1 and out.out == ""
    assert "incomplete" in _one_line_error(out.err)


@pytest.mark.parametrize("argv, needle", [
    (["sample", "--grammar", "no/such/grammar.lark"], "no/such/grammar.lark"),
    (["sample", "--grammar", "BAD", "--model", "/no/such/model"], "line 2"),
    (["sample", "--grammar", JSON_LARK, "--model", "/no/such/model"], "/no/such/model"),
    (["sample", "--grammar", JSON_LARK, "--temperature", "-1"], "--temperature"),
    (["sample", "--grammar", JSON_LARK, "--num-samples", "zero"], "--num-samples"),
    (["sample", "--grammar", JSON_LARK, "--method", "smc"], "--method"),
    (["sample", "--grammar", JSON_LARK, "--num-samples", "2"], "--temperature"),
    (["sample", "--grammar", JSON_LARK, "--seed", "-1"], "--seed"),
    (["sample"], "--grammar"),
    (["frobnicate"], "frobnicate"),
    ([], "COMMAND"),
    (["check", "BAD"], "line 2"),
    (["bench", "--grammar", "no/such/grammar.lark"], "no/such/grammar.lark"),
])
def test_user_errors_are_one_line(argv, needle, tmp_path, capsys):
    bad = tmp_path / "bad.lark"
    bad.write_text('start: item+\nitem: "a" missing_rule\n')
    code = main([str(bad) if a == "BAD" else a for a in argv])
    out = capsys.readouterr()
    assert code != 0 and out.out == ""
    assert needle in _one_line_error(out.err)


def test_check_prints_stats(model_installed, capsys):
    assert main(["check", JSON_LARK]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "LALR(1)" in out
    for key in ("terminals", "rules", "lexer_states", "compile_seconds"):
        assert key in out


def test_bench_prints_figures(model_installed, capsys):
    assert main(["bench", "--grammar", JSON_LARK, "--words", "5"]) == 0
    out = capsys.readouterr().out
    assert "compile" in out and "p50" in out and "p99" in out

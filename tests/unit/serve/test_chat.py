"""`ember serve` through the official openai SDK (sync, async, streaming) against a real uvicorn server
on a loopback port, on the sim: a served request answers as `ember run --seed N` does."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx2
import openai
import pytest

from ember_compiler import api
from ember_compiler.testing.serving import ServerThread

ROOT = Path(__file__).resolve().parents[3]
CHAT = """ember: 1
name: chat-sim
description: Reads the whole conversation.
inputs:
  messages: {type: array}
models:
  m: {provider: sim}
nodes:
  reply:
    op: generate
    model: m
    prompt: "{% for m in inputs.messages %}{{ m.role }}: {{ m.content }}\\n{% endfor %}"
outputs:
  answer: ${reply.text}
"""
TWO = """ember: 1
name: two-inputs-sim
inputs:
  question: string
  context: string
models:
  m: {provider: sim}
nodes:
  g: {op: generate, model: m, prompt: "{{ inputs.context }} {{ inputs.question }}"}
outputs:
  answer: ${g.answer}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    for name in ("single.yaml", "ensemble-judge.yaml", "self-consistency.yaml"):
        (folder / name).write_text((ROOT / "specs" / "sim" / name).read_text())
    (folder / "chat.yaml").write_text(CHAT)
    (folder / "two.yaml").write_text(TWO)
    options = api.ServeOptions(trace=folder / "trace.jsonl", allow_set=("candidates.n",), access_log=False)
    app = api.serve_app([folder], options)
    with ServerThread(app) as url:
        yield url, folder


@pytest.fixture()
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0)


def ask(client, model="single-sim", text="What is 7 * 6?", **kwargs):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kwargs)


def test_models_lists_every_spec_with_its_description(client):
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"single-sim", "ensemble-judge-sim", "self-consistency-sim", "chat-sim", "two-inputs-sim"}
    assert models["chat-sim"].model_extra["description"] == "Reads the whole conversation."
    assert client.models.retrieve("single-sim").id == "single-sim"


def test_a_request_answers_as_ember_run_with_the_same_seed(client, server):
    reply = ask(client, "ensemble-judge-sim", seed=11)
    run = api.run(Path(server[1]) / "ensemble-judge.yaml", {"question": "What is 7 * 6?"},
                  api.RunOptions(seed=11, runs_dir=None))
    assert reply.choices[0].message.content == run.outputs["answer"]
    assert reply.choices[0].finish_reason == "stop"
    u = reply.usage
    assert (u.prompt_tokens, u.completion_tokens) == (run.usage.input_tokens, run.usage.output_tokens)
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens == run.usage.cached_tokens
    ember = reply.model_extra["ember"]
    assert (ember["calls"], ember["requests"], ember["seeds"]) == (run.usage.calls, run.usage.requests, [11])
    assert ember["cost_usd"] == 0.0 and ember["run_id"] in reply.id


def test_n_is_n_independent_runs_with_consecutive_seeds(client, server):
    reply = ask(client, "ensemble-judge-sim", n=4, extra_body={"ember": {"seed": 3}})
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    runs = [api.run(Path(server[1]) / "ensemble-judge.yaml", {"question": "What is 7 * 6?"},
                    api.RunOptions(seed=s, runs_dir=None)) for s in (3, 4, 5, 6)]
    assert [c.message.content for c in reply.choices] == [r.outputs["answer"] for r in runs]
    assert reply.usage.prompt_tokens == sum(r.usage.input_tokens for r in runs)
    assert reply.model_extra["ember"]["calls"] == sum(r.usage.calls for r in runs)


def test_messages_input_gets_the_whole_conversation(client):
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello"}, {"role": "user", "content": [
                        {"type": "text", "text": "Pick one"}]}]
    one = client.chat.completions.create(model="chat-sim", messages=conversation, seed=1)
    # the prompt holds every message (the sim's prompt tokens grow with it)
    shorter = client.chat.completions.create(model="chat-sim", messages=conversation[-1:], seed=1)
    assert one.usage.prompt_tokens > shorter.usage.prompt_tokens
    assert one.choices[0].message.content


def test_extra_body_gives_inputs_seed_and_allowed_sets(client):
    a = ask(client, "two-inputs-sim", extra_body={"ember": {"inputs": {"context": "ctx"}, "seed": 2}})
    b = ask(client, "two-inputs-sim", extra_body={"ember": {"inputs": {"context": "ctx"}, "seed": 2}})
    assert a.choices[0].message.content == b.choices[0].message.content
    wide = ask(client, "ensemble-judge-sim", extra_body={"ember": {"set": {"candidates.n": 7}, "seed": 1}})
    narrow = ask(client, "ensemble-judge-sim", extra_body={"ember": {"seed": 1}})
    assert wide.model_extra["ember"]["calls"] == 8 and narrow.model_extra["ember"]["calls"] == 5


@pytest.mark.parametrize(("model", "extra", "param"), [
    ("two-inputs-sim", None, "ember.inputs.question"),
    ("single-sim", {"inputs": {"nope": 1}}, "ember.inputs.nope"),
    ("single-sim", {"inputs": {"choices": "A"}}, "ember.inputs.choices"),
    ("ensemble-judge-sim", {"set": {"judge.model": "x"}}, "ember.set.judge.model"),
    ("single-sim", {"budget": {"max_calls": -1}}, "ember.budget"),
    ("single-sim", {"surprise": 1}, "ember.surprise"),
])
def test_bad_inputs_are_400_naming_the_field(client, model, extra, param):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, model, extra_body={"ember": extra} if extra is not None else None)
    assert caught.value.status_code == 400
    assert caught.value.body["param"] == param, caught.value.body
    assert caught.value.body["type"] == "invalid_request_error"


def test_unknown_model_is_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        ask(client, "gpt-4o")
    assert caught.value.code == "model_not_found" and "single-sim" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_a_request_budget_too_small_is_429(client):
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, "ensemble-judge-sim", extra_body={"ember": {"budget": {"max_calls": 2}}})
    assert caught.value.code == "budget_exceeded"
    assert caught.value.response.headers["retry-after"].isdigit()


def test_raw_http_errors_are_openai_error_objects(server):
    url = server[0]
    with httpx2.Client(base_url=url, trust_env=False) as http:
        bad = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
        missing = http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"
        big = http.post("/v1/chat/completions", content=b"x" * 1_000_001)
        assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
        nowhere = http.get("/v1/nowhere")
        assert nowhere.status_code == 404 and "error" in nowhere.json()
        assert http.get("/healthz").json()["status"] == "ok"


def test_streaming_sends_chunks_then_usage_and_the_sdk_helper_accepts_it(client):
    chunks = list(ask(client, "single-sim", seed=4, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # the sim streams pieces
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"
    plain = ask(client, "single-sim", seed=4)
    assert text.endswith(plain.choices[0].message.content)  # streamed: the whole reply; answer: read from it
    assert chunks[-2].model_extra["ember"]["answer"] == plain.choices[0].message.content
    with client.chat.completions.stream(model="single-sim", messages=[{"role": "user", "content": "What is 7 * 6?"}],
                                        seed=4) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == text


def test_streaming_an_answer_from_a_vote_is_one_chunk(client):
    chunks = list(ask(client, "self-consistency-sim", seed=2, stream=True))
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == [ask(client, "self-consistency-sim", seed=2).choices[0].message.content]


def test_async_client_many_requests_at_once(server):
    async def main():
        async with openai.AsyncOpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0) as aclient:
            replies = await asyncio.gather(*(aclient.chat.completions.create(
                model="single-sim", messages=[{"role": "user", "content": f"q{i}"}], seed=i) for i in range(40)))
            stream = await aclient.chat.completions.create(model="single-sim", stream=True, seed=1,
                                                           messages=[{"role": "user", "content": "q"}])
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        return replies, streamed
    replies, streamed = asyncio.run(main())
    assert all(r.choices[0].message.content in "ABCD" for r in replies)
    assert streamed.endswith(("A", "B", "C", "D"))


def test_one_trace_file_and_no_run_folders(server, client):
    folder = server[1]
    runs = Path(".ember") / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    wanted = {ask(client, seed=seed).model_extra["ember"]["trace_ids"][0] for seed in range(3)}
    assert (set(runs.iterdir()) if runs.is_dir() else set()) == before  # no run folder per request
    roots: dict = {}
    for _ in range(500):  # the trace is written once the server goes quiet: wait for it (no timing asserted)
        records = [json.loads(line) for line in (folder / "trace.jsonl").read_text().splitlines()]
        roots = {r["trace_id"]: r for r in records if r["name"] == "invoke_workflow single-sim"}
        if wanted <= set(roots):
            break
        time.sleep(0.01)
    assert len(wanted) == 3 and wanted <= set(roots)  # each request's trace, all in the one file
    assert all(roots[t]["parent_span_id"] is None for t in wanted)

"""API keys never appear in plans, traces, logs, errors, warnings or result.json — even when a server
echoes them back — for every HTTP provider."""

from __future__ import annotations

import json
import logging

import httpx2
import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.runs import run_plan
from ember_compiler.testing.providers import Server

SECRETS = {"OPENAI_API_KEY": "sk-proj-LEAKCHECK-openai-0123456789",
           "ANTHROPIC_API_KEY": "sk-ant-api03-LEAKCHECK-anthropic-0123",
           "GEMINI_API_KEY": "AIzaSyLEAKCHECK-gemini-0123456789"}

SPEC = """ember: 1
name: keys
inputs: {question: string}
models:
  a: {provider: openai, model: gpt-4o-mini, max_retries: 0}
  b: {provider: anthropic, model: claude-haiku-4-5, max_retries: 0}
  c: {provider: gemini, model: gemini-2.5-flash, max_retries: 0}
  d: {provider: openai, model: gpt-unpriced}
nodes:
  x: {op: generate, model: a, prompt: "{{ inputs.question }}"}
  y: {op: generate, model: b, prompt: "{{ inputs.question }}"}
  z: {op: generate, model: c, prompt: "{{ inputs.question }}"}
  w: {op: generate, model: d, prompt: "{{ inputs.question }}"}
outputs: {x: "${x.text}", y: "${y.text}", z: "${z.text}", w: "${w.text}"}
"""


def echo(request: httpx2.Request) -> httpx2.Response:
    """A hostile server: it repeats whatever credential it was sent, in the error and in a header."""
    sent = " ".join(request.headers.get(h, "") for h in ("authorization", "x-api-key", "x-goog-api-key"))
    return httpx2.Response(401, headers={"x-echo": sent}, json={"error": {"message": f"invalid key: {sent}"}})


@pytest.mark.parametrize("fail", [True, False])
def test_keys_stay_out_of_every_artifact(monkeypatch, tmp_path, caplog, fail):
    for env, value in SECRETS.items():
        monkeypatch.setenv(env, value)
    path = tmp_path / "keys.yaml"
    path.write_text(SPEC)
    plan = compile_spec(path)
    ok = httpx2.Response(200, json={"choices": [{"index": 0, "message": {"content": "Answer: 1"}}],
                                    "type": "message", "content": [{"type": "text", "text": "Answer: 1"}],
                                    "candidates": [{"index": 0, "content": {"parts": [{"text": "Answer: 1"}]}}]})
    server = Server(echo if fail else ok)
    with caplog.at_level(logging.DEBUG):
        result = run_plan(plan, {"question": "q"}, runs_dir=tmp_path / "runs", transport=server.transport)
    assert (result.error is not None) is fail
    sent = {h for r in server.requests for h in (r.headers.get("authorization"), r.headers.get("x-api-key"),
                                                  r.headers.get("x-goog-api-key")) if h}
    assert any(SECRETS["GEMINI_API_KEY"] in h for h in sent)  # the keys did go to the servers, in headers
    artifacts = [json.dumps(plan.to_json()), str(result.error), repr(result), json.dumps(result.to_json())]
    artifacts += [p.read_text() for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    artifacts += [r.getMessage() for r in caplog.records] + [str(r.url) for r in server.requests]
    for secret in SECRETS.values():
        assert all(secret not in text for text in artifacts), secret
    if fail:
        assert "***" in result.error and "HTTP 401" in result.error


def test_a_key_is_read_stripped_and_a_header_illegal_key_is_refused_by_name(monkeypatch):
    from ember_compiler.errors import ConfigError
    from ember_compiler.providers.http import read_key

    monkeypatch.setenv("EMBER_TEST_KEY", "  sk-proj-0123456789\r\n")
    assert read_key("EMBER_TEST_KEY") == "sk-proj-0123456789"
    monkeypatch.setenv("EMBER_TEST_KEY", " \n")
    assert read_key("EMBER_TEST_KEY") is None
    monkeypatch.setenv("EMBER_TEST_KEY", "sk-proj-01234\n56789")
    with pytest.raises(ConfigError) as err:
        read_key("EMBER_TEST_KEY")
    assert "EMBER_TEST_KEY" in str(err.value) and "sk-proj" not in str(err.value) and "\n" not in str(err.value)


def test_an_error_body_is_scrubbed_before_it_is_cut():
    from ember_compiler.providers.openai import OpenAIProvider

    key = "sk-proj-" + "0123456789abcdef" * 4
    p = OpenAIProvider("http://127.0.0.1:1/v1", key)
    for body in ({"text": "." * 190 + key}, {"json": {"error": {"message": "x" * 490 + key}}}):
        err = p.http_error(httpx2.Response(500, **body))
        assert key[:8] not in str(err) and key[-8:] not in str(err), str(err)
    short = OpenAIProvider("http://127.0.0.1:1/v1", "k")
    assert short.scrub("openai fake") == "openai fake"  # a key under 8 characters is not scrubbed

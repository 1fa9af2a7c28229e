"""Every request body the `openai` provider builds is valid against OpenAI's published request schema
(`CreateChatCompletionRequest` of openai/openai-openapi, trimmed under tests/fixtures/openapi/)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import jsonschema
import pytest

from ember_compiler.ops import prompts
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.testing.providers import KEY, Server, complete, one, reply, request, runtime

DOC = json.loads((Path(__file__).parents[2] / "fixtures" / "openapi" / "chat_completions_request.json").read_text())
SCHEMAS = DOC["components"]["schemas"]
VALIDATOR = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/CreateChatCompletionRequest", **DOC})
OPENAI = {"provider": "openai", "model": "gpt-4o-mini"}


def declared(name: str = "CreateChatCompletionRequest") -> set[str]:
    """The request's properties, through its `allOf` chain (the schema allows others: we must not send any)."""
    schema = SCHEMAS[name]
    found = set(schema.get("properties", {}))
    for part in schema.get("allOf", ()):
        found |= declared(part["$ref"].rsplit("/", 1)[-1]) if "$ref" in part else set(part.get("properties", {}))
    return found


def body(binding, base_url=None, **kw):
    server = Server(reply("openai_structured.json"))
    provider = OpenAIProvider(base_url, KEY, transport=server.transport,
                              default_max_tokens=kw.pop("default_max_tokens", None))
    one(provider, request(binding, **kw))
    return server.bodies()[0]


CASES = {
    "plain": lambda: body(OPENAI),
    "n, sampling, seed, system": lambda: body({**OPENAI, "temperature": 0.7, "top_p": 0.9, "seed": 3,
                                              "max_tokens": 64}, n=5, system="Be brief.", sample_offset=2),
    "reasoning model: max_completion_tokens": lambda: body({"provider": "openai", "model": "o3-mini",
                                                            "max_tokens": 2000}),
    "override: max_completion_tokens": lambda: body({**OPENAI, "max_tokens": 9,
                                                     "max_tokens_field": "max_completion_tokens"}),
    "judge schema": lambda: body(OPENAI, schema=prompts.JUDGE_SCHEMA),
    "select schema": lambda: body(OPENAI, schema=prompts.SELECT_SCHEMA),
    "verify schema": lambda: body({**OPENAI, "temperature": 0}, schema=prompts.VERIFY_SCHEMA),
    "compatible server, no model": lambda: body({"provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
                                                "http://127.0.0.1:9/v1", default_max_tokens=512),
}


@pytest.mark.parametrize("case", list(CASES))
def test_request_bodies_follow_the_published_schema(case):
    sent = CASES[case]()
    VALIDATOR.validate(sent)
    assert set(sent) <= declared(), set(sent) - declared()


def test_the_fixture_is_the_request_schema():
    assert "commit f85dbe223d40e1a31cba812ab2d755c7e98a92a3" in DOC["source"]
    assert {"messages", "model", "n", "max_tokens", "max_completion_tokens", "seed", "response_format",
            "temperature", "top_p"} <= declared()
    with pytest.raises(jsonschema.ValidationError):  # the schema does check: n is capped at 128
        VALIDATOR.validate({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": 200})


def test_a_large_ensemble_is_sent_as_valid_requests(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def answer(req):
        k = json.loads(req.content).get("n", 1)
        return httpx2.Response(200, json={"choices": [{"index": i, "message": {"content": "Answer: 4"},
                                                       "finish_reason": "stop"} for i in range(k)]})

    server = Server(answer)
    complete(runtime(server), request({**OPENAI, "seed": 1}, n=300))
    assert len(server.requests) == 3
    for sent in server.bodies():
        VALIDATOR.validate(sent)

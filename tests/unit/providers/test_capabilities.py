"""What each model accepts on the wire (providers/capabilities.py): the token-limit field, the `n`
limit and its split, Anthropic's version header and sampling parameters, the binding overrides."""

from __future__ import annotations

import json

import httpx2
import pytest

from ember_compiler.errors import ConfigError
from ember_compiler.providers import registry
from ember_compiler.providers.anthropic import API_VERSION, AnthropicProvider
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.spec.model import ModelBinding
from ember_compiler.testing.providers import KEY, Server, complete, one, reply, request, runtime


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(env, KEY)


def openai_body(binding, base_url=None, **kw):
    server = Server(reply("openai_structured.json"))
    one(OpenAIProvider(base_url, KEY, transport=server.transport), request(binding, **kw))
    return server.bodies()[0]


def choices(k: int):
    """A chat completion with `k` choices."""
    return httpx2.Response(200, json={
        "id": "chatcmpl-x", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": i, "message": {"role": "assistant", "content": f"Answer: {i}"},
                     "finish_reason": "stop"} for i in range(k)],
        "usage": {"prompt_tokens": 10, "completion_tokens": k, "total_tokens": 10 + k}})


# -- row 1: max_completion_tokens for reasoning models ---------------------------------------------------

@pytest.mark.parametrize("model", ["o3-mini", "o1", "gpt-5", "gpt-5-mini", "o4-mini-2025-04-16"])
def test_reasoning_models_get_max_completion_tokens(model):
    body = openai_body({"provider": "openai", "model": model, "max_tokens": 64})
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body


def test_reasoning_models_get_no_sampling_parameters_and_a_warning():
    server = Server(reply("openai_structured.json"))
    rt = runtime(server)
    complete(rt, request({"provider": "openai", "model": "o3-mini", "temperature": 0.7, "top_p": 0.9}))
    body = server.bodies()[0]
    assert "temperature" not in body and "top_p" not in body
    assert len(rt.warnings) == 2 and all("this model rejects sampling parameters" in w for w in rt.warnings)
    # other models, and models the table does not know, keep them
    body = openai_body({"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.7, "top_p": 0.9})
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert openai_body({"provider": "openai", "model": "o9-preview", "temperature": 0.2})["temperature"] == 0.2


def test_other_models_keep_max_tokens_and_unknown_models_on_openai_get_the_new_field():
    assert openai_body({"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 64})["max_tokens"] == 64
    # a model the table does not know: OpenAI's API takes max_completion_tokens for every model
    body = openai_body({"provider": "openai", "model": "o9-preview", "max_tokens": 64})
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    # ... a compatible server reads max_tokens, unless the table knows the model as a reasoning one
    assert openai_body({"provider": "openai", "model": "llama3.2", "max_tokens": 64},
                       "http://127.0.0.1:9/v1")["max_tokens"] == 64
    assert "max_completion_tokens" in openai_body({"provider": "openai", "model": "o3-mini", "max_tokens": 64},
                                                  "http://127.0.0.1:9/v1")


def test_max_tokens_field_override():
    body = openai_body({"provider": "openai", "model": "o3-mini", "max_tokens": 64, "max_tokens_field": "max_tokens"})
    assert body["max_tokens"] == 64 and "max_completion_tokens" not in body
    body = openai_body({"provider": "openai", "model": "qwen3", "max_tokens": 9,
                        "max_tokens_field": "max_completion_tokens"}, "http://127.0.0.1:9/v1")
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body


def test_the_facts_come_from_the_price_table():
    from ember_compiler.providers import capabilities

    assert capabilities.model_facts("openai", "o3")["reasoning"] is True
    assert "reasoning" not in capabilities.model_facts("openai", "gpt-4o-mini")
    assert capabilities.model_facts("anthropic", "claude-opus-4-7")["sampling_params"] is False
    assert capabilities.model_facts("openai", "nope") is None


# -- row 2: n above 128 is split -------------------------------------------------------------------------

def test_an_ensemble_above_the_n_limit_is_split_into_requests():
    def answer(req):
        return choices(json.loads(req.content).get("n", 1))

    server = Server(answer)
    (c,) = complete(runtime(server), request({"provider": "openai", "model": "gpt-4o-mini", "seed": 7}, n=200))
    ns = sorted(b.get("n", 1) for b in server.bodies())
    assert ns == [72, 128] and len(c.texts) == 200 and max(b.get("n", 1) for b in server.bodies()) <= 128
    # the split requests differ by their seed (the sample offset), so they do not repeat each other
    assert sorted(b["seed"] for b in server.bodies()) == [7, 7 + 128]


def test_n_limit_override():
    server = Server(lambda req: choices(json.loads(req.content).get("n", 1)))
    binding = {"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "n_limit": 4}
    (c,) = complete(runtime(server), request(binding, n=10))
    assert sorted(b.get("n", 1) for b in server.bodies()) == [2, 4, 4] and len(c.texts) == 10
    # n_limit 1: `n` is never sent (a server that rejects it)
    server = Server(lambda req: choices(json.loads(req.content).get("n", 1)))
    (c,) = complete(runtime(server), request({**binding, "n_limit": 1}, n=3))
    assert [("n" in b) for b in server.bodies()] == [False] * 3 and len(c.texts) == 3


def test_gemini_n_limit_lowers_candidate_count():
    from ember_compiler.providers.gemini import GeminiProvider

    server = Server(reply("gemini_generate.json"))
    one(GeminiProvider(None, KEY, transport=server.transport),
        request({"provider": "gemini", "model": "gemini-2.5-flash", "n_limit": 2}, n=5))
    assert server.bodies()[0]["generationConfig"]["candidateCount"] == 2


# -- row 3: anthropic-version on every request ---------------------------------------------------------------

def test_anthropic_version_is_sent_without_a_key():
    server = Server(reply("anthropic_message.json"))
    one(AnthropicProvider("https://gateway.example/anthropic", None, transport=server.transport),
        request({"provider": "anthropic", "model": "claude-haiku-4-5"}))
    (req,) = server.requests
    assert req.headers["anthropic-version"] == API_VERSION and "x-api-key" not in req.headers
    # through the registry: a custom base_url without api_key_env sends no key, but the version
    server = Server(reply("anthropic_message.json"))
    binding = {"provider": "anthropic", "model": "claude-haiku-4-5", "base_url": "https://gateway.example/anthropic"}
    (c,) = complete(runtime(server), request(binding))
    assert server.requests[0].headers["anthropic-version"] == API_VERSION
    assert "x-api-key" not in server.requests[0].headers


# -- row 4: temperature and top_p ---------------------------------------------------------------------------

def anthropic_run(binding):
    server = Server(reply("anthropic_message.json"))
    rt = runtime(server)
    complete(rt, request(binding))
    return server.bodies()[0], rt.warnings


def test_anthropic_sends_temperature_not_with_top_p_and_warns():
    body, warnings = anthropic_run({"provider": "anthropic", "model": "claude-sonnet-4-5", "temperature": 0.3,
                                    "top_p": 0.9})
    assert body["temperature"] == 0.3 and "top_p" not in body
    assert warnings == ["model 'm' (anthropic claude-sonnet-4-5): `top_p` not sent (the Messages API takes "
                        "temperature or top_p, not both: temperature is sent)"]
    body, warnings = anthropic_run({"provider": "anthropic", "model": "claude-sonnet-4-5", "top_p": 0.9})
    assert body["top_p"] == 0.9 and warnings == []


def test_anthropic_models_that_reject_sampling_get_neither():
    body, warnings = anthropic_run({"provider": "anthropic", "model": "claude-opus-4-7", "temperature": 0.3,
                                    "top_p": 0.9})
    assert "temperature" not in body and "top_p" not in body
    assert len(warnings) == 2 and all("this model rejects sampling parameters" in w for w in warnings)


# -- the overrides are validated ---------------------------------------------------------------------------

def test_overrides_are_validated():
    assert ModelBinding(provider="openai", max_tokens_field="max_completion_tokens", n_limit=8).n_limit == 8
    with pytest.raises(ValueError):
        ModelBinding(provider="openai", max_tokens_field="max_output_tokens")
    with pytest.raises(ValueError):
        ModelBinding(provider="openai", n_limit=0)
    with pytest.raises(ConfigError, match="`max_tokens_field` applies to provider openai only"):
        registry.check_binding("c", {"provider": "anthropic", "model": "claude-haiku-4-5",
                                     "max_tokens_field": "max_tokens"})
    with pytest.raises(ConfigError, match="`n_limit` applies to provider openai and gemini only"):
        registry.check_binding("c", {"provider": "anthropic", "model": "claude-haiku-4-5", "n_limit": 2})

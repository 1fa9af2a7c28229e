"""Anthropic Messages: request building and parsing against recorded-shape fixtures, error classes."""

from __future__ import annotations

import json

import httpx2
import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.ops.prompts import VERIFY_SCHEMA
from ember_compiler.providers.anthropic import API_VERSION, AnthropicProvider
from ember_compiler.testing.providers import KEY, Server, one, reply, request

BINDING = {"provider": "anthropic", "model": "claude-haiku-4-5", "temperature": 0.2, "max_tokens": 300}


def make(server, **kw):
    return AnthropicProvider(None, kw.pop("api_key", KEY), transport=server.transport, **kw)


def test_request_shape_and_text_response():
    server = Server(reply("anthropic_message.json"))
    c = one(make(server), request({**BINDING, "top_p": 0.9, "seed": 3}, system="Be brief."))
    (req,) = server.requests
    assert str(req.url) == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY and req.headers["anthropic-version"] == API_VERSION
    assert "authorization" not in req.headers
    # the system prompt is a top-level field; no seed and no n in this API; temperature, never with top_p
    assert json.loads(req.content) == {
        "model": "claude-haiku-4-5", "max_tokens": 300, "system": "Be brief.", "temperature": 0.2,
        "messages": [{"role": "user", "content": "What is 7 * 6?"}]}
    assert c.texts == ["7 times 6 is 42.\nAnswer: 42"] and c.finish_reasons == ["end_turn"]
    # cache reads and writes are part of the input, reported apart for pricing
    assert (c.input_tokens, c.cached_tokens, c.cache_write_tokens, c.output_tokens) == (4521, 3000, 1500, 12)
    assert c.model == "claude-haiku-4-5-20251001" and c.response_id == "msg_01XFDUDYJgAACzvnptvVoYEL"


def test_max_tokens_is_always_sent():
    server = Server(reply("anthropic_message.json"))
    one(make(server), request({"provider": "anthropic", "model": "claude-haiku-4-5"}))
    assert server.bodies()[0]["max_tokens"] == 1024


def test_structured_output_is_a_forced_tool_call():
    server = Server(reply("anthropic_tool_use.json"))
    c = one(make(server), request(BINDING, schema=VERIFY_SCHEMA))
    body = server.bodies()[0]
    (tool,) = body["tools"]
    assert tool["name"] == "verdict" and tool["input_schema"]["properties"]["verdict"]["enum"] == ["yes", "no"]
    assert "title" not in tool["input_schema"]
    assert body["tool_choice"] == {"type": "tool", "name": "verdict"}
    assert json.loads(c.texts[0]) == {"reasoning": "7 * 6 is 42, which matches the proposed answer.", "verdict": "yes"}
    assert c.finish_reasons == ["tool_use"] and (c.input_tokens, c.output_tokens) == (472, 58)


def test_rate_limit_headers():
    headers = {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
               "anthropic-ratelimit-requests-reset": "2026-11-26T18:00:00Z",
               "anthropic-ratelimit-tokens-limit": "90000", "anthropic-ratelimit-tokens-remaining": "89000",
               "anthropic-ratelimit-tokens-reset": "2026-11-26T18:00:01Z"}
    rl = one(make(Server(reply("anthropic_message.json", headers=headers))), request(BINDING)).rate_limits
    assert (rl.requests_limit, rl.requests_remaining, rl.tokens_limit, rl.tokens_remaining) == (50, 49, 90000, 89000)
    assert rl.requests_reset_s is not None and rl.requests_reset_s >= 0


def test_overloaded_529_and_rate_limited_429_are_retryable():
    with pytest.raises(ProviderError, match="HTTP 529: overloaded_error: Overloaded") as err:
        one(make(Server(reply("anthropic_529_overloaded.json", 529))), request(BINDING))
    assert err.value.retryable and err.value.status == 529
    with pytest.raises(ProviderError, match="rate_limit_error") as err:
        one(make(Server(reply("anthropic_429_rate_limit.json", 429, {"retry-after": "7"}))), request(BINDING))
    assert err.value.retryable and err.value.retry_after_s == 7


def test_bad_request_is_final_and_bad_bodies_are_clear():
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: must be positive"}}
    with pytest.raises(ProviderError, match="HTTP 400: invalid_request_error: max_tokens") as err:
        one(make(Server(httpx2.Response(400, json=body))), request(BINDING))
    assert not err.value.retryable
    with pytest.raises(ProviderError, match="no content"):
        one(make(Server(httpx2.Response(200, json={"type": "message", "content": None}))), request(BINDING))
    with pytest.raises(ProviderError, match="HTTP 200 with an error: overloaded_error"):
        one(make(Server(reply("anthropic_529_overloaded.json"))), request(BINDING))


def test_key_is_scrubbed():
    echo = Server(lambda r: httpx2.Response(401, json={"type": "error", "error": {
        "type": "authentication_error", "message": f"invalid x-api-key {r.headers['x-api-key']}"}}))
    with pytest.raises(ProviderError) as err:
        one(make(echo), request(BINDING))
    assert KEY not in str(err.value) and "***" in str(err.value) and KEY not in repr(make(echo))

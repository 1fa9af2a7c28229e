"""Gemini generateContent: request building and parsing against recorded-shape fixtures, error classes."""

from __future__ import annotations

import json

import httpx2
import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.ops.prompts import SELECT_SCHEMA
from ember_compiler.providers.gemini import GeminiProvider, openapi_schema
from ember_compiler.testing.providers import KEY, Server, one, reply, request

BINDING = {"provider": "gemini", "model": "gemini-2.5-flash", "temperature": 0.7, "max_tokens": 200, "top_p": 0.95}


def make(server, **kw):
    return GeminiProvider(None, kw.pop("api_key", KEY), transport=server.transport, **kw)


def test_request_shape_and_candidates():
    server = Server(reply("gemini_generate.json"))
    c = one(make(server), request({**BINDING, "seed": 5}, n=2, system="Be brief.", sample_offset=1))
    (req,) = server.requests
    # the key travels in a header, never in the URL
    assert str(req.url) == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert req.headers["x-goog-api-key"] == KEY and KEY not in str(req.url)
    assert json.loads(req.content) == {
        "contents": [{"role": "user", "parts": [{"text": "What is 7 * 6?"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"candidateCount": 2, "temperature": 0.7, "topP": 0.95, "maxOutputTokens": 200,
                             "seed": 6}}
    # thought summaries are not part of the answer; thinking tokens are billed as output
    assert c.texts == ["7 × 6 = 42.\nAnswer: 42", "Six sevens are forty-two.\nAnswer: 42"]
    assert (c.input_tokens, c.output_tokens, c.cached_tokens) == (2100, 70, 2048)
    assert c.finish_reasons == ["STOP", "STOP"] and c.model == "gemini-2.5-flash"


def test_candidate_count_is_capped_and_model_prefix_accepted():
    server = Server(reply("gemini_generate.json"))
    one(make(server), request({"provider": "gemini", "model": "models/gemini-2.5-pro"}, n=20))
    assert server.bodies()[0]["generationConfig"] == {"candidateCount": 8}
    assert str(server.requests[0].url).endswith("/models/gemini-2.5-pro:generateContent")


def test_structured_output_uses_response_schema():
    server = Server(reply("gemini_structured.json"))
    c = one(make(server), request(BINDING, schema=SELECT_SCHEMA))
    config = server.bodies()[0]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {
        "type": "OBJECT", "required": ["reasoning", "answer"], "propertyOrdering": ["reasoning", "answer"],
        "properties": {"reasoning": {"type": "STRING"},
                       "answer": {"type": "INTEGER", "description": "The number of the correct candidate."}}}
    assert json.loads(c.texts[0])["answer"] == 2
    assert openapi_schema({"type": "array", "items": {"type": "string", "enum": ["a"]}}) == {
        "type": "ARRAY", "items": {"type": "STRING", "enum": ["a"]}}


def test_retry_info_in_the_body_is_the_hint():
    with pytest.raises(ProviderError, match="HTTP 429: RESOURCE_EXHAUSTED") as err:
        one(make(Server(reply("gemini_429_retry_info.json", 429))), request(BINDING))
    assert err.value.retryable and err.value.retry_after_s == pytest.approx(45.837906927)


def test_per_day_quota_is_final():
    with pytest.raises(ProviderError, match="quota exhausted") as err:
        one(make(Server(reply("gemini_429_quota_per_day.json", 429))), request(BINDING))
    assert not err.value.retryable and err.value.status == 429


def test_blocked_prompt_bad_key_and_empty_candidates():
    with pytest.raises(ProviderError, match=r"prompt was blocked \(PROHIBITED_CONTENT\)") as err:
        one(make(Server(reply("gemini_blocked.json"))), request(BINDING))
    assert not err.value.retryable
    with pytest.raises(ProviderError, match="HTTP 400: INVALID_ARGUMENT: API key not valid") as err:
        one(make(Server(reply("gemini_400_invalid.json", 400))), request(BINDING))
    assert not err.value.retryable
    with pytest.raises(ProviderError, match="no candidates"):
        one(make(Server(httpx2.Response(200, json={"candidates": []}))), request(BINDING))


def test_safety_stop_without_content_is_an_empty_text():
    body = {"candidates": [{"finishReason": "SAFETY", "index": 0}], "usageMetadata": {"promptTokenCount": 5}}
    c = one(make(Server(httpx2.Response(200, json=body))), request(BINDING))
    assert c.texts == [""] and c.finish_reasons == ["SAFETY"] and c.input_tokens == 5


def test_errors_are_one_line_and_a_rejected_key_gets_the_hint():
    # row 11: the API's message may span lines; 400 API_KEY_INVALID is a key problem like 401/403
    with pytest.raises(ProviderError) as err:
        one(make(Server(reply("gemini_400_invalid.json", 400))), request(BINDING))
    assert str(err.value) == ("HTTP 400: INVALID_ARGUMENT: API key not valid. Please pass a valid API key. "
                              "(check the API key and its permissions)")
    body = {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                      "message": "* GenerateContentRequest.contents: contents is not specified\n"
                                 "* GenerateContentRequest.generation_config: bad\n"}}
    with pytest.raises(ProviderError) as err:
        one(make(Server(httpx2.Response(400, json=body))), request(BINDING))
    assert "\n" not in str(err.value) and "check the API key" not in str(err.value)
    assert str(err.value) == ("HTTP 400: INVALID_ARGUMENT: * GenerateContentRequest.contents: contents is not "
                              "specified * GenerateContentRequest.generation_config: bad")

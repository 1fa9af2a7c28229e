"""Budgets (--max-cost/--max-calls/--max-tokens, spec `budget:`): reserved before each call, across rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.compiler import compile_spec
from ember_compiler.errors import BudgetExceeded
from ember_compiler.eval.dataset import load_rows
from ember_compiler.eval.runner import EvalJob
from ember_compiler.providers.base import Completion, Request
from ember_compiler.runtime.budget import Budget, Spending, limits_from
from ember_compiler.runtime.prices import Price

SPEC = """\
ember: 1
name: priced
inputs:
  question: string
  choices: {{type: array, default: [A, B, C, D]}}
models:
  worker: {{provider: sim, accuracy: 0.6, max_tokens: 16, latency_ms: {latency},
           price: {{input_per_mtok: 1000, output_per_mtok: 4000}}}}
{budget}nodes:
  samples: {{op: ensemble, model: worker, n: 5, prompt: "Question: {{{{ inputs.question }}}}"}}
  majority: {{op: vote, candidates: "${{samples.answers}}"}}
outputs:
  answer: ${{majority.answer}}
  confidence: ${{majority.confidence}}  # read: the vote keeps all its samples (no cut-off)
"""


def write(tmp_path: Path, latency: int = 0, budget: str = "") -> Path:
    spec = tmp_path / "priced.yaml"
    spec.write_text(SPEC.format(latency=latency, budget=budget))
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"question {i}", "answer": "ABCD"[i % 4]}) + "\n"
                            for i in range(64)))
    return spec


def eval_job(tmp_path: Path, limits: Budget | None, latency: int = 5) -> tuple[EvalJob, object]:
    spec = write(tmp_path, latency)
    job = EvalJob(compile_spec(spec), load_rows(tmp_path / "rows.jsonl"), concurrency=64,
                  runs_dir=tmp_path / "runs", budget=limits)
    return job, asyncio.run(job.run())


def test_max_cost_is_never_exceeded_across_64_parallel_rows(tmp_path):
    full_job, full = eval_job(tmp_path, None)
    assert full.rows == 64 and full.usage.cost_usd > 0
    budget = round(full.usage.cost_usd / 3, 6)
    job, result = eval_job(tmp_path, Budget(max_cost_usd=budget))
    assert result.budget_exceeded
    assert job.budget.spent_cost <= budget  # everything spent, counted rows and stopped rows alike
    assert 0 < result.rows < 64
    assert result.usage.cost_usd <= budget
    records = [json.loads(line) for line in (job.run_dir / "rows.jsonl").read_text().splitlines()]
    assert len(records) == result.rows and all("error" not in r for r in records)  # unfinished rows are left out
    assert sum(r["cost_usd"] for r in records) <= budget
    status = json.loads((job.run_dir / "result.json").read_text())
    assert status["status"] == "budget_exceeded" and status["unfinished_rows"] == 64 - result.rows
    assert status["budget"]["exceeded"] and status["budget"]["spent_cost_usd"] <= budget


@pytest.mark.parametrize("limit", [1, 5, 12, 63])
def test_max_calls_is_exact_and_tokens_bounded(tmp_path, limit):
    job, result = eval_job(tmp_path, Budget(max_calls=limit), latency=0)
    assert job.budget.spent_calls <= limit
    assert result.usage.calls == 5 * result.rows <= limit
    job, result = eval_job(tmp_path, Budget(max_total_tokens=limit * 20), latency=0)
    assert job.budget.spent_tokens <= limit * 20


def test_cli_exit_code_3_with_partial_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write(tmp_path, latency=2)
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(spec), "--data", str(tmp_path / "rows.jsonl"), "--max-cost", "1",
                              "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 3, res.output
    assert "budget exceeded (max cost $1)" in res.output and "--resume" in res.output
    res = runner.invoke(app, ["run", str(spec), "-i", "question=q", "--max-calls", "4"], catch_exceptions=False)
    assert res.exit_code == 3 and "budget exceeded (max calls 4)" in res.output
    run_dir = next(p for p in (tmp_path / ".ember" / "runs").iterdir() if (p / "result.json").exists()
                   and json.loads((p / "result.json").read_text()).get("plan") == "priced")
    assert json.loads((run_dir / "result.json").read_text())["status"] == "budget_exceeded"
    ok = runner.invoke(app, ["run", str(spec), "-i", "question=q", "--max-calls", "5", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["budget"]["spent_calls"] == 5


def test_spec_budget_is_lowered_and_flags_override(tmp_path, monkeypatch):
    spec = write(tmp_path, budget="budget: {max_calls: 10, max_cost_usd: 100}\n")
    plan = compile_spec(spec)
    assert plan.budget == {"max_calls": 10, "max_cost_usd": 100}
    assert limits_from(plan.budget, Budget(max_calls=20)) == Budget(max_cost_usd=100, max_calls=20)
    assert limits_from(None) is None
    job = EvalJob(plan, load_rows(tmp_path / "rows.jsonl"), runs_dir=None)
    result = asyncio.run(job.run())
    assert result.budget_exceeded and result.usage.calls == 10


def test_a_reservation_waits_for_calls_in_flight_then_fails_cleanly():
    async def main() -> None:
        budget = Spending(Budget(max_calls=3))
        req = Request("m", {"provider": "sim", "max_tokens": 4}, [{"role": "user", "content": "hi"}], 2)
        held = await budget.reserve(req, Price(0.0, 0.0))
        waiter = asyncio.ensure_future(budget.reserve(req, None))
        await asyncio.sleep(0)
        assert not waiter.done()  # 2 held + 2 > 3, but the held call may use less: wait for it
        budget.settle(held, Completion(texts=["a"]), 0.0)  # it used 1 call: 1 + 2 fits
        again = await waiter
        assert budget.spent_calls == 1 and budget.held_calls == 2
        budget.settle(again, Completion(texts=["a", "b"]), 0.0)
        with pytest.raises(BudgetExceeded, match="max calls 3"):
            await budget.reserve(req, None)
        assert budget.exceeded and budget.spent_calls == 3

    asyncio.run(main())


def test_a_call_cancelled_in_flight_stays_counted_at_its_worst_case():
    async def main() -> None:
        budget = Spending(Budget(max_cost_usd=1.0))
        req = Request("m", {"provider": "openai", "max_tokens": 100}, [{"role": "user", "content": "x" * 400}], 1)
        price = Price(1e-3, 2e-3)
        held = await budget.reserve(req, price)
        assert held == pytest.approx((104 * 1e-3 + 100 * 2e-3, 1, 204))
        budget.abandon(held)
        assert budget.spent_cost == pytest.approx(held[0]) and budget.held_cost == 0 and budget.in_flight == 0

    asyncio.run(main())


def test_an_unpriced_model_is_warned_about_under_max_cost(tmp_path, monkeypatch):
    import httpx2

    from ember_compiler.runs import run_plan
    from ember_compiler.testing.providers import KEY, Server

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    spec = tmp_path / "u.yaml"
    spec.write_text("ember: 1\nname: u\ninputs: {question: string}\nmodels:\n"
                    "  m: {provider: openai, model: my-model, base_url: 'http://127.0.0.1:9/v1'}\n"
                    "nodes:\n  a: {op: generate, model: m, prompt: q}\noutputs:\n  answer: ${a.answer}\n")
    server = Server(httpx2.Response(200, json={
        "id": "x", "model": "my-model", "object": "chat.completion", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Answer: 1"}}]}))
    result = run_plan(compile_spec(spec), {"question": "q"}, runs_dir=None, transport=server.transport,
                      budget=Budget(max_cost_usd=1.0))
    assert result.outputs == {"answer": "1"}
    assert any("--max-cost-usd cannot bound model 'm'" in w for w in result.warnings)

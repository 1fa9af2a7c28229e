"""`race`: the same request to several bindings; the first answer wins and the others are cancelled."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx2
import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, jit, ops
from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import eval_plan
from ember_compiler.runs import run_plan
from ember_compiler.testing.clock import virtual_time
from ember_compiler.testing.providers import KEY, Server, fixture
from ember_compiler.xcs.analysis import analyze

ROOT = Path(__file__).resolve().parents[3]
HTTP = """ember: 1
name: hedged
inputs: {question: string}
models:
  slow: {provider: openai, model: gpt-4o-mini, base_url: "http://slow.test/v1", max_retries: 0}
  fast: {provider: openai, model: gpt-4o-mini, base_url: "http://fast.test/v1", max_retries: 0}
nodes:
  r: {op: race, models: [slow, fast], prompt: "Q: {{ inputs.question }}"}
outputs: {answer: "${r.answer}", winner: "${r.winner}", cancelled: "${r.cancelled}"}
"""


def _chat(text: str) -> httpx2.Response:
    body = fixture("openai_chat.json")
    choice = next(c for c in body["choices"] if c["index"] == 0)
    body["choices"] = [{**choice, "message": {**choice["message"], "content": text}}]
    return httpx2.Response(200, json=body)


def test_the_first_answer_wins_and_the_slower_request_is_cancelled_unbilled(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    spec = tmp_path / "hedged.yaml"
    spec.write_text(HTTP)
    aborted: list[str] = []

    async def answer(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "slow.test":
            try:
                await asyncio.sleep(30)  # virtual: a server that hangs
            except asyncio.CancelledError:
                aborted.append("slow")
                raise
            return _chat("Answer: slow")
        await asyncio.sleep(0.5)
        return _chat("Answer: fast")

    server = Server(answer)
    plan = compile_spec(spec)
    assert analyze(plan).calls == 2  # ember plan: every racer may be needed
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, {"question": "q"}, runs_dir=None,
                                                      transport=server.transport))
    assert result.error is None, result.error
    assert result.outputs == {"answer": "fast", "winner": "fast", "cancelled": 1}
    assert took == pytest.approx(0.5)  # the fast one's latency, not the hung one's
    assert aborted == ["slow"] and len(server.requests) == 2
    usage = fixture("openai_chat.json")["usage"]
    assert result.usage.calls == 1 and result.usage.input_tokens == usage["prompt_tokens"]  # only the winner


def test_a_failing_racer_does_not_win_and_all_failing_fails_the_node(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    spec = tmp_path / "hedged.yaml"
    spec.write_text(HTTP)

    def broken_fast(request: httpx2.Request) -> httpx2.Response:
        if request.url.host == "fast.test":
            return httpx2.Response(400, json={"error": {"message": "bad request"}})
        return _chat("Answer: slow")

    result = run_plan(compile_spec(spec), {"question": "q"}, runs_dir=None, transport=Server(broken_fast).transport)
    assert result.error is None and result.outputs["winner"] == "slow"
    down = Server(httpx2.Response(400, json={"error": {"message": "bad request"}}))
    failed = run_plan(compile_spec(spec), {"question": "q"}, runs_dir=None, transport=down.transport)
    assert failed.error is not None and "400" in failed.error


SIM = """ember: 1
name: race
inputs: {question: string}
models:
  a: {provider: sim, accuracy: 0.3, latency_ms: 300}
  b: {provider: sim, accuracy: 0.8, latency_ms: 100}
nodes:
  r: {op: race, models: [a, b], prompt: "Q: {{ inputs.question }}"}
outputs: {answer: "${r.answer}"}
"""


def test_sim_race_is_right_with_the_fastest_bindings_accuracy(tmp_path: Path):
    spec = tmp_path / "race.yaml"
    spec.write_text(SIM)
    rows_n = 2000
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows_n)]
    with virtual_time():
        result = eval_plan(compile_spec(spec), rows, seed=2, runs_dir=None)
    expected = 0.8  # b answers first (100 ms < 300 ms)
    sigma = math.sqrt(expected * (1 - expected) / rows_n)
    assert result.errors == 0 and result.usage.calls == rows_n  # the slower racer is never billed
    assert abs(result.accuracy - expected) < 1.96 * sigma, result.accuracy


class Hedged(Network):
    class Input(BaseModel):
        question: str
        choices: list[str] = ["A", "B", "C", "D"]

    class Output(BaseModel):
        answer: str | None
        winner: str

    def __init__(self) -> None:
        primary = Model(name="primary", provider="sim", accuracy=0.8, latency_ms=300)
        backup = Model(name="backup", provider="sim", accuracy=0.6, latency_ms=100)
        self.first = ops.Race(models=[primary, backup], prompt="Question: {{ inputs.question }}\nAnswer briefly, "
                              "then end with a line \"Answer: <answer>\".")

    def forward(self, question, choices):
        out = self.first()
        return {"answer": out.answer, "winner": out.winner}


def test_the_sdk_race_compiles_to_the_plan_of_its_yaml():
    assert jit(Hedged(), name="race-sim").plan.hash == compile_spec(ROOT / "specs/sim/race.yaml").hash

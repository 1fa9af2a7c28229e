"""`self_refine`: draft → feedback → revise rounds that stop when the feedback says done."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, jit, ops
from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import eval_plan
from ember_compiler.runs import run_plan
from ember_compiler.testing.analytic import self_refine_accuracy
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.analysis import analyze

ROOT = Path(__file__).resolve().parents[3]
SPEC = """ember: 1
name: sr
inputs: {{question: string}}
models:
  w: {{provider: sim, accuracy: {p}, tpr: {tpr}, fpr: {fpr}, latency_ms: {ms}}}
nodes:
  s: {{op: self_refine, model: w, question: "${{inputs.question}}", rounds: {rounds}}}
outputs: {{answer: "${{s.answer}}", rounds: "${{s.rounds}}", done: "${{s.done}}"}}
"""


def _plan(tmp_path: Path, p=0.5, tpr=0.8, fpr=0.2, rounds=3, ms=0):
    path = tmp_path / "sr.yaml"
    path.write_text(SPEC.format(p=p, tpr=tpr, fpr=fpr, rounds=rounds, ms=ms))
    return compile_spec(path)


def test_rounds_stop_when_the_feedback_says_done_and_run_in_sequence(tmp_path: Path):
    plan = _plan(tmp_path, p=1.0, tpr=1.0, ms=200)  # the first draft is right and accepted
    assert [n.id for n in plan.nodes][:4] == ["s/draft1", "s/feedback1", "s/draft2", "s/feedback2"]
    assert analyze(plan).calls == 6 and analyze(plan).depth == 6  # ember plan: the bound
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, {"question": "q"}, runs_dir=None,
                                                      example={"answer": "B"}))
    assert result.outputs == {"answer": "B", "rounds": 1, "done": True} and result.usage.calls == 2
    assert took == pytest.approx(2 * 0.2)  # draft, then its feedback
    never = run_plan(_plan(tmp_path, tpr=0.0, fpr=0.0), {"question": "q"}, runs_dir=None, example={"answer": "B"})
    assert never.outputs["rounds"] == 3 and never.outputs["done"] is False and never.usage.calls == 6


def test_the_revision_reads_the_draft_and_its_feedback(tmp_path: Path):
    revise = _plan(tmp_path).node("s/draft2")
    assert set(revise.inputs) == {"question", "previous", "feedback"} and revise.when


@pytest.mark.parametrize("p,tpr,fpr,rounds", [(0.5, 0.8, 0.2, 3), (0.3, 0.9, 0.4, 4)])
def test_sim_self_refine_matches_its_formula(tmp_path: Path, p, tpr, fpr, rounds):
    rows_n = 3000
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows_n)]
    result = eval_plan(_plan(tmp_path, p, tpr, fpr, rounds), rows, seed=5, runs_dir=None)
    expected, calls = self_refine_accuracy(rounds, p, tpr, fpr)
    sigma = math.sqrt(expected * (1 - expected) / rows_n)
    assert result.errors == 0 and abs(result.accuracy - expected) < 1.96 * sigma, (result.accuracy, expected)
    assert result.usage.calls / rows_n == pytest.approx(calls, rel=0.05)


class Refined(Network):
    class Input(BaseModel):
        question: str
        choices: list[str] = ["A", "B", "C", "D"]

    class Output(BaseModel):
        answer: str | None
        rounds: int
        done: bool

    def __init__(self) -> None:
        self.refined = ops.SelfRefine(model=Model(name="writer", provider="sim", accuracy=0.5, tpr=0.8, fpr=0.2),
                                      rounds=3)

    def forward(self, question, choices):
        out = self.refined(question=question)
        return {"answer": out.answer, "rounds": out.rounds, "done": out.done}


def test_the_sdk_self_refine_compiles_to_the_plan_of_its_yaml():
    assert jit(Refined(), name="self-refine-sim").plan.hash == compile_spec(ROOT / "specs/sim/self-refine.yaml").hash

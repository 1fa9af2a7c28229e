"""`verify` with `order: sequential`: one candidate after another, stopping at the first accepted."""

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
from ember_compiler.testing.analytic import sequential_verify
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.analysis import analyze

ROOT = Path(__file__).resolve().parents[3]
SPEC = """ember: 1
name: v
inputs: {{question: string}}
models:
  g: {{provider: sim, accuracy: {p}}}
  v: {{provider: sim, tpr: {tpr}, fpr: {fpr}, latency_ms: {ms}}}
nodes:
  c: {{op: ensemble, model: g, n: {n}, prompt: "Q {{{{ inputs.question }}}}"}}
  ver: {{op: verify, model: v, question: "${{inputs.question}}", candidates: "${{c.responses}}", order: {order}}}
outputs: {{answer: "${{ver.answer}}", verdicts: "${{ver.verdicts}}"}}
"""


def _plan(tmp_path: Path, order: str, p=0.6, tpr=0.9, fpr=0.1, n=4, ms=0):
    path = tmp_path / f"{order}.yaml"
    path.write_text(SPEC.format(order=order, p=p, tpr=tpr, fpr=fpr, n=n, ms=ms))
    return compile_spec(path)


def test_sequential_verification_is_visibly_sequential_and_stops_early(tmp_path: Path):
    seq, par = _plan(tmp_path, "sequential", p=0.0, fpr=0.0, ms=200), _plan(tmp_path, "parallel", ms=200)
    assert (analyze(seq).depth, analyze(par).depth) == (5, 2)  # ember plan: 4 verifier calls in a row
    with virtual_time() as clock:
        rejected, took = clock.measure(lambda: run_plan(seq, {"question": "q"}, runs_dir=None, example={"answer": "B"}))
        _, took_par = clock.measure(lambda: run_plan(par, {"question": "q"}, runs_dir=None, example={"answer": "B"}))
    assert rejected.outputs["verdicts"] == [False] * 4 and took == pytest.approx(4 * 0.2)
    assert took_par == pytest.approx(0.2)  # all candidates at once
    first_ok = run_plan(_plan(tmp_path, "sequential", p=1.0, tpr=1.0), {"question": "q"}, runs_dir=None,
                        example={"answer": "B"})
    assert first_ok.outputs["verdicts"] == [True, None, None, None] and first_ok.usage.calls == 4 + 1


def test_both_orders_accept_the_same_answer_row_by_row(tmp_path: Path):
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(300)]
    seq = eval_plan(_plan(tmp_path, "sequential"), rows, seed=4, runs_dir=None)
    par = eval_plan(_plan(tmp_path, "parallel"), rows, seed=4, runs_dir=None)
    assert seq.correct == par.correct and seq.usage.calls < par.usage.calls


def test_sim_sequential_verify_matches_its_formula(tmp_path: Path):
    p, tpr, fpr, n, rows_n = 0.5, 0.85, 0.2, 4, 3000
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows_n)]
    result = eval_plan(_plan(tmp_path, "sequential", p, tpr, fpr, n), rows, seed=9, runs_dir=None)
    expected, verifier_calls = sequential_verify(n, p, tpr, fpr)
    sigma = math.sqrt(expected * (1 - expected) / rows_n)
    assert abs(result.accuracy - expected) < 1.96 * sigma, (result.accuracy, expected)
    assert (result.usage.calls - rows_n * n) / rows_n == pytest.approx(verifier_calls, rel=0.05)


class Checked(Network):
    class Input(BaseModel):
        question: str
        choices: list[str] = ["A", "B", "C", "D"]

    class Output(BaseModel):
        answer: str | None
        verdicts: list

    def __init__(self) -> None:
        prompt = "Question: {{ inputs.question }}\nThink briefly, then end with a line \"Answer: <answer>\"."
        self.candidates = ops.Ensemble(model=Model(name="prover", provider="sim", accuracy=0.6), n=4, prompt=prompt)
        self.checked = ops.Verify(model=Model(name="verifier", provider="sim", tpr=0.9, fpr=0.1), then="first",
                                  order="sequential")

    def forward(self, question, choices):
        out = self.checked(question=question, candidates=self.candidates().responses)
        return {"answer": out.answer, "verdicts": out.verdicts}


def test_the_sdk_sequential_verify_compiles_to_the_plan_of_its_yaml():
    spec = compile_spec(ROOT / "specs/sim/verify-sequential.yaml")
    assert jit(Checked(), name="verify-sequential-sim").plan.hash == spec.hash

"""`debate`: unrolled rounds, a round's agents in parallel, the sim's majority rule, the SDK twin."""

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
from ember_compiler.sdk.operator import OperatorError
from ember_compiler.testing.analytic import debate_vote_accuracy, majority_accuracy
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.analysis import analyze

ROOT = Path(__file__).resolve().parents[3]
SPEC = """ember: 1
name: d
inputs: {{question: string}}
models:
  a: {{provider: sim, accuracy: {p}, judge_accuracy: {w}, latency_ms: {ms}}}
  j: {{provider: sim, latency_ms: {ms}}}
nodes:
  d: {{op: debate, agents: [a, a, a], question: "${{inputs.question}}", rounds: {rounds}{then}}}
outputs: {{answer: "${{d.answer}}", answers: "${{d.answers}}"}}
"""


def _spec(tmp_path: Path, p=0.6, w=0.5, rounds=3, then="", ms=0) -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(SPEC.format(p=p, w=w, rounds=rounds, then=then, ms=ms))
    return path


def test_a_debate_is_unrolled_and_each_round_runs_its_agents_at_once(tmp_path: Path):
    plan = compile_spec(_spec(tmp_path, then=", then: judge, judge: j", ms=200))
    turns = [n for n in plan.nodes if n.op == "debate_turn"]
    assert [n.id for n in turns[3:6]] == ["d/r2_a", "d/r2_a_2", "d/r2_a_3"]
    assert all(len(n.inputs["previous"].items) == 3 for n in turns[3:])  # every agent reads every answer
    stats = analyze(plan)
    assert (stats.calls, stats.depth, stats.width) == (10, 4, 3)  # 3 agents x 3 rounds + a judge
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, {"question": "q"}, runs_dir=None,
                                                      example={"answer": "B"}))
    assert result.error is None and result.usage.calls == 10
    assert took == pytest.approx(4 * 0.2)  # the critical path: three rounds, then the judge


@pytest.mark.parametrize("rounds,p,w", [(1, 0.6, 0.5), (3, 0.6, 0.5), (2, 0.45, 0.8)])
def test_sim_debate_matches_its_formula(tmp_path: Path, rounds, p, w):
    rows_n = 2000
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows_n)]
    result = eval_plan(compile_spec(_spec(tmp_path, p=p, w=w, rounds=rounds)), rows, seed=7, runs_dir=None)
    expected = debate_vote_accuracy(3, rounds, p, w)
    if rounds == 1:
        assert expected == pytest.approx(majority_accuracy(3, p, [1, 1, 1]))  # one round is a plain vote
    sigma = math.sqrt(expected * (1 - expected) / rows_n)
    assert result.errors == 0 and result.usage.calls == rows_n * 3 * rounds
    assert abs(result.accuracy - expected) < 1.96 * sigma, (result.accuracy, expected)  # the 95% interval


def test_following_the_majority_amplifies_it():
    # a majority that is right more often than not gets stronger with conformity, and the reverse
    assert debate_vote_accuracy(3, 3, 0.6, 0.8) > debate_vote_accuracy(3, 1, 0.6, 0.8)
    assert debate_vote_accuracy(3, 3, 0.4, 0.8, wrong=1) < debate_vote_accuracy(3, 3, 0.4, 0.0, wrong=1)


class Question(BaseModel):
    question: str
    choices: list[str] = ["A", "B", "C", "D"]


class Debated(Network):
    class Output(BaseModel):
        answer: str | None
        answers: list

    Input = Question

    def __init__(self) -> None:
        agent = Model(name="agent", provider="sim", accuracy=0.6, judge_accuracy=0.5)
        self.debated = ops.Debate(agents=[agent, agent, agent], rounds=2, then="vote")

    def forward(self, question, choices):
        out = self.debated(question=question)
        return {"answer": out.answer, "answers": out.answers}


def test_the_sdk_debate_compiles_to_the_plan_of_its_yaml():
    assert ops.Debate(agents=[Model(provider="sim")] * 2).op == "debate"
    with pytest.raises(OperatorError, match="judge"):
        ops.Debate(agents=[Model(provider="sim")] * 2, then="judge")
    spec = compile_spec(ROOT / "specs" / "sim" / "debate.yaml")
    assert jit(Debated(), name="debate-sim").plan.hash == spec.hash

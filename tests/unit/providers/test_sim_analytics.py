"""Sim studies must match the mathematics: self-consistency against the exact majority-vote formula."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import eval_plan
from ember_compiler.testing.analytic import majority_accuracy

SPEC = """ember: 1
name: sc
inputs: {{question: string}}
models:
  w: {{provider: sim, accuracy: {p}{extra}}}
nodes:
  s: {{op: ensemble, model: w, n: {n}, prompt: "Q {{{{ inputs.question }}}}"}}
  v: {{op: vote, candidates: "${{s.answers}}"}}
outputs: {{answer: "${{v.answer}}"}}
"""


def test_formula_sanity():
    assert majority_accuracy(1, 0.6, [1, 1, 1]) == pytest.approx(0.6)
    # two samples: both right, or one right and one wrong and the right one wins the coin flip
    assert majority_accuracy(2, 0.6, [1, 1, 1]) == pytest.approx(0.36 + 2 * 0.6 * 0.4 / 2)


@pytest.mark.parametrize("n,p,wrong", [(5, 0.6, [1, 1, 1]), (4, 0.4, [1, 1, 1]), (7, 0.35, [3, 1, 1])])
def test_self_consistency_matches_exact_majority_vote(tmp_path: Path, n, p, wrong):
    extra = "" if wrong == [1, 1, 1] else f", wrong_weights: {wrong}"
    spec = tmp_path / "sc.yaml"
    spec.write_text(SPEC.format(p=p, n=n, extra=extra))
    rows_n = 6000
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows_n)]
    result = eval_plan(compile_spec(spec), rows, seed=11, runs_dir=None)
    # wrong_weights apply to the wrong choices in order, whatever the truth is, so one formula fits all rows
    expected = majority_accuracy(n, p, wrong)
    sigma = math.sqrt(expected * (1 - expected) / rows_n)
    # the vote_cutoff pass draws only the samples that can still change the vote: same answers, fewer calls
    assert result.errors == 0 and result.usage.calls <= rows_n * n
    assert abs(result.accuracy - expected) < 4 * sigma, (result.accuracy, expected)


def test_same_seed_reproduces_and_another_seed_differs(tmp_path: Path):
    spec = tmp_path / "sc.yaml"
    spec.write_text(SPEC.format(p=0.5, n=3, extra=""))
    plan = compile_spec(spec)
    rows = [Row(i, str(i), {"question": "q", "answer": "A"}) for i in range(300)]
    a = eval_plan(plan, rows, seed=1, runs_dir=None).correct
    assert eval_plan(plan, rows, seed=1, runs_dir=None).correct == a
    assert eval_plan(plan, rows, seed=2, runs_dir=None).correct != a

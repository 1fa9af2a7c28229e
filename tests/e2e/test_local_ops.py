"""End to end on the bundled local model: debate, self-refine, race, sequential verify and executed code."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import load_rows
from ember_compiler.eval.metrics import parse_metrics
from ember_compiler.eval.runner import eval_plan
from ember_compiler.runs import run_plan
from ember_compiler.xcs.analysis import analyze

pytestmark = pytest.mark.e2e  # skipped, with the reason, without the `local` extra (conftest.py)

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.mark.parametrize("name", ["debate", "self-refine", "race", "verify-sequential"])
def test_the_new_ops_run_on_the_local_model_within_their_planned_calls(name: str, tmp_path: Path):
    plan = compile_spec(SPECS / f"{name}.yaml")
    result = run_plan(plan, {"question": "What is 7 * 6?"}, runs_dir=tmp_path)
    assert result.error is None, result.error
    calls = analyze(plan).calls
    assert result.usage.output_tokens > 0
    if name == "debate":
        assert result.usage.calls == calls
    else:  # these stop early: at the first accepted draft or candidate, at the first racer to answer
        assert 1 <= result.usage.calls <= calls
    if name == "race":
        assert result.outputs["winner"] in ("primary", "backup")


def test_code_candidates_from_the_local_model_are_executed_and_scored_with_pass_at_k(tmp_path: Path):
    rows = load_rows(SPECS / "data" / "code.jsonl")[:2]  # two tasks: the path, not the model, is under test
    plan = compile_spec(SPECS / "code-tests.yaml")
    result = eval_plan(plan, rows, runs_dir=tmp_path, metrics=parse_metrics(["pass@1,pass@4"]))
    assert result.errors == 0 and result.scored == len(rows)
    assert result.usage.calls == len(rows) * (4 + 4)  # four samples, four sandbox runs (free calls of `box`)
    metrics = result.summary["metrics"]
    assert 0.0 <= metrics["pass@1"] <= metrics["pass@4"] <= 1.0

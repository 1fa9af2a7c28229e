"""Every example spec validates and runs: the sim twins on the sim, the others on the real local model."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import load_rows
from ember_compiler.eval.runner import eval_plan
from ember_compiler.runs import run_plan
from ember_compiler.xcs.analysis import analyze

SPECS = Path(__file__).resolve().parents[2] / "specs"
SIM = sorted((SPECS / "sim").glob("*.yaml"))
LOCAL = sorted(SPECS.glob("*.yaml"))
# calls depend on what the models say (or, for a race, on which binding answers first)
GUARDED = {"router.yaml", "verifier-prover.yaml", "self-refine.yaml", "verify-sequential.yaml", "race.yaml"}


def test_every_example_has_a_sim_twin_and_a_schema_line():
    assert [p.name for p in SIM] == [p.name for p in LOCAL] and len(LOCAL) >= 8
    for path in [*SIM, *LOCAL]:
        assert path.read_text().startswith("# yaml-language-server: $schema=")


@pytest.mark.parametrize("path", SIM, ids=lambda p: p.name)
def test_sim_twin_runs_with_the_calls_the_plan_predicts(path: Path):
    plan = compile_spec(path)
    result = run_plan(plan, {"question": "Which letter?"}, example={"answer": "B"}, runs_dir=None, seed=5)
    assert result.error is None
    assert set(result.outputs) == set(plan.outputs) and result.outputs["answer"] in {"A", "B", "C", "D"}
    stats = analyze(plan)
    if path.name in GUARDED:
        assert 1 <= result.usage.calls <= stats.calls
    else:
        assert result.usage.calls == stats.calls


def test_sim_eval_on_the_shipped_dataset_sees_hard_rows():
    rows = load_rows(SPECS / "data" / "sim-mcq.jsonl")
    result = eval_plan(compile_spec(SPECS / "sim" / "self-consistency.yaml"), rows, runs_dir=None)
    assert result.rows == 40 and result.errors == 0 and result.usage.calls == 40 * 5
    assert 0.5 < result.accuracy < 1.0


@pytest.mark.e2e
@pytest.mark.parametrize("path", LOCAL, ids=lambda p: p.name)
def test_local_example_runs_on_the_bundled_model(path: Path, tmp_path: Path):
    plan = compile_spec(path)
    result = run_plan(plan, {"question": "What is 7 * 6?"}, runs_dir=tmp_path)
    assert result.error is None, result.error
    assert set(result.outputs) == set(plan.outputs)
    assert isinstance(result.outputs["answer"], str)
    assert result.usage.calls >= 1 and result.usage.output_tokens > 0
    assert (tmp_path / result.run_id / "trace.jsonl").stat().st_size > 0


@pytest.mark.e2e
def test_local_eval_scores_every_row(tmp_path: Path):
    rows = load_rows(SPECS / "data" / "arithmetic.jsonl")
    result = eval_plan(compile_spec(SPECS / "single.yaml"), rows, runs_dir=tmp_path)
    assert result.rows == 6 and result.errors == 0 and result.scored == 6
    assert len((tmp_path / result.run_id / "rows.jsonl").read_text().splitlines()) == 6

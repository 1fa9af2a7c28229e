"""`ember sim-data`: easy/hard mixtures through per-row sim overrides (DESIGN §3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import load_rows
from ember_compiler.eval.runner import eval_plan

SPECS = Path(__file__).resolve().parents[3] / "specs"


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_sim_data_writes_the_mixture(tmp_path):
    out = tmp_path / "mix.jsonl"
    res = run("sim-data", "-o", out, "--rows", "400", "--alpha", "0.25", "--p-easy", "0.9", "--p-hard", "0.2",
              "--choices", "A,B,C", "--wrong-weights", "3,1", "--seed", "7")
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 400 and sum(r["kind"] == "easy" for r in rows) == 100
    easy = next(r for r in rows if r["kind"] == "easy")
    hard = next(r for r in rows if r["kind"] == "hard")
    assert easy["sim"] == {"accuracy": 0.9} and hard["sim"] == {"accuracy": 0.2, "wrong_weights": [3.0, 1.0]}
    assert {r["answer"] for r in rows} == {"A", "B", "C"} and all(r["choices"] == ["A", "B", "C"] for r in rows)
    assert len({r["id"] for r in rows}) == 400
    again = tmp_path / "again.jsonl"
    run("sim-data", "-o", again, "--rows", "400", "--alpha", "0.25", "--p-easy", "0.9", "--p-hard", "0.2",
        "--choices", "A,B,C", "--wrong-weights", "3,1", "--seed", "7")
    assert again.read_text() == out.read_text()  # seeded


@pytest.mark.parametrize("args,message", [
    (["--wrong-weights", "1,1"], "3 weights"), (["--alpha", "1.5"], "between 0 and 1"), (["--choices", "A"], "two"),
])
def test_sim_data_rejects_bad_options(tmp_path, args, message):
    res = run("sim-data", "-o", tmp_path / "x.jsonl", *args)
    assert res.exit_code == 2 and message in res.output


def test_one_call_accuracy_on_a_mixture_is_the_mixed_accuracy(tmp_path):
    out = tmp_path / "mix.jsonl"
    run("sim-data", "-o", out, "--rows", "4000", "--alpha", "0.3", "--p-easy", "0.9", "--p-hard", "0.2")
    result = eval_plan(compile_spec(SPECS / "sim" / "self-consistency.yaml", {"params.n": 1}), load_rows(out),
                       runs_dir=None)
    expected = 0.3 * 0.9 + 0.7 * 0.2  # the overrides reach the sim per row
    assert abs(result.accuracy - expected) < 4 * math.sqrt(expected * (1 - expected) / 4000)

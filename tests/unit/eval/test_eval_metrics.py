"""Metrics (exact, mc, numeric, contains, python), Wilson intervals, and the eval --json summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from ember_compiler.errors import UsageError
from ember_compiler.eval.metrics import interval, mc_letter, parse_metric, parse_metrics, parse_number, wilson

SPECS = Path(__file__).resolve().parents[3] / "specs"


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    from ember_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)  # run artifacts land in tmp_path/.ember
    return lambda *args: CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def score(name, pred, truth, row=None):
    return parse_metric(name).fn(pred, truth, row or {})


def test_builtin_metrics():
    assert score("exact", "  Paris ", "paris") == 1.0 and score("exact", "Paris.", "paris") == 0.0
    assert score("exact", None, "x") == 0.0
    assert score("contains", "The capital is Paris.", "paris") == 1.0 and score("contains", "Lyon", "paris") == 0.0
    assert [mc_letter(t) for t in ["B", "(c)", "Answer: d", "the answer is (A).", "I pick C.", "nothing"]] == \
        ["B", "C", "D", "A", "C", None]
    assert score("mc", "(B) because", "B") == 1.0 and score("mc", "A", "B") == 0.0
    assert parse_number("about 1,234.5 apples") == 1234.5 and parse_number("-3e2") == -300.0
    assert score("numeric", "42", "42.0") == 1.0 and score("numeric", "41.9", "42") == 0.0
    assert score("numeric:0.5", "The answer is 41.6", "42") == 1.0
    assert score("numeric:rel=0.01", "990", "1000") == 1.0 and score("numeric:rel=0.001", "990", "1000") == 0.0
    assert score("numeric", "no number", "3") == 0.0


def test_python_metric_and_errors(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "def half(pred, truth):\n    return 0.5\n"
        "def by_row(pred, truth, row):\n    return pred == row['alt']\n"
        "def bad(pred, truth):\n    return 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert score("my_metrics:half", "x", "y") == 0.5
    assert score("my_metrics:by_row", "z", "y", {"alt": "z"}) == 1.0
    with pytest.raises(ValueError):
        score("my_metrics:bad", "x", "y")
    with pytest.raises(UsageError):
        parse_metric("my_metrics:missing")
    with pytest.raises(UsageError):
        parse_metric("bogus")
    assert [m.name for m in parse_metrics(["exact,mc", "numeric:abs=1,rel=0.1"])] == \
        ["exact", "mc", "numeric:abs=1,rel=0.1"]
    assert [m.name for m in parse_metrics(None)] == ["exact"]


def test_wilson_interval():
    lo, hi = wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)  # the textbook value
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17  # never the degenerate [0, 0] of mean ± 1.96·se
    assert wilson(0, 0) is None
    lo, hi = interval([0.5, 0.5, 1.0, 0.0])  # graded scores: a normal interval around the mean
    assert lo < 0.5 < hi and math.isclose((lo + hi) / 2, 0.5)


def test_eval_json_has_each_metric_with_ci_and_keeps_the_contract(cli, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "ABCD"[i % 4]}) + "\n" for i in range(200))
                    + "not json\n")
    res = cli("eval", SPECS / "sim" / "self-consistency.yaml", "--data", data, "--metric", "exact",
              "--metric", "mc,contains", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert {"metrics", "rows", "calls", "cost_usd", "wall_s"} <= set(s)  # DESIGN §7
    assert set(s["metrics"]) == {"accuracy", "exact", "mc", "contains"}
    assert s["metrics"]["accuracy"] == s["metrics"]["exact"] == s["metrics"]["mc"]  # answers are single letters
    lo, hi = s["ci95"]["accuracy"]
    assert lo < s["metrics"]["accuracy"] < hi and hi - lo < 0.15
    assert s["rows"] == 201 and s["errors"] == 1 and s["calls"] == 1000 and s["calls_per_row"] == round(1000 / 201, 4)
    assert s["latency_p50_s"] <= s["latency_p95_s"] and s["cost_usd"] == 0.0 and s["input_tokens"] > 0
    text = cli("eval", SPECS / "sim" / "self-consistency.yaml", "--data", data, "--metric", "exact,mc")
    assert "accuracy (exact):" in text.stdout and "95% CI" in text.stdout and "mc:" in text.stdout
    assert "1 error" in text.stdout


def test_eval_map_limit_sample_from_the_cli(cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("prompt,label\n" + "".join(f"q{i},{'ABCD'[i % 4]}\n" for i in range(50)))
    res = cli("eval", SPECS / "sim" / "self-consistency.yaml", "--data", data, "--map", "question=prompt,answer=label",
              "--limit", "30", "--sample", "12", "--seed", "4", "--json")
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["rows"] == 12 and s["errors"] == 0
    rows = [json.loads(x) for x in (tmp_path / ".ember" / "runs" / s["run_id"] / "rows.jsonl").read_text().splitlines()]
    assert all(r["index"] < 30 for r in rows) and len({r["id"] for r in rows}) == 12


def test_runtime_warnings_are_printed_once_after_the_results(cli, tmp_path, monkeypatch):
    from ember_compiler.runtime.runtime import Runtime

    prepare = Runtime.prepare

    def warn_too(self, plan):
        prepare(self, plan)
        if hasattr(self, "warn"):
            self.warn("no price for test model")
        else:  # before the providers work lands: the attribute is all the CLI relies on
            self.warnings = ["no price for test model"]

    monkeypatch.setattr(Runtime, "prepare", warn_too)
    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "A"}\n')
    for args in (["eval"], ["sweep", "--set", "samples.n=1,3"]):
        res = cli(args[0], SPECS / "sim" / "self-consistency.yaml", "--data", data, *args[1:])
        assert res.exit_code == 0, res.output
        assert res.stderr.count("warning: no price for test model") == 1

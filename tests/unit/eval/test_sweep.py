"""`ember sweep`: more calls can hurt — the measured curve rises then falls, and agrees with the exact
plurality-vote accuracy of the easy/hard mixture at every point within its 95% interval."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.errors import UsageError
from ember_compiler.eval.sweep import grid, parse_axes, split_values, sweep_async
from ember_compiler.testing.analytic import majority_accuracy, mixture, mixture_rows, plurality_accuracy

SPECS = Path(__file__).resolve().parents[3] / "specs"


def test_formula_matches_the_reference_helper():
    for k in (1, 4, 7):
        assert plurality_accuracy(k, [0.3, 0.42, 0.14, 0.14]) == pytest.approx(majority_accuracy(k, 0.3, [3, 1, 1]))


def test_more_calls_can_hurt_and_every_point_matches_the_exact_value():
    ns = [1, 3, 5, 7, 9, 13, 17, 25]
    sweep = asyncio.run(sweep_async(SPECS / "sim" / "self-consistency.yaml", mixture_rows(3000),
                                    [f"samples.n={','.join(map(str, ns))}"], seed=2, runs_dir=None))
    acc = {p.values["samples.n"]: p.summary["metrics"]["accuracy"] for p in sweep.points}
    for p in sweep.points:
        n = p.values["samples.n"]
        lo, hi = p.summary["ci95"]["accuracy"]
        assert lo <= mixture(n) <= hi, (n, acc[n], mixture(n), (lo, hi))
        assert p.summary["calls_per_row"] == n
    exact = {n: mixture(n) for n in ns}
    assert max(exact, key=exact.get) == 7  # the chosen mixture really is non-monotone
    assert acc[7] - acc[1] > 0.06 and acc[7] - acc[25] > 0.04  # measured: rises, then falls


def _priced_sweep(tmp_path, *extra):
    data = tmp_path / "mix.jsonl"
    data.write_text("".join(json.dumps(r.data) + "\n" for r in mixture_rows(300)))
    spec = SPECS / "sim" / "self-consistency.yaml"
    res = CliRunner().invoke(app, ["sweep", str(spec), "--data", str(data), "--set", "samples.n=1,3,5",
                                   "--set", "models.worker.price={\"input_per_mtok\": 1, \"output_per_mtok\": 4}",
                                   *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


@pytest.mark.needs("plot")
def test_sweep_cli_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _priced_sweep(tmp_path, "--plot", str(tmp_path / "out.svg"))
    svg = (tmp_path / "out.svg").read_text()
    assert "<svg" in svg and "cost per row" in svg  # both panels: the price makes cost meaningful


def test_sweep_cli_table_json_and_grid(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _priced_sweep(tmp_path)
    lines = res.stdout.splitlines()
    assert lines[0].split()[:2] == ["samples.n", "accuracy"] and [ln.split()[0] for ln in lines[1:4]] == ["1", "3", "5"]
    data, spec, runner = tmp_path / "mix.jsonl", SPECS / "sim" / "self-consistency.yaml", CliRunner()
    res = runner.invoke(app, ["sweep", str(spec), "--data", str(data), "--set", "samples.n=1,3",
                              "--set", "models.worker.accuracy=0.5,0.9", "--json"], catch_exceptions=False)
    out = json.loads(res.stdout)
    assert [p["point"] for p in out["points"]] == [
        {"samples.n": 1, "models.worker.accuracy": 0.5}, {"samples.n": 1, "models.worker.accuracy": 0.9},
        {"samples.n": 3, "models.worker.accuracy": 0.5}, {"samples.n": 3, "models.worker.accuracy": 0.9}]
    assert all({"metrics", "ci95", "calls_per_row", "cost_usd"} <= set(p) for p in out["points"])
    assert Path(out["points"][0]["run_dir"], "rows.jsonl").is_file()


def test_axis_parsing():
    assert split_values("1,3,5") == ["1", "3", "5"] and split_values('[1,2],{"a":1},"x,y"') == ['[1,2]', '{"a":1}', '"x,y"']
    fixed, axes = parse_axes(["samples.n=1,3", "params.k=2", "models.w.accuracy=0.5,0.9"])
    assert fixed == {"params.k": 2} and axes == [("samples.n", [1, 3]), ("models.w.accuracy", [0.5, 0.9])]
    assert len(grid(axes)) == 4 and grid([]) == [{}]
    with pytest.raises(UsageError):
        parse_axes(["samples.n"])


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    import sys

    from ember_compiler.errors import ConfigError
    from ember_compiler.eval.plot import pyplot

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the `plot` extra were not installed
    with pytest.raises(ConfigError, match=r"pip install 'ember-compiler\[plot\]'"):
        pyplot()


def test_fit_without_a_vote_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "mix.jsonl"
    data.write_text("".join(json.dumps(r.data) + "\n" for r in mixture_rows(30)))
    res = CliRunner().invoke(app, ["sweep", str(SPECS / "sim" / "single.yaml"), "--data", str(data),
                                   "--set", "models.worker.accuracy=0.5,0.6,0.7", "--fit"], catch_exceptions=False)
    assert res.exit_code == 2 and "op: vote" in res.output and "point 1" not in res.output  # before running

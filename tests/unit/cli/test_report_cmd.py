"""`ember report RUN_ID|DIR [-o FILE]` as users call it."""

from __future__ import annotations

from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

SPECS = Path(__file__).resolve().parents[3] / "specs"


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs land in tmp_path/.ember/runs
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_report_by_run_id_and_by_folder(cli, tmp_path):
    assert cli("eval", SPECS / "sim/self-consistency.yaml", "--data", SPECS / "data/sim-mcq.jsonl").exit_code == 0
    [run] = list((tmp_path / ".ember/runs").iterdir())
    by_id = cli("report", run.name)
    assert by_id.exit_code == 0 and f"wrote .ember/runs/{run.name}/report.html" in by_id.stderr
    assert "<h2>Rows</h2>" in (run / "report.html").read_text()
    by_dir = cli("report", run, "-o", tmp_path / "page.html")
    assert by_dir.exit_code == 0 and (tmp_path / "page.html").read_text() == (run / "report.html").read_text()


def test_an_unknown_run_is_one_line_and_exit_2(cli):
    result = cli("report", "20990101-000000-ffffff")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: 20990101-000000-ffffff: not a run folder, nor a run id in .ember/runs"]

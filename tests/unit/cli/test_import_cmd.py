"""`ember import archon CONFIG.json [-o spec.yaml] [--sim]`."""

from __future__ import annotations

from pathlib import Path

from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler import api

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "archon"


def test_the_cli_writes_the_spec_and_reports_calls_and_notes(tmp_path):
    out = tmp_path / "moa.yaml"
    result = CliRunner().invoke(app, ["import", "archon", str(FIX / "moa-lite.json"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "calls per query: Archon 7, this spec 7" in result.output
    assert "ignored fuse_generations_count, ranker_config, top_k_generations" in result.output
    assert api.validate([out]) == []
    bad = tmp_path / "bad.json"
    bad.write_text('{"layers": [')
    result = CliRunner().invoke(app, ["import", "archon", str(bad)])
    assert result.exit_code != 0 and f"{bad}:1:" in result.output and "Traceback" not in result.output

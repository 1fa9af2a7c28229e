"""`ember serve` refuses to start on an invalid spec (reported as `ember validate` reports it) and on a
public address without keys; it never starts a server in these tests."""

from __future__ import annotations

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.usefixtures("at_repo_root")


def test_an_invalid_spec_is_reported_and_nothing_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ember: 1\nname: bad\nnodes:\n  g: {op: ensembel}\noutputs: {answer: '${g.answer}'}\n")
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yaml:4:" in result.output and "[E" in result.output


def test_a_public_host_without_keys_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["serve", "specs/sim/single.yaml", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--host 0.0.0.0 is not a loopback address" in result.output and "Traceback" not in result.output


def test_a_missing_key_variable_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_EMBER_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", "specs/sim/single.yaml", "--api-key-env", "NO_SUCH_EMBER_KEY"])
    assert result.exit_code == 2 and "NO_SUCH_EMBER_KEY" in result.output

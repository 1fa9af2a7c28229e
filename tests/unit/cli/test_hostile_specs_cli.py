"""Issue #17 rows 6 and 7 through the `ember` command: a FIFO or `/dev/stdin` on a pipe never blocks,
and `--allow-outside` / `--max-spec-bytes` reach validation in every command that reads a spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

SECRET = "OPENAI_API_KEY=sk-live-0123456789abcdefghijklmnop"
SPEC = """ember: 1
name: host
inputs: {{question: string}}
nodes:
  inner: {{op: network, spec: "{target}"}}
outputs: {{a: "${{inner.answer}}"}}
"""


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # the secrets in tmp_path are outside the working directory
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def _ember(*args: str, stdin=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ember_cli.main", *args], stdin=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=Path(__file__).resolve().parents[3])


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)  # nobody ever writes to it: reading would block forever
    result = _ember("validate", str(fifo), timeout=60)
    assert result.returncode == 1
    assert "not a regular file (a FIFO or pipe)" in result.stdout and "[E104]" in result.stdout


def test_dev_stdin_on_an_open_pipe_does_not_hang():
    read, write = os.pipe()  # the write end stays open and silent
    try:
        result = _ember("validate", "/dev/stdin", stdin=read, timeout=60)
    finally:
        os.close(read)
        os.close(write)
    assert result.returncode == 1 and "[E104]" in result.stdout


def test_the_cli_flags_reach_validation(cli, tmp_path):
    secret = tmp_path / "other.yaml"
    secret.write_text(SECRET + "\n")
    (tmp_path / "p").mkdir()
    spec = tmp_path / "p" / "spec.yaml"
    spec.write_text(SPEC.format(target=secret))
    assert "[E313]" in cli("validate", str(spec)).stdout
    out = json.loads(cli("validate", "--allow-outside", "--format", "json", str(spec)).stdout)
    assert [d["code"] for d in out] == ["E304"] and "sk-live" not in json.dumps(out)
    assert "[E104]" in cli("validate", "--max-spec-bytes", "10", str(spec)).stdout


@pytest.mark.parametrize("command", ["compile", "run", "plan"])
def test_other_commands_refuse_outside_subspecs_too(cli, tmp_path, command):
    secret = tmp_path / "other.yaml"
    secret.write_text(SECRET + "\n")
    (tmp_path / "p").mkdir()
    spec = tmp_path / "p" / "spec.yaml"
    spec.write_text(SPEC.format(target=secret))
    result = cli(command, str(spec))
    assert result.exit_code == 1 and "[E313]" in result.stderr + result.stdout
    assert "sk-live" not in result.stderr + result.stdout

"""Issue 17, rows 3, 4, 5 and 21: the API key never reaches an output channel, whatever the server does.

Each fault mode runs the real CLI (`ember run --json`, `ember eval --json`) against the fake
OpenAI-compatible server, and every channel is swept for the key (and for its first and last 12
characters: a key cut at a truncation leaks its prefix): stdout and stderr, every file of the run
folders (result.json, rows.jsonl, trace.jsonl) and the response cache's SQLite files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.testing.fake_server import KEY_ENV, FakeServer, binding

KEY = "sk-live-7f3c9a1e5b2d4086a9c1e7f35b2d9a04c6e8f1a3b5d7c9e2f4a6b8d0c1e3f5a7"


@pytest.fixture(scope="module")
def server():
    s = FakeServer(lifetime_s=120)
    yield s
    s.close()


def _spec(tmp_path: Path, url: str) -> Path:
    spec = tmp_path / "ask.yaml"
    spec.write_text(f"""ember: 1
name: ask
inputs: {{question: string}}
models:
  m: {binding(url, extra=", max_retries: 0")}
nodes:
  a: {{op: generate, model: m, prompt: "{{{{ inputs.question }}}}"}}
outputs: {{answer: "${{a.text}}"}}
""")
    return spec


def _run_both(tmp_path: Path, server: FakeServer, question: str) -> str:
    """`ember run --json` and `ember eval --json` (with a cache); everything they print."""
    spec = _spec(tmp_path, server.url)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "question": f"{question} {i}", "answer": "A"}) + "\n"
                            for i in range(3)))
    runner = CliRunner()
    run = runner.invoke(app, ["run", str(spec), "-i", f"question={question}", "--json"], catch_exceptions=False)
    ev = runner.invoke(app, ["eval", str(spec), "--data", str(data), "--json", "--no-progress",
                             "--cache", str(tmp_path / "eval-cache.sqlite")], catch_exceptions=False)
    return run.output + ev.output  # stdout and stderr, as a terminal shows them


def _channels(tmp_path: Path, printed: str) -> dict[str, bytes]:
    out = {"printed": printed.encode()}
    roots = [tmp_path, Path(os.environ["XDG_CACHE_HOME"])]
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and path.suffix not in (".yaml", ".jsonl") or path.name in ("rows.jsonl", "trace.jsonl"):
                out[str(path)] = path.read_bytes()
    return out


def _assert_no_key(channels: dict[str, bytes]) -> None:
    names = {Path(c).name for c in channels}
    assert {"result.json", "rows.jsonl", "trace.jsonl"} <= names, names  # the sweep saw the run files
    assert any(n.endswith(".sqlite") or n.endswith(".db") for n in names), names  # and a cache
    for where, data in channels.items():
        for part in (KEY, KEY[:12], KEY[-12:]):
            assert part.encode() not in data, f"{part!r} in {where}"


def test_a_key_with_a_trailing_newline_is_stripped_and_never_printed(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY + "\n")  # `export KEY=$(cat key.txt)` with a newline kept
    printed = _run_both(tmp_path, server, "What is 2+2?")
    assert "fits best" in printed and '"errors": 0' in printed, printed  # the run and the eval were answered
    assert "Illegal header" not in printed
    _assert_no_key(_channels(tmp_path, printed))


def test_a_key_a_header_cannot_carry_is_refused_by_its_variable_name(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY[:20] + "\x01" + KEY[20:])
    result = CliRunner().invoke(app, ["run", str(_spec(tmp_path, server.url)), "-i", "question=hi", "--json"],
                                catch_exceptions=False)
    assert result.exit_code != 0
    assert KEY_ENV in result.output
    for part in (KEY[:12], KEY[-12:]):
        assert part not in result.output


def test_a_500_body_echoing_the_authorization_header_leaks_no_key_character(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY)
    printed = _run_both(tmp_path, server, "[echo auth]")
    assert "HTTP 500" in printed and "Bearer ***" in printed  # scrubbed first, then cut
    _assert_no_key(_channels(tmp_path, printed))


def test_a_server_returning_the_key_as_model_is_scrubbed_before_it_is_stored(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY)
    printed = _run_both(tmp_path, server, "[model key]")
    channels = _channels(tmp_path, printed)
    assert any(b'"gen_ai.response.model":"***"' in data or b'"gen_ai.response.model": "***"' in data
               for data in channels.values())
    _assert_no_key(channels)


def test_a_short_key_is_not_used_for_scrubbing_and_is_warned_about(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, "k")
    result = CliRunner().invoke(app, ["run", str(_spec(tmp_path, server.url)), "-i", "question=hi", "--json"],
                                catch_exceptions=False)
    printed = result.output
    assert result.exit_code == 0, printed
    assert f"the key in {KEY_ENV} is shorter than 8 characters" in printed
    assert "model 'fake'" in printed and "***" not in printed  # not `fa***e`

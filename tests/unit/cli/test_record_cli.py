"""`--record io` and `ember runs` through the real CLI (issue 16): the flags on run, eval, sweep and optimize, the
size-cap warning on stderr, no key in io.jsonl whatever the server does, and listing and pruning runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.runtime.iorecord import read_io
from ember_compiler.testing.fake_server import KEY_ENV, FakeServer, binding

ROOT = Path(__file__).resolve().parents[3]
SPEC, DATA = ROOT / "specs" / "sim" / "ensemble-judge.yaml", ROOT / "specs" / "data" / "sim-mcq.jsonl"
KEY = "sk-live-0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071"


def _ember(*args: str) -> object:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _only_run(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def test_run_eval_and_sweep_take_record_io(tmp_path):
    run = _ember("run", SPEC, "-i", "question=Q?", "--record", "io", "--runs-dir", tmp_path / "a")
    assert run.exit_code == 0, run.output
    assert "io: " in run.output and read_io(_only_run(tmp_path / "a"))
    ev = _ember("eval", SPEC, "--data", DATA, "--limit", "3", "--record", "io", "--no-progress",
                "--runs-dir", tmp_path / "b")
    assert ev.exit_code == 0, ev.output
    assert {r["row"] for r in read_io(_only_run(tmp_path / "b"))} == {"q00", "q01", "q02"}
    sw = _ember("sweep", SPEC, "--data", DATA, "--limit", "2", "--set", "candidates.n=1,2", "--record", "io",
                "--no-progress", "--runs-dir", tmp_path / "c")
    assert sw.exit_code == 0, sw.output
    sweep = _only_run(tmp_path / "c")
    for i, n in enumerate((1, 2)):  # each point keeps its own records
        point = [r for r in read_io(sweep / f"point-{i}") if r["kind"] == "node" and r["node"] == "candidates"]
        assert len(point) == 2 and all(len(r["outputs"]["responses"]) == n for r in point)


def test_optimize_records_io_in_each_points_folder(tmp_path):
    op = _ember("optimize", SPEC, "--data", DATA, "--limit", "2", "--set", "candidates.n=1,2", "--method",
                "exhaustive", "--record", "io", "--no-progress", "--runs-dir", tmp_path)
    assert op.exit_code == 0, op.output
    search = _only_run(tmp_path)
    assert (search / "optimize.json").is_file()
    for i, n in enumerate((1, 2)):  # each evaluation keeps its own records, through the shared runtime
        point = [r for r in read_io(search / f"point-{i}") if r["kind"] == "node" and r["node"] == "candidates"]
        assert len(point) == 2 and all(len(r["outputs"]["responses"]) == n for r in point)


def test_optimize_takes_the_spec_limits(tmp_path):
    big = _ember("optimize", SPEC, "--data", DATA, "--set", "candidates.n=1,2", "--max-spec-bytes", "10",
                 "--no-progress", "--runs-dir", tmp_path)
    assert big.exit_code == 1 and "[E104]" in big.output
    small = _ember("optimize", SPEC, "--data", DATA, "--limit", "2", "--set", "candidates.n=1,2", "--method",
                   "exhaustive", "--size-limit", "n=1", "--no-progress", "--runs-dir", tmp_path)
    assert small.exit_code == 1 and "(limit 1)" in small.output and "[E314]" in small.output


def test_the_size_cap_warns_on_stderr(tmp_path):
    ev = _ember("eval", SPEC, "--data", DATA, "--record", "io", "--record-max-mb", "0.002", "--no-progress",
                "--runs-dir", tmp_path)
    assert ev.exit_code == 0, ev.output
    assert "warning: --record io stopped at the size cap (0.002 MB)" in ev.output
    assert read_io(_only_run(tmp_path))[-1]["kind"] == "note"


def test_a_bad_record_value_is_a_usage_error(tmp_path):
    bad = _ember("run", SPEC, "-i", "question=Q?", "--record", "all", "--runs-dir", tmp_path)
    assert bad.exit_code == 2 and "error: --record must be one of io, got 'all'" in bad.output


@pytest.fixture(scope="module")
def server():
    s = FakeServer(lifetime_s=120)
    yield s
    s.close()


@pytest.mark.parametrize("question", ["What is {key}?", "[model key]", "[echo auth]"])
def test_io_jsonl_never_holds_the_key(server, tmp_path, monkeypatch, question):
    """The key in the prompt itself, as the model's name in a reply, echoed in a 500 body: io.jsonl
    holds `***` instead (and, when the server sent it, so does every other file of the run)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, KEY)
    spec = tmp_path / "ask.yaml"
    spec.write_text(f"""ember: 1
name: ask
inputs: {{question: string}}
models:
  m: {binding(server.url, extra=", max_retries: 0")}
nodes:
  a: {{op: generate, model: m, prompt: "{{{{ inputs.question }}}}"}}
outputs: {{answer: "${{a.text}}"}}
""")
    data = tmp_path / "data.jsonl"
    asked = question.format(key=KEY)
    data.write_text(json.dumps({"id": "r0", "question": asked, "answer": "A"}) + "\n")
    run = _ember("run", spec, "-i", f"question={asked}", "--record", "io", "--no-cache")
    ev = _ember("eval", spec, "--data", data, "--record", "io", "--no-cache", "--no-progress")
    written = [p for p in (tmp_path / ".ember" / "runs").rglob("io.jsonl")]
    assert len(written) == 2
    records = [r for p in written for r in read_io(p.parent)]
    assert any(r["kind"] == "request" for r in records)  # the requests were recorded, scrubbed
    if question == "[echo auth]":
        assert any("Bearer ***" in (r.get("error") or "") for r in records if r["kind"] == "request")
        failed = [r for r in records if r["kind"] == "node"]
        assert failed and all(r["node"] == "a" and "HTTP 500" in r["error"] for r in failed)  # the node failed
    elif "{key}" in question:
        assert any("What is ***?" in json.dumps(r) for r in records)
    for path in (tmp_path / ".ember").rglob("*"):
        # a key the user put in an input stays in result.json's `inputs` (what was asked)
        if path.is_file() and (path.name == "io.jsonl" or "{key}" not in question):
            data_bytes = path.read_bytes()
            for part in (KEY, KEY[:12], KEY[-12:]):
                assert part.encode() not in data_bytes, f"{part!r} in {path}"
    for part in (KEY[:12], KEY[-12:]):
        assert part not in run.output + ev.output


def _fake_run(runs: Path, run_id: str, result: dict | None, study: bool = False) -> Path:
    path = runs / run_id
    path.mkdir(parents=True)
    (path / "trace.jsonl").write_text("")
    if result is not None:
        (path / "result.json").write_text(json.dumps(result))
    if study:
        (path / "study.json").write_text(json.dumps({"kind": "eval", "spec": "x.yaml"}))
    return path


def test_runs_lists_recent_runs_newest_first(tmp_path):
    runs = tmp_path / "runs"
    assert _ember("run", SPEC, "-i", "question=Q?", "--runs-dir", runs).exit_code == 0
    assert _ember("eval", SPEC, "--data", DATA, "--limit", "4", "--no-progress", "--runs-dir", runs).exit_code == 0
    _fake_run(runs, "20200101-000000-aaaaaa", None, study=True)  # an eval killed before it ended
    (runs / "not-a-run").mkdir()
    listed = _ember("runs", "--runs-dir", runs, "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [r["command"] for r in rows] == ["eval", "run", "eval"]  # newest first; not-a-run left out
    ev, one, killed = rows
    assert ev["rows"] == 4 and ev["status"] == "ok" and ev["spec"].endswith("ensemble-judge.yaml")
    assert 0 <= ev["accuracy"] <= 1 and ev["cost_usd"] == 0.0
    assert one["rows"] == 1 and one["accuracy"] is None and one["status"] == "ok"
    assert killed["status"] == "unfinished" and killed["run_id"] == "20200101-000000-aaaaaa"
    text = _ember("runs", "--runs-dir", runs).stdout.splitlines()
    assert text[0].split() == ["id", "command", "spec", "rows", "accuracy", "cost", "status"]
    assert text[1].split()[0] == ev["run_id"] and "unfinished" in text[3]


def test_runs_lists_an_optimize_search(tmp_path):
    runs = tmp_path / "runs"
    op = _ember("optimize", SPEC, "--data", DATA, "--limit", "3", "--set", "candidates.n=1,2", "--method",
                "exhaustive", "--no-trace", "--no-progress", "--json", "--runs-dir", runs)
    assert op.exit_code == 0, op.output
    found = json.loads(op.stdout)
    (row,) = json.loads(_ember("runs", "--runs-dir", runs, "--json").stdout)
    assert row["command"] == "optimize" and row["spec"].endswith("ensemble-judge.yaml") and row["status"] == "ok"
    assert row["rows"] == 3 * 2  # rows per evaluation × evaluations
    assert row["accuracy"] == found["best"]["metrics"]["accuracy"] and row["cost_usd"] == found["spent"]["cost_usd"]
    search = runs / row["run_id"]
    record = json.loads((search / "optimize.json").read_text())
    (search / "optimize.json").write_text(json.dumps({**record, "status": "running"}))  # a search still going
    assert json.loads(_ember("runs", "--runs-dir", runs, "--json").stdout)[0]["status"] == "running"
    kept = _ember("runs", "--prune", "--keep", "0", "--runs-dir", runs, "--json")
    assert json.loads(kept.stdout)["removed"] == [] and search.is_dir()


def test_prune_keeps_the_newest_and_only_touches_run_folders(tmp_path):
    runs = tmp_path / "runs"
    ids = [f"2020010{d}-000000-abcdef" for d in range(1, 6)]
    for run_id in ids:
        _fake_run(runs, run_id, {"status": "ok", "command": "run"})
    (runs / "notes").mkdir()
    (runs / "notes" / "result.json").write_text("{}")  # not named like a run: never removed
    dry = _ember("runs", "--prune", "--keep", "2", "--dry-run", "--runs-dir", runs)
    assert dry.exit_code == 0 and "would remove 3 runs" in dry.output
    assert len(list(runs.iterdir())) == 6
    pruned = _ember("runs", "--prune", "--keep", "2", "--runs-dir", runs)
    assert pruned.exit_code == 0, pruned.output
    assert sorted(p.name for p in runs.iterdir()) == sorted([*ids[-2:], "notes"])


def test_prune_older_than_spares_recent_and_running_runs(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "20200101-000000-aaaaaa", {"status": "ok"})
    old_running = _fake_run(runs, "20200102-000000-bbbbbb", None, study=True)  # no result.json, files fresh
    from ember_compiler.api import new_run_id

    fresh = new_run_id()
    _fake_run(runs, fresh, {"status": "ok"})
    out = _ember("runs", "--prune", "--keep", "0", "--older-than", "30d", "--runs-dir", runs, "--json")
    assert out.exit_code == 0, out.output
    assert [r["run_id"] for r in json.loads(out.stdout)["removed"]] == ["20200101-000000-aaaaaa"]
    assert old_running.is_dir() and (runs / fresh).is_dir()
    os.utime(old_running / "trace.jsonl", (0, 0))
    os.utime(old_running / "study.json", (0, 0))
    os.utime(old_running, (0, 0))  # nothing written for decades: a killed run, removed
    again = _ember("runs", "--prune", "--keep", "0", "--older-than", "30d", "--runs-dir", runs, "--json")
    assert [r["run_id"] for r in json.loads(again.stdout)["removed"]] == ["20200102-000000-bbbbbb"]


def test_prune_rejects_a_bad_duration(tmp_path):
    bad = _ember("runs", "--prune", "--older-than", "soon", "--runs-dir", tmp_path)
    assert bad.exit_code == 2 and "--older-than expects a duration such as 30m, 12h, 7d or 2w" in bad.output


def test_record_io_is_refused_on_ray_before_anything_runs(tmp_path):
    out = _ember("eval", SPEC, "--data", DATA, "--executor", "ray", "--record", "io", "--no-progress",
                 "--runs-dir", tmp_path)
    assert out.exit_code == 2 and "--record io runs with the local executor only" in out.output

"""`ember eval` under faults (issue 17 rows 17, 18, 20): SIGTERM, disk full, a read-only or blocked run
folder; `--runs-dir`, `EMBER_RUNS_DIR` and `--no-trace`."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.runs import rundir

SPECS = Path(__file__).resolve().parents[3] / "specs"
ROOT = SPECS.parent
SPEC = SPECS / "sim" / "self-consistency.yaml"


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _data(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "ABCD"[i % 4]}) + "\n" for i in range(n)))
    return data


def test_sigterm_is_handled_like_ctrl_c_and_resume_gives_every_row_once(tmp_path):
    spec = tmp_path / "slow.yaml"
    spec.write_text(SPEC.read_text().replace("accuracy: 0.6}", "accuracy: 0.6, latency_ms: 4}"))
    data = _data(tmp_path, 3000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ember_cli.main", "eval", str(spec), "--data", str(data), "--concurrency", "4"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / ".ember" / "runs"
    deadline = time.time() + 30
    while time.time() < deadline and not any(_count(p / "rows.jsonl") for p in runs.glob("*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    (run_dir,) = runs.glob("*")
    kept = _count(run_dir / "rows.jsonl")
    assert 0 < kept < 3000
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    assert f"ember eval --resume {run_dir.name}" in err and "terminated" in err and "Traceback" not in err
    done = subprocess.run([sys.executable, "-m", "ember_cli.main", "eval", "--resume", run_dir.name, "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    indices = [json.loads(x)["index"] for x in (run_dir / "rows.jsonl").read_text().splitlines()]
    assert sorted(indices) == list(range(3000))  # every row exactly once
    assert json.loads(done.stdout)["resumed_rows"] >= kept


def _enospc_after(monkeypatch, name: str, good_writes: int) -> None:
    """Writes to the run file `name` fail with ENOSPC after `good_writes` writes (the real write raising)."""
    real_open = Path.open

    def fake_open(self, mode="r", *args, **kwargs):
        fh = real_open(self, mode, *args, **kwargs)
        if self.name != name or "r" in mode:
            return fh
        real_write, calls = fh.write, [0]

        def write(text):
            calls[0] += 1
            if calls[0] > good_writes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(text)

        fh.write = write
        return fh

    monkeypatch.setattr(Path, "open", fake_open)


def test_disk_full_on_rows_names_the_file_keeps_rows_and_hints_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ember_compiler.eval.runner._FLUSH_ROWS", 50)
    _enospc_after(monkeypatch, "rows.jsonl", 2)
    result = CliRunner().invoke(app, ["eval", str(SPEC), "--data", str(_data(tmp_path, 1000)),
                                      "--no-progress", "--concurrency", "4"])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    (run_dir,) = (tmp_path / ".ember" / "runs").glob("*")
    err = result.output
    assert "internal error" not in err and "No space left on device" in err
    assert str(Path(".ember") / "runs" / run_dir.name / "rows.jsonl") in err
    assert f"ember eval --resume {run_dir.name}" in err
    assert _count(run_dir / "rows.jsonl") == 100  # what was written is kept
    assert json.loads((run_dir / "result.json").read_text())["status"] == "failed"


def test_disk_full_on_the_trace_does_not_fail_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _enospc_after(monkeypatch, "trace.jsonl", 0)
    result = CliRunner().invoke(app, ["eval", str(SPEC), "--data", str(_data(tmp_path, 200)), "--no-progress"])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    assert "internal error" not in result.output and "trace.jsonl: No space left on device" in result.output
    (run_dir,) = (tmp_path / ".ember" / "runs").glob("*")
    records = [json.loads(x) for x in (run_dir / "rows.jsonl").read_text().splitlines()]
    assert len(records) == 200 and not any(r.get("error") for r in records)  # no row failed by the trace
    assert "ember eval --resume" in result.output


def test_ember_a_file_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".ember").write_text("not a folder")
    result = CliRunner().invoke(app, ["eval", str(SPEC), "--data", str(_data(tmp_path, 5)), "--no-progress"])
    assert result.exit_code == 1 and "internal error" not in result.output
    assert ".ember" in result.output and "nothing was recorded" in result.output


def test_read_only_run_folder_is_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def read_only(path, text):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(rundir, "atomic_write_text", read_only)
    result = CliRunner().invoke(app, ["eval", str(SPEC), "--data", str(_data(tmp_path, 5)), "--no-progress"])
    assert result.exit_code == 1 and "internal error" not in result.output
    assert "study.json: Read-only file system" in result.output


def test_runs_dir_env_and_no_trace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = str(_data(tmp_path, 20))
    result = CliRunner().invoke(app, ["eval", str(SPEC), "--data", data, "--no-progress",
                                      "--runs-dir", str(tmp_path / "elsewhere"), "--no-trace"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "elsewhere").glob("*")
    assert sorted(p.name for p in run_dir.iterdir()) == ["plan.json", "result.json", "rows.jsonl", "study.json"]
    assert not (tmp_path / ".ember").exists()
    result = CliRunner().invoke(app, ["eval", "--resume", run_dir.name, "--json"],
                                env={"EMBER_RUNS_DIR": str(tmp_path / "elsewhere")})
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["run", str(SPEC), "-i", "question=q", "--runs-dir", str(tmp_path / "r2")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "r2").glob("*/trace.jsonl")]

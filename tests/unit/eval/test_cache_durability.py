"""Issue #17 row 19: the response cache keeps pace with rows.jsonl — a row is written only after its
samples are committed to the cache, so a kill -9 never leaves recorded rows whose samples a rerun pays
for again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ember_compiler import api
from ember_compiler.eval import runner
from ember_compiler.runs.rundir import RunDir
from ember_compiler.runtime import cache as cache_mod

ROOT = Path(__file__).resolve().parents[3]
SPEC = """ember: 1
name: one-sample
inputs: {question: string}
models: {w: {provider: sim, accuracy: 0.7, latency_ms: LATENCY}}
nodes:
  g: {op: generate, model: w, prompt: "{{ inputs.question }}"}
outputs: {answer: "${g.answer}"}
"""


def _files(tmp_path: Path, rows: int, latency: int) -> tuple[Path, Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("LATENCY", str(latency)))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "A"}) + "\n" for i in range(rows)))
    return spec, data


def _entries(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def test_rows_are_written_only_after_their_samples_are_cached(tmp_path, monkeypatch):
    spec, data = _files(tmp_path, 1200, 0)
    cache = tmp_path / "cache.sqlite3"
    monkeypatch.setattr(cache_mod, "_FLUSH_S", 3600.0)  # the background writer alone would wait an hour
    monkeypatch.setattr(runner, "_FLUSH_ROWS", 100)
    seen: list[tuple[int, int]] = []  # (rows written so far, cache entries committed) at every write
    real_open = RunDir.open_rows

    def open_rows(self, *, append):
        fh = real_open(self, append=append)
        real_write, written = fh.write, [0]

        def write(text):
            written[0] += text.count("\n")
            seen.append((written[0], _entries(cache)))
            return real_write(text)

        fh.write = write
        return fh

    monkeypatch.setattr(RunDir, "open_rows", open_rows)
    result = api.evaluate(spec, data, api.RunOptions(cache=cache, runs_dir=tmp_path / "runs"))
    assert result.summary["rows"] == 1200
    assert len(seen) >= 2
    assert all(entries >= rows for rows, entries in seen), seen


def test_kill_9_leaves_no_recorded_row_uncached(tmp_path):
    spec, data = _files(tmp_path, 20000, 1)
    cache = tmp_path / "cache.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ember_cli.main", "eval", str(spec), "--data", str(data), "--cache", str(cache),
           "--row-concurrency", "16", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = tmp_path / ".ember" / "runs"
    deadline = time.time() + 60
    rows = 0
    while time.time() < deadline and rows < 600:
        rows = sum(len(p.read_bytes().splitlines()) for p in runs.glob("*/rows.jsonl"))
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (rows_file,) = runs.glob("*/rows.jsonl")
    recorded = [line for line in rows_file.read_bytes().splitlines() if line.endswith(b"}")]
    assert len(recorded) >= 600
    assert _entries(cache) >= len(recorded)  # one sample per row: every recorded row's sample is cached

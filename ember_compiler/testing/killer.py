"""A kill -9 campaign against `ember eval` and `ember eval --resume` (issue #17's acceptance).

`campaign(folder, kills, rows, seed)` starts an eval on the sim, then kills it with SIGKILL at a random
moment — while Python starts, while a resume rewrites a torn `rows.jsonl`, while rows stream — and
resumes it, `kills` times (half of them while rows stream, the others at a random moment of the
first `max_wait_s` seconds), checking after every kill that no row recorded before it was lost. Before
every other resume the last record is cut in half, as a kill in the middle of a write leaves it, so the
resume must rewrite the file (atomically) and the kills also land in that rewrite. A last
resume finishes the run; every row must then be in `rows.jsonl` (each index at least once, and the
rows Ember reads back — later duplicates win — exactly once).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = """ember: 1
name: kill9
inputs: {question: string}
models: {w: {provider: sim, accuracy: 0.7, latency_ms: 1}}
nodes:
  g: {op: generate, model: w, prompt: "{{ inputs.question }}"}
outputs: {answer: "${g.answer}"}
"""


@dataclass
class Report:
    kills: int = 0
    lost: int = 0  # rows recorded before a kill and missing after it
    finished: bool = False
    rows: int = 0
    unique: int = 0
    wall_s: float = 0.0
    kills_before_first_row: int = 0  # of the resumes: killed before they recorded a row
    torn_tails: int = 0  # resumes started on a torn last line (each rewrites the file)
    history: list[int] = field(default_factory=list)  # rows recorded after each kill


def recorded(rows_file: Path) -> set[int]:
    """The indices of the whole records in `rows_file` (a torn last line is not a record)."""
    if not rows_file.is_file():
        return set()
    out = set()
    for line in rows_file.read_bytes().split(b"\n")[:-1]:  # the part after the last newline is torn
        with contextlib.suppress(ValueError, KeyError, TypeError):
            out.add(json.loads(line)["index"])
    return out


def _wait_for_rows(runs: Path, proc: subprocess.Popen, size: int, timeout_s: float = 120) -> None:
    """Until a rows file in `runs` is larger than `size` bytes (or the process ends)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.stat().st_size > size for p in runs.glob("*/rows.jsonl")):
            return
        time.sleep(0.005)


def _tear(rows_file: Path, before: set[int]) -> set[int]:
    """Cut the last record of `rows_file` in half (it is no longer recorded); the rows still recorded."""
    text = rows_file.read_bytes() if rows_file.is_file() else b""
    lines = text.split(b"\n")
    if len(lines) < 2 or not lines[-2]:
        return before
    last = lines[-2]
    rows_file.write_bytes(b"\n".join(lines[:-2]) + (b"\n" if len(lines) > 2 else b"") + last[: len(last) // 2])
    return before & recorded(rows_file)


def campaign(folder: Path, kills: int = 50, rows: int = 20_000, seed: int = 0,
             max_wait_s: float = 2.5) -> Report:
    """Run the campaign in `folder` (created); see the module docstring."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    spec, data = folder / "spec.yaml", folder / "data.jsonl"
    spec.write_text(SPEC)
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "A"}) + "\n" for i in range(rows)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "ember_cli.main", "eval"]
    runs = folder / ".ember" / "runs"
    report = Report()
    start = time.perf_counter()
    run_id: str | None = None
    before: set[int] = set()
    while report.kills < kills:
        if run_id is not None and report.kills % 2:
            before = _tear(runs / run_id / "rows.jsonl", before)
            report.torn_tails += 1
        cmd = [*base, "--resume", run_id] if run_id else [*base, str(spec), "--data", str(data)]
        proc = subprocess.Popen([*cmd, "--no-progress", "--row-concurrency", "16"], cwd=folder, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if run_id is None:  # the first eval is killed once it has recorded rows: there is a run to resume
            _wait_for_rows(runs, proc, 0)
        elif rng.random() < 0.5:  # half the kills while rows stream, the others anywhere in the start-up
            _wait_for_rows(runs, proc, (runs / run_id / "rows.jsonl").stat().st_size)
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            time.sleep(rng.uniform(0.0, max_wait_s))
        if proc.poll() is not None:  # it finished before the kill
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        report.kills += 1
        found = sorted(runs.glob("*")) if runs.is_dir() else []
        if run_id is None and found:
            run_id = found[0].name
        if run_id is None:
            continue
        after = recorded(runs / run_id / "rows.jsonl")
        if report.history and len(after) <= report.history[-1]:
            report.kills_before_first_row += 1
        report.lost += len(before - after)
        report.history.append(len(after))
        before |= after
    if run_id is not None:
        done = subprocess.run([*base, "--resume", run_id, "--no-progress"], cwd=folder, env=env,
                              capture_output=True, timeout=600)
        rows_file = runs / run_id / "rows.jsonl"
        lines = [json.loads(x) for x in rows_file.read_bytes().splitlines()]
        report.finished = done.returncode == 0
        report.rows, report.unique = len(lines), len({r["index"] for r in lines})
        report.lost += len(before - {r["index"] for r in lines})
    report.wall_s = time.perf_counter() - start
    return report

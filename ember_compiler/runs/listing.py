"""`ember runs`: the run folders under a runs directory, newest first, and pruning the old ones.

What a run is comes from its files (rundir.py): `result.json` says how it ended (`command` names it;
older runs are told apart by their fields: `points` a sweep, `study.json` beside it an eval, else a
run); a folder without `result.json` is a run still going or one that was killed (`unfinished`), or
an `ember optimize` search, whose `optimize.json` says how far it got.
Only folders named like a run id (`YYYYMMDD-HHMMSS-xxxxxx`) holding a run's files are ever listed or
removed, so pointing `--runs-dir` at the wrong folder deletes nothing else.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .rundir import OPTIMIZE, RESULT, ROWS, STUDY, TRACE, TRACE_GZ

RUN_ID = re.compile(r"^(\d{8}-\d{6})-[0-9a-f]{6}$")
RUN_FILES = (RESULT, TRACE, TRACE_GZ, ROWS, STUDY, OPTIMIZE, "io.jsonl", "io.jsonl.gz")
DEFAULT_KEEP = 20
BUSY_S = 600  # a run without result.json whose files changed this recently may still be running
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class RunInfo:
    """One run folder as `ember runs` shows it (None: not known for this run)."""

    run_id: str
    path: Path
    started: datetime | None
    command: str
    spec: str | None
    rows: int | None
    accuracy: float | None
    cost_usd: float | None
    status: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["started"] = self.started.isoformat() if self.started else None
        return out


def run_folders(runs_dir: Path) -> list[Path]:
    """The run folders in `runs_dir`, newest first (by the time in their id; within one second, by
    when the folder last changed)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir()
             if p.is_dir() and RUN_ID.match(p.name) and any((p / f).exists() for f in RUN_FILES)]
    return sorted(found, key=lambda p: (p.name[:15], p.stat().st_mtime), reverse=True)


def run_info(path: Path) -> RunInfo:
    """What one run folder holds."""
    path = Path(path)
    result = _read(path / RESULT)
    study = _read(path / STUDY)
    match = RUN_ID.match(path.name)
    started = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC) if match else None
    if result is None and (search := _read(path / OPTIMIZE)) is not None:
        return _optimize_info(path, started, search)
    if result is None:
        command = "eval" if study is not None else "unknown"
        rows = _count_lines(path / ROWS) if study is not None else None
        return RunInfo(path.name, path, started, command, (study or {}).get("spec"), rows, None, None, "unfinished")
    command = result.get("command") or ("sweep" if "points" in result else "eval" if study is not None else "run")
    accuracy = (result.get("metrics") or {}).get("accuracy")
    rows, cost = result.get("rows"), result.get("cost_usd")
    if command == "sweep":
        points = result.get("points") or []
        accs = [a for p in points if (a := (p.get("metrics") or {}).get("accuracy")) is not None]
        accuracy = max(accs) if accs else None  # the best point
        rows = sum(p.get("rows") or 0 for p in points)
        costs = [p.get("cost_usd") for p in points]
        cost = None if any(c is None for c in costs) else sum(costs)
    elif command == "run":
        rows = 1
    spec = result.get("spec") or (study or {}).get("spec")
    return RunInfo(path.name, path, started, command, None if spec is None else str(spec),
                   rows if isinstance(rows, int) else None, accuracy, cost, str(result.get("status") or "ok"))


def _optimize_info(path: Path, started: datetime | None, search: dict[str, Any]) -> RunInfo:
    """An `ember optimize` search: rows and cost are what it spent (every evaluation and the test),
    accuracy the best point's on the dev rows."""
    spent = search.get("spent") or {}
    best = search.get("best") or {}
    rows = spent.get("rows")
    return RunInfo(path.name, path, started, "optimize", None if search.get("spec") is None else str(search["spec"]),
                   rows if isinstance(rows, int) else None, (best.get("metrics") or {}).get("accuracy"),
                   spent.get("cost_usd"), str(search.get("status") or "unknown"))


def list_runs(runs_dir: Path, limit: int | None = None) -> list[RunInfo]:
    """The `limit` most recent runs in `runs_dir` (all when None), newest first."""
    folders = run_folders(runs_dir)
    return [run_info(p) for p in (folders if limit is None else folders[:limit])]


def parse_age(text: str) -> float:
    """`30m`, `12h`, `7d`, `2w` (or seconds: `90s`) as seconds.

    Raises:
        UsageError: not a number followed by s, m, h, d or w.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if m is None:
        raise UsageError(f"--older-than expects a duration such as 30m, 12h, 7d or 2w, got '{text}'")
    return float(m.group(1)) * _UNITS[m.group(2)]


def prune_runs(runs_dir: Path, *, keep: int = DEFAULT_KEEP, older_than: str | None = None, dry_run: bool = False,
               now: float | None = None) -> list[RunInfo]:
    """Remove the runs beyond the `keep` most recent (and, with `older_than`, only those started longer
    ago than that). A run still going (no `result.json`, a file changed in the last 10 minutes) is
    never removed. Returns the runs removed (or that would be, with `dry_run`).

    Raises:
        UsageError: a negative `keep` or a malformed `older_than`.
    """
    if keep < 0:
        raise UsageError(f"--keep must be ≥ 0, got {keep}")
    age = parse_age(older_than) if older_than is not None else None
    now = time.time() if now is None else now
    removed = []
    for path in run_folders(runs_dir)[keep:]:
        info = run_info(path)
        if age is not None and (info.started is None or now - info.started.timestamp() < age):
            continue
        if info.status in ("unfinished", "running") and now - _last_change(path) < BUSY_S:
            continue
        if not dry_run:
            shutil.rmtree(path)
        removed.append(info)
    return removed


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _count_lines(path: Path) -> int | None:
    try:
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return None


def _last_change(path: Path) -> float:
    times = [path.stat().st_mtime]
    times += [p.stat().st_mtime for p in path.iterdir() if p.is_file()]
    return max(times)


__all__ = ["DEFAULT_KEEP", "RunInfo", "list_runs", "parse_age", "prune_runs", "run_folders", "run_info"]

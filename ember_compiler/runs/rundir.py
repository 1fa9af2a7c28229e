"""`RunDir`: a run's folder `.ember/runs/<run-id>/` and the files in it.

- `trace.jsonl`: spans (runtime/trace.py), written while the run goes (on Ray, each worker's in
  `trace.<worker>.jsonl` when the folder is reachable from its host); over 4 MB when the run ends, it
  is gzipped to `trace.jsonl.gz` (`runtime.trace.read_trace` reads either);
- `result.json`: the summary, written when the run ends (also when it failed or was interrupted);
- `rows.jsonl` (eval): one record per finished row, streamed;
- `plan.json`: the plan that ran (the xcs plan's JSON, after passes), written when the run starts, so
  `ember report` draws the plan that ran even when the spec has changed since;
- `study.json` (eval): what was asked (spec, plan hash, data and its hash, sets, seed, metrics,
  selection) — `--resume RUN_ID` reads it to rerun the same study, and `rows.jsonl` to skip the
  finished rows.

A `RunDir` without a path (`runs_dir=None`) writes nothing and reads nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..errors import UsageError

RUNS_DIR = Path(".ember") / "runs"
TRACE, RESULT, ROWS, STUDY, PLAN = "trace.jsonl", "result.json", "rows.jsonl", "study.json", "plan.json"
TRACE_GZ = TRACE + ".gz"
OPTIMIZE = "optimize.json"  # an `ember optimize` search's record, in place of result.json (eval/optimize.py)
# what must match for a resume to continue the same study (the rest is informational)
IDENTITY = ("plan_hash", "data_sha256", "seed", "sets", "map", "limit", "sample", "metrics")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically: a temp file in the same folder, fsync, `os.replace`.

    A kill at any moment leaves either the old file or the new one, never a truncated one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # name the file being written, not its temp file
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def worker_trace(worker: str) -> str:
    """The trace file of one Ray worker in the driver's run folder (`trace.<worker>.jsonl`)."""
    return f"trace.{worker}.jsonl"


def new_run_id() -> str:
    """A run id: UTC time to the second, then 6 random hex digits (`20260101-120000-a1b2c3`)."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


class RunDir:
    """One run's id and folder (`path` None: a run that keeps no files).

    Args:
        run_id: the run's id.
        path: its folder (created on first write), or None.
    """

    __slots__ = ("run_id", "path")

    def __init__(self, run_id: str, path: Path | None) -> None:
        self.run_id = run_id
        self.path = path

    @classmethod
    def new(cls, runs_dir: Path | None = RUNS_DIR, run_id: str | None = None) -> RunDir:
        """A run under `runs_dir` with a new id (or `run_id`); `runs_dir` None: no files."""
        run_id = run_id or new_run_id()
        return cls(run_id, None if runs_dir is None else Path(runs_dir) / run_id)

    @classmethod
    def find(cls, run_id: str, runs_dir: Path = RUNS_DIR) -> RunDir:
        """An earlier eval's run (it has a `study.json`).

        Raises:
            UsageError: no eval run with that id in `runs_dir` (the most recent ones are named).
        """
        path = Path(runs_dir) / run_id
        if not (path / STUDY).is_file():
            known = sorted(p.name for p in Path(runs_dir).glob("*") if (p / STUDY).is_file())[-5:] \
                if Path(runs_dir).is_dir() else []
            hint = f" (recent evals: {', '.join(known)})" if known else ""
            raise UsageError(f"--resume {run_id}: no eval run with that id in {runs_dir}{hint}")
        return cls(run_id, path)

    @classmethod
    def at(cls, path: Path) -> RunDir:
        """The run kept in folder `path` (its name is the run id)."""
        return cls(Path(path).name, Path(path))

    def child(self, name: str) -> RunDir:
        """A run kept inside this one (a sweep's `point-<i>`), with `name` as its id."""
        return RunDir(name, None if self.path is None else self.path / name)

    def file(self, name: str) -> Path | None:
        return None if self.path is None else self.path / name

    @property
    def trace_path(self) -> Path | None:
        return self.file(TRACE)

    @property
    def rows_path(self) -> Path | None:
        return self.file(ROWS)

    def mkdir(self) -> None:
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)

    def _write_json(self, name: str, data: dict[str, Any]) -> None:
        if self.path is not None:
            self.mkdir()
            atomic_write_text(self.path / name, json.dumps(data, indent=2, default=str) + "\n")

    def write_result(self, result: dict[str, Any]) -> None:
        """Write `result.json` (indented JSON, one trailing newline)."""
        self._write_json(RESULT, result)

    def read_result(self) -> dict[str, Any] | None:
        path = self.file(RESULT)
        if path is None or not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def write_plan(self, plan: dict[str, Any]) -> None:
        """Write `plan.json` (the plan's JSON form, `Plan.to_json()`)."""
        self._write_json(PLAN, plan)

    def read_plan(self) -> dict[str, Any] | None:
        """The plan's JSON from `plan.json`, None when the run kept none (or it cannot be read)."""
        path = self.file(PLAN)
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None
        except (OSError, json.JSONDecodeError):
            return None

    def write_study(self, study: dict[str, Any]) -> None:
        self._write_json(STUDY, study)

    def read_study(self) -> dict[str, Any]:
        """The eval's `study.json`.

        Raises:
            UsageError: it cannot be read or does not describe an eval.
        """
        path = self.file(STUDY)
        if path is None:
            raise UsageError("a run without a folder has no study")
        try:
            study = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from None
        if not isinstance(study, dict) or study.get("kind") != "eval":
            raise UsageError(f"{path} does not describe an eval")
        return study

    def open_rows(self, *, append: bool) -> IO[str] | None:
        """`rows.jsonl` for streaming records into (None without a folder)."""
        if self.path is None:
            return None
        self.mkdir()
        return (self.path / ROWS).open("a" if append else "w", encoding="utf-8")

    def load_records(self) -> list[dict[str, Any]]:
        """The finished rows of an interrupted run. A torn last line (killed mid-write: not JSON, or no
        trailing newline) is dropped and the file rewritten atomically without it, so appending continues
        from whole records; a later duplicate index wins."""
        path = self.file(ROWS)
        if path is None or not path.is_file():
            return []
        by_index: dict[int, dict[str, Any]] = {}
        torn = False
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        if lines[-1]:  # the last record's newline never made it to disk: torn, whatever it holds
            torn = True
        for line in lines[:-1]:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn = True
                continue
            if isinstance(record, dict) and isinstance(record.get("index"), int):
                by_index[record["index"]] = record
        records = sorted(by_index.values(), key=lambda r: r["index"])
        if torn:
            atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in records))
        return records

    def __repr__(self) -> str:
        return f"RunDir({self.run_id!r}, {self.path!r})"


def file_sha256(path: str | Path) -> str | None:
    """`sha256:<hex>` of a file's bytes (a dataset's identity in `study.json`), None when unreadable."""
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def check_same_study(recorded: dict[str, Any], current: dict[str, Any], run_id: str) -> None:
    """Refuse to mix two studies in one run directory; name every field that differs.

    Raises:
        UsageError: a field of `IDENTITY` differs.
    """
    diffs = [f"{k}: was {json.dumps(recorded.get(k))}, now {json.dumps(current.get(k))}"
             for k in IDENTITY if recorded.get(k) != current.get(k)]
    if diffs:
        raise UsageError(f"--resume {run_id}: not the same study ({'; '.join(diffs)}); "
                         "start a new eval instead")

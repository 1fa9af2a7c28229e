"""An eval's run directory: `study.json` (what was asked: spec, plan hash, data and its hash, sets, seed,
metrics, selection), `rows.jsonl` (one record per finished row, streamed), `result.json` (the summary).

`--resume RUN_ID` reads `study.json` to rerun the same study and `rows.jsonl` to skip finished rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import UsageError

STUDY = "study.json"
ROWS = "rows.jsonl"
# what must match for a resume to continue the same study (the rest is informational)
IDENTITY = ("plan_hash", "data_sha256", "seed", "sets", "map", "limit", "sample", "metrics")


def file_sha256(path: str | Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def find_run(run_id: str, runs_dir: Path) -> Path:
    run_dir = runs_dir / run_id
    if not (run_dir / STUDY).is_file():
        known = sorted(p.name for p in runs_dir.glob("*") if (p / STUDY).is_file())[-5:] if runs_dir.is_dir() else []
        hint = f" (recent evals: {', '.join(known)})" if known else ""
        raise UsageError(f"--resume {run_id}: no eval run with that id in {runs_dir}{hint}")
    return run_dir


def read_study(run_dir: Path) -> dict[str, Any]:
    try:
        study = json.loads((run_dir / STUDY).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {run_dir / STUDY}: {exc}") from None
    if not isinstance(study, dict) or study.get("kind") != "eval":
        raise UsageError(f"{run_dir / STUDY} does not describe an eval")
    return study


def write_study(run_dir: Path, study: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / STUDY).write_text(json.dumps(study, indent=2, default=str) + "\n", encoding="utf-8")


def check_same_study(recorded: dict[str, Any], current: dict[str, Any], run_id: str) -> None:
    """Refuse to mix two studies in one run directory; name every field that differs."""
    diffs = [f"{k}: was {json.dumps(recorded.get(k))}, now {json.dumps(current.get(k))}"
             for k in IDENTITY if recorded.get(k) != current.get(k)]
    if diffs:
        raise UsageError(f"--resume {run_id}: not the same study ({'; '.join(diffs)}); "
                         "start a new eval instead")


def load_records(run_dir: Path) -> list[dict[str, Any]]:
    """The finished rows of an interrupted run. A torn last line (killed mid-write) is dropped and the file
    rewritten without it, so appending continues from whole records; a later duplicate index wins."""
    path = run_dir / ROWS
    if not path.is_file():
        return []
    by_index: dict[int, dict[str, Any]] = {}
    torn = False
    for line in path.read_text(encoding="utf-8").splitlines():
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
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in records), encoding="utf-8")
    return records

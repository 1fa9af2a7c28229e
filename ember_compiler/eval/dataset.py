"""Datasets for `ember eval`: JSONL (one object per line) or a JSON list of objects.

A row that cannot be read is kept as an error, so it is reported and the other rows still run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass(slots=True)
class Row:
    index: int
    id: str
    data: dict[str, Any] | None
    error: str | None = None


def load_rows(path: str | Path, limit: int | None = None) -> list[Row]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read dataset {path}: {exc}") from None
    if path.suffix == ".json":
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        if not isinstance(items, list):
            raise UsageError(f"{path}: a JSON dataset must be a list of objects")
        rows = [_row(i, item, f"{path}: item {i}") for i, item in enumerate(items)]
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                rows.append(Row(len(rows), str(len(rows)), None, f"{path}:{lineno}: invalid JSON: {exc.msg}"))
                continue
            rows.append(_row(len(rows), item, f"{path}:{lineno}"))
    return rows[:limit] if limit is not None else rows


def _row(index: int, item: Any, where: str) -> Row:
    if not isinstance(item, dict):
        return Row(index, str(index), None, f"{where}: a row must be a JSON object")
    return Row(index, str(item.get("id", index)), item)

"""Datasets for `ember eval` / `ember sweep`: JSONL, a JSON list, or CSV; column mapping, limit, sample.

A row that cannot be read is kept as an error, so it is reported and the other rows still run.
Every row keeps its position in the file (`index`) and an id (its `id` field, else that index):
resume matches rows by index, the sim seeds its draws by id.
"""

from __future__ import annotations

import csv
import io
import json
import random
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


def parse_map(items: list[str] | str | None) -> dict[str, str]:
    """`["answer=label,question=prompt"]` -> {"answer": "label", "question": "prompt"} (target -> column)."""
    if not items:
        return {}
    mapping: dict[str, str] = {}
    for item in [items] if isinstance(items, str) else items:
        for part in item.split(","):
            if not part.strip():
                continue
            target, sep, source = part.partition("=")
            if not sep or not target.strip() or not source.strip():
                raise UsageError(f"--map expects FIELD=COLUMN[,FIELD=COLUMN...], got {part!r}")
            mapping[target.strip()] = source.strip()
    return mapping


def load_rows(path: str | Path, limit: int | None = None, *, mapping: dict[str, str] | None = None,
              sample: int | None = None, seed: int = 0) -> list[Row]:
    """Read a dataset; `limit` keeps the first N rows, then `sample` draws N of them (seeded, file order kept)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read dataset {path}: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        rows = _json_rows(path, text)
    elif suffix in (".csv", ".tsv"):
        rows = _csv_rows(path, text, "\t" if suffix == ".tsv" else ",")
    else:
        rows = _jsonl_rows(path, text)
    if limit is not None:
        rows = rows[:limit]
    if sample is not None and sample < len(rows):
        picked = sorted(random.Random(seed).sample(range(len(rows)), sample))
        rows = [rows[i] for i in picked]
    if mapping:
        rows = [_mapped(row, mapping) for row in rows]
    return rows


def _json_rows(path: Path, text: str) -> list[Row]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(items, list):
        raise UsageError(f"{path}: a JSON dataset must be a list of objects")
    return [_row(i, item, f"{path}: item {i}") for i, item in enumerate(items)]


def _jsonl_rows(path: Path, text: str) -> list[Row]:
    rows: list[Row] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            rows.append(Row(len(rows), str(len(rows)), None, f"{path}:{lineno}: invalid JSON: {exc.msg}"))
            continue
        rows.append(_row(len(rows), item, f"{path}:{lineno}"))
    return rows


def _csv_rows(path: Path, text: str, delimiter: str) -> list[Row]:
    """A header line, then one row per line. Cells holding a JSON list or object (`["A","B"]`,
    `{"accuracy": 0.3}`) are parsed, so `choices` and `sim` overrides fit in a CSV too."""
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    if not reader.fieldnames:
        raise UsageError(f"{path}: a CSV dataset needs a header line")
    rows: list[Row] = []
    for item in reader:
        if None in item:  # more cells than header columns
            rows.append(Row(len(rows), str(len(rows)), None,
                            f"{path}:{reader.line_num}: {len(item[None]) + len(reader.fieldnames)} cells "
                            f"but {len(reader.fieldnames)} columns"))
            continue
        rows.append(_row(len(rows), {k: _cell(v) for k, v in item.items()}, f"{path}:{reader.line_num}"))
    return rows


def _cell(value: str | None) -> Any:
    if value is None:
        return None
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    return value


def _row(index: int, item: Any, where: str) -> Row:
    if not isinstance(item, dict):
        return Row(index, str(index), None, f"{where}: a row must be a JSON object")
    return Row(index, str(item.get("id", index)), item)


def _mapped(row: Row, mapping: dict[str, str]) -> Row:
    """Rename columns: each FIELD takes COLUMN's value (the column itself is dropped unless also mapped)."""
    if row.data is None:
        return row
    data = dict(row.data)
    missing = [src for src in mapping.values() if src not in data]
    if missing:
        return Row(row.index, row.id, None, f"row {row.id}: --map names missing column(s): {', '.join(missing)}")
    values = {target: data[src] for target, src in mapping.items()}
    for src in mapping.values():
        data.pop(src, None)
    data.update(values)
    return Row(row.index, str(data.get("id", row.index)), data)

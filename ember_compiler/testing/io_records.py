"""`io.jsonl` files written by hand in `--record io`'s format, for the cases a real run does not make on
demand (a compressed file, a size-cap note, rows named by index, hostile text) when testing what reads
them (`ember report`).

The format: one JSON object per line, `{"kind": "node", "row", "node", "op", "inputs", "outputs"}` per
node run, `{"kind": "request", "row", "node", "span_id", "binding", "messages", "texts",
"finish_reasons", "cached"}` per model request, `{"kind": "note", "message"}` when a size cap was hit;
`row` is the row's id as in `rows.jsonl` (0 for `ember run`). Gzip-compressed as `io.jsonl.gz`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any


def write_io(folder: str | Path, records: list[dict[str, Any]], *, compressed: bool = False) -> Path:
    """Write `records` as the run's `io.jsonl` (or `io.jsonl.gz`)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    path = Path(folder) / ("io.jsonl.gz" if compressed else "io.jsonl")
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path

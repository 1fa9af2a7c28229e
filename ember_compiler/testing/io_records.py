"""`io.jsonl` files as `--record io` writes them, for testing what reads them (`ember report`).

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

from ember_compiler.report.spans import read_spans, row_of_trace


def write_io(folder: str | Path, records: list[dict[str, Any]], *, compressed: bool = False) -> Path:
    """Write `records` as the run's `io.jsonl` (or `io.jsonl.gz`)."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    path = Path(folder) / ("io.jsonl.gz" if compressed else "io.jsonl")
    if compressed:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def records_for(folder: str | Path) -> list[dict[str, Any]]:
    """Records for every node and request span of the run in `folder`, with texts that name their row and
    node (`"reply 2 of candidates for q03"`), so a test can look for them on the page."""
    spans = read_spans(Path(folder))
    rows = row_of_trace(spans) if (Path(folder) / "rows.jsonl").is_file() else {}  # `ember run`: row 0
    out: list[dict[str, Any]] = []
    for s in spans:
        a = s["attributes"]
        row = rows.get(s["trace_id"], 0)
        node = a.get("ember.node.id")
        if s["kind"] == "CLIENT":
            n = int(a.get("ember.samples") or 1)
            out.append({"kind": "request", "row": row, "node": node, "span_id": s["span_id"],
                        "binding": a.get("ember.model.binding"),
                        "messages": [{"role": "user", "content": f"prompt of {node} for {row}"}],
                        "texts": [f"reply {i} of {node} for {row}" for i in range(n)],
                        "finish_reasons": ["stop"] * n, "cached": bool(a.get("ember.cache.hit"))})
        elif s["name"].startswith("node "):
            out.append({"kind": "node", "row": row, "node": node, "op": a.get("ember.node.op"),
                        "inputs": {"question": f"question of {row}"},
                        "outputs": {"answer": f"output of {node} for {row}", "counts": {"A": 3, "B": 2}}})
    return out

"""Spans as JSON lines with OpenTelemetry field and GenAI attribute names, so they convert to OTLP.

One span per run (`invoke_workflow NAME`), per plan node, and per model request (`chat MODEL`).
Prompts and outputs are not recorded here; keys never are.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import IO, Any


class Tracer:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._buffer: list[str] = []
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self.count = 0

    def new_trace(self) -> str:
        return os.urandom(16).hex()

    def new_span_id(self) -> str:
        return f"{self._prefix}{next(self._ids):08x}"

    def span(self, trace_id: str, span_id: str, parent: str | None, name: str, kind: str,
             start_s: float, end_s: float, status: str, attributes: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.count += 1
        self._buffer.append(json.dumps({
            "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name, "kind": kind,
            "start_time_unix_nano": int(start_s * 1e9), "end_time_unix_nano": int(end_s * 1e9),
            "status": status, "attributes": attributes,
        }, separators=(",", ":"), default=str))
        if len(self._buffer) >= 2048:
            self.flush()

    def flush(self) -> None:
        if not self._buffer or self.path is None:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write("\n".join(self._buffer) + "\n")
        self._buffer.clear()
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None

"""Spans as JSON lines with OpenTelemetry field and GenAI attribute names, so they convert to OTLP.

One span per run (`invoke_workflow NAME`), per plan node, and per model request (`chat MODEL`).
Prompts and outputs are not recorded here (`--record io` keeps them in `io.jsonl`); keys never are.
With an `export` (otlp.py) every span also goes to an OTLP endpoint, with a request's content only
when the caller passes it (`--record io`); `on` says whether spans are wanted at all (a file, an
export, or both).

Writing stays off the call path: `span` only appends the span's fields to a buffer (callers pass
attribute values they will not mutate); the buffer is encoded and written when the run goes quiet
(no span for `IDLE_FLUSH_S`, e.g. while every request is waiting on its server), when it holds
`MAX_BUFFERED` spans, and on `flush`/`close` — so the file is complete when `close` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from pathlib import Path
from typing import IO, Any

IDLE_FLUSH_S = 0.002  # write the buffer once no span came for this long
MAX_BUFFERED = 2048
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class Tracer:
    def __init__(self, path: Path | None, export: Any = None) -> None:
        self.path = path
        self.export = export  # an `otlp.OtlpExport`, or None
        self.on = path is not None or export is not None
        self._file: IO[str] | None = None
        self._buffer: list[tuple] = []
        self._idle: asyncio.TimerHandle | None = None  # the pending quiet-time check
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self.count = 0
        self.error: OSError | None = None  # the trace could not be written: tracing stops, `close` raises it

    def new_trace(self) -> str:
        return os.urandom(16).hex()

    def new_span_id(self) -> str:
        return f"{self._prefix}{next(self._ids):08x}"

    def span(self, trace_id: str, span_id: str, parent: str | None, name: str, kind: str,
             start_s: float, end_s: float, status: str, attributes: dict[str, Any],
             content: dict[str, str] | None = None) -> None:
        if self.export is not None:
            self.export.span(trace_id, span_id, parent, name, kind, start_s, end_s, status, attributes, content)
        if self.path is None:
            return
        self.count += 1
        self._buffer.append((trace_id, span_id, parent, name, kind, start_s, end_s, status, attributes))
        if len(self._buffer) >= MAX_BUFFERED:
            self.flush()
        elif self._idle is None:
            self._watch()

    def _watch(self) -> None:
        """Flush once `IDLE_FLUSH_S` passes with no new span (outside an event loop: at flush/close)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._idle = loop.call_later(IDLE_FLUSH_S, self._quiet, self.count)

    def _quiet(self, seen: int) -> None:
        self._idle = None
        if self.count != seen:  # spans still coming: look again later
            self._watch()
        elif self._buffer:
            self.flush()

    def flush(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if not self._buffer or self.path is None:
            return
        try:
            self._write()
        except OSError as exc:  # disk full, read-only: a write error names no file, so name it; a span
            # never fails the row that made it — tracing stops and `close` reports the error
            self.error = OSError(exc.errno, exc.strerror, str(self.path))
            self.path = None
            self.on = self.export is not None
            self._buffer.clear()

    def _write(self) -> None:
        assert self.path is not None
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        lines = [_encode({
            "trace_id": trace_id, "span_id": span_id, "parent_span_id": parent, "name": name, "kind": kind,
            "start_time_unix_nano": int(start_s * 1e9), "end_time_unix_nano": int(end_s * 1e9),
            "status": status, "attributes": attributes,
        }) for trace_id, span_id, parent, name, kind, start_s, end_s, status, attributes in self._buffer]
        self._buffer.clear()
        self._file.write("\n".join(lines) + "\n")
        self._file.flush()

    def close(self) -> None:
        self.flush()
        if self.export is not None:
            self.export.close()
            self.export = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.error is not None:
            raise self.error

"""The server's request traces: every request's spans appended to one JSONL file that rotates by size
(`trace.jsonl`, then `trace.jsonl.1` … `.N`, oldest dropped) — not a run folder per request."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..runtime.trace import Tracer

SERVER_BATCH = 64  # spans per write


class RotatingTracer(Tracer):
    """A `Tracer` whose file is renamed to `.1` (and `.1` to `.2`, …) once it holds `max_bytes`.

    Args:
        path: the trace file.
        max_bytes: rotate once the file is at least this big.
        backups: how many rotated files to keep.
        export: an OTLP export every span also goes to (`--otlp`), or None.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int, export: Any = None) -> None:
        # a busy server never goes quiet, so the buffer fills: small batches keep each write's stall
        # (~10 µs a span) from landing on the requests in flight as one 20-40 ms pause
        super().__init__(Path(path), export, max_buffered=SERVER_BATCH)
        self.max_bytes = max_bytes
        self.backups = backups

    def _write(self) -> None:
        super()._write()
        file = self._file
        if file is not None and file.tell() >= self.max_bytes:
            file.close()
            self._file = None  # the next write opens a fresh file
            self._rotate()

    def _rotate(self) -> None:
        path = self.path
        assert path is not None
        for i in range(self.backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{i}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(path, path.with_name(f"{path.name}.1"))
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

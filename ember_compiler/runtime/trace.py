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

A run folder's trace (`compress=True`) that ends larger than `COMPRESS_OVER` bytes is then gzipped into
`trace.jsonl.gz` (about 14x smaller: the lines repeat the same names); `read_trace` reads either. Every
step is a temp file, fsync and rename, and the plain file is removed only once the other is in place,
so a kill at any moment leaves a readable trace: when both names exist they hold the same spans, and
the plain one is read. A resumed eval's tracer first restores the plain file (`compress=True` again),
then appends to it, on a new line when a kill left the last one torn (a reader skips that line).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

IDLE_FLUSH_S = 0.002  # write the buffer once no span came for this long
MAX_BUFFERED = 2048
COMPRESS_OVER = 4 * 2**20  # bytes: a smaller trace stays plain text (readable with `less`, `jq`)
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class Tracer:
    """Spans to `path` (None: no file) and to `export`; `compress`: a run folder's trace, gzipped at
    `close` when large, and restored from `.gz` before appending; `max_buffered`: the spans held before
    a write (encoding them stalls the event loop for about 10 µs a span)."""

    def __init__(self, path: Path | None, export: Any = None, *, compress: bool = False,
                 max_buffered: int = MAX_BUFFERED) -> None:
        self.path = path
        self.max_buffered = max_buffered
        self.compress = compress
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
        if len(self._buffer) >= self.max_buffered:
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
            if self.compress:
                restore(self.path)
            self._file = self.path.open("a", encoding="utf-8")
            if self._file.tell() and not _ends_with_newline(self.path):
                self._file.write("\n")  # an earlier run was killed mid-line: keep the first new span whole
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
        if self.compress and self.path is not None and self.path.is_file() \
                and self.path.stat().st_size > COMPRESS_OVER:
            try:
                compress(self.path)
            except OSError as exc:  # disk full while compressing: the plain trace is still whole
                raise OSError(exc.errno, exc.strerror, str(gz_path(self.path))) from exc


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def gz_path(path: Path) -> Path:
    """The compressed name of a trace file (`trace.jsonl.gz`)."""
    return path.with_name(path.name + ".gz")


def _replace_synced(tmp: Path, path: Path) -> None:
    """Rename the written, fsynced `tmp` over `path` and fsync the folder, so the rename is durable."""
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(path: Path, dest: Path, *, into_gz: bool) -> None:
    """Copy `path` into `dest` (gzip one way or the other) through a temp file, fsync, rename."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    try:
        with open(tmp, "wb") as raw:
            if into_gz:
                with path.open("rb") as src, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as dst:
                    shutil.copyfileobj(src, dst, 2**20)
            else:
                with gzip.open(path, "rb") as src:
                    shutil.copyfileobj(src, raw, 2**20)
            raw.flush()
            os.fsync(raw.fileno())
        _replace_synced(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def compress(path: Path) -> Path:
    """Gzip the trace `path` into `path.gz`, then remove `path`. Returns the `.gz`."""
    gz = gz_path(path)
    _copy(path, gz, into_gz=True)
    path.unlink()
    return gz


def restore(path: Path) -> None:
    """Make `path` the plain trace again before appending to it: unzip `path.gz` (and remove it).
    When both exist (a kill between a rename and the removal), they hold the same spans: the plain one
    is kept."""
    gz = gz_path(path)
    if not gz.is_file():
        return
    if not path.is_file():
        _copy(gz, path, into_gz=False)
    gz.unlink()


def trace_file(path: Path) -> Path | None:
    """The file that holds the trace written to `path`: `path` itself, else `path.gz`, else None."""
    if path.is_file():
        return path
    gz = gz_path(path)
    return gz if gz.is_file() else None


def read_trace(path: Path) -> Iterator[dict[str, Any]]:
    """The spans of the trace written to `path` (plain or gzipped, see `trace_file`); a torn line (a
    kill mid-write) is skipped."""
    found = trace_file(Path(path))
    if found is None:
        return
    opener = gzip.open if found.suffix == ".gz" else open
    with opener(found, "rt", encoding="utf-8") as fh:
        for line in fh:
            try:
                span = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(span, dict) and "start_time_unix_nano" in span:
                yield span

"""`--record io`: every node's inputs and outputs and every request's messages and replies, as JSON
lines in the run folder (`io.jsonl`). Off by default: prompts and outputs may be sensitive.

One object per line:

- `{"kind": "node", "row", "node", "op", "inputs": {port: value}, "outputs": {port: value}}` when a
  plan node finishes (`"skipped": true` with null outputs when its guard or a skipped input skipped
  it, `"error"` when it failed);
- `{"kind": "request", "row", "node", "span_id", "binding", "messages", "texts", "finish_reasons",
  "cached"}` for every request answered (fresh or from the response cache), and every failed attempt
  (with `"error"` and no texts); `span_id` is its CLIENT span in `trace.jsonl` (null without a trace);
- `{"kind": "note", "message"}` once, when the size cap is reached: nothing is written after it.

`row` is the row's `id` as in `rows.jsonl` (`0` for `ember run`). Keys never appear: each line is
scrubbed of the run's secrets before it is written. Lines are buffered and written at most every
`FLUSH_LINES` lines, and on `close`; a file that ends larger than `COMPRESS_OVER` bytes is then
compressed into `io.jsonl.gz` (gzip; readers accept either name). A resumed eval appends to the
records of the interrupted run. The cap counts uncompressed bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

IO_FILE, IO_GZ = "io.jsonl", "io.jsonl.gz"
DEFAULT_MAX_MB = 100.0
COMPRESS_OVER = 4 * 2**20  # bytes: a smaller file stays plain text (readable with `less`, `jq`)
FLUSH_LINES = 256
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


class IoRecorder:
    """Appends io records to `folder/io.jsonl`, up to `max_bytes` (uncompressed).

    Args:
        folder: the run folder.
        max_bytes: the size cap; when the next line would pass it, a note ends the file.
        scrub: replaces secrets in a line (the runtime's `scrub`), applied to every line.
        append: continue an earlier file (a resumed eval), compressed or not.
        warn: called once with the note when the cap is reached (the CLI prints it on stderr).
    """

    def __init__(self, folder: Path, max_bytes: int, *, scrub: Callable[[str], str] | None = None,
                 append: bool = False, warn: Callable[[str], None] | None = None) -> None:
        self.path = Path(folder) / IO_FILE
        self.max_bytes = max_bytes
        self.scrub = scrub
        self.warn = warn
        self.full = False  # the cap was reached: nothing more is written
        self._lines: list[str] = []
        self._file: IO[str] | None = None
        self.written = 0
        self.error: OSError | None = None  # the file could not be written: recording stops, `close` raises it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        gz = self.path.with_name(IO_GZ)
        if append and gz.is_file():  # continue the earlier records as plain text; compressed again at close
            with gzip.open(gz, "rb") as src, self.path.open("ab") as dst:
                shutil.copyfileobj(src, dst)
            gz.unlink()
        elif not append:
            self.path.unlink(missing_ok=True)
            gz.unlink(missing_ok=True)
        if self.path.is_file():
            self.written = self.path.stat().st_size
            self.full = _ends_with_note(self.path)

    def node(self, row: Any, node: Any, inputs: dict[str, Any], outputs: Any, error: str | None = None,
             skipped: bool = False) -> None:
        """A plan node finished (or was skipped, or failed)."""
        record: dict[str, Any] = {"kind": "node", "row": row, "node": node.id, "op": node.op,
                                  "inputs": inputs, "outputs": None if skipped else outputs}
        if skipped:
            record["skipped"] = True
        if error is not None:
            record["error"] = error
        self._add(record)

    def request(self, row: Any, node: str, span_id: str | None, binding: str, messages: list[dict[str, str]],
                texts: list[str], finish_reasons: list[str], cached: bool, error: str | None = None) -> None:
        """One request answered (or one failed attempt, with `error`)."""
        record: dict[str, Any] = {"kind": "request", "row": row, "node": node, "span_id": span_id,
                                  "binding": binding, "messages": messages, "texts": texts,
                                  "finish_reasons": finish_reasons, "cached": cached}
        if error is not None:
            record["error"] = error
        self._add(record)

    def _add(self, record: dict[str, Any]) -> None:
        if self.full:
            return
        line = _encode(record)
        if self.scrub is not None:
            line = self.scrub(line)
        size = len(line.encode("utf-8")) + 1
        if self.written + size > self.max_bytes:
            self._cap()
            return
        self.written += size
        self._lines.append(line)
        if len(self._lines) >= FLUSH_LINES:
            self.flush()

    def _cap(self) -> None:
        self.full = True
        message = (f"--record io stopped at the size cap ({self.max_bytes / 2**20:.3g} MB): the records after this "
                   "point were not kept (raise --record-max-mb)")
        self._lines.append(_encode({"kind": "note", "message": message}))
        self.flush()
        if self.warn is not None:
            self.warn(message)

    def flush(self) -> None:
        if not self._lines:
            return
        try:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write("\n".join(self._lines) + "\n")
            self._file.flush()
        except OSError as exc:  # disk full: a record never fails the row that made it; `close` reports it
            self.error = OSError(exc.errno, exc.strerror, str(self.path))
            self.full = True
        self._lines.clear()

    def close(self) -> Path:
        """Write what is buffered; compress a large file into `io.jsonl.gz`. Returns the file kept."""
        self.flush()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self.error is not None:
            raise self.error
        if not self.path.is_file():
            self.path.write_text("", encoding="utf-8")  # a run that made no record still says so
        if self.path.stat().st_size <= COMPRESS_OVER:
            return self.path
        gz = self.path.with_name(IO_GZ)
        tmp = gz.with_name(f".{IO_GZ}.{os.getpid()}.tmp")
        with self.path.open("rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, gz)
        self.path.unlink()
        return gz


def _ends_with_note(path: Path) -> bool:
    """Whether an earlier file already ended at the cap (its last line is the note)."""
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - 4096))
        tail = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return tail.startswith(b'{"kind":"note"')


def read_io(folder: Path) -> list[dict[str, Any]]:
    """The io records of a run folder (`io.jsonl` or `io.jsonl.gz`); [] when it has none."""
    folder = Path(folder)
    if (folder / IO_GZ).is_file():
        with gzip.open(folder / IO_GZ, "rt", encoding="utf-8") as fh:
            text = fh.read()
    elif (folder / IO_FILE).is_file():
        text = (folder / IO_FILE).read_text(encoding="utf-8")
    else:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


__all__ = ["COMPRESS_OVER", "DEFAULT_MAX_MB", "IO_FILE", "IO_GZ", "IoRecorder", "read_io"]

"""The response cache: completions stored by the canonical request, in one SQLite file (WAL mode).

The key is the sha256 of the canonical JSON of everything that changes a completion: the provider,
the binding (model, endpoint, temperature, top_p, max_tokens, seed, structured_output, the sim's
fields — not limits, timeouts, retries, prices or key names), the rendered messages, `n`, the
structured-output schema, the run seed and the **sample index**, so the samples of an ensemble stay
distinct while rerunning the same spec with the same seed costs nothing and gives the same outputs.
For the `sim` provider the key also holds what drives its draw (the example id, node id, truth,
choices, the row's sim overrides, the candidates it judges).

An entry is one *sample*: a request for `n` samples from index `sample_offset` is the entries
`sample_offset … sample_offset + n - 1` (so one request with `n` and `n` single requests share
entries). When the first k are cached only the rest are requested.

Values are JSON (never pickle). Reads are plain SELECTs (WAL readers never block the writer); writes
go through one writer per process: `put` queues the entry (and a lookup sees it at once), a
background task writes queued entries in batched transactions (`BEGIN IMMEDIATE`, `busy_timeout`),
and `aclose` writes the rest. Many processes can share one file.

Modes: `read-write` (default), `read-only` (hits are used, nothing is written), `replay` (every
request must hit: a miss is an error, so a recorded run can be re-checked offline).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, EmberError
from ..providers.base import Completion, Request

MODES = ("read-write", "read-only", "replay")
FILE_NAME = "responses.sqlite3"
BUSY_TIMEOUT_MS = 60_000
_BATCH, _FLUSH_S = 256, 0.2
# binding fields that do not change what a model answers
_NOT_IN_KEY = frozenset({"limits", "timeout_s", "max_retries", "price", "api_key_env"})
# request meta that drives the sim's draw besides the sample index and seed
_SIM_META = ("role", "example_id", "node_id", "truth", "choices", "sim", "candidates", "candidate_answers",
             "candidate", "candidate_answer")
_SIM_PIPELINE_META = ("truths", "upstream")
_SCHEMA = ("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
           "created REAL NOT NULL)")


class CacheMiss(EmberError):
    """`--cache-mode replay` met a request that is not in the cache."""


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ember"


def default_path() -> Path:
    return default_dir() / FILE_NAME


def sample_keys(provider: str, request: Request) -> list[str]:
    """The sha256 (hex) keys of the request's samples (see the module docstring)."""
    meta = request.meta
    body: dict[str, Any] = {
        "provider": provider,
        "binding": {k: v for k, v in request.model.items() if k not in _NOT_IN_KEY and v is not None},
        "messages": request.messages, "schema": request.schema, "seed": meta.get("seed"),
    }
    if provider == "sim":
        body["sim"] = {k: meta.get(k) for k in _SIM_META}
        for k in _SIM_PIPELINE_META:  # only when present: the keys of other requests stay as they were
            if meta.get(k) is not None:
                body["sim"][k] = meta[k]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    base = hashlib.sha256(text.encode())
    start = meta.get("sample_offset") or 0
    keys = []
    for j in range(start, start + request.n):
        h = base.copy()
        h.update(b"\x1fsample=%d" % j)
        keys.append(h.hexdigest())
    return keys


def _split(c: Completion) -> list[str]:
    """One JSON entry per sample; the request's tokens are spread over its samples."""
    n = len(c.texts)
    out = []
    for j, text in enumerate(c.texts):
        share_in = c.input_tokens // n + (j < c.input_tokens % n)
        share_out = c.output_tokens // n + (j < c.output_tokens % n)
        reason = c.finish_reasons[j] if j < len(c.finish_reasons) else None
        out.append(json.dumps({"text": text, "finish_reason": reason, "input_tokens": share_in,
                               "output_tokens": share_out, "model": c.model},
                              separators=(",", ":"), ensure_ascii=False))
    return out


def _join(entries: list[dict[str, Any]]) -> Completion:
    return Completion(texts=[e["text"] for e in entries],
                      input_tokens=sum(int(e.get("input_tokens") or 0) for e in entries),
                      output_tokens=sum(int(e.get("output_tokens") or 0) for e in entries),
                      model=entries[0].get("model") if entries else None,
                      finish_reasons=[e.get("finish_reason") or "stop" for e in entries])


class Lookup:
    """What the cache holds of one request: `cached` leading samples; `complete` when that is all of
    them, else `rest` is the request for the others, and `store` adds their completion."""

    __slots__ = ("cache", "keys", "entries", "cached", "complete", "rest")

    def __init__(self, cache: ResponseCache, request: Request, keys: list[str], entries: list[dict[str, Any]]) -> None:
        self.cache, self.keys, self.entries = cache, keys, entries
        self.cached = len(entries)
        self.complete = _join(entries) if self.cached == request.n else None
        self.rest = request
        if self.cached and self.complete is None:
            meta = {**request.meta, "sample_offset": (request.meta.get("sample_offset") or 0) + self.cached}
            self.rest = replace(request, n=request.n - self.cached, meta=meta)

    def store(self, completion: Completion) -> Completion:
        """Write the fresh samples; returns the whole completion (cached samples first)."""
        self.cache.put(self.keys[self.cached:], completion)
        if not self.cached:
            return completion
        head = _join(self.entries)
        head.texts += completion.texts
        head.finish_reasons += completion.finish_reasons
        head.input_tokens += completion.input_tokens
        head.output_tokens += completion.output_tokens
        head.cached_tokens, head.rate_limits = completion.cached_tokens, completion.rate_limits
        return head


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode with a long busy timeout; creates the file and table when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # Switching to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without the
    # busy handler, when another connection holds the file meanwhile (many processes opening a new
    # cache together): retry within the busy timeout, re-reading the mode (another one may have set it).
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.002
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal" or \
                    conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                break
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                conn.close()
                raise
        if time.monotonic() >= deadline:
            conn.close()
            raise sqlite3.OperationalError("database is locked (could not switch it to WAL mode)")
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, 0.1)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_SCHEMA)
    return conn


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class ResponseCache:
    """One per runtime. `include_sim`: also cache the in-process sim (off unless asked for: a sim call
    is cheaper than a lookup)."""

    def __init__(self, path: Path | str | None = None, *, mode: str = "read-write", include_sim: bool = False) -> None:
        if mode not in MODES:
            raise ConfigError(f"unknown cache mode '{mode}' (expected {', '.join(MODES)})")
        self.path = Path(path) if path is not None else default_path()
        self.mode = mode
        self.include_sim = include_sim
        try:
            self._conn = connect(self.path)  # lookups, on the event loop's thread
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the response cache {self.path}: {exc}") from None
        self._wconn: sqlite3.Connection | None = None  # the writer's own connection, used in a worker thread
        self._pending: dict[str, str] = {}
        self._writer: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def applies(self, provider: str) -> bool:
        return provider != "sim" or self.include_sim

    def _get(self, key: str) -> str | None:
        text = self._pending.get(key)
        if text is None:
            row = self._conn.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
            text = row[0] if row is not None else None
        return text

    def lookup(self, provider: str, request: Request) -> Lookup:
        """The request's leading cached samples (in `replay` mode all of them must be cached)."""
        keys = sample_keys(provider, request)
        entries: list[dict[str, Any]] = []
        for key in keys:
            text = self._get(key)
            if text is None:
                break
            entries.append(json.loads(text))
        self.hits += len(entries)
        self.misses += len(keys) - len(entries)
        if len(entries) < len(keys) and self.mode == "replay":
            raise CacheMiss(f"replay: no cached response for model '{request.binding}' (node "
                            f"'{request.meta.get('node_id', '?')}', sample "
                            f"{(request.meta.get('sample_offset') or 0) + len(entries)}) in {self.path}; "
                            "record it first with --cache-mode read-write")
        return Lookup(self, request, keys, entries)

    def put(self, keys: list[str], completion: Completion) -> None:
        if self.mode != "read-write":
            return
        for key, value in zip(keys, _split(completion), strict=False):
            self._pending[key] = value
        if self._writer is None or self._writer.done():
            self._wake = asyncio.Event()
            self._writer = asyncio.get_running_loop().create_task(self._write_soon(self._wake))

    async def _write_soon(self, wake: asyncio.Event) -> None:
        """The writer task (one at a time): waits a moment to gather a batch, then writes until empty."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), _FLUSH_S)
        while self._pending:
            items = list(self._pending.items())
            await asyncio.to_thread(self._write, items)  # lookups meanwhile still see `_pending`
            for k, v in items:
                if self._pending.get(k) is v:
                    del self._pending[k]

    def _write(self, items: list[tuple[str, str]]) -> None:
        now = time.time()
        if self._wconn is None:
            self._wconn = connect(self.path)
        conn = self._wconn
        for i in range(0, len(items), _BATCH * 16):
            chunk = items[i:i + _BATCH * 16]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO responses (key, value, created) VALUES (?, ?, ?)",
                                 [(k, v, now) for k, v in chunk])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self.writes += len(items)

    async def aclose(self) -> None:
        """Write everything queued, then close the file."""
        writer = self._writer
        if writer is not None and not writer.done():
            if self._wake is not None:
                self._wake.set()
            await writer
        if self._pending:  # only when the loop that queued them is gone
            items = list(self._pending.items())
            self._pending.clear()
            self._write(items)
        self._conn.close()
        if self._wconn is not None:
            self._wconn.close()

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "mode": self.mode, "hits": self.hits, "misses": self.misses,
                "writes": self.writes}

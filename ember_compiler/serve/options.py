"""`ServeOptions`: how `ember serve` runs (a light module: the API imports it at start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..runs.options import RunOptions

DEFAULT_TRACE = Path(".ember") / "serve" / "trace.jsonl"


@dataclass(frozen=True)
class ServeOptions:
    """How `ember serve` runs (the defaults are the command's).

    Args:
        host, port: where to listen.
        api_key_env: the environment variable holding the one client key.
        keys_file: the keys file (per-key limits; see `serve/keys.py`).
        insecure_no_auth: allow a non-loopback host without keys.
        max_concurrency: chat requests running at once.
        queue: requests waiting for a slot beyond that; more are answered 429.
        timeout_s: a request's deadline (504 after it).
        max_body_bytes: larger bodies are answered 413.
        allow_set: the `--set` paths a request may override in `extra_body.ember.set`.
        trace: the rotating trace file (None: no traces).
        trace_max_bytes, trace_backups: when the trace file rotates, and how many old ones are kept.
        grace_s: how long SIGTERM waits for in-flight requests.
        access_log: one line per request on stderr.
        run: seed-free run options shared by every request: `budget` (server-wide), cache, scheduler,
            `sets` (applied to every spec), `disable_passes`.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key_env: str | None = None
    keys_file: Path | None = None
    insecure_no_auth: bool = False
    max_concurrency: int = 64
    queue: int = 256
    timeout_s: float = 600.0
    max_body_bytes: int = 1_000_000
    allow_set: tuple[str, ...] = ()
    trace: Path | None = DEFAULT_TRACE
    trace_max_bytes: int = 100_000_000
    trace_backups: int = 5
    grace_s: float = 30.0
    access_log: bool = True
    run: RunOptions = field(default_factory=lambda: RunOptions(runs_dir=None))

    def __post_init__(self) -> None:
        for name in ("max_concurrency", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if self.queue < 0 or self.timeout_s <= 0 or self.grace_s < 0:
            raise UsageError("--queue and --grace must be ≥ 0 and --timeout > 0")

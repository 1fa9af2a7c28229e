"""`RunOptions`: how a plan is run — the same object for run, eval, sweep, estimate and the SDK."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..compiler.passes import PASSES, pass_name
from ..errors import UsageError
from ..runtime.budget import Budget
from ..runtime.cache import MODES
from ..runtime.iorecord import DEFAULT_MAX_MB
from ..runtime.otlp import traces_url
from .rundir import RUNS_DIR

CACHE_MODES = (*MODES, "off")
PASS_NAMES = tuple(PASSES)
RECORD_KINDS = (None, "io")


@dataclass(frozen=True)
class RunOptions:
    """How to run: the defaults are those of the `ember` command.

    Args:
        seed: the run seed (the sim and seeded models reproduce exactly).
        scheduler: a scheduling policy or its name (`parallel`, `sequential`, `cheapest-first`, or
            one registered in `ember.schedulers`).
        budget: limits that override the spec's `budget:` field by field (None: the spec's).
        cache: the response cache file; None: the default file ($XDG_CACHE_HOME/ember), used for every
            provider but the sim (an explicit file caches the sim too).
        cache_mode: `read-write`, `read-only`, `replay` (a request not in the cache is an error) or `off`.
        trace: write `trace.jsonl` into the run folder.
        runs_dir: where run folders go (`.ember/runs`); None: keep no files.
        disable_passes: default plan passes not to run (`vote-cutoff` or `vote_cutoff`).
        sets: `--set` overrides (dotted path -> value) applied when a spec file is compiled.
        row_concurrency: rows in flight at once (eval, sweep).
        transport: an httpx transport for every HTTP provider (tests).
        record: `io` keeps every node's inputs and outputs and every request's messages and replies in
            the run folder (`io.jsonl`, runtime/iorecord.py); None: not (prompts may be sensitive).
        record_max_mb: the size cap of `io.jsonl` in MB (uncompressed); a note ends it when reached.
        otlp: an OTLP/HTTP endpoint the spans are exported to (runtime/otlp.py); None: the one
            `OTEL_EXPORTER_OTLP_ENDPOINT` names, if any.

    Raises:
        UsageError: an unknown cache mode, pass or record kind, a row concurrency below 1, or a
            record cap that is not positive.
    """

    seed: int = 0
    scheduler: Any = "parallel"
    budget: Budget | None = None
    cache: Path | str | None = None
    cache_mode: str = "read-write"
    trace: bool = True
    runs_dir: Path | None = RUNS_DIR
    disable_passes: tuple[str, ...] = ()
    sets: dict[str, Any] = field(default_factory=dict)
    row_concurrency: int = 64
    transport: Any = None
    record: str | None = None
    record_max_mb: float = DEFAULT_MAX_MB
    otlp: str | None = None

    def __post_init__(self) -> None:
        if self.cache_mode not in CACHE_MODES:
            raise UsageError(f"--cache-mode must be one of {', '.join(MODES)}, got '{self.cache_mode}'")
        if self.cache_mode == "off" and self.cache is not None:
            raise UsageError("--no-cache cannot be combined with --cache or --cache-mode")
        passes = tuple(pass_name(p) for p in self.disable_passes)
        if unknown := [p for p in passes if p not in PASS_NAMES]:
            raise UsageError(f"unknown pass '{unknown[0]}' (passes: {', '.join(PASS_NAMES)})")
        object.__setattr__(self, "disable_passes", passes)
        if self.row_concurrency < 1:
            raise UsageError(f"row concurrency must be ≥ 1, got {self.row_concurrency}")
        if self.record not in RECORD_KINDS:
            raise UsageError(f"--record must be one of {', '.join(k for k in RECORD_KINDS if k)}, got '{self.record}'")
        if not self.record_max_mb > 0:
            raise UsageError(f"--record-max-mb must be > 0, got {self.record_max_mb}")
        if self.otlp is not None:
            traces_url(self.otlp)  # a malformed URL is a usage error before anything runs
        if self.runs_dir is not None:
            object.__setattr__(self, "runs_dir", Path(self.runs_dir))

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with `changes`."""
        return replace(self, **changes)


def deprecated(old: str, new: str) -> None:
    """A one-line deprecation warning for a renamed Python argument."""
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)

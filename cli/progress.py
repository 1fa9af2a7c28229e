"""Progress for long evals: a rich bar on a terminal (rows, accuracy so far, cost so far, ETA), and a
quiet log line every `log_every_s` seconds otherwise (CI logs stay short but show the run is alive).

Updates are throttled: the bar is redrawn by rich's own thread, and a row only touches it every
`_MIN_UPDATE_S`, so the progress bar costs next to nothing at tens of thousands of calls per second.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .output import err

_MIN_UPDATE_S = 0.05


class RowProgress:
    def __init__(self, total: int, enabled: bool = True, *, done: int = 0, correct: float = 0.0,
                 scored: int = 0, cost: float | None = 0.0, console: Console | None = None,
                 label: str = "eval", log_every_s: float = 15.0) -> None:
        console = console or err
        self.total, self.label = total, label
        self.done, self.correct, self.scored, self.cost = done, correct, scored, cost
        self.live = enabled and console.is_terminal
        self.log = enabled and not self.live
        self.console = console
        self.log_every_s = log_every_s
        self._shown = done
        self._start = self._last = time.perf_counter()
        self._last_log = self._start
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, transient=True,
        ) if self.live else None
        self._task = (self._progress.add_task(label, total=total, completed=done, stats=self._stats())
                      if self._progress else None)

    def __enter__(self) -> RowProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.stop()

    def _stats(self) -> str:
        acc = f"acc {self.correct / self.scored:.3f}" if self.scored else "acc –"
        cost = "cost ?" if self.cost is None else f"${self.cost:.4f}"
        return f"{acc} · {cost}"

    def start_from(self, records: list[dict[str, Any]]) -> None:
        """Count the rows a resumed run already finished."""
        if records:
            self.done = len(records)
            self.scored = sum("scores" in r for r in records)
            self.correct = sum(bool(r.get("correct")) for r in records)

    def update(self, record: dict[str, Any]) -> None:
        self.done += 1
        scores = record.get("scores")
        if scores is not None:
            self.scored += 1
            self.correct += bool(record.get("correct"))
        c = record.get("cost_usd")
        self.cost = None if c is None or self.cost is None else self.cost + c
        if not (self.live or self.log):
            return
        now = time.perf_counter()
        if self.live:
            if now - self._last >= _MIN_UPDATE_S or self.done == self.total:
                self._progress.update(self._task, completed=self.done, stats=self._stats())
                self._last = now
        elif now - self._last_log >= self.log_every_s:
            self._last_log = now
            self.console.print(f"{self.label}: {self.done:,}/{self.total:,} rows · {self._stats()} · "
                               f"{now - self._start:.0f}s", markup=False, highlight=False)

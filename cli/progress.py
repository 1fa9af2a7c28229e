"""A progress bar for long evals on a terminal (stderr); silent when stderr is not a TTY."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .output import err


class RowProgress:
    def __init__(self, total: int, enabled: bool = True) -> None:
        self.enabled = enabled and err.is_terminal
        self.correct = self.scored = 0
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[acc]}"), TimeRemainingColumn(), console=err, transient=True,
        ) if self.enabled else None
        self._task = self._progress.add_task("eval", total=total, acc="") if self._progress else None

    def __enter__(self) -> RowProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.stop()

    def update(self, record: dict[str, Any]) -> None:
        if self._progress is None:
            return
        if "correct" in record or "error" in record:
            self.scored += 1
            self.correct += bool(record.get("correct"))
        acc = f"acc {self.correct / self.scored:.3f}" if self.scored else ""
        self._progress.update(self._task, advance=1, acc=acc)

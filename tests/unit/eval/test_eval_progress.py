"""The eval progress bar: rows, accuracy so far, cost so far and ETA on a terminal; quiet logs otherwise."""

from __future__ import annotations

import io

from ember_cli import progress
from ember_cli.progress import RowProgress
from rich.console import Console


class _Clock:
    """perf_counter for the progress module: stands still unless a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_bar_on_a_terminal_shows_rows_accuracy_and_cost():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with RowProgress(4, console=console) as bar:
        assert bar.live
        for correct in (True, False, True, True):
            bar.update({"scores": {"exact": float(correct)}, "correct": correct, "cost_usd": 0.25})
        bar._progress.refresh()
    text = buf.getvalue()
    assert "4/4" in text and "acc 0.750" in text and "$1.0000" in text and "ETA" in text


def test_unknown_cost_and_unscored_rows():
    bar = RowProgress(3, enabled=False)
    bar.update({"cost_usd": None})
    bar.update({"scores": {"exact": 1.0}, "correct": True, "cost_usd": 0.1})
    assert bar._stats() == "acc 1.000 · cost ?" and bar.done == 2


def test_not_a_terminal_logs_a_line_now_and_then(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress, "time", clock)
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    bar = RowProgress(1000, console=console, log_every_s=0.0)
    assert not bar.live and bar.log
    bar.update({"scores": {"exact": 1.0}, "correct": True, "cost_usd": 0.0})
    assert buf.getvalue().startswith("eval: 1/1,000 rows · acc 1.000 · $0.0000")
    quiet = RowProgress(1000, console=Console(file=io.StringIO(), force_terminal=False))
    quiet.update({"correct": True})
    assert quiet.console.file.getvalue() == ""  # not before log_every_s has passed
    clock.now += quiet.log_every_s
    quiet.update({"correct": True})
    assert quiet.console.file.getvalue().startswith("eval: 2/1,000 rows")


def test_rows_touch_the_bar_at_most_every_min_update_s(monkeypatch):
    # why the bar costs next to nothing at 20k calls/s (bench/eval.py measures that): rows in a burst
    # only count; the bar is updated once per _MIN_UPDATE_S and for the last row
    clock = _Clock()
    monkeypatch.setattr(progress, "time", clock)
    bar = RowProgress(4000, console=Console(file=io.StringIO(), force_terminal=True))
    touched = []
    monkeypatch.setattr(bar._progress, "update", lambda task, **kw: touched.append(kw["completed"]))
    for _ in range(1999):
        bar.update({"scores": {"exact": 1.0}, "correct": True, "cost_usd": 0.0})
    assert touched == []
    clock.now += progress._MIN_UPDATE_S
    for _ in range(2001):
        bar.update({"scores": {"exact": 1.0}, "correct": True, "cost_usd": 0.0})
    assert touched == [2000, 4000] and bar.done == 4000

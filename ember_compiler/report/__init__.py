"""`ember report` (layer 9, above eval): a run folder read into one model (`data.py`: summary, plan,
per-node figures, the timeline of calls from the spans, eval rows, recorded inputs and outputs, sweep
points) and rendered into one self-contained HTML page (`html.py`; charts as SVG from `charts.py` and
`graph.py`)."""

from __future__ import annotations

from pathlib import Path

from ..runs.rundir import RUNS_DIR, atomic_write_text
from .data import load, locate
from .html import render

__all__ = ["load", "locate", "render", "write_report"]


def write_report(target: str | Path, out: str | Path | None = None, *, runs_dir: Path = RUNS_DIR) -> Path:
    """Write the report of the run `target` (a folder, or a run id in `runs_dir`) to `out` (default:
    `report.html` in the run's folder); returns the path written.

    Raises:
        UsageError: `target` is not a run, or one of its files cannot be read.
    """
    folder = locate(target, runs_dir)
    path = Path(out) if out is not None else folder / "report.html"
    atomic_write_text(path, render(load(folder)))
    return path

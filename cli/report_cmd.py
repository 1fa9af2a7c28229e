"""`ember report`: a run's folder as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember_compiler import api

from . import output
from .app import RunsDirOpt, app, errors


@app.command()
def report(
    run: Annotated[str, typer.Argument(help="A run id (in --runs-dir) or a run folder.", metavar="RUN_ID|DIR")],
    out: Annotated[Path | None, typer.Option("-o", "--output", help="Write the page here "
                                             "(default: report.html in the run's folder).")] = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Write a run's report: summary, plan, nodes, timeline of calls, rows (eval), curves (sweep,
    optimize); one HTML file that works offline."""
    with errors():
        path = api.report(run, out, runs_dir=runs_dir or api.RUNS_DIR)
        output.note(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")

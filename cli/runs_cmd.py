"""`ember runs`: the recent runs in the runs directory, and `--prune` to remove the old ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ember_compiler import api

from . import output
from .app import RunsDirOpt, app, errors

COLUMNS = ("id", "command", "spec", "rows", "accuracy", "cost", "status")


def runs_table(runs: list[Any]) -> str:
    rows = [[r.run_id, r.command, r.spec or "", "" if r.rows is None else f"{r.rows:,}",
             "" if r.accuracy is None else f"{r.accuracy:.4f}",
             "" if r.cost_usd is None and r.status == "unfinished" else
             "unknown" if r.cost_usd is None else f"${r.cost_usd:.4f}", r.status] for r in runs]
    widths = [max(len(x[i]) for x in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]
    right = {3, 4, 5}  # numbers align right
    fmt = lambda r: "  ".join(c.rjust(w) if i in right else c.ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
    return "\n".join([fmt(list(COLUMNS)), *(fmt(r) for r in rows)])


@app.command(name="runs")
def runs(
    runs_dir: RunsDirOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many runs.")] = 20,
    prune: Annotated[bool, typer.Option("--prune", help="Remove old runs: all but the --keep most recent "
                                        "(and with --older-than only those older). A run still going is kept.")] = False,
    keep: Annotated[int, typer.Option("--keep", min=0, help="With --prune: keep this many most recent runs.")] = 20,
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help="With --prune: remove only runs started longer ago than this (30m, 12h, 7d, 2w).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --prune: list what would be removed.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List recent runs (id, command, spec, rows, accuracy, cost, status), newest first; --prune removes old ones."""
    with errors():
        where = runs_dir if runs_dir is not None else api.RUNS_DIR
        if not prune and (older_than is not None or dry_run):
            raise api.UsageError("--older-than and --dry-run go with --prune")
        if prune:
            removed = api.prune_runs(where, keep=keep, older_than=older_than, dry_run=dry_run)
            if json_out:
                output.print_json({"removed" if not dry_run else "would_remove": [r.to_json() for r in removed]})
                return
            verb = "would remove" if dry_run else "removed"
            for r in removed:
                output.print_text(f"{verb} {r.run_id} ({r.command}, {r.status})")
            output.note(f"{verb} {len(removed)} run{'s' if len(removed) != 1 else ''} from {where}")
            return
        found = api.list_runs(where, limit)
        if json_out:
            output.print_json([r.to_json() for r in found])
        elif not found:
            output.note(f"no runs in {Path(where)}")
        else:
            output.print_text(runs_table(found))

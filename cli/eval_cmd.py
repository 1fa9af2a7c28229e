"""`ember eval`: a dataset through one shared runtime, scored against each row's answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from . import output
from .app import SchedulerOpt, SetOpt, SpecArg, app, compile_plan, errors


@app.command(name="eval")
def eval_(
    spec: SpecArg,
    data: Annotated[Path, typer.Option("--data", help="Dataset: JSONL rows (or a JSON list).")],
    set: SetOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, help="Rows in flight at once.")] = 64,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")] = None,
    scheduler: SchedulerOpt = "parallel",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Run every row of a dataset and score the spec's `answer` output against each row's `answer`."""
    from ember_compiler.eval.dataset import load_rows
    from ember_compiler.eval.runner import eval_plan_async

    from .progress import RowProgress

    with errors():
        plan = compile_plan(spec, set)
        rows = load_rows(data, limit)
        with RowProgress(len(rows), enabled=not json_out) as progress:
            result = asyncio.run(eval_plan_async(plan, rows, seed=seed, concurrency=concurrency,
                                                 scheduler=scheduler, on_row=progress.update))
        summary = result.to_json()
        if json_out:
            output.print_json(summary)
        else:
            acc = summary["metrics"]["accuracy"]
            output.print_text(f"accuracy: {'n/a' if acc is None else f'{acc:.4f}'}  "
                              f"({result.correct}/{result.scored} rows{f', {result.errors} errors' if result.errors else ''})")
            u = result.usage
            output.note(output.usage_line(u.calls, u.input_tokens, u.output_tokens, u.cost_usd, result.wall_s))
            if result.run_dir is not None:
                output.note(f"rows: {result.run_dir / 'rows.jsonl'}")

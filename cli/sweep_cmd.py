"""`ember sweep`: an architecture at several sizes (a grid of --set values), a table, a plot, and a
fitted scaling law that predicts the best number of calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ember_compiler import api

from . import output
from .app import (
    NoPassOpt,
    NoTraceOpt,
    OldConcurrencyOpt,
    OtlpOpt,
    RecordMaxMbOpt,
    RecordOpt,
    RowConcurrencyOpt,
    RunsDirOpt,
    SchedulerOpt,
    SpecArg,
    app,
    errors,
    renamed,
    run_options,
)
from .eval_cmd import LimitOpt, MapOpt, MetricOpt, SampleOpt, print_warnings


def table(sweep: Any) -> str:
    names = [p for p, _ in sweep.axes] or ["point"]
    head = [*names, "accuracy", "95% CI", "calls/row", "cost", "errors", "wall"]
    rows = []
    for p in sweep.points:
        s = p.summary
        acc, ci = s["metrics"]["accuracy"], s["ci95"]["accuracy"]
        cost = s["cost_usd"]
        labels = [str(p.values[n]) for n in names] if sweep.axes else [str(p.index)]
        rows.append([*labels, "n/a" if acc is None else f"{acc:.4f}", f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "",
                     f"{s['calls_per_row']:g}", "unknown" if cost is None else f"${cost:.4f}",
                     str(s["errors"]), f"{s['wall_s']:.2f}s"])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) if i >= len(names) else c.ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    return "\n".join([fmt(head), *(fmt(r) for r in rows)])


@app.command(name="sweep")
def sweep(
    spec: SpecArg,
    data: Annotated[Path, typer.Option("--data", help="Dataset: JSONL, a JSON list, or CSV.")],
    set: Annotated[list[str] | None, typer.Option(
        "--set", help="PATH=V1,V2,... is an axis (several make a grid); PATH=VALUE a fixed override.")] = None,
    map: MapOpt = None,
    metric: MetricOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed, the same at every point.")] = 0,
    row_concurrency: RowConcurrencyOpt = None,
    old_concurrency: OldConcurrencyOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a plot (.png, .svg, .pdf).")] = None,
    fit: Annotated[bool, typer.Option("--fit", help="Fit the Chen et al. 2024 scaling law; predict the best "
                                      "number of calls.")] = False,
    fit_upto: Annotated[float | None, typer.Option(
        "--fit-upto", help="Fit only the points with at most this many calls per row (the others are then "
                           "a check of the prediction).")] = None,
    fit_horizon: Annotated[int | None, typer.Option(
        "--fit-horizon", min=1, help="Largest number of calls per row the fit considers (default 1000).")] = None,
    old_max_calls: Annotated[int | None, typer.Option("--max-calls", min=1, hidden=True,
                                                      help="Deprecated: --fit-horizon.")] = None,
    scheduler: SchedulerOpt = "parallel",
    no_pass: NoPassOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on a terminal.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    runs_dir: RunsDirOpt = None,
    no_trace: NoTraceOpt = False,
    record: RecordOpt = None,
    record_max_mb: RecordMaxMbOpt = api.RECORD_MAX_MB,
    otlp: OtlpOpt = None,
) -> None:
    """Run SPEC over a dataset at every point of a --set grid; table, plot and scaling-law fit."""
    from .progress import RowProgress

    with errors():
        horizon = renamed(fit_horizon, old_max_calls, "sweep --max-calls", "--fit-horizon") or 1000
        options = run_options(seed=seed, scheduler=scheduler, no_pass=no_pass, row_concurrency=row_concurrency,
                              old_concurrency=old_concurrency, no_cache=True, runs_dir=runs_dir,
                              no_trace=no_trace, record=record, record_max_mb=record_max_mb, otlp=otlp)
        if plot is not None:
            api.require_plot()  # a missing extra is reported before the sweep runs, not after
        rows = api.load_rows(data, limit=limit, map=map, sample=sample, seed=seed)
        n_rows = len(rows)
        n_points = api.sweep_size(set)
        with RowProgress(n_rows * n_points, enabled=progress and not json_out, label="sweep") as bar:
            def on_point(point: Any) -> None:
                if not json_out and not bar.live:
                    s = point.summary
                    output.note(f"point {point.index + 1}/{n_points} {point.values}: "
                                f"accuracy {s['metrics']['accuracy']:.4f} ({s['wall_s']:.2f}s)")
            try:
                result = api.sweep(spec, rows, set, options, metrics=metric,
                                   fit=fit or fit_upto is not None, on_point=on_point, on_row=bar.update)
            except KeyboardInterrupt:
                output.error(f"interrupted: the finished points are in {options.runs_dir}/ (a sweep is not resumable; "
                             "rerun it, or use ember eval --set for one point)")
                raise typer.Exit(130) from None
        law = result.fit(k_max=horizon, upto=fit_upto) if fit or fit_upto is not None else None
        if plot is not None:
            api.plot_sweep(result, plot, title=f"{Path(spec).name} on {Path(data).name} ({n_rows:,} rows)", fit=law)
        print_sweep(result, law, plot, horizon, json_out)
        print_warnings(result.warnings)


def print_sweep(result: Any, law: Any, plot: Path | None, horizon: int, json_out: bool) -> None:
    """The sweep's table and fit (or its JSON summary)."""
    if json_out:
        summary = result.to_json()
        if law is not None:
            summary["fit"] = law.to_json()
        if plot is not None:
            summary["plot"] = str(plot)
        output.print_json(summary)
        return
    output.print_text(table(result))
    if law is not None:
        output.print_text(
            f"fit (Chen et al. 2024, on {len(law.ks)} points up to {max(law.ks):g} calls/row): best at {law.best_k} "
            f"calls/row, predicted accuracy {law.best_accuracy:.4f}; "
            f"{law.alpha:.1%} of queries are helped by more calls")
        if law.best_k == horizon:
            output.note(f"the fitted curve still rises at --fit-horizon {horizon}: more calls keep helping")
    output.note(f"{len(result.points)} points · {result.wall_s:.2f}s · runs: {result.run_dir}")
    if plot is not None:
        output.note(f"plot: {plot}")

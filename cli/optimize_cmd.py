"""`ember optimize`: search per-node models and architecture choices for the best configuration of a
spec; the Pareto front as a table, a plot and runnable specs; resumable."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ember_compiler import api

from . import output
from .app import (
    AllowOutsideOpt,
    CacheModeOpt,
    CacheOpt,
    MaxCallsOpt,
    MaxCostOpt,
    MaxSpecBytesOpt,
    NoCacheOpt,
    NoPassOpt,
    NoTraceOpt,
    OtlpOpt,
    RecordMaxMbOpt,
    RecordOpt,
    RowConcurrencyOpt,
    RunsDirOpt,
    SchedulerOpt,
    SizeLimitOpt,
    SpecArg,
    app,
    errors,
    limits,
    run_options,
)
from .eval_cmd import LimitOpt, MapOpt, MetricOpt, SampleOpt, print_warnings
from .output import err

_MIN_UPDATE_S = 0.05


class SearchProgress:
    """Evaluations done (of the planned number, when known), best accuracy so far and spend; a note per
    evaluation when stderr is not a terminal."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.live = enabled and err.is_terminal
        self.log = enabled and not self.live
        self._progress = Progress(TextColumn("optimize"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=err,
                                  transient=True) if self.live else None
        self._task = self._progress.add_task("optimize", total=total, stats="") if self._progress else None
        self._last = 0.0

    def __enter__(self) -> SearchProgress:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress:
            self._progress.stop()

    def update(self, scored: Any, search: Any) -> None:
        best = search.best()
        spent = sum(s.summary.get("cost_usd") or 0.0 for s in search.order)
        stats = f"best {best.accuracy:.4f} · ${spent:.4f}"
        if self._progress is not None:
            now = time.perf_counter()
            if now - self._last >= _MIN_UPDATE_S:
                self._progress.update(self._task, completed=len(search.order), stats=stats)
                self._last = now
        elif self.log:
            output.note(f"evaluation {len(search.order)} {json.dumps(scored.point)}: accuracy "
                        f"{scored.accuracy:.4f} · {stats}")


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def front_table(result: Any) -> str:
    dims = [p for p, _ in result.search.space.dims]
    head = [*dims, "accuracy", "95% CI", "cost/row", "calls/row", "front"]
    rows = []
    for s, fronts in result.front():
        ci = s.summary["ci95"].get("accuracy") if s.summary.get("ci95") else None
        cost = s.summary.get("cost_per_row_usd")
        rows.append([*(_value(s.point[d]) for d in dims), f"{s.accuracy:.4f}",
                     f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "", "unknown" if cost is None else f"${cost:.6f}",
                     f"{s.calls:g}", "+".join(fronts)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) if len(dims) <= i < len(head) - 1 else c.ljust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
    return "\n".join([fmt(head), *(fmt(r) for r in rows)])


def _figures(summary: dict[str, Any]) -> str:
    acc = summary["metrics"].get("accuracy")
    ci = (summary.get("ci95") or {}).get("accuracy")
    cost = summary.get("cost_per_row_usd")
    return (f"accuracy {'n/a' if acc is None else f'{acc:.4f}'}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
            + f" on {summary.get('rows') or 0:,} rows · " + ("cost unknown" if cost is None else f"${cost:.6f}/row")
            + f" · {summary.get('calls_per_row') or 0:g} calls/row")


def print_result(result: Any, json_out: bool, *, plot: Path | None, written: list[Path]) -> None:
    if json_out:
        output.print_json(result.to_json())
        return
    output.print_text("Pareto front (accuracy vs cost per row, and vs calls per row):")
    output.print_text(front_table(result))
    best = result.best
    if best is not None:
        point = ", ".join(f"{k}={_value(v)}" for k, v in best.point.items())
        output.print_text(f"best: {point}")
        output.print_text(f"  dev:  {_figures(best.summary)}")
        if result.test is not None:
            output.print_text(f"  test: {_figures(result.test)}")
    spent = result.spent()
    cost = spent["cost_usd"]
    stopped = f", stopped at {result.search.stopped}" if result.search.stopped else ""
    output.note(f"{spent['evaluations']} evaluations of {result.search.space.size:,} points ({result.method}{stopped})"
                + (f", {result.resumed} from the resumed search" if result.resumed else "")
                + f" · spent {spent['calls']:,} calls, " + ("cost unknown" if cost is None else f"${cost:.4f}")
                + f" · {result.wall_s:.2f}s · runs: {result.run_dir}")
    if plot is not None:
        output.note(f"plot: {plot}")
    if written:
        output.note(f"specs: {', '.join(str(p) for p in written)}")


@app.command(name="optimize")
def optimize(
    spec: SpecArg,
    data: Annotated[Path, typer.Option("--data", help="Dataset the search scores points on (dev rows).")],
    set: Annotated[list[str] | None, typer.Option(
        "--set", help="PATH=V1,V2,... is a dimension of the search; PATH=VALUE a fixed override. "
                      "Default: the spec's `search:` section.")] = None,
    method: Annotated[str, typer.Option(
        "--method", help="auto (exhaustive if the space fits in --max-evals, else coordinate then tpe), "
                         "exhaustive, coordinate (LLMSelector's round-robin), or tpe (optuna).")] = "auto",
    start: Annotated[list[str] | None, typer.Option(
        "--start", help="PATH=VALUE: where coordinate starts (default: each dimension's first value).")] = None,
    max_evals: Annotated[int | None, typer.Option("--max-evals", min=1, help="At most this many evaluations "
                                                  "(auto and tpe: default 100).")] = None,
    max_cost: MaxCostOpt = None,
    max_calls: MaxCallsOpt = None,
    test: Annotated[Path | None, typer.Option("--test", help="Held-out rows the chosen point is scored on.")] = None,
    split: Annotated[float | None, typer.Option(
        "--split", help="Hold out this share of --data (seeded) as test rows, e.g. 0.8 to search on 20%.")] = None,
    objective: Annotated[str, typer.Option(
        "--objective", help="accuracy, cost-at-accuracy (the cheapest point within the best's 95% interval), "
                            "or pareto (tpe searches accuracy and cost together).")] = "accuracy",
    plot: Annotated[Path | None, typer.Option("--plot", help="Plot the evaluations and the front (.png, .svg, .pdf).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write each front point's spec (and best.yaml) here.")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue the interrupted search RUN_ID "
                                                "(finished points are not re-run).")] = None,
    map: MapOpt = None,
    metric: MetricOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed (the same at every point; also seeds --sample, --split, tpe).")] = 0,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    cache_mode: CacheModeOpt = "read-write",
    scheduler: SchedulerOpt = "parallel",
    no_pass: NoPassOpt = None,
    row_concurrency: RowConcurrencyOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on a terminal.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    runs_dir: RunsDirOpt = None,
    no_trace: NoTraceOpt = False,
    record: RecordOpt = None,
    record_max_mb: RecordMaxMbOpt = api.RECORD_MAX_MB,
    otlp: OtlpOpt = None,
    allow_outside: AllowOutsideOpt = False,
    max_spec_bytes: MaxSpecBytesOpt = None,
    size_limit: SizeLimitOpt = None,
) -> None:
    """Search SPEC's --set space (or its `search:` section) for the best configuration on a dataset."""
    with errors():
        options = run_options(seed=seed, scheduler=scheduler, no_pass=no_pass, max_cost=max_cost, max_calls=max_calls,
                              cache=cache, no_cache=no_cache, cache_mode=cache_mode, row_concurrency=row_concurrency,
                              runs_dir=runs_dir, no_trace=no_trace, record=record, record_max_mb=record_max_mb,
                              otlp=otlp, limits=limits(allow_outside, max_spec_bytes, size_limit))
        if plot is not None:
            api.require_plot()
        size = api.optimize_size(spec, set, options.limits)
        planned = size if method == "exhaustive" else min(size, max_evals) if max_evals else \
            None if method == "coordinate" else min(size, 100)
        run_id = resume or api.new_run_id()
        with SearchProgress(planned, enabled=progress and not json_out) as bar:
            try:
                result = api.optimize(spec, data, set, options, method=method, start=start, max_evals=max_evals,
                                      objective=objective, test=test, split=split, metrics=metric, map=map,
                                      limit=limit, sample=sample, resume=resume, run_id=run_id,
                                      on_evaluation=bar.update)
            except KeyboardInterrupt:
                output.error(f"interrupted: the finished evaluations are kept in {options.runs_dir}/{run_id}/"
                             f"optimize.json; continue with the same command and --resume {run_id}")
                raise typer.Exit(130) from None
        written = result.write_specs(out) if out is not None else []
        if plot is not None:
            api.plot_front(result, plot, title=f"{Path(spec).name} on {Path(data).name}")
        print_result(result, json_out, plot=plot, written=written)
        print_warnings(result.warnings)

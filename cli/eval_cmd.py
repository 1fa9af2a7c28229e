"""`ember eval`: a dataset through one shared runtime, scored by one or more metrics; resumable."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ember_compiler import api

from . import output
from .app import (
    CacheModeOpt,
    CacheOpt,
    MaxCallsOpt,
    MaxCostOpt,
    MaxTokensOpt,
    NoCacheOpt,
    NoPassOpt,
    NoTraceOpt,
    OldConcurrencyOpt,
    OldMaxTokensOpt,
    OtlpOpt,
    RecordMaxMbOpt,
    RecordOpt,
    RowConcurrencyOpt,
    RunsDirOpt,
    SchedulerOpt,
    SetOpt,
    app,
    errors,
    os_error_text,
    run_options,
)

MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", help="Rename dataset columns: FIELD=COLUMN[,FIELD=COLUMN] (e.g. answer=label,question=prompt).")]
MetricOpt = Annotated[list[str] | None, typer.Option(
    "--metric", help="exact (default), mc, numeric[:TOL], contains, or package.module:function; repeat for several.")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")]
SampleOpt = Annotated[int | None, typer.Option(min=1, help="A seeded random sample of N rows (after --limit).")]
ExecutorOpt = Annotated[str, typer.Option(
    "--executor", help="Where rows run: local (this process) or ray (a Ray cluster; pip install 'ember-compiler[ray]').")]
AddressOpt = Annotated[str | None, typer.Option(
    "--address", help="With --executor ray: auto (the cluster this machine is in) or HOST:PORT. "
                      "Default: RAY_ADDRESS, else a new local Ray instance.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", min=1, help="With --executor ray: shards run at once (default: the cluster's CPUs ÷ --worker-cpus).")]
WorkerCpusOpt = Annotated[float, typer.Option(
    "--worker-cpus", min=0.01, help="With --executor ray: CPUs each worker reserves (fractions allowed).")]


def print_warnings(warnings: list[str]) -> None:
    """The runtime's warnings (unknown prices, ...), once each, after the results."""
    for w in dict.fromkeys(warnings):
        output.warning(w)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """`accuracy (exact): 0.6120  95% CI [..]`, one line per metric, then the row counts."""
    lines = []
    names = [n for n in summary["metrics"] if n != "accuracy"]
    for i, name in enumerate(names):
        value, ci = summary["metrics"][name], summary["ci95"].get(name)
        shown = "n/a" if value is None else f"{value:.4f}"
        ci_text = f"  95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
        lines.append(f"{'accuracy (' + name + ')' if i == 0 else name}: {shown}{ci_text}")
    errors = summary["errors"]
    refusals, empty = summary.get("refusals") or 0, summary.get("empty") or 0
    lines.append(f"rows: {summary['scored']:,} scored of {summary['rows']:,}"
                 + (f", {errors:,} error{'s' if errors != 1 else ''}" if errors else "")
                 + (f"; samples with no answer: {refusals:,} refused, {empty:,} empty" if refusals or empty else ""))
    return lines


@app.command(name="eval")
def eval_(
    spec: Annotated[Path | None, typer.Argument(help="Spec file (YAML or JSON); optional with --resume.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset: JSONL, a JSON list, or CSV.")] = None,
    set: SetOpt = None,
    map: MapOpt = None,
    metric: MetricOpt = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (also seeds --sample). Default 0.")] = None,
    row_concurrency: RowConcurrencyOpt = None,
    old_concurrency: OldConcurrencyOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Finish the interrupted eval RUN_ID "
                                                "(same run directory; finished rows are not redone).")] = None,
    scheduler: SchedulerOpt = "parallel",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on a terminal.")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
    max_cost: MaxCostOpt = None,
    max_calls: MaxCallsOpt = None,
    max_tokens: MaxTokensOpt = None,
    old_max_tokens: OldMaxTokensOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    cache_mode: CacheModeOpt = "read-write",
    no_pass: NoPassOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    worker_cpus: WorkerCpusOpt = 1.0,
    runs_dir: RunsDirOpt = None,
    no_trace: NoTraceOpt = False,
    record: RecordOpt = None,
    record_max_mb: RecordMaxMbOpt = api.RECORD_MAX_MB,
    otlp: OtlpOpt = None,
) -> None:
    """Run every row of a dataset and score the spec's `answer` output against each row's `answer`."""
    from .progress import RowProgress

    with errors():
        options = run_options(scheduler=scheduler, no_pass=no_pass, max_cost=max_cost, max_calls=max_calls,
                              max_tokens=max_tokens, old_max_tokens=old_max_tokens, cache=cache, no_cache=no_cache,
                              cache_mode=cache_mode, row_concurrency=row_concurrency, old_concurrency=old_concurrency,
                              runs_dir=runs_dir, no_trace=no_trace, record=record, record_max_mb=record_max_mb, otlp=otlp)
        ray = {k: v for k, v in (("address", address), ("workers", workers)) if v is not None}
        ray.update({"worker_cpus": worker_cpus} if worker_cpus != 1.0 else {})
        setup = api.eval_job(spec, data, options, metrics=metric, map=map, limit=limit, sample=sample, seed=seed,
                             sets=set, resume=resume, executor=executor, ray=ray)
        job, n_rows = setup.job, len(setup.rows)
        terminated: list[int] = []
        try:
            with RowProgress(n_rows, enabled=progress and not json_out) as bar, _sigterm_as_sigint(terminated):
                bar.start_from(setup.resumed)
                result = asyncio.run(api.run_eval(setup, bar.update))
        except KeyboardInterrupt:
            print_warnings(job.warnings)
            output.error(f"{'terminated' if terminated else 'interrupted'}: {job.done:,} of {n_rows:,} rows "
                         f"finished and kept in {_rows_file(job)}; resume with: ember eval --resume {job.run_id}"
                         f"{_runs_dir_flag(runs_dir)}")
            raise typer.Exit(143 if terminated else 130) from None
        except OSError as exc:  # disk full, read-only: what was recorded stays; name the file
            print_warnings(job.warnings)
            kept = (f"{job.done:,} of {n_rows:,} rows finished and kept in {_rows_file(job)}; "
                    f"resume with: ember eval --resume {job.run_id}{_runs_dir_flag(runs_dir)} once it can be "
                    "written" if job.run_dir is not None and (job.run_dir / "study.json").is_file()
                    else "nothing was recorded")
            output.error(f"{os_error_text(exc)}; {kept}")
            raise typer.Exit(1) from None
        print_eval(result, json_out)
        print_warnings(job.warnings)
        if result.budget_exceeded and job.budget is not None:
            output.error(f"{job.budget.message()}. {job.done:,} of {n_rows:,} rows finished and kept in "
                         f"{_rows_file(job)}; {result.summary.get('unfinished_rows', 0):,} not finished (not "
                         f"recorded); finish them with: ember eval --resume {job.run_id} (and a new budget)")
            raise typer.Exit(3)


def _runs_dir_flag(runs_dir: Path | None) -> str:
    """` --runs-dir DIR` when the run is not in the default place (the resume must look there too)."""
    return f" --runs-dir {runs_dir}" if runs_dir is not None else ""


@contextmanager
def _sigterm_as_sigint(terminated: list[int]) -> Iterator[None]:
    """SIGTERM is handled as Ctrl-C (the rows recorded are flushed, `result.json` says interrupted); the
    caller exits 143 instead of 130. Only in the main thread (signals cannot be handled elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        terminated.append(signum)
        handler = signal.getsignal(signal.SIGINT)  # asyncio.run's own: it cancels the eval, then raises
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rows_file(job: Any) -> Any:
    return job.run_dir / "rows.jsonl" if job.run_dir else "memory"


def print_eval(result: Any, json_out: bool) -> None:
    """An eval's summary: JSON, or the metric lines then usage, Ray, resume and rows notes."""
    summary = result.to_json()
    if json_out:
        output.print_json(summary)
        return
    for line in summary_lines(summary):
        output.print_text(line)
    u = result.usage
    output.note(output.usage_line(u.calls, u.input_tokens, u.output_tokens, u.cost_usd, result.wall_s)
                + f" · {summary['calls_per_row'] or 0:g} calls/row · latency p50 "
                f"{summary['latency_p50_s'] or 0:.3f}s p95 {summary['latency_p95_s'] or 0:.3f}s"
                + (f" · {u.cache_hits:,} cached" if u.cache_hits else ""))
    if "ray" in summary:
        deaths = summary["ray"]["worker_deaths"]
        output.note(f"ray: {summary['ray']['shards']} shards" + (
            f", {deaths} worker{'s' if deaths != 1 else ''} died (their rows were run again)" if deaths else ""))
    if result.resumed_rows:
        output.note(f"resumed: {result.resumed_rows:,} rows were already done")
    if result.run_dir is not None:
        output.note(f"rows: {result.run_dir / 'rows.jsonl'}")

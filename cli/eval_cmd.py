"""`ember eval`: a dataset through one shared runtime, scored by one or more metrics; resumable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from . import output
from .app import (
    CacheModeOpt,
    CacheOpt,
    MaxCallsOpt,
    MaxCostOpt,
    MaxTokensOpt,
    NoCacheOpt,
    NoPassOpt,
    SchedulerOpt,
    SetOpt,
    app,
    budget_limits,
    compile_plan,
    errors,
    open_cache,
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
    lines.append(f"rows: {summary['scored']:,} scored of {summary['rows']:,}"
                 + (f", {errors:,} error{'s' if errors != 1 else ''}" if errors else ""))
    return lines


@app.command(name="eval")
def eval_(
    spec: Annotated[Path | None, typer.Argument(help="Spec file (YAML or JSON); optional with --resume.")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset: JSONL, a JSON list, or CSV.")] = None,
    set: SetOpt = None,
    map: MapOpt = None,
    metric: MetricOpt = None,
    seed: Annotated[int | None, typer.Option(help="Run seed (also seeds --sample). Default 0.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Rows in flight at once.")] = 64,
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
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    cache_mode: CacheModeOpt = "read-write",
    no_pass: NoPassOpt = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    worker_cpus: WorkerCpusOpt = 1.0,
) -> None:
    """Run every row of a dataset and score the spec's `answer` output against each row's `answer`."""
    from ember_compiler.errors import UsageError
    from ember_compiler.eval.dataset import load_rows, parse_map
    from ember_compiler.eval.metrics import parse_metrics
    from ember_compiler.eval.ray_executor import RayOptions
    from ember_compiler.eval.rundir import check_same_study, file_sha256, find_run, read_study
    from ember_compiler.eval.runner import EvalJob
    from ember_compiler.runtime.run import RUNS_DIR

    from .progress import RowProgress

    with errors():
        recorded: dict[str, Any] | None = None
        if resume is not None:
            recorded = read_study(find_run(resume, RUNS_DIR))
            spec = spec or Path(recorded["spec"])
            data = data or Path(recorded["data"])
            set = set if set is not None else recorded.get("sets") or None
            map = map if map is not None else ([",".join(f"{k}={v}" for k, v in recorded["map"].items())]
                                               if recorded.get("map") else None)
            metric = metric if metric is not None else recorded.get("metrics")
            seed = seed if seed is not None else recorded.get("seed", 0)
            limit = limit if limit is not None else recorded.get("limit")
            sample = sample if sample is not None else recorded.get("sample")
        if spec is None or data is None:
            raise UsageError("ember eval needs SPEC and --data (or --resume RUN_ID)")
        if executor not in ("local", "ray"):
            raise UsageError(f"--executor must be local or ray, got '{executor}'")
        if executor == "local" and (address is not None or workers is not None or worker_cpus != 1.0):
            raise UsageError("--address, --workers and --worker-cpus need --executor ray")
        seed = seed or 0
        plan = compile_plan(spec, set, no_pass, batch=True)
        metrics = parse_metrics(metric)
        mapping = parse_map(map)
        rows = load_rows(data, limit, mapping=mapping, sample=sample, seed=seed)
        study = {"kind": "eval", "spec": str(spec), "plan_hash": plan.hash, "data": str(data),
                 "data_sha256": file_sha256(data), "map": mapping, "limit": limit, "sample": sample,
                 "seed": seed, "sets": list(set or []), "metrics": [m.name for m in metrics],
                 "rows": len(rows), "created": datetime.now(UTC).isoformat(timespec="seconds")}
        if recorded is not None:
            check_same_study(recorded, study, resume)
        limits = budget_limits(plan, max_cost, max_calls, max_tokens)
        job = EvalJob(plan, rows, seed=seed, metrics=metrics, concurrency=concurrency, scheduler=scheduler,
                      run_id=resume, study=study, resume=resume is not None, budget=limits,
                      cache=open_cache(plan, cache, no_cache, cache_mode),
                      executor=RayOptions(address, workers, worker_cpus) if executor == "ray" else "local")
        try:
            with RowProgress(len(rows), enabled=progress and not json_out) as bar:
                result = asyncio.run(_run(job, bar))
        except KeyboardInterrupt:
            print_warnings(job.warnings)
            where = job.run_dir / "rows.jsonl" if job.run_dir else "memory"
            output.error(f"interrupted: {job.done:,} of {len(rows):,} rows finished and kept in {where}; "
                         f"resume with: ember eval --resume {job.run_id}")
            raise typer.Exit(130) from None
        summary = result.to_json()
        if json_out:
            output.print_json(summary)
        else:
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
        print_warnings(job.warnings)
        if result.budget_exceeded and job.budget is not None:
            where = job.run_dir / "rows.jsonl" if job.run_dir else "memory"
            output.error(f"{job.budget.message()}. {job.done:,} of {len(rows):,} rows finished and kept in "
                         f"{where}; {summary.get('unfinished_rows', 0):,} not finished (not recorded); "
                         f"finish them with: ember eval --resume {job.run_id} (and a new budget)")
            raise typer.Exit(3)


async def _run(job: Any, bar: Any) -> Any:
    # the bar starts from what a resumed run already finished
    if job.resume and job.run_dir is not None:
        from ember_compiler.eval.rundir import load_records

        done = load_records(job.run_dir)
        bar.done = len(done)
        bar.scored = sum("scores" in r for r in done)
        bar.correct = sum(bool(r.get("correct")) for r in done)
    return await job.run(bar.update)

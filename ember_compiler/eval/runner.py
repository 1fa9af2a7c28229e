"""`ember eval`: every row of a dataset through one shared runtime, rows streamed to disk as they finish.

Row fields named like the spec's inputs feed them; `answer` is the ground truth (also for the sim),
`sim` holds per-row sim overrides, `id` names the row. A failing row is recorded with its error and
scores 0; the other rows continue. When the run is cancelled (Ctrl-C) the finished rows are flushed and
`result.json` says `interrupted`, so `--resume` can finish it without redoing them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BudgetExceeded, EmberError, UsageError
from ..runs import (
    RUNS_DIR,
    RunDir,
    RunOptions,
    example_meta,
    execute_row,
    make_recorder,
    make_runtime,
    resolve_inputs,
)
from ..runtime.budget import Budget, Spending, limits_from
from ..runtime.runtime import Runtime
from ..runtime.usage import RowContext, Usage
from ..xcs.executor import Executor
from ..xcs.plan import Plan
from ..xcs.scheduling import Scheduler
from .dataset import Row
from .metrics import Metric, parse_metrics
from .ray_executor import RayOptions
from .summary import RowStat, summarize, usage_of

_FLUSH_ROWS, _FLUSH_S = 512, 1.0  # rows reach rows.jsonl within a second (tail -f works) without a write per row


@dataclass
class EvalResult:
    run_id: str
    rows: int
    scored: int
    correct: float
    errors: int
    usage: Usage
    wall_s: float
    latencies: list[float]
    run_dir: Path | None
    summary: dict[str, Any] = field(default_factory=dict)
    resumed_rows: int = 0
    budget_exceeded: bool = False

    @property
    def accuracy(self) -> float | None:
        return self.summary.get("metrics", {}).get("accuracy")

    def to_json(self) -> dict[str, Any]:
        """The `ember eval --json` shape (DESIGN §7, extended)."""
        return dict(self.summary)


def answer_output(plan: Plan) -> str:
    if "answer" in plan.outputs:
        return "answer"
    if len(plan.outputs) == 1:
        return next(iter(plan.outputs))
    raise UsageError(f"spec '{plan.name}' has several outputs and none is named 'answer'")


class EvalJob:
    """One eval. Its attributes (`run_id`, `run_dir`, `done`) stay readable after a cancellation.

    `runtime` shares a caller's runtime (and its gates) — `ember sweep` runs every point through one;
    `capture(node_results)` adds fields to each row's record (the sweep keeps the vote's counts);
    `resume=True` continues the records already in `run_dir`.
    """

    def __init__(self, plan: Plan, rows: list[Row], *, seed: int = 0, metrics: list[Metric] | None = None,
                 concurrency: int = 64, runs_dir: Path | None = RUNS_DIR, run_id: str | None = None,
                 study: dict[str, Any] | None = None, resume: bool = False, transport: Any = None,
                 scheduler: Scheduler | str | None = None, runtime: Runtime | None = None,
                 capture: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 budget: Budget | None = None, cache: Any = None, executor: str | RayOptions = "local",
                 options: RunOptions | None = None) -> None:
        if options is not None:  # the options win over the old keywords they cover
            seed, concurrency, runs_dir = options.seed, options.row_concurrency, options.runs_dir
            transport, scheduler = options.transport, options.scheduler
        self.options = options or RunOptions(seed=seed, scheduler=scheduler, runs_dir=runs_dir,
                                             row_concurrency=concurrency, transport=transport, cache_mode="off")
        self.plan, self.rows, self.seed = plan, rows, seed
        self.metrics = metrics or parse_metrics(None)
        self.names = [m.name for m in self.metrics]
        self.concurrency = concurrency
        self.rundir = RunDir.new(runs_dir, run_id)
        self.run_id, self.run_dir = self.rundir.run_id, self.rundir.path
        self.study, self.resume, self.transport = study, resume, transport
        self.scheduler = scheduler
        self.executor = Executor(plan, scheduler)
        if isinstance(executor, str) and executor not in ("local", "ray"):
            raise UsageError(f"unknown executor '{executor}' (local or ray)")
        # where the rows run: this process (None) or a Ray cluster (eval/ray_executor.py)
        self.ray = RayOptions() if executor == "ray" else executor if isinstance(executor, RayOptions) else None
        if self.ray is not None and self.options.record is not None:
            raise UsageError("--record io runs with the local executor only (not --executor ray)")
        self.io: Any = None  # the --record io recorder while the eval runs
        self.runtime = runtime
        self.capture = capture
        self.key = answer_output(plan)
        self.stats: dict[int, RowStat] = {}
        self.warnings: list[str] = []
        self.interrupted = False
        # a budget for this eval (default: the plan's `budget:`); ignored with a shared `runtime`
        self.limits = budget if budget is not None else limits_from(plan.budget)
        self.cache = cache
        self.budget: Spending | None = None
        self.cluster: Any = None  # on Ray: what the cluster reported (ray_executor.Outcome)

    @property
    def done(self) -> int:
        return len(self.stats)

    def _score(self, record: dict[str, Any], prediction: Any, truth: Any, data: dict[str, Any]) -> None:
        scores = {}
        for m in self.metrics:
            scores[m.name] = m.fn(prediction, truth, data)
        record["scores"] = scores
        record["correct"] = scores[self.names[0]] == 1.0

    def failed_record(self, row: Row, error: str) -> dict[str, Any]:
        """The record of a row that could not run at all (scored 0, like any failed row)."""
        return self._finish(_start(row), Usage(), error, 0.0)

    def _finish(self, record: dict[str, Any], u: Usage, error: str | None, latency_s: float) -> dict[str, Any]:
        record.update(calls=u.calls, requests=u.requests, input_tokens=u.input_tokens,
                      output_tokens=u.output_tokens, cost_usd=u.cost_usd)
        if u.cache_hits:
            record["cache_hits"] = u.cache_hits
        if u.refusals:
            record["refusals"] = u.refusals  # samples that were refusals or safety blocks
        if u.empty:
            record["empty"] = u.empty  # samples that were empty replies
        if u.estimated:
            record["estimated"] = u.estimated  # requests without valid usage: tokens and cost estimated
        if error is not None:
            record["error"] = error
            record["scores"] = dict.fromkeys(self.names, 0.0)  # a failed row counts as incorrect
            record["correct"] = False
        record["latency_s"] = round(latency_s, 6)
        return record

    async def _run_one(self, row: Row, runtime: Runtime) -> dict[str, Any]:
        record = _start(row)
        t0 = time.perf_counter()
        data, error = row.data, row.error
        ctx = RowContext(io=self.io, row_id=row.id)
        if data is not None:
            truth = record["answer"]
            try:
                plan = self.plan
                values = resolve_inputs(plan, {k: v for k, v in data.items() if k in plan.inputs})
                outputs, results = await execute_row(
                    self.executor, runtime, values, example_meta(self.seed, row.id, values, data), ctx)
                record["outputs"] = outputs
                if self.capture is not None:
                    record.update(self.capture(results))
                if truth is not None:
                    self._score(record, outputs.get(self.key), truth, data)
            except EmberError as exc:
                if runtime.budget is not None and runtime.budget.exceeded and _by_budget(exc):
                    raise _Unfinished from None  # not recorded: `--resume` runs it later
                error = str(exc)
            except Exception as exc:  # a user metric or capture hook that raised: this row only
                error = f"{type(exc).__name__}: {exc}"
        return self._finish(record, ctx.usage, error, time.perf_counter() - t0)

    async def run(self, on_row: Callable[[dict[str, Any]], None] | None = None) -> EvalResult:
        run = self.rundir
        previous: list[dict[str, Any]] = []
        if self.resume:
            previous = run.load_records()
        elif self.study is not None:
            run.write_study(self.study)
        run.mkdir()
        for r in previous:
            self.stats[r["index"]] = RowStat.from_record(r, self.names)
        todo = [row for row in self.rows if row.index not in self.stats]
        own_runtime = self.runtime is None
        if own_runtime and self.limits is not None and self.ray is None:
            self.budget = Spending(self.limits)  # on Ray, the budget is the cluster's (runtime/cluster.py)
        runtime = self.runtime or make_runtime(self.options, self.plan, run_dir=run, budget=self.budget,
                                               cache=self.cache)
        budget = runtime.budget
        self.io = make_recorder(self.options, run, runtime, append=self.resume)
        out = run.open_rows(append=self.resume)
        buffer: list[str] = []
        last_flush = time.perf_counter()
        start = last_flush
        cursor = iter(todo)
        stats, names = self.stats, self.names

        broken: list[OSError] = []  # the rows file could not be written (disk full, read-only)

        def flush() -> None:
            nonlocal last_flush
            if out is not None and buffer and not broken:
                try:
                    out.write("\n".join(buffer) + "\n")
                    out.flush()
                except OSError as exc:  # a write error names no file: name rows.jsonl
                    broken.append(OSError(exc.errno, exc.strerror, str(run.rows_path)))
                    raise broken[0] from exc
                buffer.clear()
            last_flush = time.perf_counter()

        def accept(record: dict[str, Any]) -> None:
            if record["index"] in stats:
                return  # already recorded (a row is never counted twice)
            stats[record["index"]] = RowStat.from_record(record, names)
            if out is not None:
                buffer.append(json.dumps(record, default=str))
                if len(buffer) >= _FLUSH_ROWS or time.perf_counter() - last_flush > _FLUSH_S:
                    flush()
            if on_row is not None:
                on_row(record)

        async def worker() -> None:
            for row in cursor:
                if budget is not None and budget.exceeded:
                    return  # no further row starts; the rows in flight finish their calls
                try:
                    accept(await self._run_one(row, runtime))
                except _Unfinished:
                    continue

        status = "ok"
        try:
            runtime.prepare(self.plan)  # keys and extras are checked here, before any worker starts
            if self.ray is not None:
                from .ray_executor import run_on_ray

                cluster = await run_on_ray(self, todo, accept, self.ray)
                runtime.warnings.extend(w for w in cluster.warnings if w not in runtime.warnings)
                budget = self.budget = cluster.budget
            else:
                workers = max(1, min(self.concurrency, len(todo)))
                await asyncio.gather(*(worker() for _ in range(workers)))
            if budget is not None and budget.exceeded:
                status = "budget_exceeded"
        except (asyncio.CancelledError, KeyboardInterrupt):
            status = "interrupted"
            self.interrupted = True
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            # every step runs even when one cannot write (disk full): the rows first, then the trace and
            # result.json; the first write error is raised, naming its file
            write_errors: list[OSError] = []
            self.warnings = list(runtime.warnings)
            for step in (flush, out.close if out is not None else None):
                try:
                    if step is not None:
                        step()
                except OSError as exc:
                    write_errors.append(exc)
            if own_runtime:
                try:
                    await runtime.aclose()
                except OSError as exc:
                    write_errors.append(exc)
            io_file = None
            if self.io is not None:
                try:
                    io_file = self.io.close().name
                except OSError as exc:
                    write_errors.append(exc)
            result = self._result(time.perf_counter() - start, len(previous))
            if self.cluster is not None:
                result.summary["ray"] = {"shards": len(self.cluster.worker_pids),
                                         "worker_deaths": self.cluster.deaths}
            if budget is not None:
                result.summary["budget"] = budget.to_json()
                if budget.exceeded:
                    result.budget_exceeded = True
                    result.summary["unfinished_rows"] = len(self.rows) - len(self.stats)
            try:
                run.write_result({
                    **result.summary, "status": status, "spec": self.plan.source, "plan_hash": self.plan.hash,
                    "seed": self.seed, "total_rows": len(self.rows), "command": "eval",
                    **({"io": io_file} if io_file else {}),
                })
            except OSError as exc:
                write_errors.append(exc)
            if write_errors:
                raise write_errors[0]
        return result

    def _result(self, wall_s: float, resumed: int) -> EvalResult:
        ordered = [self.stats[i] for i in sorted(self.stats)]  # file order: sums do not depend on timing
        summary = summarize(ordered, self.names, wall_s=wall_s, run_id=self.run_id)
        if resumed:
            summary["resumed_rows"] = resumed
        correct = sum(s.scores[0] for s in ordered if s.scores is not None)
        return EvalResult(self.run_id, len(ordered), summary["scored"], correct, summary["errors"],
                          usage_of(ordered), wall_s, [s.latency_s for s in ordered], self.run_dir, summary, resumed)


def _start(row: Row) -> dict[str, Any]:
    """A record's first fields: the row's position, id and (when it parsed) its ground truth."""
    record: dict[str, Any] = {"index": row.index, "id": row.id}
    if row.data is not None:
        record["answer"] = row.data.get("answer")
    return record


class _Unfinished(Exception):
    """A row stopped by the budget: left out of rows.jsonl (and of the summary)."""


def _by_budget(exc: BaseException | None) -> bool:
    """Whether `exc` (a NodeFailed, possibly from a map item) was caused by the budget."""
    for _ in range(8):
        if exc is None:
            return False
        if isinstance(exc, BudgetExceeded):
            return True
        exc = getattr(exc, "cause", None) or exc.__cause__
    return False


async def eval_plan_async(plan: Plan, rows: list[Row], *, on_row: Callable[[dict[str, Any]], None] | None = None,
                          **kwargs: Any) -> EvalResult:
    return await EvalJob(plan, rows, **kwargs).run(on_row)


def eval_plan(plan: Plan, rows: list[Row], **kwargs: Any) -> EvalResult:
    return asyncio.run(eval_plan_async(plan, rows, **kwargs))

"""`ember eval --executor ray`: an eval's rows run in Ray tasks across a cluster, rows streamed back.

The driver (this process, `EvalJob.run`) splits the rows still to do into one shard per worker and
starts each shard as a Ray task. A task runs an ordinary `EvalJob` on Ember's own asyncio runtime and
yields the finished rows' records in small batches (a streaming generator), which the driver writes
to `rows.jsonl`, the progress bar and the summary exactly as for a local run; `--resume` works the
same because only the driver reads and writes the run directory.

Shared: the gates of remote models (concurrency, RPM/TPM, learned limits, 429 cool-downs) and the
budget live in one named actor, `runtime/cluster.py`'s `SharedLimits`, that every worker asks.
Per worker: the in-process `sim` and `local` models (each worker serves its own local model), the
response cache connection (the same file on a shared host; SQLite WAL copes, not over NFS), and a
trace file `trace.<worker>.jsonl` when the run directory is reachable from the worker's host.

Faults: a task whose worker process or node dies raises one of Ray's system errors at the driver;
its lease on the shared gates is released and the rows it had not yet returned are started again as
a new task (rows it did return are kept: none is counted twice). After `MAX_DEATHS` deaths in a row
of the same shard, its remaining rows are recorded as failed rows instead — nothing is lost silently.
Ray is imported only here, and only when this executor is used.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmberError, UsageError
from ..providers import registry
from ..runtime.budget import Spending
from .dataset import Row

MAX_DEATHS = 3  # a shard whose worker died this many times: its remaining rows are recorded as failed
BATCH_S = 0.2  # a worker sends its finished rows at least this often (and whenever it finishes)
INSTALL_HINT = "the Ray executor needs Ray: pip install 'ember-compiler[ray]' (or: pip install 'ray>=2.60')"


@dataclass
class RayOptions:
    """Where and how wide: `address` None starts (or joins, with RAY_ADDRESS set) a local Ray instance,
    'auto' joins the cluster this machine belongs to, HOST:PORT a given one. `workers` None: one per
    `worker_cpus` CPUs of the cluster."""

    address: str | None = None
    workers: int | None = None
    worker_cpus: float = 1.0


@dataclass
class Outcome:
    """What the cluster reports besides the rows."""

    warnings: list[str] = field(default_factory=list)
    budget: Spending | None = None
    deaths: int = 0
    worker_pids: dict[str, int] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def connect(options: RayOptions) -> Any:
    """Ray, initialised: an existing connection is reused; otherwise join or start one."""
    ray = import_ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ember does not report usage on a user's behalf
        try:
            ray.init(address=options.address, include_dashboard=False, log_to_driver=False,
                     logging_level="WARNING", configure_logging=True)
        except ConnectionError as exc:
            raise UsageError(f"cannot reach a Ray cluster at {options.address or 'RAY_ADDRESS'}: {exc}") from None
    return ray


def split(rows: list[Row], shards: int) -> list[list[Row]]:
    """`shards` interleaved shards (row i to shard i mod k): easy and hard stretches of a dataset spread out."""
    return [s for s in (rows[i::shards] for i in range(shards)) if s]


async def run_on_ray(job: Any, todo: list[Row], accept: Callable[[dict[str, Any]], None],
                     options: RayOptions) -> Outcome:
    """Run `todo` (rows of `job`, an `EvalJob`) on the cluster; `accept` gets each finished row's record."""
    outcome = job.cluster = Outcome()  # readable while the run goes on (worker pids, deaths)
    if not todo:
        return outcome
    ray = connect(options)
    from ..runtime.cluster import SharedLimits

    widest = max((n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
    if options.worker_cpus > widest:  # Ray would wait forever for a node that big
        raise UsageError(f"--worker-cpus {options.worker_cpus:g} is more than any node of the cluster has "
                         f"({widest:g} CPUs)")
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    workers = options.workers or max(1, int(cpus // options.worker_cpus))
    workers = max(1, min(workers, len(todo), job.concurrency))  # --concurrency bounds the whole cluster's rows
    actor = ray.remote(SharedLimits).options(
        name=f"ember-limits-{job.run_id}", namespace="ember", num_cpus=0, max_concurrency=10_000,
    ).remote(job.limits)
    task = ray.remote(_shard).options(num_cpus=options.worker_cpus, max_retries=0)
    payload = _payload(job, workers)
    system_errors = _system_errors(ray)
    generators: set[Any] = set()
    seq = itertools.count()

    async def run(rows: list[Row], deaths: int) -> None:
        name = f"w{next(seq)}"
        left = {r.index: r for r in rows}
        gen = task.remote(payload, rows, actor, name)
        generators.add(gen)
        try:
            async for ref in gen:
                kind, value = await ref
                if kind == "rows":
                    for record in value:
                        left.pop(record["index"], None)
                        accept(record)
                elif kind == "hello":
                    outcome.worker_pids[name] = value
                elif kind == "done":
                    outcome.warnings += value
                elif kind == "error":
                    err = EmberError(value[1])
                    err.exit_code = value[0]
                    raise err
        except system_errors as exc:
            outcome.deaths += 1
            actor.forget.remote(name)  # the slots it held on the shared gates
            if not left:
                return
            if deaths + 1 < MAX_DEATHS:
                await run(list(left.values()), deaths + 1)
                return
            why = f"its Ray worker died {MAX_DEATHS} times ({type(exc).__name__})"
            for row in left.values():
                accept(job.failed_record(row, why))
        finally:
            generators.discard(gen)

    try:
        await asyncio.gather(*(run(rows, 0) for rows in split(todo, workers)))
        outcome.budget = await actor.budget.remote()
        outcome.limits = await actor.stats.remote()
    except BaseException:
        for gen in list(generators):
            ray.cancel(gen, force=True)
        raise
    finally:
        ray.kill(actor)
    return outcome


def _system_errors(ray: Any) -> tuple[type[BaseException], ...]:
    """Ray's errors for a task whose process, node or object went away (not an error in Ember's code)."""
    ex = ray.exceptions
    names = ("WorkerCrashedError", "NodeDiedError", "OwnerDiedError", "ObjectLostError", "LocalRayletDiedError",
             "RaySystemError", "TaskUnschedulableError", "OutOfMemoryError")
    return tuple(getattr(ex, n) for n in names if hasattr(ex, n))


def _payload(job: Any, workers: int) -> dict[str, Any]:
    """What a task needs to run its rows like the driver would: plain data only."""
    cache = job.cache
    return {
        "plan": job.plan.to_json(),
        "seed": job.seed,
        "metrics": [m.name for m in job.metrics],
        "concurrency": max(1, -(-job.concurrency // workers)),  # --concurrency is for the whole cluster
        "scheduler": job.scheduler,
        "cache": None if cache is None else (str(cache.path.resolve()), cache.mode, cache.include_sim),
        "budget": job.limits,
        "trace_dir": str(job.run_dir.resolve()) if job.run_dir is not None else None,
        "sys_path": list(sys.path),  # modules next to the spec (op: python, custom metrics) on a shared host
        # the keys the plan's models read, so that the whole cluster calls with the driver's key (the one
        # its shared limits are for); task arguments, not a runtime_env, which Ray's dashboard would show
        "env": {var: os.environ[var] for var in sorted({registry.secret_env(b) for b in job.plan.models.values()} - {None})
                if os.environ.get(var)},
    }


def _shard(payload: dict[str, Any], rows: list[Row], actor: Any, name: str) -> Iterator[tuple[str, Any]]:
    """The Ray task: run `rows` with a runtime of this worker's own, yield records as they finish."""
    yield "hello", os.getpid()
    for path in payload["sys_path"]:
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    saved = {var: os.environ.get(var) for var in payload["env"]}
    os.environ.update(payload["env"])
    batch: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    try:
        job, runtime = _worker_job(payload, rows, actor, name)
        main = loop.create_task(_finish(job, runtime, batch.append))
        while not main.done():
            loop.run_until_complete(asyncio.wait([main], timeout=BATCH_S))
            if batch:
                yield "rows", batch[:]
                batch.clear()
        main.result()
        yield "done", list(runtime.warnings)
    except EmberError as exc:
        yield "error", (exc.exit_code, str(exc))
    finally:
        loop.close()
        for var, value in saved.items():  # Ray reuses worker processes: leave no key behind
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _worker_job(payload: dict[str, Any], rows: list[Row], actor: Any, name: str) -> tuple[Any, Any]:
    from ..runs import RunDir, RunOptions, make_runtime
    from ..runs.rundir import worker_trace
    from ..runtime.cache import ResponseCache
    from ..runtime.cluster import GateFactory, RemoteBudget
    from ..xcs.plan import Plan
    from .metrics import parse_metrics
    from .runner import EvalJob

    plan = Plan.from_json(payload["plan"])
    job = EvalJob(plan, rows, seed=payload["seed"], metrics=parse_metrics(payload["metrics"]),
                  concurrency=payload["concurrency"], runs_dir=None, scheduler=payload["scheduler"])
    trace_dir = payload["trace_dir"]  # the driver's run folder, when this worker's host can reach it
    run = RunDir.at(Path(trace_dir)) if trace_dir and os.path.isdir(trace_dir) else RunDir.new(None)
    cache = payload["cache"]
    job.runtime = make_runtime(
        RunOptions(scheduler=payload["scheduler"]), plan,
        trace=run.file(worker_trace(name)),
        budget=RemoteBudget(actor, payload["budget"], name) if payload["budget"] is not None else None,
        cache=None if cache is None else ResponseCache(cache[0], mode=cache[1], include_sim=cache[2]),
        gates=GateFactory(actor, name))
    return job, job.runtime


async def _finish(job: Any, runtime: Any, on_row: Callable[[dict[str, Any]], None]) -> None:
    try:
        await job.run(on_row)
    finally:
        await runtime.aclose()

"""The one place a `Runtime` is built: `ember run`, `ember eval`, `ember sweep`, Ray workers and SDK
sessions all get theirs from `make_runtime`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..runtime.budget import Spending, limits_from
from ..runtime.cache import ResponseCache
from ..runtime.iorecord import IoRecorder
from ..runtime.otlp import ENDPOINT_VARS, OtlpExport, endpoint_from_env
from ..runtime.pool import called_models
from ..runtime.runtime import Runtime
from ..runtime.trace import Tracer
from ..xcs.plan import Plan
from ..xcs.scheduling import get_scheduler
from .options import RunOptions
from .rundir import RunDir

AUTO: Any = object()  # "derive it from the options and the plan"


def open_cache(options: RunOptions, plan: Plan | None = None) -> ResponseCache | None:
    """The response cache a run uses, or None (mode `off`, or the default cache and only sim calls)."""
    if options.cache_mode == "off":
        return None
    if options.cache is None and plan is not None and \
            all(plan.models[m]["provider"] == "sim" for m in called_models(plan)):
        return None  # a sim call is cheaper than a lookup: the sim is cached only with an explicit file
    return ResponseCache(options.cache, mode=options.cache_mode, include_sim=options.cache is not None)


def budget_limits(options: RunOptions, plan: Plan | None) -> Any:
    """The run's limits: the plan's `budget:` overridden by `options.budget` field by field, or None."""
    return limits_from(plan.budget if plan is not None else None, options.budget)


def make_runtime(options: RunOptions | None = None, plan: Plan | None = None, *, trace: Path | None | Any = AUTO,
                 budget: Any = AUTO, cache: Any = AUTO, gates: Any = None, run_dir: Any = None,
                 **mechanics: Any) -> Runtime:
    """A runtime for running `plan` (or SDK calls, without a plan) with `options`.

    Args:
        options: the run's options (default `RunOptions()`): scheduler bound, transport, trace.
        plan: the plan to run: its budget and models choose the budget and the cache. Without one,
            no budget and no cache unless given.
        trace: the trace file, or a `Tracer` to use (`ember serve`'s rotating one); default `run_dir`'s
            `trace.jsonl` when `options.trace` (gzipped to `trace.jsonl.gz` at close when large), else none.
        budget: a spending tracker (`Spending`, or the cluster's); default one for the plan's limits.
        cache: a response cache or None; default `open_cache(options, plan)` when there is a plan.
        gates: makes each model's gate (`cluster.GateFactory` on Ray); None: this process's own.
        run_dir: the `RunDir` the trace goes into.
        mechanics: `clock`, `sleep`, `rand` (a virtual clock in tests).

    Raises:
        UsageError: an unknown scheduler or a negative budget limit.
    """
    options = options or RunOptions()
    policy = get_scheduler(options.scheduler)
    folder_trace = trace is AUTO  # the run folder's trace: gzipped at close when large
    if trace is AUTO:
        trace = run_dir.trace_path if run_dir is not None and options.trace else None
    if budget is AUTO:
        limits = budget_limits(options, plan) if plan is not None else None
        budget = Spending(limits) if limits is not None else None
    if cache is AUTO:
        cache = open_cache(options, plan) if plan is not None else None
    export, missing = otlp_export(options) if plan is not None or run_dir is not None else (None, None)
    tracer = trace if isinstance(trace, Tracer) else Tracer(trace, export, compress=folder_trace)
    runtime = Runtime(tracer=tracer, transport=options.transport,
                      max_in_flight=policy.max_in_flight(), budget=budget, cache=cache, gates=gates, **mechanics)
    if missing:
        runtime.warn(missing)
    return runtime


def otlp_export(options: RunOptions) -> tuple[OtlpExport | None, str | None]:
    """The OTLP export a run's spans go to (`--otlp URL`, else the standard variables), or None — with
    a warning when only a variable asked for it and the extra is missing (`--otlp` raises instead)."""
    if options.otlp is not None:
        return OtlpExport(options.otlp), None
    if endpoint_from_env() is None:
        return None, None
    try:
        return OtlpExport(None), None  # the exporter reads the variables itself
    except UsageError as exc:
        return None, f"{ENDPOINT_VARS[1]} is set but spans are not exported: {exc}"


def make_recorder(options: RunOptions, run_dir: RunDir, runtime: Runtime, *, append: bool = False
                  ) -> IoRecorder | None:
    """The `--record io` recorder for a run folder (None: not asked, or a run that keeps no files)."""
    if options.record != "io" or run_dir.path is None:
        return None
    return IoRecorder(run_dir.path, int(options.record_max_mb * 2**20), scrub=runtime.scrub, append=append,
                      warn=runtime.warn)


__all__ = ["AUTO", "budget_limits", "make_recorder", "make_runtime", "open_cache"]

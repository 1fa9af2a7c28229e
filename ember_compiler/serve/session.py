"""One runtime for every request: the served specs (compiled once), the shared `Runtime` (gates,
RPM/TPM limits, cool-downs, response cache, the server-wide budget), admission (concurrency bound and
a bounded queue), and running one chat request as `n` plan executions.

A request pays only for its execution (`runs.execute_row`): no run folder, no result file, no new
runtime; its spans go to the server's one rotating trace file.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler import compile_spec
from ..compiler.check import load_spec, marked_as_spec, spec_files
from ..errors import (
    BudgetExceeded,
    EmberError,
    NodeFailed,
    OutputError,
    ProviderError,
    SpecInvalid,
    UsageError,
)
from ..runs.factory import make_runtime, open_cache, otlp_export
from ..runs.options import RunOptions
from ..runs.run import example_meta, execute_row, resolve_inputs
from ..runtime import prices
from ..runtime.budget import Budget, Spending, limits_from
from ..runtime.pool import called_models
from ..runtime.trace import Tracer
from ..runtime.usage import RowContext, Usage
from ..xcs.executor import Executor
from ..xcs.plan import Plan
from .openai_shapes import ApiError, ChatRequest
from .options import ServeOptions
from .traces import RotatingTracer

_PLANS_PER_MODEL = 32  # compiled `set` variants kept per served spec


@dataclass
class ServedModel:
    """A spec served as a model: its name, description, file, base plan and compiled variants."""

    name: str
    description: str | None
    path: Path
    plan: Plan
    executor: Executor
    variants: collections.OrderedDict[str, tuple[Plan, Executor]] = field(default_factory=collections.OrderedDict)


@dataclass
class Prepared:
    """A request checked and ready to run: which plan, with which inputs, seeds and budget."""

    served: ServedModel
    plan: Plan
    executor: Executor
    values: dict[str, Any]
    seeds: list[int]
    limits: Budget | None
    run_id: str
    usage: Usage | None = None  # set when the runs end (also when they failed or were cancelled)
    stream_started: bool = False  # an SSE answer began: it logs and counts the request itself


@dataclass
class Outcome:
    """What the `n` runs of a request gave: one answer each, their summed usage."""

    contents: list[str]
    outputs: list[dict[str, Any]]
    usage: Usage
    trace_ids: list[str]  # the runs' traces in the trace file (empty strings without a trace)


def load_models(paths: list[Path], options: RunOptions) -> dict[str, ServedModel]:
    """Compile every spec in `paths` (as `ember validate` finds them) into a served model by name.

    Raises:
        SpecInvalid: a spec is invalid.
        UsageError: no spec found, or two specs with the same name.
    """
    models: dict[str, ServedModel] = {}
    for path in paths:
        for file in _spec_files(Path(path)):
            _, spec = load_spec(file, options.sets or None)
            plan = compile_spec(file, options.sets or None, disable=options.disable_passes)
            if plan.name in models:
                raise UsageError(f"two specs are named '{plan.name}': {models[plan.name].path} and {file}")
            models[plan.name] = ServedModel(plan.name, spec.description, file, plan,
                                            Executor(plan, options.scheduler))
    if not models:
        raise UsageError(f"no spec found in {', '.join(str(p) for p in paths)}")
    return models


def _spec_files(path: Path) -> list[Path]:
    return [path] if not path.is_dir() else [f for f in spec_files(path) if marked_as_spec(f)]


class Admission:
    """At most `limit` requests run; up to `queue` more wait in arrival order; the rest are refused."""

    def __init__(self, limit: int, queue: int) -> None:
        self.limit, self.queue = limit, queue
        self.running = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        """Wait for a slot.

        Raises:
            ApiError: 429 with Retry-After when the queue is full.
        """
        if self.running < self.limit and not self.waiters:
            self.running += 1
            return
        if len(self.waiters) >= self.queue:
            raise ApiError(429, f"the server is busy ({self.running} requests running, {len(self.waiters)} "
                                "waiting): retry later", code="server_busy", retry_after_s=1)
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over as we were cancelled: pass it on
            else:
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the next in line
                return
        self.running -= 1


class _BudgetedSink:
    """The runtime as the executor's call sink, with one request's own budget reserved around each call
    (the spec's `budget:` and `extra_body.ember.budget`); the server-wide budget is the runtime's."""

    def __init__(self, runtime: Any, spending: Spending) -> None:
        self.runtime, self.spending = runtime, spending
        self.tracer = runtime.tracer
        self.supports_n = runtime.supports_n
        self.node_span = runtime.node_span
        self.scrub = runtime.scrub

    async def complete(self, request: Any, priority: float, row: Any) -> Any:
        price = self.runtime.pool.target(request.model, request.binding).price
        held = await self.spending.reserve(request, price)
        try:
            completion = await self.runtime.complete(request, priority, row)
        except asyncio.CancelledError:
            self.spending.abandon(held)
            raise
        except BaseException:
            self.spending.settle(held, None, None)
            raise
        cost = None if price is None else 0.0 if price is prices.FREE else price.cost(completion)
        self.spending.settle(held, completion, cost)
        return completion


class Session:
    """The served models and the one runtime they all run through.

    Args:
        models: the served specs by name.
        options: the server's options (`options.run` for the runtime).
    """

    def __init__(self, models: dict[str, ServedModel], options: ServeOptions) -> None:
        self.models = models
        self.options = options
        run = options.run
        limits = limits_from(None, run.budget)
        self.budget = Spending(limits) if limits is not None else None
        sim_only = all(m.plan.models[b]["provider"] == "sim" for m in models.values() for b in called_models(m.plan))
        cache = None if run.cache_mode == "off" or (sim_only and run.cache is None) else open_cache(run)
        export, missing = otlp_export(run)  # `--otlp`, else OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT
        if options.trace is not None:
            tracer: Tracer | None = RotatingTracer(options.trace, options.trace_max_bytes, options.trace_backups,
                                                   export)
        else:
            tracer = Tracer(None, export) if export is not None else None
        self.runtime = make_runtime(run, None, trace=tracer, budget=self.budget, cache=cache)
        if missing:
            self.runtime.warn(missing)  # `ember serve` prints the runtime's warnings as it starts
        for m in models.values():
            self.runtime.prepare(m.plan)  # every key and extra checked before the first request
        self.admission = Admission(options.max_concurrency, options.queue)
        self._counter = 0

    def model(self, name: str) -> ServedModel:
        served = self.models.get(name)
        if served is None:
            raise ApiError(404, f"The model '{name}' does not exist (models: {', '.join(self.models)})",
                           param="model", code="model_not_found")
        return served

    def prepare(self, served: ServedModel, req: ChatRequest) -> Prepared:
        """Check a request against its spec: inputs, seeds, budget, allowed sets.

        Raises:
            ApiError: 400 naming the field at fault.
        """
        extra = req.ember
        plan, executor = (served.plan, served.executor) if extra is None or not extra.set \
            else self._variant(served, extra.set)
        values = _inputs(plan, req)
        seed = extra.seed if extra is not None and extra.seed is not None else req.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "little") >> 1
        override = extra.budget if extra is not None and extra.budget else None
        limits = None
        if override is not None or plan.budget:
            try:
                limits = limits_from(plan.budget, Budget(**override) if override is not None else None)
            except (TypeError, UsageError) as exc:
                raise ApiError(400, f"ember.budget: {exc}", param="ember.budget") from None
        self._counter += 1
        run_id = f"{os.getpid():x}{self._counter:08x}{os.urandom(3).hex()}"
        return Prepared(served, plan, executor, values, [seed + i for i in range(req.n)], limits, run_id)

    def _variant(self, served: ServedModel, sets: dict[str, Any]) -> tuple[Plan, Executor]:
        allowed = self.options.allow_set
        for path in sets:
            if path not in allowed:
                hint = f" (allowed: {', '.join(allowed)})" if allowed else " (the server allows none: --allow-set)"
                raise ApiError(400, f"ember.set: '{path}' may not be overridden{hint}", param=f"ember.set.{path}")
        key = json.dumps(sets, sort_keys=True, default=str)
        found = served.variants.get(key)
        if found is not None:
            served.variants.move_to_end(key)
            return found
        run = self.options.run
        try:
            plan = compile_spec(served.path, {**run.sets, **sets}, disable=run.disable_passes)
            self.runtime.prepare(plan)
        except SpecInvalid as exc:
            raise ApiError(400, f"ember.set: {exc}", param="ember.set") from None
        except EmberError as exc:
            raise ApiError(400, f"ember.set: {exc}", param="ember.set") from None
        found = served.variants[key] = (plan, Executor(plan, run.scheduler))
        if len(served.variants) > _PLANS_PER_MODEL:
            served.variants.popitem(last=False)
        return found

    async def complete(self, prepared: Prepared,
                       on_text: Callable[[int], Callable[[str], None] | None] | None = None) -> Outcome:
        """Run the request's `n` executions at once; `on_text(i)` gives choice i's text-delta callback.

        Raises:
            ApiError: 429 (a budget), 502 (an upstream or its reply failed), 500 (another failure).
        """
        n = len(prepared.seeds)
        rows = [RowContext() for _ in range(n)]
        runs = [self._one(prepared, prepared.seeds[i], rows[i], on_text(i) if on_text else None) for i in range(n)]
        try:
            outputs = [await runs[0]] if n == 1 else list(await asyncio.gather(*runs))
        finally:
            usage = Usage()
            for row in rows:
                usage += row.usage
            prepared.usage = usage  # what was spent, also when the request failed or was cancelled
        return Outcome([answer_text(o) for o in outputs], outputs, usage, [row.trace_id for row in rows])

    async def _one(self, prepared: Prepared, seed: int, row: RowContext,
                   on_text: Callable[[str], None] | None) -> dict[str, Any]:
        sink = self.runtime if prepared.limits is None else _BudgetedSink(self.runtime, Spending(prepared.limits))
        meta = example_meta(seed, "run", prepared.values, None)  # as `ember run --seed N` draws
        try:
            outputs, _ = await execute_row(prepared.executor, sink, prepared.values, meta, row, on_text=on_text)
        except (NodeFailed, BudgetExceeded) as exc:
            raise self.failure(exc) from None
        return outputs

    def failure(self, exc: EmberError) -> ApiError:
        """The error object of a failed run: a budget is a 429, an upstream failure a 502 with the
        one-line message `ember run` prints (keys scrubbed)."""
        cause = exc.cause if isinstance(exc, NodeFailed) else exc
        message = self.runtime.scrub(str(exc))
        if isinstance(cause, BudgetExceeded):
            return ApiError(429, message, code="budget_exceeded", retry_after_s=60)
        if isinstance(cause, ProviderError | OutputError):
            return ApiError(502, message, code="upstream_error")
        return ApiError(500, message, code="run_failed")

    async def aclose(self) -> None:
        await self.runtime.aclose()


def answer_text(outputs: dict[str, Any]) -> str:
    """The assistant message of a run: the output `answer` (or the only output), as text."""
    value = outputs["answer"] if "answer" in outputs else \
        next(iter(outputs.values())) if len(outputs) == 1 else outputs
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _required(decl: dict[str, Any]) -> bool:
    return decl.get("default") is None and decl.get("required", True)


def _inputs(plan: Plan, req: ChatRequest) -> dict[str, Any]:
    """The plan's inputs from the conversation and `extra_body.ember.inputs`.

    Raises:
        ApiError: 400 naming the input at fault.
    """
    given = dict(req.ember.inputs) if req.ember is not None else {}
    decls = plan.inputs
    for name in given:
        if name not in decls:
            raise ApiError(400, f"ember.inputs: model '{plan.name}' has no input '{name}' (inputs: "
                                f"{', '.join(decls) or 'none'})", param=f"ember.inputs.{name}")
    conversation = decls.get("messages")
    if conversation is not None and conversation.get("type") == "array" and "messages" not in given:
        given["messages"] = [{"role": m.role, "content": m.text()} for m in req.messages]
    missing = [n for n, d in decls.items() if _required(d) and n not in given]
    if len(missing) == 1 and decls[missing[0]].get("type", "string") == "string":  # the one left: the user's
        users = [m for m in req.messages if m.role == "user"]
        if not users:
            raise ApiError(400, f"messages: model '{plan.name}' reads its input '{missing[0]}' from the last user "
                                "message, and there is none", param="messages")
        given[missing[0]] = users[-1].text()
        missing = []
    if missing:
        raise ApiError(400, f"ember.inputs: model '{plan.name}' needs input '{missing[0]}': pass it in "
                            f"extra_body={{\"ember\": {{\"inputs\": {{\"{missing[0]}\": ...}}}}}}",
                       param=f"ember.inputs.{missing[0]}")
    try:
        return resolve_inputs(plan, given)
    except UsageError as exc:
        found = re.search(r"input '([^']+)'", str(exc))
        param = f"ember.inputs.{found.group(1)}" if found else "ember.inputs"
        raise ApiError(400, f"{param}: {exc}", param=param) from None

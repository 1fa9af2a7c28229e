"""Run a plan once: inputs in, outputs out, with `.ember/runs/<run-id>/result.json` and `trace.jsonl`
(layer 7, above the executor and the runtime it puts together)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EmberError, UsageError
from ..runtime.runtime import Runtime
from ..runtime.usage import RowContext, Usage
from ..spec.diagnostics import did_you_mean
from ..xcs.executor import Executor
from ..xcs.exprs import SKIPPED
from ..xcs.plan import Plan
from .factory import AUTO, make_recorder, make_runtime
from .options import RunOptions
from .rundir import RunDir

_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool, "array": list, "object": dict}


def resolve_inputs(plan: Plan, given: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, reject unknown or missing inputs, and coerce values to the declared types.

    Raises:
        UsageError: an unknown or missing input, or a value of the wrong type.
    """
    for name in given:
        if name not in plan.inputs:
            hint = did_you_mean(name, plan.inputs)
            known = ", ".join(plan.inputs) or "none"
            raise UsageError(f"unknown input '{name}'" + (f"; {hint}" if hint else f" (inputs: {known})"))
    values: dict[str, Any] = {}
    for name, decl in plan.inputs.items():
        if name in given:
            values[name] = _coerce(name, given[name], decl.get("type", "string"))
        elif decl.get("default") is not None or not decl.get("required", True):
            values[name] = decl.get("default")
        else:
            raise UsageError(f"missing input '{name}': pass --input {name}=VALUE")
    return values


def _coerce(name: str, value: Any, type_name: str) -> Any:
    if type_name == "string" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, list | dict) else str(value)
    numeric_bool = isinstance(value, bool) and type_name in ("number", "integer")
    if numeric_bool or not isinstance(value, _TYPES.get(type_name, object)):
        raise UsageError(f"input '{name}' should be {type_name}, got {json.dumps(value)}")
    return value


@dataclass
class RunResult:
    """One run: its outputs, usage, wall time and folder; `error` says why it failed (None: it did not)."""

    run_id: str
    outputs: dict[str, Any]
    usage: Usage
    wall_s: float
    run_dir: Path | None
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> "ok" | "skipped"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. a model with no known price
    budget: dict[str, Any] | None = None  # limits and spend, when the run had a budget
    budget_exceeded: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `ember run --json` shape (DESIGN §7)."""
        u = self.usage
        out = {
            "outputs": self.outputs, "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens},
            "cost_usd": u.cost_usd, "calls": u.calls, "requests": u.requests, "wall_s": round(self.wall_s, 4),
            "run_id": self.run_id,
        }
        if u.cache_hits:
            out["cache_hits"] = u.cache_hits
        if u.refusals:
            out["refusals"] = u.refusals  # samples refused or blocked: no answer
        if u.empty:
            out["empty"] = u.empty  # samples that were empty replies: no answer
        if u.estimated:
            out["cost_estimated"] = True  # some response had no (valid) usage: tokens and cost are estimates
        if self.budget is not None:
            out["budget"] = self.budget
        return out


def example_meta(seed: int, example_id: str, inputs: dict[str, Any], example: dict[str, Any] | None) -> dict:
    """What the sim provider needs to know about the example (DESIGN §3)."""
    example = example or {}
    choices = inputs.get("choices")
    return {"seed": seed, "example_id": example_id, "truth": example.get("answer"),
            "choices": choices if isinstance(choices, list) else None, "sim": example.get("sim")}


async def execute_row(executor: Executor, runtime: Runtime, inputs: dict[str, Any], meta: dict[str, Any],
                      row: RowContext) -> tuple[dict[str, Any], dict[str, Any]]:
    """One execution with its root span; usage lands in `row.usage` even when it fails (NodeFailed)."""
    tracer = runtime.tracer
    tracing = tracer.on
    if tracing:
        row.trace_id, row.root_span = tracer.new_trace(), tracer.new_span_id()
    start = time.time()
    status = "OK"
    try:
        on_node = (lambda n, s, e, st: runtime.node_span(row, n, s, e, st)) if tracing else None
        on_io = None if row.io is None else io_hook(row, runtime.scrub)
        return await executor.execute(runtime, inputs, meta, row, on_node, on_io)
    except BaseException:
        status = "ERROR"
        raise
    finally:
        if tracing:
            u = row.usage
            tracer.span(row.trace_id, row.root_span, None, f"invoke_workflow {executor.plan.name}", "INTERNAL",
                        start, time.time(), status, {
                            "gen_ai.operation.name": "invoke_workflow", "ember.plan.hash": executor.plan.hash,
                            "ember.example.id": meta.get("example_id"), "gen_ai.usage.input_tokens": u.input_tokens,
                            "gen_ai.usage.output_tokens": u.output_tokens, "ember.calls": u.calls,
                        })


def io_hook(row: RowContext, scrub: Any) -> Any:
    """The executor's `on_io` for `--record io`: each node's inputs and outputs into the row's recorder."""
    io, row_id = row.io, row.row_id

    def on_io(node: Any, inputs: dict[str, Any], result: Any, error: BaseException | None) -> None:
        if result is SKIPPED:
            io.node(row_id, node, inputs, None, skipped=True)
        else:
            io.node(row_id, node, inputs, result, None if error is None else scrub(str(error)))
    return on_io


async def run_plan_async(plan: Plan, inputs: dict[str, Any], options: RunOptions | None = None, *,
                         example: dict[str, Any] | None = None, cache: Any = None, **legacy: Any) -> RunResult:
    """Run `plan` once. Failures are recorded in result.json and returned in `RunResult.error`.

    Args:
        plan: the compiled plan.
        inputs: input values by name (defaults filled, types coerced).
        options: seed, scheduler, budget (over the plan's `budget:`), cache, runs dir, transport.
        example: ground truth for the sim (`{"answer": "B"}`), like a dataset row.
        cache: a `ResponseCache` to use (closed with the run) instead of the one `options` name.
        legacy: the old keywords (`seed`, `runs_dir`, `transport`, `scheduler`, `budget`) as options.

    Raises:
        UsageError: unknown, missing or mistyped inputs; an unknown scheduler.
    """
    options = _options(options, legacy)
    values = resolve_inputs(plan, inputs)
    executor = Executor(plan, options.scheduler)
    run = RunDir.new(options.runs_dir)
    runtime = make_runtime(options, plan, run_dir=run, cache=cache if cache is not None else AUTO)
    start = time.perf_counter()
    outputs: dict[str, Any] = {}
    nodes: dict[str, str] = {}
    error = None
    row = RowContext(io=make_recorder(options, run, runtime))
    seed = options.seed
    io_file = None
    try:
        runtime.prepare(plan)
        outputs, results = await execute_row(
            executor, runtime, values, example_meta(seed, "run", values, example), row)
        nodes = {k: "skipped" if v is SKIPPED else "ok" for k, v in results.items()}
    except EmberError as exc:
        error = str(exc)
    finally:
        try:
            await runtime.aclose()
        finally:
            if row.io is not None:
                io_file = row.io.close().name
    spent = runtime.budget
    if spent is not None and spent.exceeded:
        error = spent.message()
    result = RunResult(run.run_id, outputs, row.usage, time.perf_counter() - start, run.path, nodes, error,
                       list(runtime.warnings), spent.to_json() if spent is not None else None,
                       spent is not None and spent.exceeded)
    run.write_result({
        **result.to_json(), "status": "budget_exceeded" if result.budget_exceeded else "failed" if error else "ok",
        "error": error, "spec": plan.source,
        "plan": plan.name, "plan_hash": executor.plan.hash, "seed": seed, "inputs": values, "nodes": nodes,
        "warnings": result.warnings, "command": "run", **({"io": io_file} if io_file else {}),
    })
    return result


def run_plan(plan: Plan, inputs: dict[str, Any], options: RunOptions | None = None, **kwargs: Any) -> RunResult:
    """`run_plan_async` from synchronous code."""
    return asyncio.run(run_plan_async(plan, inputs, options, **kwargs))


_LEGACY = ("seed", "runs_dir", "transport", "scheduler", "budget")


def _options(options: RunOptions | None, legacy: dict[str, Any]) -> RunOptions:
    """`options` with the old keyword arguments of `run_plan` folded in (no cache unless asked)."""
    if unknown := sorted(set(legacy) - set(_LEGACY)):
        raise TypeError(f"run_plan() got an unexpected keyword argument {unknown[0]!r}")
    if options is None:
        options = RunOptions(cache_mode="off")  # the library's old default: no cache unless one is given
    changes = {k: v for k, v in legacy.items() if k in _LEGACY}
    if "scheduler" in changes and changes["scheduler"] is None:
        changes["scheduler"] = "parallel"
    return options.replace(**changes) if changes else options


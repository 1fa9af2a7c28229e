"""Run a plan once: inputs in, outputs out, with `.ember/runs/<run-id>/result.json` and `trace.jsonl`."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import EmberError, UsageError
from ..xcs.executor import Executor
from ..xcs.exprs import SKIPPED
from ..xcs.plan import Plan
from ..xcs.scheduling import Scheduler
from .budget import Budget, Limits, limits_from
from .runtime import RowContext, Runtime, Usage
from .trace import Tracer

RUNS_DIR = Path(".ember") / "runs"
_TYPES = {"string": str, "number": (int, float), "integer": int, "boolean": bool, "array": list, "object": dict}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + os.urandom(3).hex()


def resolve_inputs(plan: Plan, given: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults, reject unknown or missing inputs, and coerce values to the declared types."""
    from ..spec.diagnostics import did_you_mean

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
    tracing = tracer.path is not None
    if tracing:
        row.trace_id, row.root_span = tracer.new_trace(), tracer.new_span_id()
    start = time.time()
    status = "OK"
    try:
        on_node = (lambda n, s, e, st: runtime.node_span(row, n, s, e, st)) if tracing else None
        return await executor.execute(runtime, inputs, meta, row, on_node)
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


async def run_plan_async(plan: Plan, inputs: dict[str, Any], *, seed: int = 0, runs_dir: Path | None = RUNS_DIR,
                         example: dict[str, Any] | None = None, transport: Any = None,
                         scheduler: Scheduler | str | None = None, budget: Limits | None = None,
                         cache: Any = None) -> RunResult:
    """Run `plan` once. Failures are recorded in result.json and returned in `RunResult.error`.

    `budget` limits cost/calls/tokens (default: the plan's `budget:`); `cache` is a `ResponseCache`
    (closed with the run)."""
    values = resolve_inputs(plan, inputs)
    executor = Executor(plan, scheduler)
    run_id = new_run_id()
    run_dir = runs_dir / run_id if runs_dir is not None else None
    limits = budget if budget is not None else limits_from(plan.budget)
    runtime = Runtime(tracer=Tracer(run_dir / "trace.jsonl" if run_dir else None), transport=transport,
                      max_in_flight=executor.scheduler.max_in_flight(),
                      budget=Budget(limits) if limits is not None else None, cache=cache)
    start = time.perf_counter()
    outputs: dict[str, Any] = {}
    nodes: dict[str, str] = {}
    error = None
    row = RowContext()
    try:
        runtime.prepare(plan)
        outputs, results = await execute_row(
            executor, runtime, values, example_meta(seed, "run", values, example), row)
        nodes = {k: "skipped" if v is SKIPPED else "ok" for k, v in results.items()}
    except EmberError as exc:
        error = str(exc)
    finally:
        await runtime.aclose()
    spent = runtime.budget
    if spent is not None and spent.exceeded:
        error = spent.message()
    result = RunResult(run_id, outputs, row.usage, time.perf_counter() - start, run_dir, nodes, error,
                       list(runtime.warnings), spent.to_json() if spent is not None else None,
                       spent is not None and spent.exceeded)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "result.json").write_text(json.dumps({
            **result.to_json(), "status": "budget_exceeded" if result.budget_exceeded else "failed" if error else "ok",
            "error": error, "spec": plan.source,
            "plan": plan.name, "plan_hash": executor.plan.hash, "seed": seed, "inputs": values, "nodes": nodes,
            "warnings": result.warnings,
        }, indent=2, default=str) + "\n")
    return result


def run_plan(plan: Plan, inputs: dict[str, Any], **kwargs: Any) -> RunResult:
    return asyncio.run(run_plan_async(plan, inputs, **kwargs))

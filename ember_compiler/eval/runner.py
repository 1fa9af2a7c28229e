"""`ember eval`: every row of a dataset through one shared runtime, rows streamed to disk as they finish.

Row fields named like the spec's inputs feed them; `answer` is the ground truth (also for the sim),
`sim` holds per-row sim overrides, `id` names the row. A failing row is recorded with its error and
counts as incorrect; the other rows continue.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EmberError, UsageError
from ..ops.text import normalize
from ..runtime.run import RUNS_DIR, example_meta, execute_row, new_run_id, resolve_inputs
from ..runtime.runtime import RowContext, Runtime, Usage
from ..runtime.trace import Tracer
from ..xcs.executor import Executor
from ..xcs.plan import Plan
from ..xcs.scheduling import Scheduler
from .dataset import Row


@dataclass
class EvalResult:
    run_id: str
    rows: int
    scored: int
    correct: int
    errors: int
    usage: Usage
    wall_s: float
    latencies: list[float]
    run_dir: Path | None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.scored if self.scored else None

    def to_json(self) -> dict[str, Any]:
        """The `ember eval --json` shape (DESIGN §7)."""
        lat = sorted(self.latencies)
        pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 4)) if lat else (lambda q: None)
        u = self.usage
        return {
            "metrics": {"accuracy": self.accuracy}, "rows": self.rows, "errors": self.errors,
            "calls": u.calls, "requests": u.requests, "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens, "cost_usd": u.cost_usd, "wall_s": round(self.wall_s, 4),
            "latency_p50_s": pct(0.5), "latency_p95_s": pct(0.95), "run_id": self.run_id,
        }


def answer_output(plan: Plan) -> str:
    if "answer" in plan.outputs:
        return "answer"
    if len(plan.outputs) == 1:
        return next(iter(plan.outputs))
    raise UsageError(f"spec '{plan.name}' has several outputs and none is named 'answer'")


def is_correct(predicted: Any, truth: Any) -> bool:
    return predicted is not None and normalize(predicted, "lower") == normalize(truth, "lower")


async def eval_plan_async(plan: Plan, rows: list[Row], *, seed: int = 0, concurrency: int = 64,
                          runs_dir: Path | None = RUNS_DIR, transport: Any = None,
                          scheduler: Scheduler | str | None = None,
                          on_row: Callable[[dict[str, Any]], None] | None = None) -> EvalResult:
    key = answer_output(plan)
    executor = Executor(plan, scheduler)
    run_id = new_run_id()
    run_dir = runs_dir / run_id if runs_dir is not None else None
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(tracer=Tracer(run_dir / "trace.jsonl" if run_dir else None), transport=transport,
                      max_in_flight=executor.scheduler.max_in_flight())
    result = EvalResult(run_id, len(rows), 0, 0, 0, runtime.usage, 0.0, [], run_dir)
    out = (run_dir / "rows.jsonl").open("w", encoding="utf-8") if run_dir else None
    buffer: list[str] = []
    start = time.perf_counter()
    cursor = iter(rows)

    async def run_one(row: Row) -> dict[str, Any]:
        record: dict[str, Any] = {"index": row.index, "id": row.id}
        t0 = time.perf_counter()
        data = row.data
        error = row.error
        if data is not None:
            truth = data.get("answer")
            record["answer"] = truth
            ctx = RowContext()
            try:
                values = resolve_inputs(plan, {k: v for k, v in data.items() if k in plan.inputs})
                outputs, _ = await execute_row(executor, runtime, values, example_meta(seed, row.id, values, data), ctx)
                record["outputs"] = outputs
                if truth is not None:
                    record["correct"] = is_correct(outputs.get(key), truth)
            except EmberError as exc:
                error = str(exc)
            result.usage.add(ctx.usage)
            record.update(calls=ctx.usage.calls, cost_usd=ctx.usage.cost_usd)
        if error is not None:
            record["error"] = error
            result.errors += 1
        if "answer" in record and record["answer"] is not None or error is not None:
            result.scored += 1
            result.correct += bool(record.get("correct"))
        record["latency_s"] = round(time.perf_counter() - t0, 6)
        result.latencies.append(record["latency_s"])
        return record

    async def worker() -> None:
        for row in cursor:
            record = await run_one(row)
            if out is not None:
                buffer.append(json.dumps(record, default=str))
                if len(buffer) >= 512:
                    out.write("\n".join(buffer) + "\n")
                    buffer.clear()
            if on_row is not None:
                on_row(record)

    try:
        runtime.prepare(plan)
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(rows))))))
    finally:
        await runtime.aclose()
        if out is not None:
            if buffer:
                out.write("\n".join(buffer) + "\n")
            out.close()
    result.wall_s = time.perf_counter() - start
    if run_dir is not None:
        summary = {**result.to_json(), "spec": plan.source, "plan_hash": plan.hash, "seed": seed}
        (run_dir / "result.json").write_text(json.dumps(summary, indent=2) + "\n")
    return result


def eval_plan(plan: Plan, rows: list[Row], **kwargs: Any) -> EvalResult:
    return asyncio.run(eval_plan_async(plan, rows, **kwargs))

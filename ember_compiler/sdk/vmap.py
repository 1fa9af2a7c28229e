"""``vmap``: one operator over a batch of inputs through one shared runtime, results in input order.

The operator is traced once (``jit``) and every row runs the same plan: one set of gates for all rows,
at most ``row_concurrency`` rows in flight, plus the scheduling policy's bound on model calls. A
network that cannot be traced (it branches on model outputs) runs eagerly per row instead, in the
same session and with the same bounds.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ember_compiler.runtime.usage import Usage
from ember_compiler.sdk import engine
from ember_compiler.sdk.jit import Jitted, jit
from ember_compiler.sdk.operator import Operator, OperatorError
from ember_compiler.sdk.trace import NotTraceable
from ember_compiler.xcs.scheduling import Scheduler, get_scheduler

EXAMPLE_KEYS = ("answer", "sim", "id")  # row fields that describe the example (as in `ember eval`)


@dataclass
class BatchOutput:
    outputs: list[Any]  # one validated output per row, in row order
    usage: Usage
    wall_s: float
    traced: bool  # False when the operator ran eagerly per row (it could not be traced)


class Batched:
    """``vmap(op)``: call with a list of rows (dicts, ``Input`` instances, or bare values for a
    one-input operator) or with columns as keyword lists (``question=[...]``)."""

    def __init__(self, op: Operator | Jitted, *, row_concurrency: int = 64, scheduler: Scheduler | str | None = None,
                 seed: int = 0, max_concurrency: int | None = None) -> None:
        row_concurrency = _row_concurrency(row_concurrency, max_concurrency)
        if row_concurrency < 1:
            raise OperatorError("vmap: row_concurrency must be >= 1")
        self.jitted = op if isinstance(op, Jitted) else jit(op, scheduler=scheduler)
        self.op = self.jitted.op
        self.row_concurrency = row_concurrency
        self.scheduler = get_scheduler(scheduler if scheduler is not None else self.jitted.scheduler)
        self.seed = seed

    def rows(self, rows: Any, columns: dict[str, list]) -> list[Any]:
        if rows is not None and columns:
            raise OperatorError("vmap: pass rows or keyword columns, not both")
        if rows is not None:
            return list(rows)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise OperatorError(f"vmap: keyword columns must have equal lengths, got {sorted(lengths)}")
        names = list(columns)
        return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]

    def split(self, row: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(operator input, example fields) of one row."""
        fields = self.jitted.traced.input_model.model_fields if self.traced else self.op.Input.model_fields
        if isinstance(row, BaseModel):
            return {k: getattr(row, k) for k in type(row).model_fields}, {}
        if not isinstance(row, dict):
            if len(fields) != 1:
                raise OperatorError(f"vmap: rows of {self.op.op_name} must be mappings of {', '.join(fields)}")
            return {next(iter(fields)): row}, {}
        example = {k: row[k] for k in EXAMPLE_KEYS if k in row and k not in fields}
        return {k: v for k, v in row.items() if k not in example}, example

    @property
    def traced(self) -> bool:
        try:
            self.jitted.traced  # noqa: B018 - traces on first use
            return True
        except NotTraceable:
            return False

    def __call__(self, rows: Any = None, /, **columns: list) -> list[Any]:
        return self.run(rows, **columns).outputs

    def run(self, rows: Any = None, /, **columns: list) -> BatchOutput:
        batch = self.rows(rows, columns)
        return engine.run_sync(lambda: self._run(batch), seed=self.seed, scheduler=self.scheduler)

    async def arun(self, rows: Any = None, /, **columns: list) -> BatchOutput:
        batch = self.rows(rows, columns)
        return await engine.run_async(lambda: self._run(batch), seed=self.seed, scheduler=self.scheduler)

    async def _run(self, batch: list[Any]) -> BatchOutput:
        session = engine.CURRENT.get()
        traced = self.traced
        outputs: list[Any] = [None] * len(batch)
        start = time.perf_counter()
        cursor = iter(enumerate(batch))

        async def one(i: int, row: Any) -> Any:
            values, example = self.split(row)
            example_id = str(example.get("id", i))
            if traced:
                values = self.jitted.validate((), values)
                return await self.jitted.aexecute(values, session, example_id, example)
            meta = dict(session.meta)
            session.meta.update(example_id=example_id, truth=example.get("answer"), sim=example.get("sim"))
            try:  # eager rows share the session; their example travels in its meta
                return await self.op.ainvoke(values)
            finally:
                session.meta.clear()
                session.meta.update(meta)

        async def worker() -> None:
            for i, row in cursor:
                try:
                    outputs[i] = await one(i, row)
                except Exception as exc:
                    raise OperatorError(f"vmap row {i}: {exc}") from exc

        workers = 1 if not traced else max(1, min(self.row_concurrency, len(batch)))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except BaseExceptionGroup as grouped:
            raise grouped.exceptions[0] from None
        return BatchOutput(outputs, session.usage, time.perf_counter() - start, traced)


def vmap(op: Operator | Jitted, *, row_concurrency: int = 64, scheduler: Scheduler | str | None = None,
         seed: int = 0, max_concurrency: int | None = None) -> Batched:
    """Map ``op`` over a batch: ``vmap(net)([{"question": q1}, {"question": q2}])`` or
    ``vmap(net)(question=[q1, q2])``. Rows may carry ``answer``/``sim``/``id`` like eval datasets.

    Args:
        row_concurrency: rows in flight at once (a model's calls in flight are its binding's
            ``limits.concurrency``).
        scheduler: scheduling policy (its ``max_in_flight`` bounds model calls across all rows).
        seed: run seed (the sim reproduces exactly).
        max_concurrency: deprecated name of ``row_concurrency`` (warns).

    Raises:
        OperatorError: ``row_concurrency`` below 1.
    """
    return Batched(op, row_concurrency=_row_concurrency(row_concurrency, max_concurrency), scheduler=scheduler,
                   seed=seed)


def _row_concurrency(row_concurrency: int, max_concurrency: int | None) -> int:
    if max_concurrency is None:
        return row_concurrency
    warnings.warn("vmap(max_concurrency=) is deprecated: use row_concurrency=", DeprecationWarning, stacklevel=3)
    return max_concurrency

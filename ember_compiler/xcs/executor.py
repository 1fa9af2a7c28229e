"""Execute a plan: ready-set dataflow on asyncio.

Every node starts the moment its last input is ready — no waves, no barriers. `fn` nodes run inline
(they are pure and cheap); `llm` nodes become tasks whose requests go through the runtime's gates,
ordered by the scheduling policy (by default the longest remaining path first, so a long chain is
not starved by wide fan-outs).

`python` and `map` nodes become tasks too, run by a *node runner* made once per executor:
`map` runs its sub-plan once per item, all items at once, through the same sink (so the same gates);
`python` runners come from the node-runner registry (`runners.py`), which the SDK fills.

Each node's rules come from its plan op in the op registry; the plan is verified first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..errors import NodeFailed, OutputError
from ..ops.base import CallContext
from ..ops.registry import plan_op
from ..providers.base import Completion, Request
from .exprs import SKIPPED, Resolver, Skip, compile_expr
from .plan import Plan, PlanNode
from .runners import NodeRunner, runner_for
from .scheduling import Scheduler, get_scheduler, node_infos


class CallSink(Protocol):
    """What the executor needs from the runtime: a way to send one request, and call bookkeeping."""

    def supports_n(self, binding: dict[str, Any]) -> bool: ...

    def complete(self, request: Request, priority: float, row: Any) -> Awaitable[Completion]: ...


class _Compiled:
    __slots__ = ("node", "inputs", "guards", "fn", "rule", "runner", "dependents", "indegree", "priority")

    def __init__(self, node: PlanNode, executor: Executor) -> None:
        self.node = node
        op = plan_op(node.op)  # verified: known, of this kind
        tolerant = node.kind == "fn" and op.null_tolerant
        self.inputs: list[tuple[str, Resolver]] = [(p, compile_expr(e, tolerant)) for p, e in node.inputs.items()]
        self.guards: list[Resolver] = [compile_expr(e) for e in node.when]
        self.fn = op.run if node.kind == "fn" else None
        self.rule = op if node.kind == "llm" else None
        self.runner: NodeRunner | None = None
        if node.kind == "map":
            self.runner = MapRunner(node, executor)
        elif node.kind == "python":
            self.runner = runner_for("python")(node, executor)
        self.dependents: list[int] = []
        self.indegree = 0
        self.priority = 0


class Executor:
    """A plan compiled for execution; `execute` runs it once for one set of inputs.

    `operators` maps python node ids to live operator instances (what `jit` traced); other python
    nodes import their operator when the executor is built (that is, at run time).
    """

    def __init__(self, plan: Plan, scheduler: Scheduler | str | None = None, *,
                 operators: dict[str, Any] | None = None, models: dict[str, Any] | None = None) -> None:
        plan.verified(models)
        self.plan = plan
        self.models = plan.models if models is None else models
        self.scheduler = get_scheduler(scheduler)
        self.operators = operators or {}
        self.nodes = [_Compiled(n, self) for n in plan.nodes]
        index = {n.id: i for i, n in enumerate(plan.nodes)}
        for i, c in enumerate(self.nodes):
            deps = c.node.deps()
            c.indegree = len(deps)
            for d in deps:
                self.nodes[index[d]].dependents.append(i)
        for c, info in zip(self.nodes, node_infos(plan, self.models), strict=True):
            if info is not None:
                c.priority = self.scheduler.priority(c.node, info)
        self.roots = [i for i, c in enumerate(self.nodes) if c.indegree == 0]
        self.outputs = [(k, compile_expr(e, tolerant=True)) for k, e in plan.outputs.items()]

    async def execute(
        self,
        sink: CallSink,
        inputs: dict[str, Any],
        meta: dict[str, Any],
        row: Any = None,
        on_node: Callable[[PlanNode, float, float, str], None] | None = None,
        on_io: Callable[[PlanNode, dict[str, Any], Any, BaseException | None], None] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the plan; returns (outputs, results by node id). Raises NodeFailed on the first failure.

        `on_node(node, start, end, status)` hears of every node that finished (its span);
        `on_io(node, inputs, result, error)` of every node that finished (`result` SKIPPED when it was
        skipped) or failed, with the values its inputs resolved to (`--record io`)."""
        nodes = self.nodes
        results: dict[str, Any] = {}
        pending = [c.indegree for c in nodes]
        left = len(nodes)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        tasks: set[asyncio.Task] = set()
        started: dict[int, float] = {}
        given: dict[int, dict[str, Any]] = {}  # with on_io: the inputs of the nodes still running

        def finish(i: int, value: Any) -> None:
            nonlocal left
            c = nodes[i]
            results[c.node.id] = value
            if on_node is not None:
                on_node(c.node, started.get(i, 0.0), time.time(), "skipped" if value is SKIPPED else "ok")
            if on_io is not None:
                on_io(c.node, given.pop(i, {}), value, None)
            left -= 1
            for j in c.dependents:
                pending[j] -= 1
                if pending[j] == 0:
                    start(j)
            if left == 0 and not done.done():
                done.set_result(None)

        def fail(i: int, exc: BaseException) -> None:
            if on_io is not None:
                on_io(nodes[i].node, given.pop(i, {}), None, exc)
            if not done.done():
                node = nodes[i].node
                done.set_exception(exc if isinstance(exc, NodeFailed) else NodeFailed(node.id, node.source, exc))

        def start(i: int) -> None:
            if done.done():
                return
            c = nodes[i]
            if on_node is not None:
                started[i] = time.time()
            try:
                values = {port: f(results, inputs) for port, f in c.inputs}
                if on_io is not None:
                    given[i] = values
                if not all(g(results, inputs) for g in c.guards):
                    finish(i, SKIPPED)
                    return
            except Skip:
                finish(i, SKIPPED)
                return
            except Exception as exc:  # a bad template or expression names its node
                fail(i, exc)
                return
            if c.fn is not None:
                try:
                    out = c.fn(c.node, values)
                except Exception as exc:
                    fail(i, exc)
                    return
                finish(i, out)
                return
            if c.runner is not None:
                task = loop.create_task(c.runner(values, sink, meta, row))
            else:
                task = loop.create_task(self._call(c, values, sink, meta, row))
            tasks.add(task)
            task.add_done_callback(lambda t, i=i: _settle(t, i))

        def _settle(task: asyncio.Task, i: int) -> None:
            tasks.discard(task)
            if task.cancelled():
                return
            exc = task.exception()
            if exc is not None:
                fail(i, exc)
            else:
                finish(i, task.result())

        if not nodes:
            done.set_result(None)
        for i in self.roots:
            start(i)
        try:
            await done
        finally:
            for t in tasks:
                t.cancel()
        outputs = {k: f(results, inputs) for k, f in self.outputs}
        return outputs, results

    async def _call(self, c: _Compiled, values: dict[str, Any], sink: CallSink, meta: dict[str, Any], row: Any):
        node = c.node
        binding = self.models[node.params["model"]]
        ctx = CallContext(node, binding, sink.supports_n(binding), {**meta, "node_id": node.id})
        try:
            if c.rule.drive is not None:  # an op that decides between requests (the decided-vote cut-off)
                async def send(requests: list[Request]) -> list[Completion]:
                    return list(await asyncio.gather(*(sink.complete(r, c.priority, row) for r in requests)))

                return await c.rule.drive(node, values, ctx, send)
            requests = c.rule.build(node, values, ctx)
            if len(requests) == 1:
                completions = [await sink.complete(requests[0], c.priority, row)]
            else:
                completions = list(await asyncio.gather(*(sink.complete(r, c.priority, row) for r in requests)))
            return c.rule.finish(node, values, completions)
        except OutputError as exc:
            raise exc.naming(binding) from None


class MapRunner:
    """A `map` node: its sub-plan (see `compiler/lower.py`) once per item of `over`, all at once.

    Items get distinct example ids (`ID[i]`), so sampled providers (the sim) draw independently per
    item; results keep the order of the items.
    """

    def __init__(self, node: PlanNode, parent: Executor) -> None:
        self.node = node
        self.executor = Executor(node.subplan, parent.scheduler, operators=parent.operators, models=parent.models)

    async def __call__(self, values: dict[str, Any], sink: CallSink, meta: dict[str, Any], row: Any) -> dict:
        items = values.get("over")
        if not isinstance(items, list):
            raise TypeError(f"map over a {type(items).__name__}, expected a list")
        bound = values.get("bind") or {}
        example = meta.get("example_id", "")

        async def one(i: int, item: Any) -> Any:
            inputs = {**bound, ITEM: item}
            try:
                outputs, _ = await self.executor.execute(sink, inputs, {**meta, "example_id": f"{example}[{i}]"}, row)
            except NodeFailed as exc:
                raise RuntimeError(f"item {i}: {exc}") from exc
            return outputs["result"]

        # a TaskGroup cancels the other items as soon as one fails
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, item)) for i, item in enumerate(items)]
        except BaseExceptionGroup as grouped:
            raise grouped.exceptions[0] from None
        results = [t.result() for t in tasks]
        answers = [r.get("answer") if isinstance(r, dict) else None for r in results]
        return {"results": results, "answers": answers}


ITEM = "#item"  # as in compiler/exprs.py: the map item's input name inside a sub-plan

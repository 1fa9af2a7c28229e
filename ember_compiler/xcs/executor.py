"""Execute a plan: ready-set dataflow on asyncio.

Every node starts the moment its last input is ready — no waves, no barriers. `fn` nodes run inline
(they are pure and cheap); `llm` nodes become tasks whose requests go through the runtime's gates,
ordered by the scheduling policy (by default the longest remaining path first, so a long chain is
not starved by wide fan-outs).

`python` and `map` nodes become tasks too, run by a *node runner* made once per executor:
`map` runs its sub-plan once per item, all items at once, through the same sink (so the same gates);
`python` runners come from the node-runner registry (`runners.py`), which the SDK fills.

Each node's rules come from its plan op in the op registry; the plan is verified first.

Streaming: `execute(on_text=...)` attaches `on_text` to the one request of the node the plan's answer
is read from (`analysis.stream_source`: a generate, judge or refine round of one sample), so that its
reply streams as the model writes it (`providers/base.py`, "Streaming"); for any other plan it is
never called.
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
from ..spec.limits import DEFAULT
from .analysis import stream_source
from .exprs import SKIPPED, Resolver, Skip, compile_expr
from .plan import Plan, PlanNode
from .runners import NodeRunner, runner_for
from .scheduling import Scheduler, get_scheduler, node_infos


class CallSink(Protocol):
    """What the executor needs from the runtime: a way to send one request, and call bookkeeping."""

    def supports_n(self, binding: dict[str, Any]) -> bool: ...

    def complete(self, request: Request, priority: float, row: Any) -> Awaitable[Completion]: ...


class _Compiled:
    __slots__ = ("node", "inputs", "guards", "fn", "rule", "runner", "dependents", "indegree", "priority", "reads")

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
        # the nodes a model call reads: their answers go in its request meta as `upstream` (the sim's
        # `wrong_input_accuracy` draws from whether they were right; real providers ignore it)
        self.reads: tuple[str, ...] = tuple(sorted(node.deps())) if node.kind == "llm" else ()
        self.indegree = 0
        self.priority = 0


class Executor:
    """A plan compiled for execution; `execute` runs it once for one set of inputs.

    `operators` maps python node ids to live operator instances (what `jit` traced); other python
    nodes import their operator when the executor is built (that is, at run time). `max_fanout` caps
    the items of one `map` node (`Limits.fanout`): only known at run time, checked before any runs.
    """

    def __init__(self, plan: Plan, scheduler: Scheduler | str | None = None, *,
                 operators: dict[str, Any] | None = None, models: dict[str, Any] | None = None,
                 max_fanout: int = DEFAULT.fanout) -> None:
        plan.verified(models)
        self.plan = plan
        self.max_fanout = max_fanout
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
        source = stream_source(plan)
        self.stream_index = None if source is None else index[source]  # the node `on_text` streams from
        self.outputs = [(k, compile_expr(e, tolerant=True)) for k, e in plan.outputs.items()]

    async def execute(
        self,
        sink: CallSink,
        inputs: dict[str, Any],
        meta: dict[str, Any],
        row: Any = None,
        on_node: Callable[[PlanNode, float, float, str], None] | None = None,
        *,
        on_io: Callable[[PlanNode, dict[str, Any], Any, BaseException | None], None] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the plan; returns (outputs, results by node id). Raises NodeFailed on the first failure.

        `on_node(node, start, end, status)` hears of every node that finished (its span);
        `on_io(node, inputs, result, error)` of every node that finished (`result` SKIPPED when it was
        skipped) or failed, with the values its inputs resolved to (`--record io`).
        `on_text` receives the answer's text as it streams (see the module docstring): the deltas of the
        reply of node `stream_index`, which make up that node's `text` port (its `answer` port is read
        from that text); never called when the plan has no such node, or when that node is skipped."""
        run = _Run(self, sink, inputs, meta, row, on_node, on_io,
                   on_text if self.stream_index is not None else None)
        return await run.go()

    async def _call(self, c: _Compiled, values: dict[str, Any], sink: CallSink, meta: dict[str, Any], row: Any,
                    on_text: Callable[[str], None] | None = None):
        node = c.node
        binding = self.models[node.params["model"]]
        ctx = CallContext(node, binding, sink.supports_n(binding), {**meta, "node_id": node.id}, self.models)
        try:
            if c.rule.drive is not None:  # an op that decides between requests (the decided-vote cut-off)
                async def send(requests: list[Request]) -> list[Completion]:
                    return list(await asyncio.gather(*(sink.complete(r, c.priority, row) for r in requests)))

                return await c.rule.drive(node, values, ctx, send)
            requests = c.rule.build(node, values, ctx)
            if on_text is not None and len(requests) == 1 and requests[0].n == 1:
                requests[0].on_text = on_text
            if len(requests) == 1:
                completions = [await sink.complete(requests[0], c.priority, row)]
            else:
                completions = list(await asyncio.gather(*(sink.complete(r, c.priority, row) for r in requests)))
            return c.rule.finish(node, values, completions)
        except OutputError as exc:
            raise exc.naming(binding) from None


class _Run:
    """One execution of a plan: the ready-set state machine. An object, not closures over `execute`'s
    locals: closures that call each other form reference cycles, which only the garbage collector
    frees — ~50 objects per run, and its passes over them stalled a busy server every few hundred ms.
    A finished run's state is freed by reference counting alone."""

    __slots__ = ("ex", "sink", "inputs", "meta", "row", "on_node", "on_io", "streaming", "results", "pending",
                 "left", "done", "tasks", "started", "ready", "draining", "given")

    def __init__(self, ex: Executor, sink: CallSink, inputs: dict[str, Any], meta: dict[str, Any], row: Any,
                 on_node: Callable[[PlanNode, float, float, str], None] | None,
                 on_io: Callable[[PlanNode, dict[str, Any], Any, BaseException | None], None] | None,
                 streaming: Callable[[str], None] | None) -> None:
        self.ex, self.sink, self.inputs, self.meta, self.row = ex, sink, inputs, meta, row
        self.on_node, self.on_io, self.streaming = on_node, on_io, streaming
        self.results: dict[str, Any] = {}
        self.pending = [c.indegree for c in ex.nodes]
        self.left = len(ex.nodes)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tasks: set[asyncio.Task] = set()
        self.started: dict[int, float] = {}
        # NOTE: [Iterative start] inline nodes (fn, skipped) finish at once and make their users ready;
        # a stack drained in one loop replaces start -> finish -> start recursion, which a chain of
        # 1,000 refine rounds would take past Python's recursion limit. Order is the same depth-first.
        self.ready: list[int] = []
        self.draining = False
        self.given: dict[int, dict[str, Any]] = {}  # with on_io: the inputs of the nodes still running

    async def go(self) -> tuple[dict[str, Any], dict[str, Any]]:
        ex = self.ex
        if not ex.nodes:
            self.done.set_result(None)
        for i in ex.roots:
            self.start(i)
        try:
            await self.done
        finally:
            for t in self.tasks:
                t.cancel()
        outputs = {k: f(self.results, self.inputs) for k, f in ex.outputs}
        return outputs, self.results

    def finish(self, i: int, value: Any) -> None:
        c = self.ex.nodes[i]
        self.results[c.node.id] = value
        if self.on_node is not None:
            self.on_node(c.node, self.started.get(i, 0.0), time.time(), "skipped" if value is SKIPPED else "ok")
        if self.on_io is not None:
            self.on_io(c.node, self.given.pop(i, {}), value, None)
        self.left -= 1
        pending = self.pending
        now = []
        for j in c.dependents:
            pending[j] -= 1
            if pending[j] == 0:
                now.append(j)
        self.ready.extend(reversed(now))
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)
        self.drain()

    def drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        try:
            ready = self.ready
            while ready:
                self.start(ready.pop())
        finally:
            self.draining = False

    def fail(self, i: int, exc: BaseException) -> None:
        if self.on_io is not None:
            self.on_io(self.ex.nodes[i].node, self.given.pop(i, {}), None, exc)
        if not self.done.done():
            node = self.ex.nodes[i].node
            self.done.set_exception(exc if isinstance(exc, NodeFailed) else NodeFailed(node.id, node.source, exc))

    def start(self, i: int) -> None:
        if self.done.done():
            return
        ex = self.ex
        c = ex.nodes[i]
        results, inputs = self.results, self.inputs
        if self.on_node is not None:
            self.started[i] = time.time()
        try:
            values = {port: f(results, inputs) for port, f in c.inputs}
            if self.on_io is not None:
                self.given[i] = values
            if not all(g(results, inputs) for g in c.guards):
                self.finish(i, SKIPPED)
                return
        except Skip:
            self.finish(i, SKIPPED)
            return
        except Exception as exc:  # a bad template or expression names its node
            self.fail(i, exc)
            return
        if c.fn is not None:
            try:
                out = c.fn(c.node, values)
            except Exception as exc:
                self.fail(i, exc)
                return
            self.finish(i, out)
            return
        meta, row = self.meta, self.row
        if c.runner is not None:
            coro = c.runner(values, self.sink, meta, row)
        else:
            up = _answers(c.reads, results) if c.reads else None
            coro = ex._call(c, values, self.sink, {**meta, "upstream": up} if up else meta, row,
                            self.streaming if i == ex.stream_index else None)
        self.tasks.add(asyncio.get_running_loop().create_task(self._node(i, coro)))

    async def _node(self, i: int, coro: Any) -> None:
        """A node's call, in a task of its own. Its result is taken in that task as the call ends:
        a done callback would take it one loop turn later, and a one-call request pay it twice
        (the callback's turn, then the run's)."""
        try:
            value = await coro
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # an exception group from a node's own tasks included
            self.fail(i, exc)
            return
        finally:
            self.tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
        try:
            self.finish(i, value)
        except Exception as exc:  # a listener (on_node, on_io) failed: the run fails, it does not hang
            self.fail(i, exc)


def _answers(reads: tuple[str, ...], results: dict[str, Any]) -> dict[str, Any]:
    """node id -> the `answer` (or `answers`) of each node read that has one."""
    out = {}
    for d in reads:
        value = results.get(d)
        if isinstance(value, dict):
            answer = value.get("answer", value.get("answers"))
            if answer is not None or "answer" in value:
                out[d] = answer
    return out


class MapRunner:
    """A `map` node: its sub-plan (see `compiler/lower.py`) once per item of `over`, all at once.

    Items get distinct example ids (`ID[i]`), so sampled providers (the sim) draw independently per
    item; results keep the order of the items.
    """

    def __init__(self, node: PlanNode, parent: Executor) -> None:
        self.node = node
        self.executor = Executor(node.subplan, parent.scheduler, operators=parent.operators, models=parent.models,
                                 max_fanout=parent.max_fanout)

    async def __call__(self, values: dict[str, Any], sink: CallSink, meta: dict[str, Any], row: Any) -> dict:
        items = values.get("over")
        if not isinstance(items, list):
            raise TypeError(f"map over a {type(items).__name__}, expected a list")
        if len(items) > self.executor.max_fanout:
            raise ValueError(f"map over {len(items):,} items exceeds the fan-out limit of {self.executor.max_fanout:,} "
                             "(raise it with --size-limit fanout=N)")
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

"""Running ``python`` plan nodes: the runner this module registers with the executor (``xcs/runners.py``).

The operator is imported and constructed once per executor — at run time, never when validating —
from ``call`` and ``init`` (or taken live from what ``jit`` traced); each run validates the node's
input and output against the operator's models. While its forward runs, the run's session (runtime,
meta, usage) is current, so operators it calls share the run's gates and usage.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ember_compiler.errors import EmberError
from ember_compiler.ops.operators import resolve_operator, spec_folder
from ember_compiler.sdk import engine
from ember_compiler.xcs.expr import Ref, walk
from ember_compiler.xcs.plan import PlanNode
from ember_compiler.xcs.runners import register_runner


def _construct(cls: type, init: dict[str, Any], node: PlanNode) -> Any:
    kwargs = dict(init)
    args = kwargs.pop("_args", [])
    try:
        return cls(*args, **kwargs)
    except Exception as exc:
        raise EmberError(f"node '{node.id}' ({node.source}): cannot construct {node.params['call']} with init "
                         f"{init}: {type(exc).__name__}: {exc}") from exc


def _check_ports(node: PlanNode, plan: Any, ports: tuple[str, ...]) -> None:
    """References to ports the operator does not declare fail before anything runs."""
    exprs = [e for n in plan.nodes for e in (*n.inputs.values(), *n.when)] + list(plan.outputs.values())
    for expr in exprs:
        for e in walk(expr):
            if isinstance(e, Ref) and e.node == node.id and e.port not in ports:
                raise EmberError(f"node '{node.id}' ({node.source}): operator {node.params['call']} has no output "
                                 f"'{e.port}' (outputs: {', '.join(ports) or 'none'})")


def python_runner(node: PlanNode, executor: Any):
    op = executor.operators.get(node.id)
    if op is None:
        cls = resolve_operator(node.params["call"], near=spec_folder(node.source))
        op = _construct(cls, node.params.get("init") or {}, node)
    _check_ports(node, executor.plan, tuple(op.Output.model_fields))
    prefix = node.id.replace("/", "_") + "_"

    async def run(values: dict[str, Any], sink: Any, meta: dict[str, Any], row: Any) -> dict[str, Any]:
        outer = engine.CURRENT.get()
        scheduler = outer.scheduler if outer is not None else executor.scheduler
        session = engine.Session(loop=asyncio.get_running_loop(), sink=sink, meta=dict(meta), row=row,
                                 scheduler=scheduler, prefix=prefix)
        token = engine.CURRENT.set(session)
        try:
            out = await op.ainvoke(values)
        finally:
            engine.CURRENT.reset(token)
        return out.model_dump()

    return run


register_runner("python", python_runner)

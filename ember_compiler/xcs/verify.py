"""``verify(plan)``: the plan is well formed, or a ``PlanError`` says which node is not and why.

Checked: node ids are unique; every node reads only nodes defined before it (and inputs the plan
declares); every op is known (``ember_compiler.ops.registry``) with its kind; the params its op
requires are there, and an ``llm`` node's ``model`` is one of the plan's bindings; a reference to a
port names one the node declares; the outputs read defined nodes. Sub-plans (``map`` nodes) are
verified too, with the bindings of the plan that holds them.

It runs in ``Plan.from_json``, after every pass and before execution, so a bad plan file or a buggy
pass is reported here, not as a ``KeyError`` deep in the executor.
"""

from __future__ import annotations

from typing import Any

from ..errors import EmberError
from ..ops.registry import plan_op
from .expr import Input, NodeRef, Ref, walk


class PlanError(EmberError):
    """A plan that is not well formed (see ``verify``)."""


def verify(plan: Any, models: dict[str, Any] | None = None) -> None:
    """Raise ``PlanError`` naming the first problem found in ``plan`` (None returned when it is fine)."""
    models = plan.models if models is None else models
    defined: dict[str, Any] = {}
    for node in plan.nodes:
        where = f"plan '{plan.name}': node '{node.id}'" + (f" ({node.source})" if node.source else "")
        if node.id in defined:
            raise PlanError(f"{where}: duplicate node id")
        _check_op(node, where, models)
        for expr in (*node.inputs.values(), *node.when):
            _check_reads(expr, defined, plan.inputs, where)
        if node.subplan is not None:
            verify(node.subplan, models)
        defined[node.id] = node
    for name, expr in plan.outputs.items():
        _check_reads(expr, defined, plan.inputs, f"plan '{plan.name}': output '{name}'")


def _check_op(node: Any, where: str, models: dict[str, Any]) -> None:
    op = plan_op(node.op)
    if op is None:
        raise PlanError(f"{where}: unknown op '{node.op}'")
    if op.kind != node.kind:
        raise PlanError(f"{where}: op '{node.op}' is a {op.kind} op, not {node.kind}")
    missing = [p for p in op.params if p not in node.params]
    if missing:
        raise PlanError(f"{where}: op '{node.op}' needs param '{missing[0]}'")
    if node.kind == "llm" and node.params["model"] not in models:
        raise PlanError(f"{where}: unknown model binding '{node.params['model']}'")
    if node.kind == "map" and node.subplan is None:
        raise PlanError(f"{where}: a map node needs its sub-plan (params.plan)")


def _check_reads(expr: Any, defined: dict[str, Any], inputs: dict[str, Any], where: str) -> None:
    for e in walk(expr):
        if isinstance(e, Input):
            if e.name not in inputs:
                raise PlanError(f"{where}: reads unknown input '{e.name}'")
        elif isinstance(e, Ref | NodeRef):
            source = defined.get(e.node)
            if source is None:
                raise PlanError(f"{where}: reads node '{e.node}' before it is defined (or it does not exist)")
            if isinstance(e, Ref) and source.outputs and e.port not in source.outputs:
                raise PlanError(f"{where}: node '{e.node}' has no port '{e.port}' "
                                f"(ports: {', '.join(source.outputs)})")

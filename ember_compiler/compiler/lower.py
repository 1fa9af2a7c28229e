"""Lowering: a validated ``Spec`` to an xcs ``Plan`` (DESIGN §5).

Every plan node gets ``source="FILE:LINE:COL"`` of its spec node, ``when`` (the guards of its spec
node and of enclosing network nodes) and ``outputs`` (its plan op's ports). Node ids are spec ids;
nodes generated for one spec node are ``ID/part``; a network node's inner nodes are ``ID/inner``.

Each op lowers itself (``OpDef.lower`` in ``ember_compiler/ops/<op>.py``) through a ``_Ctx``; the
structural ops call back here: ``network`` inlines its sub-spec under ``ID/`` and packs its outputs
into one ``fn pack`` node ``ID``; ``map`` holds its sub-plan (lowered under ``ID/``, the inline node
being ``ID/node``) in one ``map`` node, with the item as input ``#item`` and every value it reads from
outside as an input ``#K`` bound by the node's ``bind`` input.

Template ops (generate, ensemble, judge, select, verify) may bind template variables with
``with:``; a bound name shadows inputs, params and nodes of the same name.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ember_compiler.compiler.exprs import (
    ITEM,
    Scope,
    capture_free,
    lower_value,
    lower_when,
    plain,
    static,
    static_tree,
    variables_map,
)
from ember_compiler.errors import EmberError
from ember_compiler.ops.registry import OPS, plan_op
from ember_compiler.spec.loader import subspec_path
from ember_compiler.templates import variables
from ember_compiler.xcs.expr import DictOf, Expr, Guard, Input, ListOf, Lit, NodeRef, Ref
from ember_compiler.xcs.plan import NodeKind, Plan, PlanNode

LoadSpec = Callable[[str], tuple[Any, Any]]


@dataclass(frozen=True)
class _Ctx:
    """One spec node being lowered: what its plan nodes share (the ``LowerCtx`` of ``ops/base.py``)."""

    id: str  # namespaced id of the spec node
    op: str
    scope: Scope
    source: str
    guards: tuple[Any, ...]
    lowerer: _Lowerer
    doc: Any

    def make(self, kind: str, op: str, inputs: dict[str, Any], params: dict[str, Any], *,
             part: str | None = None, outputs: Iterable[str] | None = None,
             guards: tuple[Any, ...] = (), subplan: Plan | None = None) -> PlanNode:
        if outputs is None:
            ports = plan_op(op).ports
            outputs = OPS[self.op].ports if ports is None else ports
        return PlanNode(id=self.part(part) if part else self.id, kind=kind, op=op, inputs=inputs, params=params,
                        outputs=tuple(outputs), when=self.guards + guards, source=self.source, subplan=subplan)

    def part(self, name: str) -> str:
        return f"{self.id}/{name}"

    def value(self, value: Any) -> Expr:
        return lower_value(value, self.scope)

    def model(self, name: str) -> str:
        return self.scope.models.get(name, name)

    def static(self, value: Any) -> Any:
        return static(value, self.scope)

    def static_tree(self, value: Any) -> Any:
        return static_tree(value, self.scope)

    def plain(self, value: Any) -> Any:
        return plain(value)

    def ref(self, node: str, port: str) -> Ref:
        return Ref(node, port)

    def node_ref(self, node: str) -> NodeRef:
        return NodeRef(node)

    def list(self, items: list[Expr]) -> ListOf:
        return ListOf(tuple(items))

    def guard(self, source: str, variables: dict[str, Expr]) -> Guard:
        return Guard(source, tuple(variables.items()))

    def template_vars(self, node: Any) -> DictOf:
        names: set[str] = set()
        for field in OPS[self.op].template_fields:
            source = getattr(node, field, None)
            if source is not None:
                names |= variables(source)
        bound = getattr(node, "with_", None) or {}  # `with:` names shadow inputs, params and nodes
        found = variables_map(names - bound.keys(), self.scope)
        found |= {name: self.value(bound[name]) for name in names & bound.keys()}
        return DictOf(tuple(sorted(found.items())))

    def network(self, node: Any) -> list[PlanNode]:
        return self.lowerer.network(self.doc, self, node)

    def map(self, node: Any) -> list[PlanNode]:
        return self.lowerer.map(self.doc, self, node)


class _Lowerer:
    def __init__(self, load_spec: LoadSpec) -> None:
        self.load_spec = load_spec
        self.nodes: list[PlanNode] = []
        self.models: dict[str, dict[str, Any]] = {}

    def level(self, doc: Any, spec: Any, scope: Scope) -> None:
        for name, binding in spec.models.items():
            data = {k: static(v, scope) for k, v in binding.model_dump(exclude_none=True).items()}
            if data["provider"] == "local" and "model" in data:  # a GGUF path, relative to the spec
                data["model"] = str(subspec_path(doc, data["model"]))
            self.models[scope.models[name]] = data
        # NOTE: a node's source is where its key is (`  candidates:`), as editors and the docs show it
        locate = getattr(doc, "key_position", doc.position)
        for node_id, node in spec.nodes.items():
            line, col = locate(("nodes", node_id))
            ctx = _Ctx(id=scope.node_id(node_id), op=node.op, scope=scope,
                       source=f"{doc.path}:{line}:{col}",
                       guards=scope.guards + lower_when(node.when, scope), lowerer=self, doc=doc)
            self.nodes.extend(OPS[node.op].lower(ctx, node))

    def network(self, doc: Any, ctx: _Ctx, node: Any) -> list[PlanNode]:
        sub_doc, sub = self.load_spec(subspec_path(doc, node.spec))
        prefix = ctx.id + "/"
        inputs = {
            name: ctx.value(node.with_[name]) if name in node.with_ else Lit(plain(decl.default))
            for name, decl in sub.input_decls().items()
        }
        inner = Scope(prefix=prefix, inputs=inputs, params=plain(sub.params),
                      models={name: prefix + name for name in sub.models},
                      nodes=frozenset(sub.nodes), guards=ctx.guards)
        self.level(sub_doc, sub, inner)
        values = DictOf(tuple((name, lower_value(expr, inner)) for name, expr in sub.outputs.items()))
        return [ctx.make("fn", "pack", {"values": values}, {}, outputs=sub.outputs)]

    def map(self, doc: Any, ctx: _Ctx, node: Any) -> list[PlanNode]:
        """One ``map`` plan node holding the sub-plan run per item (see the module docstring)."""
        sub = _Lowerer(self.load_spec)
        sub.models = self.models  # bindings are shared with the outer plan (the runtime prepares them)
        item = Input(ITEM)
        prefix = ctx.id + "/"
        if node.spec is not None:
            sub_doc, spec = self.load_spec(subspec_path(doc, node.spec))
            inputs = {
                name: item if name == node.as_ else ctx.value(node.with_[name]) if name in node.with_
                else Lit(plain(decl.default))
                for name, decl in spec.input_decls().items()
            }
            scope = Scope(prefix=prefix, inputs=inputs, params=plain(spec.params),
                          models={name: prefix + name for name in spec.models}, nodes=frozenset(spec.nodes))
            sub.level(sub_doc, spec, scope)
            result: Expr = DictOf(tuple((name, lower_value(expr, scope)) for name, expr in spec.outputs.items()))
        else:
            inner = node.node
            scope = replace(ctx.scope, inputs={**ctx.scope.inputs, node.as_: item}, guards=())
            inner_ctx = _Ctx(id=prefix + "node", op=inner.op, scope=scope, source=ctx.source,
                             guards=lower_when(inner.when, scope), lowerer=sub, doc=doc)
            sub.nodes.extend(OPS[inner.op].lower(inner_ctx, inner))
            result = NodeRef(inner_ctx.id)
        nodes, result, bind = capture_free(sub.nodes, result, keep=ITEM)
        subplan = Plan(name=ctx.id, nodes=toposort(nodes), inputs={name: {} for name in (ITEM, *bind)},
                       outputs={"result": result}, models={})
        inputs = {"over": ctx.value(node.over), "bind": DictOf(tuple(bind.items()))}
        return [ctx.make(NodeKind.MAP, "map", inputs, {"as": node.as_}, subplan=subplan)]


def lower(doc: Any, spec: Any, *, load_spec: LoadSpec) -> Plan:
    """Lower a validated spec to a plan (no passes applied).

    Args:
        doc: the loaded document (``.path``, ``.position(loc) -> (line, col)``; ``.key_position``
            is preferred when it has one).
        spec: the validated spec of ``doc``.
        load_spec: loads a sub-spec of a ``network`` or ``map`` node (``compiler.check.load_spec``).

    Raises:
        EmberError: a reference, a cycle or a static field the checker should have rejected.
    """
    decls = spec.input_decls()
    scope = Scope(prefix="", inputs={name: Input(name) for name in decls}, params=plain(spec.params),
                  models={name: name for name in spec.models}, nodes=frozenset(spec.nodes))
    lowerer = _Lowerer(load_spec)
    lowerer.level(doc, spec, scope)
    return Plan(
        name=spec.name,
        nodes=toposort(lowerer.nodes),
        inputs={
            name: {"type": d.type, "default": plain(d.default), "required": "default" not in d.model_fields_set}
            for name, d in decls.items()
        },
        outputs={name: lower_value(expr, scope) for name, expr in spec.outputs.items()},
        models=lowerer.models,
        source=str(doc.path),
        budget=spec.budget.model_dump(exclude_none=True) or None if spec.budget is not None else None,
    )


def toposort(nodes: list[PlanNode]) -> tuple[PlanNode, ...]:
    """Dependencies first; among ready nodes the earliest in ``nodes`` goes first (stable)."""
    index = {n.id: i for i, n in enumerate(nodes)}
    if len(index) != len(nodes):
        raise EmberError("duplicate plan node ids")
    waiting: dict[int, int] = {}
    users: dict[int, list[int]] = {i: [] for i in range(len(nodes))}
    for i, node in enumerate(nodes):
        deps = node.deps()
        if unknown := sorted(deps - index.keys()):
            raise EmberError(f"plan node '{node.id}' reads unknown node(s): {', '.join(unknown)}")
        waiting[i] = len(deps)
        for dep in deps:
            users[index[dep]].append(i)
    ready = [i for i, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[PlanNode] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for user in users[i]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        stuck = sorted(n.id for i, n in enumerate(nodes) if waiting[i] > 0)
        raise EmberError(f"cycle among plan nodes: {', '.join(stuck)}")
    return tuple(order)

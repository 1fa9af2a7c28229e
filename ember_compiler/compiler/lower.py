"""Lowering: a validated ``Spec`` to an xcs ``Plan`` (DESIGN §5).

Every plan node gets ``source="FILE:LINE:COL"`` of its spec node, ``when`` (the guards of its spec
node and of enclosing network nodes) and ``outputs`` (the op's ports). Node ids are spec ids; nodes
generated for one spec node are ``ID/part``; a network node's inner nodes are ``ID/inner``.

Per op (the runtime implements exactly these node forms):

=============  ===========================================================================
``generate``   ``llm generate`` {vars}; params model, n=1, prompt, system?, extract?
``ensemble``   ``llm ensemble`` {vars}; params model, n, prompt, system?, extract?. With
               ``models:`` one such node ``ID/m`` per entry (``ID/m_2`` for repeats), then
               ``fn concat`` ``ID`` {parts: $list of $node}
``vote``       ``fn vote`` {candidates}; params normalize, extract?
``judge``      ``llm judge`` / ``llm select`` {question, candidates, vars?}; params model,
``select``     prompt? (vars only with a custom prompt)
``verify``     ``llm verify`` {question, candidates, vars?}; params model, prompt?, then, fallback
``refine``     rounds k=1..R: ``llm refine_prove`` ``ID/prove{k}`` and ``llm refine_check``
               ``ID/check{k}``; round k>1 reads the previous proof and feedback and is guarded by
               ``not accepted``; then ``fn refine_result`` ``ID`` {proofs, checks}
``first``      ``fn first`` {candidates}
``network``    the sub-spec's nodes under ``ID/``, then ``fn pack`` ``ID`` {values: $dict}
``python``     ``python operator`` {one input per ``with:`` key}; params call, init (static:
               literals and ``${params.X}``); no ports listed (the operator declares them and is
               imported only when running)
``map``        ``map map`` {over, bind: $dict}; params as, plan: {nodes, result}. The sub-plan is
               lowered under ``ID/`` (the inline node is ``ID/node``); the item is ``{"$in": "#item"}``
               and every value it reads from outside becomes ``{"$in": "#K"}`` bound by ``bind``
=============  ===========================================================================

Template ops (generate, ensemble, judge, select, verify) may bind template variables with
``with:``; a bound name shadows inputs, params and nodes of the same name.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ember_compiler.compiler.check_rules import subspec_path
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
from ember_compiler.ops.catalog import OPS
from ember_compiler.spec import model as m
from ember_compiler.templates import variables
from ember_compiler.xcs.plan import Plan, PlanNode, lit, ref

LoadSpec = Callable[[str], tuple[Any, m.Spec]]


@dataclass(frozen=True)
class _Ctx:
    """One spec node being lowered: everything its plan nodes share."""

    id: str  # namespaced id of the spec node
    op: str
    scope: Scope
    source: str
    guards: tuple[Any, ...]

    def make(self, kind: str, op: str, inputs: dict[str, Any], params: dict[str, Any], *,
             part: str | None = None, outputs: Iterable[str] | None = None,
             guards: tuple[Any, ...] = ()) -> PlanNode:
        return PlanNode(
            id=self.part(part) if part else self.id,
            kind=kind,
            op=op,
            inputs=inputs,
            params=params,
            outputs=tuple(OPS[self.op].ports if outputs is None else outputs),
            when=self.guards + guards,
            source=self.source,
        )

    def part(self, name: str) -> str:
        return f"{self.id}/{name}"

    def value(self, value: Any) -> dict[str, Any]:
        return lower_value(value, self.scope)

    def model(self, name: str) -> str:
        return self.scope.models.get(name, name)

    def template_vars(self, node: m._Node) -> dict[str, Any]:
        names: set[str] = set()
        for field in OPS[self.op].template_fields:
            source = getattr(node, field, None)
            if source is not None:
                names |= variables(source)
        bound = getattr(node, "with_", None) or {}  # `with:` names shadow inputs, params and nodes
        found = variables_map(names - bound.keys(), self.scope)
        found |= {name: self.value(bound[name]) for name in names & bound.keys()}
        return {"$dict": dict(sorted(found.items()))}


def _optional(node: m._Node, *fields: str) -> dict[str, Any]:
    return {f: plain(getattr(node, f)) for f in fields if getattr(node, f) is not None}


def _generate(ctx: _Ctx, node: m.GenerateNode) -> list[PlanNode]:
    params = {"model": ctx.model(node.model), "n": 1, "prompt": plain(node.prompt),
              **_optional(node, "system", "extract")}
    return [ctx.make("llm", "generate", {"vars": ctx.template_vars(node)}, params)]


def _part_names(models: list[str]) -> list[str]:
    """``[a, b, a]`` -> ``[a, b, a_2]``, never reusing a name already taken."""
    taken: set[str] = set()
    names = []
    for name in models:
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{name}_{k}"
        taken.add(candidate)
        names.append(candidate)
    return names


def _ensemble(ctx: _Ctx, node: m.EnsembleNode) -> list[PlanNode]:
    base = {"n": int(static(node.n, ctx.scope)), "prompt": plain(node.prompt),
            **_optional(node, "system", "extract")}
    inputs = {"vars": ctx.template_vars(node)}
    if not node.models:
        return [ctx.make("llm", "ensemble", inputs, {"model": ctx.model(node.model), **base})]
    parts = [
        ctx.make("llm", "ensemble", inputs, {"model": ctx.model(model), **base}, part=name)
        for name, model in zip(_part_names(node.models), node.models, strict=True)
    ]
    concat = ctx.make("fn", "concat", {"parts": {"$list": [{"$node": p.id} for p in parts]}}, {})
    return [*parts, concat]


def _vote(ctx: _Ctx, node: m.VoteNode) -> list[PlanNode]:
    params = {"normalize": node.normalize, **_optional(node, "extract")}
    return [ctx.make("fn", "vote", {"candidates": ctx.value(node.candidates)}, params)]


def _judge_like(ctx: _Ctx, node: m.JudgeNode | m.SelectNode | m.VerifyNode) -> list[PlanNode]:
    inputs = {"question": ctx.value(node.question), "candidates": ctx.value(node.candidates)}
    params: dict[str, Any] = {"model": ctx.model(node.model)}
    if node.prompt is not None:
        inputs["vars"] = ctx.template_vars(node)
        params["prompt"] = plain(node.prompt)
    if isinstance(node, m.VerifyNode):
        params |= {"then": node.then, "fallback": node.fallback}
    return [ctx.make("llm", node.op, inputs, params)]


def _refine(ctx: _Ctx, node: m.RefineNode) -> list[PlanNode]:
    rounds = int(static(node.max_rounds, ctx.scope))
    question = ctx.value(node.question)
    prover, verifier = ctx.model(node.prover), ctx.model(node.verifier)
    out: list[PlanNode] = []
    for k in range(1, rounds + 1):
        inputs = {"question": question}
        guards: tuple[Any, ...] = ()
        if k > 1:
            prev_prove, prev_check = ctx.part(f"prove{k - 1}"), ctx.part(f"check{k - 1}")
            inputs |= {"previous": ref(prev_prove, "text"), "feedback": ref(prev_check, "text")}
            guards = ({"$expr": "not accepted", "vars": {"accepted": ref(prev_check, "accepted")}},)
        out.append(ctx.make("llm", "refine_prove", inputs, {"model": prover, "round": k},
                            part=f"prove{k}", outputs=("text", "answer", "usage"), guards=guards))
        check_inputs = {"question": question, "candidate": ref(ctx.part(f"prove{k}"), "answer")}
        out.append(ctx.make("llm", "refine_check", check_inputs, {"model": verifier, "round": k},
                            part=f"check{k}", outputs=("accepted", "text")))
    proofs = [{"$node": ctx.part(f"prove{k}")} for k in range(1, rounds + 1)]
    checks = [{"$node": ctx.part(f"check{k}")} for k in range(1, rounds + 1)]
    out.append(ctx.make("fn", "refine_result", {"proofs": {"$list": proofs}, "checks": {"$list": checks}}, {}))
    return out


def _first(ctx: _Ctx, node: m.FirstNode) -> list[PlanNode]:
    return [ctx.make("fn", "first", {"candidates": ctx.value(node.candidates)}, {})]


def _python(ctx: _Ctx, node: m.PythonNode) -> list[PlanNode]:
    inputs = {name: ctx.value(value) for name, value in node.with_.items()}
    params = {"call": node.call, "init": static_tree(node.init, ctx.scope)}
    return [ctx.make("python", "operator", inputs, params, outputs=())]


RULES: dict[str, Callable[[_Ctx, Any], list[PlanNode]]] = {
    "generate": _generate,
    "ensemble": _ensemble,
    "vote": _vote,
    "judge": _judge_like,
    "select": _judge_like,
    "verify": _judge_like,
    "refine": _refine,
    "first": _first,
    "python": _python,
}


class _Lowerer:
    def __init__(self, load_spec: LoadSpec) -> None:
        self.load_spec = load_spec
        self.nodes: list[PlanNode] = []
        self.models: dict[str, dict[str, Any]] = {}

    def level(self, doc: Any, spec: m.Spec, scope: Scope) -> None:
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
                       guards=scope.guards + lower_when(node.when, scope))
            self.one(doc, ctx, node)

    def one(self, doc: Any, ctx: _Ctx, node: Any) -> None:
        if isinstance(node, m.NetworkNode):
            self.network(doc, ctx, node)
        elif isinstance(node, m.MapNode):
            self.map(doc, ctx, node)
        else:
            self.nodes.extend(RULES[node.op](ctx, node))

    def network(self, doc: Any, ctx: _Ctx, node: m.NetworkNode) -> None:
        sub_doc, sub = self.load_spec(subspec_path(doc, node.spec))
        prefix = ctx.id + "/"
        inputs = {
            name: ctx.value(node.with_[name]) if name in node.with_ else {"$lit": plain(decl.default)}
            for name, decl in sub.input_decls().items()
        }
        inner = Scope(prefix=prefix, inputs=inputs, params=plain(sub.params),
                      models={name: prefix + name for name in sub.models},
                      nodes=frozenset(sub.nodes), guards=ctx.guards)
        self.level(sub_doc, sub, inner)
        values = {name: lower_value(expr, inner) for name, expr in sub.outputs.items()}
        self.nodes.append(ctx.make("fn", "pack", {"values": {"$dict": values}}, {}, outputs=sub.outputs))


    def map(self, doc: Any, ctx: _Ctx, node: m.MapNode) -> None:
        """One ``map`` plan node holding the sub-plan run per item (see the module docstring)."""
        sub = _Lowerer(self.load_spec)
        sub.models = self.models  # bindings are shared with the outer plan (the runtime prepares them)
        item = {"$in": ITEM}
        prefix = ctx.id + "/"
        if node.spec is not None:
            sub_doc, spec = self.load_spec(subspec_path(doc, node.spec))
            inputs = {
                name: item if name == node.as_ else ctx.value(node.with_[name]) if name in node.with_
                else lit(plain(decl.default))
                for name, decl in spec.input_decls().items()
            }
            scope = Scope(prefix=prefix, inputs=inputs, params=plain(spec.params),
                          models={name: prefix + name for name in spec.models}, nodes=frozenset(spec.nodes))
            sub.level(sub_doc, spec, scope)
            result: Any = {"$dict": {name: lower_value(expr, scope) for name, expr in spec.outputs.items()}}
        else:
            inner = node.node
            scope = replace(ctx.scope, inputs={**ctx.scope.inputs, node.as_: item}, guards=())
            inner_ctx = _Ctx(id=prefix + "node", op=inner.op, scope=scope, source=ctx.source,
                             guards=lower_when(inner.when, scope))
            sub.one(doc, inner_ctx, inner)
            result = {"$node": inner_ctx.id}
        nodes, result, bind = capture_free(sub.nodes, result, keep=ITEM)
        body = {"nodes": [n.to_json() for n in toposort(nodes)], "result": result}
        inputs = {"over": ctx.value(node.over), "bind": {"$dict": bind}}
        self.nodes.append(ctx.make("map", "map", inputs, {"as": node.as_, "plan": body}))


def lower(doc: Any, spec: m.Spec, *, load_spec: LoadSpec | None = None) -> Plan:
    """Lower a validated spec to a plan (no passes applied).

    Args:
        doc: the loaded document (``.path``, ``.position(loc) -> (line, col)``; ``.key_position``
            is preferred when it has one).
        spec: the validated spec of ``doc``.
        load_spec: loads a sub-spec of a ``network`` node, given its path relative to ``doc``;
            defaults to ``ember_compiler.compiler.check.load_spec``.

    Raises:
        EmberError: a reference, a cycle or a static field the checker should have rejected.
    """
    if load_spec is None:
        from ember_compiler.compiler.check import load_spec
    decls = spec.input_decls()
    scope = Scope(prefix="", inputs={name: {"$in": name} for name in decls}, params=plain(spec.params),
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

"""Pass ``dedupe``: identical deterministic model calls anywhere in the plan are made once.

Two billable nodes (their op's ``effects.billable``: model calls) are identical when they have the
same op, parameters (model binding, prompt, system, n, ...), inputs and guards — so they send the
same requests. A ``sampled`` op's nodes are merged only when *deterministic*: their binding sets
``temperature: 0`` and is not the ``sim`` (whose draws are seeded by node id, a model of sampling
noise even at temperature 0). The later node is removed and its readers read the
first one. Reads are rewritten in order, so a chain of identical calls on identical inputs collapses too.
"""

from __future__ import annotations

from ember_compiler.ops.registry import plan_op
from ember_compiler.xcs.expr import Expr, NodeRef, Ref, rebuild
from ember_compiler.xcs.plan import Plan, PlanNode, canonical_json


def _rename(expr: Expr, to: dict[str, str]) -> Expr:
    def one(e: Expr) -> Expr | None:
        if isinstance(e, Ref) and e.node in to:
            return Ref(to[e.node], e.port)
        if isinstance(e, NodeRef) and e.node in to:
            return NodeRef(to[e.node])
        return None

    return rebuild(expr, one)


def _mergeable(plan: Plan, node: PlanNode) -> bool:
    effects = plan_op(node.op).effects
    if not effects.billable or node.kind != "llm":
        return False
    binding = plan.models.get(node.params.get("model", ""), {})
    return not effects.sampled or (binding.get("provider") != "sim" and binding.get("temperature") == 0)


def dedupe(plan: Plan) -> tuple[Plan, bool | str]:
    """Remove later duplicates of deterministic model calls; their readers read the first one.

    Requires: unique ids, topological order.
    Ensures: every remaining node keeps its place; each removed node had an identical deterministic
    twin before it; the outputs read the same values for a deterministic provider; ``changed`` is
    False (and the same plan returned) when nothing was removed.
    """
    to: dict[str, str] = {}
    seen: dict[str, str] = {}  # canonical form -> first node id
    nodes: list[PlanNode] = []
    for node in plan.nodes:
        if to:
            node = node.replace(inputs={k: _rename(e, to) for k, e in node.inputs.items()},
                                when=tuple(_rename(g, to) for g in node.when))
        if _mergeable(plan, node):
            binding = plan.models[node.params["model"]]
            form = canonical_json([node.op, {**node.params, "model": binding},
                                   {k: e.to_json() for k, e in node.inputs.items()}, [g.to_json() for g in node.when]])
            first = seen.get(form)
            if first is not None:
                to[node.id] = first
                continue
            seen[form] = node.id
        nodes.append(node)
    if not to:
        return plan, False
    outputs = {k: _rename(v, to) for k, v in plan.outputs.items()}
    pairs = ", ".join(f"{b} → {a}" for b, a in to.items())
    return plan.replace(nodes=tuple(nodes), outputs=outputs), f"merged {len(to)} identical deterministic " \
        f"call{'s' if len(to) > 1 else ''} ({pairs})"

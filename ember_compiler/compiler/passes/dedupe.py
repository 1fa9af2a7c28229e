"""Pass ``dedupe``: identical deterministic model calls anywhere in the plan are made once.

Two ``llm`` nodes are identical when they have the same op, parameters (model binding, prompt,
system, n, ...), inputs and guards — so they send the same requests. They are *deterministic* when
their binding sets ``temperature: 0`` and is not the ``sim`` (whose draws are seeded by node id, a
model of sampling noise even at temperature 0). The later node is removed and its readers read the
first one. Reads are rewritten in order, so a chain of identical calls on identical inputs collapses too.
"""

from __future__ import annotations

from typing import Any

from ember_compiler.xcs.plan import Plan, PlanNode, canonical_json


def _rename(expr: Any, to: dict[str, str]) -> Any:
    if isinstance(expr, dict):
        if "$ref" in expr:
            node, port = expr["$ref"]
            return {"$ref": [to.get(node, node), port]} if node in to else expr
        if "$node" in expr:
            return {"$node": to.get(expr["$node"], expr["$node"])}
        if "$lit" in expr:
            return expr
        return {k: _rename(v, to) for k, v in expr.items()}
    if isinstance(expr, list):
        return [_rename(v, to) for v in expr]
    return expr


def _deterministic(plan: Plan, node: PlanNode) -> bool:
    binding = plan.models.get(node.params.get("model", ""), {})
    return binding.get("provider") != "sim" and binding.get("temperature") == 0


def dedupe(plan: Plan) -> tuple[Plan, bool | str]:
    """Remove later duplicates of deterministic ``llm`` nodes; their readers read the first one.

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
            node = node.replace(inputs=_rename(node.inputs, to), when=tuple(_rename(list(node.when), to)))
        if node.kind == "llm" and _deterministic(plan, node):
            binding = plan.models[node.params["model"]]
            form = canonical_json([node.op, {**node.params, "model": binding}, node.inputs, list(node.when)])
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

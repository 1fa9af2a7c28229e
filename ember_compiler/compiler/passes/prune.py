"""Pass ``prune``: drop nodes whose values reach no output."""

from __future__ import annotations

from ember_compiler.xcs.expr import deps
from ember_compiler.xcs.plan import Plan


def prune(plan: Plan) -> tuple[Plan, bool]:
    """Remove every node that no output reads, directly or through other nodes (inputs or guards).

    Requires: node ids are unique; nodes are in topological order.
    Ensures: every remaining node reaches an output; the remaining nodes keep their order and are
    unchanged; ``inputs``, ``outputs`` and ``models`` are unchanged; ``changed`` is True exactly
    when a node was removed (otherwise the same plan object is returned).
    """
    live: set[str] = set()
    for expr in plan.outputs.values():
        live |= deps(expr)
    for node in reversed(plan.nodes):
        if node.id in live:
            live |= node.deps()
    kept = tuple(n for n in plan.nodes if n.id in live)
    if len(kept) == len(plan.nodes):
        return plan, False
    return plan.replace(nodes=kept), True

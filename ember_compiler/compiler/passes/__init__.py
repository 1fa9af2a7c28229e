"""Plan-to-plan passes and the pass manager.

A pass is a pure function ``Plan -> (Plan, changed)`` in its own module, with a docstring stating
what it requires and ensures. ``run_passes`` applies them in order, checks the plan is still well
formed after each one, and records in ``plan.passes`` what each pass changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ember_compiler.compiler.passes.prune import prune
from ember_compiler.errors import EmberError
from ember_compiler.xcs.plan import Plan, expr_deps

Pass = Callable[[Plan], tuple[Plan, bool]]

PASSES: dict[str, Pass] = {"prune": prune}
DEFAULT_PASSES: tuple[str, ...] = ("prune",)

__all__ = ["DEFAULT_PASSES", "PASSES", "Pass", "run_passes"]


def run_passes(plan: Plan, *, enabled: Iterable[str] = DEFAULT_PASSES) -> Plan:
    """Apply the passes named in ``enabled``, in order, e.g. ``"prune: removed 2 nodes (x, y)"``.

    Raises:
        EmberError: an unknown pass name, or a pass that left the plan malformed.
    """
    notes = list(plan.passes)
    done: list[str] = []
    for name in enabled:
        if name not in PASSES:
            raise EmberError(f"unknown pass '{name}' (known: {', '.join(sorted(PASSES))})")
        after, changed = PASSES[name](plan)
        problem = _malformed(after)
        if problem:
            raise EmberError(f"pass '{name}' failed after: {done}: {problem}")
        notes.append(f"{name}: {_describe(plan, after, changed)}")
        plan = after
        done.append(name)
    return plan.replace(passes=tuple(notes))


def _describe(before: Plan, after: Plan, changed: bool) -> str:
    if not changed:
        return "no change"
    old, new = [n.id for n in before.nodes], {n.id for n in after.nodes}
    removed = [i for i in old if i not in new]
    added = len(new - set(old))
    parts = []
    if removed:
        parts.append(f"removed {_count(len(removed))} ({', '.join(removed)})")
    if added:
        parts.append(f"added {_count(added)}")
    return "; ".join(parts) or "changed nodes"


def _count(k: int) -> str:
    return f"{k} node" if k == 1 else f"{k} nodes"


def _malformed(plan: Plan) -> str | None:
    """Why ``plan`` is not well formed (duplicate ids, a node read before it is defined), or None."""
    defined: set[str] = set()
    for node in plan.nodes:
        if node.id in defined:
            return f"duplicate node id '{node.id}'"
        if missing := sorted(node.deps() - defined):
            return f"node '{node.id}' reads {', '.join(missing)} before it is defined"
        defined.add(node.id)
    for name, expr in plan.outputs.items():
        if missing := sorted(expr_deps(expr) - defined):
            return f"output '{name}' reads undefined node(s) {', '.join(missing)}"
    return None

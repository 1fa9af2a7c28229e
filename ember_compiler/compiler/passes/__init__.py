"""Plan-to-plan passes and the pass manager.

A pass is a pure function ``Plan -> (Plan, changed)`` in its own module, with a docstring stating
what it requires and ensures (``changed`` may be a string: what it did, for ``plan.passes``).
``run_passes`` applies them in order, verifies the plan after each one (``xcs.verify``), and records in
``plan.passes`` what each pass changed. Pass names are kebab-case (``vote-cutoff``); snake_case
(``vote_cutoff``) is accepted wherever a name is read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ember_compiler.compiler.passes.dedupe import dedupe
from ember_compiler.compiler.passes.prune import prune
from ember_compiler.compiler.passes.vote_cutoff import vote_cutoff
from ember_compiler.errors import EmberError
from ember_compiler.xcs.plan import Plan
from ember_compiler.xcs.verify import PlanError, verify

Pass = Callable[[Plan], tuple[Plan, bool | str]]

PASSES: dict[str, Pass] = {"prune": prune, "dedupe": dedupe, "vote-cutoff": vote_cutoff}
# prune first: a reader that reaches no output must not keep an ensemble from its cut-off
DEFAULT_PASSES: tuple[str, ...] = ("prune", "dedupe", "vote-cutoff")
# NOTE: [Batch-only passes] the vote cut-off draws samples in rounds: it saves calls but a single run
# waits for several rounds instead of one. It pays off over many rows (eval, sweep), so a plan compiled
# for one run (run, compile, jit) leaves it out unless asked.
BATCH_ONLY: frozenset[str] = frozenset({"vote-cutoff"})

__all__ = ["BATCH_ONLY", "DEFAULT_PASSES", "PASSES", "Pass", "default_passes", "pass_name", "run_passes"]


def pass_name(name: str) -> str:
    """The canonical (kebab-case) name of a pass: ``vote_cutoff`` -> ``vote-cutoff``."""
    return name.strip().replace("_", "-")


def default_passes(*, batch: bool = False) -> tuple[str, ...]:
    """The passes on by default: all of them for a batch (eval, sweep), the latency-neutral ones else."""
    return DEFAULT_PASSES if batch else tuple(p for p in DEFAULT_PASSES if p not in BATCH_ONLY)


def run_passes(plan: Plan, *, enabled: Iterable[str] = DEFAULT_PASSES) -> Plan:
    """Apply the passes named in ``enabled``, in order, e.g. ``"prune: removed 2 nodes (x, y)"``.

    Raises:
        EmberError: an unknown pass name, or a pass that left the plan malformed.
    """
    notes = list(plan.passes)
    done: list[str] = []
    for name in map(pass_name, enabled):
        if name not in PASSES:
            raise EmberError(f"unknown pass '{name}' (known: {', '.join(sorted(PASSES))})")
        after, changed = PASSES[name](plan)
        try:
            verify(after)
        except PlanError as exc:
            raise EmberError(f"pass '{name}' failed after: {done}: {exc}") from None
        notes.append(f"{name}: {_describe(plan, after, changed)}")
        plan = after
        done.append(name)
    return plan.replace(passes=tuple(notes))


def _describe(before: Plan, after: Plan, changed: bool | str) -> str:
    if isinstance(changed, str):
        return changed
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

"""Scheduling policies: which waiting model call goes next, and how many run at once.

The executor always dispatches in dataflow order (a node is *ready* when its inputs exist); a
policy only orders the ready calls competing for a slot and bounds how many run at once across the
whole run (per-model limits still apply underneath).

Built-ins: `parallel` (the default: unbounded, longest remaining path first), `sequential` (one call
at a time in topological order: the baseline every benchmark compares against) and `cheapest-first`
(unbounded, calls on the cheapest model first — useful when a budget may cut a run short). Third-party
policies register under the entry-point group `ember.schedulers` as a class or factory taking no
arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from ..errors import UsageError
from ..spec.diagnostics import did_you_mean
from .plan import Plan, PlanNode

ENTRY_POINT_GROUP = "ember.schedulers"


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a policy may know about an `llm` node when ranking its calls."""

    index: int  # position in the plan's topological order
    remaining: int  # model calls on the longest path from this node to an output, itself included
    binding: dict[str, Any]  # the model binding the node calls


@runtime_checkable
class Scheduler(Protocol):
    name: str

    def max_in_flight(self) -> int | None:
        """Model requests in flight at once across the run; None for no global bound."""
        ...

    def priority(self, node: PlanNode, info: NodeInfo) -> float:
        """Higher goes first among calls waiting for a slot."""
        ...


class Parallel:
    name = "parallel"

    def max_in_flight(self) -> int | None:
        return None

    def priority(self, node: PlanNode, info: NodeInfo) -> float:
        return info.remaining


class Sequential:
    name = "sequential"

    def max_in_flight(self) -> int | None:
        return 1

    def priority(self, node: PlanNode, info: NodeInfo) -> float:
        return -info.index


class CheapestFirst:
    name = "cheapest-first"

    def max_in_flight(self) -> int | None:
        return None

    def priority(self, node: PlanNode, info: NodeInfo) -> float:
        price = info.binding.get("price") or {}
        per_mtok = price.get("input_per_mtok", 0.0) + price.get("output_per_mtok", 0.0)
        return -per_mtok + info.remaining * 1e-9  # ties: longest path first


BUILTIN: dict[str, Callable[[], Scheduler]] = {
    "parallel": Parallel, "sequential": Sequential, "cheapest-first": CheapestFirst,
}


def available() -> dict[str, Callable[[], Any]]:
    found: dict[str, Callable[[], Any]] = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.load)  # loaded only when chosen
    return found


def get_scheduler(name: str | Scheduler | None) -> Scheduler:
    if name is None:
        return Parallel()
    if not isinstance(name, str):
        return name
    if name in BUILTIN:  # no entry-point scan (milliseconds) for the built-in policies
        return BUILTIN[name]()
    factories = available()
    if name not in factories:
        hint = did_you_mean(name, factories)
        raise UsageError(f"unknown scheduler '{name}'" + (f"; {hint}" if hint else "")
                         + f" (available: {', '.join(sorted(factories))})")
    factory = factories[name]
    if name not in BUILTIN:
        factory = factory()  # the entry point's target: a class or a factory
    scheduler = factory()
    if not isinstance(scheduler, Scheduler):
        raise UsageError(f"scheduler '{name}' does not implement max_in_flight() and priority()")
    return scheduler


def node_infos(plan: Plan, models: dict[str, Any] | None = None) -> list[NodeInfo | None]:
    """NodeInfo for each llm node (None for fn nodes), in plan order; ``models``: the bindings (a
    sub-plan's are its parent's)."""
    models = plan.models if models is None else models
    index = {n.id: i for i, n in enumerate(plan.nodes)}
    dependents: list[list[int]] = [[] for _ in plan.nodes]
    for i, n in enumerate(plan.nodes):
        for d in n.deps():
            dependents[index[d]].append(i)
    remaining = [0] * len(plan.nodes)
    for i in range(len(plan.nodes) - 1, -1, -1):  # plan order is topological
        below = max((remaining[j] for j in dependents[i]), default=0)
        remaining[i] = below + (plan.nodes[i].kind == "llm")
    return [
        NodeInfo(i, remaining[i], models[n.params["model"]]) if n.kind == "llm" else None
        for i, n in enumerate(plan.nodes)
    ]

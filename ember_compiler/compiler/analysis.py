"""Static analysis of a plan: model calls, requests, critical path and width.

Calls per ``llm`` node: ``generate``/``judge``/``select``/``refine_*`` make ``n`` (default 1),
``ensemble`` makes ``n``, ``verify`` one per candidate. The number of candidates is propagated
statically: an ensemble's ``responses``/``answers`` have length ``n``, a ``concat`` the sum of its
parts, a ``$list`` its length, a ``pack`` port the length of the value it packs. An unknown length
counts as 1 and is noted in ``PlanStats.notes``. A ``map`` node makes (items x its sub-plan's calls)
when the list's length is known (else one item's worth, noted); a ``python`` node counts 0 (noted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ember_compiler.xcs.plan import Plan, PlanNode, expr_deps

_LIST_PORTS = ("responses", "answers")


@dataclass(frozen=True)
class PlanStats:
    """What one run of a plan costs, before it runs.

    Counts are upper bounds: guarded nodes (``when:``, later refine rounds) are counted as if they
    run, so ``refine`` counts every round up to ``max_rounds``.
    """

    calls: int  # model generations (samples) per run
    requests: int  # model requests per run: an ensemble's n samples share one request (`n`);
    #                a provider without `n` support sends n requests; `verify` sends one per candidate
    depth: int  # longest dependency path, counting llm nodes (model calls in sequence)
    width: int  # max calls in flight at once, estimated per "call level" (see `analyze`)
    llm_nodes: int
    fn_nodes: int
    node_calls: dict[str, int] = field(default_factory=dict)  # llm (and map) node id -> calls
    notes: tuple[str, ...] = ()  # where a number is an estimate

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


def analyze(plan: Plan) -> PlanStats:
    """Calls, requests, depth and width of ``plan`` (nodes in topological order).

    Width groups llm nodes into call levels by their depth (number of llm nodes on the longest path
    ending at them) and takes the largest summed calls of a level. This is exact for layered
    networks (ensemble -> judge); the ready-set runtime may overlap levels of unbalanced branches, so
    read it as the level-synchronous estimate, not a hard bound.
    """
    lengths: dict[tuple[str, str], int] = {}
    level: dict[str, int] = {}
    node_calls: dict[str, int] = {}
    requests = 0
    notes: list[str] = []
    for node in plan.nodes:
        own_depth = 0
        if node.kind == "llm":
            own_depth = 1
            node_calls[node.id] = _calls(node, lengths, notes)
            requests += node_calls[node.id] if node.op == "verify" else 1
        elif node.kind == "map":
            sub = analyze(_sub_plan(node, plan))
            items = static_length(node.inputs.get("over"), lengths)
            if items is None:
                notes.append(f"{node.id}: number of map items unknown before running; counted as 1 item")
            node_calls[node.id] = (1 if items is None else items) * sub.calls
            requests += (1 if items is None else items) * sub.requests
            own_depth = sub.depth
            notes.extend(f"{node.id}: {n}" for n in sub.notes)
        elif node.kind == "python":
            notes.append(f"{node.id}: python operator; model calls it makes itself are not counted")
        level[node.id] = max((level.get(d, 0) for d in node.deps()), default=0) + own_depth
        _record_lengths(node, lengths)
    width: dict[int, int] = {}
    for node_id, calls in node_calls.items():
        width[level[node_id]] = width.get(level[node_id], 0) + calls
    return PlanStats(
        calls=sum(node_calls.values()),
        requests=requests,
        depth=max((level[i] for i in node_calls), default=0),
        width=max(width.values(), default=0),
        llm_nodes=sum(n.kind == "llm" for n in plan.nodes),
        fn_nodes=sum(n.kind == "fn" for n in plan.nodes),
        node_calls=node_calls,
        notes=tuple(notes),
    )


def static_length(expr: Any, lengths: dict[tuple[str, str], int]) -> int | None:
    """The length of the list ``expr`` evaluates to, when it is known before running."""
    if not isinstance(expr, dict):
        return None
    if "$list" in expr:
        return len(expr["$list"])
    if "$lit" in expr:
        return len(expr["$lit"]) if isinstance(expr["$lit"], list) else None
    if "$ref" in expr:
        return lengths.get(tuple(expr["$ref"]))
    return None


def _calls(node: PlanNode, lengths: dict[tuple[str, str], int], notes: list[str]) -> int:
    if node.op != "verify":
        return int(node.params.get("n", 1))
    count = static_length(node.inputs.get("candidates"), lengths)
    if count is None:
        notes.append(f"{node.id}: number of candidates unknown before running; counted as 1 call")
        return 1
    return count


def _record_lengths(node: PlanNode, lengths: dict[tuple[str, str], int]) -> None:
    """Lengths of the list-valued ports of ``node`` that are known statically."""
    known: dict[str, int | None] = {}
    if node.op == "ensemble":
        known = dict.fromkeys(_LIST_PORTS, int(node.params.get("n", 1)))
    elif node.op == "concat":
        parts = [expr_deps(p) for p in node.inputs["parts"]["$list"]]
        sizes = [lengths.get((next(iter(p)), "responses")) if len(p) == 1 else None for p in parts]
        total = None if None in sizes else sum(sizes)  # type: ignore[arg-type]
        known = dict.fromkeys(_LIST_PORTS, total)
    elif node.op == "verify":
        known = {"verdicts": static_length(node.inputs.get("candidates"), lengths)}
    elif node.op == "pack":
        known = {p: static_length(e, lengths) for p, e in node.inputs["values"]["$dict"].items()}
    elif node.kind == "map":
        known = dict.fromkeys(("results", "answers"), static_length(node.inputs.get("over"), lengths))
    for port, size in known.items():
        if size is not None:
            lengths[(node.id, port)] = size


def _sub_plan(node: PlanNode, plan: Plan) -> Plan:
    body = node.params["plan"]
    return Plan(name=f"{plan.name}/{node.id}", nodes=tuple(PlanNode.from_json(n) for n in body["nodes"]),
                inputs={}, outputs={"result": body["result"]}, models=plan.models)

"""Static analysis of a plan: model calls, requests, critical path and width.

``stream_source`` finds the node whose reply a plan's answer can stream from (``PlanOp.streams``).

Each plan op says how many model calls its node makes (``PlanOp.calls``: ``n`` samples by default,
``verify`` one per candidate) and which of its list ports have a length known before running
(``PlanOp.lengths``: an ensemble's ``n``, a ``concat``'s sum, a ``pack``'s packed values). A
``$list`` has its length, a literal list too. An unknown count is taken as 1 and noted in
``PlanStats.notes``. A ``map`` node makes (items x its sub-plan's calls) when the list's length is
known (else one item's worth, noted); a ``python`` node counts 0 (noted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..ops.registry import plan_op
from .expr import ListOf, Lit, Ref


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


def analyze(plan: Any) -> PlanStats:
    """Calls, requests, depth and width of ``plan`` (nodes in topological order).

    Width groups llm nodes into call levels by their depth (number of llm nodes on the longest path
    ending at them) and takes the largest summed calls of a level. This is exact for layered
    networks (ensemble -> judge); the ready-set runtime may overlap levels of unbalanced branches, so
    read it as the level-synchronous estimate, not a hard bound.
    """
    lengths: dict[tuple[str, str], int] = {}
    known = _Known(lengths)
    level: dict[str, int] = {}
    node_calls: dict[str, int] = {}
    sequential: dict[str, bool] = {}
    requests = 0
    notes: list[str] = []
    for node in plan.nodes:
        own_depth = 0
        op = plan_op(node.op)
        if node.kind == "llm":
            node_calls[node.id] = _calls(node, op, known, notes)
            own_depth = node_calls[node.id] if op.sequential else 1
            sequential[node.id] = op.sequential
            requests += node_calls[node.id] if op.per_call_requests else 1
        elif node.kind == "map":
            sub = analyze(node.subplan)
            items = known.of(node.inputs.get("over"))
            if items is None:
                notes.append(f"{node.id}: number of map items unknown before running; counted as 1 item")
            node_calls[node.id] = (1 if items is None else items) * sub.calls
            requests += (1 if items is None else items) * sub.requests
            own_depth = sub.depth
            notes.extend(f"{node.id}: {n}" for n in sub.notes)
        elif node.kind == "python":
            notes.append(f"{node.id}: python operator; model calls it makes itself are not counted")
        level[node.id] = max((level.get(d, 0) for d in node.deps()), default=0) + own_depth
        if op is not None and op.lengths is not None:
            for port, size in op.lengths(node, known).items():
                if size is not None:
                    lengths[(node.id, port)] = size
    width: dict[int, int] = {}
    for node_id, calls in node_calls.items():
        if sequential.get(node_id):
            calls = min(calls, 1)  # one of its calls in flight at a time
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


class _Known:
    """The ``Lengths`` an op's rules see: what is known so far about list lengths."""

    def __init__(self, lengths: dict[tuple[str, str], int]) -> None:
        self.lengths = lengths

    def of(self, expr: Any) -> int | None:
        return static_length(expr, self.lengths)

    def port(self, node: str, port: str) -> int | None:
        return self.lengths.get((node, port))


def static_length(expr: Any, lengths: dict[tuple[str, str], int]) -> int | None:
    """The length of the list ``expr`` evaluates to, when it is known before running."""
    if isinstance(expr, ListOf):
        return len(expr.items)
    if isinstance(expr, Lit):
        return len(expr.value) if isinstance(expr.value, list) else None
    if isinstance(expr, Ref):
        return lengths.get((expr.node, expr.port))
    return None


def _calls(node: Any, op: Any, known: _Known, notes: list[str]) -> int:
    count = op.calls(node, known) if op.calls is not None else 1
    if count is None:
        notes.append(f"{node.id}: number of candidates unknown before running; counted as 1 call")
        return 1
    return count


def answer_output(plan: Any) -> str | None:
    """The output a caller shows as the answer: ``answer``, else the only output (None: neither)."""
    if "answer" in plan.outputs:
        return "answer"
    return next(iter(plan.outputs)) if len(plan.outputs) == 1 else None


def stream_source(plan: Any) -> str | None:
    """The id of the node whose reply text the plan's answer output (`answer_output`) is read from, when
    that node is one model call of one sample whose op streams that port (``PlanOp.streams``: generate,
    judge, a refine round), followed through the functions that pass a value on (``PlanOp.passes``: a
    network's pack; refine's result, from its last round — which streams only when it runs). None
    otherwise: the answer comes from a vote, a choice among candidates, a function, several samples."""
    name = answer_output(plan)
    expr = plan.outputs.get(name) if name is not None else None
    if not isinstance(expr, Ref):
        return None
    node_id, port = expr.node, expr.port
    for _ in range(len(plan.nodes)):
        node = plan.node(node_id)
        op = plan_op(node.op)
        if node.kind == "fn" and op.passes is not None:
            source = op.passes(node, port)
            if source is None:
                return None
            node_id, port = source
            continue
        if node.kind == "llm" and port in op.streams and int(node.params.get("n", 1)) == 1:
            return node.id
        return None
    return None

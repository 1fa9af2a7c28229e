"""The plan as a graph, drawn as SVG: a layered layout (inputs on the left, each node one column right of
its last input, outputs on the right), ordered within a column by the mean position of its inputs to
keep edges short. Plans are small (tens of nodes), so this simple layout reads well and needs no
JavaScript library."""

from __future__ import annotations

from typing import Any

from markupsafe import escape

from ..xcs.expr import Input, deps, walk
from ..xcs.plan import Plan

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 196, 46, 50, 18, 12
INPUTS, OUTPUTS = "#inputs", "#outputs"


def layout(plan: Plan) -> dict[str, Any]:
    """Boxes `{id: (column, row)}` and edges `[(from, to)]`, with the pseudo-nodes `#inputs` and `#outputs`."""
    column: dict[str, int] = {}
    edges: list[tuple[str, str]] = []
    for node in plan.nodes:  # topological order: every input's column is known
        sources = sorted(node.deps())
        reads_inputs = any(isinstance(e, Input) for x in (*node.inputs.values(), *node.when) for e in walk(x))
        if reads_inputs or not sources:
            sources = [INPUTS, *sources]
        column[node.id] = 1 + max(column.get(s, 0) for s in sources)
        edges += [(s, node.id) for s in sources]
    column[INPUTS] = 0
    last = 1 + max(column.values())
    column[OUTPUTS] = last
    edges += [(s, OUTPUTS) for s in sorted(set().union(*(deps(e) for e in plan.outputs.values())))]
    columns: list[list[str]] = [[] for _ in range(last + 1)]
    for nid, c in column.items():
        columns[c].append(nid)
    place: dict[str, float] = {}
    for nodes in columns:  # order each column by where its inputs sit (barycentre), plan order breaking ties
        mean = {n: _mean([place[a] for a, b in edges if b == n and a in place]) for n in nodes}
        nodes.sort(key=lambda n: mean[n])
        place.update({n: float(i) for i, n in enumerate(nodes)})
    return {"columns": columns, "edges": edges}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def plan_svg(plan: Plan, calls: dict[str, int]) -> str:
    """The plan's graph; `calls` (node id -> model calls made) is printed in each model node's box."""
    shape = layout(plan)
    columns = shape["columns"]
    tallest = max(len(c) for c in columns)
    height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y
    width = PAD * 2 + len(columns) * BOX_W + (len(columns) - 1) * GAP_X
    pos: dict[str, tuple[float, float]] = {}
    for c, nodes in enumerate(columns):
        top = (height - (len(nodes) * BOX_H + (len(nodes) - 1) * GAP_Y)) / 2
        for r, nid in enumerate(nodes):
            pos[nid] = (PAD + c * (BOX_W + GAP_X), top + r * (BOX_H + GAP_Y))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plan" viewBox="0 0 {width} {height:.0f}" '
             f'width="{width}" height="{height:.0f}" role="img" aria-label="plan graph">']
    for a, b in shape["edges"]:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        x1, y1, y2 = x1 + BOX_W, y1 + BOX_H / 2, y2 + BOX_H / 2
        mid = (x1 + x2) / 2
        parts.append(f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} '
                     f'{x2 - 4:.0f},{y2:.0f}" marker-end="url(#arrow)"/>')
    parts.append('<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
                 'orient="auto"><path d="M0,0 L8,4 L0,8 z" class="arrowhead"/></marker></defs>')
    by_id = {n.id: n for n in plan.nodes}
    for nid, (x, y) in pos.items():
        node = by_id.get(nid)
        if node is None:
            title, sub, cls = ("inputs", ", ".join(plan.inputs), "io") if nid == INPUTS \
                else ("outputs", ", ".join(plan.outputs), "io")
        else:
            title, cls = nid, str(node.kind)
            extra = [str(node.params["model"])] if "model" in node.params else []
            if node.kind == "llm" and nid in calls:
                extra.append(f"{calls[nid]:,} calls")
            sub = " · ".join([f"{node.kind}.{node.op}", *extra])
        parts.append(f'<g class="box {cls}" data-node="{escape(nid)}"><title>{escape(title)}: {escape(sub)}'
                     f'{"" if node is None or not node.source else " — " + escape(node.source)}</title>'
                     f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
                     f'<text x="{x + 8:.0f}" y="{y + 18:.0f}" class="t">{escape(_clip(title, 26))}</text>'
                     f'<text x="{x + 8:.0f}" y="{y + 35:.0f}" class="s">{escape(_clip(sub, 34))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"

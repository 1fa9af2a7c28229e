"""Pass ``vote-cutoff``: a majority vote over an ensemble draws its samples only until the vote is decided.

A ``vote`` whose candidates are exactly an ``ensemble``'s ``answers``, where nothing else reads the
ensemble and only the vote's ``answer`` is read, becomes one ``llm`` node ``vote_cutoff`` (with the
vote's id). At run time (``ops/vote.py``) it draws the samples in order, in batches, and stops as soon
as the leading answer can no longer be overtaken by the samples not drawn yet — counting the tie
rule: ties go to the answer seen first, and an answer not seen yet is seen after the leader. The
answer is then the one the full vote would give: the drawn samples are the same ones (each sample is
requested with its index, which seeds the sim and shifts a fixed seed), and no values of the
undrawn samples could change the winner. ``counts`` and ``confidence`` would differ, which is why a
vote whose other ports are read is left alone.
"""

from __future__ import annotations

from ember_compiler.xcs.expr import NodeRef, Ref, walk
from ember_compiler.xcs.plan import Plan, PlanNode


def _readers(plan: Plan) -> dict[str, list[Ref | NodeRef]]:
    """Node id -> every reference to it in nodes and outputs."""
    out: dict[str, list[Ref | NodeRef]] = {}
    exprs = [e for n in plan.nodes for e in (*n.inputs.values(), *n.when)] + list(plan.outputs.values())
    for expr in exprs:
        for e in walk(expr):
            if isinstance(e, Ref | NodeRef):
                out.setdefault(e.node, []).append(e)
    return out


def vote_cutoff(plan: Plan) -> tuple[Plan, bool | str]:
    """Fuse each eligible (ensemble, vote) pair into a ``vote_cutoff`` node.

    Requires: unique ids, topological order.
    Ensures: the fused node has the vote's id and sits at the vote's place; it reads the ensemble's
    template variables and guards plus the vote's guards; the ensemble node is gone; every output
    value of the plan is unchanged for every run (see the module docstring); nothing else changes.
    """
    readers = _readers(plan)
    by_id = {n.id: n for n in plan.nodes}
    fused: dict[str, PlanNode] = {}  # vote id -> fused node
    removed: set[str] = set()
    for v in plan.nodes:
        if v.kind != "fn" or v.op != "vote":
            continue
        cands = v.inputs.get("candidates")
        if not (isinstance(cands, Ref) and cands.port == "answers"):
            continue
        e = by_id.get(cands.node)
        if e is None or e.kind != "llm" or e.op != "ensemble" or int(e.params.get("n", 1)) < 3:
            continue
        if len(readers.get(e.id, [])) != 1:  # the vote's candidates is the only reader
            continue
        if any(not isinstance(r, Ref) or r.port != "answer" for r in readers.get(v.id, [])):
            continue
        params = {**e.params, "ensemble": e.id, "normalize": v.params.get("normalize", "strip")}
        if v.params.get("extract") is not None:
            params["vote_extract"] = v.params["extract"]
        fused[v.id] = PlanNode(id=v.id, kind="llm", op="vote_cutoff", inputs=dict(e.inputs), params=params,
                               outputs=("answer", "drawn", "saved"), when=(*e.when, *v.when),
                               source=v.source or e.source)
        removed.add(e.id)
    if not fused:
        return plan, False
    nodes = tuple(fused.get(n.id, n) for n in plan.nodes if n.id not in removed)
    saved = ", ".join(f"{k} (n={fused[k].params['n']})" for k in fused)
    return plan.replace(nodes=nodes), f"fused {len(fused)} ensemble+vote pair{'s' if len(fused) > 1 else ''} " \
        f"into vote_cutoff nodes that stop sampling once the vote is decided: {saved}"

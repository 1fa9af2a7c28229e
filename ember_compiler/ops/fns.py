"""Runtime functions of the `fn` plan nodes: pure, synchronous, cheap.

`NULL_TOLERANT` functions run even when an input comes from a skipped node (they see None);
every other node is skipped when any value it needs is missing (DESIGN §2, `when:`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..answers import vote
from ..xcs.plan import PlanNode


def fn_vote(node: PlanNode, values: dict[str, Any]) -> dict[str, Any]:
    cands = values.get("candidates")
    if cands is None:
        cands = []
    elif not isinstance(cands, list):
        cands = [cands]
    return vote(cands, node.params.get("extract"), node.params.get("normalize", "strip"))


def fn_first(node: PlanNode, values: dict[str, Any]) -> dict[str, Any]:
    cands = values.get("candidates")
    cands = cands if isinstance(cands, list) else [cands]
    return {"value": next((c for c in cands if c is not None), None)}


def fn_concat(node: PlanNode, values: dict[str, Any]) -> dict[str, Any]:
    parts = values["parts"]
    total = {"input_tokens": 0, "output_tokens": 0, "samples": 0}
    for p in parts:
        for k in total:
            total[k] += p["usage"].get(k, 0)
    return {
        "responses": [r for p in parts for r in p["responses"]],
        "answers": [a for p in parts for a in p["answers"]],
        "usage": total,
    }


def fn_pack(node: PlanNode, values: dict[str, Any]) -> dict[str, Any]:
    return dict(values["values"])


def fn_refine_result(node: PlanNode, values: dict[str, Any]) -> dict[str, Any]:
    proofs = [p for p in values["proofs"] if p is not None]
    checks = [c for c in values["checks"] if c is not None]
    return {
        "answer": proofs[-1]["answer"] if proofs else None,
        "rounds": len(proofs),
        "accepted": bool(checks and checks[-1]["accepted"]),
    }


FUNCTIONS: dict[str, Callable[[PlanNode, dict[str, Any]], dict[str, Any]]] = {
    "vote": fn_vote,
    "first": fn_first,
    "concat": fn_concat,
    "pack": fn_pack,
    "refine_result": fn_refine_result,
}

NULL_TOLERANT = frozenset({"first", "pack", "refine_result"})

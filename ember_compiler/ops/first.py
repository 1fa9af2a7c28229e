"""``first``: the first candidate that is not null (a skipped node's value is null)."""

from __future__ import annotations

from typing import Any, Literal

from ..spec.model import NodeBase
from .base import OpDef, PlanOp, SdkDef


class FirstNode(NodeBase):
    op: Literal["first"]
    candidates: Any


def lower(ctx: Any, node: FirstNode) -> list[Any]:
    return [ctx.make("fn", "first", {"candidates": ctx.value(node.candidates)}, {})]


def run(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    cands = values.get("candidates")
    cands = cands if isinstance(cands, list) else [cands]
    return {"value": next((c for c in cands if c is not None), None)}


OP = OpDef(
    name="first",
    summary="The first non-null candidate.",
    node=FirstNode,
    ports={"value": Any},
    lower=lower,
    plan_ops=(PlanOp("first", "fn", ("value",), run=run, null_tolerant=True),),
    sdk=SdkDef("First", "The first non-null candidate. Output: ``value``.", {}, value_fields=("candidates",)),
    example={"op": "first", "candidates": [None, "${inputs.question}"]},
)

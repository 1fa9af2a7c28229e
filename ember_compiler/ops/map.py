"""``map``: a sub-spec or an inline node once per item of a list, all items in parallel; results in order.

One ``map`` plan node holds the sub-plan run per item (``node.subplan``): the item is the input
``#item`` and every value it reads from outside is an input ``#K`` bound by the node's ``bind`` input.
The compiler builds it (``LowerCtx.map``); the executor runs map nodes itself (a sub-plan per item).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..spec.diagnostics import did_you_mean
from ..spec.model import Name, NodeBase
from .base import Effects, OpDef, PlanOp


class MapNode(NodeBase):
    """Run a sub-spec or an inline node once per item of a list, all items in parallel."""

    op: Literal["map"]
    over: Any = Field(..., description="The list to map over (usually a reference).")
    as_: Name = Field("item", alias="as", description="Name of the item: ${inputs.NAME} inside the "
                      "inline node, or the sub-spec input that receives it.")
    spec: str | None = Field(None, description="Path of the sub-spec run per item, relative to this file.")
    node: Any = Field(None, description="An inline node run per item (not network).")  # typed by the registry
    with_: dict[str, Any] = Field(default_factory=dict, alias="with",
                                  description="Other inputs of the sub-spec (same for every item).")


def lower(ctx: Any, node: MapNode) -> list[Any]:
    return ctx.map(node)


def prepare(ck: Any, nid: str, node: MapNode) -> None:
    if node.spec is not None and node.node is None:
        ck.subspec(nid, node, bound=(node.as_,))


def check(ck: Any, nid: str, node: MapNode, base: tuple) -> None:
    if (node.spec is None) == (node.node is None):
        both = "both" if node.spec is not None else "neither"
        ck.error(base, "E311", f"map node '{nid}' needs exactly one of 'spec' or 'node' (it has {both})",
                 "spec: sub.yaml runs a sub-spec per item; node: {op: ...} runs one inline node per item",
                 key=True)
        return
    if node.spec is not None:
        inputs = ck.subspec_inputs(nid)
        if inputs is not None and node.as_ not in inputs:
            ck.error((*base, "as") if "as_" in node.model_fields_set else base, "E312",
                     f"the item name '{node.as_}' is not an input of sub-spec '{node.spec}'",
                     did_you_mean(node.as_, inputs) or f"inputs: {', '.join(inputs) or 'none'}")
        return
    inner = node.node
    if inner.op in ("network", "map"):
        ck.error((*base, "node", "op"), "E311", f"an inline map node cannot be a {inner.op}",
                 "put it in a sub-spec and use spec: instead")
        return
    if node.with_:
        ck.error((*base, "with"), "E311", "with: binds sub-spec inputs; an inline node reads outer values "
                                          "directly", key=True)
    ck.check_inline(nid, inner, (*base, "node"), item=node.as_)


def item_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    items = lengths.of(node.inputs.get("over"))
    return {"results": items, "answers": items}


OP = OpDef(
    name="map",
    summary="A sub-spec or an inline node per item of a list, in parallel; results in order.",
    node=MapNode,
    ports={"results": list, "answers": list},
    lower=lower,
    plan_ops=(PlanOp("map", "map", ("results", "answers"), params=("as",), effects=Effects(sampled=True),
                     lengths=item_lengths),),
    check=check,
    prepare=prepare,
    example={"op": "map", "over": "${inputs.choices}", "as": "choice",
             "node": {"op": "generate", "model": "m", "prompt": "Is it {{ inputs.choice }}?"}},
    sdk_note="ember_compiler.vmap maps an operator over a batch",
)

"""``network``: another spec, inlined under ``ID/``; its outputs are the node's ports.

The compiler inlines the sub-spec (``LowerCtx.network``) and adds one ``pack`` plan node ``ID`` that
gathers the sub-spec's outputs; the checker loads and checks the sub-spec (``CheckCtx.subspec``:
E304–E306).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..spec.model import NodeBase
from .base import OpDef, PlanOp


class NetworkNode(NodeBase):
    op: Literal["network"]
    spec: str = Field(..., description="Path of the sub-spec, relative to this file.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


def lower(ctx: Any, node: NetworkNode) -> list[Any]:
    return ctx.network(node)


def prepare(ck: Any, nid: str, node: NetworkNode) -> None:
    ck.subspec(nid, node)


def pack(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    return dict(values["values"])


def packed_from(node: Any, port: str) -> tuple[str, str] | None:
    """The node and port a packed value is, when it is one (a sub-spec output `${node.port}`)."""
    expr = node.inputs["values"].get(port)
    ref = expr.to_json().get("$ref") if expr is not None else None
    return (ref[0], ref[1]) if ref else None


def pack_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    values = node.inputs["values"]
    return {port: lengths.of(expr) for port, expr in values.entries}


OP = OpDef(
    name="network",
    summary="Another spec, inlined; its outputs are the ports.",
    node=NetworkNode,
    ports={},
    lower=lower,
    plan_ops=(PlanOp("pack", "fn", None, run=pack, null_tolerant=True, lengths=pack_lengths,
                     passes=packed_from),),
    prepare=prepare,
    ports_declared_by_node=True,
    sdk_note="ember_compiler.load(PATH) gives a spec as an operator; a Network subclass nests networks in Python",
)

"""``generate``: one model call."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..answers import extract_answer
from ..spec.model import Name, NodeBase, with_vars
from . import calls
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class GenerateNode(NodeBase):
    op: Literal["generate"]
    model: str
    prompt: str
    system: str | None = None
    extract: str | None = Field(None, description="Regex with one group for the answer.")
    with_: dict[Name, Any] = with_vars()


def lower(ctx: Any, node: GenerateNode) -> list[Any]:
    params = {"model": ctx.model(node.model), "n": 1, "prompt": ctx.plain(node.prompt),
              **calls.optional(ctx, node, "system", "extract")}
    return [ctx.make("llm", "generate", {"vars": ctx.template_vars(node)}, params)]


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    return ctx.requests(calls.rendered(node, values), node.params.get("n", 1), role="generate")


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    calls.first_answer(node, completions)  # a refusal, block or empty reply fails the node
    text = calls.texts(completions)[0]
    return {"text": text, "answer": extract_answer(text, node.params.get("extract")),
            "usage": calls.usage(completions)}


def distinct_answers(j: int) -> str:
    """Samples that all disagree: a vote cut-off then draws all n (the worst case)."""
    return f"Answer: {j}"


GENERATE = PlanOp("generate", "llm", ("text", "answer", "usage"), params=("model", "prompt"), build=build,
                  finish=finish, effects=MODEL_CALL, calls=one_per_sample, role="generate",
                  dry_text=distinct_answers, streams=("text", "answer"))

OP = OpDef(
    name="generate",
    summary="One model call.",
    node=GenerateNode,
    ports={"text": str, "answer": str, "usage": dict},
    lower=lower,
    plan_ops=(GENERATE,),
    model_fields=("model",),
    template_fields=("prompt", "system"),
    sdk=SdkDef("Generate", "One model call. Output: ``text``, ``answer`` (extracted), ``usage``.",
               {"model": REQUIRED, "prompt": REQUIRED, "system": None, "extract": None}),
    example={"op": "generate", "model": "m", "prompt": "Question: {{ inputs.question }}"},
)

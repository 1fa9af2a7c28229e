"""``judge``: a model reads the candidates and writes the final answer."""

from __future__ import annotations

from typing import Any, Literal

from ..answers import before_answer, extract_answer
from ..spec.model import Name, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class JudgeNode(calls.ChoiceNode):
    op: Literal["judge"]
    with_: dict[Name, Any] = with_vars()


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    return calls.choice_requests(node, values, ctx, "judge", prompts.judge, prompts.JUDGE_SCHEMA)


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    if not completions:
        return {"answer": None, "reasoning": "", "text": ""}
    calls.first_answer(node, completions)  # a refusal, block or empty reply is no judgement
    text = completions[0].texts[0]
    obj = calls.reply(node, completions[0], "answer")
    if obj is not None:
        return {"answer": str(obj["answer"]).strip(), "reasoning": str(obj.get("reasoning") or "").strip(),
                "text": text}
    return {"answer": extract_answer(text), "reasoning": before_answer(text), "text": text}


JUDGE = PlanOp("judge", "llm", ("answer", "reasoning", "text"), params=("model",), build=build, finish=finish,
               effects=MODEL_CALL, calls=one_per_sample, role="judge", dry_text=lambda j: "Answer: A",
               streams=("answer", "text"))

OP = OpDef(
    name="judge",
    summary="A model reads the candidates and writes the final answer.",
    node=JudgeNode,
    ports={"answer": Any, "reasoning": str, "text": str},
    lower=calls.lower_choice,
    plan_ops=(JUDGE,),
    model_fields=("model",),
    template_fields=("prompt",),
    sdk=SdkDef("Judge", "A model reads the candidates and writes the answer. Output: ``answer``, "
               "``reasoning``, ``text``.", {"model": REQUIRED, "prompt": None},
               value_fields=("question", "candidates")),
    example={"op": "judge", "model": "m", "question": "${inputs.question}", "candidates": ["Answer: A", "Answer: B"]},
)

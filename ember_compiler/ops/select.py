"""``select``: a model picks one of the candidates (by number, else by answer text, else the first)."""

from __future__ import annotations

from typing import Any, Literal

from ..answers import extract_answer, normalize
from ..spec.model import Name, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class SelectNode(calls.ChoiceNode):
    op: Literal["select"]
    with_: dict[Name, Any] = with_vars()


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    return calls.choice_requests(node, values, ctx, "select", prompts.select, prompts.SELECT_SCHEMA)


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    pairs = calls.paired(values)  # (position in the input list, candidate, critique)
    if not completions or not pairs:
        return {"answer": None, "index": None}
    answers = [extract_answer(c) for _, c, _ in pairs]
    calls.first_answer(node, completions)  # a refusal, block or empty reply picks nothing (not candidate 1)
    obj = calls.reply(node, completions[0], "answer")
    said = str(obj["answer"]) if obj is not None else extract_answer(completions[0].texts[0])
    index = chosen_index(said, answers)
    return {"answer": answers[index], "index": pairs[index][0]}  # skipped or blank candidates still count


def chosen_index(said: str, answers: list[str]) -> int:
    """The 0-based candidate a selector named: by number, else by answer text, else the first."""
    digits = said.strip().lstrip("#").split()[0].rstrip(".):") if said.strip() else ""
    if digits.isdigit() and 1 <= int(digits) <= len(answers):
        return int(digits) - 1
    wanted = normalize(said, "lower")
    for i, a in enumerate(answers):
        if normalize(a, "lower") == wanted:
            return i
    return 0


SELECT = PlanOp("select", "llm", ("answer", "index"), params=("model",), build=build, finish=finish,
                effects=MODEL_CALL, calls=one_per_sample, role="select", dry_text=lambda j: "Answer: 1")

OP = OpDef(
    name="select",
    summary="A model picks one of the candidates.",
    node=SelectNode,
    ports={"answer": Any, "index": int},
    lower=calls.lower_choice,
    plan_ops=(SELECT,),
    model_fields=("model",),
    template_fields=("prompt",),
    sdk=SdkDef("Select", "A model picks one candidate. Output: ``answer``, ``index``.",
               {"model": REQUIRED, "prompt": None}, value_fields=("question", "candidates")),
    example={"op": "select", "model": "m", "question": "${inputs.question}", "candidates": ["Answer: A", "Answer: B"]},
)

"""``judge``: a model reads the candidates and writes the final answer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..answers import before_answer, extract_answer
from ..spec.model import Name, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class JudgeNode(calls.ChoiceNode):
    op: Literal["judge"]
    critiques: Any = Field(None, description="Critiques aligned with the candidates (a critic's), shown beside them.")
    with_: dict[Name, Any] = with_vars()


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    if values.get("critiques") is None:
        return calls.choice_requests(node, values, ctx, "judge", prompts.judge, prompts.JUDGE_SCHEMA)
    pairs = calls.paired(values)
    if not pairs:
        return []
    cands = [c for _, c, _ in pairs]
    prompt = calls.custom_prompt(node, values) or prompts.judge(calls.question(values), cands,
                                                                calls.shown_critiques(pairs))
    seen = calls.sim_visible(pairs)  # the sim's judge trusts the critic (docs/sim.md)
    return ctx.requests(calls.messages(prompt), 1, schema=prompts.JUDGE_SCHEMA, role="judge", candidates=cands,
                        candidate_answers=[extract_answer(c) for c, s in zip(cands, seen, strict=True) if s])


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
    check=calls.check_critiques,
    sdk=SdkDef("Judge", "A model reads the candidates and writes the answer. Output: ``answer``, "
               "``reasoning``, ``text``.", {"model": REQUIRED, "prompt": None},
               value_fields=("question", "candidates", "critiques")),
    example={"op": "judge", "model": "m", "question": "${inputs.question}", "candidates": ["Answer: A", "Answer: B"]},
)

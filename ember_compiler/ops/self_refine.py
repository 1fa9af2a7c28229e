"""``self_refine``: one model drafts an answer, gives itself feedback, and revises, for up to ``rounds``
drafts — stopping as soon as its feedback says the draft needs no change (Madaan et al., 2023).

Unrolled at compile time: round k is ``llm self_refine_draft`` ``ID/draft{k}`` and ``llm
self_refine_feedback`` ``ID/feedback{k}``; round k > 1 reads the previous draft and feedback and is
guarded by ``not done``; then ``fn self_refine_result`` ``ID`` reads every round. Calls: at most 2 ×
``rounds`` (``ember plan`` counts that bound), 2 × the rounds run.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..spec.model import NodeBase, Ref
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample
from .generate import finish as finish_draft


class SelfRefineNode(NodeBase):
    op: Literal["self_refine"]
    model: str
    question: Any
    rounds: Annotated[int, Field(ge=1)] | Ref = Field(3, description="Drafts at most (the first included).")


def lower(ctx: Any, node: SelfRefineNode) -> list[Any]:
    rounds = int(ctx.static(node.rounds))
    question = ctx.value(node.question)
    model = ctx.model(node.model)
    out: list[Any] = []
    for k in range(1, rounds + 1):
        inputs = {"question": question}
        guards: tuple[Any, ...] = ()
        if k > 1:
            draft, feedback = ctx.part(f"draft{k - 1}"), ctx.part(f"feedback{k - 1}")
            inputs |= {"previous": ctx.ref(draft, "text"), "feedback": ctx.ref(feedback, "text")}
            guards = (ctx.guard("not done", {"done": ctx.ref(feedback, "done")}),)
        out.append(ctx.make("llm", "self_refine_draft", inputs, {"model": model, "round": k},
                            part=f"draft{k}", guards=guards))
        out.append(ctx.make("llm", "self_refine_feedback",
                            {"question": question, "draft": ctx.ref(ctx.part(f"draft{k}"), "text")},
                            {"model": model, "round": k}, part=f"feedback{k}"))
    drafts = ctx.list([ctx.node_ref(ctx.part(f"draft{k}")) for k in range(1, rounds + 1)])
    feedback = ctx.list([ctx.node_ref(ctx.part(f"feedback{k}")) for k in range(1, rounds + 1)])
    out.append(ctx.make("fn", "self_refine_result", {"drafts": drafts, "feedback": feedback}, {}))
    return out


def draft_prompt(question: str, previous: str | None, feedback: str | None) -> str:
    if previous is None:
        return prompts.prove(question)
    return (f"Question: {question}\n\nYour previous draft:\n{previous}\n\nYour feedback on it:\n{feedback}\n\n"
            "Revise the draft following the feedback. Think step by step, then end with a line "
            "\"Answer: <answer>\".")


def feedback_prompt(question: str, draft: str) -> str:
    return (f"Question: {question}\n\nDraft answer:\n{draft}\n\nGive concise, actionable feedback on this draft: "
            "what is wrong or missing and how to fix it. If it is correct and needs no change, say so. End with "
            "a line \"Verdict: yes\" if the draft needs no change, else \"Verdict: no\".")


def build_draft(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    prompt = draft_prompt(calls.question(values), values.get("previous"), values.get("feedback"))
    return ctx.requests(calls.messages(prompt), 1, role="generate")


def build_feedback(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    # the sim's verify role: "done" is a verdict on the draft (tpr when right, fpr when wrong)
    return calls.verdict_request(ctx, values, "draft", feedback_prompt)


def finish_feedback(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    return calls.verdict_result(node, completions, "done")


def result(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    drafts = [d for d in values["drafts"] if d is not None]
    feedback = [f for f in values["feedback"] if f is not None]
    return {"answer": drafts[-1]["answer"] if drafts else None, "rounds": len(drafts),
            "done": bool(feedback and feedback[-1]["done"])}


def _validate(args: dict[str, Any]) -> str | None:
    rounds = args.get("rounds", 3)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        return f"rounds must be an integer >= 1, got {rounds!r}"
    return None


DRAFT = PlanOp("self_refine_draft", "llm", ("text", "answer", "usage"), params=("model", "round"),
               build=build_draft, finish=finish_draft, effects=MODEL_CALL, calls=one_per_sample, role="generate",
               dry_text=lambda j: "Answer: A")
FEEDBACK = PlanOp("self_refine_feedback", "llm", ("done", "text"), params=("model", "round"), build=build_feedback,
                  finish=finish_feedback, effects=MODEL_CALL, calls=one_per_sample, role="verify",
                  dry_text=lambda j: "Verdict: no")
RESULT = PlanOp("self_refine_result", "fn", ("answer", "rounds", "done"), run=result, null_tolerant=True)

OP = OpDef(
    name="self_refine",
    summary="Self-refine: one model drafts, gives itself feedback and revises, until done or rounds.",
    node=SelfRefineNode,
    ports={"answer": Any, "rounds": int, "done": bool},
    lower=lower,
    plan_ops=(DRAFT, FEEDBACK, RESULT),
    model_fields=("model",),
    static_fields=("rounds",),
    sdk=SdkDef("SelfRefine", "Draft, self-feedback, revise for up to ``rounds``. Output: ``answer``, ``rounds``, "
               "``done``.", {"model": REQUIRED, "rounds": 3}, value_fields=("question",), validate=_validate),
    example={"op": "self_refine", "model": "m", "question": "${inputs.question}", "rounds": 2},
)

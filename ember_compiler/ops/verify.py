"""``verify``: one verifier call per candidate; the answer comes from the accepted ones (DESIGN §2)."""

from __future__ import annotations

from typing import Any, Literal

from ..answers import extract_answer, vote
from ..spec.model import Name, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef


class VerifyNode(calls.ChoiceNode):
    op: Literal["verify"]
    then: Literal["first", "vote"] = "first"
    fallback: Literal["first", "vote", "none"] = "first"
    with_: dict[Name, Any] = with_vars()


def lower(ctx: Any, node: VerifyNode) -> list[Any]:
    return calls.lower_choice(ctx, node, then=node.then, fallback=node.fallback)


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    question = calls.question(values)
    custom = calls.custom_prompt(node, values)
    out: list[Any] = []
    for i, cand in enumerate(calls.candidates(values)):
        prompt = prompts.verify(question, cand) if custom is None else f"{custom}\n\nProposed answer: {cand}"
        out += ctx.requests(calls.messages(prompt), 1, offset=i, schema=prompts.VERIFY_SCHEMA, role="verify",
                            candidate=cand, candidate_answer=extract_answer(cand))
    return out


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    answers = calls.candidate_answers(values)
    # a verifier's refusal, block or empty reply is no verdict (None); none at all fails the node
    firsts = [calls.first_kind(c) for c in completions]
    if firsts and all(firsts):
        raise calls.no_answer_error(node, firsts)
    verdicts = [None if k else calls.verdict(node, c) for k, c in zip(firsts, completions, strict=True)]
    accepted = [a for a, ok in zip(answers, verdicts, strict=True) if ok]
    if accepted:
        answer = accepted[0] if node.params.get("then", "first") == "first" else vote(accepted)["answer"]
    else:
        fallback = node.params.get("fallback", "first")
        answer = None if fallback == "none" or not answers else answers[0] if fallback == "first" \
            else vote(answers)["answer"]
    return {"verdicts": verdicts, "accepted": accepted, "answer": answer}


def per_candidate(node: Any, lengths: Any) -> int | None:
    return lengths.of(node.inputs.get("candidates"))


def verdict_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    return {"verdicts": lengths.of(node.inputs.get("candidates"))}


VERIFY = PlanOp("verify", "llm", ("verdicts", "accepted", "answer"), params=("model",),
                build=build, finish=finish, effects=MODEL_CALL, calls=per_candidate, per_call_requests=True,
                lengths=verdict_lengths, role="verify", dry_text=lambda j: "Verdict: yes")

OP = OpDef(
    name="verify",
    summary="One verifier call per candidate; answer from the accepted ones.",
    node=VerifyNode,
    ports={"verdicts": list[bool | None], "accepted": list, "answer": Any},
    lower=lower,
    plan_ops=(VERIFY,),
    model_fields=("model",),
    template_fields=("prompt",),
    sdk=SdkDef("Verify", "One verifier call per candidate. Output: ``verdicts``, ``accepted``, ``answer``.",
               {"model": REQUIRED, "prompt": None, "then": None, "fallback": None},
               value_fields=("question", "candidates")),
    example={"op": "verify", "model": "m", "question": "${inputs.question}", "candidates": ["Answer: A", "Answer: B"]},
)

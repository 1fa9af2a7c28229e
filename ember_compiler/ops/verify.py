"""``verify``: one verifier call per candidate; the answer comes from the accepted ones (DESIGN §2).

By default every candidate is verified at once (``llm verify``). With ``then: first``, ``order:
sequential`` verifies one candidate after another and stops at the first accepted (``llm
verify_sequential``): fewer calls, more latency. Both read the same sim draws per candidate, so they
accept the same answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..answers import extract_answer, vote
from ..spec.model import Name, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, Send


class VerifyNode(calls.ChoiceNode):
    op: Literal["verify"]
    then: Literal["first", "vote"] = "first"
    fallback: Literal["first", "vote", "none"] = "first"
    order: Literal["parallel", "sequential"] = Field(
        "parallel", description="sequential (with then: first): one candidate at a time, up to the first accepted.")
    with_: dict[Name, Any] = with_vars()


def lower(ctx: Any, node: VerifyNode) -> list[Any]:
    (made,) = calls.lower_choice(ctx, node, then=node.then, fallback=node.fallback)
    if node.order == "sequential":
        return [ctx.make("llm", "verify_sequential", made.inputs, made.params)]
    return [made]


def check(ck: Any, nid: str, node: VerifyNode, base: tuple) -> None:
    if node.order == "sequential" and node.then != "first":
        ck.error((*base, "order"), "E321", f"verify node '{nid}': order: sequential stops at the first accepted "
                 "candidate, so it needs then: first", "use then: first, or order: parallel to vote")


def _requests(values: dict[str, Any], ctx: CallContext, node: Any) -> list[list[Any]]:
    """Each candidate's request(s), in candidate order."""
    question = calls.question(values)
    custom = calls.custom_prompt(node, values)
    out: list[list[Any]] = []
    for i, cand in enumerate(calls.candidates(values)):
        prompt = prompts.verify(question, cand) if custom is None else f"{custom}\n\nProposed answer: {cand}"
        out.append(ctx.requests(calls.messages(prompt), 1, offset=i, schema=prompts.VERIFY_SCHEMA, role="verify",
                                candidate=cand, candidate_answer=extract_answer(cand)))
    return out


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    return [r for per in _requests(values, ctx, node) for r in per]


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    # a verifier's refusal, block or empty reply is no verdict (None); none at all fails the node
    firsts = [calls.first_kind(c) for c in completions]
    if firsts and all(firsts):
        raise calls.no_answer_error(node, firsts)
    verdicts = [None if k else calls.verdict(node, c) for k, c in zip(firsts, completions, strict=True)]
    return _decide(node, values, verdicts)


def _decide(node: Any, values: dict[str, Any], verdicts: list[bool | None]) -> dict[str, Any]:
    answers = calls.candidate_answers(values)
    accepted = [a for a, ok in zip(answers, verdicts, strict=True) if ok]
    if accepted:
        answer = accepted[0] if node.params.get("then", "first") == "first" else vote(accepted)["answer"]
    else:
        fallback = node.params.get("fallback", "first")
        answer = None if fallback == "none" or not answers else answers[0] if fallback == "first" \
            else vote(answers)["answer"]
    return {"verdicts": verdicts, "accepted": accepted, "answer": answer}


async def drive_sequential(node: Any, values: dict[str, Any], ctx: CallContext, send: Send) -> dict[str, Any]:
    """Verify the candidates in order and stop at the first accepted; unverified ones have no verdict."""
    per = _requests(values, ctx, node)
    verdicts: list[bool | None] = [None] * len(per)
    kinds: list[str | None] = []
    for i, requests in enumerate(per):
        (completion,) = await send(requests)
        kind = calls.first_kind(completion)
        kinds.append(kind)
        verdicts[i] = None if kind else calls.verdict(node, completion)
        if verdicts[i]:
            break
    if kinds and all(kinds):
        raise calls.no_answer_error(node, kinds)
    return _decide(node, values, verdicts)


def per_candidate(node: Any, lengths: Any) -> int | None:
    return lengths.of(node.inputs.get("candidates"))


def verdict_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    return {"verdicts": lengths.of(node.inputs.get("candidates"))}


VERIFY = PlanOp("verify", "llm", ("verdicts", "accepted", "answer"), params=("model",),
                build=build, finish=finish, effects=MODEL_CALL, calls=per_candidate, per_call_requests=True,
                lengths=verdict_lengths, role="verify", dry_text=lambda j: "Verdict: yes")
# the dry run answers "no" so that `ember plan` counts the worst case (every candidate verified)
VERIFY_SEQUENTIAL = PlanOp("verify_sequential", "llm", ("verdicts", "accepted", "answer"), params=("model",),
                           drive=drive_sequential, effects=MODEL_CALL, calls=per_candidate, per_call_requests=True, sequential=True,
                           lengths=verdict_lengths, role="verify", dry_text=lambda j: "Verdict: no")

OP = OpDef(
    name="verify",
    summary="One verifier call per candidate; answer from the accepted ones.",
    node=VerifyNode,
    ports={"verdicts": list[bool | None], "accepted": list, "answer": Any},
    lower=lower,
    plan_ops=(VERIFY, VERIFY_SEQUENTIAL),
    check=check,
    model_fields=("model",),
    template_fields=("prompt",),
    sdk=SdkDef("Verify", "One verifier call per candidate. Output: ``verdicts``, ``accepted``, ``answer``.",
               {"model": REQUIRED, "prompt": None, "then": None, "fallback": None, "order": None},
               value_fields=("question", "candidates")),
    example={"op": "verify", "model": "m", "question": "${inputs.question}", "candidates": ["Answer: A", "Answer: B"]},
)

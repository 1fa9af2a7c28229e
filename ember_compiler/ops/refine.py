"""``refine``: the verifier-prover loop — prove, verify, retry with the feedback, up to ``max_rounds``.

Unrolled at compile time: round k is ``llm refine_prove`` ``ID/prove{k}`` and ``llm refine_check``
``ID/check{k}``; round k > 1 reads the previous proof and feedback and is guarded by ``not accepted``;
then ``fn refine_result`` ``ID`` reads every round.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..spec.model import NodeBase, Ref
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample
from .generate import finish as finish_proof


class RefineNode(NodeBase):
    op: Literal["refine"]
    prover: str
    verifier: str
    question: Any
    max_rounds: Annotated[int, Field(ge=1)] | Ref = 3


def lower(ctx: Any, node: RefineNode) -> list[Any]:
    rounds = int(ctx.static(node.max_rounds))
    question = ctx.value(node.question)
    prover, verifier = ctx.model(node.prover), ctx.model(node.verifier)
    out: list[Any] = []
    for k in range(1, rounds + 1):
        inputs = {"question": question}
        guards: tuple[Any, ...] = ()
        if k > 1:
            prev_prove, prev_check = ctx.part(f"prove{k - 1}"), ctx.part(f"check{k - 1}")
            inputs |= {"previous": ctx.ref(prev_prove, "text"), "feedback": ctx.ref(prev_check, "text")}
            guards = (ctx.guard("not accepted", {"accepted": ctx.ref(prev_check, "accepted")}),)
        out.append(ctx.make("llm", "refine_prove", inputs, {"model": prover, "round": k},
                            part=f"prove{k}", guards=guards))
        check_inputs = {"question": question, "candidate": ctx.ref(ctx.part(f"prove{k}"), "answer")}
        out.append(ctx.make("llm", "refine_check", check_inputs, {"model": verifier, "round": k},
                            part=f"check{k}"))
    proofs = ctx.list([ctx.node_ref(ctx.part(f"prove{k}")) for k in range(1, rounds + 1)])
    checks = ctx.list([ctx.node_ref(ctx.part(f"check{k}")) for k in range(1, rounds + 1)])
    out.append(ctx.make("fn", "refine_result", {"proofs": proofs, "checks": checks}, {}))
    return out


def build_prove(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    prompt = prompts.prove(calls.question(values), values.get("previous"), values.get("feedback"))
    return ctx.requests(calls.messages(prompt), 1, role="generate")


def build_check(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    return calls.verdict_request(ctx, values, "candidate", prompts.verify)


def finish_check(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    return calls.verdict_result(node, completions, "accepted")


def result(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    proofs = [p for p in values["proofs"] if p is not None]
    checks = [c for c in values["checks"] if c is not None]
    return {
        "answer": proofs[-1]["answer"] if proofs else None,
        "rounds": len(proofs),
        "accepted": bool(checks and checks[-1]["accepted"]),
    }


def last_round(node: Any, port: str) -> tuple[str, str] | None:
    """The result's answer is the last round's when that round runs (no later one can)."""
    if port != "answer":
        return None
    last = node.inputs["proofs"].to_json()["$list"][-1]
    return (last["$node"], "answer") if "$node" in last else None


def _validate(args: dict[str, Any]) -> str | None:
    rounds = args.get("max_rounds", 3)
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        return f"max_rounds must be an integer >= 1, got {rounds!r}"
    return None


PROVE = PlanOp("refine_prove", "llm", ("text", "answer", "usage"), params=("model", "round"), build=build_prove,
               finish=finish_proof, effects=MODEL_CALL, calls=one_per_sample, role="generate",
               dry_text=lambda j: "Answer: A", streams=("text", "answer"))
CHECK = PlanOp("refine_check", "llm", ("accepted", "text"), params=("model", "round"), build=build_check,
               finish=finish_check, effects=MODEL_CALL, calls=one_per_sample, role="verify",
               dry_text=lambda j: "Verdict: yes")
RESULT = PlanOp("refine_result", "fn", ("answer", "rounds", "accepted"), run=result, null_tolerant=True,
                passes=last_round)

OP = OpDef(
    name="refine",
    summary="Verifier-prover loop: prove, verify, retry with feedback, up to max_rounds.",
    node=RefineNode,
    ports={"answer": Any, "rounds": int, "accepted": bool},
    lower=lower,
    plan_ops=(PROVE, CHECK, RESULT),
    model_fields=("prover", "verifier"),
    static_fields=("max_rounds",),
    sdk=SdkDef("Refine", "Verifier-prover rounds. Output: ``answer``, ``rounds``, ``accepted``.",
               {"prover": REQUIRED, "verifier": REQUIRED, "max_rounds": 3}, value_fields=("question",),
               validate=_validate),
    example={"op": "refine", "prover": "m", "verifier": "m", "question": "${inputs.question}", "max_rounds": 2},
)

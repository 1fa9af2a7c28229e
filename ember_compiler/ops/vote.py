"""``vote``: plurality over extracted, normalized answers; ties go to the first seen (DESIGN §2).

The ``vote-cutoff`` pass (``compiler/passes/vote_cutoff.py``) fuses an ensemble with the vote over its
answers into one ``vote_cutoff`` plan node, defined here: it draws the samples in order, in batches,
and stops as soon as the vote is decided.
"""

from __future__ import annotations

from typing import Any, Literal

from ..answers import extract_answer, normalize, vote
from ..spec.model import NodeBase
from . import calls
from .base import MODEL_CALL, CallContext, OpDef, PlanOp, SdkDef, Send, one_per_sample
from .generate import distinct_answers


class VoteNode(NodeBase):
    op: Literal["vote"]
    candidates: Any
    extract: str | None = None
    normalize: Literal["none", "strip", "lower", "number"] = "strip"


def lower(ctx: Any, node: VoteNode) -> list[Any]:
    params = {"normalize": node.normalize, **calls.optional(ctx, node, "extract")}
    return [ctx.make("fn", "vote", {"candidates": ctx.value(node.candidates)}, params)]


def run(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    cands = values.get("candidates")
    if cands is None:
        cands = []
    elif not isinstance(cands, list):
        cands = [cands]
    return vote(cands, node.params.get("extract"), node.params.get("normalize", "strip"))


# -- vote_cutoff ------------------------------------------------------------------------------------
def still_needed(counts: dict[str, int], remaining: int) -> int:
    """How many more samples must be drawn before the vote can be decided (0: it is decided).

    `counts` holds the votes so far in first-seen order. The leader is the first answer with the
    most votes; it is decided when no answer can overtake it with all `remaining` samples: an
    answer seen before the leader needs strictly more votes than the leader to win, one seen after
    it (or not yet seen) needs more too, but ties go to the leader. The number returned is the
    fewest samples that *could* decide it (if they all went to the leader).
    """
    if remaining <= 0:
        return 0
    if not counts:
        return (remaining + 1) // 2  # all the same answer: decided after ceil(n / 2)
    items = list(counts.items())
    lead = max(range(len(items)), key=lambda i: (items[i][1], -i))
    lead_votes = items[lead][1]
    threat = 0  # an answer not seen yet
    for i, (_, v) in enumerate(items):
        if i != lead:
            threat = max(threat, v + (1 if i < lead else 0))
    gap = threat + remaining - lead_votes  # > 0: still open
    return 0 if gap <= 0 else min(remaining, (gap + 1) // 2)


async def drive_cutoff(node: Any, values: dict[str, Any], ctx: CallContext, send: Send) -> dict[str, Any]:
    """Draw the ensemble's samples in index order, in batches of `still_needed`, until decided."""
    msgs = calls.rendered(node, values)
    n = int(node.params.get("n", 1))
    regex, vote_regex = node.params.get("extract"), node.params.get("vote_extract")
    mode = node.params.get("normalize", "strip")
    counts: dict[str, int] = {}
    drawn = 0
    kinds: list[str | None] = []
    while (need := still_needed(counts, n - drawn)) > 0:
        # requested as the ensemble's own samples (same node id and indices: the same draws)
        completions = await send(ctx.requests(msgs, need, offset=drawn, role="generate",
                                              node_id=node.params.get("ensemble", node.id)))
        batch = calls.kinds(completions)
        kinds += batch
        for text, kind in zip(calls.texts(completions), batch, strict=True):
            if kind is not None:  # a refusal, block or empty reply is no vote
                continue
            key = normalize(extract_answer(extract_answer(text, regex), vote_regex), mode)
            counts[key] = counts.get(key, 0) + 1
        drawn += need
    if kinds and all(kinds):
        raise calls.no_answer_error(node, kinds)
    answer, best = None, -1
    for key, v in counts.items():  # first-seen order: ">" keeps the first on ties, as `vote` does
        if v > best:
            answer, best = key, v
    return {"answer": answer, "drawn": drawn, "saved": n - drawn}


VOTE = PlanOp("vote", "fn", ("answer", "counts", "confidence"), params=("normalize",), run=run)
VOTE_CUTOFF = PlanOp("vote_cutoff", "llm", ("answer", "drawn", "saved"), params=("model", "prompt", "n"),
                     drive=drive_cutoff, effects=MODEL_CALL, calls=one_per_sample, role="generate",
                     dry_text=distinct_answers)

OP = OpDef(
    name="vote",
    summary="Plurality vote over extracted, normalized answers; ties go to the first seen.",
    node=VoteNode,
    ports={"answer": Any, "counts": dict, "confidence": float},
    lower=lower,
    plan_ops=(VOTE, VOTE_CUTOFF),
    sdk=SdkDef("Vote", "Plurality vote. Output: ``answer``, ``counts``, ``confidence``.",
               {"normalize": None, "extract": None}, value_fields=("candidates",)),
    example={"op": "vote", "candidates": ["A", "B", "A"]},
)

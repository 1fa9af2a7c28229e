"""``critic``: one call over all candidates writes a critique (strengths, weaknesses) of each (Archon's critic).

``critiques`` is aligned with the ``candidates`` list as given (null where a candidate was null or blank),
so ``critiques: ${crit.critiques}`` beside the same ``candidates`` on a ``judge``, ``rank`` or ``fuse``
shows each model the critique of each candidate.

On the sim, the critique of a correct candidate ends ``Assessment: sound`` with probability ``tpr`` and
that of a wrong one with probability ``fpr`` (else ``flawed``), one independent draw per candidate.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Literal

from ..answers import extract_answer
from ..spec.model import Name, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class CriticNode(calls.ChoiceNode):
    op: Literal["critic"]
    with_: dict[Name, Any] = with_vars()


# "Critique 2:", "**Critique of candidate 2**", Archon's "[2]"
_HEADING = re.compile(r"(?:^[\s#*]*critique\s+(?:of\s+)?(?:candidate\s+)?(\d+)|\[(\d+)\])[\s*]*[:.]?[\s*]*",
                      re.IGNORECASE | re.MULTILINE)


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    pairs = calls.paired(values)
    if not pairs:
        return []
    cands = [c for _, c, _ in pairs]
    prompt = calls.custom_prompt(node, values) or prompts.critic(calls.question(values), cands)
    return ctx.requests(calls.messages(prompt), 1, schema=prompts.CRITIC_SCHEMA, role="critic",
                        candidate_answers=[extract_answer(c) for c in cands])


def sections(text: str, count: int) -> list[str]:
    """The critique of each of `count` candidates in a critic's text ("" where it wrote none)."""
    found: dict[int, str] = {}
    heads = list(_HEADING.finditer(text))
    for h, nxt in zip(heads, [*heads[1:], None][:len(heads)], strict=True):
        number = int(h.group(1) or h.group(2))
        body = text[h.end():nxt.start() if nxt is not None else len(text)].strip()
        if 1 <= number <= count and number not in found:
            found[number] = body
    if not heads and count == 1:  # one candidate: the whole reply is its critique
        found[1] = text.strip()
    return [found.get(i, "") for i in range(1, count + 1)]


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    raw = values.get("candidates")
    size = len(raw) if isinstance(raw, list) else 0 if raw is None else 1
    pairs = calls.paired(values)
    if not completions:
        return {"critiques": [None] * size, "text": ""}
    calls.first_answer(node, completions)  # a refusal, block or empty reply is no critique
    text = completions[0].texts[0]
    obj = calls.reply(node, completions[0], "critiques")
    if obj is not None and isinstance(obj["critiques"], list):
        got = [f"Strengths: {c.get('strengths', '')}\nWeaknesses: {c.get('weaknesses', '')}"
               if isinstance(c, dict) else str(c) for c in obj["critiques"]]
        parts = (got + [""] * len(pairs))[:len(pairs)]
    else:
        parts = sections(text, len(pairs))
    out: list[str | None] = [None] * size
    for (i, _, _), part in zip(pairs, parts, strict=True):
        out[i] = part
    return {"critiques": out, "text": text}


def _uniform(draws: Any, sample: int, item: int) -> float:
    """One more uniform per (sample, candidate), hashed apart from the sample's own two."""
    h = draws.base.copy()
    h.update(b"critic\x1f%d\x1f%d" % (draws.start + sample, item))
    return struct.unpack("<Q", h.digest()[:8])[0] * 2.0**-64


def sim_critic(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    answers = [None if a is None else str(a).strip() for a in meta.get("candidate_answers") or ()]
    texts = []
    for j in range(draws.n):
        parts = []
        for i, ans in enumerate(answers, 1):
            p = 0.5 if truth is None else cfg.tpr if ans == truth else cfg.fpr
            sound = _uniform(draws, j, i) < p
            parts.append(f"Critique {i}:\nStrengths: it answers {ans}.\nWeaknesses: "
                         f"{'none found' if sound else 'the answer looks wrong'}.\n"
                         f"Assessment: {'sound' if sound else 'flawed'}")
        texts.append("\n\n".join(parts))
    return texts


def _dry(j: int) -> str:
    return "Critique 1:\nStrengths: clear.\nWeaknesses: none.\nAssessment: sound"


def critique_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    return {"critiques": lengths.of(node.inputs.get("candidates"))}


CRITIC = PlanOp("critic", "llm", ("critiques", "text"), params=("model",), build=build, finish=finish,
                effects=MODEL_CALL, calls=one_per_sample, lengths=critique_lengths, role="critic", sim=sim_critic,
                dry_text=_dry)

OP = OpDef(
    name="critic",
    summary="One call critiques every candidate (strengths, weaknesses); critiques aligned with candidates.",
    node=CriticNode,
    ports={"critiques": list[str | None], "text": str},
    lower=calls.lower_choice,
    plan_ops=(CRITIC,),
    model_fields=("model",),
    template_fields=("prompt",),
    sdk=SdkDef("Critic", "One call critiques every candidate. Output: ``critiques`` (aligned with the "
               "candidates), ``text``.", {"model": REQUIRED, "prompt": None},
               value_fields=("question", "candidates")),
    example={"op": "critic", "model": "m", "question": "${inputs.question}",
             "candidates": ["Answer: A", "Answer: B"]},
)

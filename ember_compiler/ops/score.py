"""``score``: a model (or a reward model behind any provider) scores each candidate, all in parallel; best-of-N.

One call per candidate. A score is read from a structured reply's ``score``, else the last ``Score: X``
line, else a reply that is a bare number (a reward model's); anything else is no score (null, below any score). ``best``
is the position in the input list of the highest score (ties to the first, so the first candidate when
no reply had a score) and ``answer`` that candidate's extracted answer; ``ranked`` is the candidates
by score (highest first, no score last, ties in input order) and ``top`` its first ``k`` (Archon's
unit-test evaluator keeps those).

On the sim (``judge_accuracy`` = q): a correct candidate scores 10·U^((1−q)/q) and a wrong one 10·U, U
uniform on [0, 1), independently — so a correct one outscores a wrong one with probability q, and
best-of-N over c correct and w wrong candidates is right with probability cα/(cα + w), α = q/(1−q).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from ..answers import extract_answer
from ..spec.model import Name, Ref, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef


class ScoreNode(calls.ChoiceNode):
    op: Literal["score"]
    k: Annotated[int, Field(ge=1)] | Ref = Field(1, description="How many candidates `top` keeps.")
    with_: dict[Name, Any] = with_vars()


def lower(ctx: Any, node: ScoreNode) -> list[Any]:
    return calls.lower_choice(ctx, node, k=int(ctx.static(node.k)))


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SCORE_LINE = re.compile(rf"^[\s*#]*score[\s*]*:[\s*]*({_NUMBER})", re.IGNORECASE | re.MULTILINE)
_BARE = re.compile(rf"^\s*({_NUMBER})\s*$")


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    question = calls.question(values)
    custom = calls.custom_prompt(node, values)
    out: list[Any] = []
    for i, (_, cand, _) in enumerate(calls.paired(values)):
        prompt = prompts.score(question, cand) if custom is None else f"{custom}\n\nResponse: {cand}"
        out += ctx.requests(calls.messages(prompt), 1, offset=i, schema=prompts.SCORE_SCHEMA, role="score",
                            candidate_answer=extract_answer(cand))
    return out


def read_score(node: Any, completion: Any) -> float | None:
    if calls.first_kind(completion):
        return None
    text = completion.texts[0]
    obj = calls.reply(node, completion, "score") if text.lstrip().startswith(("{", "```")) else None
    if obj is not None:
        try:
            return float(obj["score"])
        except (TypeError, ValueError):
            return None
    last = None
    for last in _SCORE_LINE.finditer(text):  # noqa: B007 - the last one counts
        pass
    found = last or _BARE.match(text)
    return float(found.group(1)) if found else None


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    pairs = calls.paired(values)
    raw = values.get("candidates")
    size = len(raw) if isinstance(raw, list) else 0 if raw is None else 1
    firsts = [calls.first_kind(c) for c in completions]
    if firsts and all(firsts):
        raise calls.no_answer_error(node, firsts)
    scores: list[float | None] = [None] * size
    best: int | None = None
    for (i, _, _), c in zip(pairs, completions, strict=True):
        s = read_score(node, c)
        scores[i] = s
        # no score is the lowest (with none at all every candidate ties); ties go to the first
        if best is None or (s is not None and (scores[best] is None or s > scores[best])):
            best = i
    answer = None if best is None else extract_answer(raw[best] if isinstance(raw, list) else raw)
    # highest first, no score last, ties in input order
    ranked = [c for _, c in sorted(((-(scores[i] if scores[i] is not None else float("-inf")), p), c)
                                   for p, (i, c, _) in enumerate(pairs))]
    return {"scores": scores, "best": best, "answer": answer, "ranked": ranked,
            "top": ranked[:int(node.params.get("k", 1))]}


def sim_score(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    cand = meta.get("candidate_answer")
    correct = truth is not None and cand is not None and str(cand).strip() == truth
    q = cfg.judge_accuracy if truth is not None else 0.5
    texts = []
    for u1, _ in draws.pairs():
        u = u1 * 2.0**-64
        if not correct:
            s = 10.0 * u
        elif q >= 1.0:
            s = 10.0
        else:
            s = 0.0 if q <= 0.0 else 10.0 * u ** ((1.0 - q) / q)
        texts.append(f"Scoring the response (sim).\nScore: {s:.6f}")
    return texts


def per_candidate(node: Any, lengths: Any) -> int | None:
    return lengths.of(node.inputs.get("candidates"))


def score_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    n = lengths.of(node.inputs.get("candidates"))
    return {"scores": n, "ranked": n, "top": None if n is None else min(n, int(node.params.get("k", 1)))}


def _validate(args: dict[str, Any]) -> str | None:
    k = args.get("k", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        return f"k must be an integer >= 1, got {k!r}"
    return None


SCORE = PlanOp("score", "llm", ("scores", "best", "answer", "ranked", "top"), params=("model",), build=build, finish=finish,
               effects=MODEL_CALL, calls=per_candidate, per_call_requests=True, lengths=score_lengths, role="score",
               sim=sim_score, dry_text=lambda j: "Score: 5")

OP = OpDef(
    name="score",
    summary="One scoring call per candidate, in parallel; the best (argmax, ties to the first) is the answer.",
    node=ScoreNode,
    ports={"scores": list[float | None], "best": int | None, "answer": Any, "ranked": list[str], "top": list[str]},
    lower=lower,
    plan_ops=(SCORE,),
    model_fields=("model",),
    template_fields=("prompt",),
    static_fields=("k",),
    sdk=SdkDef("Score", "A model scores each candidate (best-of-N). Output: ``scores``, ``best``, ``answer``, "
               "``ranked``, ``top``.", {"model": REQUIRED, "prompt": None, "k": 1},
               value_fields=("question", "candidates"), validate=_validate),
    example={"op": "score", "model": "m", "question": "${inputs.question}", "candidates": ["Answer: A", "Answer: B"]},
)

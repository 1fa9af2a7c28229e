"""``fuse``: a model synthesizes the candidates into one new answer (Archon's fuser, MoA's aggregator).

Unlike ``judge``, which picks, a fuser writes a new response from all it is shown. ``top_k`` shows only
the first k candidates (``candidates: ${rank.ranked}, top_k: 3`` fuses the three best); ``n`` draws
several fused responses (one request with ``n`` where the provider can), as an Archon fuser's
``samples``.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Annotated, Any, Literal

from pydantic import Field

from ..answers import extract_answer
from ..providers.sim import DEFAULT_CHOICES
from ..spec.model import Name, Ref, with_vars
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class FuseNode(calls.ChoiceNode):
    op: Literal["fuse"]
    critiques: Any = Field(None, description="Critiques aligned with the candidates (a critic's), shown beside them.")
    top_k: Annotated[int, Field(ge=1)] | Ref | None = Field(None, description="Fuse only the first k candidates.")
    n: Annotated[int, Field(ge=1)] | Ref = Field(1, description="Fused responses to draw.")
    with_: dict[Name, Any] = with_vars()


def lower(ctx: Any, node: FuseNode) -> list[Any]:
    params: dict[str, Any] = {"n": int(ctx.static(node.n))}
    if node.top_k is not None:
        params["top_k"] = int(ctx.static(node.top_k))
    return calls.lower_choice(ctx, node, **params)


def shown(node: Any, values: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    pairs = calls.paired(values)
    top_k = node.params.get("top_k")
    return pairs if top_k is None else pairs[:int(top_k)]


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    pairs = shown(node, values)
    if not pairs:
        return []
    cands = [c for _, c, _ in pairs]
    prompt = calls.custom_prompt(node, values) or prompts.fuse(calls.question(values), cands,
                                                               calls.shown_critiques(pairs))
    seen = calls.sim_visible(pairs)
    return ctx.requests(calls.messages(prompt), int(node.params.get("n", 1)), role="fuse",
                        candidate_answers=[extract_answer(c) for c, s in zip(cands, seen, strict=True) if s])


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    if not completions:
        return {"answer": None, "text": "", "responses": [], "answers": []}
    kinds = calls.kinds(completions)
    samples = calls.answered(node, completions, kinds)  # raises when no sample is an answer
    answers = [None if t is None else extract_answer(t) for t in samples]
    first = next(i for i, t in enumerate(samples) if t is not None)
    return {"answer": answers[first], "text": samples[first], "responses": calls.texts(completions),
            "answers": answers}


def sim_fuse(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    """Correct with ``judge_accuracy`` when a correct candidate is among those it sees, else with
    ``accuracy``; a wrong fusion is drawn like a generator's wrong answer (``choices``, ``wrong_weights``)."""
    seen = {str(a).strip() for a in meta.get("candidate_answers") or () if a is not None}
    p = cfg.judge_accuracy if truth is not None and truth in seen else cfg.accuracy
    raw = cfg.choices or meta.get("choices")
    choices = tuple(str(c) for c in raw) if isinstance(raw, (list, tuple)) and raw else DEFAULT_CHOICES
    wrong, cum = cfg.wrong_pool(choices, truth)
    k = len(wrong)
    texts = []
    for u1, u2 in draws.pairs():
        if truth is not None and (u1 * 2.0**-64 < p or k == 0):
            ans = truth
        elif cum is None:
            ans = wrong[(u2 * k) >> 64]
        else:
            ans = wrong[min(bisect_right(cum, u2 * 2.0**-64), k - 1)]
        texts.append("Fusing the candidates (sim).\nAnswer: " + ans)
    return texts


def sample_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    n = int(node.params.get("n", 1))
    return {"responses": n, "answers": n}


def _validate(args: dict[str, Any]) -> str | None:
    for name, low in (("n", 1), ("top_k", 1)):
        v = args.get(name)
        if v is None and name == "top_k":
            continue
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            return f"{name} must be an integer >= 1, got {v!r}"
    return None


FUSE = PlanOp("fuse", "llm", ("answer", "text", "responses", "answers"), params=("model", "n"), build=build,
              finish=finish, effects=MODEL_CALL, calls=one_per_sample, lengths=sample_lengths, role="fuse",
              sim=sim_fuse, dry_text=lambda j: "Answer: A")

OP = OpDef(
    name="fuse",
    summary="A model synthesizes the (first top_k) candidates into one new answer (Archon's fuser, MoA).",
    node=FuseNode,
    ports={"answer": Any, "text": str, "responses": list[str], "answers": list[str | None]},
    lower=lower,
    plan_ops=(FUSE,),
    model_fields=("model",),
    template_fields=("prompt",),
    static_fields=("top_k", "n"),
    check=calls.check_critiques,
    sdk=SdkDef("Fuse", "A model synthesizes the candidates into a new answer. Output: ``answer``, ``text``, "
               "``responses``, ``answers``.", {"model": REQUIRED, "prompt": None, "top_k": None, "n": 1},
               value_fields=("question", "candidates", "critiques"), validate=_validate),
    example={"op": "fuse", "model": "m", "question": "${inputs.question}", "top_k": 2,
             "candidates": ["Answer: A", "Answer: B", "Answer: C"]},
)

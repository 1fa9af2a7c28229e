"""``rank``: a model orders the candidates, listwise (one call) or pairwise (LLM-Blender).

``method: listwise`` asks one call for the whole order (``Ranking: 2 > 1 > 3``); candidate at place p
(0-based) of m scores m − p. ``method: pairwise`` compares every ordered pair (i, j), i ≠ j, in its own
call, all at once: the call showing i first and j second gives M_ij = +1 when it prefers i, −1 when it
prefers j (0 without a verdict), and s_i = Σ_j (M_ij − M_ji) as LLM-Blender's PairRanker aggregates —
wins minus losses over the 2(N − 1) comparisons i takes part in. N candidates cost N(N − 1) calls.

Ports: ``order`` (positions in the input list, best first), ``ranked`` (the candidates in that order),
``scores`` (aligned with the input list; null for a null or blank candidate), ``top`` (the first ``k``),
``top_critiques`` (their critiques, when ``critiques:`` was given) and ``answer`` (the best one's
extracted answer). Ties keep the input order.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from ..answers import extract_answer
from ..spec.model import NodeBase, Ref
from . import calls, prompts
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample


class RankNode(NodeBase):
    op: Literal["rank"]
    model: str
    question: Any
    candidates: Any
    critiques: Any = Field(None, description="Critiques aligned with the candidates (a critic's), shown beside them.")
    method: Literal["listwise", "pairwise"] = "listwise"
    k: Annotated[int, Field(ge=1)] | Ref = Field(1, description="How many candidates `top` keeps.")


def lower(ctx: Any, node: RankNode) -> list[Any]:
    inputs = {"question": ctx.value(node.question), "candidates": ctx.value(node.candidates)}
    if node.critiques is not None:
        inputs["critiques"] = ctx.value(node.critiques)
    op = "rank_list" if node.method == "listwise" else "rank_pairs"
    return [ctx.make("llm", op, inputs, {"model": ctx.model(node.model), "k": int(ctx.static(node.k))})]


def result(node: Any, values: dict[str, Any], pairs: list[tuple[int, str, str | None]],
           scores: list[float]) -> dict[str, Any]:
    """The ports from one score per real candidate (higher is better; ties keep the input order)."""
    raw = values.get("candidates")
    size = len(raw) if isinstance(raw, list) else 0 if raw is None else 1
    best_first = sorted(range(len(pairs)), key=lambda p: -scores[p])
    k = int(node.params.get("k", 1))
    out_scores: list[float | None] = [None] * size
    for (i, _, _), s in zip(pairs, scores, strict=True):
        out_scores[i] = s
    ranked = [pairs[p][1] for p in best_first]
    crit = calls.shown_critiques(pairs)
    return {"order": [pairs[p][0] for p in best_first], "ranked": ranked, "scores": out_scores, "top": ranked[:k],
            "top_critiques": None if crit is None else [crit[p] for p in best_first[:k]],
            "answer": extract_answer(ranked[0]) if ranked else None}


# -- listwise -----------------------------------------------------------------------------------------
_RANKING = re.compile(r"^[\s*]*ranking[\s*]*:[\s*]*(.+)$", re.IGNORECASE | re.MULTILINE)


def build_list(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    pairs = calls.paired(values)
    if not pairs:
        return []
    cands = [c for _, c, _ in pairs]
    prompt = prompts.rank(calls.question(values), cands, calls.shown_critiques(pairs))
    return ctx.requests(calls.messages(prompt), 1, schema=prompts.RANK_SCHEMA, role="rank",
                        candidate_answers=[extract_answer(c) for c in cands], visible=calls.sim_visible(pairs))


def read_ranking(text: str, obj: dict[str, Any] | None, count: int) -> list[int]:
    """0-based positions, best first: the numbers the model gave (valid, once each), then the ones it left out."""
    if obj is not None and isinstance(obj.get("ranking"), list):
        said = [str(x) for x in obj["ranking"]]
    else:
        last = None
        for last in _RANKING.finditer(text):  # noqa: B007 - the last one counts
            pass
        said = re.findall(r"\d+", last.group(1) if last is not None else extract_answer(text))
    order: list[int] = []
    for s in said:
        p = int(s) - 1 if s.strip().isdigit() else -1
        if 0 <= p < count and p not in order:
            order.append(p)
    return order + [p for p in range(count) if p not in order]


def finish_list(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    pairs = calls.paired(values)
    if not completions or not pairs:
        return result(node, values, pairs, [])
    calls.first_answer(node, completions)  # a refusal, block or empty reply is no ranking
    obj = calls.reply(node, completions[0], "ranking")
    order = read_ranking(completions[0].texts[0], obj, len(pairs))
    scores = [0.0] * len(pairs)
    for place, p in enumerate(order):
        scores[p] = float(len(pairs) - place)
    return result(node, values, pairs, scores)


def sim_rank(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    """First: a correct candidate (uniformly among the correct ones it sees) with ``judge_accuracy`` when
    it sees both kinds, else a uniformly chosen one of the others; the rest follow in input order."""
    answers = [None if a is None else str(a).strip() for a in meta.get("candidate_answers") or ()]
    seen = meta.get("visible") or [True] * len(answers)
    pool = [i for i, s in enumerate(seen) if s]
    right = [i for i in pool if truth is not None and answers[i] == truth]
    wrong = [i for i in pool if i not in right]
    texts = []
    for u1, u2 in draws.pairs():
        group = right if right and (not wrong or u1 * 2.0**-64 < cfg.judge_accuracy) else wrong or pool
        top = group[(u2 * len(group)) >> 64]
        order = [top] + [i for i in range(len(answers)) if i != top]
        texts.append("Ranking the candidates (sim).\nRanking: " + " > ".join(str(i + 1) for i in order))
    return texts


# -- pairwise -----------------------------------------------------------------------------------------
def ordered_pairs(count: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(count) for b in range(count) if a != b]


def build_pairs(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    pairs = calls.paired(values)
    crit = calls.shown_critiques(pairs)
    question = calls.question(values)
    out: list[Any] = []
    for j, (a, b) in enumerate(ordered_pairs(len(pairs))):
        first, second = pairs[a][1], pairs[b][1]
        shown = None if crit is None else (crit[a], crit[b])
        out += ctx.requests(calls.messages(prompts.compare(question, first, second, shown)), 1, offset=j,
                            schema=prompts.COMPARE_SCHEMA, role="compare", first_answer=extract_answer(first),
                            second_answer=extract_answer(second))
    return out


def preference(node: Any, completion: Any) -> int:
    """+1: the call preferred the response shown first; −1: the second; 0: no verdict."""
    if calls.first_kind(completion):
        return 0
    obj = calls.reply(node, completion, "answer")
    said = str(obj["answer"]) if obj is not None else extract_answer(completion.texts[0])
    said = said.strip().strip("*#").strip()[:1]
    return 1 if said == "1" else -1 if said == "2" else 0


def finish_pairs(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    pairs = calls.paired(values)
    firsts = [calls.first_kind(c) for c in completions]
    if firsts and all(firsts):
        raise calls.no_answer_error(node, firsts)
    scores = [0.0] * len(pairs)
    for (a, b), c in zip(ordered_pairs(len(pairs)), completions, strict=True):
        m = preference(node, c)  # M_ab; s_a gains M_ab and s_b loses it (s_b = Σ (M_bj − M_jb))
        scores[a] += m
        scores[b] -= m
    return result(node, values, pairs, scores)


def sim_compare(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    """The correct one of a correct and a wrong response with ``judge_accuracy``; otherwise either, 1/2 each."""
    a = str(meta.get("first_answer") or "").strip()
    b = str(meta.get("second_answer") or "").strip()
    ok_a, ok_b = truth is not None and a == truth, truth is not None and b == truth
    texts = []
    for u1, _ in draws.pairs():
        u = u1 * 2.0**-64
        first = (ok_a if u < cfg.judge_accuracy else ok_b) if ok_a != ok_b else u < 0.5
        texts.append(f"Comparing the two responses (sim).\nAnswer: {1 if first else 2}")
    return texts


def pair_calls(node: Any, lengths: Any) -> int | None:
    n = lengths.of(node.inputs.get("candidates"))
    return None if n is None else n * (n - 1)


def rank_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    n = lengths.of(node.inputs.get("candidates"))
    k = int(node.params.get("k", 1))
    return {"order": n, "ranked": n, "scores": n, "top": None if n is None else min(k, n)}


def _validate(args: dict[str, Any]) -> str | None:
    if args.get("method") not in ("listwise", "pairwise"):
        return f"method must be 'listwise' or 'pairwise', got {args.get('method')!r}"
    k = args.get("k", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        return f"k must be an integer >= 1, got {k!r}"
    return None


PORTS = ("order", "ranked", "scores", "top", "top_critiques", "answer")
RANK_LIST = PlanOp("rank_list", "llm", PORTS, params=("model", "k"), build=build_list, finish=finish_list,
                   effects=MODEL_CALL, calls=one_per_sample, lengths=rank_lengths, role="rank", sim=sim_rank,
                   dry_text=lambda j: "Ranking: 1 > 2")
RANK_PAIRS = PlanOp("rank_pairs", "llm", PORTS, params=("model", "k"), build=build_pairs, finish=finish_pairs,
                    effects=MODEL_CALL, calls=pair_calls, per_call_requests=True, lengths=rank_lengths,
                    role="compare", sim=sim_compare, dry_text=lambda j: "Answer: 1")

OP = OpDef(
    name="rank",
    summary="A model orders the candidates: listwise (one call) or pairwise (N(N-1) calls, LLM-Blender scores).",
    node=RankNode,
    ports={"order": list[int], "ranked": list[str], "scores": list[float | None], "top": list[str],
           "top_critiques": list[str] | None, "answer": Any},
    lower=lower,
    plan_ops=(RANK_LIST, RANK_PAIRS),
    model_fields=("model",),
    static_fields=("k",),
    check=calls.check_critiques,
    sdk=SdkDef("Rank", "A model orders the candidates (``method``: listwise or pairwise). Output: ``order``, "
               "``ranked``, ``scores``, ``top``, ``top_critiques``, ``answer``.",
               {"model": REQUIRED, "method": "listwise", "k": 1}, value_fields=("question", "candidates", "critiques"),
               validate=_validate),
    example={"op": "rank", "model": "m", "method": "pairwise", "k": 2, "question": "${inputs.question}",
             "candidates": ["Answer: A", "Answer: B", "Answer: C"]},
)

"""``debate``: multi-agent debate — every agent answers, then for ``rounds - 1`` more rounds each answers
again having read every agent's previous answer; the last round's answers are voted on or judged.

Unrolled at compile time: round r, agent i is ``llm debate_turn`` ``ID/r{r}_{agent}``; every turn of
round r > 1 reads all turns of round r - 1 (so a round's agents run in parallel, rounds in sequence);
then ``then: vote`` makes ``fn debate_result`` ``ID`` vote over the last round, and ``then: judge``
adds ``llm judge`` ``ID/judge`` over the last round's texts before it. Calls: agents × rounds (+1).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Annotated, Any, Literal

from pydantic import Field

from ..answers import vote
from ..providers.sim import ROLES
from ..spec.model import NodeBase, Ref
from . import calls
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample
from .ensemble import part_names
from .generate import finish as finish_turn

_INV64 = 2.0**-64


class DebateNode(NodeBase):
    op: Literal["debate"]
    agents: list[str] = Field(..., min_length=2, description="The debating models (a name may repeat).")
    question: Any
    rounds: Annotated[int, Field(ge=1)] | Ref = Field(2, description="Rounds of answers (the first included).")
    then: Literal["vote", "judge"] = "vote"
    judge: str | None = Field(None, description="The model that judges the last round (then: judge).")


def lower(ctx: Any, node: DebateNode) -> list[Any]:
    rounds = int(ctx.static(node.rounds))
    question = ctx.value(node.question)
    names = part_names(node.agents)
    out: list[Any] = []
    previous: list[str] = []
    for r in range(1, rounds + 1):
        turns = []
        for i, (name, model) in enumerate(zip(names, node.agents, strict=True)):
            inputs = {"question": question}
            if previous:
                inputs["previous"] = ctx.list([ctx.node_ref(p) for p in previous])
            turns.append(ctx.make("llm", "debate_turn", inputs, {"model": ctx.model(model), "round": r, "agent": i},
                                  part=f"r{r}_{name}"))
        out += turns
        previous = [t.id for t in turns]
    last = ctx.list([ctx.node_ref(p) for p in previous])
    inputs: dict[str, Any] = {"last": last}
    if node.then == "judge":
        texts = ctx.list([ctx.ref(p, "text") for p in previous])
        judge = ctx.make("llm", "judge", {"question": question, "candidates": texts},
                         {"model": ctx.model(node.judge)}, part="judge")
        out.append(judge)
        inputs["judged"] = ctx.node_ref(judge.id)
    out.append(ctx.make("fn", "debate_result", inputs, {"rounds": rounds}))
    return out


def check(ck: Any, nid: str, node: DebateNode, base: tuple) -> None:
    if node.then == "judge" and node.judge is None:
        ck.error((*base, "then"), "E320", f"debate node '{nid}': then: judge needs a `judge:` model",
                 "add judge: NAME (a model binding), or use then: vote")
    elif node.then == "vote" and node.judge is not None:
        ck.error((*base, "judge"), "E320", f"debate node '{nid}': `judge:` is only read with then: judge",
                 "set then: judge, or remove judge:", key=True)


def _answers(turns: list[Any]) -> list[str | None]:
    return [None if t is None else t.get("answer") for t in turns]


def build_turn(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    question = calls.question(values)
    previous = values.get("previous")
    if not previous:
        return ctx.requests(calls.messages(_first(question)), 1, role="debate")
    mine = int(node.params["agent"])
    texts = ["" if t is None else t["text"] for t in previous]
    prompt = _next(question, texts, mine)
    return ctx.requests(calls.messages(prompt), 1, role="debate", previous_answers=_answers(previous),
                        agent=mine)


def _first(question: str) -> str:
    return f"Question: {question}\n\nThink step by step, then end with a line \"Answer: <answer>\"."


def _next(question: str, texts: list[str], mine: int) -> str:
    others = "\n\n".join(f"Agent {j + 1}{' (you)' if j == mine else ''}:\n{t}" for j, t in enumerate(texts))
    return (f"Question: {question}\n\nThese are the answers of every agent in the previous round of a debate, "
            f"yours included:\n\n{others}\n\nConsider their reasoning, then give your updated answer. Think step "
            "by step, then end with a line \"Answer: <answer>\".")


def result(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    answers = [a for a in _answers(values["last"]) if a is not None]
    judged = values.get("judged")
    answer = judged["answer"] if judged is not None else vote(answers)["answer"]
    return {"answer": answer, "answers": answers, "rounds": int(node.params["rounds"])}


def sample(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    """The sim (docs/sim.md): round 1 answers as ``generate`` does. In a later round an agent adopts
    the plurality answer of the previous round (ties to the earliest agent) with probability
    ``judge_accuracy``; otherwise it answers afresh, right with ``accuracy``."""
    previous = [a for a in meta.get("previous_answers") or () if a is not None]
    if not previous:
        return [t.replace("Reasoning (sim).", "Debating (sim).", 1) for t in ROLES["generate"](draws, cfg, meta, truth)]
    majority = vote(previous)["answer"]
    w, p = cfg.judge_accuracy, cfg.accuracy
    choices = cfg.choices or tuple(str(c) for c in meta.get("choices") or ()) or ("A", "B", "C", "D")
    wrong, cum = cfg.wrong_pool(choices, truth)
    out = []
    for u1, u2 in draws.pairs():
        x = u1 * _INV64
        if x < w:
            ans = majority
        elif truth is not None and ((x - w) / (1 - w) < p or not wrong):
            ans = truth
        else:
            k = len(wrong)
            ans = wrong[(u2 * k) >> 64] if cum is None else wrong[min(bisect_right(cum, u2 * _INV64), k - 1)]
        out.append(f"Debating (sim).\nAnswer: {ans}")
    return out


def _validate(args: dict[str, Any]) -> str | None:
    agents, rounds, then = args.get("agents"), args.get("rounds", 2), args.get("then") or "vote"
    if not isinstance(agents, list | tuple) or len(agents) < 2:
        return "agents= must list at least two models"
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        return f"rounds must be an integer >= 1, got {rounds!r}"
    if then not in ("vote", "judge"):
        return f"then must be 'vote' or 'judge', got {then!r}"
    if (then == "judge") != (args.get("judge") is not None):
        return "judge= goes with then='judge' (and then='judge' needs judge=)"
    return None


TURN = PlanOp("debate_turn", "llm", ("text", "answer", "usage"), params=("model", "round", "agent"),
              build=build_turn, finish=finish_turn, effects=MODEL_CALL, calls=one_per_sample, role="debate",
              sim=sample, dry_text=lambda j: "Answer: A")
RESULT = PlanOp("debate_result", "fn", ("answer", "answers", "rounds"), params=("rounds",), run=result,
                null_tolerant=True)

OP = OpDef(
    name="debate",
    summary="Multi-agent debate: agents answer for rounds, reading each other; then vote or judge.",
    node=DebateNode,
    ports={"answer": Any, "answers": list, "rounds": int},
    lower=lower,
    plan_ops=(TURN, RESULT),
    model_fields=("agents", "judge"),
    static_fields=("rounds",),
    check=check,
    sdk=SdkDef("Debate", "Agents answer for ``rounds``, reading each other's previous answers; then a vote or "
               "a judge. Output: ``answer``, ``answers``, ``rounds``.",
               {"agents": REQUIRED, "rounds": 2, "then": None, "judge": None}, value_fields=("question",),
               validate=_validate),
    example={"op": "debate", "agents": ["m", "m"], "question": "${inputs.question}", "rounds": 2},
)

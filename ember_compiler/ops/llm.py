"""Runtime rules of the `llm` plan nodes: how each op builds its requests and reads its completions.

A rule never talks to a provider: `build` returns requests through `CallContext.requests` (which
batches samples into one request when the provider supports `n`), the runtime sends them, and
`finish` turns the completions — in request order — into the node's output ports.

`judge`, `select` and `verify` (and refine's check) attach a JSON Schema to their requests; providers
that can enforce one reply in JSON, the others (the sim) in the text conventions of DESIGN §2, and
`finish` reads either. A JSON reply without the needed field (cut off by max_tokens, typically) is
an `OutputError` naming the model, not a guess.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .. import templates
from ..answers import before_answer, extract_answer, json_reply, normalize, parse_verdict, vote
from ..errors import OutputError
from ..providers.base import Completion, Request
from ..xcs.plan import PlanNode
from . import prompts


@dataclass(slots=True)
class CallContext:
    """What a rule needs to know about the call besides its input values."""

    node: PlanNode
    binding: dict[str, Any]
    supports_n: bool
    meta: dict[str, Any]  # seed, example_id, node_id, truth, choices, sim

    def requests(self, messages: list[dict[str, str]], n: int = 1, offset: int = 0,
                 schema: dict[str, Any] | None = None, **meta: Any) -> list[Request]:
        """`n` samples of one prompt: one request with `n` if the provider can, else `n` requests."""
        name = self.node.params["model"]
        if self.supports_n or n == 1:
            return [Request(name, self.binding, messages, n, {**self.meta, **meta, "sample_offset": offset}, schema)]
        return [
            Request(name, self.binding, messages, 1, {**self.meta, **meta, "sample_offset": offset + j}, schema)
            for j in range(n)
        ]


def _messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    return msgs


def _texts(completions: list[Completion]) -> list[str]:
    return [t for c in completions for t in c.texts]


def usage(completions: list[Completion]) -> dict[str, int]:
    return {
        "input_tokens": sum(c.input_tokens for c in completions),
        "output_tokens": sum(c.output_tokens for c in completions),
        "samples": sum(len(c.texts) for c in completions),
    }


def _candidates(values: dict[str, Any]) -> list[str]:
    raw = values.get("candidates")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raw = [raw]
    return [c if isinstance(c, str) else str(c) for c in raw if c is not None]


def _question(values: dict[str, Any]) -> str:
    q = values.get("question")
    return "" if q is None else q if isinstance(q, str) else str(q)


def _custom_prompt(node: PlanNode, values: dict[str, Any]) -> str | None:
    src = node.params.get("prompt")
    return templates.render(src, values.get("vars") or {}) if src else None


# --- generate / ensemble -------------------------------------------------------------------------

def build_sampled(node: PlanNode, values: dict[str, Any], ctx: CallContext) -> list[Request]:
    tvars = values.get("vars") or {}
    system = node.params.get("system")
    messages = _messages(
        templates.render(node.params["prompt"], tvars),
        templates.render(system, tvars) if system else None,
    )
    return ctx.requests(messages, node.params.get("n", 1), role="generate")


def finish_generate(node: PlanNode, values: dict[str, Any], completions: list[Completion]) -> dict[str, Any]:
    text = _texts(completions)[0]
    return {"text": text, "answer": extract_answer(text, node.params.get("extract")), "usage": usage(completions)}


def finish_ensemble(node: PlanNode, values: dict[str, Any], completions: list[Completion]) -> dict[str, Any]:
    texts = _texts(completions)
    regex = node.params.get("extract")
    return {"responses": texts, "answers": [extract_answer(t, regex) for t in texts], "usage": usage(completions)}


# --- judge / select ------------------------------------------------------------------------------

def _build_choice(role: str, default: Callable[[str, list[str]], str], schema: dict[str, Any]):
    def build(node: PlanNode, values: dict[str, Any], ctx: CallContext) -> list[Request]:
        cands = _candidates(values)
        if not cands:
            return []
        prompt = _custom_prompt(node, values) or default(_question(values), cands)
        answers = [extract_answer(c) for c in cands]
        return ctx.requests(_messages(prompt), 1, schema=schema, role=role, candidates=cands,
                            candidate_answers=answers)

    return build


def _reply(node: PlanNode, completion: Completion, key: str) -> dict[str, Any] | None:
    """The structured reply (or None: read the text conventions); an unreadable one is an OutputError."""
    text = completion.texts[0]
    try:
        return json_reply(text, key)
    except ValueError as exc:
        cut = " (cut off at max_tokens: raise the binding's max_tokens)" \
            if completion.finish_reasons[:1] in (["length"], ["max_tokens"], ["MAX_TOKENS"]) else ""
        raise OutputError(f"model '{node.params['model']}': {exc}{cut}") from None


def finish_judge(node: PlanNode, values: dict[str, Any], completions: list[Completion]) -> dict[str, Any]:
    if not completions:
        return {"answer": None, "reasoning": "", "text": ""}
    text = completions[0].texts[0]
    obj = _reply(node, completions[0], "answer")
    if obj is not None:
        return {"answer": str(obj["answer"]).strip(), "reasoning": str(obj.get("reasoning") or "").strip(),
                "text": text}
    return {"answer": extract_answer(text), "reasoning": before_answer(text), "text": text}


def finish_select(node: PlanNode, values: dict[str, Any], completions: list[Completion]) -> dict[str, Any]:
    cands = _candidates(values)
    if not completions or not cands:
        return {"answer": None, "index": None}
    answers = [extract_answer(c) for c in cands]
    obj = _reply(node, completions[0], "answer")
    said = str(obj["answer"]) if obj is not None else extract_answer(completions[0].texts[0])
    index = _chosen_index(said, answers)
    return {"answer": answers[index], "index": index}


def _chosen_index(said: str, answers: list[str]) -> int:
    """The 0-based candidate a selector named: by number, else by answer text, else the first."""
    digits = said.strip().lstrip("#").split()[0].rstrip(".):") if said.strip() else ""
    if digits.isdigit() and 1 <= int(digits) <= len(answers):
        return int(digits) - 1
    wanted = normalize(said, "lower")
    for i, a in enumerate(answers):
        if normalize(a, "lower") == wanted:
            return i
    return 0


# --- verify --------------------------------------------------------------------------------------

def build_verify(node: PlanNode, values: dict[str, Any], ctx: CallContext) -> list[Request]:
    question = _question(values)
    custom = _custom_prompt(node, values)
    out: list[Request] = []
    for i, cand in enumerate(_candidates(values)):
        prompt = prompts.verify(question, cand) if custom is None else f"{custom}\n\nProposed answer: {cand}"
        out += ctx.requests(_messages(prompt), 1, offset=i, schema=prompts.VERIFY_SCHEMA, role="verify",
                            candidate=cand, candidate_answer=extract_answer(cand))
    return out


def _verdict(node: PlanNode, completion: Completion) -> bool:
    _reply(node, completion, "verdict")  # raises a clear error on an unreadable structured reply
    return parse_verdict(completion.texts[0])


def finish_verify(node: PlanNode, values: dict[str, Any], completions: list[Completion]) -> dict[str, Any]:
    answers = [extract_answer(c) for c in _candidates(values)]
    verdicts = [_verdict(node, c) for c in completions]
    accepted = [a for a, ok in zip(answers, verdicts, strict=True) if ok]
    if accepted:
        answer = accepted[0] if node.params.get("then", "first") == "first" else vote(accepted)["answer"]
    else:
        fallback = node.params.get("fallback", "first")
        answer = None if fallback == "none" or not answers else answers[0] if fallback == "first" else vote(answers)["answer"]
    return {"verdicts": verdicts, "accepted": accepted, "answer": answer}


# --- refine rounds -------------------------------------------------------------------------------

def build_prove(node: PlanNode, values: dict[str, Any], ctx: CallContext) -> list[Request]:
    prompt = prompts.prove(_question(values), values.get("previous"), values.get("feedback"))
    return ctx.requests(_messages(prompt), 1, role="generate")


def build_check(node: PlanNode, values: dict[str, Any], ctx: CallContext) -> list[Request]:
    cand = values.get("candidate")
    cand = "" if cand is None else str(cand)
    return ctx.requests(_messages(prompts.verify(_question(values), cand)), 1, schema=prompts.VERIFY_SCHEMA,
                        role="verify", candidate=cand, candidate_answer=extract_answer(cand))


def finish_check(node: PlanNode, values: dict[str, Any], completions: list[Completion]) -> dict[str, Any]:
    return {"accepted": _verdict(node, completions[0]), "text": completions[0].texts[0]}


# --- vote_cutoff (compiler/passes/vote_cutoff.py) -------------------------------------------------

Send = Callable[[list[Request]], Awaitable[list[Completion]]]


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


def build_cutoff(node: PlanNode, values: dict[str, Any], ctx: CallContext) -> list[Request]:
    raise NotImplementedError("vote_cutoff is driven, not built")  # pragma: no cover - see drive_cutoff


async def drive_cutoff(node: PlanNode, values: dict[str, Any], ctx: CallContext, send: Send) -> dict[str, Any]:
    """Draw the ensemble's samples in index order, in batches of `still_needed`, until decided."""
    tvars = values.get("vars") or {}
    system = node.params.get("system")
    messages = _messages(templates.render(node.params["prompt"], tvars),
                         templates.render(system, tvars) if system else None)
    n = int(node.params.get("n", 1))
    regex, vote_regex = node.params.get("extract"), node.params.get("vote_extract")
    mode = node.params.get("normalize", "strip")
    counts: dict[str, int] = {}
    drawn = 0
    while (need := still_needed(counts, n - drawn)) > 0:
        # requested as the ensemble's own samples (same node id and indices: the same draws)
        completions = await send(ctx.requests(messages, need, offset=drawn, role="generate",
                                              node_id=node.params.get("ensemble", node.id)))
        for text in _texts(completions):
            key = normalize(extract_answer(extract_answer(text, regex), vote_regex), mode)
            counts[key] = counts.get(key, 0) + 1
        drawn += need
    answer, best = None, -1
    for key, v in counts.items():  # first-seen order: ">" keeps the first on ties, as `vote` does
        if v > best:
            answer, best = key, v
    return {"answer": answer, "drawn": drawn, "saved": n - drawn}


@dataclass(frozen=True, slots=True)
class LLMRule:
    build: Callable[[PlanNode, dict[str, Any], CallContext], list[Request]]
    finish: Callable[[PlanNode, dict[str, Any], list[Completion]], dict[str, Any]]
    # an op that decides between requests (vote_cutoff): the executor calls it instead of build/finish
    drive: Callable[[PlanNode, dict[str, Any], CallContext, Send], Awaitable[dict[str, Any]]] | None = None


LLM_RULES: dict[str, LLMRule] = {
    "generate": LLMRule(build_sampled, finish_generate),
    "ensemble": LLMRule(build_sampled, finish_ensemble),
    "judge": LLMRule(_build_choice("judge", prompts.judge, prompts.JUDGE_SCHEMA), finish_judge),
    "select": LLMRule(_build_choice("select", prompts.select, prompts.SELECT_SCHEMA), finish_select),
    "verify": LLMRule(build_verify, finish_verify),
    "refine_prove": LLMRule(build_prove, finish_generate),
    "refine_check": LLMRule(build_check, finish_check),
    "vote_cutoff": LLMRule(build_cutoff, finish_generate, drive_cutoff),
}

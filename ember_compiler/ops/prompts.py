"""Default prompts of the ops that build their own (judge, select, verify, refine, critic, rank, fuse, score).

They ask for the text conventions of DESIGN §2 (`Answer: X`, `Verdict: yes|no`), which the parsers
in `text.py` read and the sim provider writes.
"""

from __future__ import annotations


def _numbered(candidates: list[str], critiques: list[str] | None = None) -> str:
    if critiques is None:
        return "\n\n".join(f"Candidate {i}:\n{c}" for i, c in enumerate(candidates, 1))
    return "\n\n".join(f"Candidate {i}:\n{c}\n\nCritique of candidate {i}:\n{k}"
                         for i, (c, k) in enumerate(zip(candidates, critiques, strict=True), 1))


def judge(question: str, candidates: list[str], critiques: list[str] | None = None) -> str:
    return (
        f"Question: {question}\n\nSeveral candidate responses were written for this question.\n\n"
        f"{_numbered(candidates, critiques)}\n\nDecide which answer is correct (you may combine or correct them). "
        "Reason briefly, then end with a line \"Answer: <answer>\"."
    )


def select(question: str, candidates: list[str]) -> str:
    return (
        f"Question: {question}\n\n{_numbered(candidates)}\n\nWhich candidate is correct? Reason briefly, "
        "then end with a line \"Answer: <candidate number>\"."
    )


def verify(question: str, candidate: str) -> str:
    return (
        f"Question: {question}\n\nProposed answer: {candidate}\n\nIs the proposed answer correct? "
        "Check it briefly, then end with a line \"Verdict: yes\" or \"Verdict: no\"."
    )


def prove(question: str, previous: str | None = None, feedback: str | None = None) -> str:
    if previous is None:
        return f"Question: {question}\n\nThink step by step, then end with a line \"Answer: <answer>\"."
    return (
        f"Question: {question}\n\nYour previous attempt:\n{previous}\n\nA reviewer rejected it:\n{feedback}\n\n"
        "Write a corrected solution. Think step by step, then end with a line \"Answer: <answer>\"."
    )


def critic(question: str, candidates: list[str]) -> str:
    return (
        f"Question: {question}\n\n{_numbered(candidates)}\n\nCritique every candidate in turn: its strengths and "
        "its weaknesses, briefly. Write one section per candidate, each starting with a line \"Critique <candidate "
        "number>:\", then \"Strengths:\" and \"Weaknesses:\"."
    )


def rank(question: str, candidates: list[str], critiques: list[str] | None = None) -> str:
    return (
        f"Question: {question}\n\n{_numbered(candidates, critiques)}\n\nRank the candidates from best to worst "
        "by how well they answer the question. Reason briefly, then end with a line \"Ranking: <numbers, best "
        "first, separated by >>\", e.g. \"Ranking: 2 > 1 > 3\"."
    )


def compare(question: str, first: str, second: str, critiques: tuple[str, str] | None = None) -> str:
    shown = [first, second] if critiques is None else [f"{first}\n\nCritique:\n{critiques[0]}",
                                                       f"{second}\n\nCritique:\n{critiques[1]}"]
    return (
        f"Question: {question}\n\nResponse 1:\n{shown[0]}\n\nResponse 2:\n{shown[1]}\n\nWhich response answers "
        "the question better? Reason briefly, then end with a line \"Answer: 1\" or \"Answer: 2\"."
    )


def fuse(question: str, candidates: list[str], critiques: list[str] | None = None) -> str:
    return (
        f"Question: {question}\n\nYou have been given several responses to this question"
        f"{' and a critique of each' if critiques is not None else ''}.\n\n{_numbered(candidates, critiques)}\n\n"
        "Synthesize them into one new response of the highest quality: keep what is right, correct what is "
        "wrong, do not simply copy one of them. End with a line \"Answer: <answer>\"."
    )


def score(question: str, candidate: str) -> str:
    return (
        f"Question: {question}\n\nResponse:\n{candidate}\n\nRate how well the response answers the question, "
        "from 0 (wrong or useless) to 10 (correct and complete). Reason briefly, then end with a line "
        "\"Score: <number>\"."
    )


# -- structured output -------------------------------------------------------------------------------
# JSON Schemas for providers that can enforce one (Request.schema). They follow the OpenAI "strict"
# subset (every property required, no extra properties) so one schema serves every API. `reasoning`
# comes first: the model thinks before it commits, as the text prompts ask.

def _object(title: str, **properties: dict) -> dict:
    return {"title": title, "type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


JUDGE_SCHEMA = _object("judgement", reasoning={"type": "string"},
                       answer={"type": "string", "description": "The final answer alone."})
SELECT_SCHEMA = _object("selection", reasoning={"type": "string"},
                        answer={"type": "integer", "description": "The number of the correct candidate."})
VERIFY_SCHEMA = _object("verdict", reasoning={"type": "string"},
                        verdict={"type": "string", "enum": ["yes", "no"]})
CRITIC_SCHEMA = _object("critiques", critiques={
    "type": "array", "description": "One critique per candidate, in the candidates' order.",
    "items": _object("critique", strengths={"type": "string"}, weaknesses={"type": "string"})})
RANK_SCHEMA = _object("ranking", reasoning={"type": "string"}, ranking={
    "type": "array", "items": {"type": "integer"}, "description": "Candidate numbers, best first."})
COMPARE_SCHEMA = _object("comparison", reasoning={"type": "string"},
                         answer={"type": "integer", "enum": [1, 2], "description": "The better response."})
SCORE_SCHEMA = _object("score", reasoning={"type": "string"},
                       score={"type": "number", "description": "From 0 (wrong) to 10 (correct and complete)."})

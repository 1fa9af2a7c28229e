"""Default prompts of the ops that build their own (judge, select, verify, refine).

They ask for the text conventions of DESIGN §2 (`Answer: X`, `Verdict: yes|no`), which the parsers
in `text.py` read and the sim provider writes.
"""

from __future__ import annotations


def _numbered(candidates: list[str]) -> str:
    return "\n\n".join(f"Candidate {i}:\n{c}" for i, c in enumerate(candidates, 1))


def judge(question: str, candidates: list[str]) -> str:
    return (
        f"Question: {question}\n\nSeveral candidate responses were written for this question.\n\n"
        f"{_numbered(candidates)}\n\nDecide which answer is correct (you may combine or correct them). "
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

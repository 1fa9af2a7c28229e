"""Custom operators for the example: plain Python steps inside a Network of Networks.

`KeywordRoute` is cheap, deterministic Python (no model calls): it sends arithmetic questions to a
math branch. `Tally` is asynchronous and reports how much the candidates agree. Both are used from
Python (`run.py`) and from YAML (`router.yaml`, `call: textops:KeywordRoute`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

from ember_compiler import Operator

DEFAULT_KEYWORDS = ("sum", "times", "plus", "minus", "*", "+", "divided")


class KeywordRoute(Operator):
    """Route a question to 'math' when it mentions one of `keywords`, else to 'general'."""

    cheap = True  # fast and model-free: runs inline on the event loop, no worker thread

    class Input(BaseModel):
        question: str

    class Output(BaseModel):
        route: Literal["math", "general"]
        hits: int = Field(ge=0)

    def __init__(self, keywords: list[str] = list(DEFAULT_KEYWORDS)) -> None:  # noqa: B006 - never mutated
        self.keywords = [k.lower() for k in keywords]

    def forward(self, question: str) -> dict:
        hits = sum(question.lower().count(k) for k in self.keywords)
        return {"route": "math" if hits else "general", "hits": hits}


class Tally(Operator):
    """Agreement among candidate answers (an async forward: awaited on the event loop)."""

    class Input(BaseModel):
        answers: list[str | None]

    class Output(BaseModel):
        top: str | None
        agreement: float

    async def forward(self, answers: list[str | None]) -> dict:
        await asyncio.sleep(0)  # e.g. an async lookup
        counts = Counter(a for a in answers if a is not None)
        if not counts:
            return {"top": None, "agreement": 0.0}
        top, votes = counts.most_common(1)[0]
        return {"top": top, "agreement": votes / sum(counts.values())}

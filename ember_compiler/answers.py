"""Text conventions shared by every op and by the sim provider (DESIGN §2): answer extraction,
normalization, voting, verdicts, the JSON replies of structured output (judge, select, verify) with
their fallback to the text, and which samples are no answer (`no_answer`: refusals, blocks, empty). Layer 0 (core): imports nothing of Ember, so providers and ops share one definition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

_ANSWER_LINE = re.compile(r"^[ \t>*_#-]*answer[*_]*[ \t]*[:：][ \t*_]*(.*?)[ \t*_]*$", re.IGNORECASE | re.MULTILINE)
_VERDICT_LINE = re.compile(r"^[ \t>*_#-]*verdict[*_]*[ \t]*:[ \t]*[*_]*(yes|no)\b", re.IGNORECASE | re.MULTILINE)


@lru_cache(maxsize=256)
def _pattern(regex: str) -> re.Pattern[str]:
    return re.compile(regex, re.IGNORECASE | re.MULTILINE)


def extract_answer(text: Any, regex: str | None = None) -> str:
    """The answer in a model's text.

    With `regex` (one group): the group of its last match, else the whole stripped text. Default: the
    text after the last `Answer:` line (case-insensitive), else the whole stripped text.
    """
    if text is None:
        return ""
    text = text if isinstance(text, str) else str(text)
    pattern = _pattern(regex) if regex else _ANSWER_LINE
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - we want the last match
        pass
    if last is not None and last.groups():
        found = last.group(1).strip()
        if found:
            return found
    return text.strip()


def normalize(answer: Any, mode: str = "strip") -> str:
    """`none` keeps the text, `strip` trims it, `lower` also lowercases, `number` canonicalizes numbers."""
    text = "" if answer is None else (answer if isinstance(answer, str) else str(answer))
    if mode == "none":
        return text
    text = text.strip()
    if mode == "lower":
        return text.lower()
    if mode == "number":
        cleaned = text.replace(",", "").replace("$", "").rstrip(".").strip()
        try:
            value = float(cleaned)
        except ValueError:
            return text
        return str(int(value)) if value.is_integer() else repr(value)
    return text


def vote(candidates: Iterable[Any], regex: str | None = None, mode: str = "strip") -> dict[str, Any]:
    """Plurality over extracted, normalized answers; ties go to the answer seen first. Nulls and blank
    texts (a refusal or empty reply: never an answer) are skipped."""
    counts: dict[str, int] = {}
    for c in candidates:
        if c is None:
            continue
        key = normalize(extract_answer(c, regex), mode)
        if key == "" and not str(c).strip():  # a blank text: checked only when its answer is empty
            continue
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return {"answer": None, "counts": {}, "confidence": 0.0}
    best, votes = None, -1
    for key, v in counts.items():  # dicts keep first-seen order, so ">" keeps the first on ties
        if v > votes:
            best, votes = key, v
    return {"answer": best, "counts": counts, "confidence": votes / sum(counts.values())}


def parse_verdict(text: str) -> bool:
    """True for a structured `{"verdict": "yes"}` or a final `Verdict: yes` line; anything else rejects.

    Raises ValueError (via `json_reply`) when the reply is JSON with no readable verdict and no
    `Verdict:` line either: a structured reply cut short is a problem to report, not a "no".
    """
    obj = json_reply(text, "verdict")
    if obj is not None:
        v = obj["verdict"]
        return v is True or str(v).strip().lower() in ("yes", "true")
    last = None
    for last in _VERDICT_LINE.finditer(text or ""):  # noqa: B007
        pass
    if last is not None:
        return last.group(1).lower() == "yes"
    return (text or "").strip().lower().startswith("yes")


_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def json_reply(text: str | None, key: str) -> dict[str, Any] | None:
    """The object of a structured reply if it has `key`; None when the reply is not JSON (or, cut
    short, still shows a text-convention line), so the caller reads the text conventions instead.

    A JSON reply cut off by max_tokens keeps its `key` when that field was complete. Raises
    ValueError when the reply is JSON but `key` cannot be read and no `Answer:`/`Verdict:` line
    exists: the caller turns that into a clear error rather than guessing.
    """
    s = (text or "").strip()
    fenced = _FENCE.match(s)
    if fenced:
        s = fenced.group(1)
    if not s.startswith("{"):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        obj = _salvage(s, key)
    if isinstance(obj, dict) and key in obj and obj[key] is not None and str(obj[key]).strip():
        return obj
    if _ANSWER_LINE.search(s) or _VERDICT_LINE.search(s):
        return None
    raise ValueError(f"the reply is JSON without a readable \"{key}\": {_snippet(s)}")


def _salvage(s: str, key: str) -> dict[str, Any] | None:
    m = re.search(rf'"{re.escape(key)}"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false)', s)
    if m is None:
        return None
    try:
        return {key: json.loads(m.group(1))}
    except ValueError:
        return None


def _snippet(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def before_answer(text: str) -> str:
    """The reasoning: the text before the last `Answer:` line."""
    last = None
    for last in _ANSWER_LINE.finditer(text or ""):  # noqa: B007
        pass
    return (text[: last.start()] if last else text or "").strip()


# -- samples that are not answers: refusals, safety blocks, empty replies (providers/base.py) -----------
REFUSAL = "refusal"
# finish reasons that mean a filter stopped the reply (OpenAI, Gemini's FinishReason), lower-cased
BLOCKED_REASONS = frozenset({
    "content_filter", "safety", "recitation", "blocklist", "prohibited_content", "spii", "image_safety",
    "image_prohibited_content", "image_recitation", "language",
})
LENGTH_REASONS = frozenset({"length", "max_tokens", "model_length"})
NO_ANSWER_KINDS = ("refusal", "blocked", "length", "empty")


def no_answer(text: str | None, reason: str | None = None) -> str | None:
    """Why a sample is not an answer — ``refusal``, ``blocked``, ``length`` (empty, cut off at
    max_tokens) or ``empty`` — or None when it is one (its text is not blank)."""
    if text is not None and text.strip():
        return None
    r = (reason or "").lower()
    if r == REFUSAL:
        return "refusal"
    if r in BLOCKED_REASONS:
        return "blocked"
    return "length" if r in LENGTH_REASONS else "empty"


def all_answers(texts: list[str]) -> bool:
    """Whether no text is blank (the common case, checked at C speed)."""
    try:
        return all(map(str.strip, texts))
    except TypeError:  # a None text (a plugin's): not blank-checkable by str.strip
        return all(t is not None and t.strip() for t in texts)


def no_answer_kinds(texts: list[str], finish_reasons: list[str]) -> list[str | None]:
    """`no_answer` for each sample (text with its finish reason, which may be missing), in order."""
    if all_answers(texts):
        return [None] * len(texts)
    return [no_answer(t, finish_reasons[j] if j < len(finish_reasons) else None) for j, t in enumerate(texts)]

"""Helpers the ``llm`` ops share: chat messages, completion texts, usage, inputs, structured replies.

``judge``, ``select`` and ``verify`` (and refine's check) attach a JSON Schema to their requests;
providers that can enforce one reply in JSON, the others (the sim) in the text conventions of DESIGN
§2, and the ops read either. A JSON reply without the needed field (cut off by max_tokens, typically)
is an ``OutputError`` naming the model, not a guess.

A sample that is a refusal, a safety block or an empty reply (``answers.no_answer``) is never an
answer: its extracted answer is None, votes and the choice ops skip it like a skipped candidate, the
node's ``usage`` counts it (``refusals``, ``empty``), and a node none of whose samples is an answer fails
with one line naming the model and why (``no_answer_error``).
"""

from __future__ import annotations

import re
from typing import Any

from .. import templates
from ..answers import extract_answer, json_reply, no_answer_kinds, parse_verdict
from ..errors import OutputError
from ..providers.base import Completion
from ..spec.model import NodeBase
from . import prompts


class ChoiceNode(NodeBase):
    """The fields of the ops that show a model the candidates (judge, select, verify)."""

    op: str
    model: str
    question: Any
    candidates: Any
    prompt: str | None = None


def messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    return msgs


def rendered(node: Any, values: dict[str, Any]) -> list[dict[str, str]]:
    """The messages of a template op (``prompt`` and ``system`` rendered with its variables)."""
    tvars = values.get("vars") or {}
    system = node.params.get("system")
    return messages(templates.render(node.params["prompt"], tvars),
                    templates.render(system, tvars) if system else None)


def texts(completions: list[Completion]) -> list[str]:
    return [t for c in completions for t in c.texts]


def usage(completions: list[Completion], sample_kinds: list[str | None] | None = None) -> dict[str, int]:
    """Tokens and samples; `sample_kinds` (`kinds(completions)`, computed when not given) for the counts
    of samples that were no answer."""
    return {
        "input_tokens": sum(c.input_tokens for c in completions),
        "output_tokens": sum(c.output_tokens for c in completions),
        "samples": sum(len(c.texts) for c in completions),
        **non_answer_counts(kinds(completions) if sample_kinds is None else sample_kinds),
    }


# -- samples that are not answers (refusals, safety blocks, empty replies) ----------------------------
_KIND_TEXT = {"refusal": "refused", "blocked": "blocked by a safety filter", "length": "empty, cut off at max_tokens",
              "empty": "empty"}


def kinds(completions: list[Completion]) -> list[str | None]:
    """Per sample (in order, aligned with `texts`): why it is not an answer, or None for an answer."""
    return [k for c in completions for k in no_answer_kinds(c.texts, c.finish_reasons)]


def first_kind(completion: Completion) -> str | None:
    """`kinds` of a completion's first sample (the one a judge, select or verify reads)."""
    return no_answer_kinds(completion.texts, completion.finish_reasons)[0] if completion.texts else "empty"


def non_answer_counts(sample_kinds: list[str | None]) -> dict[str, int]:
    """``refusals`` (refused or blocked) and ``empty`` (empty, by length or not): a node's usage."""
    if not any(sample_kinds):
        return {"refusals": 0, "empty": 0}
    return {"refusals": sum(k in ("refusal", "blocked") for k in sample_kinds),
            "empty": sum(k in ("length", "empty") for k in sample_kinds)}


def no_answer_error(node: Any, sample_kinds: list[str | None]) -> OutputError:
    """The error of a node none of whose samples is an answer: how many, and why."""
    counts: dict[str, int] = {}
    for k in sample_kinds:
        counts[k or "empty"] = counts.get(k or "empty", 0) + 1
    why = ", ".join(f"{v} {_KIND_TEXT[k]}" for k, v in counts.items())
    n = len(sample_kinds)
    hint = ": reasoning or thinking may have used the whole budget; raise the binding's max_tokens" \
        if "length" in counts else ""
    return OutputError(f"no answer in {n} sample{'s' if n != 1 else ''} ({why}){hint}", node.params["model"])


def first_answer(node: Any, completions: list[Completion]) -> None:
    """Raise `no_answer_error` when the first sample (the reply a choice op reads) is not an answer."""
    kind = first_kind(completions[0])
    if kind is not None:
        raise no_answer_error(node, [kind])


def answered(node: Any, completions: list[Completion],
             sample_kinds: list[str | None] | None = None) -> list[str | None]:
    """The texts of the samples, None for each one that is not an answer; raises `no_answer_error`
    when none is (and there was at least one)."""
    if sample_kinds is None:
        sample_kinds = kinds(completions)
    if sample_kinds and all(sample_kinds):
        raise no_answer_error(node, sample_kinds)
    out = texts(completions)
    if not any(sample_kinds):
        return out
    return [None if k else t for t, k in zip(out, sample_kinds, strict=True)]


def candidates(values: dict[str, Any]) -> list[str]:
    raw = values.get("candidates")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raw = [raw]
    # a null candidate (skipped) and a blank one (a refusal or empty reply upstream) are not candidates
    return [c if isinstance(c, str) else str(c) for c in raw if c is not None and str(c).strip()]


def question(values: dict[str, Any]) -> str:
    q = values.get("question")
    return "" if q is None else q if isinstance(q, str) else str(q)


def custom_prompt(node: Any, values: dict[str, Any]) -> str | None:
    src = node.params.get("prompt")
    return templates.render(src, values.get("vars") or {}) if src else None


def reply(node: Any, completion: Completion, key: str) -> dict[str, Any] | None:
    """The structured reply (or None: read the text conventions); an unreadable one is an OutputError."""
    text = completion.texts[0]
    try:
        return json_reply(text, key)
    except ValueError as exc:
        cut = " (cut off at max_tokens: raise the binding's max_tokens)" \
            if completion.finish_reasons[:1] in (["length"], ["max_tokens"], ["MAX_TOKENS"]) else ""
        raise OutputError(f"{exc}{cut}", node.params["model"]) from None  # the executor names its provider


def verdict(node: Any, completion: Completion) -> bool:
    reply(node, completion, "verdict")  # raises a clear error on an unreadable structured reply
    return parse_verdict(completion.texts[0])


def verdict_request(ctx: Any, values: dict[str, Any], key: str, prompt: Any) -> list[Any]:
    """One yes/no call on `values[key]` (refine's check, self_refine's feedback), made by
    `prompt(question, text)`; the sim's verify role reads the candidate and its answer."""
    text = values.get(key)
    text = "" if text is None else str(text)
    return ctx.requests(messages(prompt(question(values), text)), 1, schema=prompts.VERIFY_SCHEMA, role="verify",
                        candidate=text, candidate_answer=extract_answer(text))


def verdict_result(node: Any, completions: list[Completion], port: str) -> dict[str, Any]:
    """The verdict of a `verdict_request` under `port`, with the reply's text."""
    first_answer(node, completions)  # a refusal, block or empty reply is no verdict
    return {port: verdict(node, completions[0]), "text": completions[0].texts[0]}


def optional(ctx: Any, node: Any, *fields: str) -> dict[str, Any]:
    """The fields of a spec node that are set, as plain values (for a plan node's params)."""
    return {f: ctx.plain(getattr(node, f)) for f in fields if getattr(node, f) is not None}


def candidate_answers(values: dict[str, Any]) -> list[str]:
    return [extract_answer(c) for c in candidates(values)]


def lower_choice(ctx: Any, node: Any, **params: Any) -> list[Any]:
    """``judge``, ``select``, ``verify``, ``critic``, ``rank``, ``fuse``, ``score``: question and candidates
    (and critiques when given), template variables only with a custom prompt."""
    inputs = {"question": ctx.value(node.question), "candidates": ctx.value(node.candidates)}
    if getattr(node, "critiques", None) is not None:
        inputs["critiques"] = ctx.value(node.critiques)
    node_params: dict[str, Any] = {"model": ctx.model(node.model)}
    if node.prompt is not None:
        inputs["vars"] = ctx.template_vars(node)
        node_params["prompt"] = ctx.plain(node.prompt)
    return [ctx.make("llm", node.op, inputs, {**node_params, **params})]


def choice_requests(node: Any, values: dict[str, Any], ctx: Any, role: str, default: Any,
                    schema: dict[str, Any]) -> list[Any]:
    """One request showing every candidate (judge, select); none when there is no candidate."""
    cands = candidates(values)
    if not cands:
        return []
    prompt = custom_prompt(node, values) or default(question(values), cands)
    return ctx.requests(messages(prompt), 1, schema=schema, role=role, candidates=cands,
                        candidate_answers=[extract_answer(c) for c in cands])


# -- critiques (critic's port, read by judge, rank and fuse) -----------------------------------------
# A critique is aligned with the candidate list it was written for; the pairs are formed before the
# null and blank candidates are dropped, so a skipped candidate never shifts the others' critiques.
_ASSESSMENT = re.compile(r"^\s*\**assessment:?\**\s*:?\s*(sound|flawed)\b", re.IGNORECASE | re.MULTILINE)


def paired(values: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    """(position in the input list, candidate text, its critique or None) of each real candidate."""
    raw = values.get("candidates")
    raw = [] if raw is None else raw if isinstance(raw, list) else [raw]
    crit = values.get("critiques")
    crit = None if crit is None else crit if isinstance(crit, list) else [crit]
    out = []
    for i, c in enumerate(raw):
        if c is None or not str(c).strip():
            continue
        k = crit[i] if crit is not None and i < len(crit) else None
        out.append((i, c if isinstance(c, str) else str(c), None if k is None else str(k)))
    return out


def shown_critiques(pairs: list[tuple[int, str, str | None]]) -> list[str] | None:
    """The critiques a prompt shows beside the candidates (None: the node was given none)."""
    if all(k is None for _, _, k in pairs):
        return None
    return [k or "(no critique)" for _, _, k in pairs]


def assessment(critique: str | None) -> bool | None:
    """What a critique's last `Assessment: sound|flawed` line says (the sim critic writes one)."""
    last = None
    for last in _ASSESSMENT.finditer(critique or ""):  # noqa: B007 - the last one counts
        pass
    return None if last is None else last.group(1).lower() == "sound"


def sim_visible(pairs: list[tuple[int, str, str | None]]) -> list[bool]:
    """Which candidates the sim's judge, ranker and fuser consider: all but those a critique calls
    flawed, unless that leaves none (request metadata only: real providers never read it)."""
    keep = [assessment(k) is not False for _, _, k in pairs]
    return keep if any(keep) else [True] * len(pairs)


_REF = re.compile(r"^\$\{\s*([A-Za-z_][\w/-]*)\.(critiques|top_critiques)\s*\}$")


def check_critiques(ck: Any, nid: str, node: Any, base: tuple) -> None:
    """E330: critiques from a critic beside that critic's candidates, a rank's `top_critiques` beside its
    `top` (or `ranked`): anything else shows each candidate another one's critique."""
    found = _REF.match(node.critiques) if isinstance(node.critiques, str) else None
    if found is None:
        return
    source, port = found.groups()
    op, other = ck.view.ops.get(source), ck.view.nodes.get(source)
    if other is None or (op, port) not in (("critic", "critiques"), ("rank", "top_critiques")):
        return
    if op == "critic":
        aligned = node.candidates == other.candidates
        want = f"the candidates critic '{source}' read"
    else:
        aligned = isinstance(node.candidates, str) and re.fullmatch(
            rf"\$\{{\s*{re.escape(source)}\.(top|ranked)\s*\}}", node.candidates) is not None
        want = f"'${{{source}.top}}'"
    if not aligned:
        ck.error((*base, "critiques"), "E330", f"{node.op} node '{nid}': critiques from '{source}' are not "
                 f"aligned with its candidates", f"use {want} as candidates, or the critiques of these candidates")

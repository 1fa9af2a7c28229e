"""Helpers the ``llm`` ops share: chat messages, completion texts, usage, inputs, structured replies.

``judge``, ``select`` and ``verify`` (and refine's check) attach a JSON Schema to their requests;
providers that can enforce one reply in JSON, the others (the sim) in the text conventions of DESIGN
§2, and the ops read either. A JSON reply without the needed field (cut off by max_tokens, typically)
is an ``OutputError`` naming the model, not a guess.
"""

from __future__ import annotations

from typing import Any

from .. import templates
from ..answers import extract_answer, json_reply, parse_verdict
from ..errors import OutputError
from ..providers.base import Completion, binding_label
from ..spec.model import NodeBase


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


def usage(completions: list[Completion]) -> dict[str, int]:
    return {
        "input_tokens": sum(c.input_tokens for c in completions),
        "output_tokens": sum(c.output_tokens for c in completions),
        "samples": sum(len(c.texts) for c in completions),
    }


def candidates(values: dict[str, Any]) -> list[str]:
    raw = values.get("candidates")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raw = [raw]
    return [c if isinstance(c, str) else str(c) for c in raw if c is not None]


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
        raise OutputError(f"{binding_label(node.params['model'])}: {exc}{cut}") from None  # xcs adds the provider


def verdict(node: Any, completion: Completion) -> bool:
    reply(node, completion, "verdict")  # raises a clear error on an unreadable structured reply
    return parse_verdict(completion.texts[0])


def optional(ctx: Any, node: Any, *fields: str) -> dict[str, Any]:
    """The fields of a spec node that are set, as plain values (for a plan node's params)."""
    return {f: ctx.plain(getattr(node, f)) for f in fields if getattr(node, f) is not None}


def candidate_answers(values: dict[str, Any]) -> list[str]:
    return [extract_answer(c) for c in candidates(values)]


def lower_choice(ctx: Any, node: Any, **params: Any) -> list[Any]:
    """``judge``, ``select`` and ``verify``: question and candidates, template variables only with a
    custom prompt."""
    inputs = {"question": ctx.value(node.question), "candidates": ctx.value(node.candidates)}
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

"""``ensemble``: n samples from one model, or n from each of several (a varied ensemble).

With ``models:`` it lowers to one ``ensemble`` plan node per entry (``ID/m``, ``ID/m_2`` for repeats)
and a ``concat`` node ``ID`` joining their responses in order.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ..answers import extract_answer
from ..spec.model import Name, NodeBase, Ref, with_vars
from . import calls
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, one_per_sample
from .generate import distinct_answers


class EnsembleNode(NodeBase):
    op: Literal["ensemble"]
    model: str | None = None
    models: list[str] | None = None
    n: Annotated[int, Field(ge=1)] | Ref = Field(1, description="Samples per model.")
    prompt: str
    system: str | None = None
    extract: str | None = None
    with_: dict[Name, Any] = with_vars()


def part_names(models: list[str]) -> list[str]:
    """``[a, b, a]`` -> ``[a, b, a_2]``, never reusing a name already taken."""
    taken: set[str] = set()
    names = []
    for name in models:
        candidate, k = name, 1
        while candidate in taken:
            k += 1
            candidate = f"{name}_{k}"
        taken.add(candidate)
        names.append(candidate)
    return names


def lower(ctx: Any, node: EnsembleNode) -> list[Any]:
    base = {"n": int(ctx.static(node.n)), "prompt": ctx.plain(node.prompt),
            **calls.optional(ctx, node, "system", "extract")}
    inputs = {"vars": ctx.template_vars(node)}
    if not node.models:
        return [ctx.make("llm", "ensemble", inputs, {"model": ctx.model(node.model), **base})]
    parts = [
        ctx.make("llm", "ensemble", inputs, {"model": ctx.model(model), **base}, part=name)
        for name, model in zip(part_names(node.models), node.models, strict=True)
    ]
    concat = ctx.make("fn", "concat", {"parts": ctx.list([ctx.node_ref(p.id) for p in parts])}, {})
    return [*parts, concat]


def check(ck: Any, nid: str, node: EnsembleNode, base: tuple) -> None:
    if (node.model is None) == (node.models is None):
        both = "both" if node.model is not None else "neither"
        ck.error(base, "E301", f"ensemble node '{nid}' needs exactly one of 'model' or 'models' (it has {both})",
                 "model: NAME samples one model n times; models: [A, B] samples each n times", key=True)
    elif node.models is not None and not node.models:
        ck.error((*base, "models"), "E301", f"ensemble node '{nid}': 'models' must list at least one model")


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    return ctx.requests(calls.rendered(node, values), node.params.get("n", 1), role="generate")


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    kinds = calls.kinds(completions)
    samples = calls.answered(node, completions, kinds)  # None: a refusal, block or empty reply
    regex = node.params.get("extract")
    return {"responses": calls.texts(completions),
            "answers": [None if t is None else extract_answer(t, regex) for t in samples],
            "usage": calls.usage(completions, kinds)}


def sample_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    n = int(node.params.get("n", 1))
    return {"responses": n, "answers": n}


def concat(node: Any, values: dict[str, Any]) -> dict[str, Any]:
    parts = values["parts"]
    total: dict[str, int] = {}
    for p in parts:
        for k, v in p["usage"].items():
            total[k] = total.get(k, 0) + v
    return {
        "responses": [r for p in parts for r in p["responses"]],
        "answers": [a for p in parts for a in p["answers"]],
        "usage": total,
    }


def concat_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    sizes = [lengths.port(p.node, "responses") if hasattr(p, "node") else None
             for p in node.inputs["parts"].children()]
    total = None if None in sizes else sum(sizes)
    return {"responses": total, "answers": total}


def _validate(args: dict[str, Any]) -> str | None:
    model, models = args.get("model"), args.get("models")
    if (model is None) == (models is None) or (models is not None and not models):
        return "pass exactly one of model= or models= (a non-empty list)"
    n = args.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return f"n must be an integer >= 1, got {n!r}"
    return None


ENSEMBLE = PlanOp("ensemble", "llm", ("responses", "answers", "usage"), params=("model", "prompt", "n"),
                  build=build, finish=finish, effects=MODEL_CALL, calls=one_per_sample, lengths=sample_lengths,
                  role="generate", dry_text=distinct_answers)
CONCAT = PlanOp("concat", "fn", ("responses", "answers", "usage"), run=concat, lengths=concat_lengths)

OP = OpDef(
    name="ensemble",
    summary="n samples from one model, or n from each of several (varied ensemble).",
    node=EnsembleNode,
    ports={"responses": list[str], "answers": list[str | None], "usage": dict},
    lower=lower,
    plan_ops=(ENSEMBLE, CONCAT),
    model_fields=("model", "models"),
    template_fields=("prompt", "system"),
    static_fields=("n",),
    check=check,
    sdk=SdkDef("Ensemble", "``n`` samples from ``model`` (or ``n`` from each of ``models``). Output: "
               "``responses``, ``answers``, ``usage``.",
               {"model": None, "models": None, "n": 1, "prompt": REQUIRED, "system": None, "extract": None},
               validate=_validate),
    example={"op": "ensemble", "model": "m", "n": 3, "prompt": "Question: {{ inputs.question }}"},
)

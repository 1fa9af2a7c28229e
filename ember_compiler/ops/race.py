"""``race``: the same prompt to several bindings at once; the first success wins, the others are cancelled.

For latency (a hedged request: TensorZero's "first-of-N") and for flaky providers. One ``llm race``
node sends one request per binding in ``models``, all at once; the first reply that is an answer wins,
and the requests still running are cancelled. A failed or refused racer does not win: the race waits
for the next, and fails only when every racer failed (with the first racer's error).

What a cancelled racer costs: usage and cost count completed calls only. A request still queued
behind a gate or a rate limit is never sent; one in flight is aborted (its connection closed), and a
run's budget keeps it at its worst case, since the provider may bill the tokens it produced before
the abort. ``ember plan`` counts one call per racer (the bound: every racer may be needed).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from ..errors import ConfigError, OutputError
from ..providers.base import Request
from ..spec.model import Name, NodeBase, with_vars
from . import calls
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef, Send
from .generate import finish as finish_reply


class RaceNode(NodeBase):
    op: Literal["race"]
    models: list[str] = Field(..., description="The racing bindings (at least two).")
    prompt: str
    system: str | None = None
    extract: str | None = None
    with_: dict[Name, Any] = with_vars()


def lower(ctx: Any, node: RaceNode) -> list[Any]:
    racers = [ctx.model(m) for m in node.models]
    params = {"model": racers[0], "racers": racers, "prompt": ctx.plain(node.prompt),
              **calls.optional(ctx, node, "system", "extract")}
    return [ctx.make("llm", "race", {"vars": ctx.template_vars(node)}, params)]


def check(ck: Any, nid: str, node: RaceNode, base: tuple) -> None:
    if len(node.models) < 2:
        ck.error((*base, "models"), "E322", f"race node '{nid}' needs at least two models to race",
                 "list two or more bindings, or use op: generate for one")


async def drive(node: Any, values: dict[str, Any], ctx: CallContext, send: Send) -> dict[str, Any]:
    msgs = calls.rendered(node, values)
    racers = list(node.params["racers"])
    missing = [r for r in racers if r not in ctx.models]
    if missing:
        raise ConfigError(f"race node '{node.id}': unknown model binding '{missing[0]}'")
    # each racer its own sample index: on the sim, independent draws
    requests = [Request(name, ctx.models[name], msgs, 1, {**ctx.meta, "role": "generate", "sample_offset": i})
                for i, name in enumerate(racers)]
    pending = {asyncio.ensure_future(send([r])): i for i, r in enumerate(requests)}
    errors: dict[int, BaseException] = {}
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for fut in sorted(done, key=pending.__getitem__):  # several at once: the first listed wins
                i = pending.pop(fut)
                exc = fut.exception()
                if exc is None:
                    try:
                        out = finish_reply(node, values, fut.result())
                    except OutputError as err:  # a refusal or empty reply is no win
                        exc = err
                    else:
                        return {**out, "winner": racers[i], "cancelled": len(pending)}
                errors[i] = exc
    finally:
        for fut in pending:
            fut.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    raise errors[min(errors)]


def racers(node: Any, lengths: Any) -> int:
    return len(node.params.get("racers") or ())


def _validate(args: dict[str, Any]) -> str | None:
    models = args.get("models")
    if not isinstance(models, list | tuple) or len(models) < 2:
        return "models= must list at least two models to race"
    return None


RACE = PlanOp("race", "llm", ("text", "answer", "usage", "winner", "cancelled"), params=("model", "racers", "prompt"),
              drive=drive, effects=MODEL_CALL, calls=racers, per_call_requests=True, role="generate",
              dry_text=lambda j: "Answer: A")

OP = OpDef(
    name="race",
    summary="The same prompt to several models at once; the first success wins, the rest are cancelled.",
    node=RaceNode,
    ports={"text": str, "answer": Any, "usage": dict, "winner": str, "cancelled": int},
    lower=lower,
    plan_ops=(RACE,),
    model_fields=("models",),
    template_fields=("prompt", "system"),
    check=check,
    sdk=SdkDef("Race", "The same prompt to each of ``models`` at once; the first answer wins. Output: ``text``, "
               "``answer``, ``usage``, ``winner``, ``cancelled``.",
               {"models": REQUIRED, "prompt": REQUIRED, "system": None, "extract": None}, validate=_validate),
    example={"op": "race", "models": ["m", "m"], "prompt": "Question: {{ inputs.question }}"},
)

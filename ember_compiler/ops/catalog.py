"""The built-in op catalogue (DESIGN §2, contract): fields that name models, template fields, ports.

The checker, the lowering and the docs all read this table, so a port added here is known everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpInfo:
    name: str
    ports: tuple[str, ...]  # output ports a `${node.PORT}` reference may name
    model_fields: tuple[str, ...] = ()  # fields whose value is a model binding name
    template_fields: tuple[str, ...] = ()  # Jinja template fields
    summary: str = ""


OPS: dict[str, OpInfo] = {
    op.name: op
    for op in (
        OpInfo("generate", ("text", "answer", "usage"), ("model",), ("prompt", "system"),
               "One model call."),
        OpInfo("ensemble", ("responses", "answers", "usage"), ("model", "models"), ("prompt", "system"),
               "n samples from one model, or n from each of several (varied ensemble)."),
        OpInfo("vote", ("answer", "counts", "confidence"), (), (),
               "Plurality vote over extracted, normalized answers; ties go to the first seen."),
        OpInfo("judge", ("answer", "reasoning", "text"), ("model",), ("prompt",),
               "A model reads the candidates and writes the final answer."),
        OpInfo("select", ("answer", "index"), ("model",), ("prompt",),
               "A model picks one of the candidates."),
        OpInfo("verify", ("verdicts", "accepted", "answer"), ("model",), ("prompt",),
               "One verifier call per candidate; answer from the accepted ones."),
        OpInfo("refine", ("answer", "rounds", "accepted"), ("prover", "verifier"), (),
               "Verifier-prover loop: prove, verify, retry with feedback, up to max_rounds."),
        OpInfo("first", ("value",), (), (), "The first non-null candidate."),
        OpInfo("network", (), (), (), "Another spec, inlined; its outputs are the ports."),
        # ports of a python node are its operator's Output fields: known only once imported
        OpInfo("python", (), (), (), "A custom Python operator (call: package.module:Name)."),
        OpInfo("map", ("results", "answers"), (), (),
               "A sub-spec or an inline node per item of a list, in parallel; results in order."),
    )
}

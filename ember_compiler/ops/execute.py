"""``execute``: run each candidate program against tests in a sandbox; the first that passes is the answer.

One request per candidate, all in parallel, to the ``sandbox:`` binding: ``provider: sandbox`` runs
the program in a separate, locked-in process (``providers/sandbox.py``), ``provider: sim`` passes a
correct candidate with ``tpr`` and a wrong one with ``fpr`` (docs/sim.md). The program is the last
fenced code block of a candidate (```` ```python ````), else its whole text. ``tests`` is a list of
Python snippets (``assert f(1) == 2``), from the row or from a model node; a candidate passes when it
runs and every test does; with none, ``answer`` is null (``fallback: first``: the first
candidate's). The limits are the node's: ``timeout_s`` (wall clock), ``cpu_s``,
``memory_mb``, ``output_kb``.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import Field

from ..answers import extract_answer
from ..errors import OutputError
from ..spec.model import NodeBase
from . import calls
from .base import MODEL_CALL, REQUIRED, CallContext, OpDef, PlanOp, SdkDef

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
LIMITS = ("timeout_s", "cpu_s", "memory_mb", "output_kb")


class ExecuteNode(NodeBase):
    op: Literal["execute"]
    sandbox: str = Field(..., description="The binding that runs the programs: provider sandbox (or sim).")
    candidates: Any = Field(..., description="Candidate programs (texts; a fenced code block is extracted).")
    tests: Any = Field(..., description="A list of Python test snippets, e.g. ${inputs.tests}.")
    timeout_s: Annotated[float, Field(gt=0)] | None = Field(None, description="Wall clock per candidate (10).")
    cpu_s: Annotated[int, Field(ge=1)] | None = Field(None, description="CPU seconds per candidate (5).")
    memory_mb: Annotated[int, Field(ge=16)] | None = Field(None, description="Address space in MB (512).")
    output_kb: Annotated[int, Field(ge=1)] | None = Field(None, description="Output and file size in kB (256).")
    fallback: Literal["none", "first"] = Field("none", description="The answer when no candidate passes.")


def program_of(text: str) -> str:
    """The code in a candidate: its last fenced block, else the whole text."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


def lower(ctx: Any, node: ExecuteNode) -> list[Any]:
    limits = {k: getattr(node, k) for k in LIMITS if getattr(node, k) is not None}
    inputs = {"candidates": ctx.value(node.candidates), "tests": ctx.value(node.tests)}
    params = {"model": ctx.model(node.sandbox), "limits": limits, "fallback": node.fallback}
    return [ctx.make("llm", "execute", inputs, params)]


def _tests(values: dict[str, Any]) -> list[str]:
    raw = values.get("tests")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list):
        raise TypeError(f"execute: tests must be a list of Python snippets, got {type(raw).__name__}")
    return [str(t) for t in raw]


def build(node: Any, values: dict[str, Any], ctx: CallContext) -> list[Any]:
    tests = _tests(values)
    limits = node.params.get("limits") or {}
    out: list[Any] = []
    for i, cand in enumerate(calls.candidates(values)):
        program = program_of(cand)
        # the message holds all that decides the result, so a response cache keys on all of it
        run = json.dumps({"program": program, "tests": tests, "limits": limits}, sort_keys=True)
        out += ctx.requests(calls.messages(run), 1, offset=i, role="execute", program=program, tests=tests,
                            limits=limits, candidate=cand, candidate_answer=extract_answer(cand))
    return out


def finish(node: Any, values: dict[str, Any], completions: list[Any]) -> dict[str, Any]:
    cands = calls.candidates(values)
    results = [_result(node, c.texts[0]) for c in completions]
    passed = [bool(r.get("passed")) for r in results]
    first = next((c for c, ok in zip(cands, passed, strict=True) if ok), None)
    if first is None and cands and node.params.get("fallback") == "first":
        first = cands[0]
    return {"passed": passed, "results": results, "answer": None if first is None else extract_answer(first),
            "program": None if first is None else program_of(first)}


def _result(node: Any, text: str) -> dict[str, Any]:
    try:  # the result is the reply's last line (``ember plan``'s dry run pads before it)
        found = json.loads(text.rsplit("\n", 1)[-1])
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise OutputError(f"not a sandbox result: {text[:80]!r} (is the binding provider sandbox or sim?)",
                          node.params["model"])
    return found


def sample(draws: Any, cfg: Any, meta: dict[str, Any], truth: str | None) -> list[str]:
    """The sim: a correct candidate (its answer is the truth) passes with ``tpr``, a wrong one with
    ``fpr``; without a truth, with 1/2."""
    cand = meta.get("candidate_answer")
    correct = truth is not None and cand is not None and str(cand).strip() == truth
    p = 0.5 if truth is None else cfg.tpr if correct else cfg.fpr
    n_tests = len(meta.get("tests") or ())
    out = []
    for u1, _ in draws.pairs():
        ok = u1 * 2.0**-64 < p
        out.append(json.dumps({"passed": ok, "tests": [{"ok": ok, "error": None}] * n_tests,
                               "error": None, "blocked": [], "network": "sim", "output": ""}))
    return out


def per_candidate(node: Any, lengths: Any) -> int | None:
    return lengths.of(node.inputs.get("candidates"))


def passed_lengths(node: Any, lengths: Any) -> dict[str, int | None]:
    n = lengths.of(node.inputs.get("candidates"))
    return {"passed": n, "results": n}


def _dry(j: int) -> str:
    return json.dumps({"passed": j == 0, "tests": [], "error": None, "blocked": [], "network": "dry", "output": ""})


def _validate(args: dict[str, Any]) -> str | None:
    for key, lo in (("timeout_s", 0), ("cpu_s", 1), ("memory_mb", 16), ("output_kb", 1)):
        value = args.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < lo
                                  or (key == "timeout_s" and value == 0)):
            return f"{key} must be a number {'>' if key == 'timeout_s' else '>='} {lo}, got {value!r}"
    return None


EXECUTE = PlanOp("execute", "llm", ("passed", "results", "answer", "program"), params=("model", "limits"),
                 build=build, finish=finish, effects=MODEL_CALL, calls=per_candidate, per_call_requests=True,
                 lengths=passed_lengths, role="execute", sim=sample, dry_text=_dry)

OP = OpDef(
    name="execute",
    summary="Run each candidate program against tests in a sandbox; answer: the first that passes.",
    node=ExecuteNode,
    ports={"passed": list[bool], "results": list[dict], "answer": Any, "program": Any},
    lower=lower,
    plan_ops=(EXECUTE,),
    model_fields=("sandbox",),
    sdk=SdkDef("Execute", "Runs each candidate against ``tests`` in a sandbox. Output: ``passed``, "
               "``results``, ``answer``, ``program``.",
               {"sandbox": REQUIRED, "fallback": None, "timeout_s": None, "cpu_s": None, "memory_mb": None, "output_kb": None},
               value_fields=("candidates", "tests"), validate=_validate),
    example={"op": "execute", "sandbox": "m", "candidates": ["Answer: A", "Answer: B"],
             "tests": ["assert True"]},
)

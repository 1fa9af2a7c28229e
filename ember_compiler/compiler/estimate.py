"""Static cost estimate of a plan (`ember plan`): calls, tokens and cost per run, before anything runs.

Calls, requests, depth (model calls in sequence) and width come from `analysis.analyze` (upper bounds:
guarded nodes count as if they run). Tokens come from a *dry run*: the plan is executed against a
stand-in for the providers that records every request and answers with a placeholder of the largest
size the binding allows (`max_tokens`, else 1,024 tokens a sample), ending as its op's `dry_text`
says (`Answer: A`, `Verdict: yes`, distinct answers for samples that are voted on) — so prompts are rendered exactly
(with the dataset row's fields when one is given, else the inputs' defaults or empty strings) and a
judge's prompt holds candidates of their largest size. `sim` bindings answer with the sim itself
(free, exact). Input tokens are estimated at 4 characters a token plus 4 per message, per request
(a request with `n` bills its prompt once). Cost uses the binding's `price:` or the price table; an
unknown price makes the cost unknown (None). Plans with `python` nodes are not dry-run (that would
import user code): their prompts are estimated from the template lengths.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ..ops.registry import plan_op
from ..providers.base import Completion, Request
from ..providers.sim import SimProvider
from ..runtime import prices
from ..runtime.limits import DEFAULT_OUTPUT_ESTIMATE
from ..xcs.analysis import PlanStats, analyze
from ..xcs.executor import Executor
from ..xcs.plan import Plan, PlanNode


@dataclass
class Estimate:
    """One run's (or a dataset's) estimate."""

    calls: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_known: float = 0.0
    unpriced: set[str] = field(default_factory=set)  # bindings with no known price

    @property
    def cost_usd(self) -> float | None:
        return None if self.unpriced else round(self.cost_known, 8)

    def add(self, other: Estimate) -> None:
        self.calls += other.calls
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_known += other.cost_known
        self.unpriced |= other.unpriced

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "requests": self.requests, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}


def _output_per_sample(binding: dict[str, Any]) -> int:
    out = binding.get("max_tokens")
    return out if isinstance(out, int) else DEFAULT_OUTPUT_ESTIMATE


def _input_tokens(messages: list[dict[str, str]]) -> int:
    return sum(len(m.get("content") or "") for m in messages) // 4 + 4 * len(messages)


class _DrySink:
    """Stands in for the runtime: records requests, answers with largest-size placeholders."""

    def __init__(self, plan: Plan) -> None:
        self.by_node: dict[str, list[tuple[str, int, int]]] = {}  # node id -> (binding, input, output tokens)
        self._sim: SimProvider | None = None
        # the node a request is for (a vote cut-off asks as its ensemble)
        self.ops = {n.params.get("ensemble", n.id): plan_op(n.op) for n in plan.all_nodes() if n.kind == "llm"}

    def supports_n(self, binding: dict[str, Any]) -> bool:
        return True

    async def complete(self, request: Request, priority: float, row: Any) -> Completion:
        binding = request.model
        if binding.get("provider") == "sim":
            if self._sim is None:
                self._sim = SimProvider()
            c = self._sim.sample(request, self._sim.config_for(request))
            out = c.output_tokens
        else:
            per = 0 if binding.get("provider") == "sandbox" else _output_per_sample(binding)  # runs, writes no tokens
            op = self.ops.get(request.meta.get("node_id", ""))
            start = request.meta.get("sample_offset") or 0
            texts = []
            for j in range(start, start + request.n):
                tail = op.dry_text(j) if op is not None and op.dry_text is not None else "Answer: A"
                texts.append("x" * max(0, per * 4 - len(tail) - 1) + "\n" + tail)
            c = Completion(texts=texts, finish_reasons=["stop"] * request.n)
            out = per * request.n
        node = request.meta.get("node_id", "")
        self.by_node.setdefault(node, []).append((request.binding, _input_tokens(request.messages), out))
        return c


def _static_prompt_tokens(node: PlanNode) -> int:
    text = (node.params.get("prompt") or "") + (node.params.get("system") or "")
    return len(text) // 4 + 8


def estimate_run(plan: Plan, inputs: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
                 stats: PlanStats | None = None) -> tuple[Estimate, dict[str, Estimate], list[str]]:
    """(the run's estimate, per llm node, notes) for one set of inputs."""
    stats = stats or analyze(plan)
    notes: list[str] = []
    sink = _DrySink(plan)
    if not any(n.kind == "python" for n in plan.all_nodes()):
        values = {name: (inputs or {}).get(name, decl.get("default")) for name, decl in plan.inputs.items()}
        values = {k: ("" if v is None and plan.inputs[k].get("type", "string") == "string" else v)
                  for k, v in values.items()}
        try:
            asyncio.run(Executor(plan).execute(sink, values, {"seed": 0, "example_id": "estimate", **(meta or {})}))
        except Exception as exc:  # noqa: BLE001 - an estimate falls back to template lengths
            notes.append(f"dry run stopped ({type(exc).__name__}: {str(exc)[:120]}); "
                         "the remaining prompts are estimated from template lengths")
    else:
        notes.append("python nodes: prompts estimated from template lengths (the dry run would import user code)")
    total = Estimate(requests=stats.requests)
    per_node: dict[str, Estimate] = {}
    for node in plan.all_nodes():
        if node.kind != "llm":
            continue
        calls = stats.node_calls.get(node.id, int(node.params.get("n", 1)))
        est = Estimate(calls=calls)
        binding = plan.models[node.params["model"]]
        seen = sink.by_node.get(node.params.get("ensemble", node.id))  # a vote cut-off asks as its ensemble
        if seen:
            est.requests = len(seen)
            est.input_tokens = sum(s[1] for s in seen)
            est.output_tokens = sum(s[2] for s in seen)
        else:
            est.requests = calls if plan_op(node.op).per_call_requests else 1
            est.input_tokens = _static_prompt_tokens(node) * est.requests
            est.output_tokens = _output_per_sample(binding) * calls if binding.get("provider") != "sim" else 8 * calls
        price, _ = prices.price_for(binding)
        if price is None:
            est.unpriced.add(node.params["model"])
        elif price is not prices.FREE:
            est.cost_known = est.input_tokens * price.input + est.output_tokens * price.output
        per_node[node.id] = est
        total.input_tokens += est.input_tokens
        total.output_tokens += est.output_tokens
        total.cost_known += est.cost_known
        total.unpriced |= est.unpriced
    total.calls = stats.calls
    total.requests = max(stats.requests, sum(e.requests for e in per_node.values()))  # cut-off batches
    return total, per_node, notes + list(stats.notes)

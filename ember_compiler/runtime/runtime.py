"""The runtime a plan executes against: providers, per-model gates, usage and cost, spans.

One `Runtime` is shared by every row of an eval, so all rows pass the same gates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..providers import registry
from ..providers.base import Completion, Provider, Request
from ..xcs.plan import Plan
from .gates import Gate
from .trace import Tracer

FREE_PROVIDERS = frozenset({"sim", "local"})


@dataclass(slots=True)
class Usage:
    """Model usage. `calls` counts generations (samples), `requests` the requests that carried them."""

    calls: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_known: float = 0.0
    unpriced: int = 0  # requests whose price is unknown: the cost is then unknown, never 0

    @property
    def cost_usd(self) -> float | None:
        return None if self.unpriced else round(self.cost_known, 10)

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_known += other.cost_known
        self.unpriced += other.unpriced

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "requests": self.requests, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}


@dataclass(slots=True)
class RowContext:
    """Per-execution bookkeeping: its usage and where its spans hang."""

    usage: Usage = field(default_factory=Usage)
    trace_id: str = ""
    root_span: str | None = None
    node_spans: dict[str, str] = field(default_factory=dict)


class _Target:
    """A binding resolved to its provider, gate and price."""

    __slots__ = ("binding", "provider", "gate", "price", "model_name", "provider_name")

    def __init__(self, binding: dict[str, Any], provider: Provider, gate: Gate) -> None:
        self.binding = binding
        self.provider = provider
        self.gate = gate
        price = binding.get("price")
        self.price = (price["input_per_mtok"] / 1e6, price["output_per_mtok"] / 1e6) if price else None
        if self.price is None and binding["provider"] in FREE_PROVIDERS:
            self.price = (0.0, 0.0)
        self.provider_name = binding["provider"]
        self.model_name = binding.get("model") or binding["provider"]


class Runtime:
    def __init__(self, *, tracer: Tracer | None = None, transport: Any = None,
                 max_in_flight: int | None = None) -> None:
        self.tracer = tracer or Tracer(None)
        self.transport = transport
        # the scheduling policy's bound across all models (and all rows of an eval)
        self._global = Gate(max_in_flight) if max_in_flight else None
        self.usage = Usage()
        self._providers: dict[tuple, Provider] = {}
        self._gates: dict[tuple, Gate] = {}
        self._targets: dict[int, _Target] = {}

    def prepare(self, plan: Plan) -> None:
        """Check every binding the plan calls (keys, extras) before any call is made."""
        used = {n.params["model"] for n in plan.nodes if n.kind == "llm"}
        for name in sorted(used):
            registry.check_binding(name, plan.models[name])
            self._target(plan.models[name])

    def _target(self, binding: dict[str, Any]) -> _Target:
        target = self._targets.get(id(binding))
        if target is None:
            key = registry.provider_key(binding)
            provider = self._providers.get(key)
            if provider is None:
                provider = self._providers[key] = registry.create_provider(binding, transport=self.transport)
            gate_key = (*key, binding.get("model"))
            gate = self._gates.get(gate_key)
            if gate is None:
                limit = (binding.get("limits") or {}).get("concurrency") or provider.default_concurrency(binding)
                gate = self._gates[gate_key] = Gate(limit)
            # keyed by id(): the target holds the binding, so the id stays unique while cached
            target = self._targets[id(binding)] = _Target(binding, provider, gate)
        return target

    def supports_n(self, binding: dict[str, Any]) -> bool:
        return self._target(binding).provider.supports_n

    async def complete(self, request: Request, priority: float, row: RowContext | None) -> Completion:
        target = self._target(request.model)
        bound = self._global
        if bound is not None:
            await bound.acquire(priority)
        try:
            await target.gate.acquire(priority)
        except BaseException:
            if bound is not None:
                bound.release()
            raise
        start = time.time()
        status, error = "OK", None
        try:
            completion = await target.provider.complete(request)
        except Exception as exc:
            status, error = "ERROR", type(exc).__name__
            raise
        finally:
            target.gate.release()
            if bound is not None:
                bound.release()
            if status == "ERROR" and row is not None:
                self._span(row, request, target, start, None, error)
        usage = row.usage if row is not None else self.usage
        usage.requests += 1
        usage.calls += len(completion.texts)
        usage.input_tokens += completion.input_tokens
        usage.output_tokens += completion.output_tokens
        cost = None
        if target.price is None:
            usage.unpriced += 1
        else:
            cost = completion.input_tokens * target.price[0] + completion.output_tokens * target.price[1]
            usage.cost_known += cost
        if row is not None:
            self._span(row, request, target, start, completion, None, cost)
        return completion

    def _span(self, row: RowContext, request: Request, target: _Target, start: float,
              completion: Completion | None, error: str | None, cost: float | None = None) -> None:
        tracer = self.tracer
        if tracer.path is None:
            return
        node_id = request.meta.get("node_id", "")
        parent = row.node_spans.get(node_id)
        if parent is None:
            parent = row.node_spans[node_id] = tracer.new_span_id()
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": target.provider_name,
            "gen_ai.request.model": target.model_name,
            "ember.model.binding": request.binding,
            "ember.node.id": node_id,
            "ember.role": request.meta.get("role"),
            "ember.samples": request.n,
        }
        for key in ("temperature", "max_tokens", "top_p", "seed"):
            if target.binding.get(key) is not None:
                attrs[f"gen_ai.request.{key}"] = target.binding[key]
        if completion is not None:
            attrs["gen_ai.usage.input_tokens"] = completion.input_tokens
            attrs["gen_ai.usage.output_tokens"] = completion.output_tokens
            attrs["ember.cost.usd"] = cost
            if completion.model:
                attrs["gen_ai.response.model"] = completion.model
            if completion.finish_reasons:
                attrs["gen_ai.response.finish_reasons"] = completion.finish_reasons
        else:
            attrs["error.type"] = error
        tracer.span(row.trace_id, tracer.new_span_id(), parent, f"chat {target.model_name}", "CLIENT",
                    start, time.time(), "OK" if error is None else "ERROR", attrs)

    def node_span(self, row: RowContext, node: Any, start: float, end: float, status: str) -> None:
        tracer = self.tracer
        if tracer.path is None:
            return
        span_id = row.node_spans.get(node.id) or tracer.new_span_id()
        tracer.span(row.trace_id, span_id, row.root_span, f"node {node.id}", "INTERNAL", start, end, "OK", {
            "ember.node.id": node.id, "ember.node.kind": node.kind, "ember.node.op": node.op,
            "ember.node.status": status, "ember.node.source": node.source,
        })

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
        self.tracer.close()

"""The runtime a plan executes against (the executor's CallSink): the mechanics put together.

One `Runtime` is shared by every row of an eval, so all rows pass the same gates. Its parts:
`pool.py` (providers, per-model gates, bindings resolved to targets), `attempts.py` (one request's
attempt loop and its `RetryState`), `usage.py` (`Usage` and per-row `RowContext`), `budget.py`
(reserved before each call), `cache.py` (looked up before each call) and `trace.py` (spans).
A provider that returned fewer samples than asked is asked for the rest.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from ..errors import ProviderError
from ..providers.base import Completion, Request, no_answers
from ..xcs.plan import Plan
from . import prices
from .attempts import WAIT_ALLOWANCE_S, RetryState, final_error, send
from .gates import Gate
from .otlp import content_attributes
from .pool import DEFAULT_TIMEOUT_S, ProviderPool, Target, called_models
from .trace import Tracer
from .usage import RowContext, Usage

FREE_PROVIDERS = prices.FREE_PROVIDERS

__all__ = ["DEFAULT_TIMEOUT_S", "FREE_PROVIDERS", "WAIT_ALLOWANCE_S", "RetryState", "RowContext", "Runtime",
           "Target", "Usage", "called_models"]


class Runtime:
    """Providers, gates, retries, budget, cache, usage and spans for the plans run through it.

    Args:
        tracer: where spans go (default: none written).
        transport: an httpx transport for every HTTP provider (tests).
        max_in_flight: the scheduling policy's bound across all models (and all rows of an eval).
        clock, sleep, rand: time and randomness (a virtual clock in tests).
        budget: a `budget.Budget` (or the cluster's), reserved before each call; None: no budget.
        cache: a `cache.ResponseCache`; None: no cache.
        gates: makes each model's gate (`cluster.GateFactory` on Ray); None: this process's own.
    """

    def __init__(self, *, tracer: Tracer | None = None, transport: Any = None,
                 max_in_flight: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random, budget: Any = None, cache: Any = None,
                 gates: Callable[..., Gate] | None = None) -> None:
        self.tracer = tracer or Tracer(None)
        self.budget = budget
        self.cache = cache
        self.transport = transport
        self.clock, self.sleep, self.rand = clock, sleep, rand
        self.bound = Gate(max_in_flight) if max_in_flight else None
        self.usage = Usage()
        self.warnings: list[str] = []  # one line each, deduplicated; the CLI prints them
        self.pool = ProviderPool(transport=transport, warn=self.warn, clock=clock, sleep=sleep, gates=gates)

    def warn(self, message: str) -> None:
        message = self.scrub(message)
        if message not in self.warnings:
            self.warnings.append(message)

    def prepare(self, plan: Plan) -> None:
        """Check every binding the plan calls (keys, extras) before any call is made."""
        self.pool.prepare(plan)

    def supports_n(self, binding: dict[str, Any]) -> bool:
        return self.pool.target(binding).provider.supports_n

    async def complete(self, request: Request, priority: float, row: RowContext | None) -> Completion:
        target = self.pool.target(request.model, request.binding)
        cache = self.cache
        lookup = None
        if cache is not None and cache.applies(target.provider_name):
            lookup = cache.lookup(target.provider_name, request)  # runtime/cache.py
            if lookup.cached:  # cached samples are not calls and cost nothing
                (row.usage if row is not None else self.usage).cache_hits += lookup.cached
                if lookup.complete is not None:
                    if row is not None:
                        self.span(row, request, target, time.time(), lookup.complete, None, 0.0, cached=True)
                    (row.usage if row is not None else self.usage).count_no_answers(lookup.complete)
                    return lookup.complete
                request = lookup.rest
        completion = await (send(self, target, request, priority, row) if self.budget is None
                            else self._send(target, request, priority, row))
        if len(completion.texts) < request.n:
            completion = await self._top_up(target, request, priority, row, completion)
        completion = completion if lookup is None else lookup.store(completion)
        # refusals and empty replies, counted once per sample the op receives (cached ones included)
        (row.usage if row is not None else self.usage).count_no_answers(completion)
        return completion

    async def _send(self, target: Target, request: Request, priority: float, row: RowContext | None) -> Completion:
        """`attempts.send`, within the budget when there is one (runtime/budget.py)."""
        budget = self.budget
        if budget is None:
            return await send(self, target, request, priority, row)
        if target.price is None and budget.limits.max_cost_usd is not None:
            self.warn(f"--max-cost-usd cannot bound model '{request.binding}': its price is unknown (set `price:`)")
        held = await budget.reserve(request, target.price)
        try:
            completion = await send(self, target, request, priority, row)
        except asyncio.CancelledError:
            budget.abandon(held)  # it may have been sent: counted at its worst case
            raise
        except BaseException:
            budget.settle(held, None, None)
            raise
        price = target.price
        budget.settle(held, completion, None if price is None else 0.0 if price is prices.FREE else price.cost(completion))
        return completion

    async def _top_up(self, target: Target, request: Request, priority: float, row: RowContext | None,
                      out: Completion) -> Completion:
        """Ask for the samples a server left out (it capped or ignored `n`), `per` at a time."""
        per = len(out.texts)
        if per == 0:
            raise final_error(self, target, request, ProviderError("the provider returned no texts"), 0)
        offset = request.meta.get("sample_offset", 0)
        while len(out.texts) < request.n:
            got, missing = len(out.texts), request.n - len(out.texts)
            more = [replace(request, n=min(per, missing - i), meta={**request.meta, "sample_offset": offset + got + i})
                    for i in range(0, missing, per)]
            for c in await asyncio.gather(*(self._send(target, r, priority, row) for r in more)):
                out.extend(c)
        del out.texts[request.n:], out.finish_reasons[request.n:]
        return out

    def account(self, row: RowContext | None, request: Request, target: Target, start: float,
                completion: Completion, attempt: int) -> None:
        """Count an answered request in its row's usage (else the runtime's) and trace it."""
        if self.pool.secrets:  # a hostile server may echo the key: never into usage, trace, rows or cache
            scrub = self.scrub
            if completion.model:
                completion.model = scrub(completion.model)
            completion.texts[:] = [scrub(t) if isinstance(t, str) else t for t in completion.texts]
        price = target.price
        cost = None if price is None else price.cost(completion) if price is not prices.FREE else 0.0
        (row.usage if row is not None else self.usage).record(completion, cost)
        if row is not None and (self.tracer.on or row.io is not None):
            node_id = request.meta.get("node_id", "")
            so_far = row.node_costs.get(node_id, 0.0)
            row.node_costs[node_id] = None if so_far is None or cost is None else so_far + cost
            self.span(row, request, target, start, completion, None, cost, attempt)

    def span(self, row: RowContext, request: Request, target: Target, start: float,
              completion: Completion | None, error: ProviderError | None, cost: float | None = None,
              attempt: int = 0, cached: bool = False) -> None:
        tracer = self.tracer
        if not tracer.on:
            if row.io is not None:
                self._record(row, request, None, completion, error, cached)
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
        if attempt:
            attrs["ember.attempt"] = attempt + 1
        if cached:
            attrs["ember.cache.hit"] = True
        binding = target.binding
        for key, name in _REQUEST_ATTRS:
            value = binding.get(key)
            if value is not None:
                attrs[name] = value
        if completion is not None:
            attrs["gen_ai.usage.input_tokens"] = completion.input_tokens
            attrs["gen_ai.usage.output_tokens"] = completion.output_tokens
            if completion.cached_tokens:
                attrs["gen_ai.usage.cache_read.input_tokens"] = completion.cached_tokens
            attrs["ember.cost.usd"] = cost
            if completion.model:
                attrs["gen_ai.response.model"] = completion.model
            if completion.finish_reasons:  # a copy: the span is encoded later, and a top-up extends the list
                attrs["gen_ai.response.finish_reasons"] = list(completion.finish_reasons)
            kinds = no_answers(completion)
            if any(kinds):  # per sample: refusal, blocked, length or empty (null: an answer)
                attrs["ember.response.no_answer"] = kinds
        elif error is not None:
            attrs["error.type"] = str(error.status) if error.status else "ProviderError"
            if error.status:
                attrs["http.response.status_code"] = error.status
            attrs["ember.error"] = self.scrub(str(error))[:300]
        span_id = tracer.new_span_id()
        content = None
        if row.io is not None:
            self._record(row, request, span_id, completion, error, cached)
            if tracer.export is not None:  # prompts and outputs leave the process only with --record io
                content = content_attributes(request.messages, None if completion is None else completion.texts,
                                             None if completion is None else completion.finish_reasons)
        tracer.span(row.trace_id, span_id, parent, f"chat {target.model_name}", "CLIENT",
                    start, time.time(), "OK" if error is None else "ERROR", attrs, content)

    def _record(self, row: RowContext, request: Request, span_id: str | None, completion: Completion | None,
                error: ProviderError | None, cached: bool) -> None:
        """`--record io`: the request's messages and what came back (the recorder scrubs secrets)."""
        row.io.request(row.row_id, request.meta.get("node_id", ""), span_id, request.binding, request.messages,
                       list(completion.texts) if completion is not None else [],
                       list(completion.finish_reasons) if completion is not None else [], cached,
                       None if error is None else self.scrub(str(error)))

    def node_span(self, row: RowContext, node: Any, start: float, end: float, status: str) -> None:
        tracer = self.tracer
        if not tracer.on:
            return
        span_id = row.node_spans.get(node.id) or tracer.new_span_id()
        attrs = {"ember.node.id": node.id, "ember.node.kind": node.kind, "ember.node.op": node.op,
                 "ember.node.status": status, "ember.node.source": node.source}
        if node.kind == "llm":
            attrs["ember.cost.usd"] = row.node_costs.get(node.id, 0.0)  # the sum over its calls; None: unknown
        tracer.span(row.trace_id, span_id, row.root_span, f"node {node.id}", "INTERNAL", start, end, "OK", attrs)

    def scrub(self, text: str) -> str:
        for secret in self.pool.secrets:
            text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.aclose()
        await self.pool.aclose()
        self.tracer.close()


_REQUEST_ATTRS = tuple((key, f"gen_ai.request.{key}") for key in ("temperature", "max_tokens", "top_p", "seed"))

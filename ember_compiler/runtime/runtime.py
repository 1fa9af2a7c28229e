"""The runtime a plan executes against: providers, per-model gates, retries, usage and cost, spans.

One `Runtime` is shared by every row of an eval, so all rows pass the same gates.

A model request goes: the global in-flight bound → its model's concurrency gate (by priority) → the
model's limiter (cool-down, RPM/TPM buckets; skipped when it has neither) → one provider attempt,
bounded by `timeout_s` → release. A failed attempt is judged by `retry.next_delay`: a 429/529 starts
the model's shared cool-down, other retryable failures sleep their own backoff, and either way the
retry passes the gates again; a 429 that arrives during the cool-down (its request was in flight
before the cool-down began) does not count against `max_retries` (retry.py). A provider that
returned fewer samples than asked is asked for the rest.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import EmberError, ProviderError
from ..providers import registry
from ..providers.base import Completion, Provider, Request
from ..xcs.plan import Plan
from . import prices
from .gates import Gate
from .limits import Limiter, estimate_tokens
from .retry import COOL_DOWN_STATUSES, DEFAULT_MAX_RETRIES, MAX_WAIVED_RETRIES, as_provider_error, next_delay
from .trace import Tracer

FREE_PROVIDERS = prices.FREE_PROVIDERS
DEFAULT_TIMEOUT_S = 60.0  # for plugin providers that do not say
WAIT_ALLOWANCE_S = 60.0  # a request's deadline: its attempts' timeouts plus this much waiting


@dataclass(slots=True)
class Usage:
    """Model usage. `calls` counts generations (samples), `requests` the requests that carried them."""

    calls: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_known: float = 0.0
    unpriced: int = 0  # requests whose price is unknown: the cost is then unknown, never 0
    cached_tokens: int = 0
    cache_hits: int = 0  # samples answered by the response cache: not calls, no cost

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
        self.cached_tokens += other.cached_tokens
        self.cache_hits += other.cache_hits

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "requests": self.requests, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cached_tokens": self.cached_tokens,
                "cache_hits": self.cache_hits, "cost_usd": self.cost_usd}


@dataclass(slots=True)
class RowContext:
    """Per-execution bookkeeping: its usage, where its spans hang, and (when tracing) cost per node."""

    usage: Usage = field(default_factory=Usage)
    trace_id: str = ""
    root_span: str | None = None
    node_spans: dict[str, str] = field(default_factory=dict)
    node_costs: dict[str, float | None] = field(default_factory=dict)  # None: some call was unpriced


class _Target:
    """A binding resolved to its provider, gate, price and call settings."""

    __slots__ = ("binding", "provider", "gate", "price", "model_name", "provider_name", "timeout_s",
                 "max_retries")

    def __init__(self, binding: dict[str, Any], provider: Provider, gate: Gate, price: prices.Price | None) -> None:
        self.binding = binding
        self.provider = provider
        self.gate = gate
        self.price = price
        self.provider_name = binding["provider"]
        self.model_name = binding.get("model") or binding["provider"]
        timeout = binding.get("timeout_s") or getattr(provider, "timeout_s", DEFAULT_TIMEOUT_S)
        self.timeout_s = float(timeout) if timeout else None  # None: no timer (the in-process sim)
        retries = binding.get("max_retries")
        self.max_retries = DEFAULT_MAX_RETRIES if retries is None else int(retries)


class Runtime:
    def __init__(self, *, tracer: Tracer | None = None, transport: Any = None,
                 max_in_flight: int | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random, budget: Any = None, cache: Any = None,
                 gates: Callable[..., Gate] | None = None) -> None:
        self.tracer = tracer or Tracer(None)
        self.budget = budget  # runtime/budget.py `Budget`: reserved before each call (None: no budget)
        self.cache = cache  # runtime/cache.py `ResponseCache` (None: no cache)
        self.transport = transport
        self._clock, self._sleep, self._rand = clock, sleep, rand
        # the scheduling policy's bound across all models (and all rows of an eval)
        self._global = Gate(max_in_flight) if max_in_flight else None
        self.usage = Usage()
        self.warnings: list[str] = []  # one line each, deduplicated; the CLI prints them
        self._providers: dict[tuple, Provider] = {}
        self._gates: dict[tuple, Gate] = {}
        # makes a model's gate, given (key, provider, limit, rpm, tpm, local): `cluster.GateFactory` puts the
        # gates of shared models in the cluster's actor; None: every gate is this process's own
        self._gate_factory = gates
        self._targets: dict[int, _Target] = {}
        self._secrets: set[str] = set()

    def warn(self, message: str) -> None:
        message = self._scrub(message)
        if message not in self.warnings:
            self.warnings.append(message)

    def prepare(self, plan: Plan) -> None:
        """Check every binding the plan calls (keys, extras) before any call is made."""
        for name in sorted(_called_models(plan.nodes)):
            registry.check_binding(name, plan.models[name])
            self._target(plan.models[name], name)

    def _target(self, binding: dict[str, Any], name: str | None = None) -> _Target:
        target = self._targets.get(id(binding))
        if target is None:
            key = registry.provider_key(binding)
            provider = self._providers.get(key)
            if provider is None:
                provider = self._providers[key] = registry.create_provider(binding, transport=self.transport)
            gate_key = (*key, binding.get("model"))
            gate = self._gates.get(gate_key)
            if gate is None:
                limits = binding.get("limits") or {}
                limit = limits.get("concurrency") or provider.default_concurrency(binding)
                rpm, tpm = limits.get("rpm"), limits.get("tpm")

                def local() -> Gate:
                    return Gate(limit, Limiter(rpm, tpm, clock=self._clock, sleep=self._sleep))
                gate = self._gates[gate_key] = local() if self._gate_factory is None else \
                    self._gate_factory(gate_key, provider, limit, rpm, tpm, local)
            price, why = prices.price_for(binding)
            if price is None:
                self.warn(f"no price for {binding['provider']} model '{binding.get('model') or '?'}'"
                          f"{f' (binding {name!r})' if name else ''}: {why}; its cost is reported as unknown "
                          "(null) — set `price:` on the binding to count it")
            env = registry.secret_env(binding)
            if env and os.environ.get(env):
                self._secrets.add(os.environ[env])
            # keyed by id(): the target holds the binding, so the id stays unique while cached
            target = self._targets[id(binding)] = _Target(binding, provider, gate, price)
        return target

    def supports_n(self, binding: dict[str, Any]) -> bool:
        return self._target(binding).provider.supports_n

    async def complete(self, request: Request, priority: float, row: RowContext | None) -> Completion:
        target = self._target(request.model, request.binding)
        cache = self.cache
        lookup = None
        if cache is not None and cache.applies(target.provider_name):
            lookup = cache.lookup(target.provider_name, request)  # runtime/cache.py
            if lookup.cached:  # cached samples are not calls and cost nothing
                (row.usage if row is not None else self.usage).cache_hits += lookup.cached
                if lookup.complete is not None:
                    if row is not None:
                        self._span(row, request, target, time.time(), lookup.complete, None, 0.0, cached=True)
                    return lookup.complete
                request = lookup.rest
        completion = await (self._request(target, request, priority, row) if self.budget is None
                            else self._send(target, request, priority, row))
        if len(completion.texts) < request.n:
            completion = await self._top_up(target, request, priority, row, completion)
        return completion if lookup is None else lookup.store(completion)

    async def _send(self, target: _Target, request: Request, priority: float, row: RowContext | None) -> Completion:
        """`_request`, within the budget when there is one (runtime/budget.py)."""
        budget = self.budget
        if budget is None:
            return await self._request(target, request, priority, row)
        if target.price is None and budget.limits.max_cost_usd is not None:
            self.warn(f"--max-cost cannot bound model '{request.binding}': its price is unknown (set `price:`)")
        held = await budget.reserve(request, target.price)
        try:
            completion = await self._request(target, request, priority, row)
        except asyncio.CancelledError:
            budget.abandon(held)  # it may have been sent: counted at its worst case
            raise
        except BaseException:
            budget.settle(held, None, None)
            raise
        price = target.price
        budget.settle(held, completion, None if price is None else 0.0 if price is prices.FREE else price.cost(completion))
        return completion

    async def _request(self, target: _Target, request: Request, priority: float, row: RowContext | None) -> Completion:
        """One request: attempts through the gates until one succeeds or the policy gives up."""
        gate, bound, lim = target.gate, self._global, target.gate.limiter
        provider, timeout_s = target.provider, target.timeout_s
        # sends so far; failures counted against max_retries; in-flight 429s, not counted (retry.py)
        tries = attempt = waived = 0
        began = 0.0
        while True:
            if bound is not None:
                await bound.acquire(priority)
            start, charged = time.time(), 0.0
            try:
                try:
                    if not gate.try_acquire():
                        await gate.acquire(priority)
                    try:
                        if lim.rpm is not None or lim.tpm is not None or lim.cooldown_until:
                            charged = await lim.acquire(estimate_tokens(request) if lim.tpm is not None else 0)
                            start = time.time()
                        if timeout_s is None:
                            completion = await provider.complete(request)
                        else:
                            if not tries:
                                began = self._clock()  # the deadline counts from the first send, not the queue
                            async with asyncio.timeout(timeout_s):
                                completion = await provider.complete(request)
                    finally:
                        gate.release()
                finally:
                    if bound is not None:
                        bound.release()
            except Exception as exc:
                if isinstance(exc, EmberError) and not isinstance(exc, ProviderError):
                    raise  # a configuration problem (e.g. the local server cannot start): not retried
                err = as_provider_error(exc, timeout_s)
                now = self._clock()
                # no request is sent during a cool-down: a 429 arriving in one was in flight before it
                # began, answered for a window already reported — waived (retry.py), within bounds
                waive = (err.status in COOL_DOWN_STATUSES and lim.cooling_down(now)
                         and target.max_retries > 0 and waived < MAX_WAIVED_RETRIES)
                if err.rate_limits is not None:
                    lim.learn(err.rate_limits)
                if row is not None:
                    self._span(row, request, target, start, None, err, attempt=tries)
                # all attempts and waits of one request fit in (max_retries + 1) × timeout_s + 60 s
                deadline = began + timeout_s * (target.max_retries + 1) + WAIT_ALLOWANCE_S \
                    if timeout_s else float("inf")
                delay = next_delay(err, attempt, now, deadline, target.max_retries, self._rand, waive)
                if delay is None:
                    raise self._final(target, request, err, tries) from exc
                tries += 1
                if waive:
                    waived += 1
                else:
                    attempt += 1
                if err.status in COOL_DOWN_STATUSES:
                    lim.cool_down(delay)  # everyone queued on this model waits, this retry included
                else:
                    await self._sleep(delay)
                continue
            if completion.rate_limits is not None:
                lim.learn(completion.rate_limits)
            if charged:
                lim.settle(charged, completion.input_tokens + completion.output_tokens)
            self._account(row, request, target, start, completion, tries)
            return completion

    def _final(self, target: _Target, request: Request, err: ProviderError, attempt: int) -> ProviderError:
        tries = f" (gave up after {attempt + 1} attempts)" if attempt else ""
        text = f"model '{request.binding}' ({target.provider_name} {target.model_name}): {err}{tries}"
        return ProviderError(self._scrub(text), status=err.status, retryable=err.retryable,
                             retry_after_s=err.retry_after_s)

    async def _top_up(self, target: _Target, request: Request, priority: float, row: RowContext | None,
                      out: Completion) -> Completion:
        """Ask for the samples a server left out (it capped or ignored `n`), `per` at a time."""
        per = len(out.texts)
        if per == 0:
            raise self._final(target, request, ProviderError("the provider returned no texts"), 0)
        offset = request.meta.get("sample_offset", 0)
        while len(out.texts) < request.n:
            got, missing = len(out.texts), request.n - len(out.texts)
            more = [replace(request, n=min(per, missing - i), meta={**request.meta, "sample_offset": offset + got + i})
                    for i in range(0, missing, per)]
            for c in await asyncio.gather(*(self._send(target, r, priority, row) for r in more)):
                out.texts += c.texts
                out.finish_reasons += c.finish_reasons
                out.input_tokens += c.input_tokens
                out.output_tokens += c.output_tokens
                out.cached_tokens += c.cached_tokens
                out.cache_write_tokens += c.cache_write_tokens
        del out.texts[request.n:], out.finish_reasons[request.n:]
        return out

    def _account(self, row: RowContext | None, request: Request, target: _Target, start: float,
                 completion: Completion, attempt: int) -> None:
        usage = row.usage if row is not None else self.usage
        usage.requests += 1
        usage.calls += len(completion.texts)
        usage.input_tokens += completion.input_tokens
        usage.output_tokens += completion.output_tokens
        usage.cached_tokens += completion.cached_tokens
        price = target.price
        if price is None:
            usage.unpriced += 1
            cost = None
        else:
            cost = price.cost(completion) if price is not prices.FREE else 0.0
            usage.cost_known += cost
        if row is not None and self.tracer.path is not None:
            node_id = request.meta.get("node_id", "")
            so_far = row.node_costs.get(node_id, 0.0)
            row.node_costs[node_id] = None if so_far is None or cost is None else so_far + cost
            self._span(row, request, target, start, completion, None, cost, attempt)

    def _span(self, row: RowContext, request: Request, target: _Target, start: float,
              completion: Completion | None, error: ProviderError | None, cost: float | None = None,
              attempt: int = 0, cached: bool = False) -> None:
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
        elif error is not None:
            attrs["error.type"] = str(error.status) if error.status else "ProviderError"
            if error.status:
                attrs["http.response.status_code"] = error.status
            attrs["ember.error"] = self._scrub(str(error))[:300]
        tracer.span(row.trace_id, tracer.new_span_id(), parent, f"chat {target.model_name}", "CLIENT",
                    start, time.time(), "OK" if error is None else "ERROR", attrs)

    def node_span(self, row: RowContext, node: Any, start: float, end: float, status: str) -> None:
        tracer = self.tracer
        if tracer.path is None:
            return
        span_id = row.node_spans.get(node.id) or tracer.new_span_id()
        attrs = {"ember.node.id": node.id, "ember.node.kind": node.kind, "ember.node.op": node.op,
                 "ember.node.status": status, "ember.node.source": node.source}
        if node.kind == "llm":
            attrs["ember.cost.usd"] = row.node_costs.get(node.id, 0.0)  # the sum over its calls; None: unknown
        tracer.span(row.trace_id, span_id, row.root_span, f"node {node.id}", "INTERNAL", start, end, "OK", attrs)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def aclose(self) -> None:
        if self.cache is not None:
            await self.cache.aclose()
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
        self.tracer.close()


_REQUEST_ATTRS = tuple((key, f"gen_ai.request.{key}") for key in ("temperature", "max_tokens", "top_p", "seed"))


def _called_models(nodes: Any) -> set[str]:
    """Bindings called by `llm` nodes, including those inside `map` sub-plans."""
    used: set[str] = set()
    for n in nodes:
        if n.kind == "llm":
            used.add(n.params["model"])
        elif n.kind == "map":
            used |= _called_models(n.subplan.nodes)
    return used


"""The server's Prometheus metrics (`GET /metrics`), in a registry of its own (two servers in one
process, as in the tests, do not share counters). Labels are model names and statuses only: never a
key, a key's name or a prompt."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..runtime.usage import Usage

CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("ember_serve_requests", "Chat completion requests answered, by model and status.",
                                ["model", "status"], registry=r)
        self.latency = Histogram("ember_serve_request_seconds", "Time from request to the end of its answer.",
                                 ["model"], buckets=_BUCKETS, registry=r)
        self.upstream = Counter("ember_serve_upstream_requests", "Requests sent to upstream models.",
                                ["model"], registry=r)
        self.calls = Counter("ember_serve_upstream_calls", "Model calls (samples) the upstream requests carried.",
                             ["model"], registry=r)
        self.tokens = Counter("ember_serve_tokens", "Tokens of the upstream calls (kind: input, output, cached).",
                              ["model", "kind"], registry=r)
        self.cost = Counter("ember_serve_cost_usd", "Known cost of the upstream calls in USD.", ["model"],
                            registry=r)
        self.in_flight = Gauge("ember_serve_in_flight", "Chat completion requests running.", registry=r)
        self.queued = Gauge("ember_serve_queue_depth", "Requests waiting for a free slot.", registry=r)
        self._statuses: dict[tuple[str, int], Any] = {}
        self._models: dict[str, tuple[Any, ...]] = {}

    def observe(self, model: str, status: int, seconds: float, usage: Usage | None) -> None:
        """Count one answered request (usage None: it made no upstream call we know of)."""
        counted = self._statuses.get((model, status))
        if counted is None:
            counted = self._statuses[(model, status)] = self.requests.labels(model, str(status))
        counted.inc()
        children = self._models.get(model)
        if children is None:
            children = self._models[model] = self._children(model)
        latency, upstream, calls, input_tokens, output_tokens, cached_tokens, cost = children
        latency.observe(seconds)
        if usage is not None and usage.requests:
            upstream.inc(usage.requests)
            calls.inc(usage.calls)
            input_tokens.inc(usage.input_tokens)
            output_tokens.inc(usage.output_tokens)
            if usage.cached_tokens:
                cached_tokens.inc(usage.cached_tokens)
            if usage.cost_known:
                cost.inc(usage.cost_known)

    def _children(self, model: str) -> tuple[Any, ...]:
        """A model's labelled metrics, looked up once (prometheus_client's lookup takes a lock each time);
        the cached-token series is made only when a request had cached tokens, as before."""
        return (self.latency.labels(model), self.upstream.labels(model), self.calls.labels(model),
                self.tokens.labels(model, "input"), self.tokens.labels(model, "output"),
                _Lazy(lambda: self.tokens.labels(model, "cached")), self.cost.labels(model))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class _Lazy:
    """A labelled child made at its first `inc` (so that `/metrics` lists no series that never counted)."""

    def __init__(self, make: Any) -> None:
        self.make, self.child = make, None

    def inc(self, amount: float) -> None:
        if self.child is None:
            self.child = self.make()
        self.child.inc(amount)

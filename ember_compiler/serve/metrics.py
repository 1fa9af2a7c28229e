"""The server's Prometheus metrics (`GET /metrics`), in a registry of its own (two servers in one
process, as in the tests, do not share counters). Labels are model names and statuses only: never a
key, a key's name or a prompt."""

from __future__ import annotations

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
        self._children: dict[tuple[str, str], object] = {}

    def observe(self, model: str, status: int, seconds: float, usage: Usage | None) -> None:
        """Count one answered request (usage None: it made no upstream call we know of)."""
        self._child(self.requests, model, str(status)).inc()
        self._child(self.latency, model).observe(seconds)
        if usage is not None and usage.requests:
            self._child(self.upstream, model).inc(usage.requests)
            self._child(self.calls, model).inc(usage.calls)
            self._child(self.tokens, model, "input").inc(usage.input_tokens)
            self._child(self.tokens, model, "output").inc(usage.output_tokens)
            if usage.cached_tokens:
                self._child(self.tokens, model, "cached").inc(usage.cached_tokens)
            if usage.cost_known:
                self._child(self.cost, model).inc(usage.cost_known)

    def _child(self, metric, *labels: str):
        """`metric.labels(*labels)`, looked up once (prometheus_client's lookup takes a lock each time)."""
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def text(self) -> bytes:
        return generate_latest(self.registry)

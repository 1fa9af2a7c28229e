"""Accounting: `Usage` (what model calls took) and `RowContext` (one execution's bookkeeping).

`Usage` adds and subtracts field by field — ``total = a + b``, ``delta = after - before``, ``u += v`` —
so no caller copies its fields by hand (a hand copy is how a delta loses `cached_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..answers import all_answers
from ..providers.base import Completion, no_answers


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
    refusals: int = 0  # samples that were refusals or safety blocks (answers.no_answer): no answer
    empty: int = 0  # samples that were empty (cut off at max_tokens, or nothing at all): no answer
    estimated: int = 0  # requests whose usage was missing or invalid: their tokens and cost are estimates

    @property
    def cost_usd(self) -> float | None:
        """The cost in USD, or None when some request's price is unknown."""
        return None if self.unpriced else round(self.cost_known, 10)

    def add(self, other: Usage) -> None:
        """Add `other` into this usage, in place."""
        self.calls += other.calls
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_known += other.cost_known
        self.unpriced += other.unpriced
        self.cached_tokens += other.cached_tokens
        self.cache_hits += other.cache_hits
        self.refusals += other.refusals
        self.empty += other.empty
        self.estimated += other.estimated

    def __iadd__(self, other: Usage) -> Usage:
        self.add(other)
        return self

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        out = self.copy()
        out.add(other)
        return out

    def __sub__(self, other: Usage) -> Usage:
        """The usage between two snapshots (`after - before`), every field included."""
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in _FIELDS})

    def copy(self) -> Usage:
        """A snapshot (later calls do not change it)."""
        return Usage(self.calls, self.requests, self.input_tokens, self.output_tokens, self.cost_known,
                     self.unpriced, self.cached_tokens, self.cache_hits, self.refusals, self.empty,
                     self.estimated)

    def record(self, completion: Completion, cost: float | None) -> None:
        """Count one answered request; `cost` None: its price is unknown."""
        self.requests += 1
        self.calls += len(completion.texts)
        self.input_tokens += completion.input_tokens
        self.output_tokens += completion.output_tokens
        self.cached_tokens += completion.cached_tokens
        self.estimated += completion.usage_estimated
        if cost is None:
            self.unpriced += 1
        else:
            self.cost_known += cost

    def count_no_answers(self, completion: Completion) -> None:
        """Count the samples of a completion an op received (fresh or cached) that are no answer."""
        if all_answers(completion.texts):  # the common case, quickly
            return
        for kind in no_answers(completion):
            if kind is not None:
                if kind in ("refusal", "blocked"):
                    self.refusals += 1
                else:
                    self.empty += 1

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "requests": self.requests, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cached_tokens": self.cached_tokens,
                "cache_hits": self.cache_hits, "refusals": self.refusals, "empty": self.empty,
                "cost_usd": self.cost_usd, **({"cost_estimated": True} if self.estimated else {})}


_FIELDS = fields(Usage)


@dataclass(slots=True)
class RowContext:
    """Per-execution bookkeeping: its usage, where its spans hang, (when tracing) cost per node, and (with
    `--record io`) the recorder its node and request records go to, under `row_id`."""

    usage: Usage = field(default_factory=Usage)
    trace_id: str = ""
    root_span: str | None = None
    node_spans: dict[str, str] = field(default_factory=dict)
    node_costs: dict[str, float | None] = field(default_factory=dict)  # None: some call was unpriced
    io: Any = None  # an `iorecord.IoRecorder`, or None: nothing recorded
    row_id: Any = 0  # the row's id in rows.jsonl (0 for a single run)

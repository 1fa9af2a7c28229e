"""The summary of an eval, computed from its per-row records (so a resumed run summarizes exactly like
an uninterrupted one): each metric with its 95% interval, calls per row, tokens, cost, latency, errors,
and the samples that were no answer (`refusals`: refused or blocked; `empty`: empty replies). A row is
scored wrong for them only when its answer node failed (every sample was one): a vote that still has
real answers is scored as usual."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..runtime.usage import Usage
from .metrics import interval


@dataclass(slots=True)
class RowStat:
    """What the summary needs from one row record (small, so long evals do not keep whole records)."""

    scores: tuple[float, ...] | None  # one per metric, None when the row has no answer to score against
    calls: int
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    latency_s: float
    error: bool
    cache_hits: int = 0
    refusals: int = 0  # samples that were refusals or safety blocks (no answer)
    empty: int = 0  # samples that were empty replies (no answer)
    estimated: int = 0  # requests whose usage was missing or invalid (their tokens and cost are estimates)

    def usage(self) -> Usage:
        """This row's usage (its cost unknown when `cost_usd` is None)."""
        unknown = self.cost_usd is None
        u = Usage(self.calls, self.requests, self.input_tokens, self.output_tokens,
                  0.0 if unknown else self.cost_usd, int(unknown), 0, self.cache_hits, self.refusals, self.empty)
        u.estimated = self.estimated
        return u

    @classmethod
    def from_record(cls, record: dict[str, Any], metric_names: list[str]) -> RowStat:
        scores = record.get("scores")
        return cls(
            None if scores is None else tuple(float(scores.get(n, 0.0)) for n in metric_names),
            int(record.get("calls") or 0), int(record.get("requests") or 0),
            int(record.get("input_tokens") or 0), int(record.get("output_tokens") or 0),
            record.get("cost_usd", 0.0), float(record.get("latency_s") or 0.0), "error" in record,
            int(record.get("cache_hits") or 0), int(record.get("refusals") or 0), int(record.get("empty") or 0),
            int(record.get("estimated") or 0),
        )


def usage_of(stats: list[RowStat]) -> Usage:
    u = Usage()
    for s in stats:
        u += s.usage()
    return u


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 4)


def summarize(stats: list[RowStat], metric_names: list[str], *, wall_s: float, run_id: str) -> dict[str, Any]:
    """The `--json` shape: DESIGN §7's `{"metrics": {"accuracy"}, "rows", "calls", "cost_usd", "wall_s"}`,
    extended. `accuracy` is the first metric's value (by default exact match)."""
    scored = [s.scores for s in stats if s.scores is not None]
    metrics: dict[str, float | None] = {}
    ci95: dict[str, list[float] | None] = {}
    for i, name in enumerate(metric_names):
        column = [sc[i] for sc in scored]
        value = math.fsum(column) / len(column) if column else None
        bounds = interval(column)
        metrics[name] = None if value is None else round(value, 6)
        ci95[name] = None if bounds is None else [round(bounds[0], 6), round(bounds[1], 6)]
    first = metric_names[0]
    metrics = {"accuracy": metrics[first], **metrics}
    ci95 = {"accuracy": ci95[first], **ci95}
    u = usage_of(stats)
    lat = sorted(s.latency_s for s in stats)
    n = len(stats)
    return {
        **({"cache_hits": u.cache_hits} if u.cache_hits else {}),
        "metrics": metrics, "ci95": ci95, "rows": n, "scored": len(scored),
        "errors": sum(s.error for s in stats), "refusals": u.refusals, "empty": u.empty, "calls": u.calls,
        "calls_per_row": round(u.calls / n, 4) if n else None, "requests": u.requests,
        "input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "cost_usd": u.cost_usd,
        **({"cost_estimated": True, "estimated_requests": u.estimated} if u.estimated else {}),
        "cost_per_row_usd": None if u.cost_usd is None or not n else round(u.cost_usd / n, 10),
        "wall_s": round(wall_s, 4), "latency_p50_s": percentile(lat, 0.5), "latency_p95_s": percentile(lat, 0.95),
        "run_id": run_id,
    }

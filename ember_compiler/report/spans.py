"""What a run's spans say, as the report draws it: every model call on a timeline, packed into lanes, and
the per-node figures (calls, tokens, cost, latency, errors, cache hits).

Spans are the lines of `trace.jsonl` or `trace.jsonl.gz` (`runtime/trace.py`): one `invoke_workflow` span per run or eval
row (its `ember.example.id` names the row), one `node ID` span per plan node that ran, one `chat MODEL`
span per model request (`ember.samples` of them are calls).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..runtime.trace import read_trace


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The `q` quantile of sorted values (nearest rank), None for none; microseconds kept (fn nodes are fast)."""
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 7)


def read_spans(folder: Path) -> list[dict[str, Any]]:
    """Every span of the run in `folder`: `trace.jsonl` (or its `.gz`) and the Ray workers'
    `trace.<worker>.jsonl`. A torn line (a run killed mid-write) is skipped."""
    names = {p.name.removesuffix(".gz") for p in folder.glob("trace*.jsonl*") if p.name.endswith((".jsonl", ".jsonl.gz"))}
    return [span for name in sorted(names) for span in read_trace(folder / name)]


def row_of_trace(spans: Iterable[dict[str, Any]]) -> dict[str, str]:
    """trace id -> the row it ran (the root span's `ember.example.id`; a plain `ember run` has none)."""
    out: dict[str, str] = {}
    for s in spans:
        if s.get("parent_span_id") is None:
            example = (s.get("attributes") or {}).get("ember.example.id")
            if example is not None:
                out[s["trace_id"]] = str(example)
    return out


def calls(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """The timeline: each request as `{t0, t1, lane, node, row, samples, status, cached, span}`, times in
    seconds from the run's first span, sorted by start; `lanes` (the bars' rows) and `peak` (the most
    requests in flight at once, which the greedy packing makes equal to `lanes`)."""
    if not spans:
        return {"calls": [], "lanes": 0, "peak": 0, "span_s": 0.0}
    origin = min(s["start_time_unix_nano"] for s in spans)
    end = max(s["end_time_unix_nano"] for s in spans)
    rows = row_of_trace(spans)
    found = []
    for s in spans:
        if s.get("kind") != "CLIENT":
            continue
        a = s.get("attributes") or {}
        found.append({
            "t0": (s["start_time_unix_nano"] - origin) / 1e9, "t1": (s["end_time_unix_nano"] - origin) / 1e9,
            "node": a.get("ember.node.id", ""), "row": rows.get(s.get("trace_id", "")),
            "model": a.get("ember.model.binding"), "samples": int(a.get("ember.samples") or 1),
            "status": s.get("status", "OK"), "cached": bool(a.get("ember.cache.hit")), "span": s.get("span_id"),
        })
    found.sort(key=lambda c: (c["t0"], c["t1"]))
    lanes = pack(found)
    return {"calls": found, "lanes": lanes, "peak": lanes, "span_s": (end - origin) / 1e9}


def pack(bars: list[dict[str, Any]]) -> int:
    """Give each bar (sorted by `t0`) the lowest lane free at its start (`lane`); returns the lanes used.

    Interval partitioning: the greedy choice uses as many lanes as the most bars that overlap at one
    instant, so the timeline's height is the run's peak parallelism. A bar that starts exactly when
    another ends reuses its lane (the second call waited for the first)."""
    free: list[int] = []  # lanes whose last bar has ended, lowest first
    busy: list[tuple[float, int]] = []  # (end, lane)
    used = 0
    for bar in bars:
        while busy and busy[0][0] <= bar["t0"]:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, used = used, used + 1
        bar["lane"] = lane
        heapq.heappush(busy, (bar["t1"], lane))
    return used


def node_stats(spans: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Per plan node: runs, skips, calls, requests, tokens, cost (None when a price was unknown), latency
    p50/p95 of its runs, failed requests and cache hits. Nodes in `order` first (the plan's), then any
    other the spans name."""
    stats: dict[str, dict[str, Any]] = defaultdict(lambda: {
        "runs": 0, "skipped": 0, "calls": 0, "requests": 0, "input_tokens": 0, "output_tokens": 0,
        "cost_usd": 0.0, "errors": 0, "cache_hits": 0, "op": None, "kind": None, "_lat": []})
    for s in spans:
        a = s.get("attributes") or {}
        node = a.get("ember.node.id")
        if node is None:
            continue
        st = stats[node]
        if s.get("kind") == "CLIENT":
            st["requests"] += 1
            st["calls"] += int(a.get("ember.samples") or 1)
            st["input_tokens"] += int(a.get("gen_ai.usage.input_tokens") or 0)
            st["output_tokens"] += int(a.get("gen_ai.usage.output_tokens") or 0)
            st["errors"] += s.get("status") == "ERROR"
            st["cache_hits"] += bool(a.get("ember.cache.hit"))
            if s.get("status") != "ERROR":
                cost = a.get("ember.cost.usd")
                st["cost_usd"] = None if cost is None or st["cost_usd"] is None else st["cost_usd"] + cost
        elif s.get("name", "").startswith("node "):
            st["op"], st["kind"] = a.get("ember.node.op"), a.get("ember.node.kind")
            if a.get("ember.node.status") == "skipped":
                st["skipped"] += 1
            else:
                st["runs"] += 1
                st["_lat"].append((s["end_time_unix_nano"] - s["start_time_unix_nano"]) / 1e9)
    out = []
    for node in [*[n for n in order if n in stats], *sorted(set(stats) - set(order))]:
        st = stats[node]
        lat = sorted(st.pop("_lat"))
        out.append({"id": node, **st, "latency_p50_s": percentile(lat, 0.5), "latency_p95_s": percentile(lat, 0.95)})
    return out

"""The report's page: the model of `report/data.py` rendered by a Jinja template into one HTML file with
its style, script, charts and data inlined, so it opens offline from anywhere (a CI artifact, an email).

The data the script needs (rows, recorded inputs and outputs) is one JSON blob in a
`<script type="application/json">`; the charts are SVG drawn in Python (`charts.py`, `graph.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ..xcs.plan import Plan
from .charts import curve_svg, gantt_svg, node_colors
from .graph import plan_svg

ASSETS = Path(__file__).parent / "assets"
MAX_BARS = 20_000  # a bigger timeline is cut (and says so): one SVG element per bar


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


def per_row(value: float | None) -> str:
    """A cost per row: a cheap model's is a few millionths of a dollar."""
    return "unknown" if value is None else f"${value:,.6f}"


def secs(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    return f"{value * 1000:.3g} ms" if value < 1 else f"{value:,.2f} s"


def num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _interval(ci: list[float] | None) -> str:
    return f"95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""


def _search_cards(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """An `ember optimize` search: the best point (and its test figures), the evaluations, the spend."""
    s, search = m["summary"], m["optimize"]
    spent = s["spent"]
    cards: list[tuple[str, str, str]] = []
    if search["best"] is not None:
        best = search["points"][search["best"]]
        cards.append(("best accuracy (dev)", num(best["accuracy"]) or "n/a",
                      " · ".join(d for d in (_interval(best["ci95"]), best["label"]) if d)))
        cards.append(("best point per row", per_row(best["cost_per_row_usd"]), f"{best['calls_per_row']:g} calls per row"))
    test = search["test"]
    if test is not None:
        cards.append(("best accuracy (test)", num(test["accuracy"]) or "n/a",
                      " · ".join(d for d in (_interval(test["ci95"]), f"{test['rows'] or 0:,} held-out rows",
                                             f"{per_row(test['cost_per_row_usd'])} per row") if d)))
    method = s["method"] + (f" (asked: {s['requested_method']})" if s.get("requested_method") not in (None, s["method"])
                            else "")
    cards.append(("evaluations", f"{s['evaluations']:,}", f"of {s['space_size']:,} points · {method} · objective "
                                                          f"{s['objective']}" + (f" · stopped at {s['stopped']}"
                                                                                 if s.get("stopped") else "")))
    if "calls" in spent:
        cards.append(("calls spent", f"{spent['calls']:,}", f"{spent.get('rows') or 0:,} rows scored"
                      + (f" · {spent['cache_hits']:,} cached" if spent.get("cache_hits") else "")))
    if "input_tokens" in spent:
        cards.append(("tokens", f"{spent['input_tokens']:,} in", f"{spent['output_tokens']:,} out"))
    if "cost_usd" in spent:
        cards.append(("cost spent", money(spent["cost_usd"]), "every evaluation and the test"))
    if spent.get("wall_s") is not None:
        cards.append(("wall time", secs(spent["wall_s"]), ""))
    return cards


def _cards(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    if m["kind"] == "optimize":
        return _search_cards(m)
    s = m["summary"]
    cards: list[tuple[str, str, str]] = []
    metrics = dict(s.get("metrics") or {})
    names = [n for n in metrics if n != "accuracy"]
    if "accuracy" in metrics and names:  # `accuracy` repeats the first metric: one card, named for both
        metrics = {f"accuracy ({names[0]})": metrics.pop(names[0]), **{n: metrics[n] for n in names[1:]}}
        s = {**s, "ci95": {f"accuracy ({names[0]})": (s.get("ci95") or {}).get(names[0]), **(s.get("ci95") or {})}}
    for name, value in metrics.items():
        ci = (s.get("ci95") or {}).get(name)
        cards.append((name, num(value) or "n/a", f"95% CI [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
    if "rows" in s:
        cards.append(("rows", f"{s['rows']:,}", f"{s.get('scored', 0):,} scored · {s.get('errors', 0):,} failed · "
                                                f"{s.get('refusals', 0):,} refusals · {s.get('empty', 0):,} empty"))
    if "points" in s:
        cards.append(("points", str(s["points"]), ", ".join(s.get("axes") or {})))
    if "calls" in s:
        detail = [f"{s['calls_per_row']:g} per row" if s.get("calls_per_row") is not None else "",
                  f"{s['requests']:,} requests" if "requests" in s else "",
                  f"{s['cache_hits']:,} cached" if s.get("cache_hits") else ""]
        cards.append(("calls", f"{s['calls']:,}", " · ".join(d for d in detail if d)))
    usage = s.get("usage") or s
    if "input_tokens" in usage:
        cards.append(("tokens", f"{usage['input_tokens']:,} in", f"{usage['output_tokens']:,} out"))
    if "cost_usd" in s:
        per = s.get("cost_per_row_usd")
        cards.append(("cost", money(s["cost_usd"]) + (" (estimated)" if s.get("cost_estimated") else ""),
                      f"{money(per)} per row" if per is not None else ""))
    if s.get("wall_s") is not None:
        lat = f"row latency p50 {secs(s['latency_p50_s'])} · p95 {secs(s['latency_p95_s'])}" \
            if s.get("latency_p50_s") is not None else ""
        cards.append(("wall time", secs(s["wall_s"]), lat))
    return cards


def _blob(m: dict[str, Any], colors: dict[str, str]) -> Markup:
    data = {"kind": m["kind"], "rows": m["rows"], "io": m["io"], "io_note": m["io_note"], "metrics": m["metrics"],
            "order": [n["id"] for n in (m["plan"] or {}).get("nodes", [])] or [n["id"] for n in m["nodes"]],
            "colors": colors}
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    # `<` never appears raw, so no `</script>` (or `<!--`) in a recorded text can end the blob early
    return Markup(text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render(m: dict[str, Any]) -> str:
    """The page for model `m` (`data.load`)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ASSETS), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    order = [n["id"] for n in m["nodes"] if n["requests"]]
    colors = node_colors(order)
    plan = Plan.from_json(m["plan"]) if m["plan"] is not None else None
    timeline = m["timeline"]
    clipped = len(timeline["calls"]) > MAX_BARS
    drawn = {**timeline, "calls": timeline["calls"][:MAX_BARS]} if clipped else timeline
    sweep = m["sweep"]
    grouped = sweep or m.get("optimize")  # a sweep's points or a search's evaluations
    curves: dict[str, Any] = {"curve_calls": None, "curve_cost": None}
    if grouped is not None:
        scored = [p for p in grouped["points"] if p["accuracy"] is not None]
        index = [i for i, p in enumerate(grouped["points"]) if p["accuracy"] is not None]
        best = grouped.get("best")
        marks = {"best": index.index(best) if best in index else None, "scatter": sweep is None}
        if scored:
            curves["curve_calls"] = Markup(curve_svg(scored, "calls_per_row", "calls per row",
                                                     [index.index(i) for i in grouped["front_calls"]], **marks))
        if scored and grouped["priced"]:
            curves["curve_cost"] = Markup(curve_svg(scored, "cost_per_row_usd", "cost per row (USD)",
                                                    [index.index(i) for i in grouped["front_cost"]], **marks))
    return env.get_template("report.html.j2").render(
        m=m, s=m["summary"], cards=_cards(m), colors=colors, money=money, per_row=per_row, secs=secs, num=num,
        # a sweep (a search) draws its first (best) point's plan, but its spans count every point's calls
        plan_svg=Markup(plan_svg(plan, {} if grouped is not None else {n["id"]: n["calls"] for n in m["nodes"]}))
        if plan is not None else None,
        gantt=Markup(gantt_svg(drawn, colors)), gantt_clipped=MAX_BARS if clipped else 0, **curves,
        css=Markup((ASSETS / "report.css").read_text(encoding="utf-8")),
        js=Markup((ASSETS / "report.js").read_text(encoding="utf-8")), blob=_blob(m, colors))

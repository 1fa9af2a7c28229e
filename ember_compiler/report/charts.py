"""The report's charts as SVG written here, from the same data the page carries: the timeline of calls
(a Gantt chart, one bar per request in the lanes `spans.pack` gave them) and a sweep's accuracy against
calls per row and against cost per row (a sweep's points, a search's evaluations), with intervals, the
Pareto front and a search's best point.

SVG from Python rather than a JavaScript chart library: the page stays one small file with nothing
vendored, the charts are there before any script runs (and in a browser with scripts off), and tests
read the drawn elements directly."""

from __future__ import annotations

import math
from typing import Any

from markupsafe import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
GANTT_W, LEFT, AXIS_H = 980, 8, 26


def node_colors(nodes: list[str]) -> dict[str, str]:
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(nodes)}


def seconds(t: float) -> str:
    if t < 1:
        return f"{t * 1000:.3g} ms"
    return f"{t:.3g} s" if t < 100 else f"{t:,.0f} s"


def _ticks(span: float, count: int = 6) -> list[float]:
    """Round steps (1, 2 or 5 times a power of ten) from 0 to `span`, about `count` of them."""
    if span <= 0:
        return [0.0]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(s * power for s in (1, 2, 5, 10) if s * power >= raw)
    return [i * step for i in range(int(span / step + 1e-9) + 1)]


def gantt_svg(timeline: dict[str, Any], colors: dict[str, str]) -> str:
    """One bar per request: x is time from the run's start, y its lane; overlapping bars are calls in
    flight at once, a gap before a bar is waiting (for inputs, a gate, a retry)."""
    bars, lanes, span = timeline["calls"], max(timeline["lanes"], 1), timeline["span_s"] or 1e-9
    lane_h = max(2.0, min(16.0, 480.0 / lanes))
    height = lanes * lane_h + AXIS_H
    scale = (GANTT_W - 2 * LEFT) / span
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" viewBox="0 0 {GANTT_W} {height:.0f}" '
             f'width="{GANTT_W}" height="{height:.0f}" role="img" aria-label="timeline of calls">']
    for t in _ticks(span):
        x = LEFT + t * scale
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{lanes * lane_h:.0f}"/>'
                     f'<text class="tick" x="{x:.1f}" y="{height - 8:.0f}">{seconds(t)}</text>')
    gap = 1 if lane_h >= 4 else 0
    for i, b in enumerate(bars):
        x, w = LEFT + b["t0"] * scale, max((b["t1"] - b["t0"]) * scale, 1.0)
        cls = "bar err" if b["status"] == "ERROR" else "bar cached" if b["cached"] else "bar"
        label = f'{b["node"]}{"" if b["row"] is None else " · row " + b["row"]} · {b["model"]} · ' \
                f'{seconds(b["t1"] - b["t0"])}{" · ×" + str(b["samples"]) if b["samples"] > 1 else ""}' \
                f'{" · cached" if b["cached"] else ""}{" · failed" if b["status"] == "ERROR" else ""}'
        parts.append(f'<rect class="{cls}" data-i="{i}" data-row="{escape(b["row"] or "")}" x="{x:.2f}" '
                     f'y="{b["lane"] * lane_h:.1f}" width="{w:.2f}" height="{lane_h - gap:.1f}" '
                     f'fill="{colors.get(b["node"], PALETTE[-1])}"><title>{escape(label)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other beats: none has fewer-or-equal x (calls, cost) with higher accuracy,
    or less x with the same accuracy. In increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def curve_svg(points: list[dict[str, Any]], x_key: str, x_label: str, front: list[int], *,
              best: int | None = None, scatter: bool = False) -> str:
    """Accuracy (with its 95% interval) against `x_key` for every point; the front is drawn as a
    stepped line through its points, which are filled; `best` (a position in `points`) is ringed.
    A sweep's points are joined in x order and all labelled; a `scatter` (a search's evaluations, maybe
    many) is not joined and labels only the front and the best point."""
    w, h, ml, mb, mt, mr = 460, 300, 52, 42, 14, 36
    xs = [p[x_key] for p in points]
    ys = [p["accuracy"] for p in points]
    lows = [p["ci95"][0] if p["ci95"] else y for p, y in zip(points, ys, strict=True)]
    highs = [p["ci95"][1] if p["ci95"] else y for p, y in zip(points, ys, strict=True)]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    y0, y1 = max(0.0, min(lows) - 0.02), min(1.0, max(highs) + 0.02)
    y1 = y1 if y1 > y0 else y0 + 0.1

    def px(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * (w - ml - mr)

    def py(y: float) -> float:
        return mt + (1 - (y - y0) / (y1 - y0)) * (h - mt - mb)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="curve" data-x="{x_key}" viewBox="0 0 {w} {h}" '
             f'width="{w}" height="{h}" role="img" aria-label="accuracy against {escape(x_label)}">',
             f'<line class="axis" x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}"/>',
             f'<line class="axis" x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}"/>']
    for t in _ticks(y1 - y0, 5):
        y = y0 + t
        parts.append(f'<text class="tick" x="{ml - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>'
                     f'<line class="grid" x1="{ml}" y1="{py(y):.1f}" x2="{w - mr}" y2="{py(y):.1f}"/>')
    for t in _ticks(x1 - x0, 5):
        x = x0 + t
        parts.append(f'<text class="tick" x="{px(x):.1f}" y="{h - mb + 16}" text-anchor="middle">{x:.3g}</text>')
    parts.append(f'<text class="label" x="{(ml + w - mr) / 2:.0f}" y="{h - 6}" text-anchor="middle">'
                 f'{escape(x_label)}</text><text class="label" x="12" y="{(mt + h - mb) / 2:.0f}" '
                 f'transform="rotate(-90 12 {(mt + h - mb) / 2:.0f})" text-anchor="middle">accuracy</text>')
    if not scatter:
        order = sorted(range(len(points)), key=lambda i: xs[i])
        parts.append('<polyline class="line" points="' + " ".join(f"{px(xs[i]):.1f},{py(ys[i]):.1f}" for i in order)
                     + '"/>')
    steps = []
    for k, i in enumerate(front):
        steps.append(f"{px(xs[i]):.1f},{py(ys[i]):.1f}")
        if k + 1 < len(front):
            steps.append(f"{px(xs[front[k + 1]]):.1f},{py(ys[i]):.1f}")
    parts.append(f'<polyline class="front" points="{" ".join(steps)}"/>')
    for i, p in enumerate(points):
        x = px(xs[i])
        parts.append(f'<line class="ci" x1="{x:.1f}" y1="{py(lows[i]):.1f}" x2="{x:.1f}" y2="{py(highs[i]):.1f}"/>'
                     f'<circle class="pt{" onfront" if i in front else ""}" data-point="{i}" cx="{x:.1f}" '
                     f'cy="{py(ys[i]):.1f}" r="4.5"><title>{escape(p["label"])}: accuracy {ys[i]:.4f}, '
                     f'{escape(x_label)} {xs[i]:.4g}</title></circle>'
                     + (f'<text class="pl" x="{x + 6:.1f}" y="{py(ys[i]) - 6:.1f}">{escape(p["label"])}</text>'
                        if not scatter or i in front or i == best else ""))
    if best is not None:
        parts.append(f'<circle class="best" data-point="{best}" cx="{px(xs[best]):.1f}" cy="{py(ys[best]):.1f}" r="8">'
                     f'<title>best: {escape(points[best]["label"])}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)

"""The sweep's picture: accuracy (with 95% intervals) against calls per row and against cost, and the
fitted scaling law beside the measured points. Needs matplotlib (`pip install 'ember-compiler[plot]'`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError


def pyplot():
    """matplotlib.pyplot on the Agg backend.

    Raises:
        ConfigError: matplotlib is not installed (the `plot` extra).
    """
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'ember-compiler[plot]'") from None
    matplotlib.use("Agg")  # files only: no display needed, works in CI
    import matplotlib.pyplot as plt

    return plt


def _series(sweep: Any) -> dict[str, list[Any]]:
    """Points grouped by every axis but the first (one line each); the first axis runs along the line."""
    groups: dict[str, list[Any]] = {}
    rest = [p for p, _ in sweep.axes[1:]]
    for point in sweep.points:
        label = ", ".join(f"{k}={point.values[k]}" for k in rest) or "measured"
        groups.setdefault(label, []).append(point)
    return groups


def plot_sweep(sweep: Any, path: str | Path, *, title: str = "", fit: Any = None) -> Path:
    plt = pyplot()
    path = Path(path)
    fig, (ax_calls, ax_cost) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    cost_known = all(p.summary.get("cost_per_row_usd") for p in sweep.points)
    for label, points in _series(sweep).items():
        xs = [p.summary["calls_per_row"] for p in points]
        ys = [p.summary["metrics"]["accuracy"] or 0.0 for p in points]
        lo = [y - (p.summary["ci95"]["accuracy"] or [y, y])[0] for p, y in zip(points, ys, strict=True)]
        hi = [(p.summary["ci95"]["accuracy"] or [y, y])[1] - y for p, y in zip(points, ys, strict=True)]
        ax_calls.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", capsize=3, label=label)
        if cost_known:
            costs = [p.summary["cost_per_row_usd"] for p in points]
            ax_cost.errorbar(costs, ys, yerr=[lo, hi], fmt="o-", capsize=3, label=label)
    if fit is not None:
        measured = max(p.summary["calls_per_row"] or 1 for p in sweep.points)
        top = max(measured * 1.1, max(fit.ks) * 2, fit.best_k * 2, 20)
        ks = [1 + i * (top - 1) / 300 for i in range(301)]
        ax_calls.plot(ks, [fit.predict(k) for k in ks], "--", color="black", lw=1.2,
                      label=f"fit (Chen et al. 2024) on K ≤ {max(fit.ks):g}")
        best = fit.best_k
        ax_calls.plot([best], [fit.predict(best)], "*", color="crimson", ms=13,
                      label=f"predicted best: {best} calls, acc {fit.predict(best):.3f}")
    ax_calls.set_xlabel("model calls per row")
    ax_calls.set_ylabel("accuracy (95% CI)")
    ax_calls.grid(alpha=0.3)
    ax_calls.legend(fontsize=8)
    if cost_known:
        ax_cost.set_xlabel("cost per row (USD)")
        ax_cost.set_ylabel("accuracy (95% CI)")
        ax_cost.grid(alpha=0.3)
    else:
        ax_cost.text(0.5, 0.5, "cost unknown or free\n(set `price:` on the model binding)",
                     ha="center", va="center", transform=ax_cost.transAxes)
        ax_cost.set_axis_off()
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_front(result: Any, path: str | Path, *, title: str = "") -> Path:
    """A search's picture: every evaluation (grey), its Pareto front (a step line) and the best point
    (a star), accuracy against cost per row and against calls per row."""
    plt = pyplot()
    path = Path(path)
    fig, (ax_cost, ax_calls) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    by_cost, by_calls = result.fronts()
    best = result.best
    cost_known = all(s.summary.get("cost_per_row_usd") is not None for s in result.evaluations)
    panels = [(ax_calls, by_calls, lambda s: s.calls, "model calls per row")]
    if cost_known:
        panels.insert(0, (ax_cost, by_cost, lambda s: s.cost, "cost per row (USD)"))
    else:
        ax_cost.text(0.5, 0.5, "cost unknown\n(set `price:` on the model bindings)",
                     ha="center", va="center", transform=ax_cost.transAxes)
        ax_cost.set_axis_off()
    for ax, front, x, label in panels:
        ax.scatter([x(s) for s in result.evaluations], [s.accuracy for s in result.evaluations], s=14,
                   color="0.65", label=f"{len(result.evaluations)} evaluations")
        ax.step([x(s) for s in front], [s.accuracy for s in front], "o-", where="post", color="tab:blue",
                label="Pareto front")
        if best is not None:
            ax.plot([x(best)], [best.accuracy], "*", color="crimson", ms=14, label="best")
        ax.set_xlabel(label)
        ax.set_ylabel("dev accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

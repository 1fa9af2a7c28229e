"""`ember plan`: what a spec will cost — calls, tokens, cost, depth and width — before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import output
from .app import NoPassOpt, SetOpt, SpecArg, app, compile_plan, errors
from .eval_cmd import LimitOpt, MapOpt


def _cost(value: float | None) -> str:
    return "cost unknown" if value is None else f"${value:.4f}"


def estimate_spec(plan: Any, rows: list[Any] | None) -> dict[str, Any]:
    """The `ember plan --json` shape: `per_run` (the mean over rows with a dataset), `dataset`, `nodes`."""
    from ember_compiler.compiler.estimate import Estimate, estimate_run
    from ember_compiler.runtime.run import example_meta
    from ember_compiler.xcs.analysis import analyze

    stats = analyze(plan)
    if not rows:
        run, nodes, notes = estimate_run(plan, stats=stats)
        return {"plan": plan.name, "per_run": run.to_json(), "depth": stats.depth, "width": stats.width,
                "nodes": {k: v.to_json() for k, v in nodes.items()}, "notes": notes,
                "unpriced": sorted(run.unpriced)}
    total = Estimate()
    by_node: dict[str, Estimate] = {}
    notes: list[str] = []
    for row in rows:
        data = row.data or {}
        values = {k: v for k, v in data.items() if k in plan.inputs}
        run, nodes, row_notes = estimate_run(plan, values, example_meta(0, row.id, values, data), stats)
        total.add(run)
        for k, v in nodes.items():
            by_node.setdefault(k, Estimate()).add(v)
        notes += [n for n in row_notes if n not in notes]
    n = len(rows)
    per_run = {k: (round(v / n, 4) if isinstance(v, int | float) else v) for k, v in total.to_json().items()}
    return {"plan": plan.name, "rows": n, "per_run": per_run, "dataset": total.to_json(), "depth": stats.depth,
            "width": stats.width, "nodes": {k: v.to_json() for k, v in by_node.items()}, "notes": notes,
            "unpriced": sorted(total.unpriced)}


@app.command(name="plan")
def plan_(
    spec: SpecArg,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset: estimate each row with its fields.")] = None,
    set: SetOpt = None,
    map: MapOpt = None,
    limit: LimitOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON estimate.")] = False,
    no_pass: NoPassOpt = None,
) -> None:
    """Estimate calls, tokens and cost per run (and for a dataset), depth and width — without running."""
    from ember_compiler.eval.dataset import load_rows, parse_map

    with errors():
        plan = compile_plan(spec, set, no_pass, batch=data is not None)
        rows = load_rows(data, limit, mapping=parse_map(map)) if data is not None else None
        est = estimate_spec(plan, rows)
        if json_out:
            output.print_json(est)
            return
        run = est["per_run"]
        per = "per row (mean)" if rows else "per run"
        output.print_text(f"{est['plan']}: depth {est['depth']} calls in sequence · width {est['width']} calls at once")
        output.print_text(f"{per}: {run['calls']:,g} calls ({run['requests']:,g} requests) · ~{run['input_tokens']:,g} "
                          f"tokens in / ≤{run['output_tokens']:,g} out · {_cost(run['cost_usd'])}")
        if rows:
            d = est["dataset"]
            output.print_text(f"dataset ({est['rows']:,} rows): {d['calls']:,} calls ({d['requests']:,} requests) · "
                              f"~{d['input_tokens']:,} tokens in / ≤{d['output_tokens']:,} out · {_cost(d['cost_usd'])}")
        for node_id, e in est["nodes"].items():
            output.note(f"  {node_id}: {e['calls']:,} calls · ~{e['input_tokens']:,} in / ≤{e['output_tokens']:,} out"
                        f" · {_cost(e['cost_usd'])}")
        if est["unpriced"]:
            output.warning(f"no price for model binding(s) {', '.join(est['unpriced'])}: set `price:` to count them")
        for note in est["notes"]:
            output.note(f"note: {note}")

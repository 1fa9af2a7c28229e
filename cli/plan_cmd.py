"""`ember plan`: what a spec will cost — calls, tokens, cost, depth and width — before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember_compiler import api

from . import output
from .app import (
    AllowOutsideOpt,
    MaxSpecBytesOpt,
    NoPassOpt,
    SetOpt,
    SizeLimitOpt,
    SpecArg,
    app,
    errors,
    limits,
)
from .eval_cmd import LimitOpt, MapOpt


def _cost(value: float | None) -> str:
    return "cost unknown" if value is None else f"${value:.4f}"


@app.command(name="plan")
def plan_(
    spec: SpecArg,
    data: Annotated[Path | None, typer.Option("--data", help="Dataset: estimate each row with its fields.")] = None,
    set: SetOpt = None,
    map: MapOpt = None,
    limit: LimitOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON estimate.")] = False,
    no_pass: NoPassOpt = None,
    allow_outside: AllowOutsideOpt = False,
    max_spec_bytes: MaxSpecBytesOpt = None,
    size_limit: SizeLimitOpt = None,
) -> None:
    """Estimate calls, tokens and cost per run (and for a dataset), depth and width — without running."""
    with errors():
        options = api.RunOptions(sets=api.parse_sets(set), disable_passes=tuple(no_pass or ()),
                                 limits=limits(allow_outside, max_spec_bytes, size_limit))
        est = api.estimate(spec, data, options, map=map, limit=limit)
        if json_out:
            output.print_json(est)
            return
        run, rows = est["per_run"], est.get("rows")
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

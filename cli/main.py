"""The `ember` command (DESIGN §7): argument parsing and printing over the library's public API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ember_compiler import api

from . import eval_cmd as _eval_cmd  # noqa: F401  (registers `ember eval`)
from . import explain_cmd as _explain_cmd  # noqa: F401  (registers `ember explain`)
from . import import_cmd as _import_cmd  # noqa: F401  (registers `ember import`)
from . import optimize_cmd as _optimize_cmd  # noqa: F401  (registers `ember optimize`)
from . import output
from . import plan_cmd as _plan_cmd  # noqa: F401  (registers `ember plan`)
from . import report_cmd as _report_cmd  # noqa: F401  (registers `ember report`)
from . import runs_cmd as _runs_cmd  # noqa: F401  (registers `ember runs`)
from . import serve_cmd as _serve_cmd  # noqa: F401  (registers `ember serve`)
from . import simdata_cmd as _simdata_cmd  # noqa: F401  (registers `ember sim-data`)
from . import sweep_cmd as _sweep_cmd  # noqa: F401  (registers `ember sweep`)
from .app import (
    AllowOutsideOpt,
    CacheModeOpt,
    CacheOpt,
    MaxCallsOpt,
    MaxCostOpt,
    MaxSpecBytesOpt,
    MaxTokensOpt,
    NoCacheOpt,
    NoPassOpt,
    NoTraceOpt,
    OldMaxTokensOpt,
    OtlpOpt,
    RecordMaxMbOpt,
    RecordOpt,
    RunsDirOpt,
    SchedulerOpt,
    SetOpt,
    SizeLimitOpt,
    SpecArg,
    app,
    errors,
    limits,
    run_options,
)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Spec files or folders (all *.yaml, *.yml, *.json below).")],
    format: Annotated[str, typer.Option("--format", help="text, json or github.")] = "text",
    import_operators: Annotated[bool, typer.Option(
        "--import", help="Import the operators python nodes name (runs their modules' code) to check "
                         "with:, init: and ports against them. Off by default: validating runs no user code.")] = False,
    max_cost: Annotated[float | None, typer.Option(
        "--max-cost-usd", "--max-cost", help="Also fail a spec whose estimated cost per run (`ember plan`) "
                                             "exceeds USD, or is unknown (for CI).")] = None,
    allow_outside: AllowOutsideOpt = False,
    max_spec_bytes: MaxSpecBytesOpt = None,
    size_limit: SizeLimitOpt = None,
) -> None:
    """Check specs and report every problem as FILE:LINE:COL: error: MESSAGE."""
    if format not in ("text", "json", "github"):
        raise typer.BadParameter("must be text, json or github", param_hint="--format")
    with errors():
        diags = api.validate(paths, import_operators=import_operators, limits=limits(allow_outside, max_spec_bytes, size_limit))
        failed = [d for d in diags if d.severity == "error"]
        if format == "json" or diags:
            output.print_text(api.render_diagnostics(diags, format))
        if format == "text":
            summary = f"Found {len(failed)} error{'s' if len(failed) != 1 else ''}." if failed else "All specs valid."
            output.note(summary)
        if failed:
            raise typer.Exit(1)
        if max_cost is not None and _over_budget(paths, max_cost):
            raise typer.Exit(1)


def _over_budget(paths: list[Path], max_cost: float) -> bool:
    """Print and count the specs whose static per-run estimate exceeds `max_cost` (or is unknown)."""
    over = [(file, cost) for file, cost in api.estimated_costs(paths) if cost is None or cost > max_cost]
    for file, cost in over:
        why = "cost unknown (set `price:` on its models)" if cost is None else f"~${cost:.4f} per run"
        output.error(f"{file}: estimated {why} exceeds --max-cost-usd ${max_cost:g}")
    if not over:
        output.note(f"Every spec's estimated cost per run is within ${max_cost:g}.")
    return bool(over)


@app.command()
def run(
    spec: SpecArg,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="NAME=VALUE (VALUE parsed as JSON "
                                                     "when it is JSON, else a string).")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="JSON file with the inputs.")] = None,
    set: SetOpt = None,
    seed: Annotated[int, typer.Option(help="Run seed (the sim and seeded models reproduce exactly).")] = 0,
    scheduler: SchedulerOpt = "parallel",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
    max_cost: MaxCostOpt = None,
    max_calls: MaxCallsOpt = None,
    max_tokens: MaxTokensOpt = None,
    old_max_tokens: OldMaxTokensOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    cache_mode: CacheModeOpt = "read-write",
    no_pass: NoPassOpt = None,
    runs_dir: RunsDirOpt = None,
    no_trace: NoTraceOpt = False,
    record: RecordOpt = None,
    record_max_mb: RecordMaxMbOpt = api.RECORD_MAX_MB,
    otlp: OtlpOpt = None,
    allow_outside: AllowOutsideOpt = False,
    max_spec_bytes: MaxSpecBytesOpt = None,
    size_limit: SizeLimitOpt = None,
) -> None:
    """Run a spec once and print its outputs."""
    with errors():
        options = run_options(seed=seed, scheduler=scheduler, set_items=set, no_pass=no_pass, max_cost=max_cost,
                              max_calls=max_calls, max_tokens=max_tokens, old_max_tokens=old_max_tokens,
                              cache=cache, no_cache=no_cache, cache_mode=cache_mode, runs_dir=runs_dir,
                              no_trace=no_trace, record=record, record_max_mb=record_max_mb, otlp=otlp,
                              limits=limits(allow_outside, max_spec_bytes, size_limit))
        result = api.run(spec, api.parse_inputs(input, inputs), options)
        for message in result.warnings:
            output.warning(message)
        if json_out:
            extra = {"error": result.error} if result.error else {}
            output.print_json({**result.to_json(), **extra, **({"warnings": result.warnings} if result.warnings else {})})
        elif result.error:
            output.error(result.error)
        else:
            output.print_outputs(result)
        if result.run_dir is not None and not json_out and not no_trace:
            kept = [p for p in (result.run_dir / "trace.jsonl", result.run_dir / "trace.jsonl.gz") if p.is_file()]
            output.note(f"trace: {kept[0] if kept else result.run_dir / 'trace.jsonl'}")
        if result.run_dir is not None and not json_out and record is not None:
            kept = [p for p in (result.run_dir / "io.jsonl", result.run_dir / "io.jsonl.gz") if p.is_file()]
            if kept:
                output.note(f"io: {kept[0]}")
        if result.error:
            raise typer.Exit(3 if result.budget_exceeded else 1)


@app.command(name="compile")
def compile_(
    spec: SpecArg,
    format: Annotated[str, typer.Option("--format", help="json or text.")] = "json",
    out: Annotated[Path | None, typer.Option("-o", "--output", help="Write the plan to this file.")] = None,
    set: SetOpt = None,
    no_pass: NoPassOpt = None,
    allow_outside: AllowOutsideOpt = False,
    max_spec_bytes: MaxSpecBytesOpt = None,
    size_limit: SizeLimitOpt = None,
) -> None:
    """Compile a spec into its xcs plan and print it."""
    if format not in ("json", "text"):
        raise typer.BadParameter("must be json or text", param_hint="--format")
    with errors():
        plan = api.compile(spec, api.parse_sets(set), disable=no_pass or (),
                           limits=limits(allow_outside, max_spec_bytes, size_limit))
        text = api.plan_text(plan, format)
        if out is None:
            output.print_text(text)
        else:
            out.write_text(text, encoding="utf-8")
            output.note(f"wrote {out} ({plan.hash[:19]}…)")


@app.command()
def graph(
    spec: SpecArg,
    format: Annotated[str, typer.Option("--format", help="mermaid or dot.")] = "mermaid",
    set: SetOpt = None,
    allow_outside: AllowOutsideOpt = False,
    max_spec_bytes: MaxSpecBytesOpt = None,
    size_limit: SizeLimitOpt = None,
) -> None:
    """Draw a spec's plan as a Mermaid or Graphviz DOT graph."""
    if format not in ("mermaid", "dot"):
        raise typer.BadParameter("must be mermaid or dot", param_hint="--format")
    with errors():
        output.print_text(api.plan_text(api.compile(spec, api.parse_sets(set), limits=limits(allow_outside, max_spec_bytes, size_limit)), format))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format."""
    output.print_text(api.schema_text())


if __name__ == "__main__":
    app()

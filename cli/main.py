"""The `ember` command (DESIGN §7): argument parsing and printing over the library's public API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ember_compiler.errors import UsageError

from . import eval_cmd as _eval_cmd  # noqa: F401  (registers `ember eval`)
from . import explain_cmd as _explain_cmd  # noqa: F401  (registers `ember explain`)
from . import output
from . import plan_cmd as _plan_cmd  # noqa: F401  (registers `ember plan`)
from . import simdata_cmd as _simdata_cmd  # noqa: F401  (registers `ember sim-data`)
from . import sweep_cmd as _sweep_cmd  # noqa: F401  (registers `ember sweep`)
from .app import (
    CacheModeOpt,
    CacheOpt,
    MaxCallsOpt,
    MaxCostOpt,
    MaxTokensOpt,
    NoCacheOpt,
    NoPassOpt,
    SchedulerOpt,
    SetOpt,
    SpecArg,
    app,
    budget_limits,
    compile_plan,
    errors,
    open_cache,
)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Spec files or folders (all *.yaml, *.yml, *.json below).")],
    format: Annotated[str, typer.Option("--format", help="text, json or github.")] = "text",
    import_operators: Annotated[bool, typer.Option(
        "--import", help="Import the operators python nodes name (runs their modules' code) to check "
                         "with:, init: and ports against them. Off by default: validating runs no user code.")] = False,
    max_cost: Annotated[float | None, typer.Option(
        "--max-cost", help="Also fail a spec whose estimated cost per run (`ember plan`) exceeds USD, or is "
                           "unknown (for CI).")] = None,
) -> None:
    """Check specs and report every problem as FILE:LINE:COL: error: MESSAGE."""
    from ember_compiler.compiler.check import validate_paths
    from ember_compiler.spec.diagnostics import render_all

    if format not in ("text", "json", "github"):
        raise typer.BadParameter("must be text, json or github", param_hint="--format")
    with errors():
        diags = validate_paths([str(p) for p in paths], import_operators=import_operators)
        failed = [d for d in diags if d.severity == "error"]
        if format == "json" or diags:
            output.print_text(render_all(diags, format))
        if format == "text":
            summary = f"Found {len(failed)} error{'s' if len(failed) != 1 else ''}." if failed else "All specs valid."
            output.note(summary)
        if failed:
            raise typer.Exit(1)
        if max_cost is not None and _over_budget(paths, max_cost):
            raise typer.Exit(1)


def _over_budget(paths: list[Path], max_cost: float) -> bool:
    """Print and count the specs whose static per-run estimate exceeds `max_cost` (or is unknown)."""
    from ember_compiler.compiler import compile_spec
    from ember_compiler.compiler.check import _marked_as_spec, _spec_files

    from .plan_cmd import estimate_spec

    over = 0
    for path in paths:
        for file in [path] if not path.is_dir() else [f for f in _spec_files(path) if _marked_as_spec(f)]:
            cost = estimate_spec(compile_spec(file), None)["per_run"]["cost_usd"]
            if cost is None or cost > max_cost:
                over += 1
                why = "cost unknown (set `price:` on its models)" if cost is None else f"~${cost:.4f} per run"
                output.error(f"{file}: estimated {why} exceeds --max-cost ${max_cost:g}")
    if not over:
        output.note(f"Every spec's estimated cost per run is within ${max_cost:g}.")
    return bool(over)


def _parse_inputs(items: list[str] | None, inputs_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            loaded = json.loads(inputs_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read --inputs {inputs_file}: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError(f"--inputs {inputs_file} must hold a JSON object")
        values.update(loaded)
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--input expects NAME=VALUE, got '{item}'")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw
    return values


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
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    cache_mode: CacheModeOpt = "read-write",
    no_pass: NoPassOpt = None,
) -> None:
    """Run a spec once and print its outputs."""
    from ember_compiler.runtime.run import run_plan

    with errors():
        plan = compile_plan(spec, set, no_pass)
        values = _parse_inputs(input, inputs)
        limits = budget_limits(plan, max_cost, max_calls, max_tokens)
        result = run_plan(plan, values, seed=seed, scheduler=scheduler, budget=limits,
                          cache=open_cache(plan, cache, no_cache, cache_mode))
        for message in result.warnings:
            output.warning(message)
        if json_out:
            extra = {"error": result.error} if result.error else {}
            output.print_json({**result.to_json(), **extra, **({"warnings": result.warnings} if result.warnings else {})})
        elif result.error:
            output.error(result.error)
        else:
            for name, value in result.outputs.items():
                output.print_text(f"{name}: {output.value_text(value)}" if len(result.outputs) > 1
                                  else output.value_text(value))
            u = result.usage
            output.note(output.usage_line(u.calls, u.input_tokens, u.output_tokens, u.cost_usd, result.wall_s)
                        + (f" · {u.cache_hits:,} cached" if u.cache_hits else ""))
        if result.run_dir is not None and not json_out:
            output.note(f"trace: {result.run_dir / 'trace.jsonl'}")
        if result.error:
            raise typer.Exit(3 if result.budget_exceeded else 1)


@app.command(name="compile")
def compile_(
    spec: SpecArg,
    format: Annotated[str, typer.Option("--format", help="json or text.")] = "json",
    out: Annotated[Path | None, typer.Option("-o", "--output", help="Write the plan to this file.")] = None,
    set: SetOpt = None,
    no_pass: NoPassOpt = None,
) -> None:
    """Compile a spec into its xcs plan and print it."""
    from ember_compiler.xcs.printing import to_text

    if format not in ("json", "text"):
        raise typer.BadParameter("must be json or text", param_hint="--format")
    with errors():
        plan = compile_plan(spec, set, no_pass)
        text = json.dumps(plan.to_json(), indent=2) + "\n" if format == "json" else to_text(plan) + "\n"
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
) -> None:
    """Draw a spec's plan as a Mermaid or Graphviz DOT graph."""
    from ember_compiler.xcs.printing import to_dot, to_mermaid

    if format not in ("mermaid", "dot"):
        raise typer.BadParameter("must be mermaid or dot", param_hint="--format")
    with errors():
        plan = compile_plan(spec, set)
        output.print_text(to_mermaid(plan) if format == "mermaid" else to_dot(plan))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec format."""
    from ember_compiler.compiler.schema import schema_text

    output.print_text(schema_text())


if __name__ == "__main__":
    app()

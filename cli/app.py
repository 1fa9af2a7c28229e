"""The `ember` Typer app and what every command shares: error mapping, --set, compiling a spec."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ember_compiler.errors import EmberError, SpecInvalid

from . import output

app = typer.Typer(
    name="ember", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Design, validate, compile and run Networks of Networks (compound LLM systems).",
)
_state = {"debug": False}

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a param or spec field: PATH=VALUE "
                                                  "(e.g. candidates.n=9, params.n=9).")]
SpecArg = Annotated[Path, typer.Argument(help="Spec file (YAML or JSON).")]
SchedulerOpt = Annotated[str, typer.Option("--scheduler", help="Scheduling policy: parallel (default), "
                                            "sequential, cheapest-first, or one registered in ember.schedulers.")]


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False) -> None:
    _state["debug"] = debug


@contextmanager
def errors() -> Iterator[None]:
    """Map library errors to one clear line and the exit codes of DESIGN §7."""
    try:
        yield
    except SpecInvalid as exc:
        from ember_compiler.spec.diagnostics import render_all

        sys.stderr.write(render_all(exc.diagnostics) + "\n")
        raise typer.Exit(1) from None
    except EmberError as exc:
        if _state["debug"]:
            traceback.print_exc()
        output.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error("interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:  # a bug in Ember: still one line unless --debug
        if _state["debug"]:
            traceback.print_exc()
        output.error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        raise typer.Exit(1) from None


def sets(items: list[str] | None) -> dict[str, Any]:
    from ember_compiler.compiler.sets import parse_set

    return dict(parse_set(s) for s in items or [])


NoPassOpt = Annotated[list[str] | None, typer.Option(
    "--no-pass", help="Turn off a plan pass: prune, dedupe or vote_cutoff (repeat for several).")]


def compile_plan(spec: Path, set_items: list[str] | None, no_pass: list[str] | None = None, *,
                 batch: bool = False):
    from ember_compiler.compiler import compile_spec

    return compile_spec(spec, sets(set_items), disable=no_pass or (), batch=batch)


MaxCostOpt = Annotated[float | None, typer.Option("--max-cost", help="Budget: stop before the spend could exceed "
                                                  "this many USD (exit code 3; overrides the spec's budget:).")]
MaxCallsOpt = Annotated[int | None, typer.Option("--max-calls", help="Budget: at most this many model calls.")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Budget: at most this many tokens "
                                                  "(input + output).")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Response cache file (also caches the sim). "
                                               "Default: $XDG_CACHE_HOME/ember/responses.sqlite3 "
                                               "(~/.cache/ember), for every provider but the sim.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.")]
CacheModeOpt = Annotated[str, typer.Option("--cache-mode", help="read-write (default), read-only, or replay "
                                           "(a request not in the cache is an error).")]


def budget_limits(plan: Any, max_cost: float | None, max_calls: int | None, max_tokens: int | None) -> Any:
    from ember_compiler.runtime.budget import limits_from

    return limits_from(plan.budget, max_cost=max_cost, max_calls=max_calls, max_tokens=max_tokens)


def open_cache(plan: Any, path: Path | None, no_cache: bool, mode: str) -> Any:
    """The response cache a command uses, or None (--no-cache, or the default cache and only sim calls)."""
    from ember_compiler.errors import UsageError
    from ember_compiler.runtime.cache import MODES, ResponseCache
    from ember_compiler.runtime.runtime import _called_models

    if mode not in MODES:
        raise UsageError(f"--cache-mode must be one of {', '.join(MODES)}, got '{mode}'")
    if no_cache:
        if path is not None or mode != "read-write":
            raise UsageError("--no-cache cannot be combined with --cache or --cache-mode")
        return None
    if path is None and all(plan.models[m]["provider"] == "sim" for m in _called_models(plan.nodes)):
        return None  # a sim call is cheaper than a lookup: the sim is cached only with an explicit --cache
    return ResponseCache(path, mode=mode, include_sim=path is not None)

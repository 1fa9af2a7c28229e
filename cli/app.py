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


def compile_plan(spec: Path, set_items: list[str] | None):
    from ember_compiler.compiler import compile_spec

    return compile_spec(spec, sets(set_items))

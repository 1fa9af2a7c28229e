"""The `ember` Typer app and what every command shares: error mapping, the shared options, and turning
flags into the library's `RunOptions` (the CLI imports only `ember_compiler.api`)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ember_compiler import api

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
    except api.SpecInvalid as exc:
        sys.stderr.write(api.render_diagnostics(exc.diagnostics) + "\n")
        raise typer.Exit(1) from None
    except api.EmberError as exc:
        if _state["debug"]:
            traceback.print_exc()
        output.error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error("interrupted")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except OSError as exc:  # disk full, read-only, `.ember` a file: the file and the reason, one line
        if _state["debug"]:
            traceback.print_exc()
        output.error(os_error_text(exc))
        raise typer.Exit(1) from None
    except Exception as exc:  # a bug in Ember: still one line unless --debug
        if _state["debug"]:
            traceback.print_exc()
        output.error(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        raise typer.Exit(1) from None


def os_error_text(exc: OSError) -> str:
    """`cannot write .ember/runs/x/rows.jsonl: No space left on device` (the file, then the reason)."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot write{where}: {exc.strerror or exc}"


def renamed(new: Any, old: Any, old_flag: str, new_flag: str) -> Any:
    """The value of a renamed flag: the new one, else the deprecated spelling (with a one-line warning)."""
    if old is None:
        return new
    output.warning(f"{old_flag} is deprecated: use {new_flag}")
    if new is not None and new != old:
        raise api.UsageError(f"{old_flag} and {new_flag} are the same option: give one")
    return old


NoPassOpt = Annotated[list[str] | None, typer.Option(
    "--no-pass", help="Turn off a plan pass: prune, dedupe or vote-cutoff (repeat for several).")]
MaxCostOpt = Annotated[float | None, typer.Option(
    "--max-cost-usd", "--max-cost", help="Budget: stop before the spend could exceed this many USD (exit code 3; "
                                         "overrides the spec's budget:).")]
MaxCallsOpt = Annotated[int | None, typer.Option("--max-calls", help="Budget: at most this many model calls.")]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-total-tokens", help="Budget: at most this many tokens "
                                                  "over all calls (input + output).")]
OldMaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", hidden=True,
                                                     help="Deprecated: --max-total-tokens.")]
CacheOpt = Annotated[Path | None, typer.Option("--cache", help="Response cache file (also caches the sim). "
                                               "Default: $XDG_CACHE_HOME/ember/responses.sqlite3 "
                                               "(~/.cache/ember), for every provider but the sim.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Do not read or write the response cache.")]
CacheModeOpt = Annotated[str, typer.Option("--cache-mode", help="read-write (default), read-only, or replay "
                                           "(a request not in the cache is an error).")]
RowConcurrencyOpt = Annotated[int | None, typer.Option(
    "--row-concurrency", min=1, help="Rows in flight at once (default 64; per-model calls in flight are the "
                                     "binding's limits.concurrency).")]
RunsDirOpt = Annotated[Path | None, typer.Option(
    "--runs-dir", envvar="EMBER_RUNS_DIR", help="Where run folders go (default .ember/runs; env EMBER_RUNS_DIR).")]
NoTraceOpt = Annotated[bool, typer.Option("--no-trace", help="Do not write trace.jsonl into the run folder.")]
RecordOpt = Annotated[str | None, typer.Option(
    "--record", help="io: keep every node's inputs and outputs and every request's messages and replies in the "
                     "run folder (io.jsonl; off by default: prompts and outputs may be sensitive).")]
RecordMaxMbOpt = Annotated[float, typer.Option(
    "--record-max-mb", help="Size cap of the --record io file in MB (uncompressed); a note ends it when reached.")]
OtlpOpt = Annotated[str | None, typer.Option(
    "--otlp", help="Also export the spans to this OTLP/HTTP endpoint (e.g. http://localhost:4318; default: "
                   "OTEL_EXPORTER_OTLP_ENDPOINT). Needs pip install 'ember-compiler[otlp]'.")]
OldConcurrencyOpt = Annotated[int | None, typer.Option("--concurrency", min=1, hidden=True,
                                                       help="Deprecated: --row-concurrency.")]


def run_options(*, seed: int = 0, scheduler: str = "parallel", set_items: list[str] | None = None,
                no_pass: list[str] | None = None, max_cost: float | None = None, max_calls: int | None = None,
                max_tokens: int | None = None, old_max_tokens: int | None = None, cache: Path | None = None,
                no_cache: bool = False, cache_mode: str = "read-write", row_concurrency: int | None = None,
                old_concurrency: int | None = None, runs_dir: Path | None = None,
                no_trace: bool = False, record: str | None = None, record_max_mb: float = api.RECORD_MAX_MB,
                otlp: str | None = None) -> api.RunOptions:
    """The flags shared by run, eval, sweep, optimize and plan as the library's `RunOptions`."""
    max_tokens = renamed(max_tokens, old_max_tokens, "--max-tokens", "--max-total-tokens")
    rows = renamed(row_concurrency, old_concurrency, "--concurrency", "--row-concurrency")
    if no_cache and (cache is not None or cache_mode != "read-write"):
        raise api.UsageError("--no-cache cannot be combined with --cache or --cache-mode")
    budget = api.Budget(max_cost_usd=max_cost, max_calls=max_calls, max_total_tokens=max_tokens)
    return api.RunOptions(seed=seed, scheduler=scheduler, sets=api.parse_sets(set_items),
                          disable_passes=tuple(no_pass or ()), budget=None if budget.empty else budget,
                          cache=cache, cache_mode="off" if no_cache else cache_mode,
                          row_concurrency=rows if rows is not None else 64, trace=not no_trace,
                          record=record, record_max_mb=record_max_mb, otlp=otlp,
                          **({"runs_dir": runs_dir} if runs_dir is not None else {}))

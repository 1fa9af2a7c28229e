"""Ember's public library API (layer 10): what the `ember` command does, as functions.

    from ember_compiler import api
    plan = api.compile("specs/self-consistency.yaml", {"samples.n": 9})
    result = api.run(plan, {"question": "What is 7 * 6?"}, api.RunOptions(seed=1))
    report = api.evaluate("spec.yaml", "rows.jsonl", api.RunOptions(budget=api.Budget(max_cost_usd=1)))

Every function that runs something takes the same `RunOptions` (seed, scheduler, budget, cache,
trace, runs dir, passes, row concurrency, `--record io`, OTLP export). Errors are `EmberError`s (re-exported here): `SpecInvalid`
carries every diagnostic, `UsageError` is a bad argument, `BudgetExceeded` a spent budget.
The heavy parts (the compiler, the runtime, providers) are imported when a function is first called.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import BudgetExceeded, ConfigError, EmberError, ProviderError, SpecInvalid, UsageError
from .runs.options import PASS_NAMES, RunOptions, pass_name
from .runs.rundir import RUNS_DIR, RunDir, new_run_id
from .runtime.budget import Budget
from .runtime.iorecord import DEFAULT_MAX_MB as RECORD_MAX_MB
from .runtime.usage import Usage
from .serve.options import ServeOptions
from .spec.limits import Limits

if TYPE_CHECKING:
    from .eval.dataset import Row
    from .eval.fit import ScalingFit
    from .eval.optimize import Evaluator, OptimizeResult
    from .eval.runner import EvalJob, EvalResult
    from .eval.search import Scored, Search
    from .eval.sweep import SweepPoint, SweepResult
    from .runs.listing import RunInfo
    from .runs.run import RunResult
    from .spec.diagnostics import Diagnostic
    from .xcs.plan import Plan

__all__ = [
    "PASS_NAMES", "RECORD_MAX_MB", "RUNS_DIR", "Budget", "BudgetExceeded", "ConfigError", "EmberError", "EvalSetup", "ProviderError",
    "Limits", "RunDir", "RunOptions", "SpecInvalid", "UsageError", "aevaluate", "arun", "asweep", "compile", "estimate",
    "estimated_costs", "evaluate", "eval_job", "import_archon", "load_rows", "new_run_id", "parse_inputs", "parse_sets", "pass_name",
    "plan_text", "plot_sweep", "render_diagnostics", "report", "report_model", "explain", "diagnostic_codes", "require_plot", "run", "run_eval", "schema_text",
    "Usage", "ServeOptions", "serve", "serve_app", "sim_data", "spec_files", "sweep", "sweep_size", "validate", "list_runs", "prune_runs", "read_io",
    "aoptimize", "optimize", "optimize_size", "plot_front", "split_rows",
]


# -- checking and compiling --------------------------------------------------------------------------
def validate(paths: Iterable[str | Path], *, import_operators: bool = False,
             limits: Limits | None = None) -> list[Diagnostic]:
    """Check spec files and folders (every `*.yaml`, `*.yml`, `*.json` below that is marked `ember:`).

    Args:
        paths: files (always checked) and folders (searched, hidden folders skipped).
        import_operators: import the operators `python` nodes name (runs their modules' code) to
            check `with:`, `init:` and ports against them; off by default: no user code runs.
        limits: the caps of `Limits` (file size, sub-specs outside the folder, counts, plan size).

    Returns:
        Every diagnostic (errors and warnings), sorted by file and position; empty when all are valid.
        Never raises for bad input: an unreadable path is a diagnostic.
    """
    from .compiler.check import validate_paths

    return validate_paths([str(p) for p in paths], import_operators=import_operators, limits=limits or Limits())


def import_archon(config: str | Path, output: str | Path | None = None, *, sim: bool = False) -> Any:
    """Convert an Archon JSON layer config into an Ember spec (``ember import archon``).

    Returns the ``Imported`` result (``text``: the spec's YAML, ``notes``: what differs from Archon,
    ``archon_calls`` and ``ember_calls`` per query). With ``output`` the spec is written there; it is
    compiled either way, so a config that converts to an invalid spec is a ``SpecInvalid``. ``sim``
    binds every model to the sim provider. Raises ``UsageError`` for what Ember cannot express.
    """
    import tempfile

    from .compiler import compile_spec
    from .compiler.archon import load
    from .xcs.analysis import analyze

    result = load(config, sim=sim)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(output) if output is not None else Path(tmp) / "archon.yaml"
        try:
            path.write_text(result.text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        result.ember_calls = analyze(compile_spec(path)).calls
    return result


def spec_files(path: str | Path) -> list[Path]:
    """The specs `validate` checks for `path`: the file itself, or a folder's files marked as specs."""
    from .compiler.check import marked_as_spec
    from .compiler.check import spec_files as files_below

    path = Path(path)
    return [path] if not path.is_dir() else [f for f in files_below(path) if marked_as_spec(f)]


def parse_sets(items: Iterable[str] | None) -> dict[str, Any]:
    """`--set PATH=VALUE` items as {path: value} (VALUE parsed as YAML scalars/JSON: `9`, `true`, `[1,2]`).

    Raises:
        UsageError: an item without `=`.
    """
    from .compiler.sets import parse_set

    return dict(parse_set(s) for s in items or [])


def compile(spec: str | Path, sets: dict[str, Any] | None = None, *, batch: bool = False,  # noqa: A001
            disable: Iterable[str] = (), limits: Limits | None = None) -> Plan:
    """Load, check and lower a spec into its plan, and run the default plan passes.

    Args:
        spec: the spec file (YAML or JSON).
        sets: `--set` overrides, dotted path -> value (see `parse_sets`).
        batch: compile for many rows (eval, sweep): adds the passes that trade latency for calls
            (`vote-cutoff`).
        disable: passes not to run (`prune`, `dedupe`, `vote-cutoff`; snake_case accepted).
        limits: the caps checked while loading and validating (`Limits`).

    Returns:
        The plan (`ember_compiler.xcs.plan.Plan`).

    Raises:
        SpecInvalid: the spec (or a sub-spec) is invalid; carries every diagnostic.
        UsageError: an unknown pass name.
    """
    from .compiler import compile_spec

    off = tuple(pass_name(p) for p in disable)
    if unknown := [p for p in off if p not in PASS_NAMES]:
        raise UsageError(f"unknown pass '{unknown[0]}' (passes: {', '.join(PASS_NAMES)})")
    return compile_spec(spec, sets or None, batch=batch, disable=off, limits=limits or Limits())


def _plan(spec_or_plan: Any, options: RunOptions, *, batch: bool) -> Plan:
    from .xcs.plan import Plan

    if isinstance(spec_or_plan, Plan):
        return spec_or_plan
    return compile(spec_or_plan, options.sets, batch=batch, disable=options.disable_passes, limits=options.limits)


PLAN_FORMATS = ("json", "text", "mermaid", "dot")


def plan_text(plan: Plan, format: str = "json") -> str:  # noqa: A002
    """A plan as text: `json` (the plan file), `text` (one line per node), `mermaid` or `dot` (graphs).

    Raises:
        UsageError: an unknown format.
    """
    from .xcs import printing

    if format == "json":
        return json.dumps(plan.to_json(), indent=2) + "\n"
    if format == "text":
        return printing.to_text(plan) + "\n"
    if format == "mermaid":
        return printing.to_mermaid(plan)
    if format == "dot":
        return printing.to_dot(plan)
    raise UsageError(f"unknown plan format '{format}' ({', '.join(PLAN_FORMATS)})")


def schema_text() -> str:
    """The JSON Schema of the spec format (what `schemas/ember-spec.schema.json` holds)."""
    from .compiler.schema import schema_text as text

    return text()


def explain(code: str) -> str:
    """What `ember explain CODE` prints: a diagnostic code's (or its name's) summary, why and fix.

    Raises:
        UsageError: an unknown code (with a did-you-mean hint).
    """
    from .spec.codes import explain_text

    return explain_text(code)


def diagnostic_codes() -> list[Any]:
    """Every diagnostic code (``Code``: code, name, summary, why, fix, severity), in order."""
    from .spec.codes import all_codes

    return all_codes()


def render_diagnostics(diagnostics: Iterable[Diagnostic], format: str = "text") -> str:  # noqa: A002
    """Diagnostics as `text` (FILE:LINE:COL: error: MESSAGE), `json` or `github` (workflow commands)."""
    from .spec.diagnostics import render_all

    return render_all(list(diagnostics), format)


# -- running ------------------------------------------------------------------------------------------
def parse_inputs(items: Iterable[str] | None = None, inputs_file: str | Path | None = None) -> dict[str, Any]:
    """`--inputs FILE.json` then `--input NAME=VALUE` items (VALUE is JSON when it parses, else a string).

    Raises:
        UsageError: an unreadable file, a file that is not a JSON object, an item without `=`.
    """
    values: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            loaded = json.loads(Path(inputs_file).read_text(encoding="utf-8"))
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


async def arun(spec_or_plan: str | Path | Plan, inputs: dict[str, Any] | None = None,
               options: RunOptions | None = None, *, example: dict[str, Any] | None = None,
               on_text: Callable[[str], None] | None = None) -> RunResult:
    """Run a spec (compiled with `options.sets` and `options.disable_passes`) or a plan once.

    Args:
        spec_or_plan: a spec file or a compiled plan.
        inputs: input values by name (defaults filled, types coerced).
        options: seed, scheduler, budget, cache, trace, runs dir (default `RunOptions()`).
        example: ground truth for the sim (`{"answer": "B"}`), like a dataset row.
        on_text: called with the answer's text as the model writes it, when the plan's `answer` output
            (or its only output) is read from one model call of one sample — a generate, a judge,
            also inside a network, and a refine's last round when it runs; never otherwise. The pieces make up that call's
            reply (its `text`; the `answer` is read from it, e.g. after `Answer:`), scrubbed of API
            keys; a cached reply, or a provider that cannot stream, arrives in one piece.

    Returns:
        `RunResult`: outputs, usage, wall time, run folder. A failed run (a provider error, a spent
        budget) returns with `error` set and is recorded in `result.json`; it does not raise.

    Raises:
        SpecInvalid: the spec is invalid.
        UsageError: unknown, missing or mistyped inputs; an unknown scheduler or cache mode.
    """
    from .runs.run import run_plan_async

    options = options or RunOptions()
    return await run_plan_async(_plan(spec_or_plan, options, batch=False), inputs or {}, options, example=example,
                                on_text=on_text)


def run(spec_or_plan: str | Path | Plan, inputs: dict[str, Any] | None = None,
        options: RunOptions | None = None, *, example: dict[str, Any] | None = None,
        on_text: Callable[[str], None] | None = None) -> RunResult:
    """`arun` from synchronous code (see `arun` for Args, Returns and Raises)."""
    return asyncio.run(arun(spec_or_plan, inputs, options, example=example, on_text=on_text))


# -- evaluating -----------------------------------------------------------------------------------------
@dataclass
class EvalSetup:
    """An eval ready to run (`eval_job`): the job, its rows and whether it continues an earlier run."""

    job: EvalJob
    rows: list[Row]
    resumed: list[dict[str, Any]]  # the records an earlier run already finished (resume), else []


def eval_job(spec: str | Path | None, data: str | Path | None, options: RunOptions | None = None, *,
             metrics: list[str] | None = None, map: list[str] | str | None = None,  # noqa: A002
             limit: int | None = None, sample: int | None = None, seed: int | None = None,
             sets: list[str] | None = None, resume: str | None = None, executor: str = "local",
             ray: dict[str, Any] | None = None) -> EvalSetup:
    """Prepare an eval: compile the spec (for a batch), read the rows, write or check the study.

    Args:
        spec, data: the spec and the dataset (JSONL, a JSON list, or CSV); optional with `resume`.
        options: run options (`row_concurrency`, budget, cache, ...).
        metrics: metric names (`exact` default, `mc`, `numeric[:TOL]`, `contains`, `module:function`).
        map: column renames `FIELD=COLUMN[,...]`.
        limit, sample: only the first N rows; then a seeded sample of N of them.
        seed: the run seed (default `options.seed`; with `resume`, the recorded one).
        sets: `--set PATH=VALUE` items (recorded in the study as given).
        resume: the id of an interrupted eval to finish: every argument not given is the recorded one.
        executor: `local` or `ray`; `ray` takes `address`, `workers`, `worker_cpus`.

    Raises:
        UsageError: a missing spec or data, an unknown executor, a resume of another study.
        SpecInvalid: the spec is invalid.
    """
    from .eval.dataset import load_rows as read_rows
    from .eval.dataset import parse_map
    from .eval.metrics import parse_metrics
    from .eval.ray_executor import RayOptions
    from .eval.runner import EvalJob
    from .runs.factory import budget_limits, open_cache
    from .runs.rundir import check_same_study, file_sha256

    options = options or RunOptions()
    recorded: dict[str, Any] | None = None
    previous: list[dict[str, Any]] = []
    if resume is not None:
        found = RunDir.find(resume, options.runs_dir or RUNS_DIR)
        recorded = found.read_study()
        spec = spec or Path(recorded["spec"])
        data = data or Path(recorded["data"])
        sets = sets if sets is not None else recorded.get("sets") or None
        map = map if map is not None else ([",".join(f"{k}={v}" for k, v in recorded["map"].items())]  # noqa: A001
                                           if recorded.get("map") else None)
        metrics = metrics if metrics is not None else recorded.get("metrics")
        seed = seed if seed is not None else recorded.get("seed", 0)
        limit = limit if limit is not None else recorded.get("limit")
        sample = sample if sample is not None else recorded.get("sample")
        previous = found.load_records()
    if spec is None or data is None:
        raise UsageError("ember eval needs SPEC and --data (or --resume RUN_ID)")
    if executor not in ("local", "ray"):
        raise UsageError(f"--executor must be local or ray, got '{executor}'")
    if executor == "local" and ray:
        raise UsageError("--address, --workers and --worker-cpus need --executor ray")
    seed = options.seed if seed is None else seed
    options = options.replace(seed=seed, sets={**options.sets, **parse_sets(sets)})
    plan = _plan(spec, options, batch=True)
    parsed = parse_metrics(metrics)
    mapping = parse_map(map)
    rows = read_rows(data, limit, mapping=mapping, sample=sample, seed=seed)
    study = {"kind": "eval", "spec": str(spec), "plan_hash": plan.hash, "data": str(data),
             "data_sha256": file_sha256(data), "map": mapping, "limit": limit, "sample": sample,
             "seed": seed, "sets": list(sets or []), "metrics": [m.name for m in parsed],
             "rows": len(rows), "created": datetime.now(UTC).isoformat(timespec="seconds")}
    if recorded is not None:
        check_same_study(recorded, study, resume or "")
    job = EvalJob(plan, rows, metrics=parsed, run_id=resume, study=study, resume=resume is not None,
                  budget=budget_limits(options, plan), cache=open_cache(options, plan),
                  executor=RayOptions(**(ray or {})) if executor == "ray" else "local", options=options)
    return EvalSetup(job, rows, previous)


async def run_eval(setup: EvalSetup | EvalJob, on_row: Callable[[dict[str, Any]], None] | None = None) -> EvalResult:
    """Run a prepared eval; `on_row(record)` sees each row's record as it finishes.

    Raises:
        KeyboardInterrupt, asyncio.CancelledError: the finished rows are kept (`resume` finishes it).
    """
    job = setup.job if isinstance(setup, EvalSetup) else setup
    return await job.run(on_row)


async def aevaluate(spec: str | Path, data: str | Path, options: RunOptions | None = None, *,
                    on_row: Callable[[dict[str, Any]], None] | None = None, **eval_options: Any) -> EvalResult:
    """Run every row of a dataset through the spec and score its `answer` output against each row's.

    Args:
        spec, data: the spec and the dataset.
        options: run options (seed, budget, cache, `row_concurrency`, runs dir, ...).
        on_row: called with each finished row's record.
        eval_options: `metrics`, `map`, `limit`, `sample`, `sets`, `resume`, `executor`, `ray` (see `eval_job`).

    Returns:
        `EvalResult`: `summary` (the `ember eval --json` shape), `accuracy`, usage, run folder.

    Raises:
        SpecInvalid, UsageError: see `eval_job`.
    """
    return await run_eval(eval_job(spec, data, options, **eval_options), on_row)


def evaluate(spec: str | Path, data: str | Path, options: RunOptions | None = None, **eval_options: Any) -> EvalResult:
    """`aevaluate` from synchronous code (see `aevaluate`)."""
    return asyncio.run(aevaluate(spec, data, options, **eval_options))


def load_rows(data: str | Path, *, limit: int | None = None, map: list[str] | str | None = None,  # noqa: A002
              sample: int | None = None, seed: int = 0) -> list[Row]:
    """A dataset's rows (JSONL, a JSON list, or CSV), renamed by `map`, cut by `limit` then `sample`.

    Raises:
        UsageError: an unreadable dataset or a malformed `map`.
    """
    from .eval.dataset import load_rows as read_rows
    from .eval.dataset import parse_map

    return read_rows(data, limit, mapping=parse_map(map), sample=sample, seed=seed)


# -- estimating ---------------------------------------------------------------------------------------
def estimate(spec_or_plan: str | Path | Plan, data: str | Path | list[Row] | None = None, options: RunOptions | None = None,
             *, map: list[str] | str | None = None, limit: int | None = None) -> dict[str, Any]:  # noqa: A002
    """What a spec will cost before anything runs: calls, requests, tokens, cost, depth and width.

    Args:
        spec_or_plan: a spec (compiled with `options.sets`/`disable_passes`, for a batch with `data`) or a plan.
        data: a dataset (or its rows): each row is estimated with its fields, `per_run` is then the
            mean per row.
        options: `sets` and `disable_passes` matter.
        map, limit: as for `evaluate`.

    Returns:
        The `ember plan --json` shape: `plan`, `per_run`, `depth`, `width`, `nodes`, `notes`,
        `unpriced` and, with data, `rows` and `dataset` (the whole dataset's totals).

    Raises:
        SpecInvalid, UsageError: an invalid spec, an unreadable dataset.
    """
    from .compiler.estimate import Estimate, estimate_run
    from .runs.run import example_meta
    from .xcs.analysis import analyze

    options = options or RunOptions()
    plan = _plan(spec_or_plan, options, batch=data is not None)
    rows = data if isinstance(data, list) else load_rows(data, limit=limit, map=map) if data is not None else None
    stats = analyze(plan)
    if not rows:
        one, nodes, notes = estimate_run(plan, stats=stats)
        return {"plan": plan.name, "per_run": one.to_json(), "depth": stats.depth, "width": stats.width,
                "nodes": {k: v.to_json() for k, v in nodes.items()}, "notes": notes,
                "unpriced": sorted(one.unpriced)}
    total = Estimate()
    by_node: dict[str, Estimate] = {}
    notes = []
    for row in rows:
        fields = row.data or {}
        values = {k: v for k, v in fields.items() if k in plan.inputs}
        one, nodes, row_notes = estimate_run(plan, values, example_meta(0, row.id, values, fields), stats)
        total.add(one)
        for k, v in nodes.items():
            by_node.setdefault(k, Estimate()).add(v)
        notes += [n for n in row_notes if n not in notes]
    n = len(rows)
    per_run = {k: (round(v / n, 4) if isinstance(v, int | float) else v) for k, v in total.to_json().items()}
    return {"plan": plan.name, "rows": n, "per_run": per_run, "dataset": total.to_json(), "depth": stats.depth,
            "width": stats.width, "nodes": {k: v.to_json() for k, v in by_node.items()}, "notes": notes,
            "unpriced": sorted(total.unpriced)}


def estimated_costs(paths: Iterable[str | Path]) -> list[tuple[Path, float | None]]:
    """(spec, estimated cost per run in USD, None when unknown) for every spec `validate` finds in `paths`.

    Raises:
        SpecInvalid: a spec is invalid (validate first).
    """
    return [(file, estimate(file)["per_run"]["cost_usd"]) for path in paths for file in spec_files(path)]


# -- sweeping -----------------------------------------------------------------------------------------
def sweep_size(sets: list[str] | None) -> int:
    """How many points a `--set` grid has (`samples.n=1,3,5` and `k=1,2`: 6).

    Raises:
        UsageError: a malformed item.
    """
    from .eval.sweep import grid, parse_axes

    return len(grid(parse_axes(sets)[1]))


async def asweep(spec: str | Path, data: str | Path | list[Row], sets: list[str] | None, options: RunOptions | None = None, *,
                 metrics: list[str] | None = None, map: list[str] | str | None = None,  # noqa: A002
                 limit: int | None = None, sample: int | None = None, fit: bool = False,
                 on_point: Callable[[SweepPoint], None] | None = None,
                 on_row: Callable[[dict[str, Any]], None] | None = None) -> SweepResult:
    """One eval per point of a grid of `--set` values, all through one shared runtime.

    Args:
        spec, data: the spec and the dataset (or its rows, from `load_rows`).
        sets: `PATH=V1,V2,...` items are axes (several make a grid), `PATH=VALUE` fixed overrides.
        options: seed (the same at every point), scheduler, `row_concurrency`, runs dir, passes.
        metrics, map, limit, sample: as for `evaluate`.
        fit: check up front that the scaling-law fit can run (≥ 3 points, a vote); then `result.fit()`.
        on_point, on_row: called as each point and each row finishes.

    Returns:
        `SweepResult`: points with their summaries, `fit(k_max=, upto=)`, `to_json()`.

    Raises:
        SpecInvalid: the spec is invalid at some point; UsageError: a malformed `--set`, a fit
        that cannot run.
    """
    from .eval.metrics import parse_metrics
    from .eval.sweep import sweep_async

    options = options or RunOptions()
    rows = data if isinstance(data, list) else load_rows(data, limit=limit, map=map, sample=sample, seed=options.seed)
    return await sweep_async(spec, rows, sets, metrics=parse_metrics(metrics), on_point=on_point, on_row=on_row,
                             for_fit=fit, options=options)


def sweep(spec: str | Path, data: str | Path | list[Row], sets: list[str] | None, options: RunOptions | None = None,
          **sweep_options: Any) -> SweepResult:
    """`asweep` from synchronous code (see `asweep`)."""
    return asyncio.run(asweep(spec, data, sets, options, **sweep_options))


def require_plot() -> None:
    """Check that plotting works (the `plot` extra) before a long sweep runs.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    from .eval.plot import pyplot

    pyplot()


def plot_sweep(result: SweepResult, path: str | Path, *, title: str = "", fit: ScalingFit | None = None) -> Path:
    """Write a sweep's plot (accuracy against calls per row and against cost; `.png`, `.svg`, `.pdf`).

    Raises:
        ConfigError: matplotlib is not installed.
    """
    from .eval.plot import plot_sweep as draw

    return draw(result, path, title=title, fit=fit)


# -- reports -----------------------------------------------------------------------------------------
def report(run: str | Path, out: str | Path | None = None, *, runs_dir: str | Path = RUNS_DIR) -> Path:
    """Write a run's report: one self-contained HTML page (summary, plan graph, per-node table, timeline of
    every call, an eval's rows with filters and, with `--record io`, a drill-down per row; a sweep's
    curves and Pareto front; an optimize search's evaluations against calls and cost with the front, the
    best point and the trajectory) that opens offline.

    Args:
        run: the run's folder, or its id in `runs_dir`.
        out: the file to write (default: `report.html` in the run's folder).

    Returns:
        The path written.

    Raises:
        UsageError: `run` names no run folder, or one of its files cannot be read.
    """
    from .report import write_report

    return write_report(run, out, runs_dir=Path(runs_dir))


def report_model(run: str | Path, *, runs_dir: str | Path = RUNS_DIR) -> dict[str, Any]:
    """The data a run's report shows, as one JSON-able dict (see `ember_compiler.report.data`): `kind`,
    `summary`, `plan`, `nodes`, `timeline` (every request with its lane), `rows`, `io`, `sweep`, `optimize`.

    Raises:
        UsageError: `run` names no run folder, or one of its files cannot be read.
    """
    from .report import load, locate

    return load(locate(run, Path(runs_dir)))
# -- searching ----------------------------------------------------------------------------------------
def optimize_size(spec: str | Path, sets: list[str] | None, limits: Limits | None = None) -> int:
    """How many points the search space of `sets` (else the spec's `search:` section) has; `limits`
    caps the spec file read for its `search:` section (default: the standard limits).

    Raises:
        UsageError: a malformed `--set`, or no dimension to search.
    """
    from .eval.optimize import search_space

    return search_space(spec, sets, *([limits] if limits is not None else []))[1].size


def split_rows(rows: list[Row], fraction: float, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """(dev, test): a seeded random `fraction` of `rows` held out as test rows (`--split`).

    Raises:
        UsageError: a fraction outside (0, 1), or one that leaves no dev or no test rows.
    """
    from .eval.optimize import split_rows as split

    return split(rows, fraction, seed)


async def aoptimize(spec: str | Path, data: str | Path | list[Row], sets: list[str] | None = None,
                    options: RunOptions | None = None, *, method: str = "auto", start: list[str] | None = None,
                    max_evals: int | None = None, objective: str = "accuracy",
                    test: str | Path | list[Row] | None = None, split: float | None = None,
                    metrics: list[str] | None = None, map: list[str] | str | None = None,  # noqa: A002
                    limit: int | None = None, sample: int | None = None, resume: str | None = None,
                    run_id: str | None = None, evaluator: Evaluator | None = None,
                    on_evaluation: Callable[[Scored, Search], None] | None = None,
                    on_row: Callable[[dict[str, Any]], None] | None = None) -> OptimizeResult:
    """Search a space of `--set` values for the best configuration of a spec (`ember optimize`).

    Args:
        spec, data: the spec and the dev dataset (or its rows, from `load_rows`).
        sets: `PATH=V1,V2,...` items are the dimensions, `PATH=VALUE` fixed overrides; without a
            dimension, the spec's `search:` section is the space.
        options: seed, budget (`max_cost_usd` stops the search), cache, runs dir, passes — as for `evaluate`.
        method: `auto`, `exhaustive`, `coordinate` (LLMSelector's round-robin) or `tpe` (optuna).
        start: `PATH=VALUE` items: coordinate's starting point (default: each dimension's first value).
        max_evals: at most this many evaluations (points scored).
        objective: `accuracy`, `cost-at-accuracy` (the cheapest point within the best's 95% interval),
            or `pareto` (tpe then searches accuracy and cost together).
        test, split: held-out test rows (a dataset, or a share of `data`): the chosen point is scored there.
        metrics, map, limit, sample: as for `evaluate` (the test rows take the same `map`).
        resume: continue the interrupted search with this run id (finished points are not re-run).
        run_id: the id of a new search's run folder (default: a new one).
        evaluator: score a point without running rows: `evaluator(point)` (may be async) returns an eval
            summary, at least `{"metrics": {"accuracy": x}}` — e.g. a sim pipeline's exact accuracy.
        on_evaluation: called with each new evaluation and the search; on_row: with each row's record.

    Returns:
        `OptimizeResult`: `best`, `evaluations`, `front()`, `to_json()` (the `--json` shape),
        `write_specs(dir)`; `optimize.json` in its run folder.

    Raises:
        UsageError: a malformed space, method, objective, start or split; a resume of another search.
        SpecInvalid: the spec is invalid at a point the search tries.
        KeyboardInterrupt: the finished evaluations are kept (resume with `resume=run_id`).
    """
    from .eval.metrics import parse_metrics
    from .eval.optimize import optimize_async

    options = options or RunOptions()
    rows = data if isinstance(data, list) else load_rows(data, limit=limit, map=map, sample=sample, seed=options.seed)
    test_rows = test if isinstance(test, list) or test is None else load_rows(test, map=map)
    if split is not None:
        if test_rows is not None:
            raise UsageError("give --test FILE or --split FRACTION, not both")
        rows, test_rows = split_rows(rows, split, options.seed)
    return await optimize_async(spec, rows, sets, method=method, start=start, max_evals=max_evals,
                                objective=objective, test_rows=test_rows, metrics=parse_metrics(metrics),
                                options=options, resume=resume, run_id=run_id, evaluator=evaluator,
                                on_evaluation=on_evaluation,
                                on_row=on_row)


def optimize(spec: str | Path, data: str | Path | list[Row], sets: list[str] | None = None,
             options: RunOptions | None = None, **optimize_options: Any) -> OptimizeResult:
    """`aoptimize` from synchronous code (see `aoptimize`)."""
    return asyncio.run(aoptimize(spec, data, sets, options, **optimize_options))


def plot_front(result: OptimizeResult, path: str | Path, *, title: str = "") -> Path:
    """Write a search's plot: every evaluation's accuracy against cost per row and against calls per
    row, the Pareto fronts drawn through them, the best point marked (`.png`, `.svg`, `.pdf`).

    Raises:
        ConfigError: matplotlib is not installed.
    """
    from .eval.plot import plot_front as draw

    return draw(result, path, title=title)


# -- datasets -----------------------------------------------------------------------------------------
def sim_data(out: str | Path, *, rows: int = 1000, alpha: float = 0.6, p_easy: float = 0.8, p_hard: float = 0.3,
             choices: list[str] | None = None, wrong_weights: list[float] | None = None,
             seed: int = 0) -> list[dict[str, Any]]:
    """Write a sim dataset mixing easy and hard queries (per-row `sim` overrides) to `out` ('-': stdout).

    Returns:
        The rows written (each with `kind`: easy or hard).

    Raises:
        UsageError: parameters out of range.
    """
    from .eval.simdata import sim_rows, write_jsonl

    data = sim_rows(rows=rows, alpha=alpha, p_easy=p_easy, p_hard=p_hard, choices=choices or ["A", "B", "C", "D"],
                    wrong_weights=wrong_weights, seed=seed)
    write_jsonl(out, data)
    return data


# -- run folders --------------------------------------------------------------------------------------
def list_runs(runs_dir: str | Path = RUNS_DIR, limit: int | None = 20) -> list[RunInfo]:
    """The most recent runs in `runs_dir`, newest first: id, command, spec, rows, accuracy, cost, status.

    Args:
        runs_dir: where run folders are (default `.ember/runs`).
        limit: at most this many (None: all).
    """
    from .runs.listing import list_runs as _list

    return _list(Path(runs_dir), limit)


def prune_runs(runs_dir: str | Path = RUNS_DIR, *, keep: int = 20, older_than: str | None = None,
               dry_run: bool = False) -> list[RunInfo]:
    """Remove old run folders: all but the `keep` most recent, and with `older_than` (`7d`, `12h`)
    only those started longer ago. A run still going is never removed; only folders named like a run
    id that hold a run's files are touched.

    Returns:
        The runs removed (with `dry_run`: that would be).

    Raises:
        UsageError: a negative `keep` or a malformed `older_than`.
    """
    from .runs.listing import prune_runs as _prune

    return _prune(Path(runs_dir), keep=keep, older_than=older_than, dry_run=dry_run)


def read_io(run: str | Path, runs_dir: str | Path = RUNS_DIR) -> list[dict[str, Any]]:
    """The `--record io` records of a run (a run id in `runs_dir`, or its folder): `io.jsonl` or
    `io.jsonl.gz`, one dict per line ([] when the run recorded none)."""
    from .runtime.iorecord import read_io as _read

    folder = Path(run) if Path(run).is_dir() else Path(runs_dir) / str(run)
    return _read(folder)


# -- serving ------------------------------------------------------------------------------------------
def serve_app(paths: Iterable[str | Path], options: ServeOptions | None = None) -> Any:
    """The ASGI app (Starlette) that serves every spec in `paths` as an OpenAI-compatible model.

    Mount it in your own ASGI server, or use `serve` to run it on uvicorn. Its lifespan shutdown
    closes the shared runtime (flushes the trace).

    Args:
        paths: spec files and folders (every spec `validate` finds); each is the model named by its `name`.
        options: host, keys, limits, trace file, and the `RunOptions` shared by every request (see
            `ServeOptions`).

    Raises:
        SpecInvalid: a spec is invalid (every diagnostic, as `validate` reports them).
        UsageError: no spec, two specs with one name, a bad keys file, a non-loopback host without keys.
        ConfigError: a model's provider key or extra is missing.
    """
    from .serve.server import build

    return build([Path(p) for p in paths], options or ServeOptions())


def serve(paths: Iterable[str | Path], options: ServeOptions | None = None) -> None:
    """Serve the specs in `paths` on uvicorn until SIGINT/SIGTERM, which stop accepting and drain the
    requests in flight within `options.grace_s` (see `serve_app` for what is raised before it starts)."""
    from .serve.server import serve as run_server

    run_server([Path(p) for p in paths], options or ServeOptions())

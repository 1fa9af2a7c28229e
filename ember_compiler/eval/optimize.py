"""`ember optimize`: search a space of `--set` values for the best configuration of a spec.

Each point is an eval of the dev rows (the same rows, the same seed: on the sim, points share their
random numbers, so their differences are measured with less noise), every one through one runtime
— one set of gates, one response cache, one spending budget. The method (`search.py`) decides which
points to score; the chosen point is then scored once on the held-out test rows (`--test`,
`--split`), so the figures a search reports about itself are checked on rows it never saw.

Files: `.ember/runs/<id>/optimize.json` (the space, every evaluation, the trajectory, the spend;
rewritten after each evaluation, so `--resume <id>` continues an interrupted search without
re-running what was finished), `point-<i>/rows.jsonl` per evaluation, `test/rows.jsonl`.

An `evaluator` (the Python API's hook) replaces the eval: a function of the point returning an eval
summary (`{"metrics": {"accuracy": …}, "ci95": …, "cost_per_row_usd": …, "calls_per_row": …}`) —
for instance the exact expected accuracy of a sim pipeline, to test a method without sampling noise.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler.sets import apply_sets
from ..errors import UsageError
from ..runs import RUNS_DIR, RunDir, RunOptions, make_runtime
from ..runs.factory import budget_limits, open_cache
from ..runs.rundir import OPTIMIZE, atomic_write_text, file_sha256
from ..runtime.budget import Spending
from ..spec.limits import DEFAULT, Limits
from .dataset import Row
from .metrics import Metric, parse_metrics
from .runner import EvalJob
from .search import OBJECTIVES, Scored, Search, Space, pareto_front, run_method
from .sweep import parse_axes

FILE = OPTIMIZE
_KEPT = ("metrics", "ci95", "rows", "scored", "errors", "calls", "calls_per_row", "requests", "input_tokens",
         "output_tokens", "cost_usd", "cost_per_row_usd", "wall_s")
Evaluator = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


def search_space(spec: str | Path, sets: list[str] | None, limits: Limits = DEFAULT) -> tuple[dict[str, Any], Space]:
    """(fixed overrides, space): `--set PATH=V1,V2` items are dimensions, `PATH=V` fixed; without a
    dimension on the command line, the spec's `search:` section is the space.

    Raises:
        UsageError: a malformed `--set`, or no dimension anywhere.
    """
    fixed, axes = parse_axes(sets)
    if not axes:
        declared = _declared_search(spec, limits)
        axes = [(p, v) for p, v in declared.items() if p not in fixed]
    if not axes:
        raise UsageError("nothing to search: give --set PATH=V1,V2,... (two values or more), or a `search:` "
                         "section in the spec")
    return fixed, Space(axes)


def _declared_search(spec: str | Path, limits: Limits) -> dict[str, list[Any]]:
    from ..spec.loader import load_document

    data = load_document(spec, max_bytes=limits.spec_bytes).data
    search = data.get("search") if isinstance(data, dict) else None
    return {str(p): _plain(v) for p, v in search.items()} if isinstance(search, dict) else {}


def _plain(value: Any) -> Any:
    """ruamel's commented containers as plain lists and dicts (JSON-able, comparable)."""
    return json.loads(json.dumps(value, default=str))


def _start_point(items: list[str] | None) -> dict[str, Any]:
    given, several = parse_axes(items)
    if several:
        raise UsageError(f"--start {several[0][0]}: one value per dimension (PATH=VALUE), got {len(several[0][1])}")
    return given


def split_rows(rows: list[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """(dev, test): a seeded random `fraction` of the rows held out for the test, in file order."""
    if not 0 < fraction < 1:
        raise UsageError(f"--split takes the share of rows held out for the test, between 0 and 1; got {fraction:g}")
    n_test = round(len(rows) * fraction)
    if n_test == 0 or n_test == len(rows):
        raise UsageError(f"--split {fraction:g} of {len(rows)} rows leaves no dev or no test rows")
    # a stream of its own: `random.Random(seed)` is also what wrote seeded datasets (sim-data's easy rows) and
    # what --sample draws from, and the same stream would hold out exactly the rows they picked
    held = set(random.Random(f"ember-optimize-split:{seed}").sample(range(len(rows)), n_test))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _entry(s: Scored) -> dict[str, Any]:
    return {"point": s.point, **{k: s.summary.get(k) for k in ("metrics", "ci95", "cost_per_row_usd", "calls_per_row")}}


@dataclass
class OptimizeResult:
    run_id: str
    run_dir: Path | None
    spec: Path
    fixed: dict[str, Any]
    method: str
    objective: str
    search: Search
    test: dict[str, Any] | None = None
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    resumed: int = 0

    @property
    def best(self) -> Scored | None:
        return self.search.best()

    @property
    def evaluations(self) -> list[Scored]:
        return self.search.order

    def fronts(self) -> tuple[list[Scored], list[Scored]]:
        """The Pareto fronts of accuracy against cost per row and against calls per row."""
        return (pareto_front(self.evaluations, lambda s: s.cost), pareto_front(self.evaluations, lambda s: s.calls))

    def front(self) -> list[tuple[Scored, list[str]]]:
        """The points on either front, cheapest first, each with the fronts it is on."""
        by_cost, by_calls = self.fronts()
        points = {s.index: s for s in (*by_cost, *by_calls)}.values()
        on: dict[int, list[str]] = {s.index: [] for s in sorted(points, key=lambda s: (s.cost, s.calls, s.index))}
        for name, front in (("cost", by_cost), ("calls", by_calls)):
            for s in front:
                on[s.index].append(name)
        return [(self.evaluations[i], names) for i, names in on.items()]

    def spent(self) -> dict[str, Any]:
        """What the search itself spent: every evaluation (also those of an earlier, resumed session)
        and the test."""
        parts = [s.summary for s in self.evaluations] + ([self.test] if self.test else [])
        cost = [p.get("cost_usd") for p in parts]
        return {"evaluations": len(self.evaluations),
                "rows": sum(p.get("rows") or 0 for p in parts),
                "calls": sum(p.get("calls") or 0 for p in parts),
                "input_tokens": sum(p.get("input_tokens") or 0 for p in parts),
                "output_tokens": sum(p.get("output_tokens") or 0 for p in parts),
                "cost_usd": None if any(c is None for c in cost) else round(sum(cost), 10),
                "cache_hits": sum(p.get("cache_hits") or 0 for p in parts),
                "wall_s": round(self.wall_s, 4)}

    def to_json(self) -> dict[str, Any]:
        """The `ember optimize --json` shape."""
        best = self.best
        out: dict[str, Any] = {"best": None}
        if best is not None:
            out["best"] = _entry(best)
            if self.test is not None:
                out["best"]["test"] = {k: self.test.get(k) for k in ("metrics", "ci95", "rows", "cost_per_row_usd",
                                                                     "calls_per_row")}
        out.update(evaluations=len(self.evaluations), trajectory=self.search.trajectory,
                   front=[{**_entry(s), "fronts": names} for s, names in self.front()], spent=self.spent())
        return out

    def record(self, status: str) -> dict[str, Any]:
        """What `optimize.json` holds."""
        return {"kind": "optimize", "status": status, "run_id": self.run_id, "spec": str(self.spec),
                "fixed": self.fixed, "space": self.search.space.to_json(), "method": self.method,
                "objective": self.objective, "seed": self.search.seed, "stopped": self.search.stopped,
                "evaluations": [{"index": s.index, "point": s.point, **s.summary} for s in self.evaluations],
                **{k: v for k, v in self.to_json().items() if k != "evaluations"}}

    def write_specs(self, out: str | Path) -> list[Path]:
        """Each front point's spec (and the best one's, `best.yaml`) as YAML in `out`: the original spec
        with the point's values applied, its comments kept."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        best = self.best
        named = [(f"front-{k + 1}.yaml", s) for k, (s, _) in enumerate(self.front())]
        if best is not None:
            named.append(("best.yaml", best))
        for name, s in named:
            path = out / name
            write_spec(self.spec, {**self.fixed, **s.point}, path,
                       note=f"ember optimize {self.run_id}: {json.dumps(s.point)}; dev accuracy {s.accuracy:.4f}, "
                            f"{s.calls:g} calls/row")
            written.append(path)
        return written


def write_spec(spec: str | Path, values: dict[str, Any], path: Path, *, note: str = "") -> None:
    """`spec` with `values` applied (as `--set` would), written as YAML to `path`. Comments are kept
    (ruamel's round trip); relative sub-spec paths are rewritten so they still resolve from `path`."""
    from io import StringIO

    from ruamel.yaml import YAML

    spec = Path(spec)
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(spec.read_text(encoding="utf-8"))
    apply_sets(data, values)
    for node in (data.get("nodes") or {}).values():
        sub = node.get("spec") if isinstance(node, dict) else None
        if isinstance(sub, str):
            node["spec"] = _moved(sub, spec.parent, path.parent)
    buf = StringIO()
    yaml.dump(data, buf)
    text = _SCHEMA_COMMENT.sub(lambda m: m.group(1) + _moved(m.group(2), spec.parent, path.parent), buf.getvalue())
    atomic_write_text(path, (f"# {note}\n" if note else "") + text)


_SCHEMA_COMMENT = re.compile(r"^(# yaml-language-server: \$schema=)(\S+)", re.MULTILINE)


def _moved(ref: str, old: Path, new: Path) -> str:
    """A relative file reference of a spec in `old`, as seen from `new` (URLs and absolute paths as they are)."""
    if "://" in ref or os.path.isabs(ref):
        return ref
    return os.path.relpath(old / ref, new)


async def optimize_async(spec: str | Path, rows: list[Row], sets: list[str] | None, *, method: str = "auto",
                         start: list[str] | None = None, max_evals: int | None = None, objective: str = "accuracy",
                         test_rows: list[Row] | None = None, metrics: list[Metric] | None = None,
                         options: RunOptions | None = None, resume: str | None = None, run_id: str | None = None,
                         evaluator: Evaluator | None = None,
                         on_evaluation: Callable[[Scored, Search], None] | None = None,
                         on_row: Callable[[dict[str, Any]], None] | None = None) -> OptimizeResult:
    """Search the space for the best point; see the module docstring.

    Raises:
        UsageError: a malformed space, `--start`, objective or method; a resume of another search.
        SpecInvalid: the spec is invalid at a point the search tries.
        KeyboardInterrupt: the finished evaluations are kept in optimize.json (`resume` continues).
    """
    from ..compiler import compile_spec

    if objective not in OBJECTIVES:
        raise UsageError(f"unknown --objective '{objective}' (one of {', '.join(OBJECTIVES)})")
    options = options or RunOptions()
    metrics = metrics or parse_metrics(None)
    spec = Path(spec)
    fixed, space = search_space(spec, sets, options.limits)
    fixed = {**options.sets, **fixed}
    begin = space.start(_start_point(start))
    run = RunDir.new(options.runs_dir, resume or run_id)
    previous = _load(run, resume)
    plans: dict[str, Any] = {}

    def plan_for(point: dict[str, Any]) -> Any:
        key = json.dumps(point, sort_keys=True, default=str)
        if key not in plans:
            if len(plans) > 64:
                plans.clear()
            plans[key] = compile_spec(spec, {**fixed, **point}, batch=True, disable=options.disable_passes,
                                      limits=options.limits)
        return plans[key]

    first_plan = plan_for(begin)  # a spec invalid from the start says so before anything runs
    limits = budget_limits(options, first_plan)
    spending = Spending(limits) if limits is not None else None
    runtime = None if evaluator is not None else make_runtime(
        options, first_plan, run_dir=run, budget=spending, cache=open_cache(options, first_plan))
    job_options = options.replace(runs_dir=run.path)

    async def score(index: int, point: dict[str, Any]) -> dict[str, Any] | None:
        if evaluator is not None:
            out = evaluator(point)
            return dict(await out if inspect.isawaitable(out) else out)
        job = EvalJob(plan_for(point), rows, metrics=metrics, run_id=f"point-{index}", runtime=runtime,
                      options=job_options)
        result = await job.run(on_row)
        if result.budget_exceeded:
            return None
        return {k: result.summary.get(k) for k in _KEPT} | (
            {"cache_hits": result.summary["cache_hits"]} if result.summary.get("cache_hits") else {})

    search = Search(space, score, objective=objective, max_evals=max_evals, seed=options.seed,
                    over_budget=lambda: spending is not None and spending.exceeded)
    result = OptimizeResult(run.run_id, run.path, spec, fixed, method, objective, search)
    study = _study(result, rows, test_rows)
    if previous is not None:
        _check_same(previous, study, resume or "")
        for e in previous["evaluations"]:
            search.remember(Scored(e["index"], e["point"], {k: v for k, v in e.items() if k not in ("index", "point")}))
        result.resumed = len(search.order)

    def save(status: str) -> None:
        if run.path is not None:
            run.mkdir()
            atomic_write_text(run.path / FILE, json.dumps({**study, **result.record(status)}, indent=2, default=str)
                              + "\n")

    def after(s: Scored) -> None:
        save("running")
        if on_evaluation is not None:
            on_evaluation(s, search)

    search.on_new = after
    t0 = time.perf_counter()
    status = "interrupted"
    try:
        result.method = await run_method(search, method, begin)
        best = search.best()
        if best is not None and test_rows and evaluator is None and not search.over_budget():
            job = EvalJob(plan_for(best.point), test_rows, metrics=metrics, run_id="test", runtime=runtime,
                          options=job_options)
            outcome = await job.run(on_row)
            if not outcome.budget_exceeded:
                result.test = {k: outcome.summary.get(k) for k in _KEPT}
        status = "ok"
    except (KeyboardInterrupt, asyncio.CancelledError):
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        result.wall_s = time.perf_counter() - t0
        if runtime is not None:
            result.warnings = list(runtime.warnings)
            await runtime.aclose()
        save(status)
    return result


def _study(result: OptimizeResult, rows: list[Row], test_rows: list[Row] | None) -> dict[str, Any]:
    """What a resumed search must share with the one it continues."""
    return {"spec_sha256": file_sha256(result.spec), "space": result.search.space.to_json(),
            "fixed": result.fixed, "requested_method": result.method, "objective": result.objective,
            "seed": result.search.seed, "max_evals": result.search.max_evals,
            "rows": [r.id for r in rows][:100000], "test_rows": len(test_rows or [])}


def _load(run: RunDir, resume: str | None) -> dict[str, Any] | None:
    if resume is None:
        return None
    path = run.file(FILE)
    if path is None or not path.is_file():
        base = run.path.parent if run.path is not None else RUNS_DIR
        raise UsageError(f"--resume {resume}: no search with that id in {base} (no {FILE})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _check_same(recorded: dict[str, Any], current: dict[str, Any], run_id: str) -> None:
    for key, what in (("spec_sha256", "the spec file changed"), ("space", "the search space differs"),
                      ("fixed", "the fixed --set values differ"), ("requested_method", "the method differs"),
                      ("objective", "the objective differs"), ("seed", "the seed differs"),
                      ("max_evals", "--max-evals differs"), ("rows", "the dev rows differ"),
                      ("test_rows", "the test rows differ")):
        if recorded.get(key) != current.get(key):
            raise UsageError(f"--resume {run_id}: {what} from the search it would continue; start a new search "
                             "instead (drop --resume)")

"""`ember sweep`: one eval per point of a grid of `--set` values, all through one shared runtime.

`--set candidates.n=1,3,5,9` is an axis (values split on top-level commas, each parsed like `--set`);
several axes make a grid. `--set` with a single value is a fixed override. Every point runs the same
rows with the same seed, so on the sim a point's samples are the first samples of a larger point's
(common random numbers: the differences between points are measured with less noise).

Each point's rows land in `.ember/runs/<sweep-id>/point-<i>/rows.jsonl`; the sweep's summary in
`.ember/runs/<sweep-id>/result.json`, its spans in `trace.jsonl`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..answers import normalize
from ..compiler.sets import parse_value
from ..errors import UsageError
from ..runs import RUNS_DIR, RunDir, RunOptions, make_runtime
from ..xcs.expr import Ref
from ..xcs.plan import Plan
from ..xcs.scheduling import get_scheduler
from .dataset import Row
from .metrics import Metric, parse_metrics
from .runner import EvalJob, EvalResult, answer_output


def split_values(raw: str) -> list[str]:
    """Split on commas outside brackets and quotes: `1,3,5` -> 3 values, `[1,2],[3]` -> 2."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_axes(items: list[str] | None) -> tuple[dict[str, Any], list[tuple[str, list[Any]]]]:
    """`--set` items -> (fixed overrides, axes as (path, values)) in the order given."""
    fixed: dict[str, Any] = {}
    axes: list[tuple[str, list[Any]]] = []
    for item in items or []:
        path, sep, raw = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise UsageError(f"--set expects PATH=VALUE[,VALUE...], got {item!r}")
        values = [parse_value(v.strip()) for v in split_values(raw)]
        if path in fixed or any(p == path for p, _ in axes):
            raise UsageError(f"--set {path} given twice")
        if len(values) == 1:
            fixed[path] = values[0]
        else:
            axes.append((path, values))
    return fixed, axes


def grid(axes: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    if not axes:
        return [{}]
    return [dict(zip([p for p, _ in axes], combo, strict=True))
            for combo in itertools.product(*(vals for _, vals in axes))]


def vote_node(plan: Plan) -> str | None:
    """The vote behind the answer output, else the plan's last vote node (for the fit's per-row counts)."""
    expr = plan.outputs.get(answer_output(plan))
    votes = [n.id for n in plan.nodes if n.kind == "fn" and n.op == "vote"]
    if isinstance(expr, Ref) and expr.node in votes:
        return expr.node
    return votes[-1] if votes else None


def vote_capture(node_id: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def capture(results: dict[str, Any]) -> dict[str, Any]:
        value = results.get(node_id)
        counts = value.get("counts") if isinstance(value, dict) else None
        return {"votes": counts} if counts else {}
    return capture


@dataclass
class SweepPoint:
    index: int
    values: dict[str, Any]
    result: EvalResult
    scores: dict[int, float] = field(default_factory=dict)     # row index -> first metric's score
    votes: dict[int, dict[str, int]] = field(default_factory=dict)  # row index -> vote counts

    @property
    def summary(self) -> dict[str, Any]:
        return self.result.summary

    def to_json(self) -> dict[str, Any]:
        s = self.summary
        return {"point": self.values, **{k: s[k] for k in (
            "metrics", "ci95", "rows", "errors", "refusals", "empty", "calls", "calls_per_row", "input_tokens",
            "output_tokens", "cost_usd", "cost_per_row_usd", "wall_s", "latency_p50_s", "latency_p95_s")},
            "run_dir": str(self.result.run_dir) if self.result.run_dir else None}


@dataclass
class SweepResult:
    run_id: str
    run_dir: Path | None
    axes: list[tuple[str, list[Any]]]
    points: list[SweepPoint]
    wall_s: float
    warnings: list[str]
    truths: dict[int, Any]

    def votes_for_fit(self, points: list[SweepPoint] | None = None) -> dict[int, tuple[int, ...]]:
        """Per row: (votes for the right answer, all votes, then the votes of each wrong answer) at the
        point that cast the most votes for that row (on the sim: the union of every point's samples)."""
        out: dict[int, tuple[int, ...]] = {}
        for p in self.points if points is None else points:
            for i, counts in p.votes.items():
                truth = normalize(self.truths.get(i), "lower")
                right = sum(v for k, v in counts.items() if normalize(k, "lower") == truth)
                wrong = tuple(v for k, v in counts.items() if normalize(k, "lower") != truth)
                total = sum(counts.values())
                if total > out.get(i, (0, 0))[1]:
                    out[i] = (right, total, *wrong)
        return out

    def fit(self, k_max: int = 1000, upto: float | None = None):
        """The scaling-law fit; `upto` fits only the points with at most that many calls per row (and
        their samples), to see how well small sweeps predict large ones."""
        from .fit import fit_scaling

        used = [p for p in self.points if upto is None or (p.summary["calls_per_row"] or 0.0) <= upto]
        points = [(p.summary["calls_per_row"] or 0.0, p.scores) for p in used]
        return fit_scaling(points, self.votes_for_fit(used), k_max=k_max)

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "axes": {p: v for p, v in self.axes},
                "points": [p.to_json() for p in self.points], "wall_s": round(self.wall_s, 4)}


async def sweep_async(spec: str | Path, rows: list[Row], set_items: list[str] | None, *, seed: int = 0,
                      metrics: list[Metric] | None = None, concurrency: int = 64,
                      runs_dir: Path | None = RUNS_DIR, scheduler: Any = None, transport: Any = None,
                      on_point: Callable[[SweepPoint], None] | None = None,
                      on_row: Callable[[dict[str, Any]], None] | None = None,
                      for_fit: bool = False, options: RunOptions | None = None) -> SweepResult:
    """One eval per point of the `--set` grid, every point through one shared runtime.

    `options` (when given) replaces `seed`, `concurrency`, `runs_dir`, `scheduler` and `transport`;
    its `sets` are fixed overrides under the grid's, its `disable_passes` apply to every point.

    Raises:
        UsageError: a malformed `--set`, or `for_fit` with fewer than 3 points or no vote.
        SpecInvalid: the spec is invalid at some point of the grid.
    """
    from ..compiler import compile_spec

    if options is None:
        options = RunOptions(seed=seed, scheduler=scheduler or "parallel", runs_dir=runs_dir,
                             row_concurrency=concurrency, transport=transport, cache_mode="off")
    fixed, axes = parse_axes(set_items)
    fixed = {**options.sets, **fixed}
    points = grid(axes)
    plans = [compile_spec(spec, {**fixed, **values}, batch=True, disable=options.disable_passes)
             for values in points]  # every point checked up front
    if for_fit:  # say so before running anything
        if len(points) < 3:
            raise UsageError("--fit needs at least 3 sweep points (e.g. --set samples.n=1,3,5,9)")
        if any(vote_node(plan) is None for plan in plans):
            raise UsageError("--fit needs a spec whose answer comes from a vote over samples (op: vote), "
                             "whose counts say how often each query's right answer was drawn")
    metrics = metrics or parse_metrics(None)
    run = RunDir.new(options.runs_dir)
    run.mkdir()
    policy = get_scheduler(options.scheduler)
    options = options.replace(scheduler=policy)
    runtime = make_runtime(options, run_dir=run, budget=None, cache=None)
    truths = {r.index: r.data.get("answer") for r in rows if r.data is not None}
    done: list[SweepPoint] = []
    first = metrics[0].name
    start = time.perf_counter()
    try:
        for i, (values, plan) in enumerate(zip(points, plans, strict=True)):
            voter = vote_node(plan)
            job = EvalJob(plan, rows, metrics=metrics, run_id=f"point-{i}", runtime=runtime,
                          capture=vote_capture(voter) if voter else None,
                          options=options.replace(runs_dir=run.path))
            point = SweepPoint(i, values, None)  # type: ignore[arg-type]

            def keep(record: dict[str, Any], point: SweepPoint = point) -> None:
                scores = record.get("scores")
                if scores is not None:
                    point.scores[record["index"]] = scores[first]
                if record.get("votes"):
                    point.votes[record["index"]] = record["votes"]
                if on_row is not None:
                    on_row(record)

            point.result = await job.run(keep)
            done.append(point)
            if on_point is not None:
                on_point(point)
    finally:
        warnings = list(getattr(runtime, "warnings", None) or [])
        await runtime.aclose()
    result = SweepResult(run.run_id, run.path, axes, done, time.perf_counter() - start, warnings, truths)
    run.write_result({**result.to_json(), "spec": str(spec), "sets": set_items or [], "seed": options.seed,
                      "command": "sweep"})
    return result

"""The search behind `ember optimize`: a space of `--set` values, the methods that walk it, the
choice of the best point and the Pareto front. Pure: a point is scored by an `ask` coroutine
(`optimize.py` runs it as an eval); nothing here touches a runtime.

Methods (docs/optimize.md):

- `exhaustive`: every point, in grid order.
- `coordinate`: LLMSelector's round-robin (Chen et al. 2025). From the start point, visit the
  dimensions in order, round-robin; at each, score every value with the others fixed and keep the
  best; stop after one full round (as many visits as dimensions) without a change, or at the budget.
  Ties keep the current value, then the cheaper, then the earlier value.
- `tpe`: optuna's TPE sampler (seeded), over the value indices of each dimension; multi-objective
  (accuracy up, cost per row down) for `--objective pareto`. Earlier evaluations seed its model.
- `auto`: exhaustive when the space fits in the evaluation budget, else coordinate, then tpe with
  what is left.

Every point is scored once (the search memoises by point), so a method revisiting a point, a resumed
search, or `auto`'s second method never pays twice.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

METHODS = ("auto", "exhaustive", "coordinate", "tpe")
OBJECTIVES = ("accuracy", "cost-at-accuracy", "pareto")
DEFAULT_MAX_EVALS = 100  # the budget of `auto` and `tpe` when --max-evals is not given
_TPE_IDLE = 50  # tpe stops after this many suggestions in a row that were all scored already


class StopSearch(Exception):
    """The evaluation budget (`--max-evals`) or the spending budget (`--max-cost`) is used up."""


@dataclass
class Space:
    """The dimensions (path, values) of a search, in the order given."""

    dims: list[tuple[str, list[Any]]]

    @property
    def size(self) -> int:
        n = 1
        for _, values in self.dims:
            n *= len(values)
        return n

    def points(self) -> list[dict[str, Any]]:
        paths = [p for p, _ in self.dims]
        return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*(v for _, v in self.dims))]

    def first(self) -> dict[str, Any]:
        return {p: values[0] for p, values in self.dims}

    def start(self, given: dict[str, Any]) -> dict[str, Any]:
        """The first value of each dimension, under `--start` values (each must be one of its values)."""
        paths = dict(self.dims)
        for path, value in given.items():
            if path not in paths:
                raise UsageError(f"--start {path}: not a dimension of the search (dimensions: {', '.join(paths)})")
            if value not in paths[path]:
                raise UsageError(f"--start {path}={json.dumps(value)}: not one of its values "
                                 f"{json.dumps(paths[path])}")
        return {**self.first(), **given}

    def to_json(self) -> dict[str, list[Any]]:
        return {p: list(v) for p, v in self.dims}


def point_key(point: dict[str, Any]) -> str:
    return json.dumps(point, sort_keys=True, default=str)


@dataclass
class Scored:
    """One evaluated point (the fields of `ember eval --json` a search reads)."""

    index: int
    point: dict[str, Any]
    summary: dict[str, Any]

    @property
    def accuracy(self) -> float:
        return self.summary["metrics"].get("accuracy") or 0.0

    @property
    def lower(self) -> float:
        ci = self.summary.get("ci95", {}).get("accuracy")
        return ci[0] if ci else self.accuracy

    @property
    def cost(self) -> float:
        """Cost per row; unknown (no price) counts as free, so the calls front is the one to read."""
        return self.summary.get("cost_per_row_usd") or 0.0

    @property
    def calls(self) -> float:
        return self.summary.get("calls_per_row") or 0.0


@dataclass
class Search:
    """A search's state: what was scored (memoised), the method's trajectory, the budget."""

    space: Space
    score: Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]  # (index, point) -> eval summary
    objective: str = "accuracy"
    max_evals: int | None = None
    seed: int = 0
    done: dict[str, Scored] = field(default_factory=dict)
    order: list[Scored] = field(default_factory=list)
    # the points this session's method asked for, in order (a resumed search replays its method, so
    # they — not `order`, which holds the earlier session's evaluations from the start — drive it)
    seen: dict[str, Scored] = field(default_factory=dict)
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # why the search ended early: "max-evals", "budget"
    over_budget: Callable[[], bool] = lambda: False
    on_new: Callable[[Scored], None] | None = None  # after each new evaluation (optimize.json, progress)

    async def ask(self, point: dict[str, Any]) -> Scored:
        """The point's score, evaluating it only the first time.

        Raises:
            StopSearch: a new evaluation is needed but the budget is used up.
        """
        key = point_key(point)
        hit = self.done.get(key)
        if hit is not None:
            self.seen.setdefault(key, hit)
            return hit
        if self.max_evals is not None and len(self.order) >= self.max_evals:
            self.stopped = "max-evals"
            raise StopSearch
        if self.over_budget():
            self.stopped = "budget"
            raise StopSearch
        index = len(self.order)
        summary = await self.score(index, point)
        if summary is None:  # cut short by the spending budget: not a score
            self.stopped = "budget"
            raise StopSearch
        scored = Scored(index, dict(point), summary)
        self.done[key] = scored
        self.order.append(scored)
        self.seen[key] = scored
        if self.on_new is not None:
            self.on_new(scored)
        return scored

    def remember(self, scored: Scored) -> None:
        """A point scored earlier (a resumed search)."""
        self.done[point_key(scored.point)] = scored
        self.order.append(scored)

    def pick(self, candidates: list[tuple[Any, Scored]], current: Any = None) -> tuple[Any, Scored]:
        """The best (value, score) by the objective; ties: the current value, the cheaper, the earlier."""
        top = max(s.accuracy for _, s in candidates)
        floor = max((s for _, s in candidates), key=lambda s: s.accuracy).lower
        ranked = []
        for position, (value, s) in enumerate(candidates):
            stay = current is not None and value == current
            if self.objective == "cost-at-accuracy":
                # the cheapest point statistically level with the most accurate one (within its 95% interval)
                level = s.accuracy >= floor
                rank = (not level, s.cost if level else top - s.accuracy, -s.accuracy, not stay, position)
            else:
                rank = (-s.accuracy, not stay, s.cost, position)
            ranked.append((rank, position))
        return candidates[min(ranked)[1]]

    def best(self) -> Scored | None:
        pool = [(s.index, s) for s in self.order]
        return self.pick(pool)[1] if pool else None


# -- methods ------------------------------------------------------------------------------------------
async def exhaustive(search: Search) -> None:
    for point in search.space.points():
        await search.ask(point)
    search.trajectory.append({"method": "exhaustive", "evaluations": len(search.seen)})


async def coordinate(search: Search, start: dict[str, Any]) -> dict[str, Any]:
    """LLMSelector's round-robin from `start`; returns the point it ends at."""
    dims = search.space.dims
    current = dict(start)
    await search.ask(current)
    unchanged, visit, seen = 0, 0, set()
    while dims and unchanged < len(dims):
        path, values = dims[visit % len(dims)]
        state = (visit % len(dims), point_key(current))
        if state in seen:  # only possible when choices are not by a fixed order (cost-at-accuracy): no cycles
            break
        seen.add(state)
        tried = [(v, await search.ask({**current, path: v})) for v in values]
        value, scored = search.pick(tried, current[path])
        changed = value != current[path]
        current[path] = value
        unchanged = 0 if changed else unchanged + 1
        search.trajectory.append({
            "method": "coordinate", "round": visit // len(dims) + 1, "dimension": path,
            "tried": [{"value": v, "accuracy": s.accuracy, "cost_per_row_usd": s.summary.get("cost_per_row_usd")}
                      for v, s in tried],
            "chosen": value, "changed": changed, "accuracy": scored.accuracy, "evaluations": len(search.seen)})
        visit += 1
    return current


async def tpe(search: Search, *, pareto: bool, trials: int | None = None) -> None:
    """optuna's TPE over the dimensions' value indices, seeded by every point already scored."""
    try:
        import optuna
    except ImportError:
        raise UsageError("--method tpe needs optuna: pip install 'ember-compiler[optimize]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dims = search.space.dims
    dists = {f"d{i}": optuna.distributions.CategoricalDistribution(list(range(len(v)))) for i, (_, v) in enumerate(dims)}
    with warnings.catch_warnings():  # multivariate TPE (dimensions interact: a pipeline's stages) is "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=search.seed, multivariate=True)
    study = optuna.create_study(directions=["maximize", "minimize"] if pareto else ["maximize"], sampler=sampler)

    def values(s: Scored) -> list[float]:
        return [s.accuracy, s.cost if s.summary.get("cost_per_row_usd") is not None else s.calls] if pareto \
            else [s.accuracy]

    for s in list(search.seen.values()):  # what earlier methods found seeds the model
        params = _indices(dims, s.point)
        if params is not None:
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, values=values(s)))
    start, idle, asked = len(search.seen), 0, 0
    while idle < _TPE_IDLE and (trials is None or asked < trials):
        trial = study.ask(dists)
        point = {path: dims[i][1][trial.params[f"d{i}"]] for i, (path, _) in enumerate(dims)}
        before = len(search.seen)
        try:
            scored = await search.ask(point)
        except StopSearch:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        if len(search.seen) > before:
            search.trajectory.append({"method": "tpe", "trial": asked + 1, "point": point,
                                      "accuracy": scored.accuracy, "evaluations": len(search.seen)})
        study.tell(trial, values(scored))
        asked += 1
        idle = 0 if len(search.seen) > before else idle + 1
        if len(search.seen) >= search.space.size:
            break
    if len(search.seen) == start:
        search.trajectory.append({"method": "tpe", "evaluations": len(search.seen), "note": "nothing new to try"})


def _indices(dims: list[tuple[str, list[Any]]], point: dict[str, Any]) -> dict[str, int] | None:
    out = {}
    for i, (path, values) in enumerate(dims):
        if path not in point or point[path] not in values:
            return None
        out[f"d{i}"] = values.index(point[path])
    return out


async def run_method(search: Search, method: str, start: dict[str, Any]) -> str:
    """Run `method` (auto resolved); returns the method(s) that ran. A used-up budget ends it quietly."""
    if method not in METHODS:
        raise UsageError(f"unknown --method '{method}' (one of {', '.join(METHODS)})")
    if method == "auto":
        limit = search.max_evals if search.max_evals is not None else DEFAULT_MAX_EVALS
        method = "exhaustive" if search.space.size <= limit else "coordinate+tpe"
        search.max_evals = limit if method != "exhaustive" else search.max_evals
    elif method == "tpe" and search.max_evals is None:
        search.max_evals = DEFAULT_MAX_EVALS
    try:
        if method == "exhaustive":
            await exhaustive(search)
        elif method == "coordinate":
            await coordinate(search, start)
        elif method == "tpe":
            await tpe(search, pareto=search.objective == "pareto")
        else:
            await coordinate(search, start)
            await tpe(search, pareto=search.objective == "pareto")
    except StopSearch:
        search.trajectory.append({"method": method, "stopped": search.stopped, "evaluations": len(search.seen)})
    return method


# -- the front ----------------------------------------------------------------------------------------
def pareto_front(scored: list[Scored], cost: Callable[[Scored], float]) -> list[Scored]:
    """The points no other point beats on both accuracy (higher) and `cost` (lower), cheapest first."""
    ordered = sorted(scored, key=lambda s: (cost(s), -s.accuracy, s.index))
    front: list[Scored] = []
    for s in ordered:
        if not front or s.accuracy > front[-1].accuracy:
            front.append(s)
    return front

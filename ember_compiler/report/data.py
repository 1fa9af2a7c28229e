"""A run directory read into one JSON-able model: everything `ember report`'s page shows, and nothing it
has to compute in the browser except filtering.

The model (`load(folder)`):

- `kind` (`run`, `eval`, `sweep` or `optimize`), `run_id`, `title`, `summary` (the headline figures), `warnings`;
- `plan` (the plan's JSON from `plan.json`, or None with `plan_note` saying why);
- `nodes` (per-node figures from the spans, `spans.node_stats`), `timeline` (`spans.calls`);
- `rows` (eval: one compact record per row), `metrics` (the metric names);
- `io` (row key -> that row's recorded node and request records, from `io.jsonl[.gz]`, written by
  `--record io`) or None with `io_note`; `io_notes` (the recorder's own notes, e.g. a size cap reached);
- `sweep` (a sweep: its axes, one entry per point, and the Pareto fronts by calls and by cost);
- `optimize` (an `ember optimize` search, from its `optimize.json`: every evaluation as a sweep's
  point, the fronts, the best point's position, the test figures and the method's trajectory as steps).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..runs.rundir import OPTIMIZE, RESULT, ROWS, RUNS_DIR, STUDY, TRACE, TRACE_GZ, RunDir
from ..runtime.iorecord import IO_FILE, IO_GZ
from ..xcs.plan import Plan
from ..xcs.verify import PlanError
from . import spans as spans_mod
from .charts import pareto

IO_FILES = (IO_GZ, IO_FILE)  # the recorder compresses a large recording (runtime/iorecord.py)
NO_IO = "No inputs and outputs were recorded for this run: run it again with --record io to see each " \
        "node's candidates, votes, reasoning and verdicts here."


def locate(target: str | Path, runs_dir: Path = RUNS_DIR) -> Path:
    """The folder of a run given as a folder or as a run id in `runs_dir`.

    Raises:
        UsageError: neither names a run folder (the most recent run ids are listed).
    """
    for path in (Path(target), Path(runs_dir) / str(target)):
        if path.is_dir() and any((path / f).exists() for f in (RESULT, TRACE, TRACE_GZ, ROWS, OPTIMIZE)):
            return path
    recent = sorted(p.name for p in Path(runs_dir).iterdir() if p.is_dir())[-5:] if Path(runs_dir).is_dir() else []
    hint = f" (recent runs: {', '.join(recent)})" if recent else ""
    raise UsageError(f"{target}: not a run folder, nor a run id in {runs_dir}{hint}")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a torn last line of an interrupted run
                    continue
                if isinstance(item, dict):
                    out.append(item)
    except (OSError, EOFError) as exc:  # a gzip cut short still yields the lines before the cut
        if not out:
            raise UsageError(f"cannot read {path}: {exc}") from None
    return out


def _kind(result: dict[str, Any] | None, folder: Path) -> str:
    if result is None and (folder / OPTIMIZE).is_file():
        return "optimize"
    if result is not None and "points" in result:
        return "sweep"
    if (folder / STUDY).is_file() or (folder / ROWS).is_file():
        return "eval"
    return "run"


def _plan(run: RunDir) -> tuple[Plan | None, str | None]:
    data = run.read_plan()
    if data is None:
        return None, "This run kept no plan.json (it ran before Ember wrote one), so the plan is not drawn."
    try:
        return Plan.from_json(data), None
    except PlanError as exc:
        return None, f"plan.json could not be read: {exc}"


def _point_spans(folder: Path, result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A sweep's or a search's point's spans: they are in the parent's trace, in the traces whose root
    span ran this point's plan on one of its rows (a search's test rows run the best point's plan too)."""
    try:
        parent = RunDir.at(folder.parent).read_result()
    except (OSError, json.JSONDecodeError):
        return []
    grouped = (parent is not None and "points" in parent) or (folder.parent / OPTIMIZE).is_file()
    if not result or not grouped:
        return []
    spans = spans_mod.read_spans(folder.parent)
    ids = {str(r.get("id")) for r in _read_jsonl(folder / ROWS)} if (folder / ROWS).is_file() else None

    def ran_here(attributes: dict[str, Any]) -> bool:
        row = attributes.get("ember.example.id")
        return attributes.get("ember.plan.hash") == result.get("plan_hash") and (
            ids is None or row is None or str(row) in ids)

    mine = {s["trace_id"] for s in spans if s.get("parent_span_id") is None and ran_here(s.get("attributes") or {})}
    return [s for s in spans if s.get("trace_id") in mine]


def _summary(kind: str, result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"status": "unfinished (no result.json)"}
    if kind == "sweep":
        points = result.get("points") or []
        return {"points": len(points), "axes": result.get("axes"), "wall_s": result.get("wall_s"),
                "calls": sum(p.get("calls") or 0 for p in points), "spec": result.get("spec"),
                "cost_usd": _total([p.get("cost_usd") for p in points])}
    keep = ("status", "error", "spec", "plan_hash", "seed", "outputs", "metrics", "ci95", "rows", "scored",
            "total_rows", "errors", "refusals", "empty", "calls", "calls_per_row", "requests", "input_tokens",
            "output_tokens", "usage", "cost_usd", "cost_per_row_usd", "cost_estimated", "cache_hits", "wall_s",
            "latency_p50_s", "latency_p95_s", "budget", "unfinished_rows", "resumed_rows")
    return {k: result[k] for k in keep if k in result}


def _total(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else round(sum(values), 10)


def _row(record: dict[str, Any], key: str) -> dict[str, Any]:
    outputs = record.get("outputs") or {}
    predicted = outputs.get("answer", next(iter(outputs.values()), None)) if isinstance(outputs, dict) else outputs
    return {"key": key, "trace": str(record.get("id")), "index": record.get("index"), "id": record.get("id"), "truth": record.get("answer"),
            "predicted": predicted, "outputs": outputs, "scores": record.get("scores"),
            "correct": record.get("correct"), "error": record.get("error"), "calls": record.get("calls", 0),
            "cost_usd": record.get("cost_usd"), "latency_s": record.get("latency_s"),
            "refusals": int(record.get("refusals") or 0), "empty": int(record.get("empty") or 0)}


def _io(folder: Path) -> tuple[dict[str, list[dict[str, Any]]] | None, list[str]]:
    """Recorded records grouped by their `row` (as a string); the recorder's notes."""
    path = next((folder / name for name in IO_FILES if (folder / name).is_file()), None)
    if path is None:
        return None, []
    groups: dict[str, list[dict[str, Any]]] = {}
    notes = []
    for rec in _read_jsonl(path):
        if rec.get("kind") == "note":
            notes.append(str(rec.get("message", "")))
        elif rec.get("kind") in ("node", "request"):
            groups.setdefault(str(rec.get("row", 0)), []).append(rec)
    return groups, notes


def _last_attempt(records: list[dict[str, Any]], trace_of: dict[str, str]) -> list[dict[str, Any]]:
    """A row's records without those of an attempt cut off and run again by `eval --resume` (the later
    lines count): each node's last record, and the requests of the row's last trace (a request's span
    names its trace; without spans every request is kept)."""
    last_trace = next((trace_of[r["span_id"]] for r in reversed(records)
                       if r.get("kind") == "request" and r.get("span_id") in trace_of), None)
    last_node = {r.get("node"): i for i, r in enumerate(records) if r.get("kind") == "node"}
    return [r for i, r in enumerate(records)
            if (r.get("kind") == "node" and last_node[r.get("node")] == i)
            or (r.get("kind") == "request" and (last_trace is None or r.get("span_id") not in trace_of
                                                or trace_of[r["span_id"]] == last_trace))]


def _point(p: dict[str, Any], folder: str | None) -> dict[str, Any]:
    """A sweep's point or a search's evaluation as the page shows it."""
    metrics, ci = p.get("metrics") or {}, p.get("ci95") or {}
    values = p.get("point") or {}
    return {"label": " ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in values.items()) or "point",
            "values": values, "accuracy": metrics.get("accuracy"), "ci95": ci.get("accuracy"),
            "calls_per_row": p.get("calls_per_row") or 0.0, "cost_per_row_usd": p.get("cost_per_row_usd"),
            "rows": p.get("rows"), "errors": p.get("errors"), "wall_s": p.get("wall_s"), "folder": folder}


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _fronts(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The Pareto fronts of accuracy by calls per row and by cost per row, as positions in `points`."""
    scored = [p for p in points if p["accuracy"] is not None]
    # a cost curve needs every point's cost, and some cost above $0 (the sim's is always $0)
    priced = bool(scored) and all(p["cost_per_row_usd"] is not None for p in scored) \
        and any(p["cost_per_row_usd"] for p in scored)
    return {
        "front_calls": [points.index(scored[i]) for i in pareto([(p["calls_per_row"], p["accuracy"]) for p in scored])],
        "front_cost": [points.index(scored[i]) for i in pareto([(p["cost_per_row_usd"], p["accuracy"]) for p in scored])]
        if priced else [],
        "priced": priced,
    }


def _sweep(result: dict[str, Any]) -> dict[str, Any]:
    points = [_point(p, Path(p["run_dir"]).name if p.get("run_dir") else None) for p in result.get("points") or []]
    return {"axes": result.get("axes") or {}, "points": points, **_fronts(points)}


def _optimize(record: dict[str, Any], folder: Path) -> dict[str, Any]:
    evaluations = record.get("evaluations") or []
    points = [_point(e, f"point-{e.get('index')}" if (folder / f"point-{e.get('index')}").is_dir() else None)
              for e in evaluations]
    best = (record.get("best") or {}).get("point")
    where = next((i for i, e in enumerate(evaluations) if best is not None and e.get("point") == best), None)
    test = (record.get("best") or {}).get("test")
    return {"axes": record.get("space") or {}, "points": points, **_fronts(points), "best": where,
            "test": None if test is None else {"accuracy": (test.get("metrics") or {}).get("accuracy"),
                                               "ci95": (test.get("ci95") or {}).get("accuracy"),
                                               "rows": test.get("rows"), "cost_per_row_usd": test.get("cost_per_row_usd"),
                                               "calls_per_row": test.get("calls_per_row")},
            "steps": _steps(record.get("trajectory") or [])}


def _steps(trajectory: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The method's trajectory as one line per step: what it did, the accuracy it reached, evaluations so far."""
    steps = []
    for t in trajectory:
        if t.get("stopped"):
            what = f"stopped: {t['stopped']}"
        elif t.get("dimension") is not None:
            tried = ", ".join(f"{_short(x.get('value'))} ({x['accuracy']:.4f})" if x.get("accuracy") is not None
                              else _short(x.get("value")) for x in t.get("tried") or [])
            what = (f"round {t.get('round')} · {t['dimension']}: tried {tried} → {_short(t.get('chosen'))}"
                    + ("" if t.get("changed") else " (kept)"))
        elif t.get("point") is not None:
            what = f"trial {t.get('trial')}: " + ", ".join(f"{k}={_short(v)}" for k, v in t["point"].items())
        else:
            what = t.get("note") or "every point of the space"
        steps.append({"method": t.get("method"), "what": what, "accuracy": t.get("accuracy"),
                      "evaluations": t.get("evaluations")})
    return steps


def _optimize_summary(record: dict[str, Any]) -> dict[str, Any]:
    space = record.get("space") or {}
    size = 1
    for values in space.values():
        size *= len(values) if isinstance(values, list) else 1
    best = record.get("best") or {}
    return {"status": record.get("status"), "spec": record.get("spec"), "method": record.get("method"),
            "requested_method": record.get("requested_method"), "objective": record.get("objective"),
            "stopped": record.get("stopped"), "evaluations": len(record.get("evaluations") or []),
            "space_size": size, "seed": record.get("seed"), "best_point": best.get("point"),
            "spent": record.get("spent") or {}}


def _read_optimize(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / OPTIMIZE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {folder / OPTIMIZE}: {exc}") from None
    if not isinstance(record, dict):
        raise UsageError(f"cannot read {folder / OPTIMIZE}: not a JSON object")
    return record


def load(folder: str | Path) -> dict[str, Any]:
    """Read the run kept in `folder` into the report's model (see the module docstring).

    Raises:
        UsageError: `folder` holds no run, or a file of it cannot be read.
    """
    folder = Path(folder)
    run = RunDir.at(folder)
    try:
        result = run.read_result()
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {folder / RESULT}: {exc}") from None
    kind = _kind(result, folder)
    record = _read_optimize(folder) if kind == "optimize" else None
    search = _optimize(record, folder) if record is not None else None
    plan, plan_note = _plan(run)
    if plan is None and kind == "sweep":  # a sweep's points ran one plan each: draw the first
        plan, plan_note = _plan(run.child("point-0"))
    if search is not None:  # a search's points ran one plan each: draw the best one's
        best = search["points"][search["best"]]["folder"] if search["best"] is not None else None
        plan, plan_note = _plan(run.child(best)) if best else (None, "The search scored no point, so no plan is drawn.")
    spans = spans_mod.read_spans(folder) or _point_spans(folder, result)
    order = [n.id for n in plan.nodes] if plan is not None else []
    io, io_notes = _io(folder)
    if io is not None:
        trace_of = {sp["span_id"]: sp["trace_id"] for sp in spans if sp.get("kind") == "CLIENT"}
        io = {row: _last_attempt(records, trace_of) for row, records in io.items()}
    model: dict[str, Any] = {
        "kind": kind, "run_id": run.run_id,
        "title": (plan.name if plan is not None else None)
        or Path(str((result or record or {}).get("spec") or run.run_id)).stem,
        "summary": _optimize_summary(record) if record is not None else _summary(kind, result),
        "warnings": list((result or {}).get("warnings") or []),
        "plan": plan.to_json() if plan is not None else None, "plan_note": plan_note,
        "nodes": spans_mod.node_stats(spans, order), "timeline": spans_mod.calls(spans),
        "rows": None, "metrics": [], "io": None, "io_note": None if io is not None else NO_IO, "io_notes": io_notes,
        "sweep": _sweep(result) if kind == "sweep" and result is not None else None, "optimize": search,
        "timeline_note": None if spans else "This run kept no spans (it ran with --no-trace), so there is no timeline.",
    }
    if kind == "eval":
        # read, never repaired: a report leaves the run folder as it found it (a later duplicate index wins)
        by_index = {r["index"]: r for r in _read_jsonl(folder / ROWS) if isinstance(r.get("index"), int)} \
            if (folder / ROWS).is_file() else {}
        records = [by_index[i] for i in sorted(by_index)]
        keys = _row_keys(records, io)
        model["rows"] = [_row(r, k) for r, k in zip(records, keys, strict=True)]
        model["metrics"] = list(dict.fromkeys(m for r in records for m in (r.get("scores") or {})))  # eval's order
        if io is not None:
            model["io"] = {k: io[k] for k in keys if k in io}
    elif io is not None:
        model["io"] = io
    return model


def _row_keys(records: list[dict[str, Any]], io: dict[str, Any] | None) -> list[str]:
    """Each record's key in `io`: its id when the recording names rows by id, else its index."""
    by_id = io is not None and any(str(r.get("id")) in io for r in records)
    return [str(r.get("id") if by_id else r.get("index")) for r in records]

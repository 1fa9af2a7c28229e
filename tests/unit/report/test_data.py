"""A run folder read into the report's model: what each kind of run shows, recorded io matched to rows."""

from __future__ import annotations

import gzip
import json

import pytest

from ember_compiler import api
from ember_compiler.report.charts import pareto
from ember_compiler.testing.io_records import write_io

pytestmark = pytest.mark.usefixtures("at_repo_root")


def options(tmp_path, **more):
    return api.RunOptions(runs_dir=tmp_path / "runs", cache_mode="off", **more)


@pytest.fixture()
def eval_dir(tmp_path):
    result = api.evaluate("specs/sim/self-consistency.yaml", "specs/data/sim-mcq.jsonl", options(tmp_path))
    return result.run_dir


def test_an_eval_shows_its_summary_rows_plan_and_nodes(eval_dir):
    m = api.report_model(eval_dir)
    result = json.loads((eval_dir / "result.json").read_text())
    assert m["kind"] == "eval" and m["summary"]["metrics"] == result["metrics"]
    assert m["summary"]["ci95"]["accuracy"] == result["ci95"]["accuracy"]
    assert len(m["rows"]) == 40 and m["metrics"] == ["exact"]
    wrong = [r for r in m["rows"] if r["scores"]["exact"] < 1]
    assert len(wrong) == round(40 * (1 - result["metrics"]["accuracy"]))
    assert all(r["predicted"] != r["truth"] for r in wrong)
    assert m["plan"]["hash"] == result["plan_hash"]  # plan.json is the plan that ran
    assert [n["id"] for n in m["nodes"]] == ["samples", "majority"]
    assert m["nodes"][0]["calls"] == result["calls"] and m["nodes"][0]["runs"] == 40
    assert len(m["timeline"]["calls"]) == result["requests"]
    assert m["io"] is None and "--record io" in m["io_note"]


@pytest.mark.parametrize("compressed", [False, True])
def test_recorded_io_is_grouped_by_row_id(tmp_path, compressed):
    result = api.evaluate("specs/sim/ensemble-judge.yaml", "specs/data/sim-mcq.jsonl", options(tmp_path, record="io"))
    folder = result.run_dir
    if compressed:  # as the recorder leaves a large recording
        (folder / "io.jsonl.gz").write_bytes(gzip.compress((folder / "io.jsonl").read_bytes()))
        (folder / "io.jsonl").unlink()
    m = api.report_model(folder)
    row = m["rows"][3]
    assert m["io_note"] is None and m["io_notes"] == [] and len(m["io"]) == 40
    mine = m["io"][row["key"]]
    assert [(r["kind"], r["node"]) for r in mine if r["kind"] == "node"] == [("node", "candidates"), ("node", "final")]
    assert all(r["row"] == row["id"] for r in mine)
    [node] = [r for r in mine if r["node"] == "candidates" and r["kind"] == "node"]
    assert len(node["outputs"]["responses"]) == 4
    requests = [r for r in mine if r["kind"] == "request"]
    assert {r["span_id"] for r in requests} == {c["span"] for c in m["timeline"]["calls"] if c["row"] == row["trace"]}


def test_the_recorders_note_is_shown(eval_dir):
    write_io(eval_dir, [{"kind": "note", "message": "io cap of 1 MB reached at row q30"}], compressed=True)
    m = api.report_model(eval_dir)
    assert m["io_notes"] == ["io cap of 1 MB reached at row q30"] and m["io"] == {}


def test_io_named_by_row_index_is_matched_too(eval_dir):
    write_io(eval_dir, [{"kind": "node", "row": 5, "node": "samples", "op": "ensemble", "inputs": {}, "outputs": {}}])
    m = api.report_model(eval_dir)
    assert m["rows"][5]["key"] == "5" and list(m["io"]) == ["5"]


def test_a_run_shows_its_outputs_and_the_whole_recording(tmp_path):
    result = api.run("specs/sim/ensemble-judge.yaml", {"question": "Which?"}, options(tmp_path, record="io"))
    m = api.report_model(result.run_dir.name, runs_dir=tmp_path / "runs")  # by id
    assert m["kind"] == "run" and m["rows"] is None and m["summary"]["outputs"] == result.outputs
    assert list(m["io"]) == ["0"] and len(m["io"]["0"]) == 4  # two nodes, two requests


def test_a_sweep_has_its_points_and_the_pareto_fronts(tmp_path):
    result = api.sweep("specs/sim/self-consistency.yaml", "specs/data/sim-mcq.jsonl", ["samples.n=1,3,5,9"],
                       options(tmp_path))
    m = api.report_model(result.run_dir)
    sweep = m["sweep"]
    assert m["kind"] == "sweep" and [p["calls_per_row"] for p in sweep["points"]] == [1, 3, 5, 9]
    assert [p["folder"] for p in sweep["points"]] == ["point-0", "point-1", "point-2", "point-3"]
    accs = [p["accuracy"] for p in sweep["points"]]
    assert accs == [p.summary["metrics"]["accuracy"] for p in result.points]
    assert sweep["front_calls"] == pareto([(p["calls_per_row"], p["accuracy"]) for p in sweep["points"]])
    assert sweep["priced"] is False and sweep["front_cost"] == []  # the sim costs nothing
    assert m["plan"] is not None  # the first point's
    point = api.report_model(result.run_dir / "point-2")  # an eval of its own; its spans are in the sweep's trace
    assert point["kind"] == "eval" and len(point["rows"]) == 40
    assert {c["node"] for c in point["timeline"]["calls"]} == {"samples"}
    assert point["nodes"][0]["calls"] == result.points[2].summary["calls"] == 200


def test_the_pareto_front_keeps_only_undominated_points():
    pts = [(1, 0.6), (3, 0.7), (5, 0.65), (9, 0.75), (9, 0.7), (2, 0.6)]
    assert pareto(pts) == [0, 1, 3]


def test_a_folder_that_is_no_run_is_a_usage_error(tmp_path):
    (tmp_path / "runs" / "20260101-000000-aaaaaa").mkdir(parents=True)
    (tmp_path / "runs" / "20260101-000000-aaaaaa" / "result.json").write_text("{}")
    with pytest.raises(api.UsageError, match="recent runs: 20260101-000000-aaaaaa"):
        api.report_model("nope", runs_dir=tmp_path / "runs")


def test_a_run_without_plan_or_spans_still_reports_and_says_why(eval_dir):
    (eval_dir / "plan.json").unlink()
    (eval_dir / "trace.jsonl").unlink()
    m = api.report_model(eval_dir)
    assert m["plan"] is None and "plan.json" in m["plan_note"]
    assert m["timeline"]["calls"] == [] and "--no-trace" in m["timeline_note"]
    assert len(m["rows"]) == 40


def test_an_eval_still_running_or_killed_reports_the_rows_it_finished(eval_dir):
    (eval_dir / "result.json").unlink()
    rows = (eval_dir / "rows.jsonl").read_text().splitlines()
    (eval_dir / "rows.jsonl").write_text("\n".join(rows[:10]) + "\n" + rows[10][:20])  # a torn last line
    m = api.report_model(eval_dir)
    assert m["kind"] == "eval" and m["summary"] == {"status": "unfinished (no result.json)"}
    assert [r["index"] for r in m["rows"]] == list(range(10))
    assert (eval_dir / "rows.jsonl").read_text().endswith(rows[10][:20])  # read, never repaired


def test_a_row_cut_off_and_run_again_shows_only_its_last_attempt(tmp_path):
    result = api.evaluate("specs/sim/ensemble-judge.yaml", "specs/data/sim-mcq.jsonl", options(tmp_path, record="io"))
    folder = result.run_dir
    lines = (folder / "io.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    first = [r for r in records if r["row"] == "q00"]
    other = iter(r["span_id"] for r in records if r["row"] == "q01" and r["kind"] == "request")
    # the attempt a resume cut off: its requests ran in an earlier trace (here: q01's spans stand in for it)
    stale = [{**r, "outputs": {"stale": True}} if r["kind"] == "node" else {**r, "span_id": next(other)}
             for r in first]
    (folder / "io.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale) + "\n".join(lines) + "\n")
    mine = api.report_model(folder)["io"]["q00"]
    assert sorted(r["node"] for r in mine if r["kind"] == "node") == ["candidates", "final"]
    assert all("stale" not in r["outputs"] for r in mine if r["kind"] == "node")
    assert [r for r in mine if r["kind"] == "request"] == [r for r in first if r["kind"] == "request"]


def test_metrics_keep_the_evals_order_so_the_first_is_the_filters_default(tmp_path):
    result = api.evaluate("specs/sim/self-consistency.yaml", "specs/data/sim-mcq.jsonl", options(tmp_path),
                          metrics=["exact", "contains"])
    m = api.report_model(result.run_dir)
    assert m["metrics"] == ["exact", "contains"]
    assert list(m["summary"]["metrics"]) == ["accuracy", "exact", "contains"]


SEARCH = ["params.n=1,3,5", "nodes.aggregate.spec=aggregate/vote.yaml,aggregate/judge.yaml"]


def test_an_optimize_search_has_its_evaluations_fronts_best_test_and_trajectory(tmp_path):
    result = api.optimize("specs/sim/optimize/ensemble-aggregate.yaml", "specs/data/sim-mcq.jsonl", SEARCH,
                          options(tmp_path), method="coordinate", split=0.5)
    m = api.report_model(result.run_dir)
    search, s = m["optimize"], m["summary"]
    assert m["kind"] == "optimize" and m["rows"] is None and m["sweep"] is None
    assert s["method"] == "coordinate" and s["objective"] == "accuracy" and s["space_size"] == 6
    assert s["evaluations"] == len(result.evaluations) == len(search["points"])
    assert s["spent"] == json.loads(json.dumps(result.spent())) and s["best_point"] == result.best.point
    points = search["points"]
    assert [p["accuracy"] for p in points] == [e.accuracy for e in result.evaluations]
    assert [p["folder"] for p in points] == [f"point-{e.index}" for e in result.evaluations]
    assert points[search["best"]]["values"] == result.best.point
    assert points[search["best"]]["ci95"] == result.best.summary["ci95"]["accuracy"]
    assert search["priced"] is True  # the worker has a price: the cost chart is drawn
    assert search["front_cost"] == pareto([(p["cost_per_row_usd"], p["accuracy"]) for p in points])
    assert search["front_calls"] == pareto([(p["calls_per_row"], p["accuracy"]) for p in points])
    assert search["test"]["accuracy"] == result.test["metrics"]["accuracy"] and search["test"]["rows"] == 20
    steps = search["steps"]  # coordinate visits each dimension until none changes
    assert len(steps) == len(result.search.trajectory) >= 2
    assert steps[0]["what"].startswith("round 1 · params.n: tried 1 (")
    assert m["plan"] is not None and m["plan"]["hash"] == json.loads(
        (result.run_dir / points[search["best"]]["folder"] / "result.json").read_text())["plan_hash"]
    assert len(m["timeline"]["calls"]) == sum(
        json.loads((p / "result.json").read_text())["requests"] for p in result.run_dir.iterdir() if p.is_dir())


def test_a_search_point_and_its_test_rows_report_as_evals_with_their_own_calls(tmp_path):
    result = api.optimize("specs/sim/optimize/ensemble-aggregate.yaml", "specs/data/sim-mcq.jsonl", SEARCH,
                          options(tmp_path), method="coordinate", split=0.5)
    best = result.run_dir / f"point-{result.best.index}"
    for folder in (best, result.run_dir / "test"):  # the same plan on other rows: each keeps only its own spans
        m = api.report_model(folder)
        summary = json.loads((folder / "result.json").read_text())
        assert m["kind"] == "eval" and len(m["rows"]) == 20
        assert len(m["timeline"]["calls"]) == summary["requests"]

"""`ember optimize`: the methods against pipelines whose exact accuracy is known (the sim's product
rule, docs/sim.md#pipelines), the --json shape, resuming, the written specs, the held-out test.

Two kinds of scoring, said per test: real sim evals (rows run through the runtime: what users run),
and the `evaluator` hook with the exact expected accuracy (no sampling noise: what a method's
trajectory, its evaluation count and its distance to the true optimum are checked against)."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler import api
from ember_compiler.errors import UsageError

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "specs"
LOCATE = SPECS / "sim" / "optimize" / "locate-solve.yaml"
LOCATE_DATA = SPECS / "data" / "locate-solve.jsonl"

# three stages, three models, each model best at one stage (per-stage accuracy)
TABLE = {"s1": {"m0": 0.95, "m1": 0.60, "m2": 0.50},
         "s2": {"m0": 0.50, "m1": 0.95, "m2": 0.60},
         "s3": {"m0": 0.60, "m1": 0.50, "m2": 0.95}}
SETS = [f"nodes.{s}.model=m0,m1,m2" for s in TABLE]


def exact(point: dict[str, str], table=TABLE) -> float:
    """A chain with wrong_input_accuracy 0 is right with the product of its stages' accuracies."""
    return math.prod(table[path.split(".")[1]][model] for path, model in point.items())


def analytic(table=TABLE):
    def evaluator(point):
        return {"metrics": {"accuracy": exact(point, table)}, "ci95": {"accuracy": None}, "calls_per_row": len(point),
                "cost_per_row_usd": None}
    return evaluator


def pipeline_spec(tmp_path: Path, table=TABLE) -> Path:
    models = "\n".join(
        f"  {m}: {{provider: sim, wrong_input_accuracy: 0, accuracy: {{{', '.join(f'{s}: {table[s][m]}' for s in table)}}}, "
        f"price: {{input_per_mtok: {i + 1}, output_per_mtok: {4 * (i + 1)}}}}}"
        for i, m in enumerate(next(iter(table.values()))))
    stages = list(table)
    nodes = "\n".join(
        f"  {s}: {{op: generate, model: m0, prompt: \"{'{{ ' + stages[i - 1] + '.answer }} ' if i else ''}"
        f"{{{{ inputs.question }}}}\"}}" for i, s in enumerate(stages))
    path = tmp_path / "chain.yaml"
    path.write_text(f"ember: 1\nname: chain\ninputs: {{question: string}}\nmodels:\n{models}\nnodes:\n{nodes}\n"
                    f"outputs: {{answer: \"${{{stages[-1]}.answer}}\"}}\n")
    return path


def chain_rows(n: int, stages=tuple(TABLE)) -> list[dict]:
    rng = random.Random(3)
    return [{"id": f"r{i}", "question": "q", "answer": rng.choice("ABCD"),
             "truths": {s: rng.choice("ABCD") for s in stages[:-1]}} for i in range(n)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_exhaustive_finds_the_exact_optimum_of_a_sim_pipeline(tmp_path) -> None:
    # real sim evals: 27 allocations x 300 rows; the exact optimum is m0, m1, m2 (0.857), the runner-up 0.677
    spec, data = pipeline_spec(tmp_path), write_rows(tmp_path / "rows.jsonl", chain_rows(300))
    result = api.optimize(spec, data, SETS, api.RunOptions(runs_dir=tmp_path / "runs", trace=False), method="exhaustive")
    points = [dict(zip([f"nodes.{s}.model" for s in TABLE], c, strict=True)) for c in itertools.product(*[TABLE["s1"]] * 3)]
    optimum = max(points, key=exact)
    assert result.best.point == optimum and len(result.evaluations) == 27
    # and each measured point is the exact value up to sampling noise (5 sigma on 300 rows)
    for s in result.evaluations:
        p = exact(s.point)
        assert abs(s.accuracy - p) <= 5 * math.sqrt(p * (1 - p) / 300) + 1e-9, (s.point, s.accuracy, p)
    # one runtime, one folder per evaluation
    assert sorted(p.name for p in result.run_dir.glob("point-*")) == sorted(f"point-{i}" for i in range(27))


def test_coordinate_follows_llmselectors_round_robin(tmp_path) -> None:
    # exact scores: the trajectory is fixed. From (m0, m0, m0): round 1 keeps s1=m0, moves s2 to m1 and s3 to
    # m2; round 2 changes nothing (its last visit is all memoised), so it stops: 11 evaluations, not 27.
    result = api.optimize(pipeline_spec(tmp_path), [], SETS, api.RunOptions(runs_dir=None), method="coordinate",
                          evaluator=analytic())
    visits = [(t["round"], t["dimension"], t["chosen"], t["changed"], t["evaluations"]) for t in result.search.trajectory]
    assert visits == [(1, "nodes.s1.model", "m0", False, 3), (1, "nodes.s2.model", "m1", True, 5),
                      (1, "nodes.s3.model", "m2", True, 7), (2, "nodes.s1.model", "m0", False, 9),
                      (2, "nodes.s2.model", "m1", False, 11), (2, "nodes.s3.model", "m2", False, 11)]
    assert len(result.evaluations) == 11 and result.best.point == {
        "nodes.s1.model": "m0", "nodes.s2.model": "m1", "nodes.s3.model": "m2"}


def test_coordinate_ties_keep_the_current_value_and_start_is_honoured(tmp_path) -> None:
    flat = {s: {"m0": 0.8, "m1": 0.8, "m2": 0.8} for s in TABLE}
    result = api.optimize(pipeline_spec(tmp_path), [], SETS, api.RunOptions(runs_dir=None), method="coordinate",
                          start=["nodes.s2.model=m2"], evaluator=analytic(flat))
    assert result.best.point == {"nodes.s1.model": "m0", "nodes.s2.model": "m2", "nodes.s3.model": "m0"}
    assert not any(t["changed"] for t in result.search.trajectory)
    assert len(result.evaluations) == 7  # 1 + 2 per dimension, then nothing new


def test_coordinate_is_greedy_where_quality_is_not_monotone() -> None:
    # LLMSelector's caveat: a joint change that pays when neither single change does is out of its reach
    scores = {("small", "small"): 0.5, ("large", "small"): 0.4, ("small", "large"): 0.45, ("large", "large"): 0.9}
    ev = lambda p: {"metrics": {"accuracy": scores[(p["nodes.locate.model"], p["nodes.solve.model"])]}}  # noqa: E731
    sets = ["nodes.locate.model=small,large", "nodes.solve.model=small,large"]
    greedy = api.optimize(LOCATE, [], sets, api.RunOptions(runs_dir=None), method="coordinate", evaluator=ev)
    full = api.optimize(LOCATE, [], sets, api.RunOptions(runs_dir=None), method="exhaustive", evaluator=ev)
    assert greedy.best.accuracy == 0.5 and full.best.accuracy == 0.9


def test_six_nodes_by_ten_models_within_one_point_of_the_optimum_using_under_one_percent(tmp_path) -> None:
    rng = random.Random(14)
    table = {f"n{i}": {f"m{j}": round(rng.uniform(0.6, 0.99), 3) for j in range(10)} for i in range(6)}
    sets = [f"nodes.{n}.model={','.join(models)}" for n, models in table.items()]
    optimum = math.prod(max(models.values()) for models in table.values())  # the sim's product rule, exactly
    result = api.optimize(pipeline_spec(tmp_path, table), [], sets, api.RunOptions(runs_dir=None),
                          method="coordinate", max_evals=10_000, evaluator=analytic(table))
    assert result.search.space.size == 10**6
    assert optimum - result.best.accuracy <= 0.01
    # 1% of the points would be 10,000; a product of stages is monotone in each, so two rounds suffice
    assert len(result.evaluations) <= 1 + 2 * 6 * 9


def test_tpe_finds_the_optimum_of_a_small_space_and_is_reproducible(tmp_path) -> None:
    runs = [api.optimize(pipeline_spec(tmp_path), [], SETS, api.RunOptions(runs_dir=None, seed=5), method="tpe", max_evals=20,
                         evaluator=analytic()) for _ in range(2)]
    assert runs[0].best.point == {"nodes.s1.model": "m0", "nodes.s2.model": "m1", "nodes.s3.model": "m2"}
    assert [s.point for s in runs[0].evaluations] == [s.point for s in runs[1].evaluations]
    assert len(runs[0].evaluations) <= 20


def test_auto_is_exhaustive_when_the_space_fits(tmp_path) -> None:
    spec = pipeline_spec(tmp_path)
    result = api.optimize(spec, [], SETS, api.RunOptions(runs_dir=None), evaluator=analytic())
    assert result.method == "exhaustive" and len(result.evaluations) == 27
    small = api.optimize(spec, [], SETS, api.RunOptions(runs_dir=None), max_evals=5, evaluator=analytic())
    assert small.method == "coordinate+tpe" and len(small.evaluations) == 5 and small.search.stopped == "max-evals"


def test_the_spec_search_section_is_the_default_space_and_the_best_allocation_wins_wide(tmp_path) -> None:
    result = api.optimize(LOCATE, LOCATE_DATA, None, api.RunOptions(runs_dir=tmp_path, trace=False), method="exhaustive")
    assert result.search.space.size == 9
    assert result.best.point == {"nodes.locate.model": "small", "nodes.solve.model": "large"}
    single = max(s.accuracy for s in result.evaluations
                 if s.point["nodes.locate.model"] == s.point["nodes.solve.model"])
    assert result.best.accuracy - single > 0.25  # exact: 0.855 against 0.54


def test_split_scores_the_best_on_held_out_rows(tmp_path) -> None:
    rows = api.load_rows(LOCATE_DATA)
    dev, test = api.split_rows(rows, 0.8, seed=0)
    assert len(test) == 320 and not {r.id for r in dev} & {r.id for r in test}
    result = api.optimize(LOCATE, LOCATE_DATA, None, api.RunOptions(runs_dir=tmp_path, trace=False), method="coordinate",
                          split=0.8)
    assert result.best.summary["rows"] == 80 and result.test["rows"] == 320
    assert abs(result.test["metrics"]["accuracy"] - 0.855) < 0.06
    with pytest.raises(UsageError, match="between 0 and 1"):
        api.split_rows(rows, 1.5)
    # the split's random stream is its own: sim-data placed its easy rows with random.Random(0) too
    mix = api.load_rows(SPECS / "data" / "sim-easy-hard.jsonl")
    for half in api.split_rows(mix, 0.5, seed=0):
        assert abs(sum(r.data["kind"] == "easy" for r in half) / len(half) - 0.6) < 0.1


def test_json_shape(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["optimize", str(LOCATE), "--data", str(LOCATE_DATA), "--method", "coordinate",
                                   "--split", "0.5", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert set(data) == {"best", "evaluations", "trajectory", "front", "spent"}
    assert set(data["best"]) == {"point", "metrics", "ci95", "cost_per_row_usd", "calls_per_row", "test"}
    assert data["best"]["point"] == {"nodes.locate.model": "small", "nodes.solve.model": "large"}
    assert data["evaluations"] == 7 and data["spent"]["evaluations"] == 7 and data["spent"]["calls"] == 7 * 400 + 400
    assert data["best"]["test"]["rows"] == 200 and len(data["best"]["ci95"]["accuracy"]) == 2
    assert all({"point", "metrics", "ci95", "cost_per_row_usd", "calls_per_row", "fronts"} <= set(f)
               for f in data["front"])
    costs = [f["cost_per_row_usd"] for f in data["front"]]
    accs = [f["metrics"]["accuracy"] for f in data["front"]]
    assert costs == sorted(costs) and accs == sorted(accs)  # a front: dearer points are better


def test_an_interrupted_search_resumes_to_the_same_result(tmp_path) -> None:
    options = api.RunOptions(runs_dir=tmp_path, trace=False)
    whole = api.optimize(LOCATE, LOCATE_DATA, None, options, method="coordinate")
    seen: list[int] = []

    def stop_after_three(scored, search):
        seen.append(scored.index)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.optimize(LOCATE, LOCATE_DATA, None, options, method="coordinate", run_id="cut",
                     on_evaluation=stop_after_three)
    recorded = json.loads((tmp_path / "cut" / "optimize.json").read_text())
    assert recorded["status"] == "interrupted" and len(recorded["evaluations"]) == 3
    again: list[int] = []
    resumed = api.optimize(LOCATE, LOCATE_DATA, None, options, method="coordinate", resume="cut",
                           on_evaluation=lambda s, _: again.append(s.index))
    assert again == list(range(3, len(whole.evaluations)))  # the finished points were not re-run
    assert resumed.to_json()["best"] == whole.to_json()["best"]
    assert resumed.search.trajectory == whole.search.trajectory
    assert [s.summary["metrics"] for s in resumed.evaluations] == [s.summary["metrics"] for s in whole.evaluations]
    with pytest.raises(UsageError, match="method differs"):
        api.optimize(LOCATE, LOCATE_DATA, None, options, method="exhaustive", resume="cut")


def test_written_specs_validate_and_run_and_keep_comments(tmp_path) -> None:
    result = api.optimize(LOCATE, LOCATE_DATA, None, api.RunOptions(runs_dir=tmp_path, trace=False), method="exhaustive")
    written = result.write_specs(tmp_path / "out")
    assert [p.name for p in written] == [f"front-{k + 1}.yaml" for k in range(len(result.front()))] + ["best.yaml"]
    assert not [d for d in api.validate(written) if d.severity == "error"]
    best = (tmp_path / "out" / "best.yaml").read_text()
    assert "# cheap, quick at finding things" in best  # the original's comments
    schema = best.split("$schema=")[1].split()[0]
    assert (tmp_path / "out" / schema).resolve() == (ROOT / "schemas" / "ember-spec.schema.json").resolve()
    rerun = api.evaluate(tmp_path / "out" / "best.yaml", LOCATE_DATA, api.RunOptions(runs_dir=None))
    assert rerun.summary["metrics"] == result.best.summary["metrics"]  # same rows, same seed: the same draws


def test_max_cost_stops_the_search(tmp_path) -> None:
    options = api.RunOptions(runs_dir=tmp_path, trace=False, budget=api.Budget(max_cost_usd=0.05))
    result = api.optimize(LOCATE, LOCATE_DATA, None, options, method="exhaustive")
    assert result.search.stopped == "budget" and 0 < len(result.evaluations) < 9
    assert result.spent()["cost_usd"] <= 0.05


def test_bad_input_is_a_usage_error(tmp_path) -> None:
    spec = pipeline_spec(tmp_path)
    with pytest.raises(UsageError, match="nothing to search"):
        api.optimize(spec, [], ["nodes.s1.model=m1"], api.RunOptions(runs_dir=None), evaluator=analytic())
    with pytest.raises(UsageError, match="not one of its values"):
        api.optimize(spec, [], SETS, api.RunOptions(runs_dir=None), start=["nodes.s1.model=m9"],
                     evaluator=analytic())
    with pytest.raises(UsageError, match="one value per dimension"):
        api.optimize(spec, [], SETS, api.RunOptions(runs_dir=None), start=["nodes.s1.model=m1,m2"],
                     evaluator=analytic())
    with pytest.raises(UsageError, match="unknown --method"):
        api.optimize(spec, [], SETS, api.RunOptions(runs_dir=None), method="anneal", evaluator=analytic())


def test_a_search_interrupted_in_its_tpe_phase_resumes_to_the_same_points(tmp_path) -> None:
    # auto on 27 points with 15 evaluations: coordinate takes 11, tpe the other 4; cut after 13. The resumed
    # search replays its method over the recorded points, so tpe's sampler sees the same history.
    spec, options = pipeline_spec(tmp_path), api.RunOptions(runs_dir=tmp_path / "runs", seed=3)
    whole = api.optimize(spec, [], SETS, options, max_evals=15, evaluator=analytic())
    assert whole.method == "coordinate+tpe" and len(whole.evaluations) == 15

    def cut(scored, search):
        if len(search.order) == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.optimize(spec, [], SETS, options, max_evals=15, evaluator=analytic(), run_id="cut", on_evaluation=cut)
    resumed = api.optimize(spec, [], SETS, options, max_evals=15, evaluator=analytic(), resume="cut")
    assert [s.point for s in resumed.evaluations] == [s.point for s in whole.evaluations]
    assert resumed.search.trajectory == whole.search.trajectory and resumed.resumed == 13


def test_cli_writes_the_plot_and_the_specs_and_names_the_run(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["optimize", str(LOCATE), "--data", str(LOCATE_DATA), "--set",
                                   "nodes.locate.model=small,large", "--set", "nodes.solve.model=large",
                                   "--plot", "front.png", "--out", "specs", "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "specs" / "best.yaml").is_file()
    assert "best: nodes.locate.model=small" in out.output and "2 evaluations of 2 points (exhaustive)" in out.output
    [run] = (tmp_path / ".ember" / "runs").iterdir()
    assert json.loads((run / "optimize.json").read_text())["status"] == "ok"

"""The public API (`ember_compiler.api`), `RunOptions`, `RunDir`, `Usage` arithmetic and the deprecated names."""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

import ember_compiler
from ember_compiler import api
from ember_compiler.providers.base import Completion
from ember_compiler.runs import RunDir, RunOptions, make_runtime, new_run_id
from ember_compiler.runtime.budget import Budget, limits_from
from ember_compiler.runtime.usage import Usage
from ember_compiler.xcs.plan import Plan

ROOT = Path(__file__).resolve().parents[3]
SIM = ROOT / "specs" / "sim"
DATA = ROOT / "specs" / "data" / "sim-mcq.jsonl"


def rows_file(tmp_path: Path, n: int = 6) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "question": f"q{i}", "answer": "ABCD"[i % 4]}) + "\n"
                            for i in range(n)))
    return path


# -- the top-level names ----------------------------------------------------------------------------
def test_top_level_exports_the_api_and_stays_light():
    assert {"validate", "compile", "run", "arun", "evaluate", "aevaluate", "estimate", "sweep", "RunOptions",
            "Budget"} <= set(ember_compiler.__all__)
    assert ember_compiler.run is api.run and ember_compiler.RunOptions is RunOptions
    assert ember_compiler.Budget is Budget and ember_compiler.jit is not None  # the SDK names still load
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sys, ember_compiler; "
                          "print(any(m.startswith(('ember_compiler.runtime', 'ember_compiler.xcs', 'pydantic')) "
                          "for m in sys.modules))"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_imports_only_the_public_api():
    for path in (ROOT / "cli").glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ember_compiler", "from ember_compiler")):
                assert stripped == "from ember_compiler import api", f"{path.name}: {stripped}"


# -- validate / compile ---------------------------------------------------------------------------
def test_validate_returns_diagnostics(tmp_path):
    assert [d for d in api.validate([SIM]) if d.severity == "error"] == []
    bad = tmp_path / "bad.yaml"
    bad.write_text("ember: 1\nname: bad\nmodels: {}\nnodes: {a: {op: generate, model: nosuch, prompt: hi}}\n"
                   "outputs: {x: ${a.text}}\n")
    diags = api.validate([bad])
    assert diags and diags[0].severity == "error" and diags[0].file.endswith("bad.yaml")
    assert "bad.yaml:" in api.render_diagnostics(diags)
    assert json.loads(api.render_diagnostics(diags, "json"))


def test_spec_files_finds_only_marked_specs(tmp_path):
    (tmp_path / "a.yaml").write_text((SIM / "single.yaml").read_text())
    (tmp_path / "other.yaml").write_text("key: value\n")
    assert api.spec_files(tmp_path) == [tmp_path / "a.yaml"]
    assert api.spec_files(tmp_path / "other.yaml") == [tmp_path / "other.yaml"]  # named explicitly: kept


def test_compile_with_sets_and_pass_names_in_either_spelling():
    plan = api.compile(SIM / "self-consistency.yaml", {"params.n": 9}, batch=True)
    assert isinstance(plan, Plan) and any(p.startswith("vote-cutoff:") for p in plan.passes)
    for name in ("vote-cutoff", "vote_cutoff"):
        off = api.compile(SIM / "self-consistency.yaml", batch=True, disable=[name])
        assert not any(p.startswith("vote-cutoff") for p in off.passes)
    with pytest.raises(api.UsageError, match="unknown pass 'nosuch'"):
        api.compile(SIM / "single.yaml", disable=["nosuch"])
    with pytest.raises(api.UsageError, match="unknown model 'nosuch'"):
        api.compile(SIM / "single.yaml", {"models.nosuch.provider": "sim"})
    with pytest.raises(api.SpecInvalid):
        api.compile(SIM / "single.yaml", {"models.worker.provider": "nosuch"})


def test_plan_text_formats():
    plan = api.compile(SIM / "single.yaml")
    assert json.loads(api.plan_text(plan, "json"))["name"] == plan.name
    assert api.plan_text(plan, "mermaid").startswith(("flowchart", "graph"))
    assert "digraph" in api.plan_text(plan, "dot")
    assert api.plan_text(plan, "text").strip()
    with pytest.raises(api.UsageError):
        api.plan_text(plan, "svg")
    assert json.loads(api.schema_text())["title"]


def test_parse_inputs_and_sets(tmp_path):
    f = tmp_path / "in.json"
    f.write_text('{"question": "q", "k": 1}')
    assert api.parse_inputs(["k=2", "s=hello", "l=[1,2]"], f) == {"question": "q", "k": 2, "s": "hello", "l": [1, 2]}
    with pytest.raises(api.UsageError):
        api.parse_inputs(["novalue"])
    assert api.parse_sets(["params.n=9", "models.w.accuracy=0.5"]) == {"params.n": 9, "models.w.accuracy": 0.5}


# -- run ------------------------------------------------------------------------------------------
def test_run_writes_result_and_trace(tmp_path):
    options = RunOptions(seed=3, runs_dir=tmp_path / "runs", sets={"params.n": 3})
    result = api.run(SIM / "self-consistency.yaml", {"question": "q"}, options, example={"answer": "B"})
    assert result.error is None and result.outputs["answer"] in "ABCD" and result.usage.calls == 3
    recorded = json.loads((result.run_dir / "result.json").read_text())
    assert recorded["status"] == "ok" and recorded["seed"] == 3 and recorded["run_id"] == result.run_id
    assert (result.run_dir / "trace.jsonl").stat().st_size > 0
    again = api.run(SIM / "self-consistency.yaml", {"question": "q"}, options, example={"answer": "B"})
    assert again.outputs == result.outputs  # seeded: the same samples


def test_arun_takes_a_plan_and_no_files(tmp_path):
    plan = api.compile(SIM / "single.yaml")
    result = asyncio.run(api.arun(plan, {"question": "q"}, RunOptions(runs_dir=None)))
    assert result.run_dir is None and result.error is None and result.usage.calls == 1
    with pytest.raises(api.UsageError, match="unknown input"):
        api.run(plan, {"nosuch": 1}, RunOptions(runs_dir=None))


def test_run_without_trace_writes_only_the_result_and_the_plan(tmp_path):
    result = api.run(SIM / "single.yaml", {"question": "q"}, RunOptions(runs_dir=tmp_path, trace=False))
    assert sorted(p.name for p in result.run_dir.iterdir()) == ["plan.json", "result.json"]
    assert json.loads((result.run_dir / "plan.json").read_text())["hash"] == api.compile(SIM / "single.yaml").hash


def test_run_budget_max_total_tokens(tmp_path):
    budget = Budget(max_total_tokens=1)
    result = api.run(SIM / "single.yaml", {"question": "q"}, RunOptions(runs_dir=tmp_path, budget=budget))
    assert result.budget_exceeded and "max total tokens 1" in result.error
    assert result.budget["max_total_tokens"] == 1


# -- evaluate / estimate / sweep ------------------------------------------------------------------
def test_evaluate_scores_rows_and_writes_the_run(tmp_path):
    data = rows_file(tmp_path)
    result = api.evaluate(SIM / "single.yaml", data, RunOptions(runs_dir=tmp_path / "runs", row_concurrency=2),
                          metrics=["exact"], limit=5)
    assert result.rows == 5 and result.summary["scored"] == 5 and result.accuracy is not None
    run = RunDir.at(result.run_dir)
    assert len(run.load_records()) == 5 and run.read_study()["limit"] == 5
    assert run.read_result()["status"] == "ok"


def test_eval_job_resume_reuses_the_recorded_study(tmp_path):
    data = rows_file(tmp_path)
    options = RunOptions(runs_dir=tmp_path / "runs")
    first = api.evaluate(SIM / "single.yaml", data, options, seed=4)
    setup = api.eval_job(None, None, options, resume=first.run_id)
    assert setup.job.seed == 4 and len(setup.resumed) == len(setup.rows) == 6
    again = asyncio.run(api.run_eval(setup))
    assert again.resumed_rows == 6 and again.summary["metrics"] == first.summary["metrics"]
    with pytest.raises(api.UsageError, match="not the same study"):
        api.eval_job(None, None, options, resume=first.run_id, seed=5)
    with pytest.raises(api.UsageError, match="no eval run"):
        api.eval_job(None, None, options, resume="nosuch")


def test_aevaluate_with_a_budget_stops(tmp_path):
    data = rows_file(tmp_path, 20)
    options = RunOptions(runs_dir=tmp_path / "runs", budget=Budget(max_calls=3), row_concurrency=1)
    result = asyncio.run(api.aevaluate(SIM / "single.yaml", data, options))
    assert result.budget_exceeded and result.summary["calls"] <= 3


def test_estimate_with_and_without_data(tmp_path):
    one = api.estimate(SIM / "self-consistency.yaml", options=RunOptions(sets={"params.n": 7}))
    assert one["per_run"]["calls"] == 7 and one["width"] == 7
    per_row = api.estimate(SIM / "single.yaml", rows_file(tmp_path, 4))
    assert per_row["rows"] == 4 and per_row["dataset"]["calls"] == 4
    assert api.estimated_costs([SIM / "single.yaml"]) == [(SIM / "single.yaml", 0.0)]


def test_sweep_runs_every_point(tmp_path):
    data = rows_file(tmp_path, 8)
    assert api.sweep_size(["params.n=1,3", "models.worker.accuracy=0.5,0.9"]) == 4
    result = api.sweep(SIM / "self-consistency.yaml", data, ["params.n=1,3"], RunOptions(runs_dir=tmp_path / "runs"))
    assert [p.values for p in result.points] == [{"params.n": 1}, {"params.n": 3}]
    assert [p.summary["calls_per_row"] for p in result.points] == [1, 3]
    assert json.loads((result.run_dir / "result.json").read_text())["sets"] == ["params.n=1,3"]
    assert (result.run_dir / "point-1" / "rows.jsonl").is_file()


def test_sim_data(tmp_path):
    rows = api.sim_data(tmp_path / "d.jsonl", rows=10, seed=1)
    assert len(rows) == 10 and len((tmp_path / "d.jsonl").read_text().splitlines()) == 10


# -- RunOptions -------------------------------------------------------------------------------------
def test_run_options_defaults_are_the_cli_defaults():
    o = RunOptions()
    assert (o.seed, o.scheduler, o.budget, o.cache, o.cache_mode, o.trace, o.row_concurrency) == \
        (0, "parallel", None, None, "read-write", True, 64)
    assert o.runs_dir == Path(".ember/runs") and o.disable_passes == () and o.sets == {}


def test_run_options_check_their_values():
    assert RunOptions(disable_passes=("vote_cutoff", "prune")).disable_passes == ("vote-cutoff", "prune")
    assert RunOptions(disable_passes=("vote_cutoff",)).disable_passes == ("vote-cutoff",)
    with pytest.raises(api.UsageError, match="unknown pass"):
        RunOptions(disable_passes=("fold",))
    with pytest.raises(api.UsageError, match="--cache-mode"):
        RunOptions(cache_mode="sometimes")
    with pytest.raises(api.UsageError, match="--no-cache"):
        RunOptions(cache="x.sqlite3", cache_mode="off")
    with pytest.raises(api.UsageError):
        RunOptions(row_concurrency=0)
    assert RunOptions().replace(seed=2).seed == 2


def test_make_runtime_follows_the_options(tmp_path):
    plan = api.compile(SIM / "single.yaml")
    rt = make_runtime(RunOptions(scheduler="sequential", budget=Budget(max_calls=5)), plan)
    assert rt.bound is not None and rt.bound.limit == 1 and rt.budget.limits == Budget(max_calls=5)
    assert rt.cache is None  # only sim calls and the default cache: not worth a lookup
    cached = make_runtime(RunOptions(cache=tmp_path / "c.sqlite3"), plan)
    assert cached.cache is not None and cached.cache.include_sim
    assert make_runtime(RunOptions(cache=tmp_path / "c.sqlite3", cache_mode="read-only"), plan).cache.mode == "read-only"
    assert make_runtime().budget is None and make_runtime().bound is None


def test_budget_limits_merge_and_the_old_yaml_name():
    assert limits_from({"max_tokens": 10}) == Budget(max_total_tokens=10)
    assert limits_from({"max_cost_usd": 1.0}, Budget(max_calls=2)) == Budget(max_cost_usd=1.0, max_calls=2)
    assert limits_from(None) is None
    with pytest.raises(api.UsageError, match="--max-total-tokens must be"):
        limits_from(None, Budget(max_total_tokens=-1))


def test_yaml_budget_max_tokens_is_a_deprecated_alias(tmp_path):
    text = (SIM / "single.yaml").read_text() + "budget: {max_tokens: 5}\n"
    (tmp_path / "s.yaml").write_text(text)
    assert api.compile(tmp_path / "s.yaml").budget == {"max_total_tokens": 5}
    (tmp_path / "t.yaml").write_text((SIM / "single.yaml").read_text() + "budget: {max_total_tokens: 6}\n")
    assert api.compile(tmp_path / "t.yaml").budget == {"max_total_tokens": 6}


# -- RunDir ---------------------------------------------------------------------------------------
def test_run_dir_files(tmp_path):
    run = RunDir.new(tmp_path)
    assert run.path == tmp_path / run.run_id and run.trace_path == run.path / "trace.jsonl"
    run.write_result({"status": "ok", "n": 1})
    assert (run.path / "result.json").read_text() == '{\n  "status": "ok",\n  "n": 1\n}\n'
    assert run.read_result() == {"status": "ok", "n": 1}
    with pytest.raises(api.UsageError, match="no eval run"):
        RunDir.find(run.run_id, tmp_path)  # no study.json: not an eval
    run.write_study({"kind": "eval", "seed": 1})
    assert RunDir.find(run.run_id, tmp_path).read_study() == {"kind": "eval", "seed": 1}
    with run.open_rows(append=False) as f:
        f.write('{"index": 1, "a": 1}\n{"index": 0}\n{"index": 1, "a": 2}\n{"index": 2, "tor')
    assert run.load_records() == [{"index": 0}, {"index": 1, "a": 2}]  # sorted, the later duplicate wins
    assert (run.path / "rows.jsonl").read_text().count("\n") == 2  # the torn line is gone
    child = run.child("point-0")
    assert child.run_id == "point-0" and child.path == run.path / "point-0"


def test_run_dir_without_a_folder_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = RunDir.new(None)
    run.write_result({"x": 1})
    run.write_study({"kind": "eval"})
    assert run.path is None and run.trace_path is None and run.open_rows(append=True) is None
    assert run.load_records() == [] and run.read_result() is None and list(tmp_path.iterdir()) == []
    assert len(new_run_id().split("-")) == 3 and new_run_id() != new_run_id()


# -- Usage ----------------------------------------------------------------------------------------
def test_usage_adds_and_subtracts_every_field():
    a = Usage(calls=3, requests=2, input_tokens=10, output_tokens=5, cost_known=0.5, unpriced=0,
              cached_tokens=4, cache_hits=2, refusals=2, empty=1)
    b = Usage(calls=1, requests=1, input_tokens=1, output_tokens=1, cost_known=0.25, unpriced=1,
              cached_tokens=1, cache_hits=1, refusals=1, empty=1)
    total = a + b
    assert total == Usage(4, 3, 11, 6, 0.75, 1, 5, 3, 3, 2) and total - b == a
    assert a == Usage(3, 2, 10, 5, 0.5, 0, 4, 2, 2, 1)
    assert total.cost_usd is None and a.cost_usd == 0.5
    c = a.copy()
    c += b
    assert c == total and a.copy() is not a
    u = Usage()
    u.record(Completion(["x", "y"], input_tokens=7, output_tokens=3, cached_tokens=2), 0.1)
    u.record(Completion(["z"], input_tokens=1, output_tokens=1), None)
    assert u == Usage(3, 2, 8, 4, 0.1, 1, 2, 0)
    assert u.to_json() == {"calls": 3, "requests": 2, "input_tokens": 8, "output_tokens": 4, "cached_tokens": 2,
                           "cache_hits": 0, "refusals": 0, "empty": 0, "cost_usd": None}
    u.count_no_answers(Completion(["", "", "Answer: 4", ""], finish_reasons=["refusal", "SAFETY", "stop", "length"]))
    assert (u.refusals, u.empty) == (2, 1)


def test_jit_usage_keeps_cached_tokens_and_cache_hits(tmp_path):
    """`Jitted.run`'s usage is the session's usage after minus before — every field of it."""
    from ember_compiler import Model, jit, ops
    from ember_compiler.runs import example_meta
    from ember_compiler.sdk import engine
    from ember_compiler.xcs.scheduling import get_scheduler

    net = jit(ops.Ensemble(model=Model(provider="sim", accuracy=0.6), n=3, prompt="Q: {{ question }}"))

    async def main():
        runtime = make_runtime(RunOptions(cache=tmp_path / "c.sqlite3"), net.plan)
        session = engine.Session(loop=asyncio.get_running_loop(), sink=runtime, meta=example_meta(0, "r", {}, None),
                                 scheduler=get_scheduler(None))
        session.usage.cached_tokens = 100  # some earlier call's, in the same session: not this run's
        token = engine.CURRENT.set(session)
        try:
            first = await net.arun(question="q")
            second = await net.arun(question="q")  # every sample from the response cache
            third = await net.arun(question="q")
        finally:
            engine.CURRENT.reset(token)
            await runtime.aclose()
        return first, second, third, session

    first, second, third, session = asyncio.run(main())
    assert first.usage.calls == 3 and first.usage.cache_hits == 0 and first.usage.cached_tokens == 0
    assert second.usage.calls == 0 and second.usage.cache_hits == 3
    assert third.usage.cache_hits == 3 and third.usage.cached_tokens == 0  # this run's, not the session's
    assert session.usage.cache_hits == 6 and session.usage.cached_tokens == 100


# -- deprecated names -------------------------------------------------------------------------------
def cli(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner().invoke(app, args, catch_exceptions=False)


def test_max_tokens_flag_is_a_deprecated_alias(tmp_path, monkeypatch):
    spec = str(SIM / "single.yaml")
    old = cli(["run", spec, "-i", "question=q", "--max-tokens", "1", "--json"], tmp_path, monkeypatch)
    assert old.exit_code == 3 and "--max-tokens is deprecated: use --max-total-tokens" in old.stderr
    assert json.loads(old.stdout)["budget"]["max_total_tokens"] == 1
    new = cli(["run", spec, "-i", "question=q", "--max-total-tokens", "1", "--json"], tmp_path, monkeypatch)
    assert new.exit_code == 3 and "deprecated" not in new.stderr
    both = cli(["run", spec, "-i", "question=q", "--max-total-tokens", "1", "--max-tokens", "2"], tmp_path, monkeypatch)
    assert both.exit_code == 2 and "same option" in both.stderr


def test_max_cost_is_an_alias_of_max_cost_usd(tmp_path, monkeypatch):
    spec = str(SIM / "single.yaml")
    for flag in ("--max-cost", "--max-cost-usd"):
        res = cli(["run", spec, "-i", "question=q", flag, "1", "--json"], tmp_path, monkeypatch)
        assert res.exit_code == 0 and json.loads(res.stdout)["budget"]["max_cost_usd"] == 1, res.output
        assert "deprecated" not in res.stderr


def test_concurrency_flag_is_a_deprecated_alias(tmp_path, monkeypatch):
    data = str(rows_file(tmp_path))
    spec = str(SIM / "single.yaml")
    old = cli(["eval", spec, "--data", data, "--concurrency", "2", "--no-progress", "--json"], tmp_path, monkeypatch)
    assert old.exit_code == 0 and "--concurrency is deprecated: use --row-concurrency" in old.stderr
    new = cli(["eval", spec, "--data", data, "--row-concurrency", "2", "--no-progress", "--json"], tmp_path, monkeypatch)
    assert new.exit_code == 0 and "deprecated" not in new.stderr
    assert json.loads(new.stdout)["rows"] == json.loads(old.stdout)["rows"] == 6


def test_sweep_max_calls_is_a_deprecated_fit_horizon(tmp_path, monkeypatch):
    data = str(rows_file(tmp_path, 20))
    args = ["sweep", str(SIM / "self-consistency.yaml"), "--data", data, "--set", "params.n=1,3,5", "--fit",
            "--no-progress", "--json"]
    old = cli([*args, "--max-calls", "7"], tmp_path, monkeypatch)
    assert old.exit_code == 0 and "sweep --max-calls is deprecated: use --fit-horizon" in old.stderr
    new = cli([*args, "--fit-horizon", "7"], tmp_path, monkeypatch)
    assert new.exit_code == 0 and "deprecated" not in new.stderr
    assert json.loads(new.stdout)["fit"] == json.loads(old.stdout)["fit"]
    assert json.loads(new.stdout)["fit"]["best_calls"] <= 7


@pytest.mark.parametrize("name", ["vote-cutoff", "vote_cutoff"])
def test_no_pass_takes_either_spelling(name, tmp_path, monkeypatch):
    res = cli(["eval", str(SIM / "self-consistency.yaml"), "--data", str(rows_file(tmp_path, 4)), "--no-pass", name,
               "--no-progress", "--json"], tmp_path, monkeypatch)
    assert res.exit_code == 0 and json.loads(res.stdout)["calls_per_row"] == 5  # every sample drawn


def test_vmap_max_concurrency_is_a_deprecated_alias():
    from ember_compiler import Model, ops, vmap

    op = ops.Generate(model=Model(provider="sim"), prompt="{{ question }}")
    with pytest.warns(DeprecationWarning, match="row_concurrency"):
        old = vmap(op, max_concurrency=2)
    assert old.row_concurrency == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert vmap(op, row_concurrency=3).row_concurrency == 3
    assert len(old(question=["a", "b", "c"])) == 3

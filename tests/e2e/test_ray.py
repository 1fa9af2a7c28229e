"""`ember eval --executor ray`: the same rows and metrics as a local run, one set of limits for the cluster,
no row lost or counted twice when a worker dies.

One local Ray instance serves the whole session (`num_cpus=2`, no dashboard, usage stats off); these
tests are marked `ray` (deselect with `-m "not ray"`) and skipped when Ray is not installed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.errors import UsageError
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.ray_executor import RayOptions
from ember_compiler.eval.runner import EvalJob
from ember_compiler.eval.simdata import sim_rows
from ember_compiler.runs import RunDir
from ember_compiler.runtime.budget import Budget
from ember_compiler.testing.fake_server import KEY_ENV, FakeServer, binding

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="needs the `ray` extra: pip install -e '.[ray]'")

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
SAME = ("metrics", "ci95", "rows", "scored", "errors", "calls", "requests", "input_tokens", "output_tokens")
# four workers on the session's two CPUs: each reserves half a CPU (they wait on I/O, not compute)
FOUR = RayOptions(workers=4, worker_cpus=0.5)


@pytest.fixture(scope="session", autouse=True)
def ray_cluster():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def mixture(n: int) -> list[Row]:
    data = sim_rows(rows=n, alpha=0.6, p_easy=0.8, p_hard=0.3, choices=list("ABCD"), wrong_weights=[6, 1, 1], seed=5)
    return [Row(i, d["id"], d) for i, d in enumerate(data)]


def indices(job: EvalJob) -> Counter:
    return Counter(r["index"] for r in map(json.loads, (job.run_dir / "rows.jsonl").read_text().splitlines()))


def test_ray_and_local_give_identical_metrics_on_20000_rows(tmp_path):
    plan = compile_spec(SPECS / "sim" / "self-consistency.yaml", batch=True)
    rows = mixture(20_000)
    local = asyncio.run(EvalJob(plan, rows, seed=7, runs_dir=tmp_path).run())
    job = EvalJob(plan, rows, seed=7, runs_dir=tmp_path, executor=FOUR)
    seen: list[int] = []
    distributed = asyncio.run(job.run(lambda r: seen.append(r["index"])))
    assert {k: distributed.summary[k] for k in SAME} == {k: local.summary[k] for k in SAME}
    assert distributed.summary["rows"] == 20_000 and local.accuracy == distributed.accuracy
    assert len(job.cluster.worker_pids) == 4 and os.getpid() not in job.cluster.worker_pids.values()
    assert sorted(seen) == list(range(20_000)) and set(indices(job).values()) == {1}  # streamed, each once
    result = json.loads((job.run_dir / "result.json").read_text())
    assert result["status"] == "ok" and result["metrics"] == local.summary["metrics"]


def test_killing_a_worker_mid_run_keeps_every_row_exactly_once(tmp_path):
    spec = tmp_path / "slow.yaml"  # every call takes 40 ms: the run lasts long enough to kill a worker in it
    spec.write_text((SPECS / "sim" / "self-consistency.yaml").read_text()
                    .replace("provider: sim,", "provider: sim, latency_ms: 40,"))
    plan = compile_spec(spec, batch=True)
    assert plan.models and all(b.get("latency_ms") == 40 for b in plan.models.values())
    rows = mixture(1500)
    job = EvalJob(plan, rows, seed=2, runs_dir=tmp_path, executor=FOUR)
    killed: list[int] = []

    def on_row(record) -> None:
        if not killed and job.done >= 100:
            pid = sorted(job.cluster.worker_pids.items())[1][1]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    result = asyncio.run(job.run(on_row))
    assert killed and job.cluster.deaths == 1
    assert result.summary["ray"] == {"shards": 5, "worker_deaths": 1}  # four, and one re-run of the dead one's rows
    assert result.rows == 1500 and result.errors == 0
    assert Counter(indices(job).values()) == {1: 1500}  # every row, none twice
    fast = compile_spec(SPECS / "sim" / "self-consistency.yaml", batch=True)  # same answers without the latency
    local = asyncio.run(EvalJob(fast, rows, seed=2, runs_dir=None).run())
    assert result.summary["metrics"] == local.summary["metrics"] and result.usage.calls == local.usage.calls


def test_cluster_wide_rpm_and_concurrency_at_a_fake_server(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-not-a-real-key")
    server = FakeServer(lifetime_s=120)
    try:
        server.reset(latency_ms=100, rpm=1200)  # the server accepts 20 requests in any 1 s, else 429
        spec = tmp_path / "remote.yaml"
        spec.write_text("ember: 1\nname: remote\ninputs: {question: string}\nmodels:\n"
                        # the client's rpm sits just under the server's: a limiter that spends exactly the
                        # server's 20 per second can see a 21st land in the server's window by arrival jitter
                        f"  m: {binding(server.url, {'rpm': 1100, 'concurrency': 3})}\n"
                        "nodes:\n  g: {op: generate, model: m, prompt: '{{ inputs.question }}'}\n"
                        "outputs: {answer: '${g.answer}'}\n")
        plan = compile_spec(spec, batch=True)
        rows = [Row(i, str(i), {"question": f"q{i}", "answer": "A"}) for i in range(90)]
        job = EvalJob(plan, rows, runs_dir=tmp_path, executor=FOUR)
        result = asyncio.run(job.run())
        stats = server.stats()
    finally:
        server.close()
    assert len(job.cluster.worker_pids) == 4
    assert result.rows == 90 and result.errors == 0 and result.accuracy == 1.0
    assert (stats["requests"], stats["rejected"]) == (90, 0), stats  # never over 20 in any second: no 429
    assert stats["max_in_flight"] <= 3  # the concurrency bound is the cluster's, not 3 per worker
    assert job.cluster.limits["max_active"] == {next(iter(job.cluster.limits["max_active"])): 3}
    assert result.wall_s >= (90 - 20) / 20 * 0.97  # the rate, not the workers, set the pace
    assert "sk-test-not-a-real-key" not in (job.run_dir / "rows.jsonl").read_text()


def test_budget_is_the_clusters(tmp_path):
    plan = compile_spec(SPECS / "sim" / "self-consistency.yaml", batch=False)  # 5 calls a row, no cut-off
    rows = mixture(2000)
    job = EvalJob(plan, rows, seed=1, runs_dir=tmp_path, executor=FOUR, budget=Budget(max_calls=1000))
    result = asyncio.run(job.run())
    assert result.budget_exceeded and job.budget.exceeded
    assert job.budget.spent_calls <= 1000 and result.usage.calls == job.budget.spent_calls
    assert result.rows == result.usage.calls // 5 and result.summary["unfinished_rows"] == 2000 - result.rows
    assert json.loads((job.run_dir / "result.json").read_text())["status"] == "budget_exceeded"


def test_resume_on_ray_finishes_only_the_missing_rows(tmp_path):
    plan = compile_spec(SPECS / "sim" / "self-consistency.yaml", batch=True)
    rows = mixture(3000)
    first = EvalJob(plan, rows, seed=4, runs_dir=tmp_path, study={"kind": "eval"})
    full = asyncio.run(first.run())
    path = first.run_dir / "rows.jsonl"
    kept = path.read_text().splitlines()[:1234]  # as if interrupted after 1,234 rows
    path.write_text("\n".join(kept) + "\n")
    redone: list[int] = []
    job = EvalJob(plan, rows, seed=4, runs_dir=tmp_path, run_id=first.run_id, resume=True, executor=FOUR)
    resumed = asyncio.run(job.run(lambda r: redone.append(r["index"])))
    assert len(redone) == 3000 - 1234 and resumed.resumed_rows == 1234
    assert len(RunDir.at(first.run_dir).load_records()) == 3000 and set(indices(job).values()) == {1}
    assert resumed.summary["metrics"] == full.summary["metrics"]


def test_cli_eval_on_ray(tmp_path, monkeypatch):
    from ember_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    args = ["eval", str(SPECS / "sim" / "self-consistency.yaml"), "--data", str(SPECS / "data" / "sim-mcq.jsonl"),
            "--json", "--no-progress"]
    local = CliRunner().invoke(app, args)
    on_ray = CliRunner().invoke(app, [*args, "--executor", "ray", "--workers", "2", "--worker-cpus", "0.5"])
    assert local.exit_code == 0 and on_ray.exit_code == 0, on_ray.output
    a, b = json.loads(local.stdout), json.loads(on_ray.stdout)
    assert {k: a[k] for k in SAME} == {k: b[k] for k in SAME}


def test_a_worker_bigger_than_any_node_is_refused(tmp_path):
    plan = compile_spec(SPECS / "sim" / "single.yaml", batch=True)
    job = EvalJob(plan, mixture(10), runs_dir=tmp_path, executor=RayOptions(worker_cpus=3))
    with pytest.raises(UsageError, match="more than any node"):
        asyncio.run(job.run())


def test_python_operators_run_on_the_workers(tmp_path):
    plan = compile_spec(ROOT / "examples" / "custom_operator" / "router.yaml", batch=True)
    rows = [Row(i, str(i), {"question": q, "answer": "A"})
            for i, q in enumerate(["what is 2 + 2", "capital of France", "3 times 4", "sum of 1 and 2"] * 5)]
    local = asyncio.run(EvalJob(plan, rows, runs_dir=None).run())
    job = EvalJob(plan, rows, runs_dir=tmp_path, executor=RayOptions(workers=2, worker_cpus=0.5))
    result = asyncio.run(job.run())
    assert result.errors == 0 and result.summary["metrics"] == local.summary["metrics"]
    routes = {json.loads(line)["outputs"]["route"] for line in (job.run_dir / "rows.jsonl").read_text().splitlines()}
    assert routes == {"math", "general"}  # KeywordRoute ran in the workers

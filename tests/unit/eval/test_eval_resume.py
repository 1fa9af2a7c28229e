"""Long evals: an interrupted eval, resumed, equals an uninterrupted one; Ctrl-C keeps what finished."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.errors import UsageError
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import EvalJob
from ember_compiler.eval.simdata import sim_rows
from ember_compiler.runs import RunDir, check_same_study

SPECS = Path(__file__).resolve().parents[3] / "specs"
ROOT = SPECS.parent


def mixture_rows(n: int) -> list[Row]:
    data = sim_rows(rows=n, alpha=0.6, p_easy=0.8, p_hard=0.3, choices=list("ABCD"), wrong_weights=[6, 1, 1], seed=5)
    return [Row(i, d["id"], d) for i, d in enumerate(data)]


def test_interrupted_eval_resumes_to_the_same_result(tmp_path):
    plan = compile_spec(SPECS / "sim" / "self-consistency.yaml")
    rows = mixture_rows(5000)
    full = asyncio.run(EvalJob(plan, rows, seed=3, runs_dir=tmp_path, study={"kind": "eval"}).run())

    job = EvalJob(plan, rows, seed=3, runs_dir=tmp_path, study={"kind": "eval"})

    async def interrupted() -> None:
        me = asyncio.current_task()
        seen = 0

        def on_row(record) -> None:
            nonlocal seen
            seen += 1
            if seen == 1700:
                me.cancel()  # what Ctrl-C does to asyncio.run's main task

        await job.run(on_row)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(interrupted())
    kept = RunDir.at(job.run_dir).load_records()
    assert 1700 <= len(kept) < 5000 and job.interrupted
    assert json.loads((job.run_dir / "result.json").read_text())["status"] == "interrupted"

    redone: list[int] = []
    resumed = asyncio.run(EvalJob(plan, rows, seed=3, runs_dir=tmp_path, run_id=job.run_id, resume=True)
                          .run(lambda r: redone.append(r["index"])))
    assert len(redone) == 5000 - len(kept) and not set(redone) & {r["index"] for r in kept}  # nothing redone
    lines = (job.run_dir / "rows.jsonl").read_text().splitlines()
    assert len(lines) == 5000 and len({json.loads(x)["index"] for x in lines}) == 5000
    a, b = full.to_json(), resumed.to_json()
    for key in ("metrics", "ci95", "rows", "scored", "errors", "calls", "requests", "input_tokens",
                "output_tokens", "cost_usd", "calls_per_row"):
        assert a[key] == b[key], key
    assert b["resumed_rows"] == len(kept) and 0.6 < a["metrics"]["accuracy"] < 0.75


def test_a_torn_last_line_is_dropped_and_that_row_rerun(tmp_path):
    plan = compile_spec(SPECS / "sim" / "self-consistency.yaml")
    rows = mixture_rows(50)
    job = EvalJob(plan, rows, runs_dir=tmp_path)
    full = asyncio.run(job.run())
    path = job.run_dir / "rows.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:30]) + "\n" + lines[30][:17])  # killed mid-write
    again = asyncio.run(EvalJob(plan, rows, runs_dir=tmp_path, run_id=job.run_id, resume=True).run())
    assert again.summary["metrics"] == full.summary["metrics"] and again.resumed_rows == 30
    assert len(path.read_text().splitlines()) == 50


def test_resume_refuses_another_study():
    same = {"plan_hash": "h", "seed": 0, "data_sha256": "d", "sets": [], "map": {}, "limit": None, "sample": None,
            "metrics": ["exact"]}
    check_same_study(same, dict(same), "r")
    with pytest.raises(UsageError, match="seed: was 0, now 1"):
        check_same_study(same, {**same, "seed": 1}, "r")


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


HOLD = """
import asyncio, os
from pydantic import BaseModel
from ember_compiler import Operator

class Hold(Operator):
    \"\"\"Rows from q1000 on wait until the test releases them: the run cannot end before its Ctrl-C.\"\"\"
    class Input(BaseModel):
        question: str
    class Output(BaseModel):
        question: str
    async def forward(self, question):
        while int(question[1:]) >= 1000 and not os.path.exists(os.environ["HOLD_RELEASE"]):
            await asyncio.sleep(0.01)
        return {"question": question}
"""


def test_ctrl_c_keeps_finished_rows_and_resume_finishes(tmp_path):
    (tmp_path / "holdops.py").write_text(HOLD)
    spec = tmp_path / "held.yaml"
    spec.write_text((SPECS / "sim" / "self-consistency.yaml").read_text().replace(
        "nodes:\n", "nodes:\n  hold: {op: python, call: 'holdops:Hold', with: {question: '${inputs.question}'}}\n").replace(
        "{{ inputs.question }}", "{{ hold.question }}"))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "answer": "ABCD"[i % 4]}) + "\n" for i in range(3000)))
    cmd = [sys.executable, "-m", "ember_cli.main", "eval", str(spec), "--data", str(data), "--concurrency", "4"]
    release = tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]), "HOLD_RELEASE": str(release)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = tmp_path / ".ember" / "runs"
    deadline = time.time() + 60
    while time.time() < deadline and not any(_count(p / "rows.jsonl") for p in runs.glob("*")):
        assert proc.poll() is None, proc.communicate()[1]  # polls a state: the first 512 rows written
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    (run_dir,) = runs.glob("*")
    kept = _count(run_dir / "rows.jsonl")
    assert 512 <= kept <= 1000, kept  # every row that finished, none of the held ones
    release.touch()
    assert f"ember eval --resume {run_dir.name}" in err and "Traceback" not in err
    done = subprocess.run([sys.executable, "-m", "ember_cli.main", "eval", "--resume", run_dir.name, "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rows"] == 3000 and summary["resumed_rows"] >= kept and _count(run_dir / "rows.jsonl") == 3000
    # resuming with a different seed is another study: refused, and nothing is written
    other = subprocess.run([sys.executable, "-m", "ember_cli.main", "eval", "--resume", run_dir.name, "--seed", "9"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 2 and "not the same study" in other.stderr

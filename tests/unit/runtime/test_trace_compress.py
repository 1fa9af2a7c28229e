"""A run folder's trace is gzipped when it ends large, read in either form, restored for a resume, and
readable whatever moment a kill hits the compression."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ember_compiler import api
from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import EvalJob
from ember_compiler.eval.simdata import sim_rows
from ember_compiler.runtime import trace as trace_mod
from ember_compiler.runtime.trace import Tracer, compress, read_trace, restore

SPECS = Path(__file__).resolve().parents[3] / "specs"


def rows(n: int) -> list[Row]:
    data = sim_rows(rows=n, alpha=0.6, p_easy=0.8, p_hard=0.3, choices=list("ABCD"), wrong_weights=[6, 1, 1], seed=5)
    return [Row(i, d["id"], d) for i, d in enumerate(data)]


def evaluate(tmp_path: Path, n: int, **more) -> EvalJob:
    plan = compile_spec(SPECS / "sim" / "ensemble-judge.yaml")
    job = EvalJob(plan, rows(n), seed=3, runs_dir=tmp_path, study={"kind": "eval"}, **more)
    asyncio.run(job.run())
    return job


def roots(spans) -> set[str]:
    return {s["attributes"]["ember.example.id"] for s in spans if s["parent_span_id"] is None}


def test_a_trace_over_the_threshold_is_gzipped_and_a_small_one_stays_plain(tmp_path, monkeypatch):
    small = evaluate(tmp_path, 30).run_dir
    assert (small / "trace.jsonl").is_file() and not (small / "trace.jsonl.gz").exists()
    plain = list(read_trace(small / "trace.jsonl"))
    assert len(plain) == 30 * 5  # root, two nodes, two requests per row

    monkeypatch.setattr(trace_mod, "COMPRESS_OVER", 1000)
    big = evaluate(tmp_path, 30).run_dir
    assert not (big / "trace.jsonl").exists()
    with gzip.open(big / "trace.jsonl.gz", "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 30 * 5 and all(json.loads(line)["trace_id"] for line in lines)
    spans = list(read_trace(big / "trace.jsonl"))  # the reader is given the plain name and finds the .gz
    assert [s["name"] for s in spans] == [s["name"] for s in plain]
    assert roots(spans) == roots(plain) == {r.id for r in rows(30)}
    assert not [p for p in big.iterdir() if p.name.endswith(".tmp")]


def test_a_report_of_a_compressed_run_has_its_timeline_and_node_figures(tmp_path, monkeypatch, at_repo_root):
    monkeypatch.setattr(trace_mod, "COMPRESS_OVER", 1000)
    result = api.evaluate("specs/sim/ensemble-judge.yaml", "specs/data/sim-mcq.jsonl",
                          api.RunOptions(runs_dir=tmp_path / "runs", cache_mode="off"))
    assert (result.run_dir / "trace.jsonl.gz").is_file() and not (result.run_dir / "trace.jsonl").exists()
    m = api.report_model(result.run_dir)
    summary = json.loads((result.run_dir / "result.json").read_text())
    assert len(m["timeline"]["calls"]) == summary["requests"] and m["timeline_note"] is None
    nodes = {n["id"]: n for n in m["nodes"]}
    assert nodes["candidates"]["calls"] + nodes["final"]["calls"] == summary["calls"]
    assert nodes["candidates"]["runs"] == 40 and nodes["candidates"]["op"] == "ensemble"


def test_a_resume_after_compression_keeps_the_earlier_spans_and_compresses_again(tmp_path, monkeypatch):
    monkeypatch.setattr(trace_mod, "COMPRESS_OVER", 1000)
    plan = compile_spec(SPECS / "sim" / "ensemble-judge.yaml")
    job = EvalJob(plan, rows(300), seed=3, runs_dir=tmp_path, study={"kind": "eval"})

    async def interrupted() -> None:
        me = asyncio.current_task()
        seen = 0

        def on_row(record) -> None:
            nonlocal seen
            seen += 1
            if seen == 100:
                me.cancel()  # what Ctrl-C does

        await job.run(on_row)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(interrupted())
    folder = job.run_dir
    assert (folder / "trace.jsonl.gz").is_file() and not (folder / "trace.jsonl").exists()
    before = list(read_trace(folder / "trace.jsonl"))
    assert len(roots(before)) >= 100

    asyncio.run(EvalJob(plan, rows(300), seed=3, runs_dir=tmp_path, run_id=job.run_id, resume=True).run())
    assert (folder / "trace.jsonl.gz").is_file() and not (folder / "trace.jsonl").exists()
    after = list(read_trace(folder / "trace.jsonl"))
    ids = [s["span_id"] for s in after]
    assert after[:len(before)] == before and len(ids) == len(set(ids))  # appended, nothing lost or doubled
    assert roots(after) == {r.id for r in rows(300)}


def write_trace(path: Path, n: int) -> list[str]:
    lines = [json.dumps({"trace_id": f"{i:032x}", "span_id": f"{i:016x}", "parent_span_id": None, "name": "x",
                         "start_time_unix_nano": i, "end_time_unix_nano": i + 1, "attributes": {"pad": "p" * 200}})
             for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [json.loads(line)["span_id"] for line in lines]


def test_both_forms_read_the_same_and_restore_makes_the_plain_file_again(tmp_path):
    path = tmp_path / "trace.jsonl"
    ids = write_trace(path, 50)
    assert [s["span_id"] for s in read_trace(path)] == ids
    assert compress(path) == tmp_path / "trace.jsonl.gz" and not path.exists()
    assert [s["span_id"] for s in read_trace(path)] == ids
    restore(path)
    assert path.is_file() and not (tmp_path / "trace.jsonl.gz").exists()
    assert [s["span_id"] for s in read_trace(path)] == ids
    assert list(read_trace(tmp_path / "none.jsonl")) == []


def test_a_kill_after_the_gz_is_in_place_leaves_both_and_the_plain_one_is_read(tmp_path, monkeypatch):
    path = tmp_path / "trace.jsonl"
    ids = write_trace(path, 50)
    real_unlink = Path.unlink

    def killed(self, *args, **kwargs):
        if self == path:
            raise KeyboardInterrupt  # the process dies between the rename and the removal
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", killed)
    with pytest.raises(KeyboardInterrupt):
        compress(path)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert path.is_file() and (tmp_path / "trace.jsonl.gz").is_file()
    assert [s["span_id"] for s in read_trace(path)] == ids
    restore(path)  # a resume keeps the plain file and drops the copy
    assert [p.name for p in tmp_path.iterdir()] == ["trace.jsonl"]
    assert [s["span_id"] for s in read_trace(path)] == ids


def test_a_sigkill_while_the_gz_is_being_written_leaves_the_plain_trace_whole(tmp_path):
    path = tmp_path / "trace.jsonl"
    ids = write_trace(path, 200_000)  # ~50 MB: compressing takes long enough to be caught mid-write
    child = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; "
                              "from ember_compiler.runtime.trace import compress; compress(Path(sys.argv[1]))",
                              str(path)])
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):  # the temp .gz exists: mid-write
        assert child.poll() is None, "compression ended before it was caught"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert path.is_file() and not (tmp_path / "trace.jsonl.gz").exists()
    assert [s["span_id"] for s in read_trace(path)] == ids


def test_spans_appended_after_a_torn_last_line_start_on_a_line_of_their_own(tmp_path):
    path = tmp_path / "trace.jsonl"
    ids = write_trace(path, 3)
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"trace_id":"ab","span_id":"cut')  # a kill mid-write: no newline
    compress(path)  # and the run ended compressed; the resume restores, then appends
    tracer = Tracer(path, compress=True)
    tracer.span("t" * 32, "feedfeedfeedfeed", None, "invoke_workflow x", "INTERNAL", 1.0, 2.0, "OK", {})
    tracer.close()
    assert [s["span_id"] for s in read_trace(path)] == [*ids, "feedfeedfeedfeed"]

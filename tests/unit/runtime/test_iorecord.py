"""`--record io` (issue 16): every node's inputs and outputs and every request's messages and replies
land in the run folder's `io.jsonl`, linked to the trace by span id; off by default; a size cap ends
the file with a note; a large file is gzipped; a resumed file continues."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

from ember_compiler import api
from ember_compiler.runtime import iorecord
from ember_compiler.runtime.iorecord import IoRecorder, read_io

SPECS = Path(__file__).resolve().parents[3] / "specs"


def _spans(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]


def test_a_run_records_each_node_and_request_linked_to_its_client_span(tmp_path):
    result = api.run(SPECS / "sim" / "ensemble-judge.yaml", {"question": "Which planet is red?"},
                     api.RunOptions(record="io", runs_dir=tmp_path))
    records = read_io(result.run_dir)
    nodes = {r["node"]: r for r in records if r["kind"] == "node"}
    requests = [r for r in records if r["kind"] == "request"]
    assert set(nodes) == {"candidates", "final"} and all(r["row"] == 0 for r in records)
    cands, final = nodes["candidates"], nodes["final"]
    assert cands["op"] == "ensemble" and len(cands["outputs"]["responses"]) == 4
    # the judge's inputs are the ensemble's outputs, and its output is the run's answer
    assert final["inputs"]["candidates"] == cands["outputs"]["responses"]
    assert final["outputs"]["answer"] == result.outputs["answer"] and "reasoning" in final["outputs"]
    by_node = {r["node"]: r for r in requests}
    assert by_node["candidates"]["messages"][-1]["content"] == "Question: Which planet is red?"
    assert by_node["candidates"]["texts"] == cands["outputs"]["responses"]
    assert by_node["final"]["binding"] == "judge" and by_node["final"]["cached"] is False
    assert all(len(r["finish_reasons"]) == len(r["texts"]) for r in requests)
    client = {s["span_id"]: s for s in _spans(result.run_dir) if s["kind"] == "CLIENT"}
    assert {r["span_id"] for r in requests} == set(client)
    assert all(client[r["span_id"]]["attributes"]["ember.node.id"] == r["node"] for r in requests)
    assert json.loads((result.run_dir / "result.json").read_text())["io"] == "io.jsonl"


def test_recording_is_off_by_default_and_the_trace_never_holds_prompts(tmp_path):
    result = api.run(SPECS / "sim" / "ensemble-judge.yaml", {"question": "Which planet is red?"},
                     api.RunOptions(runs_dir=tmp_path))
    files = {p.name for p in result.run_dir.iterdir()}
    assert "io.jsonl" not in files and "io.jsonl.gz" not in files
    assert "Which planet is red?" not in (result.run_dir / "trace.jsonl").read_text()
    assert "io" not in json.loads((result.run_dir / "result.json").read_text())


def test_an_eval_records_every_row_under_its_rows_jsonl_id(tmp_path):
    data = SPECS / "data" / "sim-mcq.jsonl"
    result = api.evaluate(SPECS / "sim" / "ensemble-judge.yaml", data,
                          api.RunOptions(record="io", runs_dir=tmp_path), limit=5)
    rows = [json.loads(line) for line in (result.run_dir / "rows.jsonl").read_text().splitlines()]
    records = read_io(result.run_dir)
    for row in rows:
        mine = [r for r in records if r["row"] == row["id"]]
        nodes = {r["node"]: r for r in mine if r["kind"] == "node"}
        assert set(nodes) == {"candidates", "final"}
        assert nodes["final"]["outputs"]["answer"] == row["outputs"]["answer"]
        asked = [r for r in mine if r["kind"] == "request"]
        assert sum(len(r["texts"]) for r in asked) == row["calls"]
        assert any(row["id"] != "" and "Synthetic multiple-choice question" in m["content"]
                   for r in asked for m in r["messages"])


def test_a_skipped_branch_is_recorded_as_skipped(tmp_path):
    result = api.run(SPECS / "sim" / "router.yaml", {"question": "2+2?"}, api.RunOptions(record="io", runs_dir=tmp_path))
    nodes = {r["node"]: r for r in read_io(result.run_dir) if r["kind"] == "node"}
    taken = "math" if result.outputs["route"] == "math" else "general"
    other = "general" if taken == "math" else "math"
    assert nodes[other]["skipped"] is True and nodes[other]["outputs"] is None
    assert "skipped" not in nodes[taken] and nodes[taken]["outputs"] is not None


def test_without_a_trace_requests_are_still_recorded_with_no_span(tmp_path):
    result = api.run(SPECS / "sim" / "single.yaml", {"question": "hi"},
                     api.RunOptions(record="io", trace=False, runs_dir=tmp_path))
    requests = [r for r in read_io(result.run_dir) if r["kind"] == "request"]
    assert requests and all(r["span_id"] is None for r in requests)
    assert not (result.run_dir / "trace.jsonl").exists()


def test_the_size_cap_ends_the_file_with_one_note_and_a_warning(tmp_path):
    setup = api.eval_job(SPECS / "sim" / "ensemble-judge.yaml", SPECS / "data" / "sim-mcq.jsonl",
                         api.RunOptions(record="io", record_max_mb=0.004, runs_dir=tmp_path))  # ~4 KB
    result = asyncio.run(api.run_eval(setup))
    lines = (result.run_dir / "io.jsonl").read_text().splitlines()
    assert sum(len(line) + 1 for line in lines[:-1]) <= 0.004 * 2**20
    last = json.loads(lines[-1])
    assert last["kind"] == "note" and "size cap" in last["message"]
    assert sum('"kind":"note"' in line for line in lines) == 1
    # the warning reaches the eval's warnings (the CLI prints them on stderr)
    assert any("size cap" in w and "--record-max-mb" in w for w in setup.job.warnings)


def test_a_large_file_is_gzipped_at_the_end_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setattr(iorecord, "COMPRESS_OVER", 1000)
    result = api.evaluate(SPECS / "sim" / "ensemble-judge.yaml", SPECS / "data" / "sim-mcq.jsonl",
                          api.RunOptions(record="io", runs_dir=tmp_path), limit=4)
    assert not (result.run_dir / "io.jsonl").exists()
    with gzip.open(result.run_dir / "io.jsonl.gz", "rt") as fh:
        assert len(fh.read().splitlines()) == len(read_io(result.run_dir)) == 4 * 4  # 2 nodes + 2 requests per row
    assert json.loads((result.run_dir / "result.json").read_text())["io"] == "io.jsonl.gz"
    assert api.read_io(result.run_id, tmp_path) == read_io(result.run_dir)


class _Node:
    id, op = "n", "vote"


def test_a_resumed_recording_continues_the_compressed_file(tmp_path, monkeypatch):
    monkeypatch.setattr(iorecord, "COMPRESS_OVER", 10)
    first = IoRecorder(tmp_path, 2**20)
    first.node("r1", _Node(), {"candidates": ["A"]}, {"answer": "A"})
    assert first.close().name == "io.jsonl.gz"
    again = IoRecorder(tmp_path, 2**20, append=True)
    again.node("r2", _Node(), {"candidates": ["B"]}, {"answer": "B"})
    again.close()
    assert [r["row"] for r in read_io(tmp_path)] == ["r1", "r2"]
    fresh = IoRecorder(tmp_path, 2**20)  # a new run starts empty
    assert fresh.close().name == "io.jsonl" and read_io(tmp_path) == []


def test_every_line_is_scrubbed_of_the_runs_secrets(tmp_path):
    rec = IoRecorder(tmp_path, 2**20, scrub=lambda s: s.replace("sk-secret-123", "***"))
    rec.request(0, "a", None, "m", [{"role": "user", "content": "my key is sk-secret-123"}], ["sk-secret-123"],
                ["stop"], False)
    rec.close()
    text = (tmp_path / "io.jsonl").read_text()
    assert "sk-secret-123" not in text and text.count("***") == 2


def test_an_unknown_record_kind_is_a_usage_error():
    import pytest

    with pytest.raises(api.UsageError, match="--record must be one of io"):
        api.RunOptions(record="everything")
    with pytest.raises(api.UsageError, match="--record-max-mb"):
        api.RunOptions(record="io", record_max_mb=0)

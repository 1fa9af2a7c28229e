"""The server's trace file rotates by size and keeps `backups` old files."""

from __future__ import annotations

import json

from ember_compiler.serve.traces import RotatingTracer


def test_the_trace_rotates_and_keeps_its_backups(tmp_path):
    path = tmp_path / "trace.jsonl"
    tracer = RotatingTracer(path, max_bytes=300, backups=2)
    for i in range(40):
        tracer.span(tracer.new_trace(), tracer.new_span_id(), None, f"span {i}", "INTERNAL", 0.0, 1.0, "OK", {})
        tracer.flush()
    tracer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[-2:] == ["trace.jsonl.1", "trace.jsonl.2"] and set(files) <= {"trace.jsonl", *files}
    names = [json.loads(line)["name"] for f in ("trace.jsonl.2", "trace.jsonl.1", "trace.jsonl")
             if (tmp_path / f).exists() for line in (tmp_path / f).read_text().splitlines()]
    assert len(files) == 3 or not (tmp_path / "trace.jsonl").exists()  # just rotated: the next write opens it
    assert names == [f"span {i}" for i in range(40 - len(names), 40)]  # the newest spans, in order
    assert all((tmp_path / f).stat().st_size < 300 + 200 for f in files)

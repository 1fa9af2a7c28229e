"""Run files survive kills and disk faults (issue 17 rows 1, 2): atomic rewrites, torn last lines."""

from __future__ import annotations

import json
import os

import pytest

from ember_compiler.runs import rundir
from ember_compiler.runs.rundir import RunDir, atomic_write_text


def _rows(path, n):
    path.write_text("".join(json.dumps({"index": i, "v": i}) + "\n" for i in range(n)), encoding="utf-8")


def test_a_crash_between_write_and_replace_leaves_the_old_rows(tmp_path, monkeypatch):
    run = RunDir.new(tmp_path)
    run.mkdir()
    _rows(run.rows_path, 100)
    with run.rows_path.open("a", encoding="utf-8") as fh:
        fh.write('{"index": 100, "v"')  # torn: resume rewrites the file

    def killed(src, dst):
        raise KeyboardInterrupt  # the process dies before the rename

    monkeypatch.setattr(rundir.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run.load_records()
    lines = run.rows_path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 101 and json.loads(lines[99]) == {"index": 99, "v": 99}  # nothing finished lost
    assert [p.name for p in run.path.iterdir()] == ["rows.jsonl"]  # no temp file left behind
    monkeypatch.undo()
    assert len(run.load_records()) == 100
    assert run.rows_path.read_text(encoding="utf-8").endswith("}\n")


def test_result_and_study_are_replaced_atomically(tmp_path, monkeypatch):
    run = RunDir.new(tmp_path)
    run.write_result({"status": "ok", "n": 1})
    run.write_study({"kind": "eval", "seed": 1})
    monkeypatch.setattr(rundir.os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        run.write_result({"status": "interrupted"})
    with pytest.raises(OSError):
        run.write_study({"kind": "eval", "seed": 2})
    assert run.read_result() == {"status": "ok", "n": 1}
    assert run.read_study() == {"kind": "eval", "seed": 1}
    assert sorted(p.name for p in run.path.iterdir()) == ["result.json", "study.json"]


def test_atomic_write_fsyncs_before_the_rename(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(rundir.os, "fsync", lambda fd: (calls.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(rundir.os, "replace", lambda s, d: (calls.append("replace"), real_replace(s, d)))
    atomic_write_text(tmp_path / "f.json", "x\n")
    assert calls[:2] == ["fsync", "replace"] and (tmp_path / "f.json").read_text() == "x\n"


def test_a_last_line_without_newline_is_torn(tmp_path):
    run = RunDir.new(tmp_path)
    run.mkdir()
    _rows(run.rows_path, 3)
    with run.rows_path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"index": 3, "v": 3}))  # a whole record, but its newline never written
    assert [r["index"] for r in run.load_records()] == [0, 1, 2]  # dropped: the row is redone
    assert run.rows_path.read_text(encoding="utf-8").endswith("}\n")
    with run.open_rows(append=True) as out:  # what resume does next
        out.write(json.dumps({"index": 3, "v": 3}) + "\n")
    assert [r["index"] for r in run.load_records()] == [0, 1, 2, 3]
    assert len(run.rows_path.read_text(encoding="utf-8").splitlines()) == 4

"""Datasets: JSONL, JSON and CSV, column mapping, --limit, --sample with a seed, row ids."""

from __future__ import annotations

import json

import pytest

from ember_compiler.errors import UsageError
from ember_compiler.eval.dataset import load_rows, parse_map


def test_jsonl_json_and_csv_read_the_same_rows(tmp_path):
    items = [{"id": "a", "question": "q1", "answer": "A", "choices": ["A", "B"]},
             {"question": "q2", "answer": "B", "choices": ["A", "B"]}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (tmp_path / "d.json").write_text(json.dumps(items))
    (tmp_path / "d.csv").write_text('id,question,answer,choices\na,q1,A,"[""A"", ""B""]"\n,q2,B,"[""A"",""B""]"\n')
    for name in ("d.jsonl", "d.json"):
        rows = load_rows(tmp_path / name)
        assert [r.id for r in rows] == ["a", "1"] and rows[1].data == items[1]
    csv_rows = load_rows(tmp_path / "d.csv")
    assert csv_rows[0].id == "a" and csv_rows[0].data["choices"] == ["A", "B"]  # JSON cells are parsed
    assert csv_rows[1].data["question"] == "q2" and csv_rows[1].data["choices"] == ["A", "B"]


def test_bad_rows_are_kept_as_errors(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"answer": "A"}\nnot json\n[1]\n')
    rows = load_rows(tmp_path / "d.jsonl")
    assert [r.error is None for r in rows] == [True, False, False] and "invalid JSON" in rows[1].error
    (tmp_path / "d.csv").write_text("question,answer\nq,A,extra\n")
    assert "cells" in load_rows(tmp_path / "d.csv")[0].error


def test_column_mapping(tmp_path):
    (tmp_path / "d.csv").write_text("prompt,label,other\nwhat?,B,x\n")
    row = load_rows(tmp_path / "d.csv", mapping=parse_map(["answer=label,question=prompt"]))[0]
    assert row.data == {"question": "what?", "answer": "B", "other": "x"}
    assert parse_map(["answer=label", "question=prompt"]) == {"answer": "label", "question": "prompt"}
    missing = load_rows(tmp_path / "d.csv", mapping={"answer": "nope"})[0]
    assert missing.data is None and "nope" in missing.error
    with pytest.raises(UsageError):
        parse_map(["answer"])


def test_limit_and_seeded_sample_keep_file_order_and_indices(tmp_path):
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"answer": str(i)}) + "\n" for i in range(100)))
    assert [r.index for r in load_rows(tmp_path / "d.jsonl", 5)] == [0, 1, 2, 3, 4]
    a = load_rows(tmp_path / "d.jsonl", sample=10, seed=1)
    b = load_rows(tmp_path / "d.jsonl", sample=10, seed=1)
    c = load_rows(tmp_path / "d.jsonl", sample=10, seed=2)
    assert [r.index for r in a] == [r.index for r in b] != [r.index for r in c]
    assert [r.index for r in a] == sorted(r.index for r in a) and len({r.index for r in a}) == 10
    assert all(r.id == str(r.index) for r in a)  # ids are file positions, not positions in the sample
    assert all(r.index < 20 for r in load_rows(tmp_path / "d.jsonl", 20, sample=5, seed=3))


def test_shipped_datasets_load(tmp_path):
    from pathlib import Path

    data = Path(__file__).resolve().parents[3] / "specs" / "data"
    for path in sorted(data.iterdir()):
        rows = load_rows(path)
        assert rows and all(r.error is None for r in rows), path

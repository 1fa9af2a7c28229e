"""The sim's pipeline contract (docs/sim.md#pipelines): per-node fields, per-node truths and
`wrong_input_accuracy`, on real specs through `ember eval`'s runner."""

from __future__ import annotations

import json

import pytest

from ember_compiler import api
from ember_compiler.errors import ConfigError
from ember_compiler.providers.registry import check_binding
from ember_compiler.providers.sim import SimConfig

ROWS = 4000

SPEC = """
ember: 1
name: pipe
inputs: {question: string}
models:
  m: {provider: sim, accuracy: {locate: 0.9, default: 0.5}%s}
nodes:
  locate: {op: generate, model: m, prompt: "Where? {{ inputs.question }}"}
  solve: {op: generate, model: m, prompt: "Given {{ locate.answer }}: {{ inputs.question }}"}
outputs: {answer: "${solve.answer}", location: "${locate.answer}"}
"""


def _eval(tmp_path, extra: str, rows: list[dict]):
    spec = tmp_path / "pipe.yaml"
    spec.write_text(SPEC % extra)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = []
    result = api.evaluate(spec, data, api.RunOptions(runs_dir=None), on_row=records.append)
    return result, records


def _rows(n: int = ROWS) -> list[dict]:
    return [{"id": f"r{i}", "question": "q", "answer": "A", "truths": {"locate": "BCD"[i % 3]}} for i in range(n)]


def _near(value: float, exact: float, n: int) -> bool:
    return abs(value - exact) <= 5 * (exact * (1 - exact) / n) ** 0.5


def test_two_stage_with_wrong_input_accuracy_zero_is_the_product_of_the_stages(tmp_path) -> None:
    result, records = _eval(tmp_path, ", wrong_input_accuracy: 0", _rows())
    assert _near(result.accuracy, 0.9 * 0.5, ROWS)  # the exact 0.45 of the docs' worked example
    truths = {f"r{i}": "BCD"[i % 3] for i in range(ROWS)}
    located = [r["outputs"]["location"] == truths[r["id"]] for r in records]
    assert _near(sum(located) / ROWS, 0.9, ROWS)  # locate is scored against its own truth
    # a solve after a wrong location is never right
    assert not any(r["correct"] and not ok for r, ok in zip(records, located, strict=True))


def test_wrong_input_accuracy_sets_the_accuracy_after_a_wrong_upstream_answer(tmp_path) -> None:
    result, _ = _eval(tmp_path, ", wrong_input_accuracy: 0.25", _rows())
    assert _near(result.accuracy, 0.9 * 0.5 + 0.1 * 0.25, ROWS)


def test_unset_wrong_input_accuracy_keeps_independent_draws(tmp_path) -> None:
    result, records = _eval(tmp_path, "", _rows())
    assert _near(result.accuracy, 0.5, ROWS)  # solve's own accuracy, whatever locate drew
    # and the draws are today's: the same spec without per-node truths gives the same solve answers
    plain, plain_records = _eval(tmp_path, "", [{k: v for k, v in r.items() if k != "truths"} for r in _rows(200)])
    assert [r["outputs"]["answer"] for r in plain_records] == [r["outputs"]["answer"] for r in records[:200]]


def test_a_field_per_node_resolves_by_node_id_then_default() -> None:
    cfg = SimConfig({"accuracy": {"locate": 0.9, "default": 0.5}, "judge_accuracy": {"final": 0.8}})
    assert cfg.for_node("locate").accuracy == 0.9
    assert cfg.for_node("solve").accuracy == 0.5
    assert cfg.for_node("net/locate").accuracy == 0.9  # a sub-network's node matches by its last segment
    assert cfg.for_node("final").judge_accuracy == 0.8
    assert cfg.for_node("solve").judge_accuracy == 0.5  # unset for this node: defaults to its accuracy


def test_a_bad_per_node_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="accuracy"):
        check_binding("m", {"provider": "sim", "accuracy": {"locate": 1.5}})


def test_the_validator_positions_bad_per_node_entries(tmp_path) -> None:
    line = (SPEC % "").splitlines()[5]
    for bad, code, key in (("locate: 2", "E112", "2"), ("loacte: 0.9", "E404", "loacte")):
        spec = tmp_path / "bad.yaml"
        spec.write_text((SPEC % "").replace("locate: 0.9", bad))
        [d] = api.validate([spec])
        assert (d.code, d.line, d.column) == (code, 6, line.replace("locate: 0.9", bad).index(key) + 1)


def test_row_overrides_may_be_per_node_too(tmp_path) -> None:
    rows = [{"id": f"r{i}", "question": "q", "answer": "A", "sim": {"accuracy": {"solve": 1.0, "default": 0.0}}}
            for i in range(50)]
    _, records = _eval(tmp_path, "", rows)
    assert all(r["correct"] for r in records)  # solve is always right (independent draws: locate does not matter)
    assert not any(r["outputs"]["location"] == "A" for r in records)  # and locate never is

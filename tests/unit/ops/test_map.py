"""The `map` op: a sub-spec or an inline node per item of a list, all items in parallel."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths
from ember_compiler.runs import run_plan
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.analysis import analyze
from ember_compiler.xcs.expr import Input, NodeRef
from ember_compiler.xcs.printing import to_text

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "map"


def test_map_validates_and_lowers_to_one_node_with_a_sub_plan():
    assert validate_paths([FIX / "main.yaml"]) == []
    plan = compile_spec(FIX / "main.yaml")
    each = plan.node("each")
    assert each.kind == "map" and each.params["as"] == "q" and each.outputs == ("results", "answers")
    inner = each.subplan.nodes
    assert [n.id for n in inner] == ["each/node"] and inner[0].source is None
    # values read from outside the sub-plan are bound by the map node, the item is #item
    assert each.inputs["bind"].get("#0") == NodeRef("hint")
    assert Input("#item") in inner[0].inputs["vars"].get("inputs").children()
    assert [n.id for n in plan.node("subs").subplan.nodes] == ["subs/g", "subs/v"]
    assert [sub.name for _, sub in plan.subplans()] == ["each", "subs", "fixed"]
    assert plan.node("subs").when == (Input("go"),)
    # in JSON the sub-plan is the node's params.plan
    assert [n["id"] for n in each.to_json()["params"]["plan"]["nodes"]] == ["each/node"]
    text = to_text(plan)
    assert "      %each/node = llm.generate[model=w n=1](%#0, %#1, %#2, %#3, %#item)" in text
    assert "      return {answer: %subs/v.answer, style: %#item}" not in text  # style is bound, not the item


def test_items_run_in_parallel_and_results_keep_their_order():
    plan = compile_spec(FIX / "main.yaml")
    with virtual_time() as clock:  # the sim's 150 ms latency is virtual: `took` is exact
        result, took = clock.measure(lambda: run_plan(plan, {"qs": [f"q{i}" for i in range(6)]}, runs_dir=None,
                                                      example={"answer": "B"}))
    assert result.error is None, result.error
    out = result.outputs
    assert len(out["each"]) == 6 and all(a in "ABCD" for a in out["each"])
    assert [r["style"] for r in out["subs"]] == ["fancy"] * 6 and out["all"] in "ABCD"
    assert out["fixed"] == ["x", "y"]
    # the critical path: hint, then the six `each` items at once (the `subs` items run meanwhile),
    # two calls of 150 ms, not 13 in a row
    assert took == pytest.approx(0.15 * 2)
    assert result.usage.calls == 1 + 6 + 6 * 3
    # items draw independently (distinct example ids): six identical questions, not one answer copied
    same = run_plan(plan, {"qs": ["same"] * 12}, runs_dir=None)
    assert len(set(same.outputs["each"])) > 1


def test_guarded_map_is_skipped_and_empty_lists_give_empty_results():
    plan = compile_spec(FIX / "main.yaml")
    result = run_plan(plan, {"qs": [], "go": False}, runs_dir=None)
    assert result.error is None and result.outputs["subs"] is None and result.outputs["each"] == []
    assert result.nodes["subs"] == "skipped"


def test_over_must_be_a_list(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text((FIX / "main.yaml").read_text().replace("inputs: {qs: array", "inputs: {qs: string"))
    (tmp_path / "per_item.yaml").write_text((FIX / "per_item.yaml").read_text())
    result = run_plan(compile_spec(spec), {"qs": "abc"}, runs_dir=None)
    assert "node 'subs'" in result.error and "map over a str, expected a list" in result.error


def test_analysis_counts_items_times_sub_plan_calls():
    stats = analyze(compile_spec(FIX / "main.yaml"))
    assert stats.node_calls["fixed"] == 0  # two items of a vote: no model calls
    assert stats.node_calls["each"] == 1 and stats.node_calls["subs"] == 3  # unknown length: one item
    assert any("number of map items unknown" in n for n in stats.notes)

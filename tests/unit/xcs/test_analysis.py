"""Static analysis: calls, requests, depth and width of compiled plans."""

from __future__ import annotations

import pytest

from ember_compiler.testing.cases import compile_case
from ember_compiler.xcs.analysis import analyze
from ember_compiler.xcs.plan import Plan, PlanNode

pytestmark = pytest.mark.usefixtures("at_repo_root")


def test_ensemble_then_judge():
    stats = analyze(compile_case("ensemble_judge"))
    assert (stats.calls, stats.depth, stats.width) == (6, 2, 5)
    assert (stats.requests, stats.llm_nodes, stats.fn_nodes) == (2, 2, 0)
    assert stats.node_calls == {"candidates": 5, "final": 1}
    assert stats.notes == ()


@pytest.mark.parametrize(
    ("case", "calls", "requests", "depth", "width"),
    [
        ("ops", 8, 6, 3, 4),  # draft 1, samples 3 | pick 1 and check 3 (one per candidate) side by side
        ("varied", 12, 9, 2, 6),  # 3 parts x n=2, then verify over the 6 concatenated answers
        ("refine", 6, 6, 6, 1),  # every round counted (upper bound)
        ("nested", 4, 2, 2, 3),  # ensemble inside two networks, then a judge
        ("prune", 1, 1, 1, 1),  # the unused ensemble is pruned before counting
        ("order", 4, 4, 3, 2),
    ],
)
def test_cases(case, calls, requests, depth, width):
    stats = analyze(compile_case(case))
    assert (stats.calls, stats.requests, stats.depth, stats.width) == (calls, requests, depth, width)


def test_verify_of_unknown_length_counts_one_call_and_says_so():
    nodes = (
        PlanNode("pick", "fn", "first", inputs={"candidates": {"$in": "options"}}, outputs=("value",)),
        PlanNode("check", "llm", "verify",
                 inputs={"question": {"$in": "q"}, "candidates": {"$ref": ["pick", "value"]}},
                 params={"model": "m"}, outputs=("verdicts", "accepted", "answer")),
    )
    plan = Plan("p", nodes, inputs={}, outputs={"a": {"$ref": ["check", "answer"]}}, models={})
    stats = analyze(plan)
    assert stats.calls == 1 and len(stats.notes) == 1 and "check" in stats.notes[0]
    assert stats.to_json()["notes"] == list(stats.notes)
    assert (stats.fn_nodes, stats.llm_nodes) == (1, 1)


def test_static_lengths_of_lists_and_packs():
    nodes = (
        PlanNode("e", "llm", "ensemble", params={"model": "m", "n": 4}, outputs=("responses",)),
        PlanNode("net", "fn", "pack", inputs={"values": {"$dict": {"xs": {"$ref": ["e", "answers"]}}}},
                 outputs=("xs",)),
        PlanNode("v1", "llm", "verify", inputs={"candidates": {"$ref": ["net", "xs"]}}, params={"model": "m"}),
        PlanNode("v2", "llm", "verify", inputs={"candidates": {"$list": [{"$lit": 1}] * 3}},
                 params={"model": "m"}),
        PlanNode("v3", "llm", "verify", inputs={"candidates": {"$lit": ["a", "b"]}}, params={"model": "m"}),
    )
    plan = Plan("p", nodes, inputs={}, outputs={}, models={})
    assert analyze(plan).node_calls == {"e": 4, "v1": 4, "v2": 3, "v3": 2}


def test_empty_plan():
    stats = analyze(Plan("p", (), inputs={}, outputs={}, models={}))
    assert (stats.calls, stats.depth, stats.width) == (0, 0, 0)

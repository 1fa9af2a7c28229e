"""The typed plan IR: expressions, use-lists, sub-plans, the text form and verify()."""

from __future__ import annotations

import json

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.passes import run_passes
from ember_compiler.xcs.executor import Executor
from ember_compiler.xcs.expr import (
    DictOf,
    Fmt,
    Guard,
    Input,
    ListOf,
    Lit,
    NodeRef,
    Ref,
    deps,
    from_json,
    rebuild,
    walk,
)
from ember_compiler.xcs.plan import NodeKind, Plan, PlanNode
from ember_compiler.xcs.printing import to_text
from ember_compiler.xcs.verify import PlanError

EXPRS = [
    {"$in": "q"}, {"$ref": ["a", "answer"]}, {"$node": "a"}, {"$lit": [1, {"x": None}]},
    {"$list": [{"$lit": 1}, {"$ref": ["b", "x"]}]}, {"$dict": {"k": {"$in": "q"}}},
    {"$fmt": ["Q: ", {"$in": "q"}, "!"]}, {"$expr": "a.ok", "vars": {"a": {"$node": "a"}}},
]


@pytest.mark.parametrize("data", EXPRS, ids=lambda d: next(iter(d)))
def test_every_expression_round_trips_through_json(data):
    expr = from_json(data)
    assert expr.to_json() == data and from_json(expr.to_json()) == expr and hash(expr) == hash(from_json(data))


def test_walk_rebuild_and_deps():
    expr = from_json({"$list": [{"$ref": ["a", "x"]}, {"$fmt": ["-", {"$node": "b"}]}, {"$lit": 3}]})
    assert [type(e).__name__ for e in walk(expr)] == ["ListOf", "Ref", "Fmt", "NodeRef", "Lit"]
    assert deps(expr) == {"a", "b"}
    renamed = rebuild(expr, lambda e: Ref("z", e.port) if isinstance(e, Ref) else None)
    assert deps(renamed) == {"z", "b"} and renamed is not expr
    assert rebuild(expr, lambda e: None) is expr  # nothing replaced: the same object


def test_malformed_expressions_are_named():
    for bad in ({"$nope": 1}, {"$ref": "a"}, "text", {"$list": [1]}):
        with pytest.raises(ValueError, match="plan expression"):
            from_json(bad)


def _plan(*nodes: PlanNode, outputs=None, models=None) -> Plan:
    return Plan("p", nodes, inputs={"q": {"type": "string"}}, outputs=outputs or {}, models=models or {})


def test_an_unknown_op_is_a_clear_error_naming_the_node():
    plan = _plan(PlanNode("x", "fn", "nosuch", source="spec.yaml:3:3"))
    with pytest.raises(PlanError, match=r"node 'x' \(spec.yaml:3:3\): unknown op 'nosuch'"):
        Executor(plan)


@pytest.mark.parametrize(("nodes", "outputs", "message"), [
    ((PlanNode("a", "fn", "first", {"candidates": {"$ref": ["b", "value"]}}, outputs=("value",)),), {},
     "node 'a'.*reads node 'b' before it is defined"),
    ((PlanNode("a", "fn", "first", outputs=("value",)), PlanNode("a", "fn", "first")), {}, "duplicate node id"),
    ((PlanNode("a", "fn", "first", {"candidates": {"$in": "nope"}}),), {}, "unknown input 'nope'"),
    ((PlanNode("a", "llm", "generate", params={"model": "m", "prompt": "hi"}),), {}, "unknown model binding 'm'"),
    ((PlanNode("a", "llm", "generate", params={"model": "m"}),), {}, "needs param 'prompt'"),
    ((PlanNode("a", "llm", "vote", params={"normalize": "strip"}),), {}, "'vote' is a fn op, not llm"),
    ((PlanNode("a", "fn", "first", outputs=("value",)),), {"x": {"$ref": ["a", "valu"]}}, "no port 'valu'"),
])
def test_verify_names_what_is_wrong(nodes, outputs, message):
    with pytest.raises(PlanError, match=message):
        Executor(_plan(*nodes, outputs=outputs))


def test_from_json_verifies_and_checks_the_hash():
    plan = compile_spec("specs/ensemble-judge.yaml")
    data = json.loads(json.dumps(plan.to_json()))
    assert Plan.from_json(data).hash == plan.hash
    data["nodes"][1]["op"] = "nosuch"
    data.pop("hash")
    with pytest.raises(PlanError, match="node 'final'.*unknown op 'nosuch'"):
        Plan.from_json(data)
    with pytest.raises(PlanError, match="hash does not match"):
        Plan.from_json({**plan.to_json(), "name": "other"})


def test_use_lists_text_form_and_node_kinds():
    plan = compile_spec("specs/ensemble-judge.yaml")
    assert plan.users("candidates") == ("final",) and plan.users("final") == ()
    assert str(plan) == to_text(plan) and str(plan).startswith("plan ensemble-judge")
    assert [n.kind for n in plan.nodes] == [NodeKind.LLM, NodeKind.LLM] and plan.nodes[0].kind == "llm"
    assert isinstance(plan.nodes[1].inputs["candidates"], Ref)
    with pytest.raises(KeyError, match="has no node 'nosuch'"):
        plan.node("nosuch")


def test_sub_plans_are_plans_and_verified_with_the_parent_models():
    plan = compile_spec("tests/fixtures/map/main.yaml")
    node, sub = next(plan.subplans())
    assert isinstance(sub, Plan) and node.kind == NodeKind.MAP and "#item" in sub.inputs
    assert {n.id for n in plan.all_nodes()} >= {n.id for n in sub.nodes}
    bad = sub.replace(nodes=(sub.nodes[0].replace(params={**sub.nodes[0].params, "model": "nosuch"}),))
    broken = plan.replace(nodes=tuple(n.replace(subplan=bad) if n.id == node.id else n for n in plan.nodes))
    with pytest.raises(PlanError, match="unknown model binding 'nosuch'"):
        Executor(broken)


def test_a_pass_that_breaks_the_plan_is_named(monkeypatch):
    from ember_compiler.compiler import passes

    plan = compile_spec("specs/ensemble-judge.yaml", optimize=False)
    monkeypatch.setitem(passes.PASSES, "prune", lambda p: (p.replace(nodes=p.nodes[1:]), True))
    with pytest.raises(Exception, match=r"pass 'prune' failed after: \[\]: .*reads node 'candidates'"):
        run_passes(plan, enabled=["prune"])


def test_typed_expression_classes_are_frozen():
    import dataclasses

    for expr in (Input("q"), Ref("a", "b"), NodeRef("a"), Lit(1), ListOf(()), DictOf(()), Fmt(()), Guard("x", ())):
        field = dataclasses.fields(expr)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(expr, field, None)

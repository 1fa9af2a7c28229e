"""Lowering specs to plans: the node forms the runtime implements (see compiler/lower.py)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.exprs import Scope, lower_value, static
from ember_compiler.compiler.lower import lower, toposort
from ember_compiler.compiler.passes import run_passes
from ember_compiler.compiler.passes.prune import prune
from ember_compiler.errors import EmberError
from ember_compiler.ops.ensemble import EnsembleNode
from ember_compiler.ops.refine import RefineNode
from ember_compiler.spec.model import ModelBinding
from ember_compiler.testing.cases import CASES, compile_case, double_load_spec, lower_case, spec_loader
from ember_compiler.xcs.expr import Input
from ember_compiler.xcs.plan import Plan, PlanNode

pytestmark = pytest.mark.usefixtures("at_repo_root")  # node sources use the relative paths given


def forms(plan: Plan) -> dict[str, dict]:
    """Nodes without their source, keyed by id."""
    return {n.id: {k: v for k, v in n.to_json().items() if k not in ("id", "source")} for n in plan.nodes}


QUESTION = {"$in": "question"}
ALL_INPUTS = {"$dict": {"question": QUESTION, "choices": {"$in": "choices"}}}


# ------------------------------------------------------------------------------------------ ops


def test_ensemble_and_judge_forms():
    plan = lower_case("ensemble_judge")
    prompt = 'Question: {{ inputs.question }}\nThink briefly, then end with "Answer: <answer>".\n'
    assert forms(plan) == {
        "candidates": {
            "kind": "llm", "op": "ensemble",
            "inputs": {"vars": {"$dict": {"inputs": ALL_INPUTS}}},
            "params": {"model": "worker", "n": 5, "prompt": prompt},
            "outputs": ["responses", "answers", "usage"], "when": [],
        },
        "final": {
            "kind": "llm", "op": "judge",
            "inputs": {"question": QUESTION, "candidates": {"$ref": ["candidates", "responses"]}},
            "params": {"model": "judge"},
            "outputs": ["answer", "reasoning", "text"], "when": [],
        },
    }
    assert plan.to_json()["outputs"] == {"answer": {"$ref": ["final", "answer"]}}
    assert plan.inputs == {
        "question": {"type": "string", "default": None, "required": True},
        "choices": {"type": "array", "default": ["A", "B", "C", "D"], "required": False},
    }
    assert plan.models == {
        "worker": {"provider": "sim", "temperature": 0.8, "max_tokens": 64},
        "judge": {"provider": "sim", "model": "judge-1", "temperature": 0.0},
    }
    assert plan.name == "ensemble-judge" and plan.source == f"{CASES}/ensemble_judge.yaml"


def test_generate_vote_select_verify_first_forms():
    got = forms(lower_case("ops"))
    assert got["draft"] == {
        "kind": "llm", "op": "generate",
        "inputs": {"vars": {"$dict": {"inputs": ALL_INPUTS, "params": {"$lit": {"style": "terse"}}}}},
        "params": {"model": "worker", "n": 1, "system": "You are {{ params.style }}.",
                   "prompt": "Q: {{ inputs.question }} Options: {{ inputs.choices | join(', ') }}",
                   "extract": r"Answer: (\w+)"},
        "outputs": ["text", "answer", "usage"], "when": [],
    }
    assert got["tally"] == {
        "kind": "fn", "op": "vote", "inputs": {"candidates": {"$ref": ["samples", "answers"]}},
        "params": {"normalize": "lower"}, "outputs": ["answer", "counts", "confidence"], "when": [],
    }
    assert got["pick"] == {
        "kind": "llm", "op": "select",
        "inputs": {
            "question": {"$fmt": [QUESTION, " (be ", {"$lit": "terse"}, ")"]},
            "candidates": {"$list": [{"$ref": ["draft", "answer"]}, {"$ref": ["tally", "answer"]}]},
            "vars": {"$dict": {"inputs": ALL_INPUTS, "samples": {"$node": "samples"}}},
        },
        "params": {"model": "worker",
                   "prompt": "Pick one for {{ inputs.question }} among {{ samples.answers }}"},
        "outputs": ["answer", "index"], "when": [],
    }
    assert got["check"] == {
        "kind": "llm", "op": "verify",
        "inputs": {"question": QUESTION, "candidates": {"$ref": ["samples", "answers"]}},
        "params": {"model": "checker", "then": "vote", "fallback": "none"},
        "outputs": ["verdicts", "accepted", "answer"],
        "when": [{"$expr": "tally.confidence < 0.9", "vars": {"tally": {"$node": "tally"}}}],
    }
    assert got["best"] == {
        "kind": "fn", "op": "first",
        "inputs": {"candidates": {"$list": [{"$ref": ["check", "answer"]}, {"$ref": ["pick", "answer"]}]}},
        "params": {}, "outputs": ["value"], "when": [{"$ref": ["pick", "answer"]}],
    }


def test_template_vars_hold_only_what_templates_read():
    got = forms(lower_case("ops"))
    assert got["samples"]["inputs"]["vars"] == {
        "$dict": {"draft": {"$node": "draft"}, "inputs": ALL_INPUTS}
    }
    assert got["samples"]["params"]["n"] == 3


def test_varied_ensemble_parts_and_concat():
    got = forms(lower_case("varied"))
    assert list(got) == ["pool/small", "pool/large", "pool/small_2", "pool", "verified"]
    for part, model in (("pool/small", "small"), ("pool/large", "large"), ("pool/small_2", "small")):
        assert got[part] == {
            "kind": "llm", "op": "ensemble",
            "inputs": {"vars": {"$dict": {"inputs": {"$dict": {"question": QUESTION}}}}},
            "params": {"model": model, "n": 2, "prompt": "{{ inputs.question }}"},
            "outputs": ["responses", "answers", "usage"], "when": [],
        }
    assert got["pool"] == {
        "kind": "fn", "op": "concat",
        "inputs": {"parts": {"$list": [{"$node": "pool/small"}, {"$node": "pool/large"},
                                       {"$node": "pool/small_2"}]}},
        "params": {}, "outputs": ["responses", "answers", "usage"], "when": [],
    }


def test_refine_unrolls_into_guarded_rounds():
    got = forms(lower_case("refine"))
    assert list(got) == ["solved/prove1", "solved/check1", "solved/prove2", "solved/check2",
                         "solved/prove3", "solved/check3", "solved"]
    assert got["solved/prove1"] == {
        "kind": "llm", "op": "refine_prove", "inputs": {"question": QUESTION},
        "params": {"model": "prover", "round": 1}, "outputs": ["text", "answer", "usage"], "when": [],
    }
    assert got["solved/prove3"] == {
        "kind": "llm", "op": "refine_prove",
        "inputs": {"question": QUESTION, "previous": {"$ref": ["solved/prove2", "text"]},
                   "feedback": {"$ref": ["solved/check2", "text"]}},
        "params": {"model": "prover", "round": 3}, "outputs": ["text", "answer", "usage"],
        "when": [{"$expr": "not accepted", "vars": {"accepted": {"$ref": ["solved/check2", "accepted"]}}}],
    }
    assert got["solved/check2"] == {
        "kind": "llm", "op": "refine_check",
        "inputs": {"question": QUESTION, "candidate": {"$ref": ["solved/prove2", "answer"]}},
        "params": {"model": "verifier", "round": 2}, "outputs": ["accepted", "text"], "when": [],
    }
    assert got["solved"] == {
        "kind": "fn", "op": "refine_result",
        "inputs": {"proofs": {"$list": [{"$node": f"solved/prove{k}"} for k in (1, 2, 3)]},
                   "checks": {"$list": [{"$node": f"solved/check{k}"} for k in (1, 2, 3)]}},
        "params": {}, "outputs": ["answer", "rounds", "accepted"], "when": [],
    }


# ------------------------------------------------------------------------------------ networks


def test_network_nested_twice_is_inlined_with_namespaced_ids_and_models():
    plan = lower_case("nested")
    got = forms(plan)
    assert list(got) == ["outer/inner/samples", "outer/inner", "outer/tally", "outer", "final"]
    assert set(plan.models) == {"judge", "outer/worker", "outer/inner/worker"}
    assert plan.models["outer/inner/worker"] == {"provider": "sim", "accuracy": 0.6}
    mid_inputs = {"$dict": {"question": QUESTION, "hint": {"$lit": "think step by step"}}}
    guard = {"$expr": "inputs.hint != ''", "vars": {"inputs": mid_inputs}}
    q = {"$fmt": [QUESTION, " (", {"$lit": "think step by step"}, ")"]}
    assert got["outer/inner/samples"] == {
        "kind": "llm", "op": "ensemble",
        "inputs": {"vars": {"$dict": {
            "inputs": {"$dict": {"q": q, "k": {"$lit": 3}}},  # `with:` binding, then the default
            "params": {"$lit": {"n": 3}},
        }}},
        "params": {"model": "outer/inner/worker", "n": 3,
                   "prompt": "{{ inputs.q }} ({{ inputs.k }} tries, {{ params.n }} samples)"},
        "outputs": ["responses", "answers", "usage"],
        "when": [guard],  # the enclosing network node's guard
    }
    assert got["outer/inner"] == {
        "kind": "fn", "op": "pack",
        "inputs": {"values": {"$dict": {"answers": {"$ref": ["outer/inner/samples", "answers"]},
                                        "texts": {"$ref": ["outer/inner/samples", "responses"]}}}},
        "params": {}, "outputs": ["answers", "texts"], "when": [guard],
    }
    assert got["outer/tally"]["inputs"] == {"candidates": {"$ref": ["outer/inner", "answers"]}}
    assert got["outer"]["inputs"]["values"] == {"$dict": {
        "answer": {"$ref": ["outer/tally", "answer"]}, "backup": {"$ref": ["outer/inner", "texts"]}}}
    assert got["final"]["inputs"]["candidates"] == {
        "$list": [{"$ref": ["outer", "answer"]}, {"$ref": ["outer", "backup"]}]}


def test_sources_point_at_each_spec_node():
    plan = lower_case("nested")
    sources = {n.id: n.source for n in plan.nodes}
    assert sources["final"] == f"{CASES}/nested.yaml:17:3"
    assert sources["outer"] == f"{CASES}/nested.yaml:12:3"
    assert sources["outer/tally"] == f"{CASES}/parts/mid.yaml:19:3"
    assert sources["outer/inner"] == f"{CASES}/parts/mid.yaml:13:3"
    assert sources["outer/inner/samples"] == f"{CASES}/parts/leaf.yaml:16:3"


# -------------------------------------------------------------------------------- params, order


def test_params_in_static_fields_are_resolved():
    scope = Scope(prefix="", inputs={}, params={"n": 4, "rounds": 2, "t": 0.3}, models={},
                  nodes=frozenset())
    # model_construct: spec/model.py's `ge=` on `int | Ref` rejects references (see report)
    node = EnsembleNode.model_construct(op="ensemble", model="m", n="${params.n}", prompt="p")
    assert static(node.n, scope) == 4
    refine = RefineNode.model_construct(op="refine", max_rounds="${params.rounds}")
    assert static(refine.max_rounds, scope) == 2
    binding = ModelBinding.model_construct(provider="sim", temperature="${params.t}")
    assert static(binding.temperature, scope) == 0.3
    assert lower_value("${params.t}", scope).to_json() == {"$lit": 0.3}
    with pytest.raises(EmberError):
        static("${inputs.q}", scope)


def test_params_in_static_fields_from_a_spec():
    plan = lower_case("static_params")
    assert plan.node("samples").params["n"] == 4
    assert [n.id for n in plan.nodes if n.op == "refine_prove"] == ["solved/prove1", "solved/prove2"]
    assert plan.models["worker"]["temperature"] == 0.3


def test_values_lists_mappings_and_literals():
    scope = Scope(prefix="net/", inputs={"q": Input("q")}, params={}, models={}, nodes=frozenset())
    assert lower_value({"a": ["${x.y}", 1, True], "b": "plain"}, scope).to_json() == {"$dict": {
        "a": {"$list": [{"$ref": ["net/x", "y"]}, {"$lit": 1}, {"$lit": True}]},
        "b": {"$lit": "plain"},
    }}
    assert lower_value("Q: ${inputs.q}!", scope).to_json() == {"$fmt": ["Q: ", {"$in": "q"}, "!"]}


def test_topological_order_is_stable():
    plan = lower_case("order")
    assert [n.id for n in plan.nodes] == ["a", "b", "c", "d"]  # spec order: c, a, b, d


def test_toposort_rejects_cycles_and_unknown_nodes():
    a = PlanNode("a", "fn", "first", inputs={"candidates": {"$ref": ["b", "value"]}})
    b = PlanNode("b", "fn", "first", inputs={"candidates": {"$ref": ["a", "value"]}})
    with pytest.raises(EmberError, match="cycle"):
        toposort([a, b])
    with pytest.raises(EmberError, match="unknown"):
        toposort([a])


# ---------------------------------------------------------------------------- JSON and hashing


def test_plan_json_round_trip_and_hash():
    plan = compile_case("nested")
    text = json.dumps(plan.to_json())
    back = Plan.from_json(json.loads(text))
    assert back == plan and back.hash == plan.hash
    moved = plan.replace(source="elsewhere.yaml",
                         nodes=tuple(n.replace(source="elsewhere.yaml:1:1") for n in plan.nodes))
    assert moved.hash == plan.hash
    assert lower_case("nested").hash == plan.hash  # deterministic


def test_hash_changes_when_a_prompt_changes(tmp_path):
    source = Path(CASES, "ensemble_judge.yaml").read_text()
    edited = tmp_path / "edited.yaml"
    edited.write_text(source.replace("Think briefly", "Think carefully"))
    load = spec_loader()
    assert lower(*load(str(edited)), load_spec=load).hash != lower_case("ensemble_judge").hash


# ------------------------------------------------------------------------------------- passes


def test_prune_removes_unused_nodes_and_reports_them():
    lowered = lower_case("prune")
    assert [n.id for n in lowered.nodes] == ["used", "unused", "also_unused"]
    plan = run_passes(lowered)
    assert [n.id for n in plan.nodes] == ["used"]
    assert plan.passes == ("prune: removed 2 nodes (unused, also_unused)", "dedupe: no change",
                           "vote-cutoff: no change")
    assert plan.outputs == lowered.outputs and plan.inputs == lowered.inputs


def test_prune_without_change():
    plan = lower_case("refine")
    assert prune(plan) == (plan, False)
    assert run_passes(plan, enabled=["prune"]).passes == ("prune: no change",)
    assert run_passes(plan, enabled=()).passes == ()
    with pytest.raises(EmberError, match="unknown pass"):
        run_passes(plan, enabled=["nope"])


def test_compile_spec_loads_lowers_and_prunes(monkeypatch):
    try:
        import ember_compiler.compiler.check  # noqa: F401
    except ImportError:
        fake = types.ModuleType("ember_compiler.compiler.check")
        fake.load_spec = double_load_spec
        monkeypatch.setitem(sys.modules, "ember_compiler.compiler.check", fake)
    plan = compile_spec(f"{CASES}/prune.yaml")
    assert [n.id for n in plan.nodes] == ["used"]
    assert plan.passes[0] == "prune: removed 2 nodes (unused, also_unused)"
    raw = compile_spec(f"{CASES}/prune.yaml", optimize=False)
    assert len(raw.nodes) == 3 and raw.passes == ()

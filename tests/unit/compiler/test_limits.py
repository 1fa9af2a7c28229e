"""Issue #17 rows 8–11: size limits checked at validate time (E314–E316) without inlining anything,
compile linear in the inlined size, and the run-time limits (rounds, map fan-out)."""

from __future__ import annotations

import pytest

from ember_compiler import api
from ember_compiler.compiler import check as check_mod
from ember_compiler.compiler.check import validate_paths
from ember_compiler.errors import SpecInvalid, UsageError
from ember_compiler.spec.limits import MAX_DEPTH_CEILING, Limits

LEAF = """ember: 1
name: leaf
inputs: {question: {type: string, default: x}}
models: {w: {provider: sim}}
nodes:
  g: {op: generate, model: w, prompt: "{{ inputs.question }}"}
outputs: {answer: "${g.answer}"}
"""


def _codes(diags) -> list[str]:
    return sorted(d.code for d in diags if d.severity == "error")


def _level(name: str, sub: str, copies: int) -> str:
    nodes = "".join(f"  n{k}: {{op: network, spec: {sub}}}\n" for k in range(copies))
    return (f"ember: 1\nname: {name}\ninputs: {{question: {{type: string, default: x}}}}\nnodes:\n{nodes}"
            "outputs: {answer: \"${n0.answer}\"}\n")


def _chain(tmp_path, depth: int, copies: int = 1):
    """spec0.yaml -> spec1.yaml -> ... -> spec{depth}.yaml (a leaf), `copies` network nodes per level."""
    for i in range(depth):
        (tmp_path / f"spec{i}.yaml").write_text(_level(f"s{i}", f"spec{i + 1}.yaml", copies))
    (tmp_path / f"spec{depth}.yaml").write_text(LEAF)
    return tmp_path / "spec0.yaml"


def test_huge_counts_are_refused_at_validate_time(tmp_path):
    spec = tmp_path / "n.yaml"
    spec.write_text("ember: 1\nname: n\ninputs: {question: string}\nmodels: {w: {provider: sim}}\n"
                    "params: {rounds: 100000000}\nnodes:\n"
                    "  s: {op: ensemble, model: w, n: 1000000000, prompt: hi}\n"
                    "  r: {op: refine, prover: w, verifier: w, question: '${inputs.question}', "
                    "max_rounds: '${params.rounds}'}\n"
                    "outputs: {a: '${s.responses}', b: '${r.answer}'}\n")
    diags = validate_paths([spec])
    assert _codes(diags) == ["E314", "E314"]
    assert any("--size-limit n=N" in (d.hint or "") for d in diags)
    with pytest.raises(SpecInvalid):
        api.compile(spec)
    assert _codes(validate_paths([spec], limits=Limits(n=10**9, rounds=10**8, nodes=10**9, calls=10**10))) == []


def test_a_doubling_tree_of_subspecs_is_refused_without_inlining(tmp_path):
    top = _chain(tmp_path, 24, copies=2)  # 2^24 leaves once inlined
    diags = validate_paths([top])
    assert _codes(diags) == ["E315", "E315"]  # nodes and calls, reported once, at the top spec
    assert "16,777,21" in " ".join(d.message for d in diags)
    with pytest.raises(SpecInvalid) as info:
        api.compile(top)
    assert {d.code for d in info.value.diagnostics} == {"E315"}


def test_compile_loads_each_subspec_once(tmp_path, monkeypatch):
    top = _chain(tmp_path, 60)
    loads: list[str] = []
    real = check_mod.load_document

    def counting(path, *args, **kwargs):
        loads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(check_mod, "load_document", counting)
    plan = api.compile(top, limits=Limits(depth=MAX_DEPTH_CEILING))
    assert len(loads) == 61 and len(set(loads)) == 61  # the old compile re-validated every level's subtree
    assert sum(1 for n in plan.nodes if n.kind == "llm") == 1


def test_a_1000_deep_chain_is_a_clear_error(tmp_path):
    top = _chain(tmp_path, 1000)
    diags = validate_paths([top])
    assert "E316" in _codes(diags) and "E999" not in _codes(diags)
    with pytest.raises(SpecInvalid) as info:
        api.compile(top)
    assert "E316" in {d.code for d in info.value.diagnostics}


def test_the_depth_limit_has_a_ceiling():
    with pytest.raises(UsageError, match="cannot exceed"):
        Limits().with_items(["depth=1000"])
    with pytest.raises(UsageError, match="NAME=N"):
        Limits().with_items(["bogus=3"])
    assert Limits().with_items(["calls=5_000_000", "fanout=7"]) == Limits(calls=5_000_000, fanout=7)


def test_1000_rounds_run_without_recursion(tmp_path):
    spec = tmp_path / "r.yaml"
    spec.write_text("ember: 1\nname: r\ninputs: {question: string}\nmodels: {w: {provider: sim, accuracy: 0.9}}\n"
                    "nodes:\n  r: {op: refine, prover: w, verifier: w, question: '${inputs.question}', "
                    "max_rounds: 1000}\noutputs: {a: '${r.answer}'}\n")
    result = api.run(spec, {"question": "What is 2 + 2?"}, api.RunOptions(runs_dir=None))
    assert result.error is None, result.error  # the 1,998 skipped rounds finished without recursing


def test_a_map_over_too_many_items_fails_before_running_any(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("ember: 1\nname: m\ninputs: {items: array}\nmodels: {w: {provider: sim}}\nnodes:\n"
                    "  each: {op: map, over: '${inputs.items}', node: {op: generate, model: w, "
                    "prompt: '{{ inputs.item }}'}}\noutputs: {a: '${each.answers}'}\n")
    items = list(range(200_001))
    result = api.run(spec, {"items": items}, api.RunOptions(runs_dir=None))
    assert "fan-out limit of 100,000" in result.error and result.usage.calls == 0
    small = api.run(spec, {"items": items[:5]}, api.RunOptions(runs_dir=None, limits=Limits(fanout=5)))
    assert small.error is None and len(small.outputs["a"]) == 5


def test_a_literal_map_list_over_the_limit_is_refused_at_validate_time(tmp_path):
    spec = tmp_path / "m.yaml"
    spec.write_text("ember: 1\nname: m\nmodels: {w: {provider: sim}}\nnodes:\n"
                    "  each: {op: map, over: [1, 2, 3, 4], node: {op: generate, model: w, prompt: '{{ inputs.item }}'}}\n"
                    "outputs: {a: '${each.answers}'}\n")
    assert _codes(validate_paths([spec], limits=Limits(fanout=3))) == ["E314"]
    assert _codes(validate_paths([spec])) == []

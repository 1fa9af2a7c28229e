"""`ember import archon`: Archon's JSON layer configs become specs with the same structure and calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember_compiler import api
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.archon import convert
from ember_compiler.errors import UsageError
from ember_compiler.runs import run_plan
from ember_compiler.xcs.analysis import analyze

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "archon"


def _archon_calls(config: dict) -> int:
    """Calls per query as Archon makes them: samples per generator and fuser, one per critic and LLM ranker."""
    total = 0
    for layer in config["layers"]:
        for comp in layer:
            total += comp.get("samples", 1) if comp["type"] in ("generator", "fuser") else 1
    return total


@pytest.mark.parametrize("name", ["moa-lite", "moa-3-layers"])
def test_moa_configs_convert_with_the_same_calls_per_query_and_run_on_the_sim(tmp_path, name):
    config = json.loads((FIX / f"{name}.json").read_text())
    out = tmp_path / "spec.yaml"
    result = api.import_archon(FIX / f"{name}.json", out, sim=True)
    plan = compile_spec(out)
    assert result.archon_calls == result.ember_calls == analyze(plan).calls == _archon_calls(config)
    run = run_plan(plan, {"question": "Which letter?"}, runs_dir=None, example={"answer": "B"})
    assert run.error is None and run.usage.calls == _archon_calls(config) and run.outputs["answer"] in "ABCD"
    # each generator and fuser of a layer is its own binding, fusers read the whole previous layer
    layers = config["layers"]
    assert analyze(plan).depth == len(layers)
    last = plan.node(f"layer{len(layers)}_fuser")
    assert last.params["model"] == layers[-1][0]["model"].rsplit("/", 1)[-1].lower().replace(".", "_").replace("-", "_")


def test_a_real_config_keeps_its_models_and_providers():
    spec = api.import_archon(FIX / "moa-lite.json").spec
    binding = spec["models"]["wizardlm_2_8x22b"]
    assert binding == {"provider": "openai", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY",
                       "model": "microsoft/WizardLM-2-8x22B", "temperature": 0.7, "max_tokens": 2048}
    assert spec["nodes"]["layer1_generators"]["models"][0] == "wizardlm_2_8x22b"


def test_generators_critic_ranker_fusers_verifier_keep_critiques_aligned(tmp_path):
    result = api.import_archon(FIX / "general.json", tmp_path / "spec.yaml", sim=True)
    nodes = result.spec["nodes"]
    assert [n["op"] for n in nodes.values()] == ["ensemble", "critic", "rank", "fuse", "fuse", "fuse", "verify"]
    assert nodes["layer3_ranker"]["critiques"] == "${layer2_critic.critiques}" and nodes["layer3_ranker"]["k"] == 3
    assert nodes["layer4_fuser1"]["candidates"] == "${layer3_ranker.top}"
    assert nodes["layer4_fuser1"]["critiques"] == "${layer3_ranker.top_critiques}"
    assert nodes["layer5_fuser"]["candidates"] == ["${layer4_fuser1.text}", "${layer4_fuser2.text}"]
    # 8 samples (5 + 3, the models repeated per sample), critic, ranker, 2 + 1 fusers, and the verifier: one
    # call per candidate here, two in Archon -- which the notes say
    assert result.ember_calls == 8 + 1 + 1 + 3 + 1 and result.archon_calls == 8 + 1 + 1 + 3 + 2
    assert any("two calls per candidate" in n for n in result.notes)
    assert run_plan(compile_spec(tmp_path / "spec.yaml"), {"question": "q"}, runs_dir=None).error is None


def test_pairrm_ranks_pairwise_and_says_so():
    config = {"name": "x", "layers": [
        [{"type": "generator", "model": "a/m", "samples": 4}],
        [{"type": "ranker", "model": "llm-blender/PairRM", "top_k": 2}],
        [{"type": "fuser", "model": "a/m"}]]}
    result = convert(config, sim=True)
    assert result.spec["nodes"]["layer2_ranker"]["method"] == "pairwise"
    assert any("12 calls" in n for n in result.notes)


@pytest.mark.parametrize("config,message", [
    ({"layers": []}, "needs 'layers'"),
    ({"layers": [[{"type": "fuser", "model": "m"}]]}, "layer 1: a fuser needs candidates"),
    ({"layers": [[{"type": "generator", "model": "m"}], [{"type": "unit_test_evaluator", "model": "m"}]]},
     "layer 2: a unit_test_evaluator needs a unit_test_generator"),
    ({"layers": [[{"type": "generator", "model": "m"}, {"type": "critic", "model": "m"}]]},
     "layer 1 mixes critic and generator"),
    ({"layers": [[{"type": "generator", "model": "m"}], [{"type": "critic", "model": "m"}] * 2]},
     "2 critics in one layer"),
    ({"layers": [[{"type": "generatr", "model": "m"}]]}, "unknown type 'generatr'"),
    ({"layers": [[{"type": "generator", "model": "m", "samples": 0}]]}, "samples must be an integer >= 1"),
])
def test_what_ember_cannot_express_is_a_clear_error(config, message):
    with pytest.raises(UsageError, match=message):
        convert(config)


def test_unit_test_layers_generate_tests_and_score_each_candidate_against_them(tmp_path):
    result = api.import_archon(FIX / "unit-tests.json", tmp_path / "spec.yaml", sim=True)
    nodes = result.spec["nodes"]
    assert nodes["layer1_unit_tests"]["op"] == "generate" and "up to 5 unit tests" in nodes["layer1_unit_tests"]["prompt"]
    evaluator = nodes["layer3_unit_test_evaluator"]
    assert evaluator["op"] == "score" and evaluator["k"] == 2 and "{{ layer1_unit_tests.text }}" in evaluator["prompt"]
    assert nodes["layer4_fuser"]["candidates"] == "${layer3_unit_test_evaluator.top}"
    # 1 test generation, 6 samples, 6 evaluations, 1 fusion: the same in Archon
    assert result.ember_calls == result.archon_calls == 1 + 6 + 6 + 1
    run = run_plan(compile_spec(tmp_path / "spec.yaml"), {"question": "q"}, runs_dir=None)
    assert run.error is None and run.usage.calls == 14

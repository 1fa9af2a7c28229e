"""The SDK examples run, and the custom operator works the same from Python and from YAML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ember_compiler import jit, session
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "custom_operator"
EMBER = str(Path(sys.executable).parent / "ember")


@pytest.fixture
def router_module(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in ("run", "textops"):
        sys.modules.pop(name, None)
    import run

    yield run
    for name in ("run", "textops"):
        sys.modules.pop(name, None)


def test_yaml_validates_with_and_without_import_and_runs_from_anywhere(tmp_path):
    sys.modules.pop("textops", None)
    assert validate_paths([EXAMPLE / "router.yaml"]) == [] and "textops" not in sys.modules
    for args in (["validate", str(EXAMPLE / "router.yaml")], ["validate", "--import", str(EXAMPLE / "router.yaml")]):
        done = subprocess.run([EMBER, *args], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    done = subprocess.run([EMBER, "run", str(EXAMPLE / "router.yaml"), "-i", "question=What is 2 + 2?", "--json"],
                          capture_output=True, text=True, cwd=tmp_path)  # textops found next to the spec
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["outputs"]
    assert out["route"] == "math" and out["answer"] in "ABCD" and 0 < out["agreement"] <= 1


def test_python_and_yaml_give_the_same_plan_and_answers(router_module):
    net = router_module.KeywordRouter()
    fast = jit(net)
    assert fast.plan.hash == compile_spec(EXAMPLE / "router.yaml").hash
    for question, route in (("What is 3 times 4?", "math"), ("Who wrote Hamlet?", "general")):
        for seed in range(3):
            with session(seed=seed):
                eager = net(question=question)
            assert fast.run(question=question, seed=seed).output == eager and eager.route == route
        if route == "general":
            assert eager.agreement is None  # Tally read a skipped ensemble: skipped, as in the spec


@pytest.mark.parametrize("script", ["examples/sdk/networks.py", "examples/custom_operator/run.py"])
def test_example_scripts_run(script):
    done = subprocess.run([sys.executable, str(ROOT / script)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "same plan: True" in done.stdout or "plan SelfConsistency" in done.stdout

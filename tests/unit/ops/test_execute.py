"""`execute`: candidates run against tests (sandbox or sim); pass@k; the sim matches its formula."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, jit, ops
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths
from ember_compiler.eval.dataset import Row, load_rows
from ember_compiler.eval.metrics import parse_metrics, pass_at_k
from ember_compiler.ops.base import CallContext
from ember_compiler.ops.execute import build
from ember_compiler.providers.sandbox import run_program
from ember_compiler.runs import run_plan
from ember_compiler.runtime.cache import sample_keys
from ember_compiler.testing.clock import virtual_time
from ember_compiler.xcs.analysis import analyze

ROOT = Path(__file__).resolve().parents[3]

RUN = """ember: 1
name: code
inputs: {tests: array}
models:
  box: {provider: sandbox}
nodes:
  run:
    op: execute
    sandbox: box
    candidates:
      - "def inc(x):\\n    return x"
      - "Here it is:\\n```python\\ndef inc(x):\\n    return x + 1\\n```"
      - "def inc(x):\\n    return x + 1"
    tests: ${inputs.tests}
    cpu_s: 2
outputs: {answer: "${run.program}", passed: "${run.passed}", results: "${run.results}"}
"""


def test_execute_runs_each_candidate_and_answers_with_the_first_that_passes(tmp_path: Path):
    spec = tmp_path / "code.yaml"
    spec.write_text(RUN)
    result = run_plan(compile_spec(spec), {"tests": ["assert inc(1) == 2", "assert inc(-1) == 0"]}, runs_dir=None)
    assert result.error is None
    assert result.outputs["passed"] == [False, True, True]
    assert result.outputs["answer"] == "def inc(x):\n    return x + 1\n"  # the fenced block, not the prose
    assert [t["ok"] for t in result.outputs["results"][0]["tests"]] == [False, False]


@pytest.mark.parametrize("field,value,message,line", [
    ("cpu_s", 0, "nodes.run.cpu_s: must be >= 1, got 0", 15),
    ("memory_mb", "lots", "nodes.run.memory_mb", 15),
    ("sandbox", "nope", "undefined model 'nope'", 9),
])
def test_execute_fields_are_validated_with_positions(tmp_path: Path, field, value, message, line):
    spec = tmp_path / "code.yaml"
    spec.write_text(RUN.replace("    cpu_s: 2", f"    {field}: {value}") if field != "sandbox"
                    else RUN.replace("sandbox: box", f"sandbox: {value}"))
    errors = [d for d in validate_paths([spec]) if d.severity == "error"]
    assert len(errors) == 1 and message in errors[0].message, errors
    assert errors[0].line == line  # at the node's field, not the file's top


@pytest.mark.parametrize("n,c,k", [(10, 0, 1), (10, 3, 1), (10, 3, 5), (5, 5, 5), (20, 2, 10)])
def test_pass_at_k_is_the_unbiased_estimator(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_metric_reads_the_passed_output():
    (metric,) = parse_metrics(["pass@2"])
    assert metric.output == "passed" and metric.fn([True, False, False], None, {}) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 2 candidates"):
        metric.fn([True], None, {})


SIM = """ember: 1
name: code-sim
inputs: {{question: string}}
models:
  coder: {{provider: sim, accuracy: {p}}}
  box: {{provider: sim, tpr: {tpr}, fpr: {fpr}}}
nodes:
  write: {{op: ensemble, model: coder, n: {n}, prompt: "Write it: {{{{ inputs.question }}}}"}}
  run: {{op: execute, sandbox: box, candidates: "${{write.responses}}", tests: ["assert True"]}}
outputs: {{answer: "${{run.answer}}", passed: "${{run.passed}}"}}
"""


def test_execute_on_the_sim_passes_correct_candidates_with_tpr_and_wrong_ones_with_fpr(tmp_path: Path):
    p, tpr, fpr, n, rows_n = 0.4, 0.9, 0.15, 3, 2400
    spec = tmp_path / "sim.yaml"
    spec.write_text(SIM.format(p=p, tpr=tpr, fpr=fpr, n=n))
    rows = [Row(i, str(i), {"question": f"q{i}", "answer": "ABCD"[i % 4]}) for i in range(rows_n)]
    result = eval_plan_rows(spec, rows)
    # a candidate passes with q = p·tpr + (1−p)·fpr; the answer is right when the first to pass is right
    q = p * tpr + (1 - p) * fpr
    expected = p * tpr * (1 - (1 - q) ** n) / q
    sigma = math.sqrt(expected * (1 - expected) / rows_n)
    assert result.errors == 0 and result.usage.calls == rows_n * 2 * n
    assert abs(result.summary["metrics"]["exact"] - expected) < 1.96 * sigma, (result.summary, expected)  # the 95% interval
    # pass@1 averages c/n: its expectation is q
    assert abs(result.summary["metrics"]["pass@1"] - q) < 4 * math.sqrt(q * (1 - q) / (rows_n * n))


def eval_plan_rows(spec: Path, rows: list[Row]):
    from ember_compiler.eval.runner import eval_plan

    return eval_plan(compile_spec(spec), rows, seed=3, runs_dir=None, metrics=parse_metrics(["exact,pass@1"]))


def test_candidates_execute_in_parallel(tmp_path: Path):
    spec = tmp_path / "sim.yaml"
    spec.write_text(SIM.format(p=0.5, tpr=0.9, fpr=0.1, n=5).replace("fpr: 0.1}", "fpr: 0.1, latency_ms: 200}"))
    plan = compile_spec(spec)
    assert analyze(plan).calls == 10 and analyze(plan).depth == 2
    with virtual_time() as clock:
        result, took = clock.measure(lambda: run_plan(plan, {"question": "q"}, runs_dir=None, example={"answer": "B"}))
    assert result.error is None and len(result.outputs["passed"]) == 5
    assert took == pytest.approx(0.2)  # five sandbox runs at once: one run's latency


class CodeTested(Network):
    class Input(BaseModel):
        question: str
        tests: list = []
        choices: list[str] = ["A", "B", "C", "D"]

    class Output(BaseModel):
        answer: str | None
        passed: list[bool]

    def __init__(self) -> None:
        self.programs = ops.Ensemble(model=Model(name="coder", provider="sim", accuracy=0.5), n=4,
                                     prompt="{{ inputs.question }}\nReply with the function only, in one "
                                            "```python code block.")
        self.tested = ops.Execute(sandbox=Model(name="box", provider="sim", tpr=0.95, fpr=0.05), timeout_s=10,
                                  fallback="first")

    def forward(self, question, tests, choices):
        out = self.tested(candidates=self.programs().responses, tests=tests)
        return {"answer": out.answer, "passed": out.passed}


def test_the_sdk_execute_compiles_to_the_plan_of_its_yaml():
    spec = compile_spec(ROOT / "specs" / "sim" / "code-tests.yaml")
    assert jit(CodeTested(), name="code-tests-sim").plan.hash == spec.hash


def test_the_bundled_code_dataset_solutions_pass_their_tests_in_the_sandbox():
    rows = load_rows(ROOT / "specs" / "data" / "code.jsonl")
    assert len(rows) >= 5

    async def all_rows():
        return await asyncio.gather(*(run_program(r.data["solution"], r.data["tests"]) for r in rows))

    assert all(r["passed"] for r in asyncio.run(all_rows()))


def test_a_cached_sandbox_result_is_keyed_on_the_program_its_tests_and_limits(tmp_path: Path):
    spec = tmp_path / "code.yaml"
    spec.write_text(RUN)
    node = compile_spec(spec).node("run")

    def keys(tests, limits):
        ctx = CallContext(node.replace(params={**node.params, "limits": limits}), {"provider": "sandbox"}, False, {})
        return [sample_keys("sandbox", r) for r in build(ctx.node, {"candidates": ["x = 1"], "tests": tests}, ctx)]

    base = keys(["assert x == 1"], {})
    assert keys(["assert x == 1"], {}) == base
    assert keys(["assert x == 2"], {}) != base and keys(["assert x == 1"], {"cpu_s": 1}) != base

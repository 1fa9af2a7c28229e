"""`ember plan` (static estimate) and `ember validate --max-cost`."""

from __future__ import annotations

import asyncio
import json

from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.api import estimate
from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import load_rows
from ember_compiler.eval.runner import EvalJob

SPEC = """\
ember: 1
name: priced
inputs:
  question: string
  choices: {type: array, default: [A, B, C, D]}
models:
  worker: {provider: sim, accuracy: 0.6, price: {input_per_mtok: 1000, output_per_mtok: 4000}}
  judge: {provider: openai, model: gpt-4o-mini, max_tokens: 100, price: {input_per_mtok: 1, output_per_mtok: 2}}
nodes:
  samples: {op: ensemble, model: worker, n: 7, prompt: "Question: {{ inputs.question }}"}
  majority: {op: vote, candidates: "${samples.answers}"}
outputs:
  answer: ${majority.answer}
  confidence: ${majority.confidence}  # read: the vote keeps all its samples (no cut-off)
"""


def files(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": "x" * (10 * i), "answer": "A"}) + "\n"
                            for i in range(20)))
    return spec, data


def test_estimate_matches_the_sim_run_and_bounds_its_cost(tmp_path):
    spec, data = files(tmp_path)
    plan = compile_spec(spec)
    rows = load_rows(data)
    est = estimate(plan, rows)
    result = asyncio.run(EvalJob(plan, rows, runs_dir=None).run())
    assert est["dataset"]["calls"] == result.usage.calls == 140
    assert est["dataset"]["requests"] == result.usage.requests == 20
    assert est["dataset"]["output_tokens"] == result.usage.output_tokens  # the sim answers itself
    assert result.usage.input_tokens <= est["dataset"]["input_tokens"] <= result.usage.input_tokens + 4 * 20
    assert result.usage.cost_usd <= est["dataset"]["cost_usd"]
    assert est["per_run"]["calls"] == 7 and est["depth"] == 1 and est["width"] == 7


def test_remote_outputs_are_bounded_by_max_tokens(tmp_path):
    spec = tmp_path / "j.yaml"
    spec.write_text(SPEC.replace("""  majority: {op: vote, candidates: "${samples.answers}"}
outputs:
  answer: ${majority.answer}
  confidence: ${majority.confidence}  # read: the vote keeps all its samples (no cut-off)""", """  final: {op: judge, model: judge, question: "${inputs.question}", candidates: "${samples.responses}"}
outputs:
  answer: ${final.answer}"""))
    est = estimate(compile_spec(spec))
    assert est["nodes"]["final"]["output_tokens"] == 100 and est["nodes"]["final"]["calls"] == 1
    assert est["depth"] == 2 and est["per_run"]["calls"] == 8
    prompt_floor = 7 * len("Reasoning (sim).\nAnswer: A") // 4  # the judge reads the seven candidates
    assert est["nodes"]["final"]["input_tokens"] > prompt_floor


def test_cli_plan_and_validate_max_cost(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, data = files(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["plan", str(spec), "--data", str(data), "--json"], catch_exceptions=False)
    assert out.exit_code == 0 and json.loads(out.output)["rows"] == 20
    text = runner.invoke(app, ["plan", str(spec)], catch_exceptions=False)
    assert "per run: 7 calls (1 requests)" in text.output and "depth 1" in text.output
    assert not (tmp_path / ".ember").exists()  # nothing ran
    per_run = estimate(compile_spec(spec))["per_run"]["cost_usd"]
    low = runner.invoke(app, ["validate", str(spec), "--max-cost", str(per_run / 2)], catch_exceptions=False)
    assert low.exit_code == 1 and "exceeds --max-cost" in low.output
    high = runner.invoke(app, ["validate", str(spec), "--max-cost", str(per_run * 2)], catch_exceptions=False)
    assert high.exit_code == 0, high.output

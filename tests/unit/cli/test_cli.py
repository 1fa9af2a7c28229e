"""The `ember` command as users call it (DESIGN §7): outputs, JSON shapes, exit codes, run artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.testing.fixtures import invalid_cases

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "specs"


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # run artifacts land in tmp_path/.ember
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_validate_all_example_specs(cli):
    result = cli("validate", SPECS)
    assert result.exit_code == 0, result.output


def test_validate_reports_errors_with_positions_and_exit_1(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("ember: 1\nname: bad\nnodes:\n  a:\n    op: generate\n    model: nope\n    prompt: hi\n"
                   "outputs:\n  answer: ${a.answer}\n")
    result = cli("validate", bad)
    assert result.exit_code == 1
    assert f"{bad}:6:12: error:" in result.output
    as_json = cli("validate", bad, "--format", "json")
    assert as_json.exit_code == 1
    [diag] = json.loads(as_json.stdout)
    assert {diag["line"], diag["column"]} == {6, 12} and set(diag) >= {"file", "line", "column", "code", "message"}
    gh = cli("validate", bad, "--format", "github")
    assert gh.stdout.startswith(f"::error file={bad},line=6,col=12")


def test_run_json_shape_on_the_sim(cli):
    result = cli("run", SPECS / "sim" / "self-consistency.yaml", "--input", "question=2+2?", "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"outputs", "usage", "cost_usd", "calls", "wall_s", "run_id"}
    assert data["calls"] == 5 and data["requests"] == 1 and data["cost_usd"] == 0.0
    assert data["outputs"]["answer"] in "ABCD"
    again = json.loads(cli("run", SPECS / "sim" / "self-consistency.yaml", "-i", "question=2+2?", "--json",
                           "--seed", "3").stdout)
    assert again["outputs"] == data["outputs"]


def test_run_writes_result_and_trace_with_genai_attributes(cli, tmp_path):
    result = cli("run", SPECS / "sim" / "ensemble-judge.yaml", "--input", "question=q", "--json")
    run_id = json.loads(result.stdout)["run_id"]
    run_dir = tmp_path / ".ember" / "runs" / run_id
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["status"] == "ok" and saved["calls"] == 5
    spans = [json.loads(line) for line in (run_dir / "trace.jsonl").read_text().splitlines()]
    calls = [s for s in spans if s["kind"] == "CLIENT"]
    nodes = [s for s in spans if s["name"].startswith("node ")]
    roots = [s for s in spans if s["parent_span_id"] is None]
    assert len(calls) == 2 and len(nodes) == 2 and len(roots) == 1
    assert {"gen_ai.request.model", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
            "gen_ai.provider.name"} <= set(calls[0]["attributes"])
    assert {c["parent_span_id"] for c in calls} <= {n["span_id"] for n in nodes}


def test_run_human_output_shows_outputs_then_usage_line(cli):
    result = cli("run", SPECS / "sim" / "verifier-prover.yaml", "--input", "question=q")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("answer: ")
    assert "calls" in result.stderr and "tokens" in result.stderr and "trace:" in result.stderr


def test_run_usage_errors(cli):
    missing = cli("run", SPECS / "sim" / "single.yaml")
    assert missing.exit_code == 2 and "missing input 'question'" in missing.stderr
    unknown = cli("run", SPECS / "sim" / "single.yaml", "-i", "questoin=x")
    assert unknown.exit_code == 2 and "did you mean 'question'" in unknown.stderr
    bad_set = cli("run", SPECS / "sim" / "single.yaml", "-i", "question=x", "--set", "nosuch.n=3")
    assert bad_set.exit_code == 2


def test_set_overrides_params_and_fields(cli):
    base = ["run", SPECS / "sim" / "self-consistency.yaml", "-i", "question=q", "--json"]
    assert json.loads(cli(*base, "--set", "params.n=9").stdout)["calls"] == 9
    assert json.loads(cli(*base, "--set", "samples.n=3").stdout)["calls"] == 3


def test_compile_json_and_text(cli):
    result = cli("compile", SPECS / "sim" / "ensemble-judge.yaml")
    plan = json.loads(result.stdout)
    assert plan["hash"].startswith("sha256:") and {n["id"] for n in plan["nodes"]} == {"candidates", "final"}
    text = cli("compile", SPECS / "sim" / "ensemble-judge.yaml", "--format", "text").stdout
    assert text.startswith("plan ensemble-judge-sim") and "5 calls" in text


def test_graph_formats(cli):
    assert cli("graph", SPECS / "router.yaml").stdout.startswith("flowchart")
    assert "digraph" in cli("graph", SPECS / "router.yaml", "--format", "dot").stdout


def test_schema_matches_committed_file(cli):
    printed = json.loads(cli("schema").stdout)
    assert printed == json.loads((ROOT / "schemas" / "ember-spec.schema.json").read_text())


def test_eval_json_and_rows_file(cli, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"question": "a", "answer": "A"}\nnot json\n{"question": "b", "answer": "B"}\n{"answer": "C"}\n')
    result = cli("eval", SPECS / "sim" / "self-consistency.yaml", "--data", data, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 4 and summary["errors"] == 2 and summary["calls"] == 10
    assert 0.0 <= summary["metrics"]["accuracy"] <= 0.5
    rows = [json.loads(line) for line in
            (tmp_path / ".ember" / "runs" / summary["run_id"] / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    errors = [r for r in rows if "error" in r]
    assert any("invalid JSON" in r["error"] for r in errors) and any("question" in r["error"] for r in errors)


def test_failing_run_is_one_line_without_traceback(cli, tmp_path):
    spec = tmp_path / "remote.yaml"
    spec.write_text("ember: 1\nname: r\ninputs: {q: string}\nmodels:\n  m: {provider: openai, model: gpt-4o-mini, "
                    "api_key_env: EMBER_TEST_UNSET_KEY}\nnodes:\n  a: {op: generate, model: m, prompt: hi}\n"
                    "outputs: {answer: '${a.answer}'}\n")
    result = cli("run", spec, "-i", "q=x")
    assert result.exit_code == 1
    assert "EMBER_TEST_UNSET_KEY" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("case", invalid_cases(ROOT / "tests" / "fixtures" / "invalid"), ids=lambda c: c.path.name)
def test_validate_cli_exits_1_at_the_right_line_and_column(cli, case, monkeypatch):
    from ember_compiler.spec.codes import CODES

    case.patch(monkeypatch)
    result = cli("validate", *case.cli_args)
    assert result.exit_code == (1 if case.has_errors else 0), result.output
    for file, line, col, code in case.expected:
        assert f"{file}:{line}:{col}: {CODES[code].severity}: " in result.stdout and f"[{code}]" in result.stdout

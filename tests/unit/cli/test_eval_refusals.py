"""`ember eval` on a dataset where 10% of the samples are refusals (issue 12's acceptance): the summary
counts them (`refusals`, `empty`), and a row is wrong for them only when its whole answer node failed."""

from __future__ import annotations

import json

import pytest
from ember_cli.main import app
from typer.testing import CliRunner

from ember_compiler.testing.fake_server import KEY_ENV, FakeServer, binding


@pytest.fixture(scope="module")
def server():
    s = FakeServer(lifetime_s=120)
    yield s
    s.close()


def test_eval_counts_refusals_and_scores_only_failed_rows_wrong(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, "fake-key")
    spec = tmp_path / "vote.yaml"
    spec.write_text(f"""ember: 1
name: vote
inputs: {{question: string}}
models:
  m: {binding(server.url, extra=", price: {input_per_mtok: 0, output_per_mtok: 0}")}
nodes:
  ens: {{op: ensemble, model: m, n: 5, prompt: "{{{{ inputs.question }}}}"}}
  tally: {{op: vote, candidates: "${{ens.answers}}"}}
outputs: {{answer: "${{tally.answer}}", confidence: "${{tally.confidence}}"}}
""")
    # 20 rows x 5 samples: row 0 is refused 5 times (its vote has no answer: the row fails), rows 1-5 once
    # each (their votes still have 4 real answers) -> 10 refusals of 100 samples; row 6 has one empty reply
    marks = {0: " [refuse 5]", **dict.fromkeys(range(1, 6), " [refuse 1]"), 6: " [empty 1]"}
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"r{i}", "question": f"Question {i}?{marks.get(i, '')}", "answer": "A"})
                            + "\n" for i in range(20)))
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(spec), "--data", str(data), "--json", "--no-progress"],
                           catch_exceptions=False)
    summary = json.loads(result.output)
    assert (summary["rows"], summary["calls"], summary["refusals"], summary["empty"]) == (20, 100, 10, 1)
    assert summary["errors"] == 1 and summary["metrics"]["accuracy"] == 0.95  # 19 of 20: only row 0 is wrong
    run_dir = tmp_path / ".ember" / "runs" / summary["run_id"]
    assert json.loads((run_dir / "result.json").read_text())["refusals"] == 10
    rows = {r["id"]: r for r in map(json.loads, (run_dir / "rows.jsonl").read_text().splitlines())}
    assert rows["r0"]["error"] == ("node 'ens' (" + str(spec) + ":7:3) failed: model 'm' (openai fake): "
                                   "no answer in 5 samples (5 refused)")
    assert rows["r0"]["refusals"] == 5 and rows["r1"]["refusals"] == 1 and rows["r1"]["correct"] is True
    assert rows["r6"]["empty"] == 1 and "refusals" not in rows["r7"]

    text = runner.invoke(app, ["eval", str(spec), "--data", str(data), "--no-progress"], catch_exceptions=False)
    assert "rows: 20 scored of 20, 1 error; samples with no answer: 10 refused, 1 empty" in text.output

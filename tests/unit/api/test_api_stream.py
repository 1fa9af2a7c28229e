"""`api.run(..., on_text=...)`: the answer streams from the sim as from any provider."""

from __future__ import annotations

from pathlib import Path

from ember_compiler import api
from ember_compiler.runs.options import RunOptions

SIM = Path(__file__).resolve().parents[3] / "specs" / "sim"


def test_run_streams_the_answer_nodes_reply_and_returns_the_same_result(tmp_path):
    options = RunOptions(cache_mode="off", runs_dir=tmp_path)
    deltas: list[str] = []
    streamed = api.run(SIM / "ensemble-judge.yaml", {"question": "Which?"}, options, on_text=deltas.append)
    plain = api.run(SIM / "ensemble-judge.yaml", {"question": "Which?"}, options)
    assert streamed.error is None and streamed.outputs == plain.outputs
    assert len(deltas) > 1 and "".join(deltas).endswith(f"Answer: {streamed.outputs['answer']}")
    assert (streamed.usage.calls, streamed.usage.input_tokens, streamed.usage.output_tokens) == \
        (plain.usage.calls, plain.usage.input_tokens, plain.usage.output_tokens)


def test_run_never_calls_on_text_when_the_answer_is_a_vote(tmp_path):
    deltas: list[str] = []
    result = api.run(SIM / "self-consistency.yaml", {"question": "Which?"},
                     RunOptions(cache_mode="off", runs_dir=tmp_path), on_text=deltas.append)
    assert result.error is None and deltas == []

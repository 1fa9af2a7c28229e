"""Plan passes that cut calls without changing answers: `vote_cutoff` and `dedupe` (`prune`: test_lower)."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx2
import pytest

from ember_compiler.answers import vote
from ember_compiler.compiler import compile_spec
from ember_compiler.eval.dataset import Row
from ember_compiler.eval.runner import EvalJob
from ember_compiler.ops.vote import still_needed
from ember_compiler.runs import run_plan
from ember_compiler.testing.providers import KEY, Server

SC = """\
ember: 1
name: sc
inputs:
  question: string
  choices: {{type: array, default: [A, B, C, D]}}
models:
  worker: {{provider: sim, accuracy: {p}}}
nodes:
  samples: {{op: ensemble, model: worker, n: {n}, prompt: "Question: {{{{ inputs.question }}}}"}}
  majority: {{op: vote, candidates: "${{samples.answers}}"}}
outputs:
  answer: ${{majority.answer}}
{extra}"""


def cutoff_vote(seq: tuple[str, ...]) -> tuple[str | None, int]:
    """What `drive_cutoff` does, over a fixed sequence of sample answers."""
    counts: dict[str, int] = {}
    drawn = 0
    while (need := still_needed(counts, len(seq) - drawn)) > 0:
        for a in seq[drawn:drawn + need]:
            counts[a] = counts.get(a, 0) + 1
        drawn += need
    return vote([a for a, v in counts.items() for _ in range(v)])["answer"], drawn


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_cutoff_gives_the_full_vote_on_every_sequence_ties_included(n):
    for seq in itertools.product("ABC", repeat=n):
        answer, drawn = cutoff_vote(seq)
        assert answer == vote(list(seq))["answer"], seq
        assert drawn <= n
    assert cutoff_vote(("A",) * n)[1] == (n + 1) // 2  # unanimous: decided after ceil(n/2)


def test_still_needed_counts_the_tie_rule():
    assert still_needed({"A": 2, "B": 1}, 1) == 0  # B can tie at 2, but A was seen first
    assert still_needed({"B": 1, "A": 2}, 1) == 1  # B seen first would win a 2-2 tie
    assert still_needed({"A": 1}, 0) == 0 and still_needed({}, 4) == 2


def eval_rows(plan, rows, seed=5):
    job = EvalJob(plan, rows, seed=seed, runs_dir=None, capture=None)
    answers: dict[int, object] = {}
    result = asyncio.run(job.run(lambda r: answers.__setitem__(r["index"], r["outputs"]["answer"])))
    return result, answers


def test_cutoff_on_the_sim_same_answer_on_every_row_and_fewer_calls(tmp_path):
    spec = tmp_path / "sc.yaml"
    spec.write_text(SC.format(p=0.7, n=15, extra=""))
    rows = [Row(i, f"q{i}", {"question": f"q{i}", "answer": "ABCD"[i % 4],
                             **({"sim": {"accuracy": 0.4}} if i % 5 == 0 else {})}) for i in range(400)]
    on = compile_spec(spec, batch=True)
    off = compile_spec(spec, disable=["vote_cutoff"], batch=True)
    assert [n.op for n in on.nodes] == ["vote_cutoff"] and "vote-cutoff: fused 1" in on.passes[-1]
    assert [n.op for n in off.nodes] == ["ensemble", "vote"]
    full, full_answers = eval_rows(off, rows)
    cut, cut_answers = eval_rows(on, rows)
    assert cut_answers == full_answers  # every row
    assert cut.accuracy == full.accuracy
    assert full.usage.calls == 15 * 400
    assert cut.usage.calls <= 0.75 * full.usage.calls


@pytest.mark.parametrize("extra", ["  confidence: ${majority.confidence}\n",
                                   "  all: ${samples.responses}\n"])
def test_cutoff_leaves_a_vote_alone_when_more_is_read(tmp_path, extra):
    spec = tmp_path / "sc.yaml"
    spec.write_text(SC.format(p=0.5, n=5, extra=extra))
    plan = compile_spec(spec, batch=True)
    assert "vote_cutoff" not in [n.op for n in plan.nodes] and plan.passes[-1] == "vote-cutoff: no change"


DEDUPE = """\
ember: 1
name: dd
inputs: {question: string}
models:
  det: {provider: openai, model: gpt-4o-mini, temperature: 0}
  hot: {provider: openai, model: gpt-4o-mini, temperature: 0.7}
  sim: {provider: sim, temperature: 0}
nodes:
  a: {op: generate, model: det, prompt: "Q: {{ inputs.question }}"}
  b: {op: generate, model: det, prompt: "Q: {{ inputs.question }}"}
  c: {op: generate, model: hot, prompt: "Q: {{ inputs.question }}"}
  d: {op: generate, model: hot, prompt: "Q: {{ inputs.question }}"}
  s1: {op: generate, model: sim, prompt: "Q: {{ inputs.question }}"}
  s2: {op: generate, model: sim, prompt: "Q: {{ inputs.question }}"}
  after_a: {op: judge, model: det, question: "${inputs.question}", candidates: ["${a.text}", "${c.text}"]}
  after_b: {op: judge, model: det, question: "${inputs.question}", candidates: ["${b.text}", "${c.text}"]}
outputs:
  answer: ${a.answer}
  twin: ${b.answer}
  later: ${after_b.answer}
  c: ${c.answer}
  d: ${d.answer}
  s1: ${s1.answer}
  s2: ${s2.answer}
  after_a: ${after_a.answer}
"""


def test_dedupe_merges_identical_deterministic_calls_only(tmp_path, monkeypatch):
    spec = tmp_path / "dd.yaml"
    spec.write_text(DEDUPE)
    plan = compile_spec(spec)
    ids = [n.id for n in plan.nodes]
    assert "b" not in ids and "after_b" not in ids  # b = a, so after_b = after_a
    assert {"a", "c", "d", "s1", "s2", "after_a"} <= set(ids)
    assert plan.outputs["twin"].to_json() == {"$ref": ["a", "answer"]}
    assert plan.outputs["later"].to_json() == {"$ref": ["after_a", "answer"]}
    assert plan.passes[1] == "dedupe: merged 2 identical deterministic calls (b → a, after_b → after_a)"
    assert len(compile_spec(spec, disable=["dedupe"]).nodes) == 8

    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    def chat(req: httpx2.Request) -> httpx2.Response:
        prompt = json.loads(req.content)["messages"][-1]["content"]
        return httpx2.Response(200, json={"id": "x", "model": "gpt-4o-mini", "object": "chat.completion",
                                          "choices": [{"index": 0, "finish_reason": "stop", "message": {
                                              "role": "assistant", "content": f"Answer: {len(prompt)}"}}],
                                          "usage": {"prompt_tokens": 5, "completion_tokens": 2}})

    server = Server(chat)
    result = run_plan(plan, {"question": "q"}, runs_dir=None, transport=server.transport)
    assert result.error is None and len(server.requests) == 4  # a, c, d, after_a (the sims are in process)
    assert result.outputs["answer"] == result.outputs["twin"]


def test_vote_cutoff_is_for_batches_only(tmp_path):
    spec = tmp_path / "sc.yaml"
    spec.write_text(SC.format(p=0.5, n=5, extra=""))
    single = compile_spec(spec)  # one run waits for one round of samples, not several
    assert "vote_cutoff" not in [n.op for n in single.nodes]
    assert "vote_cutoff" in [n.op for n in compile_spec(spec, batch=True).nodes]


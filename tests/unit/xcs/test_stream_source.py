"""Which node's reply a plan's answer streams from (`analysis.stream_source`), and the executor attaching
`on_text` to that node's one request only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ember_compiler import api
from ember_compiler.providers.base import Completion
from ember_compiler.xcs.analysis import stream_source
from ember_compiler.xcs.executor import Executor

ROOT = Path(__file__).resolve().parents[3]
SIM = ROOT / "specs" / "sim"
HEAD = "ember: 1\nname: s\ninputs:\n  question: string\nmodels:\n  m: {provider: sim}\n"


def plan_of(tmp_path: Path, body: str, name: str = "s.yaml") -> object:
    path = tmp_path / name
    path.write_text(HEAD + body)
    return api.compile(path)


class Sink:
    """Answers each request with two pieces of text, streamed to its `on_text` when it has one."""

    def __init__(self, verdict: str = "no") -> None:
        self.streamed: list[str] = []  # node ids whose request had on_text
        self.verdict = verdict  # what every verifier says

    def supports_n(self, binding):
        return True

    async def complete(self, request, priority, row):
        text = f"About {request.meta['node_id']}.\nAnswer: X"
        if request.meta.get("role") == "verify":
            text = f"Verdict: {self.verdict}"
        if request.on_text is not None:
            self.streamed.append(request.meta["node_id"])
            for piece in ("About ", text[6:]):
                request.on_text(piece)
        return Completion(texts=[text] * request.n, input_tokens=3, output_tokens=2)


def execute(plan, on_text, verdict="no"):
    sink = Sink(verdict)
    outputs, _ = asyncio.run(Executor(plan).execute(sink, {"question": "q", "choices": ["A", "B"]},
                                                    {"seed": 0, "example_id": "e"}, on_text=on_text))
    return sink.streamed, outputs


@pytest.mark.parametrize(("spec", "source"), [
    ("single.yaml", "answer"),  # generate
    ("ensemble-judge.yaml", "final"),  # judge over an ensemble
    ("self-consistency.yaml", None),  # a vote
    ("best-of-n-verify.yaml", None),  # a verifier's choice among candidates
    ("verifier-prover.yaml", "solved/prove3"),  # refine: the last round, the answer whenever it runs
    ("router.yaml", None),  # the first of guarded branches
    ("network-of-networks.yaml", None),  # a vote over networks
])
def test_the_example_specs_stream_from_their_answer_node(spec, source):
    assert stream_source(api.compile(SIM / spec)) == source


def test_the_answer_node_alone_gets_on_text_and_its_deltas_make_its_text(tmp_path):
    deltas: list[str] = []
    streamed, outputs = execute(api.compile(SIM / "ensemble-judge.yaml"), deltas.append)
    assert streamed == ["final"]
    assert "".join(deltas) == "About final.\nAnswer: X" and outputs["answer"] == "X"


def test_a_plan_whose_answer_is_no_single_call_never_calls_on_text():
    deltas: list[str] = []
    streamed, _ = execute(api.compile(SIM / "self-consistency.yaml"), deltas.append)
    assert streamed == [] and deltas == []


def test_the_only_output_streams_when_there_is_no_answer_output(tmp_path):
    plan = plan_of(tmp_path, "nodes:\n  a: {op: generate, model: m, prompt: 'Q {{ inputs.question }}'}\n"
                             "outputs:\n  reply: ${a.text}\n")
    assert stream_source(plan) == "a"
    two = plan_of(tmp_path, "nodes:\n  a: {op: generate, model: m, prompt: 'Q'}\n"
                            "outputs:\n  reply: ${a.text}\n  again: ${a.answer}\n", "two.yaml")
    assert stream_source(two) is None  # neither `answer` nor an only output: nothing is "the answer"


def test_a_port_not_read_from_the_reply_text_does_not_stream(tmp_path):
    plan = plan_of(tmp_path, "nodes:\n  a: {op: generate, model: m, prompt: 'Q'}\noutputs:\n  answer: ${a.usage}\n")
    assert stream_source(plan) is None


def test_the_answer_streams_through_a_network(tmp_path):
    (tmp_path / "inner.yaml").write_text(HEAD + "nodes:\n  g: {op: generate, model: m, prompt: 'Q'}\n"
                                                "outputs:\n  answer: ${g.answer}\n")
    plan = plan_of(tmp_path, "nodes:\n  sub: {op: network, spec: inner.yaml, with: {question: '${inputs.question}'}}\n"
                             "outputs:\n  answer: ${sub.answer}\n", "outer.yaml")
    assert stream_source(plan) == "sub/g"
    deltas: list[str] = []
    streamed, _ = execute(plan, deltas.append)
    assert streamed == ["sub/g"] and "".join(deltas) == "About sub/g.\nAnswer: X"


def test_a_skipped_answer_node_never_calls_on_text(tmp_path):
    plan = plan_of(tmp_path, "nodes:\n  a: {op: generate, model: m, prompt: 'Q', when: 'false'}\n"
                             "outputs:\n  answer: ${a.answer}\n")
    deltas: list[str] = []
    assert stream_source(plan) == "a"
    streamed, _ = execute(plan, deltas.append)
    assert streamed == [] and deltas == []


def test_without_on_text_nothing_streams():
    streamed, _ = execute(api.compile(SIM / "single.yaml"), None)
    assert streamed == []



def test_refine_streams_its_last_round_only_when_that_round_runs():
    plan = api.compile(SIM / "verifier-prover.yaml")
    deltas: list[str] = []
    streamed, outputs = execute(plan, deltas.append, verdict="no")  # every round rejected: all three run
    assert streamed == ["solved/prove3"] and "".join(deltas) == "About solved/prove3.\nAnswer: X"
    deltas.clear()
    streamed, outputs = execute(plan, deltas.append, verdict="yes")  # round 1 accepted: its answer, unstreamed
    assert streamed == [] and deltas == [] and outputs["answer"] == "X"

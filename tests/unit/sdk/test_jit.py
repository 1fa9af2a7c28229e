"""`jit`: tracing Python networks into the same plan as a spec, running it in parallel, `to_spec`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, NotTraceable, Operator, jit, ops, session, when
from ember_compiler.compiler import compile_spec
from ember_compiler.compiler.check import validate_paths
from ember_compiler.sdk.operator import OperatorError
from ember_compiler.spec.limits import Limits
from ember_compiler.testing.clock import virtual_time

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "examples" / "sdk"))
import networks  # noqa: E402  (examples/sdk/networks.py)

SIM200 = Model(provider="sim", latency_ms=200)


class Q(BaseModel):
    question: str


class A(BaseModel):
    answer: str | None


@pytest.mark.parametrize("cls", networks.EXAMPLES, ids=lambda c: c.__name__)
def test_to_spec_round_trip_gives_the_same_plan_hash(cls, tmp_path):
    fast = jit(cls())
    path = tmp_path / "spec.yaml"
    text = fast.to_spec(path)
    assert path.read_text() == text
    outside = Limits(allow_outside=True)  # NetworkOfNetworks includes specs/sim/single.yaml, outside tmp_path
    assert [d for d in validate_paths([path], limits=outside) if d.severity == "error"] == []
    assert compile_spec(path, limits=outside).hash == fast.plan.hash


@pytest.mark.parametrize(("cls", "spec"), [(networks.SelfConsistency, "self-consistency"),
                                           (networks.Router, "router")])
def test_python_twins_compile_to_the_committed_specs_plans(cls, spec):
    path = ROOT / "specs" / "sim" / f"{spec}.yaml"
    assert jit(cls(), name=f"{spec}-sim").plan.hash == compile_spec(path).hash


def test_a_spec_loaded_into_a_network_is_a_network_node_and_runs():
    plan = jit(networks.NetworkOfNetworks()).plan
    assert plan.node("from_yaml").op == "pack" and plan.node("from_yaml/answer").kind == "llm"
    assert plan.node("consistent_samples").params["n"] == 3  # nested Python networks are inlined


@pytest.mark.parametrize("cls", networks.EXAMPLES, ids=lambda c: c.__name__)
def test_eager_and_jit_agree_on_the_sim(cls):
    net = cls()
    for seed in (0, 1, 2):
        with session(seed=seed, example={"answer": "B"}):
            eager = net(question="Which?")
        traced = jit(net).run(question="Which?", seed=seed, example={"answer": "B"}).output
        assert eager == traced, seed


class Eight(Network):
    Input, Output = Q, A

    def __init__(self, model=SIM200, n=8):
        self.askers = [ops.Generate(model=model, prompt=f"{i}: {{{{ question }}}}") for i in range(n)]
        self.vote = ops.Vote()

    def forward(self, question):
        return {"answer": self.vote(candidates=[a(question=question).answer for a in self.askers]).answer}


def test_independent_calls_run_in_parallel_and_sequential_is_the_baseline():
    with virtual_time() as clock:  # the sim's 200 ms are virtual: the durations below are exact
        fast, slow = jit(Eight()), jit(Eight(), scheduler="sequential")
        fast(question="q")  # trace outside the timing
        assert len([n for n in fast.plan.nodes if n.kind == "llm"]) == 8
        _, parallel = clock.measure(lambda: fast(question="q"))
        _, sequential = clock.measure(lambda: slow(question="q"))
    assert parallel == pytest.approx(0.2)  # 8 calls of 200 ms at once
    assert sequential == pytest.approx(0.2 * 8)  # one at a time


class Echo(Operator):
    cheap = True
    Input = Q

    class Output(BaseModel):
        text: str

    def forward(self, question):
        return {"text": question.upper()}


class EchoNet(Network):
    Input = Q

    class Output(BaseModel):
        text: str

    def __init__(self):
        self.echo = Echo()

    def forward(self, question):
        return {"text": self.echo(question=question).text}


def test_a_traced_plan_never_replays_results_from_tracing():
    fast = jit(EchoNet())
    assert fast(question="a").text == "A"
    assert fast(question="b").text == "B"  # proxies, not recorded values
    assert fast.plan.node("echo").to_json()["inputs"] == {"question": {"$in": "question"}}


def _line_of(marker: str) -> int:
    lines = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line and "_line_of" not in line)


class Branchy(Network):
    Input, Output = Q, A

    def __init__(self):
        self.ask = ops.Generate(model=Model(provider="sim"), prompt="{{ question }}")

    def forward(self, question):
        first = self.ask(question=question)
        if first.answer == "A":  # BRANCH-HERE
            return {"answer": "yes"}
        return {"answer": first.answer}


class Loopy(Branchy):
    def forward(self, question):
        for text in self.ask(question=question).text:  # LOOP-HERE
            return {"answer": text}


class Formats(Branchy):
    def forward(self, question):
        first = self.ask(question=question)
        return self.ask(question=f"again: {first.answer}")  # FORMAT-HERE


class Sized(Branchy):
    def forward(self, question):
        return {"answer": "x" * len(self.ask(question=question).text)}  # LEN-HERE


@pytest.mark.parametrize(("cls", "marker", "words"), [
    (Branchy, "BRANCH-HERE", "branches on a model output"),
    (Loopy, "LOOP-HERE", "iterates over a traced value"),
    (Formats, "FORMAT-HERE", "formats a traced value"),
    (Sized, "LEN-HERE", "len()"),
])
def test_branching_on_model_output_is_reported_with_function_and_line(cls, marker, words):
    with pytest.raises(NotTraceable) as info:
        jit(cls()).plan  # noqa: B018
    message = str(info.value)
    assert f"{cls.__name__}.forward ({__file__}:{_line_of(marker)})" in message and words in message
    if cls is Branchy:
        assert "with when(cond):" in message and "plain Operator" in message


def test_branchy_network_still_runs_eagerly():
    assert Branchy()(question="q").answer in {"yes", "B", "C", "D"}


class Guarded(Network):
    Input, Output = Q, A

    def __init__(self):
        sim = Model(provider="sim", choices=["x", "y"])
        self.route = ops.Generate(model=sim, prompt="{{ question }}")
        self.check = ops.Generate(model=sim, prompt="check {{ question }}")
        self.then = ops.Generate(model=Model(provider="sim"), prompt="{{ question }}")
        self.pick = ops.First()

    def forward(self, question):
        route, check = self.route(question=question), self.check(question=question)
        with when((route.answer == "x") & (check.answer == "y")):  # eager: `&` of two bools
            both = self.then(question=question)
        with when(route.answer), when(check.answer == "x"):
            nested = self.then(question=question)
        return {"answer": self.pick(candidates=[both.answer, nested.answer]).value}


def test_conditions_lower_to_when_guards():
    plan = jit(Guarded()).plan
    assert plan.node("then").when[0].source == "(route.answer == 'x') and (check.answer == 'y')"
    assert plan.node("then_2").when[0].source == "route.answer and (check.answer == 'x')"
    for seed in range(4):  # the guards decide what runs, eagerly and traced alike
        with session(seed=seed):
            eager = Guarded()(question="q")
        assert jit(Guarded()).run(question="q", seed=seed).output == eager


def test_outputs_must_be_traced_values_and_ports_must_exist():
    class Constant(EchoNet):
        def forward(self, question):
            return {"text": "fixed"}

    class BadPort(EchoNet):
        def forward(self, question):
            return {"text": self.echo(question=question).txt}

    with pytest.raises(OperatorError, match="output 'text' is str 'fixed'"):
        jit(Constant()).plan  # noqa: B018
    with pytest.raises(OperatorError, match=r"Echo has no output 'txt' \(outputs: text\)"):
        jit(BadPort()).plan  # noqa: B018


def test_jit_of_a_single_op_and_of_a_custom_operator():
    ask = ops.Generate(model=Model(provider="sim"), prompt="Q: {{ question }} / {{ inputs.context }}")
    fast = jit(ask)
    assert set(fast.traced.input_model.model_fields) == {"question", "context"}
    assert fast(question="q", context="c").answer in "ABCD"
    one = jit(Echo())
    assert [n.kind for n in one.plan.nodes] == ["python"] and one(question="z").text == "Z"


def test_unportable_networks_refuse_to_write_yaml():
    class Local(Operator):
        Input, Output = Q, A

        def forward(self, question):
            return {"answer": question}

    class Net(EchoNet):
        Output = A

        def __init__(self):
            self.local = Local()

        def forward(self, question):
            return {"answer": self.local(question=question).answer}

    fast = jit(Net())
    assert fast(question="k").answer == "k"
    with pytest.raises(OperatorError, match="cannot be written as a spec"):
        fast.to_spec()


def test_unknown_scheduler_fails_at_jit():
    with pytest.raises(Exception, match="unknown scheduler 'fastest'"):
        jit(EchoNet(), scheduler="fastest")


def test_condition_operators_render_as_jinja():
    from ember_compiler.sdk.trace import Proxy

    a, b = Proxy("r", "answer"), Proxy("inputs", "k")
    assert (~(a != "y") | (b >= 2)).source == "(not (r.answer != 'y')) or (inputs.k >= 2)"
    assert (a == None).source == "r.answer == none"  # noqa: E711
    assert (a == ["x", True]).source == "r.answer == ['x', true]"

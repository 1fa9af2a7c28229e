"""`Operator`: typed input/output, static configuration, eager calls, sessions, built-in ops."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

import ember_compiler
from ember_compiler import Model, Network, Operator, jit, ops, session
from ember_compiler.errors import EmberError
from ember_compiler.sdk.operator import OperatorError
from ember_compiler.testing.clock import VirtualTimeLoop


class Text(BaseModel):
    text: str
    times: int = 1


class Loud(BaseModel):
    loud: str


class Shout(Operator):
    Input, Output = Text, Loud

    def __init__(self, suffix: str = "!", *, lower: bool = False) -> None:
        self.suffix, self.lower = suffix, lower

    def forward(self, text, times):
        return {"loud": (text.upper() + self.suffix) * times}


class AsyncShout(Shout):
    async def forward(self, text, times):
        await asyncio.sleep(0)
        return Loud(loud=text.upper())


class Broken(Shout):
    def forward(self, text, times):
        return {"loud": 42}


def test_public_names_come_from_the_top_level_package():
    for name in ("Operator", "ops", "jit", "vmap", "load", "Model", "Network", "when", "tree_map"):
        assert hasattr(ember_compiler, name), name
    assert ember_compiler.ops.Ensemble is ops.Ensemble


def test_calls_validate_input_and_output_naming_operator_and_field():
    assert Shout("?")(text="hi", times=2).loud == "HI?HI?"
    assert Shout()("hi").loud == "HI!"  # positional inputs in field order
    assert Shout()(Text(text="x")).loud == "X!"
    with pytest.raises(OperatorError, match="Shout: invalid input 'text': Input should be a valid string"):
        Shout()(text=3)
    with pytest.raises(OperatorError, match="Shout: invalid input 'text': Field required"):
        Shout()(times=2)
    with pytest.raises(OperatorError, match="Broken: invalid output 'loud': Input should be a valid string"):
        Broken()(text="x")
    assert AsyncShout()(text="y").loud == "Y"
    assert asyncio.run(AsyncShout().acall(text="z")).loud == "Z"


def test_constructor_arguments_are_recorded_as_given():
    op = Shout("?", lower=True)
    assert op.init_args.args == () and op.init_args.kwargs == {"suffix": "?", "lower": True}
    assert repr(op) == "Shout(suffix='?', lower=True)"
    with pytest.raises(OperatorError, match=r"Shout\(\.\.\.\): got an unexpected keyword argument 'loud'"):
        Shout(loud=True)


def test_models_are_validated_immutable_values():
    m = Model(provider="sim", accuracy=0.7)
    assert m == Model(provider="sim", accuracy=0.7) and hash(m) == hash(Model(provider="sim", accuracy=0.7))
    assert m.replace(accuracy=0.8).binding == {"provider": "sim", "accuracy": 0.8}
    with pytest.raises(EmberError, match="accuracy"):
        Model(provider="sim", accuracy=3)
    with pytest.raises(EmberError, match="temprature"):
        Model(provider="sim", temprature=0)
    with pytest.raises(AttributeError):
        m.name = "x"
    assert ops.Generate(model={"provider": "sim"}, prompt="p").model == Model(provider="sim")


def test_builtin_ops_run_eagerly_on_the_sim():
    sim = Model(provider="sim", accuracy=1.0)
    with session(example={"answer": "C"}) as s:
        samples = ops.Ensemble(model=sim, n=4, prompt="Q: {{ q }}")(q="which?")
        voted = ops.Vote()(candidates=samples.answers)
        judged = ops.Judge(model=sim)(question="which?", candidates=samples.responses)
        picked = ops.Select(model=sim)(question="which?", candidates=samples.responses)
        checked = ops.Verify(model=Model(provider="sim", tpr=1.0, fpr=0.0))(question="which?",
                                                                           candidates=["Answer: C", "Answer: A"])
        refined = ops.Refine(prover=sim, verifier=sim)(question="which?")
        first = ops.First()(candidates=[None, "x"])
    assert samples.answers == ["C"] * 4 and voted.answer == "C" and voted.confidence == 1.0
    assert judged.answer == "C" and picked.answer == "C"
    assert checked.verdicts == [True, False] and checked.answer == "C"
    assert refined.answer == "C" and first.value == "x"
    assert s.usage.calls == 4 + 1 + 1 + 2 + refined.rounds * 2


def test_template_variables_must_be_passed():
    with pytest.raises(OperatorError, match="its template reads 'q', which this call does not pass"):
        ops.Generate(model=Model(provider="sim"), prompt="{{ q }}")(question="x")
    with pytest.raises(OperatorError, match="exactly one of model= or models="):
        ops.Ensemble(prompt="p")
    with pytest.raises(OperatorError, match="n must be an integer >= 1"):
        ops.Ensemble(model=Model(provider="sim"), n=0, prompt="p")


class Pipeline(Network):
    Input = Text
    Output = Loud

    def __init__(self):
        self.first, self.second = Shout("."), AsyncShout()

    def forward(self, text, times):
        return {"loud": self.second(text=self.first(text=text).loud).loud}


def test_a_network_runs_eagerly_and_under_jit():
    assert Pipeline()(text="ab").loud == "AB."
    assert jit(Pipeline())(text="ab").loud == "AB."


def test_sync_call_inside_async_forward_says_to_await():
    class Wrong(AsyncShout):
        async def forward(self, text, times):  # a model call needs the loop this forward is blocking
            return {"loud": ops.Generate(model=Model(provider="sim"), prompt="p")().text}

    with pytest.raises(EmberError, match=r"await op.acall"):
        Wrong()(text="x")


def test_eager_calls_in_async_code_overlap():
    slow = Model(provider="sim", latency_ms=150)

    class Fan(Network):
        Input, Output = Text, Loud

        def __init__(self):
            self.askers = [ops.Generate(model=slow, prompt=f"{i} {{{{ text }}}}") for i in range(5)]

        async def forward(self, text, times):
            outs = await asyncio.gather(*(a.acall(text=text) for a in self.askers))
            return {"loud": "".join(o.answer for o in outs)}

    loop = VirtualTimeLoop()  # the sim's 150 ms are virtual: the duration is exact
    try:
        out = loop.run_until_complete(Fan().acall(text="q"))
        assert len(out.loud) == 5 and loop.time() == pytest.approx(0.15)  # five calls at once
    finally:
        loop.close()

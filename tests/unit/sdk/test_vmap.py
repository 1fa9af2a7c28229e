"""`vmap`: a batch through one runtime — order kept, gates shared, bounded concurrency."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from ember_compiler import Model, Network, Operator, jit, ops, vmap
from ember_compiler.sdk.operator import OperatorError
from ember_compiler.testing.clock import virtual_time

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "sdk"))
import networks  # noqa: E402


class Item(BaseModel):
    i: int


class Out(BaseModel):
    i: int


class Slow(Operator):
    """Later rows finish first; counts how many run at once."""

    Input, Output = Item, Out
    live = 0
    peak = 0

    async def forward(self, i):
        Slow.live += 1
        Slow.peak = max(Slow.peak, Slow.live)
        await asyncio.sleep(0.02 * (10 - i))
        Slow.live -= 1
        return {"i": i}


def test_results_keep_input_order_and_rows_in_flight_are_bounded():
    with virtual_time():  # the sleeps are virtual: which rows overlap does not depend on the machine
        Slow.peak = 0
        out = vmap(Slow(), row_concurrency=3)([{"i": i} for i in range(10)])
        assert [o.i for o in out] == list(range(10))
        assert Slow.peak == 3
        Slow.peak = 0
        assert [o.i for o in vmap(Slow())(i=list(range(10)))] == list(range(10))  # columns
        assert Slow.peak == 10
        assert [o.i for o in vmap(Slow())(list(range(4)))] == [0, 1, 2, 3]  # bare values, one-input operator


class Ask(Network):
    class Input(BaseModel):
        question: str

    class Output(BaseModel):
        answer: str | None

    def __init__(self, model):
        self.ask = ops.Generate(model=model, prompt="{{ question }}")

    def forward(self, question):
        return {"answer": self.ask(question=question).answer}


def test_rows_share_one_set_of_gates():
    limited = Model(provider="sim", latency_ms=100, limits={"concurrency": 2})
    rows = [{"question": f"q{i}"} for i in range(6)]
    with virtual_time() as clock:  # the sim's latency is virtual: the durations are exact
        run, took = clock.measure(lambda: vmap(Ask(limited)).run(rows))
        assert run.usage.calls == 6 and run.traced
        assert took == pytest.approx(0.1 * 3)  # 6 calls through one gate of 2: three waves of 100 ms
        free = Model(provider="sim", latency_ms=100)
        _, took = clock.measure(lambda: vmap(Ask(free))(rows))
        assert took == pytest.approx(0.1)  # all six at once


def test_scheduler_bounds_calls_across_rows():
    rows = [{"question": f"q{i}"} for i in range(4)]
    with virtual_time() as clock:
        _, took = clock.measure(lambda: vmap(Ask(Model(provider="sim", latency_ms=80)), scheduler="sequential")(rows))
    assert took == pytest.approx(0.08 * 4)  # one call at a time across the rows


def test_rows_carry_ground_truth_like_eval_datasets():
    rows = [{"question": f"q{i}", "answer": "B"} for i in range(60)]
    out = vmap(networks.SelfConsistency(Model(provider="sim", accuracy=0.9), n=5), seed=3)(rows)
    assert sum(o.answer == "B" for o in out) >= 55  # P(majority of 5 wrong) is about 1%
    again = vmap(networks.SelfConsistency(Model(provider="sim", accuracy=0.9), n=5), seed=3)(rows)
    assert again == out  # same seed, same draws


def test_untraceable_networks_run_eagerly_per_row():
    class Branchy(Ask):
        def forward(self, question):
            answer = self.ask(question=question).answer
            return {"answer": "is-a" if answer == "A" else answer}

    run = vmap(Branchy(Model(provider="sim")))([{"question": "x"}, {"question": "y"}])
    assert len(run) == 2 and all(o.answer in {"is-a", "B", "C", "D"} for o in run)
    assert vmap(Branchy(Model(provider="sim"))).run([{"question": "x"}]).traced is False


def test_a_failing_row_is_named():
    with pytest.raises(OperatorError, match=r"vmap row 1: .*invalid input 'question'"):
        vmap(Ask(Model(provider="sim")))([{"question": "ok"}, {"question": 3}])
    with pytest.raises(OperatorError, match="equal lengths"):
        vmap(Ask(Model(provider="sim")))(question=["a"], other=["b", "c"])


def test_vmap_accepts_a_jitted_operator():
    fast = jit(Ask(Model(provider="sim")))
    assert len(vmap(fast)(question=["a", "b", "c"])) == 3

"""The cluster's shared gates (runtime/cluster.py) without Ray: slots never leak, whatever the workers do;
and `--executor ray` without Ray installed says how to install it.

The scenarios run on a virtual-time loop: `await asyncio.sleep(0.01)` there means "once everything that
can happen in the next 10 ms has happened", whatever the load on the machine, and waits are exact."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from ember_compiler.errors import BudgetExceeded, UsageError
from ember_compiler.runtime.budget import Budget
from ember_compiler.runtime.cluster import RemoteBudget, RemoteGate, SharedLimits
from ember_compiler.testing.clock import run as virtual_run

SPEC = (1, None, None)  # one slot, no rate limits


class Method:
    """`actor.METHOD.remote(...)` on a local object: scheduled on the loop like an actor call, awaitable."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def remote(self, *args):
        async def call():
            await asyncio.sleep(0)
            out = self.fn(*args)
            return await out if asyncio.iscoroutine(out) else out
        return asyncio.ensure_future(call())


class LocalActor:
    def __init__(self, target: SharedLimits) -> None:
        self.target = target

    def __getattr__(self, name):
        return Method(getattr(self.target, name))


def test_a_cancelled_wait_passes_its_slot_on():
    async def main():
        shared = SharedLimits()
        assert await shared.enter("k", SPEC, 0, "a", "w1") is False
        waiting = asyncio.ensure_future(shared.enter("k", SPEC, 0, "b", "w2"))
        third = asyncio.ensure_future(shared.enter("k", SPEC, 0, "c", "w3"))
        await asyncio.sleep(0)
        shared.cancel("b")  # w2 gave up before its turn: when the slot comes, it goes to w3
        shared.leave("a")
        assert await waiting is None
        assert await third is False and shared.stats() == {"max_active": {"k": 1}, "held": 1}
    virtual_run(main())


def test_a_dead_workers_slots_are_released():
    async def main():
        shared = SharedLimits()
        spec = (2, None, None)
        assert await shared.enter("k", spec, 0, "a", "dead") is False  # granted; no rate limit in force
        assert await shared.enter("k", spec, 0, "b", "dead") is False
        other = asyncio.ensure_future(shared.enter("k", spec, 0, "c", "alive"))
        await asyncio.sleep(0)
        assert not other.done()
        assert shared.forget("dead") == 2
        assert await other is False and shared.stats()["held"] == 1
    virtual_run(main())


def test_remote_gate_bounds_all_workers_together():
    async def main():
        actor = LocalActor(SharedLimits())
        gates = [RemoteGate(actor, "k", 3, None, None, f"w{i}") for i in range(4)]  # four workers, one bound
        active = peak = 0

        async def call(gate):
            nonlocal active, peak
            await gate.acquire()
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.001)
            active -= 1
            gate.release()

        await asyncio.gather(*(call(g) for g in gates for _ in range(10)))
        await asyncio.sleep(0.01)
        assert peak == 3 and actor.target.stats() == {"max_active": {"k": 3}, "held": 0}

        # a worker cancelled while waiting leaves nothing held
        await gates[0].acquire()
        pending = asyncio.ensure_future(gates[1].acquire())
        pending2 = asyncio.ensure_future(gates[2].acquire())
        extra = asyncio.ensure_future(gates[3].acquire())
        await asyncio.sleep(0.01)
        extra.cancel()
        gates[0].release()
        await asyncio.gather(pending, pending2, return_exceptions=True)
        await asyncio.sleep(0.01)
        gates[1].release()
        gates[2].release()
        await asyncio.sleep(0.01)
        assert actor.target.stats()["held"] == 0
    virtual_run(main())


def test_remote_budget_stops_every_worker():
    async def main():
        actor = LocalActor(SharedLimits(Budget(max_calls=3)))
        budgets = [RemoteBudget(actor, Budget(max_calls=3), f"w{i}") for i in range(2)]
        from ember_compiler.providers.base import Completion, Request

        request = Request(binding="m", model={"provider": "sim", "max_tokens": 8}, messages=[{"content": "hi"}], n=1)
        held = [await budgets[i % 2].reserve(request, None) for i in range(3)]
        fourth = asyncio.ensure_future(budgets[1].reserve(request, None))  # waits: three calls in flight
        await asyncio.sleep(0.01)
        assert not fourth.done()
        for h in held:
            budgets[0].settle(h, Completion(texts=["A"], input_tokens=1, output_tokens=1), 0.0)
        with pytest.raises(BudgetExceeded):
            await fourth  # the three settled at one call each: no room for a fourth in the whole cluster
        assert budgets[1].exceeded and not budgets[0].exceeded  # the other learns it on its next reservation
        with pytest.raises(BudgetExceeded):
            await budgets[0].reserve(request, None)
        snapshot = actor.target.budget()
        assert snapshot.exceeded and snapshot.spent_calls == 3
    virtual_run(main())


def test_ray_executor_without_ray_says_how_to_install(monkeypatch, tmp_path):
    from ember_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.chdir(tmp_path)
    specs = Path(__file__).resolve().parents[3] / "specs"
    result = CliRunner().invoke(app, ["eval", str(specs / "sim" / "single.yaml"), "--data",
                                      str(specs / "data" / "sim-mcq.jsonl"), "--executor", "ray"])
    assert result.exit_code == 2
    assert "pip install 'ember-compiler[ray]'" in result.output and "Traceback" not in result.output


def test_ray_options_need_the_ray_executor(tmp_path, monkeypatch):
    from ember_cli.main import app
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    specs = Path(__file__).resolve().parents[3] / "specs"
    result = CliRunner().invoke(app, ["eval", str(specs / "sim" / "single.yaml"), "--data",
                                      str(specs / "data" / "sim-mcq.jsonl"), "--workers", "3"])
    assert result.exit_code == 2 and "--executor ray" in result.output
    with pytest.raises(UsageError):
        from ember_compiler.compiler import compile_spec
        from ember_compiler.eval.runner import EvalJob

        EvalJob(compile_spec(specs / "sim" / "single.yaml"), [], executor="dask")


def test_a_cool_down_from_one_worker_holds_the_others():
    async def main():
        actor = LocalActor(SharedLimits())
        a, b = (RemoteGate(actor, "k", 4, None, None, w) for w in ("w1", "w2"))
        await b.acquire()
        assert b.limiter.cooldown_until == 0.0  # nothing in force: the call goes without asking `admit`
        b.release()
        await a.acquire()
        a.limiter.cool_down(0.05)  # w1 got a 429
        a.release()
        await asyncio.sleep(0.01)
        await b.acquire()
        assert b.limiter.cooldown_until  # w2 must ask `admit`, which waits out w1's cool-down
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await b.limiter.acquire(0)
        assert loop.time() - t0 == pytest.approx(0.05 - 0.01)  # the rest of w1's cool-down
        b.release()
    virtual_run(main())


def test_a_dead_or_impatient_workers_reservations_do_not_block_the_budget():
    async def main():
        actor = LocalActor(SharedLimits(Budget(max_calls=4)))
        from ember_compiler.providers.base import Request

        request = Request(binding="m", model={"provider": "sim", "max_tokens": 8}, messages=[{"content": "hi"}], n=2)
        dead, live = RemoteBudget(actor, Budget(max_calls=4), "dead"), RemoteBudget(actor, Budget(max_calls=4), "live")
        await dead.reserve(request, None)  # two calls held by a worker that then dies
        await live.reserve(request, None)
        waiting = asyncio.ensure_future(live.reserve(request, None))  # no room until something settles
        await asyncio.sleep(0.01)
        assert not waiting.done()
        waiting.cancel()  # gave up (its row failed): nothing stays held for it
        await asyncio.sleep(0.01)
        actor.target.forget("dead")  # counted at its worst case: its calls may have been billed
        await asyncio.sleep(0.01)
        state = actor.target.budget()
        assert state.spent_calls == 2 and not state.exceeded
        assert actor.target._budget.in_flight == 1 and not actor.target._held.keys() - {"live:budget:0"}
    virtual_run(main())

"""The ready-set scheduler: nodes start when their inputs exist, guards skip, failures name the node."""

from __future__ import annotations

import asyncio

import pytest

from ember_compiler.errors import NodeFailed
from ember_compiler.providers.base import Completion
from ember_compiler.runtime.gates import Gate
from ember_compiler.testing.clock import run as virtual_run
from ember_compiler.testing.probes import InFlight
from ember_compiler.xcs.executor import Executor
from ember_compiler.xcs.plan import Plan, PlanNode

MODELS = {"m": {"provider": "fake"}}


class FakeSink:
    """Answers every request with `Answer: <node id>` after the node's configured delay (virtual time)."""

    def __init__(self, delays: dict[str, float] | None = None, fail: str | None = None) -> None:
        self.delays = delays or {}
        self.fail = fail
        self.calls = InFlight()

    def supports_n(self, binding):
        return True

    async def complete(self, request, priority, row):
        node = request.meta["node_id"]
        async with self.calls.call(node):
            await asyncio.sleep(self.delays.get(node, 0.0))
        if node == self.fail:
            raise RuntimeError("provider exploded")
        return Completion(texts=[f"Answer: {node}"] * request.n, input_tokens=3, output_tokens=2)


def gen(node_id: str, prompt: str = "p", vars: dict | None = None, when=()) -> PlanNode:
    return PlanNode(node_id, "llm", "generate", {"vars": {"$dict": vars or {}}},
                    {"model": "m", "n": 1, "prompt": prompt}, ("text", "answer", "usage"), tuple(when),
                    f"spec.yaml:1:{len(node_id)}")


def plan(*nodes: PlanNode, outputs: dict | None = None) -> Plan:
    return Plan("t", tuple(nodes), {}, outputs or {}, MODELS)


def run(p: Plan, sink: FakeSink):
    return virtual_run(Executor(p).execute(sink, {}, {"seed": 0, "example_id": "x"}))


def test_node_starts_when_its_own_inputs_are_ready_not_after_a_wave():
    # slow and fast are independent; after depends only on fast, so it must not wait for slow.
    p = plan(gen("slow"), gen("fast"), gen("after", "{{ fast.answer }}", {"fast": {"$node": "fast"}}),
             outputs={"a": {"$ref": ["after", "answer"]}, "s": {"$ref": ["slow", "answer"]}})
    sink = FakeSink({"slow": 0.4, "fast": 0.05, "after": 0.05})
    outputs, _ = run(p, sink)
    assert outputs == {"a": "after", "s": "slow"}
    calls = sink.calls
    assert calls.starts["slow"] == calls.starts["fast"] == 0.0
    assert calls.starts["after"] == pytest.approx(0.05)  # as soon as fast ended, while slow still runs
    assert calls.ends["after"] == pytest.approx(0.1) and calls.ends["slow"] == pytest.approx(0.4)


def test_independent_calls_overlap():
    p = plan(*(gen(f"n{i}") for i in range(10)))
    sink = FakeSink({f"n{i}": 0.2 for i in range(10)})
    run(p, sink)
    assert sink.calls.peak == 10  # all ten in flight at once
    assert set(sink.calls.starts.values()) == {0.0}
    assert max(sink.calls.ends.values()) == pytest.approx(0.2)  # one call's latency, not ten


def test_false_guard_skips_node_and_dependents_and_first_takes_the_other_branch():
    route = gen("route")
    yes = gen("yes", when=[{"$expr": "route.answer == 'route'", "vars": {"route": {"$node": "route"}}}])
    no = gen("no", when=[{"$expr": "route.answer != 'route'", "vars": {"route": {"$node": "route"}}}])
    after_no = PlanNode("after_no", "fn", "vote", {"candidates": {"$list": [{"$ref": ["no", "answer"]}]}},
                        {"normalize": "strip"}, ("answer", "counts", "confidence"))
    pick = PlanNode("pick", "fn", "first", {"candidates": {"$list": [{"$ref": ["no", "answer"]},
                                                                      {"$ref": ["yes", "answer"]}]}}, {}, ("value",))
    p = plan(route, yes, no, after_no, pick,
             outputs={"v": {"$ref": ["pick", "value"]}, "skipped": {"$ref": ["after_no", "answer"]}})
    outputs, results = run(p, FakeSink())
    assert outputs == {"v": "yes", "skipped": None}
    assert repr(results["no"]) == "SKIPPED" and repr(results["after_no"]) == "SKIPPED"


def test_failing_node_fails_the_run_naming_the_node_and_its_source():
    p = plan(gen("good"), gen("bad"))
    with pytest.raises(NodeFailed) as info:
        run(p, FakeSink(fail="bad"))
    assert "node 'bad'" in str(info.value) and "spec.yaml:1:3" in str(info.value)
    assert "provider exploded" in str(info.value)


def test_bad_template_names_its_node():
    p = plan(gen("broken", "{{ nothing.here }}"))
    with pytest.raises(NodeFailed, match="node 'broken'"):
        run(p, FakeSink())


def test_plan_json_round_trip_executes_the_same():
    p = plan(gen("a"), outputs={"x": {"$ref": ["a", "answer"]}})
    again = Plan.from_json(p.to_json())
    assert again.hash == p.hash
    assert run(again, FakeSink())[0] == {"x": "a"}


def test_gate_hands_free_slots_to_the_highest_priority_waiter():
    async def scenario():
        gate = Gate(1)
        order = []
        await gate.acquire()

        async def waiter(name, prio):
            await gate.acquire(prio)
            order.append(name)
            gate.release()

        tasks = [asyncio.create_task(waiter(n, p)) for n, p in [("low", 1), ("high", 5), ("mid", 3)]]
        await asyncio.sleep(0)
        gate.release()
        await asyncio.gather(*tasks)
        return order, gate.active

    order, active = asyncio.run(scenario())
    assert order == ["high", "mid", "low"] and active == 0


def test_gate_bounds_concurrency():
    async def scenario():
        gate, peak, live = Gate(3), [0], [0]

        async def call():
            await gate.acquire()
            live[0] += 1
            peak[0] = max(peak[0], live[0])
            await asyncio.sleep(0.01)
            live[0] -= 1
            gate.release()

        await asyncio.gather(*(call() for _ in range(20)))
        return peak[0]

    assert asyncio.run(scenario()) == 3


def test_a_finished_run_leaves_nothing_for_the_cycle_collector():
    # a server runs a plan per request: garbage in reference cycles piles up until the collector's passes,
    # which stall every request in flight; a run's state must go with reference counting alone
    import gc

    fan = [gen(f"s{i}") for i in range(3)]
    vote = PlanNode("vote", "fn", "vote", {"candidates": {"$list": [{"$ref": [f"s{i}", "answer"]} for i in range(3)]}},
                    {"normalize": "strip"}, ("answer", "counts", "confidence"))
    skipped = gen("never", when=[{"$expr": "vote.answer == 'nobody'", "vars": {"vote": {"$node": "vote"}}}])
    p = plan(*fan, vote, skipped, outputs={"a": {"$ref": ["vote", "answer"]}})
    executor, sink = Executor(p), FakeSink()

    async def runs(k: int) -> None:
        for _ in range(k):
            outputs, _ = await executor.execute(sink, {}, {"seed": 0, "example_id": "x"})
            assert outputs["a"] == "s0"

    async def main() -> list:
        await runs(3)  # first-use caches (templates, expressions) are not per-run garbage
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            await runs(20)
            gc.collect()
            return list(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()

    was = gc.isenabled()
    gc.disable()
    try:
        garbage = asyncio.run(main())
    finally:
        if was:
            gc.enable()
    assert not garbage, sorted({type(o).__name__ for o in garbage})


def test_a_node_result_is_taken_as_its_call_ends_not_a_loop_turn_later():
    # every loop turn a request waits for is time the other requests' events get ahead of it: a chain of
    # n calls that answer at once should take about n turns of the event loop, not 2n
    class Instant:
        def supports_n(self, binding):
            return True

        async def complete(self, request, priority, row):
            return Completion(texts=[f"Answer: {request.meta['node_id']}"], input_tokens=1, output_tokens=1)

    n = 10
    chain = [gen("c0")] + [gen(f"c{i}", "{{ prev.answer }}", {"prev": {"$node": f"c{i - 1}"}}) for i in range(1, n)]
    executor = Executor(plan(*chain, outputs={"a": {"$ref": [f"c{n - 1}", "answer"]}}))

    async def main() -> int:
        turns = 0

        async def tick() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1
        ticker = asyncio.ensure_future(tick())
        await asyncio.sleep(0)
        before = turns
        outputs, _ = await executor.execute(Instant(), {}, {"seed": 0, "example_id": "x"})
        assert outputs == {"a": f"c{n - 1}"}
        ticker.cancel()
        return turns - before

    assert asyncio.run(main()) <= n + 2

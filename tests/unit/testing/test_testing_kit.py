"""`ember_compiler.testing`, the fakes the other tests use: virtual time is exact and the library never
imports the package."""

from __future__ import annotations

import ast
import asyncio
import threading
import time
from pathlib import Path

import pytest

from ember_compiler.runtime.limits import Limiter, loop_time
from ember_compiler.testing.clock import VirtualTimeLoop, virtual_time
from ember_compiler.testing.clock import run as virtual_run
from ember_compiler.testing.probes import InFlight

ROOT = Path(__file__).resolve().parents[3]


def test_the_library_never_imports_the_testing_package():
    offenders = []
    for base in (ROOT / "ember_compiler", ROOT / "cli"):
        for path in base.rglob("*.py"):
            if "testing" in path.relative_to(ROOT).parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [("." * node.level) + (node.module or "")] if isinstance(node, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                              if n.startswith("ember_compiler.testing") or n.lstrip(".") == "testing"
                              or n.lstrip(".").startswith("testing.")]
    assert offenders == []


def test_sleeping_takes_no_real_time_and_the_virtual_time_is_exact():
    order = []

    async def sleeper(name, seconds):
        await asyncio.sleep(seconds)
        order.append((name, asyncio.get_running_loop().time()))

    async def main():
        await asyncio.gather(sleeper("hour", 3600), sleeper("second", 1), sleeper("day", 86400))

    with virtual_time() as clock:  # (a real day of sleeping would meet pytest's timeout)
        asyncio.run(main())
    assert order == [("second", 1.0), ("hour", 3600.0), ("day", 86400.0)] and clock.now == 86400.0


def test_timeouts_are_virtual_too():
    async def main():
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(30)
        return asyncio.get_running_loop().time()

    assert virtual_run(main()) == pytest.approx(5)


def test_work_in_a_thread_is_waited_for():
    release = threading.Event()

    def work():
        release.wait(10)
        return "done"

    async def main():
        thread = asyncio.ensure_future(asyncio.to_thread(work))
        timer = asyncio.ensure_future(asyncio.sleep(3600))
        await asyncio.sleep(0)
        assert not thread.done()
        release.set()
        assert await thread == "done"  # real work is awaited, not skipped by the jumping clock
        await timer
        return asyncio.get_running_loop().time()

    assert virtual_run(main()) == pytest.approx(3600)


def test_the_sdk_engine_is_virtual_inside_the_block_and_restored_after():
    from ember_compiler.sdk import engine

    before = engine.engine_loop()
    with virtual_time():
        inside = engine.engine_loop()
        assert isinstance(inside, VirtualTimeLoop) and inside is not before
    assert engine.engine_loop() is before and inside.is_closed()


def test_limiters_follow_the_loops_clock():
    async def main():
        limiter = Limiter()
        limiter.cool_down(2.5)
        start = loop_time()
        await limiter.acquire(0)
        return loop_time() - start

    assert virtual_run(main()) == pytest.approx(2.5)
    assert loop_time() == pytest.approx(time.monotonic(), abs=1)  # outside a loop: the monotonic clock


def test_in_flight_probe_counts_overlap_and_order():
    probe = InFlight()

    async def call(name, seconds):
        async with probe.call(name):
            await asyncio.sleep(seconds)

    async def main():
        await asyncio.gather(call("a", 0.3), call("b", 0.1), call("c", 0.2))
        await call("d", 0.1)

    virtual_run(main())
    assert probe.peak == 3 and probe.order == ["a", "b", "c", "d"]
    assert probe.ends == {"a": pytest.approx(0.3), "b": pytest.approx(0.1), "c": pytest.approx(0.2),
                          "d": pytest.approx(0.4)}
    assert probe.starts["d"] == pytest.approx(0.3)

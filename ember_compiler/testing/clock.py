"""Virtual time for tests: an event loop whose clock jumps to the next timer when nothing else can run.

Under `virtual_time()` every event loop made in the block (`asyncio.run`, `asyncio.new_event_loop`,
the ones inside `run_plan` and `EvalJob`, and the SDK's background engine loop) is a
`VirtualTimeLoop`. Its `time()` reads a shared `VirtualClock` that stands still while anything is
ready to run and, when the loop would block waiting for a timer, moves straight to that timer. So
`asyncio.sleep(0.2)` — the sim provider's `latency_ms`, a fake provider's delay — takes no real time
and the virtual time a run takes is exact: the length of its critical path, whatever the load on the
machine. Tests assert on that (``clock.now - t0 == pytest.approx(0.2)``: the eight 200 ms calls
overlapped), or on the order and overlap of calls (`InFlight`), never on the wall clock.

What stays real: I/O (a socket or pipe that is ready is served before time moves) and threads. While
work handed to a thread (`asyncio.to_thread`, a python operator's synchronous `forward`) is pending,
the loop waits up to `THREAD_GRACE_S` of real time for it before moving the clock, so a thread that
answers promptly sees no jump; timings of tests that mix threads and timers are then less exact.
`time.monotonic` is not virtual: a runtime whose rate limiter must follow virtual time gets
``Runtime(clock=loop_clock)``.

Test-only: nothing in the library imports `ember_compiler.testing`.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

THREAD_GRACE_S = 0.05


class VirtualClock:
    """The time shared by the virtual loops of one `virtual_time()` block (seconds, starts at 0)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    @property
    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        with self._lock:
            if when > self._now:
                self._now = when

    def measure(self, fn: Callable[[], Any]) -> tuple[Any, float]:
        """Call `fn()`; its result and the virtual seconds it took."""
        start = self._now
        value = fn()
        return value, self._now - start


class _JumpingSelector(selectors.BaseSelector):
    """The loop's selector: real I/O first; when the loop would wait for a timer, the clock moves."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._inner = selectors.DefaultSelector()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None or timeout <= 0:  # nothing scheduled (wait for I/O) or something due now
            return self._inner.select(timeout)
        events = self._inner.select(0)
        if not events and self._loop._thread_jobs:
            events = self._inner.select(min(timeout, THREAD_GRACE_S))
        if not events:
            self._loop._clock.advance_to(self._loop.time() + timeout)
        return events

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._inner.get_map()

    def close(self) -> None:
        self._inner.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):  # type: ignore[misc,valid-type]
    """A selector event loop on a `VirtualClock` (see the module docstring)."""

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self._clock = clock or VirtualClock()
        self._thread_jobs = 0
        super().__init__(_JumpingSelector(self))

    @property
    def clock(self) -> VirtualClock:
        return self._clock

    def time(self) -> float:
        return self._clock.now

    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> asyncio.Future:
        future = super().run_in_executor(executor, func, *args)
        self._thread_jobs += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _future: asyncio.Future) -> None:
        self._thread_jobs -= 1


class _Policy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._clock = clock

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return VirtualTimeLoop(self._clock)


def loop_clock() -> float:
    """The running loop's time (virtual under `virtual_time()`): a `Runtime(clock=...)` for rate limits."""
    return asyncio.get_running_loop().time()


@contextmanager
def virtual_time(start: float = 0.0) -> Iterator[VirtualClock]:
    """Every event loop made inside the block runs on one virtual clock, which the block yields.

    The SDK's engine (the loop synchronous operator calls run on) is a fresh virtual one for the block
    and the previous engine comes back after it.
    """
    clock = VirtualClock(start)
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_Policy(clock))
    from ember_compiler.sdk import engine  # the SDK's loop is swapped for the block

    with engine._engine_lock:
        saved, engine._engine = engine._engine, None
    try:
        yield clock
    finally:
        with engine._engine_lock:
            mine, engine._engine = engine._engine, saved
        asyncio.set_event_loop_policy(previous)
        if mine is not None:
            mine.loop.call_soon_threadsafe(mine.loop.stop)
            mine.thread.join(timeout=10)
            if not mine.thread.is_alive():
                mine.loop.close()


def run(coro: Any, *, clock: VirtualClock | None = None) -> Any:
    """`asyncio.run(coro)` on a virtual-time loop (a fresh clock unless one is given)."""
    loop = VirtualTimeLoop(clock)
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

"""Where SDK calls run: sessions (one runtime: providers, gates, usage) on an event loop.

NOTE: [Sync calls] Calling an operator from synchronous code (``net(question=...)``) needs an event
loop for its model calls, and nested calls in a synchronous ``forward`` must reach the *same*
runtime (one local llama.cpp server, one set of gates). So synchronous calls run their async work on
one background loop thread (the engine, started on first use), and the current session travels in a
context variable: ``asyncio.to_thread`` copies it into the worker thread that runs a python node's
synchronous forward, so operators called there share the run's runtime and usage. A synchronous call
made *on* the session's own loop thread would deadlock; it raises and says to ``await op.acall()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ember_compiler.errors import EmberError
from ember_compiler.runs import RunOptions, example_meta, make_runtime
from ember_compiler.runtime.usage import RowContext, Usage
from ember_compiler.xcs.scheduling import Scheduler, get_scheduler

T = TypeVar("T")


@dataclass
class Session:
    """One runtime on one loop, shared by every operator called inside it."""

    loop: asyncio.AbstractEventLoop
    sink: Any  # the Runtime (or any CallSink)
    meta: dict[str, Any]  # seed, example_id, truth, choices, sim (see runs.example_meta)
    row: Any = field(default_factory=RowContext)  # where usage lands
    scheduler: Scheduler = field(default_factory=lambda: get_scheduler(None))
    prefix: str = ""  # node-id prefix of eager calls (inside a python node: its id + "/")
    owned: bool = False  # whether closing the session closes the runtime
    prepared: set[int] = field(default_factory=set)  # ids of plans whose bindings were checked

    @property
    def usage(self) -> Usage:
        return self.row.usage

    def prepare(self, plan: Any) -> None:
        """Check a plan's bindings once before its first call (missing keys fail before any call)."""
        if id(plan) not in self.prepared and hasattr(self.sink, "prepare"):
            self.sink.prepare(plan)
            self.prepared.add(id(plan))


CURRENT: contextvars.ContextVar[Session | None] = contextvars.ContextVar("ember_session", default=None)


class _Engine:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ember-engine", daemon=True)
        self.thread.start()


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def engine_loop() -> asyncio.AbstractEventLoop:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine.loop


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _adopt(coro: Coroutine[Any, Any, T], ctx: contextvars.Context) -> T:
    # run `coro` as a task in the caller's context (its session, eager names, guards)
    return await asyncio.get_running_loop().create_task(coro, context=ctx)


def submit(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on ``loop`` (another thread's) from synchronous code, in the caller's context."""
    if _running_loop() is loop:
        coro.close()
        raise EmberError("a synchronous operator call inside async code on Ember's loop would block it: "
                         "use `await op.acall(...)` instead")
    return asyncio.run_coroutine_threadsafe(_adopt(coro, contextvars.copy_context()), loop).result()


def new_session(loop: asyncio.AbstractEventLoop, *, seed: int = 0, example: dict[str, Any] | None = None,
                inputs: dict[str, Any] | None = None, scheduler: Scheduler | str | None = None,
                sink: Any = None, example_id: str = "run") -> Session:
    policy = get_scheduler(scheduler)
    owned = sink is None
    if sink is None:
        sink = make_runtime(RunOptions(scheduler=policy))
    meta = example_meta(seed, example_id, inputs or {}, example)
    return Session(loop=loop, sink=sink, meta=meta, scheduler=policy, owned=owned)


async def close_session(session: Session) -> None:
    if session.owned and hasattr(session.sink, "aclose"):
        await session.sink.aclose()


def run_sync(make: Callable[[], Coroutine[Any, Any, T]], **session_args: Any) -> T:
    """Run ``make()`` from synchronous code: in the current session, else in a new one on the engine."""
    current = CURRENT.get()
    if current is not None and not session_args:
        return submit(current.loop, make())
    loop = engine_loop()
    session = new_session(loop, **session_args)
    token = CURRENT.set(session)
    try:
        return submit(loop, make())
    finally:
        CURRENT.reset(token)
        submit(loop, close_session(session))


async def run_async(make: Callable[[], Awaitable[T]], **session_args: Any) -> T:
    """Run ``make()`` from async code: in the current session if it lives on this loop, else in a new one."""
    current = CURRENT.get()
    loop = asyncio.get_running_loop()
    if current is not None and current.loop is loop and not session_args:
        return await make()
    session = new_session(loop, **session_args)
    token = CURRENT.set(session)
    try:
        return await make()
    finally:
        CURRENT.reset(token)
        await close_session(session)


@contextmanager
def session(*, seed: int = 0, example: dict[str, Any] | None = None,
            scheduler: Scheduler | str | None = None):
    """A runtime shared by every operator called inside the block (synchronous code).

    ``with session(seed=1) as s: net(question=q); print(s.usage.calls)`` — one set of gates, one
    local server, usage summed over the block. ``example`` carries ground truth for the sim
    (``{"answer": "B"}``) like a dataset row.
    """
    loop = engine_loop()
    s = new_session(loop, seed=seed, example=example, scheduler=scheduler)
    token = CURRENT.set(s)
    try:
        yield s
    finally:
        CURRENT.reset(token)
        submit(loop, close_session(s))

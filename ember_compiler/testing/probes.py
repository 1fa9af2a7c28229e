"""Probes for structural timing checks: how many calls overlapped and in which order they started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


class InFlight:
    """Counts what is inside `async with probe.call(name):` — the peak at once, starts and ends in order.

    `starts`/`ends` map each name to the loop's time (virtual under `virtual_time()`); `order` lists the
    names as they started.
    """

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.order: list[Any] = []
        self.starts: dict[Any, float] = {}
        self.ends: dict[Any, float] = {}

    @asynccontextmanager
    async def call(self, name: Any = None) -> AsyncIterator[None]:
        now = asyncio.get_running_loop().time
        self.live += 1
        self.peak = max(self.peak, self.live)
        self.order.append(name)
        self.starts[name] = now()
        try:
            yield
        finally:
            self.live -= 1
            self.ends[name] = now()

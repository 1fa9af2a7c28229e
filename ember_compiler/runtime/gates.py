"""Per-model concurrency gates with priority: among waiting calls the highest priority goes first.

The fast path (a free slot, nobody waiting) takes no await, so gates cost almost nothing when a model
is not saturated — which is most calls of a sim study. A gate exists per (provider, endpoint, model)
and carries that model's `Limiter` (rate buckets and cool-down, `limits.py`), which a call consults
after it got its slot.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from .limits import Limiter


class Gate:
    __slots__ = ("limit", "active", "_waiters", "_seq", "limiter")

    def __init__(self, limit: int, limiter: Limiter | None = None) -> None:
        self.limiter = limiter if limiter is not None else Limiter()
        self.limit = max(1, int(limit))
        self.active = 0
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def try_acquire(self) -> bool:
        if self.active < self.limit and not self._waiters:
            self.active += 1
            return True
        return False

    async def acquire(self, priority: float = 0) -> None:
        if self.try_acquire():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # hand the slot over; `active` is unchanged
                return
        self.active -= 1

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

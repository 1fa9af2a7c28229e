"""One set of limits for a whole cluster: gates, rate buckets, cool-downs and the budget in one place.

When an eval runs on several workers (`eval/ray_executor.py`), each worker has its own `Runtime`, but
a provider's limits belong to the API key, not to a process. So the gates of shared models live in
one `SharedLimits` object — a named Ray actor on the cluster — running Ember's own `Gate`, `Limiter`
and `Spending` on its event loop; the workers' runtimes hold proxies with the same interface
(`RemoteGate`, `RemoteLimiter`, `RemoteBudget`) that forward to it. Concurrency bounds, RPM/TPM
buckets, header-learned limits, 429 cool-downs and the budget are therefore per cluster.

Models served inside each worker process (`sim`, `local`: providers with `per_process = True`) keep
ordinary local gates: their capacity is the worker's own.

A slot is held under a lease id chosen by the caller, so that a worker that is cancelled while
waiting, or that dies, never leaks a slot: a cancelled wait is released as soon as it is granted, and
the driver `forget`s every lease of a dead worker. This module needs no Ray import: the proxies
only call `handle.METHOD.remote(...)` and await the result.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from ..errors import BudgetExceeded
from ..providers.base import Completion, RateLimits, Request
from .budget import Budget, Spending
from .gates import Gate
from .limits import Limiter
from .prices import Price


class SharedLimits:
    """The state behind the cluster's gates (the body of the Ray actor; plain Python, testable alone)."""

    def __init__(self, budget: Budget | None = None) -> None:
        self._gates: dict[str, Gate] = {}
        self._leases: dict[str, tuple[str, Gate]] = {}  # lease -> (worker, gate)
        self._cancelled: set[str] = set()
        self._budget = Spending(budget) if budget is not None else None
        self._held: dict[str, tuple[str, tuple[float, int, int]]] = {}  # reservation -> (worker, amount)
        self.max_active: dict[str, int] = {}  # most slots held at once, per gate (for tests and reports)

    def _gate(self, key: str, spec: tuple[int, float | None, float | None]) -> Gate:
        gate = self._gates.get(key)
        if gate is None:
            limit, rpm, tpm = spec
            gate = self._gates[key] = Gate(limit, Limiter(rpm, tpm))
        return gate

    async def enter(self, key: str, spec: tuple[int, float | None, float | None], priority: float, lease: str,
                    worker: str) -> bool | None:
        """Wait for a slot of `key`'s gate. Returns whether the call must also pass `admit` (a rate limit
        or a cool-down is in force: most calls of an unthrottled model then need one round trip), or None
        when the lease was cancelled meanwhile (the slot is passed on)."""
        gate = self._gate(key, spec)
        await gate.acquire(priority)
        if lease in self._cancelled:
            self._cancelled.discard(lease)
            gate.release()
            return None
        self._leases[lease] = (worker, gate)
        self.max_active[key] = max(self.max_active.get(key, 0), gate.active)
        return not gate.limiter.idle

    def leave(self, lease: str) -> None:
        held = self._leases.pop(lease, None)
        if held is not None:
            held[1].release()

    def cancel(self, lease: str) -> None:
        """The caller stopped waiting: release the slot if it was granted, else refuse it when it is."""
        if lease in self._leases:
            self.leave(lease)
        else:
            self._cancelled.add(lease)

    def forget(self, worker: str) -> int:
        """A worker died: release every slot it held, and count its budget reservations as spent at
        their worst case (its calls may have been billed). Returns how many slots."""
        dead = [lease for lease, (w, _) in self._leases.items() if w == worker]
        for lease in dead:
            self.leave(lease)
        for rid in [rid for rid, (w, _) in self._held.items() if w == worker]:
            self.settle_budget(rid, None, abandoned=True)
        return len(dead)

    async def admit(self, key: str, tokens: float) -> float:
        """Wait for the cool-down and the rate buckets; charge one request and `tokens`."""
        return await self._gates[key].limiter.acquire(tokens)

    def settle(self, key: str, charged: float, used: float) -> None:
        self._gates[key].limiter.settle(charged, used)

    def learn(self, key: str, limits: RateLimits) -> None:
        self._gates[key].limiter.learn(limits)

    def cool_down(self, key: str, seconds: float) -> None:
        self._gates[key].limiter.cool_down(seconds)

    async def reserve(self, need: tuple[float, int, int], rid: str, worker: str) -> bool:
        """Hold `need` under reservation `rid`; False when the caller gave up waiting meanwhile."""
        held = await self._budget.reserve_amount(need)
        if rid in self._cancelled:
            self._cancelled.discard(rid)
            self._budget.settle_amount(held, None)  # never sent
            return False
        self._held[rid] = (worker, held)
        return True

    def settle_budget(self, rid: str, used: tuple[float, int, int] | None, abandoned: bool = False) -> None:
        entry = self._held.pop(rid, None)
        if entry is None:
            return
        if abandoned:
            self._budget.abandon(entry[1])
        else:
            self._budget.settle_amount(entry[1], used)

    def cancel_reservation(self, rid: str) -> None:
        """The caller stopped waiting before its call was sent: free the reservation, now or when granted."""
        if rid in self._held:
            self.settle_budget(rid, None)
        else:
            self._cancelled.add(rid)

    def budget(self) -> Spending | None:
        """A copy of the budget's state (spent, exceeded, why), for the driver's summary."""
        b = self._budget
        if b is None:
            return None
        copy = Spending(b.limits)
        copy.spent_cost, copy.spent_calls, copy.spent_tokens = b.spent_cost, b.spent_calls, b.spent_tokens
        copy.exceeded, copy.reason = b.exceeded, b.reason
        return copy

    def stats(self) -> dict[str, Any]:
        return {"max_active": dict(self.max_active), "held": len(self._leases)}


class RemoteLimiter:
    """The worker-side face of one shared gate's limiter (the `Limiter` interface the runtime uses)."""

    __slots__ = ("_actor", "_key", "rpm", "tpm", "cooldown_until")

    def __init__(self, actor: Any, key: str, rpm: float | None, tpm: float | None) -> None:
        self._actor, self._key = actor, key
        # the runtime calls `acquire` when any of these is set; `cooldown_until` is set by the gate from
        # the actor's answer when it grants a slot (the runtime reads it right after, with no await between)
        self.rpm, self.tpm, self.cooldown_until = rpm, tpm, 0.0

    def cooling_down(self, now: float) -> bool:
        return False  # only the actor knows; an in-flight 429 here is counted as a retry, not waived

    async def acquire(self, tokens: float) -> float:
        return await self._actor.admit.remote(self._key, tokens)

    def settle(self, charged: float, used: float) -> None:
        if charged:
            self._actor.settle.remote(self._key, charged, used)

    def learn(self, limits: RateLimits) -> None:
        self._actor.learn.remote(self._key, limits)

    def cool_down(self, seconds: float) -> None:
        self._actor.cool_down.remote(self._key, seconds)


class RemoteGate:
    """The worker-side face of one shared gate (the `Gate` interface the runtime uses)."""

    __slots__ = ("_actor", "_key", "_spec", "_worker", "_leases", "_ids", "limiter", "limit")

    def __init__(self, actor: Any, key: str, limit: int, rpm: float | None, tpm: float | None, worker: str) -> None:
        self._actor, self._key, self._worker = actor, key, worker
        self.limit = max(1, int(limit))
        self._spec = (self.limit, rpm, tpm)
        self._leases: list[str] = []  # granted, not yet released (released in grant order: any one will do)
        self._ids = itertools.count()
        self.limiter = RemoteLimiter(actor, key, rpm, tpm)

    def try_acquire(self) -> bool:
        return False  # the slot is the cluster's: always ask

    async def acquire(self, priority: float = 0) -> None:
        lease = f"{self._worker}:{self._key}:{next(self._ids)}"
        ref = self._actor.enter.remote(self._key, self._spec, priority, lease, self._worker)
        try:
            limited = await ref
        except asyncio.CancelledError:
            self._actor.cancel.remote(lease)
            raise
        if limited is None:  # cannot happen without a cancel, which raised above
            raise asyncio.CancelledError
        self._leases.append(lease)
        self.limiter.cooldown_until = 1.0 if limited else 0.0  # another worker's cool-down counts here too

    def release(self) -> None:
        self._actor.leave.remote(self._leases.pop())


class RemoteBudget:
    """The worker-side face of the cluster's budget (the `Spending` interface the runtime uses). A
    reservation is an id the actor holds the amount under, so a worker that dies or gives up never
    leaves an amount held (which would make every later reservation wait for it)."""

    def __init__(self, actor: Any, limits: Budget, worker: str) -> None:
        self._actor = actor
        self.limits = limits
        self.exceeded = False  # learnt on this worker's next reservation after any worker exceeded it
        self._worker = worker
        self._ids = itertools.count()

    async def reserve(self, request: Request, price: Price | None) -> str:
        rid = f"{self._worker}:budget:{next(self._ids)}"
        try:
            await self._actor.reserve.remote(Spending.worst_case(request, price), rid, self._worker)
        except asyncio.CancelledError:
            self._actor.cancel_reservation.remote(rid)
            raise
        except Exception as exc:
            if _is_budget_exceeded(exc):
                self.exceeded = True
                raise BudgetExceeded(str(_cause(exc))) from None
            raise
        return rid

    def settle(self, held: str, completion: Completion | None, cost: float | None) -> None:
        used = None if completion is None else (
            cost or 0.0, len(completion.texts), completion.input_tokens + completion.output_tokens)
        self._actor.settle_budget.remote(held, used)

    def abandon(self, held: str) -> None:
        self._actor.settle_budget.remote(held, None, True)

    def to_json(self) -> dict[str, Any]:
        return {**self.limits.to_json(), "exceeded": self.exceeded}  # the cluster's totals are the driver's


def _cause(exc: BaseException) -> BaseException:
    # a Ray task error wraps the actor's exception; `as_instanceof_cause()` unwraps it when present
    unwrap = getattr(exc, "as_instanceof_cause", None)
    return unwrap() if unwrap is not None else exc


def _is_budget_exceeded(exc: BaseException) -> bool:
    return isinstance(exc, BudgetExceeded) or isinstance(_cause(exc), BudgetExceeded)


class GateFactory:
    """Used by a worker's `Runtime` to make its gates: shared ones through the actor, per-process ones local."""

    def __init__(self, actor: Any, worker: str) -> None:
        self.actor = actor
        self.worker = worker

    def __call__(self, key: tuple, provider: Any, limit: int, rpm: float | None, tpm: float | None,
                 local: Any) -> Any:
        if getattr(provider, "per_process", False):
            return local()
        return RemoteGate(self.actor, "|".join(map(str, key)), limit, rpm, tpm, self.worker)

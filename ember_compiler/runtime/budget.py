"""Budgets: a run's (or a whole eval's) limit on cost, calls and tokens, checked before every call.

Before a request is sent, the runtime *reserves* its worst case — the prompt estimated at 4
characters a token (+ 4 per message), `max_tokens` (else 1,024) per sample, priced by the binding's
price — and after it *settles* the reservation to the usage the provider reported. A request whose
worst case does not fit next to what is spent and what the requests in flight have reserved waits
for those to settle; when it cannot fit even then, the budget is *exceeded*: that request and every
later one raise `BudgetExceeded`, while the requests already in flight finish and are counted (a
request cancelled in flight — its row failed — is counted at its worst case).

So the recorded spend never exceeds the limit, as long as a provider does not bill more input
tokens than the estimate (the output side is a true bound: `max_tokens` — the runtime charges no more
per sample, and replaces missing or invalid usage by the estimate: attempts.py `vet`, docs/cost.md). Cache hits cost nothing
and reserve nothing. All state is a few floats on one event loop: O(1) per call, and a runtime
without a budget never calls in here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..errors import BudgetExceeded, UsageError
from ..providers.base import Completion, Request
from .limits import estimate_tokens
from .prices import FREE, Price

_LIMITS = ("max_cost_usd", "max_calls", "max_total_tokens")


@dataclass(frozen=True, slots=True)
class Budget:
    """Spending limits for one run (or a whole eval); None: no limit on that count.

    Args:
        max_cost_usd: stop before the recorded spend could exceed this many USD.
        max_calls: at most this many model calls (samples).
        max_total_tokens: at most this many tokens, input + output, over all calls (not the
            per-call `max_tokens` of a model binding).
    """

    max_cost_usd: float | None = None
    max_calls: int | None = None
    max_total_tokens: int | None = None

    @property
    def empty(self) -> bool:
        return self.max_cost_usd is None and self.max_calls is None and self.max_total_tokens is None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _LIMITS if getattr(self, k) is not None}




def limits_from(spec_budget: dict[str, Any] | None, override: Budget | None = None) -> Budget | None:
    """The spec's `budget:` with `override`'s fields (the command-line flags) taking precedence field by
    field; None: no budget. The spec's deprecated `max_tokens` reads as `max_total_tokens`.

    Raises:
        UsageError: a negative limit.
    """
    given = dict(spec_budget or {})
    if "max_tokens" in given:
        legacy = given.pop("max_tokens")
        given.setdefault("max_total_tokens", legacy)
    if override is not None:
        for key in _LIMITS:
            value = getattr(override, key)
            if value is not None:
                if value < 0:
                    raise UsageError(f"--{key.replace('_', '-')} must be ≥ 0, got {value}")
                given[key] = value
    limits = Budget(**{k: given.get(k) for k in _LIMITS})
    return None if limits.empty else limits


class Spending:
    """A `Budget` being spent: shared by every request of a runtime (all branches, all rows)."""

    __slots__ = ("limits", "spent_cost", "spent_calls", "spent_tokens", "held_cost", "held_calls", "held_tokens",
                 "in_flight", "exceeded", "reason", "_settled")

    def __init__(self, limits: Budget) -> None:
        self.limits = limits
        self.spent_cost = 0.0
        self.spent_calls = 0
        self.spent_tokens = 0
        self.held_cost = 0.0
        self.held_calls = 0
        self.held_tokens = 0
        self.in_flight = 0
        self.exceeded = False
        self.reason = ""
        self._settled: asyncio.Event | None = None

    @staticmethod
    def worst_case(request: Request, price: Price | None) -> tuple[float, int, int]:
        """(cost, calls, tokens) a request can cost at most (the prompt side is an estimate)."""
        tokens = estimate_tokens(request)
        out = request.model.get("max_tokens")
        out_tokens = max(1, request.n) * (out if isinstance(out, int) else 1024)
        cost = 0.0
        if price is not None and price is not FREE:
            inp, outp = price.input, price.output
            if price.tier_above_tokens is not None:  # the worst tier
                inp = max(inp, price.tier_input or 0.0)
                outp = max(outp, price.tier_output or 0.0)
            cost = (tokens - out_tokens) * inp + out_tokens * outp
        return cost, request.n, tokens

    def _overflow(self, cost: float, calls: int, tokens: int, held: bool) -> str | None:
        lim = self.limits
        c, k, t = self.spent_cost + cost, self.spent_calls + calls, self.spent_tokens + tokens
        if held:
            c, k, t = c + self.held_cost, k + self.held_calls, t + self.held_tokens
        if lim.max_cost_usd is not None and c > lim.max_cost_usd + 1e-12:
            return f"max cost ${lim.max_cost_usd:g}"
        if lim.max_calls is not None and k > lim.max_calls:
            return f"max calls {lim.max_calls:,}"
        if lim.max_total_tokens is not None and t > lim.max_total_tokens:
            return f"max total tokens {lim.max_total_tokens:,}"
        return None

    async def reserve(self, request: Request, price: Price | None) -> tuple[float, int, int]:
        """Hold the request's worst case, waiting for calls in flight to settle if that makes it fit."""
        return await self.reserve_amount(self.worst_case(request, price))

    async def reserve_amount(self, need: tuple[float, int, int]) -> tuple[float, int, int]:
        while True:
            if self.exceeded:
                raise BudgetExceeded(self.message())
            if self._overflow(*need, held=True) is None:
                break
            why = self._overflow(*need, held=False)
            if why is not None or not self.in_flight:
                self.exceeded = True
                self.reason = why or self._overflow(*need, held=True) or ""
                self._wake()
                raise BudgetExceeded(self.message())
            if self._settled is None:
                self._settled = asyncio.Event()
            await self._settled.wait()
        self.held_cost += need[0]
        self.held_calls += need[1]
        self.held_tokens += need[2]
        self.in_flight += 1
        return need

    def settle(self, held: tuple[float, int, int], completion: Completion | None, cost: float | None) -> None:
        """Replace a reservation by what the call used (`completion` None: it failed and used nothing)."""
        self.settle_amount(held, None if completion is None else (
            cost or 0.0, len(completion.texts), completion.input_tokens + completion.output_tokens))

    def settle_amount(self, held: tuple[float, int, int], used: tuple[float, int, int] | None) -> None:
        """`settle` with the usage as (cost, calls, tokens)."""
        self.held_cost -= held[0]
        self.held_calls -= held[1]
        self.held_tokens -= held[2]
        self.in_flight -= 1
        if used is not None:
            self.spent_cost += used[0]
            self.spent_calls += used[1]
            self.spent_tokens += used[2]
        self._wake()

    def abandon(self, held: tuple[float, int, int]) -> None:
        """A call cancelled while in flight (its row failed): it may have been billed, so its worst
        case stays spent — the recorded spend stays an upper bound."""
        self.settle(held, None, None)
        self.spent_cost += held[0]
        self.spent_calls += held[1]
        self.spent_tokens += held[2]

    def _wake(self) -> None:
        if self._settled is not None:
            self._settled.set()
            self._settled = None

    def message(self) -> str:
        return (f"budget exceeded ({self.reason}): no further calls were started; spent "
                f"${self.spent_cost:.6f}, {self.spent_calls:,} calls, {self.spent_tokens:,} tokens")

    def to_json(self) -> dict[str, Any]:
        return {**self.limits.to_json(), "spent_cost_usd": round(self.spent_cost, 10),
                "spent_calls": self.spent_calls, "spent_tokens": self.spent_tokens, "exceeded": self.exceeded}

"""Rate limits per (provider, endpoint, model): RPM and TPM token buckets and a shared cool-down.

A call that passed its model's concurrency gate asks the `Limiter` for one request and an estimate
of its tokens (prompt + max_tokens per sample). The buckets refill continuously; each holds at most
one second's worth (so a burst never exceeds a minute's budget by more than 1/60), and a charge may
drive a bucket negative — after the call the estimate is corrected by the usage the provider
reported, and a debt delays the next callers. Limits come from the spec (`limits: {rpm, tpm}`) and
are tightened by the ones the response headers report. After a 429/529, or when the headers say a
window is spent, `cool_down` makes every queued call of the model wait until the window reopens,
instead of each retrying into it.

A limiter with no buckets and no cool-down is skipped by the runtime (two attribute reads), so the
sim and the local model pay nothing. Callers pass through one at a time in arrival order (the
concurrency gate before them already ordered them by priority).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..providers.base import RateLimits, Request

BURST_S = 1.0  # bucket size, in seconds of the rate
DEFAULT_OUTPUT_ESTIMATE = 1024  # tokens per sample when the binding sets no max_tokens
HEADER_COOL_DOWN_S = 1.0
MIN_SLEEP_S = 1e-6  # a wait always moves the clock, even when rounding leaves a sliver  # when headers say a window is spent but not when it resets


class TokenBucket:
    __slots__ = ("per_minute", "rate", "capacity", "level", "stamp")

    def __init__(self, per_minute: float, now: float) -> None:
        self.level = 0.0
        self.set_rate(per_minute)
        self.level = self.capacity
        self.stamp = now

    def set_rate(self, per_minute: float) -> None:
        self.per_minute = float(per_minute)
        self.rate = self.per_minute / 60.0
        self.capacity = max(1.0, self.rate * BURST_S)
        self.level = min(self.level, self.capacity)

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until `amount` (at most a full bucket, so huge requests still pass) is available."""
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        deficit = min(amount, self.capacity) - self.level
        return 0.0 if deficit <= 1e-9 * self.capacity else deficit / self.rate  # tolerate float dust


class Limiter:
    __slots__ = ("rpm", "tpm", "cooldown_until", "declared_rpm", "declared_tpm", "clock", "sleep", "_lock",
                 "learned")

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self.declared_rpm, self.declared_tpm = rpm, tpm
        self.rpm = TokenBucket(rpm, now) if rpm else None
        self.tpm = TokenBucket(tpm, now) if tpm else None
        self.cooldown_until = 0.0  # clock() time before which no call of this model starts
        self.learned: RateLimits | None = None  # the last limits the headers reported
        self._lock: asyncio.Lock | None = None

    @property
    def idle(self) -> bool:
        return self.rpm is None and self.tpm is None and not self.cooldown_until

    async def acquire(self, tokens: float) -> float:
        """Wait for the cool-down and the buckets; charge one request and `tokens`. Returns the charge."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:
                now = self.clock()
                wait = self.cooldown_until - now
                if wait <= 0:
                    self.cooldown_until = 0.0
                    wait = max(self.rpm.wait_s(1, now) if self.rpm is not None else 0.0,
                               self.tpm.wait_s(tokens, now) if self.tpm is not None else 0.0)
                    if wait <= 0:
                        break
                await self.sleep(max(wait, MIN_SLEEP_S))
            if self.rpm is not None:
                self.rpm.level -= 1
            if self.tpm is not None:
                self.tpm.level -= tokens
                return tokens
        return 0.0

    def settle(self, charged: float, used: float) -> None:
        """Correct a TPM charge by the tokens the call really used (both ways)."""
        if self.tpm is not None and charged:
            self.tpm.level = min(self.tpm.capacity, self.tpm.level + charged - used)

    def cool_down(self, seconds: float) -> None:
        """No call of this model starts for `seconds` (the later of this and any current cool-down)."""
        self.cooldown_until = max(self.cooldown_until, self.clock() + max(0.0, seconds))

    def learn(self, limits: RateLimits) -> None:
        """Adopt the limits the server reported: the lower of declared and reported, and a cool-down
        when a window is spent."""
        self.learned = limits
        now = self.clock()
        self.rpm = self._tighten(self.rpm, self.declared_rpm, limits.requests_limit, limits.requests_remaining, now)
        self.tpm = self._tighten(self.tpm, self.declared_tpm, limits.tokens_limit, limits.tokens_remaining, now)
        if limits.requests_remaining is not None and limits.requests_remaining <= 0:
            self.cool_down(limits.requests_reset_s if limits.requests_reset_s is not None else HEADER_COOL_DOWN_S)
        if limits.tokens_remaining is not None and limits.tokens_remaining <= 0:
            self.cool_down(limits.tokens_reset_s if limits.tokens_reset_s is not None else HEADER_COOL_DOWN_S)

    @staticmethod
    def _tighten(bucket: TokenBucket | None, declared: float | None, reported: float | None,
                 remaining: float | None, now: float) -> TokenBucket | None:
        if reported and reported > 0:
            rate = min(declared, reported) if declared else reported
            if bucket is None:
                bucket = TokenBucket(rate, now)
            elif bucket.per_minute != rate:
                bucket.set_rate(rate)
        if bucket is not None and remaining is not None:
            bucket.level = min(bucket.level, remaining)  # the server has seen calls we have not
        return bucket


def estimate_tokens(request: Request, default_output: int = DEFAULT_OUTPUT_ESTIMATE) -> int:
    """Prompt (≈ 4 characters a token, + 4 per message) plus max_tokens per sample — a TPM charge
    before the call; the reported usage corrects it after."""
    chars = sum(len(m.get("content") or "") for m in request.messages)
    out = request.model.get("max_tokens")
    out = out if isinstance(out, int) else default_output
    return chars // 4 + 4 * len(request.messages) + max(1, request.n) * out

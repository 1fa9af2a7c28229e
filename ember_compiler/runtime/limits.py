"""Rate limits per (provider, endpoint, model): an RPM window, a TPM token bucket and a shared cool-down.

A call that passed its model's concurrency gate asks the `Limiter` for one request and an estimate
of its tokens (prompt + max_tokens per sample).

RPM is a sliding window (`RequestWindow`): at most rpm/60 × 0.1 requests start in any 0.1 s (for
rates under 600 rpm, one request per 60/rpm seconds), each window stretched by a 3% margin
(`WINDOW_SLACK`). So any second — and any minute — sees at most rpm/60 (rpm) requests: compliant
with a server that enforces the limit over a short window (OpenAI says it may enforce 60,000 rpm as
1,000 per second) as well as per minute. A token bucket holding one second of rate would send up to
two seconds' worth in the first second after a pause, which a per-second window answers with 429s;
and small, frequent bursts keep the spread between a request's start here and its arrival there
(event-loop backlog, new connections) well inside the margin. Sustained throughput is 97% of the rpm.

TPM is a token bucket refilled continuously holding at most one second's worth (so a burst never
exceeds a minute's budget by more than 1/60); a charge may drive it negative — after the call the
estimate is corrected by the usage the provider reported, and a debt delays the next callers.

Limits come from the spec (`limits: {rpm, tpm}`) and are tightened by the ones the response headers
report. After a 429/529, or when the headers say a window is spent, `cool_down` makes every queued
call of the model wait until the window reopens, instead of each retrying into it.

A limiter with no limits and no cool-down is skipped by the runtime (two attribute reads), so the
sim and the local model pay nothing. Callers pass through one at a time in arrival order (the
concurrency gate before them already ordered them by priority).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..providers.base import RateLimits, Request

BURST_S = 1.0  # TPM bucket size, in seconds of the rate
WINDOW_S = 0.1  # RPM: at most rpm/60 × WINDOW_S requests start in any WINDOW_S × (1 + WINDOW_SLACK) seconds
WINDOW_SLACK = 0.03  # room for the jitter between a request's start here and its arrival at the server
DEFAULT_OUTPUT_ESTIMATE = 1024  # tokens per sample when the binding sets no max_tokens
HEADER_COOL_DOWN_S = 1.0  # when headers say a window is spent but not when it resets
MIN_SLEEP_S = 1e-6  # a wait always moves the clock, even when rounding leaves a sliver


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

    def take(self, amount: float, now: float) -> None:
        self.level -= amount

    def cap(self, remaining: float, now: float) -> None:
        self.level = min(self.level, remaining)


class RequestWindow:
    """Request starts in a sliding window: `capacity` in any `span` seconds (a log of start times)."""

    __slots__ = ("per_minute", "capacity", "span", "starts")

    def __init__(self, per_minute: float, now: float = 0.0) -> None:
        self.starts: collections.deque[float] = collections.deque()
        self.set_rate(per_minute)

    def set_rate(self, per_minute: float) -> None:
        self.per_minute = float(per_minute)
        self.capacity = max(1, int(self.per_minute * WINDOW_S / 60 + 1e-9))
        self.span = self.capacity * 60.0 / self.per_minute * (1 + WINDOW_SLACK)

    @property
    def level(self) -> int:
        """Requests that may start now (as of the last call)."""
        return self.capacity - len(self.starts)

    def _prune(self, now: float) -> None:
        starts, horizon = self.starts, now - self.span + 1e-9  # tolerate float dust
        while starts and starts[0] <= horizon:
            starts.popleft()

    def wait_s(self, amount: float, now: float) -> float:
        """Seconds until one more request may start."""
        self._prune(now)
        over = len(self.starts) - self.capacity
        return 0.0 if over < 0 else self.starts[over] + self.span - now

    def take(self, amount: float, now: float) -> None:
        self.starts.append(now)

    def cap(self, remaining: float, now: float) -> None:
        """The server reports fewer requests left than this window would allow: count the difference
        as started now (the server has seen calls we have not)."""
        self._prune(now)
        for _ in range(int(self.level - max(0.0, remaining))):
            self.starts.append(now)


def loop_time() -> float:
    """The running event loop's clock, else `time.monotonic`. For asyncio's own loops the two are the
    same clock; a test's virtual-time loop (`ember_compiler.testing.clock`) makes waits exact."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class Limiter:
    __slots__ = ("rpm", "tpm", "cooldown_until", "declared_rpm", "declared_tpm", "clock", "sleep", "_lock",
                 "learned")

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 clock: Callable[[], float] = loop_time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.clock = clock
        self.sleep = sleep
        now = clock()
        self.declared_rpm, self.declared_tpm = rpm, tpm
        self.rpm = RequestWindow(rpm, now) if rpm else None
        self.tpm = TokenBucket(tpm, now) if tpm else None
        self.cooldown_until = 0.0  # clock() time before which no call of this model starts
        self.learned: RateLimits | None = None  # the last limits the headers reported
        self._lock: asyncio.Lock | None = None

    @property
    def idle(self) -> bool:
        return self.rpm is None and self.tpm is None and not self.cooldown_until

    def cooling_down(self, now: float) -> bool:
        """Whether a cool-down is in force at clock time `now` (no call of this model starts)."""
        return self.cooldown_until > now

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
                self.rpm.take(1, now)
            if self.tpm is not None:
                self.tpm.take(tokens, now)
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
        self.rpm = self._tighten(self.rpm, self.declared_rpm, limits.requests_limit, limits.requests_remaining, now,
                                 RequestWindow)
        self.tpm = self._tighten(self.tpm, self.declared_tpm, limits.tokens_limit, limits.tokens_remaining, now,
                                 TokenBucket)
        if limits.requests_remaining is not None and limits.requests_remaining <= 0:
            self.cool_down(limits.requests_reset_s if limits.requests_reset_s is not None else HEADER_COOL_DOWN_S)
        if limits.tokens_remaining is not None and limits.tokens_remaining <= 0:
            self.cool_down(limits.tokens_reset_s if limits.tokens_reset_s is not None else HEADER_COOL_DOWN_S)

    @staticmethod
    def _tighten(bucket: Any, declared: float | None, reported: float | None, remaining: float | None,
                 now: float, kind: type) -> Any:
        if reported and reported > 0:
            rate = min(declared, reported) if declared else reported
            if bucket is None:
                bucket = kind(rate, now)
            elif bucket.per_minute != rate:
                bucket.set_rate(rate)
        if bucket is not None and remaining is not None:
            bucket.cap(remaining, now)  # the server has seen calls we have not
        return bucket


def estimate_tokens(request: Request, default_output: int = DEFAULT_OUTPUT_ESTIMATE) -> int:
    """Prompt (≈ 4 characters a token, + 4 per message) plus max_tokens per sample — a TPM charge
    before the call; the reported usage corrects it after."""
    chars = sum(len(m.get("content") or "") for m in request.messages)
    out = request.model.get("max_tokens")
    out = out if isinstance(out, int) else default_output
    return chars // 4 + 4 * len(request.messages) + max(1, request.n) * out

"""The retry policy of the runtime's call path — the only retry loop in Ember.

Providers make one attempt and raise `ProviderError`; `Runtime.complete` asks `next_delay` whether
and when to try again, and re-acquires the model's gates for every attempt (so a retry respects the
concurrency bound, the buckets and a shared cool-down). Retried: 408/409/429/5xx/529, timeouts and
transport errors; never 400/401/403/404/422 or an exhausted quota. The wait is the server's hint
(`retry-after-ms`, `Retry-After`, Gemini's `RetryInfo`) or capped exponential backoff with jitter
(0.5 s doubling to 8 s, minus up to 25%, like the OpenAI and Anthropic SDKs); a call gives up after
`max_retries` retries or when the wait would end past its deadline.

A 429/529 that arrives while the model's cool-down is in force answers a request that was already in
flight when another request's 429 (or the headers) reported the spent window — no request is sent
during a cool-down. It says nothing new about this request, so it is *waived*: it does not count
against `max_retries` (unless that is 0: no retries at all). Waived retries are bounded by the
request's deadline and by `MAX_WAIVED_RETRIES`, so a request can never loop forever.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from ..errors import ProviderError
from ..providers.http import retry_after_s

DEFAULT_MAX_RETRIES = 2
INITIAL_DELAY_S = 0.5
MAX_DELAY_S = 8.0
COOL_DOWN_STATUSES = frozenset({429, 529})  # the model's window is spent: every caller waits
NEVER_RETRIED = frozenset({400, 401, 403, 404, 422})
MAX_WAIVED_RETRIES = 10  # in-flight 429s (see above) one request may get beyond its max_retries
_TRANSIENT = (ConnectionError, TimeoutError, asyncio.TimeoutError)


def backoff_s(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """0.5 s, 1 s, 2 s, … capped at 8 s, each shortened by up to 25% so callers spread out."""
    return min(INITIAL_DELAY_S * 2**attempt, MAX_DELAY_S) * (1 - 0.25 * rand())


def next_delay(err: ProviderError, attempt: int, now: float, deadline: float, max_retries: int,
               rand: Callable[[], float] = random.random, waived: bool = False) -> float | None:
    """Seconds to wait before retry number `attempt + 1`, or None to give up. A `waived` failure (an
    in-flight 429, see above) is retried whatever `attempt` is, within the deadline."""
    if not err.retryable or err.status in NEVER_RETRIED or (attempt >= max_retries and not waived):
        return None
    delay = err.retry_after_s if err.retry_after_s is not None else backoff_s(attempt, rand)
    if now + delay > deadline:
        return None
    return delay


def past_deadline(err: ProviderError, attempt: int, now: float, began: float, deadline: float,
                  max_retries: int, waived: bool = False) -> str | None:
    """Why `next_delay` gave up, when the reason is the server's own wait: it would end past the
    request's deadline (else None: the usual reasons need no words)."""
    hint = err.retry_after_s
    if hint is None or not err.retryable or err.status in NEVER_RETRIED or (attempt >= max_retries and not waived):
        return None
    if now + hint <= deadline:
        return None
    return f"the server asked to retry after {hint:g} s, past the deadline of {deadline - began:g} s"


def as_provider_error(exc: Exception, timeout_s: float | None = None) -> ProviderError:
    """Any failure of a provider's `complete` as a ProviderError the policy can judge.

    Plugin providers may raise their client library's exceptions: an integer `status_code` or
    `status` and the `Retry-After` headers of an attached `response` are honoured; timeouts and
    connection errors are transient; anything else is final.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        after = f" after {timeout_s:g}s" if timeout_s else ""
        return ProviderError(f"request timed out{after}", retryable=True)
    status = _status(exc)
    text = f"{type(exc).__name__}: {exc}"
    if status is not None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        hint = retry_after_s(headers) if _is_mapping(headers) else None
        retryable = status not in NEVER_RETRIED and (status in (408, 409, 429) or status >= 500)
        return ProviderError(f"HTTP {status}: {text}", status=status, retryable=retryable, retry_after_s=hint)
    return ProviderError(text, retryable=isinstance(exc, _TRANSIENT))


def _status(exc: Exception) -> int | None:
    for name in ("status_code", "status"):
        value = getattr(exc, name, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _is_mapping(headers: Any) -> bool:
    return headers is not None and callable(getattr(headers, "get", None))

"""The attempt loop: one request, sent through its gates until an attempt succeeds or the retry
policy (retry.py) gives up. The state of a failing request lives in a `RetryState`, made at its
first failure — a request that succeeds at once allocates none.

A request goes: the global in-flight bound → its model's concurrency gate (by priority) → the
model's limiter (cool-down, RPM/TPM buckets; skipped when it has neither) → one provider attempt,
bounded by `timeout_s` → release. A failed attempt is judged by `retry.next_delay`: a 429/529 starts
the model's shared cool-down, other retryable failures sleep their own backoff, and either way the
retry passes the gates again; a 429 that arrives during the cool-down (its request was in flight
before the cool-down began) does not count against `max_retries` (retry.py). A streamed request is
retried only while none of its text went out: after the first delta, a failure is final (a retry
would stream the reply's start again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import EmberError, ProviderError, binding_label
from ..providers.base import Completion, Request
from .gates import Gate
from .limits import DEFAULT_OUTPUT_ESTIMATE, Limiter, estimate_tokens
from .pool import Target
from .retry import COOL_DOWN_STATUSES, MAX_WAIVED_RETRIES, as_provider_error, next_delay, past_deadline

if TYPE_CHECKING:
    from .runtime import Runtime
    from .streaming import TextStream
    from .usage import RowContext

WAIT_ALLOWANCE_S = 60.0  # a request's deadline: its attempts' timeouts plus this much waiting
STREAMED = "part of the reply was already streamed, so it is not retried"


class RetryState:
    """A failing request's retry bookkeeping.

    `tries` counts the sends so far; `attempt` the failures counted against `max_retries`; `waived`
    the in-flight 429s that were not counted (retry.py); `began` when the first attempt was sent (the
    deadline counts from there, not from the queue)."""

    __slots__ = ("tries", "attempt", "waived", "began")

    def __init__(self, began: float) -> None:
        self.tries = self.attempt = self.waived = 0
        self.began = began

    def deadline(self, target: Target) -> float:
        """All attempts and waits of one request fit in (max_retries + 1) × timeout_s + 60 s."""
        timeout_s = target.timeout_s
        return self.began + timeout_s * (target.max_retries + 1) + WAIT_ALLOWANCE_S if timeout_s else float("inf")

    def waivable(self, err: ProviderError, target: Target, limiter: Limiter, now: float) -> bool:
        """Whether this failure is not counted against `max_retries` (judged before the failure's
        rate-limit headers are learnt: they may start the cool-down)."""
        # no request is sent during a cool-down: a 429 arriving in one was in flight before it
        # began, answered for a window already reported — waived (retry.py), within bounds
        return (err.status in COOL_DOWN_STATUSES and limiter.cooling_down(now)
                and target.max_retries > 0 and self.waived < MAX_WAIVED_RETRIES)

    def judge(self, err: ProviderError, target: Target, now: float, rand: Callable[[], float],
              waive: bool) -> float | None:
        """Seconds to wait before the next attempt (counting it), or None to give up."""
        delay = next_delay(err, self.attempt, now, self.deadline(target), target.max_retries, rand, waive)
        if delay is None:
            return None
        self.tries += 1
        if waive:
            self.waived += 1
        else:
            self.attempt += 1
        return delay


async def send(rt: Runtime, target: Target, request: Request, priority: float, row: RowContext | None,
               stream: TextStream | None = None) -> Completion:
    """One request: attempts through the gates until one succeeds or the policy gives up — or, for a
    streamed request (`stream`), until an attempt fails after part of its reply went out."""
    gate: Gate = target.gate
    bound, lim = rt.bound, gate.limiter
    provider, timeout_s = target.provider, target.timeout_s
    state: RetryState | None = None
    began = 0.0
    while True:
        if bound is not None:
            await bound.acquire(priority)
        start, charged = time.time(), 0.0
        try:
            try:
                if not gate.try_acquire():
                    await gate.acquire(priority)
                try:
                    if lim.rpm is not None or lim.tpm is not None or lim.cooldown_until:
                        charged = await lim.acquire(estimate_tokens(request) if lim.tpm is not None else 0)
                        start = time.time()
                    if timeout_s is None:
                        completion = await provider.complete(request)
                    else:
                        if state is None:
                            began = rt.clock()  # the deadline counts from the first send, not the queue
                        async with asyncio.timeout(timeout_s):
                            completion = await provider.complete(request)
                finally:
                    gate.release()
            finally:
                if bound is not None:
                    bound.release()
        except Exception as exc:
            if isinstance(exc, EmberError) and not isinstance(exc, ProviderError):
                raise  # a configuration problem (e.g. the local server cannot start): not retried
            err = as_provider_error(exc, timeout_s)
            now = rt.clock()
            if state is None:
                state = RetryState(began)
            waive = state.waivable(err, target, lim, now)
            if err.rate_limits is not None:
                lim.learn(err.rate_limits)
            if row is not None:
                rt.span(row, request, target, start, None, err, attempt=state.tries)
            tries = state.tries
            if stream is not None and stream.emitted:
                raise final_error(rt, target, request, err, tries, STREAMED) from exc
            delay = state.judge(err, target, now, rt.rand, waive)
            if delay is None:
                why = past_deadline(err, state.attempt, now, state.began, state.deadline(target),
                                    target.max_retries, waive)
                raise final_error(rt, target, request, err, tries, why) from exc
            if err.status in COOL_DOWN_STATUSES:
                lim.cool_down(delay)  # everyone queued on this model waits, this retry included
            else:
                await rt.sleep(delay)
            if stream is not None:
                stream.restart()
            continue
        vet(rt, target, request, completion)
        if completion.rate_limits is not None:
            lim.learn(completion.rate_limits)
        if charged:
            lim.settle(charged, completion.input_tokens + completion.output_tokens)
        rt.account(row, request, target, start, completion, 0 if state is None else state.tries)
        return completion


def vet(rt: Runtime, target: Target, request: Request, completion: Completion) -> None:
    """What a server said, made plausible before anything counts it (limiter, budget, usage, cache),
    for every provider alike — each fix with a run warning:

    - samples beyond the `n` asked are dropped (a vote never counts more than it asked for);
    - usage that is missing, or a count that is not a non-negative integer (providers read those as
      `INVALID_TOKENS`), is replaced by the estimate the budget reserved — the prompt at 4 characters
      a token + 4 per message, `max_tokens` (else 1,024) per sample — and the completion is marked
      `usage_estimated` (the run's cost then says `cost_estimated`);
    - output tokens beyond `max_tokens` × samples asked are not believed: charged `max_tokens` per
      sample (a server honouring `max_tokens` never reports more).
    """
    n = max(1, request.n)
    label = lambda: binding_label(request.binding, target.binding)  # noqa: E731 - only for a warning
    if len(completion.texts) > n:
        rt.warn(f"{label()}: the server returned more samples than the {n} asked: the extra ones were dropped")
        del completion.texts[n:], completion.finish_reasons[n:]
    max_tokens = request.model.get("max_tokens")
    limit = max_tokens if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) else None
    inp, out, cached = completion.input_tokens, completion.output_tokens, completion.cached_tokens
    if completion.usage_missing or not (_count_ok(inp) and _count_ok(out) and _count_ok(cached)):
        out_estimate = n * (limit if limit is not None else DEFAULT_OUTPUT_ESTIMATE)
        in_estimate = estimate_tokens(request) - out_estimate
        if completion.usage_missing:
            rt.warn(f"{label()}: a response carried no usage: its tokens and cost are estimated "
                    "(prompt at 4 characters a token, max_tokens per sample)")
            inp, out, cached = in_estimate, out_estimate, 0
        else:
            bad = [name for name, v in (("input", inp), ("output", out), ("cached", cached)) if not _count_ok(v)]
            rt.warn(f"{label()}: a response reported invalid usage ({', '.join(bad)} tokens not a non-negative "
                    "integer): its tokens and cost are estimated")
            inp = inp if _count_ok(inp) else in_estimate
            out = out if _count_ok(out) else out_estimate
            cached = cached if _count_ok(cached) else 0
        completion.usage_estimated = True
    if limit is not None and out > n * limit:
        rt.warn(f"{label()}: a response reported more output tokens than max_tokens ({limit:,}) per sample: "
                "charged max_tokens per sample")
        out = n * limit
    completion.input_tokens, completion.output_tokens, completion.cached_tokens = inp, out, min(cached, inp)
    for name in ("cache_write_tokens", "cache_write_1h_tokens"):
        if not _count_ok(getattr(completion, name)):
            setattr(completion, name, 0)


def _count_ok(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def final_error(rt: Runtime, target: Target, request: Request, err: ProviderError, attempt: int,
                why: str | None = None) -> ProviderError:
    """The error a request gives up with: the model, its provider, how many attempts it took and,
    when it is not the error itself, why it gave up."""
    tries = f" after {attempt + 1} attempts" if attempt else ""
    tries = f" (gave up{tries}: {why})" if why else f" (gave up{tries})" if tries else ""
    text = f"{binding_label(request.binding, target.binding)}: {err}{tries}"
    return ProviderError(rt.scrub(text), status=err.status, retryable=err.retryable,
                         retry_after_s=err.retry_after_s)

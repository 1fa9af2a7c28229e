"""Gates per (provider, endpoint, model): the concurrency bound, RPM/TPM buckets (fake clock: waits
are exact and instant), limits learned from headers, and the shared cool-down after a 429."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from ember_compiler.providers.base import RateLimits
from ember_compiler.runtime import limits
from ember_compiler.runtime.limits import Limiter, TokenBucket, estimate_tokens
from ember_compiler.testing.clock import virtual_time
from ember_compiler.testing.providers import KEY, FakeClock, Server, complete, reply, request, runtime

OPENAI = {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 16}


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def stamped(clock, response=None):
    """A server that records the fake time of every request."""
    times: list[float] = []

    def handle(r):
        times.append(clock.now)
        return response() if response else reply("openai_structured.json")

    return Server(handle), times


def test_token_bucket():
    b = TokenBucket(60, now=0.0)  # 1 a second, holds 1
    assert (b.capacity, b.wait_s(1, 0.0)) == (1.0, 0.0)
    b.level -= 1
    assert b.wait_s(1, 0.25) == pytest.approx(0.75)
    assert b.wait_s(50, 0.25) == pytest.approx(0.75)  # a charge larger than the bucket waits for a full one
    big = TokenBucket(6000, now=0.0)  # 100 a second, holds 100
    assert big.capacity == 100 and big.wait_s(1, 10.0) == 0 and big.level == 100  # refill stops at the capacity


def test_rpm_window_bounds_the_request_rate():
    clock = FakeClock()
    server, times = stamped(clock)
    binding = {**OPENAI, "limits": {"rpm": 120}}  # 2 a second: one every 0.5 s (+ the margin)
    results = complete(runtime(server, clock), *(request(binding) for _ in range(20)))
    assert all(r.texts for r in results)
    gap = 0.5 * (1 + limits.WINDOW_SLACK)
    t0 = times[0]
    assert times[-1] - t0 == pytest.approx(19 * gap)
    for i, t in enumerate(times):  # never ahead of the rate
        assert t - t0 >= i * gap - 1e-9


def test_rpm_window_never_exceeds_a_one_second_window_even_after_a_pause():
    # what a server enforcing 6,000 rpm as 100 requests in any second sees: never more than 100 in a
    # second — also in the first second and after an idle spell (a one-second token bucket sends 200)
    clock = FakeClock()
    lim = Limiter(rpm=6000, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def go():
        for burst in (250, 250):
            for _ in range(burst):
                await lim.acquire(0)
                starts.append(clock.now)
            clock.now += 5.0  # idle

    asyncio.run(go())
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u < t + 1.0) <= 100
    burst = lim.rpm.capacity  # 100 × WINDOW_S go at once, the next ones a window later
    assert burst == int(100 * limits.WINDOW_S) and starts[burst - 1] == starts[0]
    assert starts[burst] - starts[0] == pytest.approx(limits.WINDOW_S * (1 + limits.WINDOW_SLACK))
    assert 250 / (starts[249] - starts[0]) == pytest.approx(100 / (1 + limits.WINDOW_SLACK), rel=0.1)  # ~the rate


def test_rpm_window_at_low_rates_and_when_headers_report_less():
    w = limits.RequestWindow(30, now=0.0)  # one request every 2 s
    assert (w.capacity, w.span) == (1, pytest.approx(2 * (1 + limits.WINDOW_SLACK)))
    assert w.wait_s(1, 0.0) == 0
    w.take(1, 0.0)
    assert w.wait_s(1, 1.0) == pytest.approx(w.span - 1.0)
    big = limits.RequestWindow(60_000, now=0.0)  # 1,000 a second
    assert big.capacity >= 10
    big.cap(3, 0.0)  # the server says 3 left: the rest count as started now
    assert big.level == 3 and big.wait_s(1, 0.0) == 0
    for _ in range(3):
        big.take(1, 0.0)
    assert big.wait_s(1, 0.01) == pytest.approx(big.span - 0.01)


def test_tpm_bucket_is_charged_an_estimate_and_corrected_by_usage():
    clock = FakeClock()
    server, times = stamped(clock)  # every reply reports 182 + 24 tokens: charged 182 + 16 (max_tokens) = 198
    binding = {**OPENAI, "limits": {"tpm": 6000}}  # 100 a second, holds 100
    rt = runtime(server, clock)
    req = request(binding)
    est = estimate_tokens(req)
    assert est == len("What is 7 * 6?") // 4 + 4 + 16

    async def sequential():
        for _ in range(5):
            await rt.complete(request(binding), 0, None)
        await rt.aclose()

    asyncio.run(sequential())
    # after each call the bucket is 198 - est lower than the charge said: the next caller pays the debt
    # the 5th may start once 100 (full) - 4 × 198 + 100 t >= est
    assert times[-1] - times[0] == pytest.approx((4 * 198 - 100 + est) / 100)


def test_limits_are_learned_from_headers_and_a_spent_window_cools_down():
    clock = FakeClock()
    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-requests": "2s", "x-ratelimit-limit-tokens": "120000",
               "x-ratelimit-remaining-tokens": "119000", "x-ratelimit-reset-tokens": "6ms"}
    server, times = stamped(clock, lambda: reply("openai_structured.json", headers=headers))
    rt = runtime(server, clock)

    async def go():
        await rt.complete(request(OPENAI), 0, None)
        (gate,) = rt.pool.gates.values()
        lim = gate.limiter
        assert lim.rpm.per_minute == 60 and lim.tpm.per_minute == 120000  # adopted: none were declared
        assert lim.cooldown_until == clock.now + 2
        await rt.complete(request(OPENAI), 0, None)
        await rt.aclose()

    asyncio.run(go())
    assert times[1] - times[0] == pytest.approx(2.0)


def test_declared_limits_are_only_tightened():
    lim = Limiter(rpm=100, clock=lambda: 0.0)
    lim.learn(RateLimits(requests_limit=500))
    assert lim.rpm.per_minute == 100
    lim.learn(RateLimits(requests_limit=30, requests_remaining=5))
    assert lim.rpm.per_minute == 30 and lim.rpm.level <= 5 and not lim.cooldown_until


def test_shared_cool_down_makes_queued_calls_wait():
    clock = FakeClock()
    opens = clock.now + 5
    seen: list[tuple[float, int]] = []

    async def closed_until_opens(r):
        await asyncio.sleep(0)  # let every caller reach the server's door before the first answer
        status = 429 if clock.now < opens else 200
        seen.append((clock.now, status))
        if status == 429:
            return httpx2.Response(429, headers={"retry-after": str(opens - clock.now)},
                                   json={"error": {"message": "rate limited"}})
        return reply("openai_structured.json")

    binding = {**OPENAI, "limits": {"concurrency": 4}}
    results = complete(runtime(Server(closed_until_opens), clock), *(request(binding) for _ in range(12)))
    assert all(r.texts for r in results)
    rejected = [t for t, s in seen if s == 429]
    # only the 4 requests already in flight met the spent window; the 8 queued ones waited for it
    assert len(rejected) <= 4 and len(seen) == 12 + len(rejected)
    assert all(t >= opens for t, s in seen if s == 200)


def test_concurrency_bound_counts_requests_in_flight():
    in_flight, peak = 0, 0

    async def slow(r):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return reply("openai_structured.json")

    binding = {**OPENAI, "limits": {"concurrency": 3}}
    with virtual_time():  # the server's 10 ms are virtual: which requests overlap is exact
        results = complete(runtime(Server(slow)), *(request(binding) for _ in range(12)))
    assert all(r.texts for r in results) and peak == 3


def test_gates_are_per_provider_endpoint_and_model():
    rt = runtime(Server(reply("openai_structured.json")))
    a = rt.pool.target({**OPENAI, "limits": {"rpm": 10}})
    b = rt.pool.target({**OPENAI, "temperature": 1})  # another binding, same model: same gate
    c = rt.pool.target({**OPENAI, "model": "gpt-4o"})
    d = rt.pool.target({**OPENAI, "base_url": "http://127.0.0.1:9/v1"})
    assert a.gate is b.gate and a.gate is not c.gate and a.gate is not d.gate
    asyncio.run(rt.aclose())


def test_the_sim_pays_nothing_for_buckets(monkeypatch):
    async def forbidden(self, tokens):
        raise AssertionError("the limiter was consulted on the fast path")

    monkeypatch.setattr(limits.Limiter, "acquire", forbidden)
    rt = runtime()
    results = complete(rt, *(request({"provider": "sim"}, n=3) for _ in range(50)))
    assert all(len(r.texts) == 3 for r in results)
    assert all(g.limiter.idle for g in rt.pool.gates.values())

"""Fault injection through the runtime's call path, the one retry loop: every fault ends in success
after retries or in one clear error naming the model and the status — never a hang."""

from __future__ import annotations

import asyncio
import email.utils
from types import SimpleNamespace

import httpx2
import pytest

from ember_compiler.compiler import compile_spec
from ember_compiler.errors import ProviderError
from ember_compiler.providers import http as http_mod
from ember_compiler.runs import run_plan
from ember_compiler.runtime.retry import MAX_WAIVED_RETRIES, as_provider_error, backoff_s, next_delay
from ember_compiler.testing.clock import virtual_time
from ember_compiler.testing.providers import (
    KEY,
    FakeClock,
    Server,
    complete,
    fixture,
    reply,
    request,
    runtime,
)

OPENAI = {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 16}
ANTHROPIC = {"provider": "anthropic", "model": "claude-haiku-4-5", "max_tokens": 16}
GEMINI = {"provider": "gemini", "model": "gemini-2.5-flash", "max_tokens": 16}


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(env, KEY)


def ok():
    return reply("openai_structured.json")


def run(server, binding=OPENAI, clock=None, n=1):
    clock = clock or FakeClock()
    (result,) = complete(runtime(server, clock), request(binding, n=n))
    return result, clock


# -- retried, then success ------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "wait"), [
    ({"retry-after": "3"}, 3.0),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({}, 0.5),  # no hint: backoff
])
def test_429_waits_for_the_hint_then_succeeds(headers, wait):
    server = Server(reply("openai_429_rate_limit.json", 429, headers), ok())
    result, clock = run(server)
    assert result.texts and len(server.requests) == 2
    assert clock.sleeps == [pytest.approx(wait)]  # the wait is the model's cool-down


def test_429_with_an_http_date(monkeypatch):
    now = 1_800_000_000.0  # the wall clock the date is read against, frozen: an exact wait
    monkeypatch.setattr(http_mod, "time", SimpleNamespace(time=lambda: now))
    date = email.utils.formatdate(now + 5, usegmt=True)
    result, clock = run(Server(httpx2.Response(429, headers={"retry-after": date}), ok()))
    assert result.texts and clock.sleeps == [5.0]


def test_gemini_retry_info_is_honoured():
    server = Server(reply("gemini_429_retry_info.json", 429), reply("gemini_structured.json"))
    result, clock = run(server, GEMINI)
    assert result.texts and clock.sleeps == [pytest.approx(45.837906927)]


def test_anthropic_529_overloaded_backs_off():
    server = Server(reply("anthropic_529_overloaded.json", 529), reply("anthropic_529_overloaded.json", 529),
                    reply("anthropic_message.json"))
    result, clock = run(server, ANTHROPIC)
    assert result.texts and clock.sleeps == [0.5, 1.0]


def test_500s_back_off_exponentially_with_jitter():
    server = Server(httpx2.Response(500, text="oops"), httpx2.Response(503, text="busy"), ok())
    result, clock = run(server)
    assert result.texts and clock.sleeps == [0.5, 1.0]
    assert [backoff_s(a, lambda: 1.0) for a in range(6)] == [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]


@pytest.mark.parametrize("fault", [
    httpx2.ConnectError("connection refused"),
    httpx2.ReadError("[Errno 104] Connection reset by peer"),
    httpx2.RemoteProtocolError("Server disconnected without sending a response."),
    httpx2.ReadTimeout("read timed out"),
    httpx2.Response(200, text='{"id": "chatcmpl-1", "choices": [{"ind'),  # truncated JSON
    httpx2.Response(200, json=fixture("openrouter_200_error.json")),  # a 200 whose body is a 502
    httpx2.Response(408), httpx2.Response(409), httpx2.Response(502), httpx2.Response(504),
])
def test_transient_faults_are_retried(fault):
    server = Server(fault, ok())
    result, _ = run(server)
    assert result.texts and len(server.requests) == 2


# -- 429s for requests already in flight when the window filled --------------------------------------

class PatientClock(FakeClock):
    """A fake clock whose sleep first lets the loop run what is already due (the answers of requests
    in flight) before it moves time: what happens at once in real time happens before the wait ends."""

    async def sleep(self, seconds: float) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        await super().sleep(seconds)


def spent_until(clock, opens, seen):
    """A server whose window is spent until `opens` (a 429 with a 1 s hint before). It decides when a
    request arrives and answers once every request sent with it has arrived, as requests in flight."""

    async def handle(r):
        now = clock.now
        if now >= opens:
            response = reply("openai_structured.json")
        else:
            response = httpx2.Response(429, headers={"retry-after-ms": "1000"},
                                       json={"error": {"message": "rate limited"}})
        seen.append((now, response.status_code))
        await asyncio.sleep(0)
        return response

    return handle


def test_a_429_for_a_request_in_flight_when_the_cool_down_began_is_waived(monkeypatch):
    # 4 requests in flight meet a window spent for two cool-downs. Each time, only the 429 that starts
    # the cool-down counts against max_retries (1); the ones answered during it are waived.
    def go():
        clock, seen = PatientClock(), []
        opens = clock.now + 2
        binding = {**OPENAI, "max_retries": 1, "limits": {"concurrency": 4}}
        results = complete(runtime(Server(spent_until(clock, opens, seen)), clock),
                           *(request(binding) for _ in range(4)))
        failed = [r for r in results if isinstance(r, Exception)]
        assert all(isinstance(r, ProviderError) and r.status == 429 for r in failed)
        assert all(t >= opens for t, s in seen if s == 200)  # each waited for the cool-downs
        return len(failed), [s for _, s in seen].count(429)

    failed, rejected = go()
    assert failed <= 1 and rejected <= 8  # at most the one that reported the window twice
    monkeypatch.setattr("ember_compiler.runtime.attempts.MAX_WAIVED_RETRIES", 0)
    assert go() == (4, 8)  # counting every 429, all four give up at their second


def test_waived_429s_are_bounded():
    # max_retries 0 means no retry at all, in flight or not; and a window that never opens ends in
    # errors after at most max_retries + MAX_WAIVED_RETRIES retries per request, never a loop
    clock, seen = PatientClock(), []
    binding = {**OPENAI, "max_retries": 0, "limits": {"concurrency": 4}}
    results = complete(runtime(Server(spent_until(clock, clock.now + 2, seen)), clock),
                       *(request(binding) for _ in range(4)))
    assert all(isinstance(r, ProviderError) and r.status == 429 for r in results) and len(seen) == 4

    async def closed(r):
        await asyncio.sleep(0)
        return httpx2.Response(429, headers={"retry-after": "1"}, json={"error": {"message": "rate limited"}})

    server = Server(closed)
    binding = {**OPENAI, "max_retries": 2, "limits": {"concurrency": 4}}
    results = complete(runtime(server, PatientClock()), *(request(binding) for _ in range(4)))
    assert all(isinstance(r, ProviderError) and r.status == 429 for r in results)
    assert len(server.requests) <= 4 * (1 + 2 + MAX_WAIVED_RETRIES)


# -- final errors -----------------------------------------------------------------------------------

def test_gives_up_after_max_retries_with_one_clear_error():
    server = Server(httpx2.Response(502, json={"error": {"message": "bad gateway"}}))
    err, clock = run(server)
    assert isinstance(err, ProviderError) and len(server.requests) == 3 and clock.sleeps == [0.5, 1.0]
    assert str(err) == "model 'm' (openai gpt-4o-mini): HTTP 502: bad gateway (gave up after 3 attempts)"
    assert err.status == 502


def test_binding_max_retries():
    server = Server(httpx2.Response(500))
    err, _ = run(server, {**OPENAI, "max_retries": 0})
    assert isinstance(err, ProviderError) and len(server.requests) == 1
    server = Server(httpx2.Response(500))
    run(server, {**OPENAI, "max_retries": 4})
    assert len(server.requests) == 5


@pytest.mark.parametrize(("binding", "response", "match"), [
    (OPENAI, reply("openai_400_invalid.json", 400), "HTTP 400: Invalid schema"),
    (OPENAI, httpx2.Response(401, json={"error": {"message": "no"}}), "HTTP 401: no"),
    (OPENAI, httpx2.Response(403), "HTTP 403"),
    (OPENAI, httpx2.Response(404, json={"error": {"message": "model not found"}}), "HTTP 404: model not found"),
    (OPENAI, httpx2.Response(422), "HTTP 422"),
    (OPENAI, reply("openai_429_insufficient_quota.json", 429), "quota exhausted"),
    (GEMINI, reply("gemini_429_quota_per_day.json", 429), "quota exhausted"),
    (GEMINI, reply("gemini_blocked.json"), "blocked"),
    (OPENAI, httpx2.Response(200, json={"choices": []}), "no choices"),
])
def test_final_errors_are_not_retried(binding, response, match):
    server = Server(response)
    err, clock = run(server, binding)
    assert isinstance(err, ProviderError) and len(server.requests) == 1 and clock.sleeps == []
    assert match in str(err) and f"model 'm' ({binding['provider']} {binding['model']})" in str(err)


def test_a_hint_past_the_deadline_gives_up_at_once():
    # timeout_s 10, max_retries 2: all attempts and waits of a request fit in 3 × 10 s + 60 s
    server = Server(httpx2.Response(429, headers={"retry-after": "91"}))
    err, clock = run(server, {**OPENAI, "timeout_s": 10})
    assert isinstance(err, ProviderError) and err.status == 429 and len(server.requests) == 1
    assert clock.sleeps == []


def test_a_hint_past_the_deadline_says_why_it_gave_up():
    server = Server(httpx2.Response(429, headers={"retry-after": "91"}, json={"error": {"message": "slow down"}}))
    err, _ = run(server, {**OPENAI, "timeout_s": 10})
    assert str(err) == ("model 'm' (openai gpt-4o-mini): HTTP 429: slow down (gave up: the server asked to retry "
                        "after 91 s, past the deadline of 90 s)")
    # after a retry, the attempts are counted too; one line either way
    server = Server(httpx2.Response(503, json={"error": {"message": "busy"}}),
                    httpx2.Response(429, headers={"retry-after": "120"}, json={"error": {"message": "slow down"}}))
    err, _ = run(server, {**OPENAI, "timeout_s": 10})
    assert str(err).endswith("(gave up after 2 attempts: the server asked to retry after 120 s, past the deadline "
                             "of 90 s)") and "\n" not in str(err)
    # a hint within the deadline with no retries left gives up for that reason alone: no such words
    server = Server(httpx2.Response(429, headers={"retry-after": "1"}))
    err, _ = run(server, {**OPENAI, "timeout_s": 10, "max_retries": 0})
    assert "past the deadline" not in str(err)


def test_per_call_timeout_bounds_a_hanging_server():
    async def hang(request):
        await asyncio.sleep(30)

    server = Server(hang)
    with virtual_time() as loop_clock:  # the 30 s hang and the 0.2 s timeouts are virtual: exact
        err, clock = run(server, {**OPENAI, "timeout_s": 0.2, "max_retries": 1})
    assert isinstance(err, ProviderError) and "timed out after 0.2s" in str(err)
    assert len(server.requests) == 2  # one retry, each attempt cut at its timeout, not the 30 s hang
    assert loop_clock.now == pytest.approx(0.2 * 2) and len(clock.sleeps) == 1  # (the back-off: FakeClock)


def test_cancelling_a_run_cancels_the_request_in_flight():
    entered, cancelled = asyncio.Event(), []

    async def slow(request):
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    rt = runtime(Server(slow))

    async def go():
        task = asyncio.create_task(rt.complete(request(OPENAI), 0, None))
        await asyncio.wait_for(entered.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (gate,) = rt.pool.gates.values()
        assert gate.active == 0  # the slot came back
        await rt.aclose()

    asyncio.run(go())
    assert cancelled == [True]


# -- samples a server left out ---------------------------------------------------------------------

def test_server_ignoring_n_gets_the_rest_with_shifted_seeds():
    server = Server(lambda r: reply("openai_structured.json"))
    result, _ = run(server, {**OPENAI, "seed": 10}, n=4)
    assert len(result.texts) == 4 and len(server.requests) == 4
    assert sorted(b["seed"] for b in server.bodies()) == [10, 11, 12, 13]
    # the recording reports 24 output tokens for max_tokens 16: believed for the first request (n=4: at
    # most 64), charged 16 for each top-up of one sample (issue 17 row 13)
    assert (result.input_tokens, result.output_tokens) == (4 * 182, 24 + 3 * 16)


def test_gemini_candidate_cap_is_topped_up():
    def eight(r):
        k = r.read() and __import__("json").loads(r.content)["generationConfig"]["candidateCount"]
        return httpx2.Response(200, json={"candidates": [
            {"index": i, "content": {"parts": [{"text": f"Answer: {i}"}]}, "finishReason": "STOP"} for i in range(k)]})

    server = Server(eight)
    result, _ = run(server, GEMINI, n=11)
    assert len(result.texts) == 11
    assert [b["generationConfig"]["candidateCount"] for b in server.bodies()] == [8, 3]


# -- the policy and plugin exceptions --------------------------------------------------------------

def test_policy():
    err = ProviderError("x", status=503, retryable=True)
    assert next_delay(err, 0, 0, 100, 2, lambda: 0.0) == 0.5
    assert next_delay(err, 2, 0, 100, 2) is None  # out of retries
    assert next_delay(ProviderError("x", status=400, retryable=True), 0, 0, 100, 2) is None
    assert next_delay(ProviderError("x", status=429, retryable=True, retry_after_s=99), 0, 0, 60, 2) is None
    limited = ProviderError("x", status=429, retryable=True, retry_after_s=1)
    assert next_delay(limited, 2, 0, 100, 2, waived=True) == 1  # an in-flight 429: not counted
    assert next_delay(limited, 2, 0, 0.5, 2, waived=True) is None  # the deadline still holds


def test_foreign_exceptions_are_classified():
    class RateLimited(Exception):
        status_code = 429
        response = httpx2.Response(429, headers={"retry-after": "2"})

    err = as_provider_error(RateLimited("slow down"))
    assert err.status == 429 and err.retryable and err.retry_after_s == 2
    assert as_provider_error(ConnectionResetError("reset")).retryable
    assert as_provider_error(TimeoutError(), 5).retryable and "after 5s" in str(as_provider_error(TimeoutError(), 5))
    assert not as_provider_error(KeyError("choices")).retryable


# -- end to end: a failing node is one clear line ----------------------------------------------------

def test_a_failing_run_reports_node_model_and_status(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("""ember: 1
name: fails
inputs: {question: string}
models:
  judge: {provider: openai, model: gpt-4o-mini, max_retries: 1}
nodes:
  answer: {op: generate, model: judge, prompt: "{{ inputs.question }}"}
outputs: {answer: "${answer.answer}"}
""")
    server = Server(httpx2.Response(503, headers={"retry-after-ms": "5"}, json={"error": {"message": "overloaded"}}))
    result = run_plan(compile_spec(spec), {"question": "q"}, runs_dir=tmp_path / "runs", transport=server.transport)
    assert result.error is not None and "\n" not in result.error
    assert "node 'answer'" in result.error and "model 'judge' (openai gpt-4o-mini)" in result.error
    assert "HTTP 503: overloaded (gave up after 2 attempts)" in result.error
    assert len(server.requests) == 2

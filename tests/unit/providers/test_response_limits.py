"""Issue #17 row 21: a 100 MB response is refused with a clear error, read in chunks and never held whole."""

from __future__ import annotations

import dataclasses

import httpx2
import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.providers import http
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.testing.providers import one, request

BINDING = {"provider": "openai", "model": "gpt-4o-mini"}
CHUNK = b"x" * (1 << 20)


class Endless(httpx2.AsyncByteStream):
    """A body of `mb` megabytes (no Content-Length), produced on demand; counts what was read."""

    def __init__(self, mb: int) -> None:
        self.mb, self.sent = mb, 0

    async def __aiter__(self):
        yield b'{"choices": [{"message": {"content": "'
        for _ in range(self.mb):
            self.sent += 1
            yield CHUNK


def _provider(handler) -> OpenAIProvider:
    return OpenAIProvider("http://fake/v1", "sk-test-0123456789", transport=httpx2.MockTransport(handler))


@pytest.mark.parametrize("status", [200, 500])
def test_a_100_mb_body_is_refused_after_the_limit_without_reading_the_rest(status):
    body = Endless(100)
    provider = _provider(lambda request: httpx2.Response(status, stream=body))
    with pytest.raises(ProviderError, match="body over 33,554,432 bytes") as info:
        one(provider, request(BINDING))
    assert not info.value.retryable
    assert body.sent <= http.MAX_RESPONSE_BYTES // len(CHUNK) + 1  # stopped at the limit, not at 100 MB


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    body = Endless(100)
    provider = _provider(lambda request: httpx2.Response(
        200, headers={"content-length": str(100 << 20)}, stream=body))
    with pytest.raises(ProviderError, match="over 33,554,432 bytes"):
        one(provider, request(BINDING))
    assert body.sent == 0


def test_a_normal_reply_still_reads():
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Answer: 42"},
                          "finish_reason": "stop"}], "model": "gpt-4o-mini",
             "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
    completion = one(_provider(lambda request: httpx2.Response(200, json=reply)), request(BINDING))
    assert completion.texts == ["Answer: 42"]


def test_a_streamed_reply_over_the_limit_is_refused_without_holding_it():
    class EndlessEvents(httpx2.AsyncByteStream):
        def __init__(self) -> None:
            self.sent = 0

        async def __aiter__(self):
            for _ in range(100):  # 100 MB of one event's data, in 1 MB chunks, no blank line to end it
                self.sent += 1
                yield b"data: " + CHUNK + b"\n"

    body = EndlessEvents()
    provider = _provider(lambda request: httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, stream=body))
    deltas: list[str] = []
    with pytest.raises(ProviderError, match="body over 33,554,432 bytes"):
        one(provider, dataclasses.replace(request(BINDING), on_text=deltas.append))
    assert body.sent <= http.MAX_RESPONSE_BYTES // len(CHUNK) + 2 and deltas == []

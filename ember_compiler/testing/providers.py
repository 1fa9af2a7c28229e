"""Fake HTTP providers: a scripted server behind `httpx2.MockTransport`, recorded replies, a fake clock.

Everything runs against `httpx2.MockTransport`: no test reaches the network. `recordings/` holds real
provider responses (OpenAI, Anthropic, Gemini, OpenRouter; bodies only, no keys): `fixture(name)` is
the JSON, `reply(name)` an `httpx2.Response` of it; the `.sse` recordings are streamed replies (server-sent
events as the APIs send them), served by `stream_reply(name)` one event at a time — with `cut_after`
the connection breaks after that many events, and `Stream.seen` records, before each event is sent,
how many deltas the client had already received (streaming, not buffering). `FakeClock` gives the runtime a clock whose
`sleep` advances time instantly, so waits (rate limits, Retry-After, back-off) are exact and take no time.

    server = Server(reply("openai_chat.json"))
    [completion] = complete(runtime(server), request({"provider": "openai", "model": "gpt-4o-mini"}))
    assert server.bodies()[0]["model"] == "gpt-4o-mini"
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2

from ember_compiler.providers.base import Request
from ember_compiler.runtime.runtime import RowContext, Runtime

RECORDINGS = Path(__file__).parent / "recordings"
KEY = "sk-test-SECRET-0123456789abcdef"


def fixture(name: str) -> Any:
    return json.loads((RECORDINGS / name).read_text())


def reply(name: str, status: int = 200, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=fixture(name), headers=headers)


def sse_events(name: str) -> list[str]:
    """The events of an `.sse` recording, each with its blank line."""
    text = (RECORDINGS / name).read_text()
    return [e.strip("\n") + "\n\n" for e in text.split("\n\n") if e.strip()]


def sse_body(*events: Any) -> list[str]:
    """Events from values: a dict is `data: JSON`, a (name, dict) pair `event: NAME` + data, a str as is."""
    out = []
    for e in events:
        if isinstance(e, tuple):
            out.append(f"event: {e[0]}\ndata: {json.dumps(e[1])}\n\n")
        elif isinstance(e, dict):
            out.append(f"data: {json.dumps(e)}\n\n")
        else:
            out.append(e if e.endswith("\n\n") else f"data: {e}\n\n")
    return out


class Stream:
    """A streamed reply: `events` sent one by one; `seen()` (e.g. `len(deltas)`) is recorded before each."""

    def __init__(self, events: list[str], *, cut_after: int | None = None,
                 seen: Callable[[], Any] | None = None, headers: dict[str, str] | None = None) -> None:
        self.events, self.cut_after, self.probe = events, cut_after, seen
        self.headers = {"content-type": "text/event-stream; charset=utf-8", **(headers or {})}
        self.seen: list[Any] = []

    async def body(self) -> AsyncIterator[bytes]:
        for i, event in enumerate(self.events):
            if self.cut_after is not None and i == self.cut_after:
                raise httpx2.ReadError("connection reset by peer")
            if self.probe is not None:
                self.seen.append(self.probe())
            await asyncio.sleep(0)  # the client reads what came so far before the next event
            yield event.encode()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=self.headers, content=self.body())


def stream_reply(name: str, **kwargs: Any) -> Stream:
    return Stream(sse_events(name), **kwargs)


class Server:
    """A scripted server: each request takes the next item of the script (the last one repeats): a
    response, an exception to raise, or a callable of the request (may be async)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.requests: list[httpx2.Request] = []

    async def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            item = item(request)
            if asyncio.iscoroutine(item):
                item = await item
        return item

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    @property
    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self)


class FakeClock:
    """time.monotonic and asyncio.sleep for the runtime: sleeping advances the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def request(binding: dict[str, Any], n: int = 1, content: str = "What is 7 * 6?", *, name: str = "m",
            schema: dict[str, Any] | None = None, system: str | None = None, **meta: Any) -> Request:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    return Request(name, binding, messages, n, {"role": "generate", "node_id": "node", **meta}, schema)


def runtime(server: Server | None = None, clock: FakeClock | None = None, **kwargs: Any) -> Runtime:
    clock = clock or FakeClock()
    return Runtime(transport=server.transport if server else None, clock=clock, sleep=clock.sleep,
                   rand=lambda: 0.0, **kwargs)


def complete(rt: Runtime, *requests: Request, row: RowContext | None = None) -> list[Any]:
    """Send the requests concurrently through the runtime; results (or exceptions) in order."""

    async def go() -> list[Any]:
        try:
            return await asyncio.gather(*(rt.complete(r, 0, row) for r in requests), return_exceptions=True)
        finally:
            await rt.aclose()

    return asyncio.run(go())


def one(provider: Any, req: Request) -> Any:
    """One attempt straight at a provider (no runtime: no retries)."""

    async def go() -> Any:
        try:
            return await provider.complete(req)
        finally:
            await provider.aclose()

    return asyncio.run(go())

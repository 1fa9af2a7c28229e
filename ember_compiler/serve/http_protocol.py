"""uvicorn's httptools protocol, with a response's head and body sent in one write.

uvicorn writes a response's status line and headers as soon as the app sends `http.response.start`,
and the body with the next message: two `write` calls, two syscalls and two TCP segments per
answer, and a client that wakes up twice to read it. On loopback in a VM, a write that wakes
another process costs 60-130 µs here, and a served request had three of them on its path (aiohttp
coalesces a small head and body the same way, aio-libs/aiohttp#10991). The head is held until the body follows — in the same step,
for a JSON answer — or until the loop's next turn, for a stream whose first event is not ready.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadHeld:
    """A transport whose response heads wait for what follows them (every other call passes through)."""

    __slots__ = ("_transport", "_loop", "_held")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":  # a head (or a body that looks like one:
            self._held = data  # it waits one turn at most, in order)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info, abort, ...
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """What `ember serve` gives uvicorn as `http=`: its httptools protocol on a `HeadHeld` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeadHeld(transport, self.loop))  # type: ignore[arg-type]

"""Server-sent events (`text/event-stream`, the WHATWG HTML standard §9.2) read from a response's lines:
the streaming wire of OpenAI-compatible servers, Anthropic and Gemini (`alt=sse`).

Written here rather than taken from `httpx-sse`, which is built on httpx, not httpx2
(notes/libraries.md §0.1); the format is a few rules: `field: value` lines, `:` comments, a blank line
ends an event, and an event the stream ends in the middle of is dropped (it may be cut short).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str  # the `event:` field, "message" when absent
    data: str  # the `data:` lines, joined by newlines


class TooLarge(Exception):
    """The stream passed its size cap (`lines`)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


async def lines(chunks: AsyncIterator[str], cap: int) -> AsyncIterator[str]:
    """The lines of a decoded text stream (CRLF, LF or CR endings), raising `TooLarge` once more than
    `cap` characters came: neither many small events nor one endless line can hold more than that."""
    buf, size = "", 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise TooLarge(size)
        buf += chunk
        held = "\r" if buf.endswith("\r") else ""  # may be the first half of a CRLF split between chunks
        text = (buf[:-1] if held else buf).replace("\r\n", "\n").replace("\r", "\n")
        *done, rest = text.split("\n")
        buf = rest + held
        for line in done:
            yield line
    if buf:  # a held CR ended its line; otherwise the stream ended mid-line
        yield buf[:-1] if buf.endswith("\r") else buf


async def events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    """The events in `lines` (an httpx2 response's `aiter_lines()`), in order."""
    name, data = "", []
    async for line in lines:
        if line.startswith("data: "):  # nearly every line: the fast path
            data.append(line[6:])
            continue
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):
            continue  # a comment: keep-alives (`: ping`, OpenRouter's `: OPENROUTER PROCESSING`)
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)

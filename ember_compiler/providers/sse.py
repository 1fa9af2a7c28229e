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

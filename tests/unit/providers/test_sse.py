"""Server-sent events as the streaming APIs send them: names, comments, multi-line data, CRLF, and an
event the stream ends in the middle of."""

from __future__ import annotations

import asyncio

import httpx2

from ember_compiler.providers.sse import Event, events


def read(body: bytes) -> list[Event]:
    async def go():
        return [e async for e in events(httpx2.Response(200, content=body).aiter_lines())]
    return asyncio.run(go())


def test_events_names_comments_and_multiline_data():
    body = (b": OPENROUTER PROCESSING\n\nevent: message_start\ndata: {\"a\": 1}\n\n"
            b"data: line one\ndata:line two\nid: 7\nretry: 100\n\ndata: [DONE]\n\n")
    assert read(body) == [Event("message_start", '{"a": 1}'), Event("message", "line one\nline two"),
                          Event("message", "[DONE]")]


def test_crlf_lines_and_an_event_cut_at_the_end_is_dropped():
    assert read(b"data: {\"x\": 1}\r\n\r\ndata: {\"x\": ") == [Event("message", '{"x": 1}')]

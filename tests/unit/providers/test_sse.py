"""Server-sent events as the streaming APIs send them: names, comments, multi-line data, CRLF, and an
event the stream ends in the middle of."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from ember_compiler.providers.sse import Event, TooLarge, events, lines


async def _chunks(parts: list[str]):
    for p in parts:
        yield p


def read(body: bytes) -> list[Event]:
    async def go():
        return [e async for e in events(lines(httpx2.Response(200, content=body).aiter_text(), 1 << 20))]
    return asyncio.run(go())


def split_read(parts: list[str], cap: int = 1 << 20) -> list[Event]:
    async def go():
        return [e async for e in events(lines(_chunks(parts), cap))]
    return asyncio.run(go())


def test_events_names_comments_and_multiline_data():
    body = (b": OPENROUTER PROCESSING\n\nevent: message_start\ndata: {\"a\": 1}\n\n"
            b"data: line one\ndata:line two\nid: 7\nretry: 100\n\ndata: [DONE]\n\n")
    assert read(body) == [Event("message_start", '{"a": 1}'), Event("message", "line one\nline two"),
                          Event("message", "[DONE]")]


def test_crlf_lines_and_an_event_cut_at_the_end_is_dropped():
    assert read(b"data: {\"x\": 1}\r\n\r\ndata: {\"x\": ") == [Event("message", '{"x": 1}')]


def test_line_endings_split_between_chunks_keep_one_event():
    # a CRLF cut after its CR must not end the line twice (which would split one event's data in two)
    assert split_read(["data: a\r", "\ndata: b\r\n", "\r", "\n"]) == [Event("message", "a\nb")]
    assert split_read(["data: a\rdata: b\r\r"]) == [Event("message", "a\nb")]  # bare CRs are line ends too


def test_a_stream_over_its_cap_is_refused_whether_many_lines_or_one_endless_line():
    with pytest.raises(TooLarge):
        split_read(["data: x\n\n"] * 1000, cap=5000)
    with pytest.raises(TooLarge):
        split_read(["x" * 1000] * 10, cap=5000)  # no newline ever: never held past the cap

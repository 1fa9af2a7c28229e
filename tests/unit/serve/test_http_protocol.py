"""The server's HTTP protocol sends a response's head and body in one write (`serve/http_protocol.py`)."""

from __future__ import annotations

import asyncio
import socket

from ember_compiler.serve.http_protocol import HeadHeld
from ember_compiler.testing.serving import ServerThread

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


class Recorder:
    """A transport that keeps what is written to it, one item per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def held(fn) -> Recorder:
    async def main():
        raw = Recorder()
        await fn(HeadHeld(raw, asyncio.get_running_loop()))
        return raw
    return asyncio.run(main())


def test_a_head_and_the_body_that_follows_it_are_one_write():
    async def answer(t):
        t.write(HEAD)
        t.write(b"{}")
        t.write(HEAD)  # the next response on the connection, the same way
        t.write(b"[]")
        await asyncio.sleep(0)
    assert held(answer).writes == [HEAD + b"{}", HEAD + b"[]"]


def test_a_head_whose_body_is_not_ready_goes_out_at_the_next_turn():
    async def stream(t):
        t.write(HEAD)
        assert t._transport.writes == []
        await asyncio.sleep(0)  # the loop turns: a stream's head does not wait for its first event
        assert t._transport.writes == [HEAD]
        t.write(b"data: 1\n\n")
    assert held(stream).writes == [HEAD, b"data: 1\n\n"]


def test_body_bytes_pass_through_and_close_sends_a_held_head_first():
    async def closing(t):
        t.write(b"data: 1\n\n")
        t.write(HEAD)
        t.close()
        assert t.is_closing()  # every other call reaches the transport
    raw = held(closing)
    assert raw.writes == [b"data: 1\n\n", HEAD] and raw.closed


def test_the_server_answers_every_request_of_a_kept_connection():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def ok(request):
        return JSONResponse({"ok": True})
    app = Starlette(routes=[Route("/", ok)])
    with ServerThread(app) as url, socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
        for _ in range(2):  # keep-alive: the second request on the same connection is answered too
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b'{"ok":true}'):
                chunk = sock.recv(65536)
                assert chunk, "the server closed the connection"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 11\r\n" in reply

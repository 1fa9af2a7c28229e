"""The providers' HTTP/1.1 transport (providers/http_transport.py), against real local servers:
keep-alive reuse, a server closing an idle connection, large bodies both ways (flow control),
timeouts, refused and cut connections, chunked and compressed replies, server-sent events, TLS,
proxies left to httpx2 — and the trace writer that keeps its writing off the call path."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import zlib
from pathlib import Path

import httpx2
import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.providers import http_transport
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.runtime.trace import IDLE_FLUSH_S, Tracer
from ember_compiler.testing.clock import run as virtual_run
from ember_compiler.testing.providers import fixture, request, sse_events

BINDING = {"provider": "openai", "model": "m", "max_tokens": 8}
CHAT = json.dumps(fixture("openai_structured.json")).encode()


class HTTPServer:
    """A minimal HTTP/1.1 keep-alive server on 127.0.0.1. `answer(body)` gives (status, bytes) for a
    Content-Length reply, a list of raw pieces to send one by one (a float in it: a pause in
    seconds), None (hang up without answering) or "hang" (never answer)."""

    def __init__(self, answer=None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer or (lambda body: (200, CHAT))
        self.ssl = ssl_context
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> HTTPServer:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=self.ssl)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl else 'http'}://{'localhost' if self.ssl else '127.0.0.1'}:{port}/v1"
        return self

    async def __aexit__(self, *exc) -> None:
        for w in self.writers:
            w.close()
        self.server.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.bodies.append(body)
                out = self.answer(body)
                if out == "hang":
                    await asyncio.sleep(3600)
                if out is None:
                    writer.close()
                    return
                if isinstance(out, list):
                    for piece in out:
                        if isinstance(piece, float):
                            await asyncio.sleep(piece)
                        else:
                            writer.write(piece)
                            await writer.drain()
                    if any(isinstance(p, bytes) and b"connection: close" in p.lower() for p in out):
                        writer.close()
                        return
                    continue
                status, payload = out
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                             % (status, len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def chunked(head: bytes, *parts: bytes | float) -> list[bytes | float]:
    """A chunked reply: `head` (status line and headers), then each part as a chunk (a float: a pause)."""
    out: list[bytes | float] = [head + b"transfer-encoding: chunked\r\n\r\n"]
    for part in parts:
        out.append(part if isinstance(part, float) else b"%x\r\n%s\r\n" % (len(part), part))
    out.append(b"0\r\n\r\n")
    return out


def provider(url: str, **kwargs) -> OpenAIProvider:
    return OpenAIProvider(url, None, trust_env=False, **kwargs)


def test_the_transport_is_the_providers_own_and_proxies_and_mocks_keep_theirs(monkeypatch):
    async def main():
        own = provider("http://127.0.0.1:9/v1")
        mocked = OpenAIProvider("http://127.0.0.1:9/v1", transport=httpx2.MockTransport(lambda r: None))
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
        proxied = OpenAIProvider("http://api.example/v1", None, trust_env=True)
        monkeypatch.setenv("EMBER_HTTP_IO", "httpx2")
        opted_out = provider("http://127.0.0.1:9/v1")
        assert isinstance(own._client._transport, http_transport.Transport)
        assert own._route("/chat/completions").head is not None  # JSON calls skip httpx2's objects
        assert mocked._client._transport is not own._client._transport and mocked._own is None
        assert mocked._route("/chat/completions").head is None  # a caller's transport sees every request
        assert proxied._route("/chat/completions").head is None  # the proxy mount is httpx2's own
        assert isinstance(opted_out._client._transport, httpx2.AsyncHTTPTransport)
        for p in (own, mocked, proxied, opted_out):
            await p.aclose()

    asyncio.run(main())


def test_the_request_carries_httpx2s_headers_and_its_json_encoding():
    async def main():
        async with HTTPServer() as server:
            p = OpenAIProvider(server.url, "sk-test-key-123", trust_env=False)
            await p.complete(request(BINDING, content="café ☕"))
            head = server.heads[0].decode("latin-1").lower()
            assert head.startswith("post /v1/chat/completions http/1.1\r\n")
            for line in ("host: 127.0.0.1:", "authorization: bearer sk-test-key-123", "content-type: application/json",
                         "accept-encoding: gzip, deflate", "user-agent: python-httpx2/"):
                assert line in head
            assert f"content-length: {len(server.bodies[0])}\r\n" in head
            assert "café ☕" in server.bodies[0].decode("utf-8")  # UTF-8, not \\u escapes, as httpx2's json=
            with pytest.raises(ProviderError, match="cannot reach.*illegal header"):
                bad = OpenAIProvider(server.url, None, trust_env=False)
                bad._client.headers["X-Bad"] = "a\r\nInjected: 1"
                bad._routes.clear()
                await bad.complete(request(BINDING))
            await p.aclose()
            await bad.aclose()

    asyncio.run(main())


def test_keep_alive_reuse_and_a_server_closing_an_idle_connection():
    async def main():
        async with HTTPServer() as server:
            p = provider(server.url)
            for _ in range(3):
                assert (await p.complete(request(BINDING))).texts
            assert server.connections == 1  # one connection, kept alive
            for w in server.writers:
                w.close()  # the server drops its idle connections
            await asyncio.sleep(0.05)
            assert (await p.complete(request(BINDING))).texts  # noticed: a new connection, no error
            assert server.connections == 2
            await p.aclose()

    asyncio.run(main())


def test_large_bodies_both_ways_arrive_whole():
    big = {**fixture("openai_structured.json")}
    big["choices"] = [{**big["choices"][0], "message": {"role": "assistant", "content": "x" * 3_000_000}}]

    async def main():
        async with HTTPServer(lambda body: (200, json.dumps(big).encode())) as server:
            p = provider(server.url)
            prompt = "y" * 5_000_000  # over every send buffer: the write waits for the server to read
            out = await p.complete(request(BINDING, content=prompt))
            assert out.texts == ["x" * 3_000_000]
            assert json.loads(server.bodies[0])["messages"][0]["content"] == prompt
            await p.aclose()

    asyncio.run(main())


def test_timeouts_refusals_and_cut_connections_are_retryable_provider_errors():
    async def main():
        async with HTTPServer(lambda body: "hang") as server:
            p = provider(server.url, timeout_s=0.2)
            with pytest.raises(ProviderError, match="timed out") as info:
                await p.complete(request(BINDING))
            assert info.value.retryable
            await p.aclose()
        async with HTTPServer(lambda body: None) as server:
            p = provider(server.url)
            with pytest.raises(ProviderError, match="RemoteProtocolError|disconnected") as info:
                await p.complete(request(BINDING))
            assert info.value.retryable
            await p.aclose()
        url = server.url  # closed now: refused
        p = provider(url)
        with pytest.raises(ProviderError, match="cannot reach") as info:
            await p.complete(request(BINDING))
        assert info.value.retryable
        await p.aclose()

    asyncio.run(main())


def test_a_fan_out_to_a_host_name_makes_one_dns_lookup_and_tries_each_address(monkeypatch):
    lookups = []

    async def getaddrinfo(self, host, port, **kwargs):
        lookups.append(host)
        await asyncio.sleep(0.01)
        # an address that refuses first: the next one is tried at once
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.base_events.BaseEventLoop, "getaddrinfo", getaddrinfo)

    async def main():
        async with HTTPServer() as server:
            p = provider(server.url.replace("127.0.0.1", "api.example"))
            outs = await asyncio.gather(*(p.complete(request(BINDING)) for _ in range(8)))
            assert all(o.texts for o in outs) and server.connections == 8
            assert lookups == ["api.example"]  # eight connections, one lookup
            await p.aclose()

    asyncio.run(main())


def test_chunked_compressed_and_close_delimited_replies():
    body = CHAT
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    answers = [
        chunked(head, body[:10], 0.02, body[10:50], body[50:]),  # chunks, with a pause between
        [head + b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(gzip.compress(body)) + gzip.compress(body)],
        [head + b"content-encoding: deflate\r\ncontent-length: %d\r\n\r\n" % len(zlib.compress(body)) + zlib.compress(body)],
        [b"HTTP/1.1 100 Continue\r\n\r\n", head + b"content-length: %d\r\n\r\n" % len(body) + body],
        [head + b"connection: close\r\n\r\n" + body],  # no length: the body ends with the connection
    ]

    async def main():
        async with HTTPServer(lambda b: answers.pop(0) if answers else (200, CHAT)) as server:
            p = provider(server.url)
            first = provider(server.url)
            expected = (await first.complete(request(BINDING))).texts  # a plain reply, on its own client
            await first.aclose()
            for _ in range(6):
                assert (await p.complete(request(BINDING))).texts == expected
            # the plain reply's client had its own; then one connection for the five, and a new one
            # after the reply that said close
            assert server.connections == 3 and not answers
            await p.aclose()

    answers.insert(0, [head + b"content-length: %d\r\n\r\n" % len(body) + body])  # the plain reply
    asyncio.run(main())


def test_oversized_and_undecodable_replies_are_refused_without_being_held():
    big = 33 * 1024 * 1024
    bomb = gzip.compress(b"{" + b" " * big + b"}")
    answers = iter([
        [b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % big],  # refused by its length, unread
        chunked(b"HTTP/1.1 200 OK\r\n", *([b"x" * (1 << 20)] * 34)),  # refused as it grows
        [b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(bomb) + bomb],
        [b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 5\r\n\r\nnope!"],
        [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n" + b"nope!\r\nHTTP/1.1 junk"],
    ])

    async def main():
        async with HTTPServer(lambda b: next(answers)) as server:
            p = provider(server.url)
            for pattern in ("over 33,554,432 bytes", "over 33,554,432 bytes", "over 33,554,432 bytes"):
                with pytest.raises(ProviderError, match=pattern) as info:
                    await p.complete(request(BINDING))
                assert not info.value.retryable
            with pytest.raises(ProviderError, match="does not decode as gzip") as info:
                await p.complete(request(BINDING))
            assert info.value.retryable
            with pytest.raises(ProviderError, match="malformed JSON"):
                await p.complete(request(BINDING))
            await p.aclose()

    asyncio.run(main())


def test_a_json_exchange_is_woken_by_its_body_not_by_a_head_alone():
    # uvicorn (and so vLLM, SGLang, LiteLLM's proxy) writes a reply's head and its body apart: the reader
    # of a whole reply wakes once, when the body is in, unless the head's length is already over its cap
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"

    async def main():
        loop = asyncio.get_running_loop()
        conn = http_transport._Connection()
        for whole, woken_by_head in ((1024, False), (1, True), (None, True)):  # None: a stream's reader
            conn.begin(False, whole)
            conn.waiter = loop.create_future()
            conn.data_received(head)
            assert conn.headers_done and conn.waiter.done() is woken_by_head
            conn.data_received(b"{}")
            assert conn.complete and conn.waiter.done() and list(conn.chunks) == [b"{}"]
            conn.chunks.clear()

    asyncio.run(main())


def test_a_streamed_reply_arrives_event_by_event_through_httpx2():
    events = [e.encode() for e in sse_events("openai_chat_stream.sse")]
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    seen: list[str] = []

    async def main():
        async with HTTPServer(lambda b: chunked(head, *[x for e in events for x in (e, 0.01)])) as server:
            p = provider(server.url)
            streamed = request(BINDING)
            streamed.on_text = seen.append
            out = await p.complete(streamed)
            assert out.texts == ["".join(seen)] and len(seen) > 1  # deltas, as they came
            assert json.loads(server.bodies[0])["stream"] is True
            await asyncio.sleep(0.3)  # the body's terminator comes 10 ms after [DONE], read in the background
            assert (await p.complete(streamed)).texts == out.texts
            assert server.connections == 1  # the first stream's connection was kept for the second
            await p.aclose()

    asyncio.run(main())


def streaming():
    r = request(BINDING)
    r.on_text = lambda delta: None
    return r


def test_a_streams_connection_is_closed_when_its_end_does_not_come_or_it_is_cut_short(monkeypatch):
    monkeypatch.setattr(http_transport, "DRAIN_S", 0.05)
    events = [e.encode() for e in sse_events("openai_chat_stream.sse")]
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    endless = [head, *(b"%x\r\n%s\r\n" % (len(e), e) for e in events), 3600.0]  # no terminating chunk

    async def main():
        async with HTTPServer(lambda b: endless) as server:
            p = provider(server.url)
            first = await p.complete(streaming())
            await asyncio.sleep(0.3)  # past DRAIN_S: the background read gave up and closed the connection
            assert (await p.complete(streaming())).texts == first.texts
            assert server.connections == 2
            await p.aclose()
        slow = [head, b"%x\r\n%s\r\n" % (len(events[0]), events[0]), 3600.0]
        async with HTTPServer(lambda b: slow if len(server.bodies) == 1 else (200, CHAT)) as server:
            p = provider(server.url)
            call = asyncio.ensure_future(p.complete(streaming()))
            await asyncio.sleep(0.1)
            call.cancel()  # mid-stream (a served client left): the server must see the connection close
            with pytest.raises(asyncio.CancelledError):
                await call
            assert (await p.complete(request(BINDING))).texts
            assert server.connections == 2
            await p.aclose()

    asyncio.run(main())


def test_a_cancelled_call_closes_its_connection():
    async def main():
        async with HTTPServer(lambda b: "hang" if len(server.bodies) == 1 else (200, CHAT)) as server:
            p = provider(server.url)
            call = asyncio.ensure_future(p.complete(request(BINDING)))
            await asyncio.sleep(0.05)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert (await p.complete(request(BINDING))).texts
            assert server.connections == 2  # the cancelled exchange's connection was not reused
            await p.aclose()

    asyncio.run(main())


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls(tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts it (trust_env)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def main():
        async with HTTPServer(ssl_context=server_ctx) as server:
            p = OpenAIProvider(server.url, None)
            assert p._route("/chat/completions").head is not None  # TLS goes the direct way too
            for _ in range(2):
                assert (await p.complete(request(BINDING))).texts
            assert server.connections == 1
            await p.aclose()
        monkeypatch.delenv("SSL_CERT_FILE")
        async with HTTPServer(ssl_context=server_ctx) as server:  # not trusted now
            p = OpenAIProvider(server.url, None)
            with pytest.raises(ProviderError, match="cannot reach.*CERTIFICATE_VERIFY_FAILED"):
                await p.complete(request(BINDING))
            await p.aclose()

    asyncio.run(main())


def test_trace_is_written_when_the_run_goes_quiet_and_complete_at_close(tmp_path):
    path = tmp_path / "t" / "trace.jsonl"

    async def main():
        tracer = Tracer(path)
        reasons = ["stop"]
        tracer.span("t", tracer.new_span_id(), None, "chat m", "CLIENT", 1.0, 2.0, "OK",
                    {"gen_ai.response.finish_reasons": reasons, "x": Path("p")})
        assert not path.exists()  # nothing written on the call path
        await asyncio.sleep(IDLE_FLUSH_S / 2)
        assert not path.exists()  # not before the run has been quiet for IDLE_FLUSH_S
        await asyncio.sleep(IDLE_FLUSH_S)
        assert len(path.read_text().splitlines()) == 1  # written while the run waits
        tracer.span("t", tracer.new_span_id(), None, "node n", "INTERNAL", 1.0, 2.0, "OK", {})
        tracer.close()
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert [s["name"] for s in lines] == ["chat m", "node n"]
        assert lines[0]["attributes"] == {"gen_ai.response.finish_reasons": ["stop"], "x": "p"}
        assert lines[0]["start_time_unix_nano"] == 1_000_000_000

    virtual_run(main())  # the sleeps are virtual: the idle timer fires exactly when due
    outside = Tracer(tmp_path / "sync.jsonl")  # no event loop: written at close
    outside.span("t", "s", None, "n", "INTERNAL", 0.0, 1.0, "OK", {})
    outside.close()
    assert len((tmp_path / "sync.jsonl").read_text().splitlines()) == 1

"""The providers' socket I/O on asyncio (providers/http_io.py), against real local servers: keep-alive
reuse, a server closing an idle connection, large bodies both ways (flow control), timeouts, refused
and cut connections, TLS — and the trace writer that keeps its writing off the call path."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import httpx2
import pytest

from ember_compiler.errors import ProviderError
from ember_compiler.providers import http_io
from ember_compiler.providers.openai import OpenAIProvider
from ember_compiler.runtime.trace import IDLE_FLUSH_S, Tracer
from ember_compiler.testing.clock import run as virtual_run
from ember_compiler.testing.providers import fixture, request

BINDING = {"provider": "openai", "model": "m", "max_tokens": 8}


class HTTPServer:
    """A minimal HTTP/1.1 keep-alive server on 127.0.0.1: `answer(body) -> (status, bytes) | None`
    (None: hang up without answering; "hang": never answer)."""

    def __init__(self, answer=None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer or (lambda body: (200, json.dumps(fixture("openai_structured.json")).encode()))
        self.ssl = ssl_context
        self.connections = 0
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
                status, payload = out
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                             % (status, len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def provider(url: str, **kwargs) -> OpenAIProvider:
    return OpenAIProvider(url, None, trust_env=False, **kwargs)


def test_the_backend_is_installed_only_on_the_providers_own_pools(monkeypatch):
    async def main():
        own = provider("http://127.0.0.1:9/v1")
        mocked = OpenAIProvider("http://127.0.0.1:9/v1", transport=httpx2.MockTransport(lambda r: None))
        monkeypatch.setenv("EMBER_HTTP_IO", "anyio")
        opted_out = provider("http://127.0.0.1:9/v1")
        pools = [getattr(getattr(p._client, "_transport", None), "_pool", None) for p in (own, mocked, opted_out)]
        assert isinstance(pools[0]._network_backend, http_io.AsyncioBackend)
        assert pools[1] is None  # a caller's transport is left alone
        assert not isinstance(pools[2]._network_backend, http_io.AsyncioBackend)
        for p in (own, mocked, opted_out):
            await p.aclose()

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
            assert isinstance(p._client._transport._pool._network_backend, http_io.AsyncioBackend)
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

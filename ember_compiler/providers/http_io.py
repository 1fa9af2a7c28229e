"""Socket I/O of the HTTP providers' connection pools, on asyncio itself (an httpcore2 network backend).

httpx2 does its socket I/O through anyio by default: every read and write opens a cancel scope
(`fail_after`), every write first yields to the event loop, and the pool probes each idle connection
with a `poll()` syscall whenever any request starts or ends. On the provider call path that is a
quarter of the client's CPU per request, paid on one event loop for every request of a fan-out — so
the providers' own pools (`HTTPProvider`, not proxy mounts or a caller's `transport=`) use this
backend instead: an `asyncio.Protocol` per connection that buffers what arrives, a read that
returns buffered bytes without waiting, a write that hands its bytes to the transport at once, a
timer only when a read (or a full send buffer) must wait, and an idle connection's state read from
the protocol (data, EOF, close) instead of a syscall.

Behaviour is httpcore2's: the same exceptions (`ConnectError`, `ConnectTimeout`, `ReadError`,
`ReadTimeout`, `WriteError`, `WriteTimeout`, which httpx2 maps to its own), per-operation timeouts,
TLS via `loop.start_tls`, Happy Eyeballs for host names (250 ms, as anyio), socket options, Unix
sockets. A TLS connection is closed without the close_notify exchange, as anyio does for HTTP.

`EMBER_HTTP_IO=anyio` keeps httpx2's default backend (a way out, should a platform misbehave).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import itertools
import os
import socket
import ssl
from asyncio import staggered
from collections.abc import Iterable
from typing import Any

import httpcore2

HIGH_WATER = 256 * 1024  # buffered bytes at which the transport stops reading until the reader catches up
HAPPY_EYEBALLS_DELAY_S = 0.25
DNS_REUSE_S = 10.0  # how long a pool reuses a host name's addresses for new connections (as aiohttp)


class _Protocol(asyncio.Protocol):
    """One connection's receive buffer and the futures of a reader or a writer waiting on it."""

    __slots__ = ("transport", "chunks", "size", "eof", "exc", "reader", "writer", "paused", "write_paused")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.eof = False
        self.exc: BaseException | None = None
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.paused = False  # reading paused: the buffer is over HIGH_WATER
        self.write_paused = False  # the transport's send buffer is full

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        _wake(self.reader)

    def eof_received(self) -> bool:
        self.eof = True
        _wake(self.reader)
        return False  # let the transport close: HTTP/1.1 does not half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.exc = exc
        _wake(self.reader)
        _wake(self.writer)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self.writer)


def _wake(fut: asyncio.Future[None] | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


async def _wait(fut: asyncio.Future[None], timeout: float | None) -> None:
    """Await `fut`, raising TimeoutError after `timeout` seconds (a plain timer: no task, no scope)."""
    if timeout is None:
        await fut
        return
    handle = asyncio.get_running_loop().call_later(timeout, _expire, fut)
    try:
        await fut
    finally:
        handle.cancel()


class AsyncioStream(httpcore2.AsyncNetworkStream):
    __slots__ = ("_transport", "_protocol")

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self._protocol
        if not p.chunks and not p.eof:
            fut = p.reader = asyncio.get_running_loop().create_future()
            try:
                await _wait(fut, timeout)
            except TimeoutError:
                raise httpcore2.ReadTimeout(f"no data within {timeout:g}s") from None
            finally:
                p.reader = None
        if p.chunks:
            data = p.chunks.popleft()
            if len(data) > max_bytes:
                p.chunks.appendleft(data[max_bytes:])
                data = data[:max_bytes]
            p.size -= len(data)
            if p.paused and p.size <= HIGH_WATER // 2:
                p.paused = False
                self._transport.resume_reading()
            return data
        if p.exc is not None:
            raise httpcore2.ReadError(f"{type(p.exc).__name__}: {p.exc}")
        return b""  # the peer closed the connection

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        t, p = self._transport, self._protocol
        if t.is_closing():
            raise httpcore2.WriteError("the connection is closed"
                                       + (f" ({type(p.exc).__name__}: {p.exc})" if p.exc else ""))
        t.write(buffer)
        if p.write_paused:  # the kernel's send buffer is full: wait until it drains
            fut = p.writer = asyncio.get_running_loop().create_future()
            try:
                await _wait(fut, timeout)
            except TimeoutError:
                raise httpcore2.WriteTimeout(f"could not send within {timeout:g}s") from None
            finally:
                p.writer = None
            if p.exc is not None:
                raise httpcore2.WriteError(f"{type(p.exc).__name__}: {p.exc}")

    async def aclose(self) -> None:
        t = self._transport
        if t.get_extra_info("ssl_object") is not None:
            t.abort()  # no close_notify exchange (anyio's `standard_compatible=False`)
        else:
            t.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                                 server_hostname=server_hostname,
                                                 ssl_handshake_timeout=timeout or None)
        except TimeoutError:
            self._transport.abort()
            raise httpcore2.ConnectTimeout(f"TLS handshake took over {timeout:g}s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.abort()
            raise httpcore2.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        if transport is None:  # pragma: no cover - the connection closed during the handshake
            raise httpcore2.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport  # type: ignore[assignment]
        return AsyncioStream(transport, self._protocol)  # type: ignore[arg-type]

    def get_extra_info(self, info: str) -> Any:
        t = self._transport
        if info == "ssl_object":
            return t.get_extra_info("ssl_object")
        if info == "client_addr":
            return t.get_extra_info("sockname")
        if info == "server_addr":
            return t.get_extra_info("peername")
        if info == "socket":
            return t.get_extra_info("socket")
        if info == "is_readable":  # asked of an idle connection: the server closed it (or sent junk)
            p = self._protocol
            return bool(p.chunks) or p.eof or t.is_closing()
        return None


class AsyncioBackend(httpcore2.AsyncNetworkBackend):
    """One per connection pool. Concurrent connections to one host name share one DNS lookup (a
    fresh run's fan-out opens a connection per request at once), reused for `DNS_REUSE_S`."""

    def __init__(self) -> None:
        self._lookups: dict[tuple[str, int], tuple[asyncio.Future[list[Any]], float]] = {}

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                if local_address or _is_address(host):  # asyncio's own path: no lookup for an address
                    transport, protocol = await loop.create_connection(
                        _Protocol, host, port, local_addr=(local_address, 0) if local_address else None,
                        happy_eyeballs_delay=None if _is_address(host) else HAPPY_EYEBALLS_DELAY_S)
                else:
                    sock = await _connect_any(loop, await self._resolve(loop, host, port))
                    transport, protocol = await loop.create_connection(_Protocol, sock=sock)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"no connection to {host}:{port} within {timeout}s") from None
        except OSError as exc:
            raise httpcore2.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _with_options(transport, protocol, socket_options)

    async def _resolve(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[Any]:
        key = (host, port)
        entry = self._lookups.get(key)
        if entry is None or entry[1] < loop.time() or entry[0].get_loop() is not loop:
            lookup = asyncio.ensure_future(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
            entry = self._lookups[key] = (lookup, loop.time() + DNS_REUSE_S)

            def forget_failure(done: asyncio.Future[list[Any]]) -> None:
                if (done.cancelled() or done.exception() is not None) and self._lookups.get(key) is entry:
                    del self._lookups[key]  # the next connection asks again

            lookup.add_done_callback(forget_failure)
        return await asyncio.shield(entry[0])  # one caller's cancellation leaves the others' lookup

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore2.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"no connection to {path} within {timeout}s") from None
        except OSError as exc:
            raise httpcore2.ConnectError(f"{type(exc).__name__}: {exc}") from exc
        return _with_options(transport, protocol, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect_any(loop: asyncio.AbstractEventLoop, infos: list[Any]) -> socket.socket:
    """A connected socket to the first of `infos` that answers: Happy Eyeballs (RFC 8305) as asyncio's
    `create_connection` does it — families interleaved, the next attempt started after
    `HAPPY_EYEBALLS_DELAY_S` or at once when one fails."""
    by_family: dict[int, list[Any]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    ordered = [i for group in itertools.zip_longest(*by_family.values()) for i in group if i is not None]

    async def attempt(info: Any) -> socket.socket:
        family, kind, proto, _, address = info
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    if len(ordered) == 1:
        return await attempt(ordered[0])
    sock, _, errors = await staggered.staggered_race([functools.partial(attempt, i) for i in ordered],
                                                     HAPPY_EYEBALLS_DELAY_S)
    if sock is None:
        errors = [e for e in errors if e is not None]
        if len(errors) == 1:
            raise errors[0]
        raise OSError(f"all connection attempts failed: {'; '.join(str(e) for e in errors)}")
    return sock


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _with_options(transport: Any, protocol: Any, options: Iterable[Any] | None) -> AsyncioStream:
    if options:
        sock = transport.get_extra_info("socket")
        try:
            for option in options:
                sock.setsockopt(*option)
        except OSError as exc:
            transport.abort()
            raise httpcore2.ConnectError(f"{type(exc).__name__}: {exc}") from exc
    return AsyncioStream(transport, protocol)


def install(client: Any) -> bool:
    """Give `client`'s default pool (an httpx2.AsyncClient built without `transport=`) this backend,
    before it opened any connection. False (and nothing changed) when the client is not laid out as
    expected — another httpx2 version — or when `EMBER_HTTP_IO=anyio`."""
    if os.environ.get("EMBER_HTTP_IO", "").strip().lower() == "anyio":
        return False
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if type(pool) is not httpcore2.AsyncConnectionPool or not hasattr(pool, "_network_backend") \
            or pool.connections:
        return False
    pool._network_backend = AsyncioBackend()
    return True

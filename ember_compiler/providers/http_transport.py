"""The HTTP providers' transport for httpx2: HTTP/1.1 on asyncio protocols, parsed by httptools.

httpx2's default transport (httpcore2) costs most of a provider call's CPU: its pool walks every
connection whenever a request starts or ends (`is_idle`, `is_closed`, `has_expired` on each, so a
request's cost grows with the requests in flight), h11 parses each response in pure Python, and
anyio opens a cancel scope around every read and write. The call path is where Ember spends its
CPU — every request of a fan-out, every request `ember serve` forwards — so the providers' own
clients (`HTTPProvider`, not proxy mounts or a caller's `transport=`) use this transport instead:

- one `asyncio.Protocol` per connection feeds what arrives straight into an httptools response
  parser (the C parser uvicorn uses): headers, body chunks and the message's end are callbacks, and
  a read returns buffered chunks without waiting;
- idle connections wait in a stack per origin: taking one is a pop, returning it a push (the most
  recently used first; the oldest expire from the bottom), whatever the number in flight;
- a timer only when a read, the response head or a full send buffer must wait.

Behaviour is what httpx2 promises of a transport: its exceptions (`ConnectError`, `ConnectTimeout`,
`ReadError`, `ReadTimeout`, `WriteError`, `WriteTimeout`, `RemoteProtocolError`), per-operation
timeouts (connect, read, write), keep-alive with an expiry, TLS (the client's context), Happy
Eyeballs for host names (250 ms, as anyio) with one DNS lookup shared by a fan-out's new
connections, flow control both ways. HTTP/2 and upgrades are not spoken (the providers use neither).
A TLS connection is closed without the close_notify exchange, as anyio does for HTTP.

`EMBER_HTTP_IO=httpx2` keeps httpx2's default transport (a way out, should a platform misbehave).
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
from typing import Any

import httptools
import httpx2

HIGH_WATER = 256 * 1024  # buffered body bytes at which the socket stops being read until the reader catches up
HAPPY_EYEBALLS_DELAY_S = 0.25
DNS_REUSE_S = 10.0  # how long a transport reuses a host name's addresses for new connections (as aiohttp)
DEFAULT_PORTS = {b"http": 80, b"https": 443}
DRAIN_S = 1.0  # how long a finished stream's connection waits in the background for the reply's end
DRAIN_BYTES = 64 * 1024  # and how much of it it reads (more: the connection is closed instead)
DRAIN_LATER = "ember.drain_later"


def default(ssl_context: ssl.SSLContext, *, keepalive_expiry: float = 30.0,
            max_idle: int = 1024) -> Transport | None:
    """The providers' transport, or None (httpx2's own) when `EMBER_HTTP_IO=httpx2` (or `anyio`)."""
    if os.environ.get("EMBER_HTTP_IO", "").strip().lower() in ("httpx2", "anyio"):
        return None
    return Transport(ssl_context, keepalive_expiry=keepalive_expiry, max_idle=max_idle)


class Transport(httpx2.AsyncBaseTransport):
    """An httpx2 transport: a stack of idle keep-alive connections per origin, no bound on open ones
    (the runtime's gates bound the requests in flight)."""

    def __init__(self, ssl_context: ssl.SSLContext, *, keepalive_expiry: float = 30.0,
                 max_idle: int = 1024) -> None:
        self._ssl = ssl_context
        self._expiry = keepalive_expiry
        self._max_idle = max_idle
        self._idle: dict[tuple[bytes, bytes, int], collections.deque[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._lookups: dict[tuple[str, int], tuple[asyncio.Future[list[Any]], float]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = request.url
        key = origin(url)
        timeouts = request.extensions.get("timeout") or {}
        body = request.content if hasattr(request, "_content") else b"".join([c async for c in request.stream])
        conn = await self._open(key, _request_head(request) + body, timeouts, request, request.method == "HEAD")
        stream = _Body(self, key, conn, timeouts.get("read"), request)
        return httpx2.Response(conn.status, headers=conn.headers, stream=stream, request=request,
                               extensions={"http_version": b"HTTP/1.1", "reason_phrase": conn.reason,
                                           DRAIN_LATER: stream.drain_later})

    async def exchange(self, key: tuple[bytes, bytes, int], data: bytes, timeout: float,
                       cap: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one complete request (`data`: its head and body) and read the whole reply: (status,
        headers, body as sent, not decoded). The providers' JSON calls take this path, without
        httpx2's request and response objects. Raises httpx2's exceptions, or `TooLarge` past `cap`."""
        conn = await self._open(key, data, {"connect": timeout, "read": timeout, "write": timeout}, None, False,
                                whole=cap)
        try:
            length = conn.content_length()
            if length is not None and length > cap:
                raise TooLarge(length)
            chunks: list[bytes] = []
            size = 0
            while (chunk := await conn.read(timeout, None)) is not None:
                size += len(chunk)
                if size > cap:
                    raise TooLarge(size)
                chunks.append(chunk)
        except BaseException:
            self._busy.discard(conn)
            conn.close()
            raise
        self._release(key, conn)
        return conn.status, conn.headers, chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _open(self, key: tuple[bytes, bytes, int], data: bytes, timeouts: dict[str, Any],
                    request: httpx2.Request | None, head_only: bool, whole: int | None = None) -> _Connection:
        """A connection (an idle one, else a new one) that has sent `data` and received a reply's head."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        conn = self._take(key)
        if conn is None:
            conn = await self._connect(key, timeouts.get("connect"), request)
        self._busy.add(conn)
        try:
            conn.begin(head_only, whole)
            await conn.send(data, timeouts.get("write"), request)
            await conn.head(timeouts.get("read"), request)
        except BaseException:  # a failure or a cancellation mid-exchange: the connection is not reusable
            self._busy.discard(conn)
            conn.close()
            raise
        return conn

    def _take(self, key: tuple[bytes, bytes, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        deadline = asyncio.get_running_loop().time() - self._expiry
        while idle:
            conn = idle.pop()
            if conn.usable() and conn.idle_since > deadline:
                return conn
            conn.close()
        return None

    def _release(self, key: tuple[bytes, bytes, int], conn: _Connection) -> None:
        self._busy.discard(conn)
        if self._closed or not conn.reusable():
            conn.close()
            return
        now = asyncio.get_running_loop().time()
        conn.idle_since = now
        idle = self._idle.setdefault(key, collections.deque())
        while idle and (idle[0].idle_since <= now - self._expiry or len(idle) >= self._max_idle):
            idle.popleft().close()  # the oldest: expired, or one too many
        idle.append(conn)

    async def _connect(self, key: tuple[bytes, bytes, int], timeout: float | None,
                       request: httpx2.Request) -> _Connection:
        scheme, raw_host, port = key
        host = raw_host.decode("ascii")
        loop = asyncio.get_running_loop()
        tls = self._ssl if scheme == b"https" else None
        try:
            async with asyncio.timeout(timeout):
                if _is_address(host):
                    _, conn = await loop.create_connection(_Connection, host, port, ssl=tls,
                                                           ssl_handshake_timeout=timeout if tls else None)
                else:
                    sock = await _connect_any(loop, await self._resolve(loop, host, port))
                    _, conn = await loop.create_connection(_Connection, sock=sock, ssl=tls,
                                                           server_hostname=host if tls else None,
                                                           ssl_handshake_timeout=timeout if tls else None)
        except TimeoutError:
            raise httpx2.ConnectTimeout(f"no connection to {host}:{port} within {timeout:g}s",
                                        request=request) from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx2.ConnectError(f"{type(exc).__name__}: {exc}", request=request) from None
        return conn

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

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._busy.clear()


class TooLarge(Exception):
    """A reply's body is over the cap given to `exchange` (`size`: its length, or the bytes so far)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def origin(url: httpx2.URL) -> tuple[bytes, bytes, int]:
    """(scheme, host, port): the connections a URL may share."""
    scheme = url.raw_scheme
    if scheme not in DEFAULT_PORTS:
        raise httpx2.UnsupportedProtocol(f"unsupported URL scheme {scheme.decode()!r}")
    return scheme, url.raw_host, url.port or DEFAULT_PORTS[scheme]


def request_head(method: str, url: httpx2.URL, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A request's head (without its blank last line when `headers` lack Content-Length: the caller
    adds it). Header names and values are checked: a CR or LF would split the request."""
    lines = [b"%s %s HTTP/1.1\r\n" % (method.encode("ascii"), url.raw_path)]
    for name, value in headers:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name or b":" in name:
            raise httpx2.LocalProtocolError(f"illegal header {name.decode('latin-1')!r}")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def drain_later(response: httpx2.Response) -> None:
    """Mark a reply whose reader has all it wants and whose end is near — a stream after its last event,
    whose chunked body's terminator may still be on its way. Closing it then reads that end in the
    background (for up to `DRAIN_S`, at most `DRAIN_BYTES`) and returns the connection to its stack:
    otherwise every streamed call would open a new connection (over TLS, a new handshake). A reply
    closed unmarked, e.g. a stream cut short, closes its connection so that the server stops sending.
    Replies of other transports are left as they are."""
    mark = response.extensions.get(DRAIN_LATER)  # the client wraps the stream: the mark is an extension
    if mark is not None:
        mark()


def _request_head(request: httpx2.Request) -> bytes:
    return request_head(request.method, request.url, request.headers.raw) + b"\r\n"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: the socket's protocol, the response parser's callbacks, and the
    futures of a reader or a writer waiting on it. One exchange at a time (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: Any = None
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.no_body = False  # the answer to a HEAD: complete at its head, and not reused
        self.whole: int | None = None  # `exchange`: the reader wants the whole reply, of at most this many
        # bytes, so a head alone does not wake it (unless its length is over that)
        self.eof = False
        self.error: BaseException | None = None  # a parse error or the socket's
        self.waiter: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.paused = False
        self.write_paused = False
        self.stray = False  # bytes arrived while no exchange was under way
        self.idle_since = 0.0
        self.then: Any = None  # while a finished stream's end is read in the background: what follows it
        self.drain_timer: asyncio.TimerHandle | None = None
        self.drained = 0

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.parser is None or self.complete:
            self.stray = True  # an idle connection got data (or junk): it is not reused
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = httpx2.RemoteProtocolError("the server switched protocols (not supported)")
        except httptools.HttpParserError as exc:
            self.error = httpx2.RemoteProtocolError(f"malformed HTTP response: {exc}")
        if self.then is not None:
            if self.complete or self.error is not None or self.drained > DRAIN_BYTES:
                self._drained()
            return
        if self.size > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        if self.whole is not None and not (self.chunks or self.complete or self.error is not None) \
                and (self.content_length() or 0) <= self.whole:
            return  # a head without its body (uvicorn, and so vLLM, writes them apart): one wake-up fewer
        _wake(self.waiter)

    def eof_received(self) -> bool:
        self.eof = True
        if self.then is not None:
            self._drained()
        _wake(self.waiter)
        return False  # let the transport close: HTTP/1.1 does not half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        if self.then is not None:
            self._drained()
        _wake(self.waiter)
        _wake(self.writer)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        _wake(self.writer)

    # -- httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            self.reason = b""
            return
        self.status = status
        self.headers_done = True
        if self.no_body:
            self.complete = True

    def on_body(self, body: bytes) -> None:
        if self.then is not None:  # the end of a finished stream: nobody reads it
            self.drained += len(body)
            return
        self.chunks.append(body)
        self.size += len(body)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive() and not self.no_body

    # -- one exchange ----------------------------------------------------------------------------
    def usable(self) -> bool:
        return not (self.eof or self.stray or self.error is not None or self.transport is None
                    or self.transport.is_closing())

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.chunks and self.usable()

    def begin(self, no_body: bool, whole: int | None = None) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.reason, self.headers = 0, b"", []
        self.headers_done = self.complete = self.keep_alive = False
        self.no_body = no_body
        self.whole = whole

    async def send(self, data: bytes, timeout: float | None, request: httpx2.Request) -> None:
        t = self.transport
        if t is None or t.is_closing():
            raise httpx2.WriteError("the connection is closed", request=request)
        t.write(data)
        if self.write_paused:  # the kernel's send buffer is full: wait until it drains
            self.writer = asyncio.get_running_loop().create_future()
            try:
                await _wait(self.writer, timeout)
            except TimeoutError:
                raise httpx2.WriteTimeout(f"could not send within {timeout:g}s", request=request) from None
            finally:
                self.writer = None
            if self.error is not None and not self.headers_done:
                raise httpx2.WriteError(_describe(self.error), request=request)

    async def head(self, timeout: float | None, request: httpx2.Request) -> None:
        """Wait for the response's status line and headers."""
        while not self.headers_done:
            self._check(request)
            await self._wait_data(timeout, request)

    async def read(self, timeout: float | None, request: httpx2.Request) -> bytes | None:
        """The next body chunk; None at the message's end."""
        while not self.chunks:
            if self.complete:
                return None
            if self.eof and self.error is None and self.until_close():
                self.complete = True  # a body delimited by the connection's end
                return None
            self._check(request)
            await self._wait_data(timeout, request)
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.paused and self.size <= HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def drain(self, then: Any) -> bool:
        """Read the rest of the reply in the background, then call `then` (see `drain_later`); False
        when there is nothing to wait for or no point in it (the connection could not be reused)."""
        if self.complete or not self.usable() or not self.headers_done or self.until_close():
            return False
        self.chunks.clear()
        self.size = self.drained = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self.then = then
        self.drain_timer = asyncio.get_running_loop().call_later(DRAIN_S, self._drained)
        return True

    def _drained(self) -> None:
        """The background read's end: the reply complete (the connection is reused), or given up on."""
        then, self.then = self.then, None
        if self.drain_timer is not None:
            self.drain_timer.cancel()
            self.drain_timer = None
        if then is not None:
            then()

    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name.lower() == b"content-length":
                return int(value) if value.isdigit() else None
        return None

    def until_close(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return self.headers_done and b"content-length" not in names and b"transfer-encoding" not in names

    def _check(self, request: httpx2.Request) -> None:
        if isinstance(self.error, httpx2.RemoteProtocolError):
            raise httpx2.RemoteProtocolError(str(self.error), request=request)
        if self.error is not None:
            raise httpx2.ReadError(_describe(self.error), request=request)
        if self.eof:
            raise httpx2.RemoteProtocolError("Server disconnected without sending a complete response"
                                             if self.headers_done else "Server disconnected without sending a response.",
                                             request=request)

    async def _wait_data(self, timeout: float | None, request: httpx2.Request) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await _wait(self.waiter, timeout)
        except TimeoutError:
            raise httpx2.ReadTimeout(f"no data within {timeout:g}s", request=request) from None
        finally:
            self.waiter = None

    def close(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            if t.get_extra_info("ssl_object") is not None:
                t.abort()  # no close_notify exchange (anyio's `standard_compatible=False`)
            else:
                t.close()


class _Body(httpx2.AsyncByteStream):
    """A response's body as it arrives; closing it returns the connection to its stack (when the
    message was read to its end, or its end is read in the background after `drain_later`, and the
    server keeps the connection alive) or closes it."""

    def __init__(self, owner: Transport, key: tuple[bytes, bytes, int], conn: _Connection,
                 timeout: float | None, request: httpx2.Request) -> None:
        self._owner, self._key, self._conn, self._timeout, self._request = owner, key, conn, timeout, request
        self._released = False
        self.drain = False  # see `drain_later`

    def drain_later(self) -> None:
        self.drain = True

    async def __aiter__(self):
        conn, timeout, request = self._conn, self._timeout, self._request
        while True:
            chunk = await conn.read(timeout, request)
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            release = functools.partial(self._owner._release, self._key, self._conn)
            if not (self.drain and self._conn.drain(release)):
                release()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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

"""What the HTTP providers (openai, anthropic, gemini) share: an httpx2 client per endpoint (its socket
I/O on asyncio and httptools: `http_transport.py`), one attempt per request — a JSON reply (`post`) or a stream of
server-sent events (`post_stream`) — failures turned into `ProviderError`s the runtime's retry loop
can act on, the rate-limit headers read, and the API key scrubbed from every message.

The key lives only in the client's default headers: never in URLs (which transports and loggers
print), never in an error, never in `repr`.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import os
import re
import ssl
import time
import zlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx2

from ..errors import ConfigError, ProviderError
from . import http_transport, sse
from .base import RateLimits

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
FINAL_STATUSES = frozenset({400, 401, 403, 404, 422})  # the same request fails again, whatever a header says
MAX_HINT_S = 24 * 3600.0  # a larger hint is nonsense; the runtime compares hints with its deadline
MIN_SECRET_CHARS = 8  # a shorter "key" is not scrubbed: replacing every `k` would mangle all output
# NOTE: [Response size] a completion is at most a few MB; a hostile or broken server could send
# gigabytes. The body is read in chunks and refused past this size, never held whole.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_NOT_IN_HEADER = re.compile(r"[^\x21-\x7e]")  # a key is visible ASCII; anything else cannot be sent


def read_key(env: str | None) -> str | None:
    """The key in `$env` without surrounding whitespace (a trailing newline from `$(cat key.txt)`);
    None when unset or blank. A key with characters no header can carry is a `ConfigError` naming
    the variable, never the value."""
    if not env:
        return None
    key = os.environ.get(env, "").strip()
    if _NOT_IN_HEADER.search(key):
        raise ConfigError(f"{env} holds characters an HTTP header cannot carry (control characters, spaces "
                          "or non-ASCII inside the key): set it to the key alone")
    return key or None


def scrubbable(secret: str | None) -> bool:
    return bool(secret) and len(secret) >= MIN_SECRET_CHARS  # type: ignore[arg-type]


def scrub_tree(value: Any, scrub: Any) -> Any:
    """`value` (decoded JSON) with `scrub` applied to every string in it, before anything is cut."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_tree(k, scrub): scrub_tree(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_tree(v, scrub) for v in value]
    return value


class HTTPProvider:
    """Base of the HTTP wire formats. Subclasses build bodies, parse replies and read error bodies."""

    name = "http"
    supports_n = False
    default_base_url = ""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 transport: httpx2.AsyncBaseTransport | None = None, timeout_s: float = 60,
                 concurrency: int = 32, trust_env: bool = True, name: str | None = None,
                 structured: bool = True) -> None:
        if name:
            self.name = name
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.timeout_s = float(timeout_s)
        self.structured = structured  # may this endpoint be sent a JSON schema (Request.schema)?
        self._concurrency = concurrency
        self._secret = api_key if scrubbable(api_key) else None
        tls = ssl_context(trust_env)
        self._own = http_transport.default(tls) if transport is None else None
        self._routes: dict[str, _Route] = {}
        self._client = httpx2.AsyncClient(
            headers={**self.base_headers(), **(self.auth_headers(api_key) if api_key else {})},
            timeout=httpx2.Timeout(self.timeout_s),
            # no pool bound: the runtime's gates bound the requests in flight (a pool bound would queue
            # requests that hold a gate slot, and count pool waits against their timeout)
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=1024, keepalive_expiry=30),
            transport=transport,
            trust_env=trust_env,
            verify=tls,
        )
        # HTTP/1.1 on asyncio and httptools, not httpcore2 (http_transport.py). Set after the client is
        # built: httpx2 reads the proxy variables only for a client built without `transport=`, and
        # the proxies' mounts stay httpx2's own.
        if self._own is not None and type(getattr(self._client, "_transport", None)) is httpx2.AsyncHTTPTransport:
            self._client._transport = self._own
        else:
            self._own = None  # another httpx2 layout: its default transport stays

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def base_headers(self) -> dict[str, str]:
        """Headers every request carries, with a key or without (e.g. an API version)."""
        return {}

    def __repr__(self) -> str:  # never the key
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        return self._concurrency

    async def aclose(self) -> None:
        await self._client.aclose()
        await asyncio.sleep(0)  # the closed connections' sockets are released on the loop's next turn

    def timeout_for(self, binding: dict[str, Any]) -> float:
        return float(binding.get("timeout_s") or self.timeout_s)

    def use_schema(self, binding: dict[str, Any], schema: dict[str, Any] | None) -> bool:
        """Send the schema? The binding's `structured_output` decides, else this endpoint's default."""
        flag = binding.get("structured_output")
        return schema is not None and (self.structured if flag is None else bool(flag))

    # -- one attempt ------------------------------------------------------------------------------

    def _route(self, url: str) -> _Route:
        route = self._routes.get(url)
        if route is None:  # parsed once per path, not per request
            if len(self._routes) >= 256:
                self._routes.clear()
            route = self._routes[url] = _Route(self, url)
        return route

    async def post(self, url: str, body: dict[str, Any], *, timeout_s: float | None = None,
                   ) -> tuple[dict[str, Any], httpx2.Headers]:
        """POST once; the decoded JSON object and the response headers, or a `ProviderError`."""
        timeout = timeout_s or self.timeout_s
        try:
            route = self._route(url)
            if route.head is not None:  # Ember's own transport, straight (no proxy): no httpx2 objects
                return await self._post_direct(route, body, timeout)
            request = self._client.build_request("POST", route.target, json=body, timeout=timeout)
            resp = await self._client.send(request, stream=True)
            try:
                content = await _read_capped(resp)
            finally:
                await resp.aclose()
        except httpx2.TimeoutException:
            raise ProviderError(f"request timed out after {timeout:g}s", retryable=True) from None
        except httpx2.TransportError as exc:
            raise ProviderError(self.scrub(f"cannot reach {self.base_url}: {type(exc).__name__}: {exc}"),
                                retryable=True) from None
        if resp.status_code != 200:
            raise self.http_error(resp, content)
        return self._json_body(200, resp.headers, content), resp.headers

    async def _post_direct(self, route: _Route, body: dict[str, Any], timeout: float,
                           ) -> tuple[dict[str, Any], httpx2.Headers]:
        data = _json_bytes(body)
        assert self._own is not None and route.head is not None
        try:
            status, raw, content = await self._own.exchange(
                route.key, b"%sContent-Length: %d\r\n\r\n%s" % (route.head, len(data), data), timeout,
                MAX_RESPONSE_BYTES)
        except http_transport.TooLarge as exc:
            raise _too_large(200, exc.size, MAX_RESPONSE_BYTES) from None
        headers = httpx2.Headers(raw)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            content = _decoded(status, encoding, content)
        if status != 200:
            raise self.http_error(httpx2.Response(status, headers=headers), content)
        return self._json_body(status, headers, content), headers

    def _json_body(self, status: int, headers: httpx2.Headers, content: bytes) -> dict[str, Any]:
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            # a truncated body (a proxy cut the connection) is worth another attempt
            text = _text(httpx2.Response(status, headers=headers), content)
            raise ProviderError(f"HTTP 200 with a malformed JSON body: {snippet(self.scrub(text))}",
                                status=200, retryable=True) from None
        if not isinstance(data, dict):
            raise ProviderError("HTTP 200 with an unexpected body (not a JSON object)", status=200)
        if data.get("error"):
            raise self.error_in_200(data)
        return data

    def error_in_200(self, data: dict[str, Any]) -> ProviderError:
        """An error reported inside a 200 — some gateways (OpenRouter, proxies) report upstream failures
        so, and a stream reports a failure after its start so."""
        message, code, _ = self.error_info(scrub_tree(data, self.scrub))  # scrubbed before it is cut
        message = " ".join(message.split())
        inner = code if isinstance(code, int) else None
        return ProviderError(self.scrub(f"HTTP 200 with an error: {message}"), status=200,
                             retryable=inner in RETRY_STATUSES or (inner or 0) >= 500 or self.transient(code))

    def transient(self, code: Any) -> bool:
        """Whether an error code inside a 200 means a transient failure (Anthropic's `overloaded_error`)."""
        return False

    async def post_stream(self, url: str, body: dict[str, Any], on_event: Callable[[str, str], bool], *,
                          timeout_s: float | None = None) -> tuple[dict[str, Any] | None, httpx2.Headers]:
        """POST once and read the reply as server-sent events (`sse.py`), calling `on_event(event, data)`
        for each until it returns True (the stream's end); returns (None, headers). A server that ignored
        the request to stream and answered with one JSON object returns (that object, headers).
        Failures are `ProviderError`s as in `post`; a connection cut mid-stream is retryable (the runtime
        decides whether a retry is still allowed: not once a delta went out)."""
        timeout = timeout_s or self.timeout_s
        try:
            async with self._client.stream("POST", self._route(url).target, json=body, timeout=timeout) as resp:
                if resp.status_code != 200:
                    raise self.http_error(resp, await _read_capped(resp))
                if "text/event-stream" not in resp.headers.get("content-type", "text/event-stream"):
                    return self._json_body(200, resp.headers, await _read_capped(resp)), resp.headers
                async for event in sse.events(sse.lines(resp.aiter_text(), MAX_RESPONSE_BYTES)):
                    if on_event(event.event, event.data):
                        http_transport.drain_later(resp)  # only the body's end is left: keep the connection
                        break
                return None, resp.headers
        except sse.TooLarge as exc:
            raise _too_large(200, exc.size, MAX_RESPONSE_BYTES) from None
        except httpx2.TimeoutException:
            raise ProviderError(f"request timed out after {timeout:g}s", retryable=True) from None
        except httpx2.TransportError as exc:
            raise ProviderError(self.scrub(f"the stream from {self.base_url} broke: {type(exc).__name__}: {exc}"),
                                retryable=True) from None

    def event_json(self, data: str) -> dict[str, Any]:
        """One event's data as a JSON object; an error object in it is raised (`error_in_200`)."""
        try:
            value = json.loads(data)
        except ValueError:
            raise ProviderError(f"HTTP 200 with a malformed stream event: {snippet(self.scrub(data))}",
                                status=200, retryable=True) from None
        if not isinstance(value, dict):
            raise ProviderError("HTTP 200 with an unexpected stream event (not a JSON object)", status=200)
        if value.get("error"):
            raise self.error_in_200(value)
        return value

    def http_error(self, resp: httpx2.Response, content: bytes | None = None) -> ProviderError:
        """The `ProviderError` of a non-200 reply (`content`: its body, already read; else `resp.content`)."""
        status = resp.status_code
        content = resp.content if content is None else content
        try:
            data = json.loads(content)
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            data = None
        if isinstance(data, dict):
            data = scrub_tree(data, self.scrub)  # scrubbed before error_info cuts the message
            message, _, exhausted = self.error_info(data)
            message = " ".join(message.split())  # one line, whatever newlines the API's message has
        else:
            message, exhausted = snippet(self.scrub(_text(resp, content))), False  # scrubbed, then cut
        should = resp.headers.get("x-should-retry")  # OpenAI's and Anthropic's servers decide
        if should in ("true", "false"):
            retryable = should == "true"
        else:
            retryable = status in RETRY_STATUSES or status >= 500
        if exhausted or status in FINAL_STATUSES:  # e.g. money or a daily quota ran out
            retryable = False
        hint = retry_after_s(resp.headers)
        if hint is None and isinstance(data, dict):
            hint = self.body_retry_after_s(data)
        text = f"HTTP {status}" + (f": {message}" if message else "")
        if exhausted:
            text += " (quota exhausted: not retried)"
        if status in (401, 403) or (isinstance(data, dict) and self.key_rejected(data)):
            text += " (check the API key and its permissions)"
        return ProviderError(self.scrub(text), status=status, retryable=retryable, retry_after_s=hint,
                             rate_limits=rate_limits(resp.headers))

    def error_info(self, data: dict[str, Any]) -> tuple[str, Any, bool]:
        """(message, code, quota exhausted?) from an error body; subclasses know their format."""
        err = data.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err.get("code") or err.get("type") or err
            return str(message)[:500], err.get("code") or err.get("type"), False
        if err:
            return str(err)[:500], None, False
        return str(data.get("message") or data.get("detail") or "")[:500], None, False

    def body_retry_after_s(self, data: dict[str, Any]) -> float | None:
        return None

    def key_rejected(self, data: dict[str, Any]) -> bool:
        """Whether an error body (of a status other than 401/403) says the key is not valid."""
        return False

    def scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


class _Route:
    """A path's URL and, when its requests go straight to Ember's own transport (no proxy mount
    applies), the origin and the head every POST to it starts with (its Content-Length follows)."""

    __slots__ = ("target", "key", "head")

    def __init__(self, provider: HTTPProvider, url: str) -> None:
        base = provider.base_url
        self.target = httpx2.URL(base + url if url.startswith("/") else url)
        self.key: tuple[bytes, bytes, int] | None = None
        self.head: bytes | None = None
        client = provider._client
        if provider._own is not None and client._transport_for_url(self.target) is provider._own:
            self.key = http_transport.origin(self.target)
            # the headers httpx2 would send, but only the encodings this module decodes (zlib's)
            probe = client.build_request("POST", self.target, content=b"",
                                         headers={"Content-Type": "application/json",
                                                  "Accept-Encoding": "gzip, deflate"})
            headers = [(k, v) for k, v in probe.headers.raw if k.lower() != b"content-length"]
            self.head = http_transport.request_head("POST", self.target, headers)


def _json_bytes(body: dict[str, Any]) -> bytes:
    """A request body as httpx2's `json=` encodes it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _decoded(status: int, encoding: str, content: bytes, cap: int = MAX_RESPONSE_BYTES) -> bytes:
    """A gzip or deflate body decoded, refused past `cap` decoded bytes (a small body can inflate to
    gigabytes); a body it cannot decode is a retryable failure, as a truncated one is."""
    try:
        if encoding in ("gzip", "x-gzip"):
            out = _inflate(zlib.decompressobj(16 + zlib.MAX_WBITS), content, cap)
        elif encoding == "deflate":
            try:
                out = _inflate(zlib.decompressobj(), content, cap)
            except zlib.error:  # some servers send raw deflate, without the zlib header
                out = _inflate(zlib.decompressobj(-zlib.MAX_WBITS), content, cap)
        else:
            raise ProviderError(f"HTTP {status} with a body in an encoding not asked for: {encoding}", status=status)
    except zlib.error as exc:
        raise ProviderError(f"HTTP {status} with a body that does not decode as {encoding}: {exc}",
                            status=status, retryable=True) from None
    if len(out) > cap:
        raise _too_large(status, len(out), cap)
    return out


def _inflate(decoder: Any, content: bytes, cap: int) -> bytes:
    return decoder.decompress(content, cap + 1) + (b"" if decoder.unconsumed_tail else decoder.flush())


async def _read_capped(resp: httpx2.Response, cap: int = MAX_RESPONSE_BYTES) -> bytes:
    """The (decoded) body, or a `ProviderError` as soon as it is known to exceed `cap` bytes."""
    length = resp.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise _too_large(resp.status_code, int(length), cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise _too_large(resp.status_code, size, cap)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(status: int, size: int, cap: int) -> ProviderError:
    return ProviderError(f"HTTP {status} response body over {cap:,} bytes ({size:,} so far): refused",
                         status=status, retryable=False)


def _text(resp: httpx2.Response, content: bytes) -> str:
    return content.decode(resp.encoding or "utf-8", errors="replace")


def ssl_context(trust_env: bool = True) -> ssl.SSLContext:
    """One default TLS context per process (and per `SSL_CERT_FILE`/`SSL_CERT_DIR`): building one loads
    the CA bundle (~20 ms), which every run (each row of a sweep, each `run_plan`) would pay again."""
    env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
    return _ssl_context(trust_env, *env)


@functools.lru_cache(maxsize=8)
def _ssl_context(trust_env: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx2.create_ssl_context(trust_env=trust_env)


def key_env(binding: dict[str, Any], default_env: str, default_url: str) -> str | None:
    """The variable holding a binding's key. A custom `base_url` gets a key only when the binding
    names `api_key_env`: a spec must not be able to send the vendor's key to any server."""
    if binding.get("api_key_env"):
        return str(binding["api_key_env"])
    base_url = (binding.get("base_url") or "").rstrip("/")
    return default_env if base_url in ("", default_url.rstrip("/")) else None


def snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


# -- hints and limits from headers ------------------------------------------------------------------

def retry_after_s(headers: httpx2.Headers | dict[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); else None."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return _clamp(float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return _clamp(float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return _clamp(when.timestamp() - time.time())


def _clamp(seconds: float) -> float | None:
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_HINT_S)


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def duration_s(text: str | None) -> float | None:
    """`1s`, `6m0s`, `20ms`, `1h2m3.5s` (OpenAI's Go durations), `45.8s` (protobuf), `12`, or an
    RFC 3339 time (Anthropic) — as seconds from now; None when unreadable."""
    if not text:
        return None
    text = text.strip()
    try:
        return _clamp(float(text))
    except ValueError:
        pass
    parts = _GO_DURATION.findall(text)
    if parts and "".join(a + u for a, u in parts) == text:
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        return _clamp(sum(float(a) * scale[u] for a, u in parts))
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return _clamp(when.timestamp() - time.time())


def _number(headers: httpx2.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


_LIMIT_PREFIXES = (b"x-ratelimit-", b"anthropic-ratelimit-")


def rate_limits(headers: httpx2.Headers) -> RateLimits | None:
    """OpenAI's `x-ratelimit-*` or Anthropic's `anthropic-ratelimit-*` headers; None without either."""
    raw = getattr(headers, "raw", None)
    if raw is not None and not any(key.lower().startswith(_LIMIT_PREFIXES) for key, _ in raw):
        return None  # a server that reports no limits: one pass over the names, no lookups
    if "x-ratelimit-limit-requests" in headers or "x-ratelimit-remaining-requests" in headers \
            or "x-ratelimit-remaining-tokens" in headers:
        p = "x-ratelimit-"
        return RateLimits(
            _number(headers, p + "limit-requests"), _number(headers, p + "remaining-requests"),
            duration_s(headers.get(p + "reset-requests")), _number(headers, p + "limit-tokens"),
            _number(headers, p + "remaining-tokens"), duration_s(headers.get(p + "reset-tokens")))
    if "anthropic-ratelimit-requests-limit" in headers or "anthropic-ratelimit-tokens-limit" in headers \
            or "anthropic-ratelimit-input-tokens-limit" in headers:
        p = "anthropic-ratelimit-"
        # `tokens-*` is the most restrictive of the token limits; older responses only had input-tokens
        tok = "tokens-" if p + "tokens-limit" in headers else "input-tokens-"
        return RateLimits(
            _number(headers, p + "requests-limit"), _number(headers, p + "requests-remaining"),
            duration_s(headers.get(p + "requests-reset")), _number(headers, p + tok + "limit"),
            _number(headers, p + tok + "remaining"), duration_s(headers.get(p + tok + "reset")))
    return None

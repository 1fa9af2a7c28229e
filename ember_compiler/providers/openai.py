"""OpenAI-compatible chat completions over httpx2 — the one HTTP path for openai, local and any
`base_url` server (vLLM, llama.cpp, LM Studio, OpenRouter, ...).

Retries follow the Stainless SDKs (openai-python): 408/409/429/5xx and transport errors, capped
exponential backoff with jitter, `retry-after-ms` / `Retry-After` honoured (capped), `x-should-retry`
obeyed. The API key lives only in the client's headers and is scrubbed from every message.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from ..errors import ProviderError
from .base import Completion, Request

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
MAX_RETRY_AFTER_S = 60.0
_NOT_RETRIED_429 = ("insufficient_quota", "billing_hard_limit_reached")


class OpenAIProvider:
    supports_n = True

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout_s: float = 60,
        max_retries: int = 2,
        name: str = "openai",
        default_max_tokens: int | None = None,
        concurrency: int = 32,
        trust_env: bool = True,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self.name = name
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.default_max_tokens = default_max_tokens
        self._concurrency = concurrency
        self._secret = api_key or None
        self._sleep = sleep or asyncio.sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(self.timeout_s),
            limits=httpx2.Limits(max_connections=1024, max_keepalive_connections=256, keepalive_expiry=30),
            transport=transport,
            trust_env=trust_env,
        )

    def __repr__(self) -> str:  # never the key
        return f"OpenAIProvider(name={self.name!r}, base_url={self.base_url!r})"

    def default_concurrency(self, binding: dict[str, Any]) -> int:
        return self._concurrency

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- requests ---------------------------------------------------------------------------------

    def _body(self, request: Request, n: int, seed_offset: int = 0) -> dict[str, Any]:
        b = request.model
        body: dict[str, Any] = {"model": b.get("model") or "default", "messages": request.messages}
        if n != 1:
            body["n"] = n
        for key in ("temperature", "top_p"):
            if b.get(key) is not None:
                body[key] = b[key]
        max_tokens = b.get("max_tokens") or self.default_max_tokens
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if b.get("seed") is not None:
            body["seed"] = b["seed"] + seed_offset
        return body

    async def complete(self, request: Request) -> Completion:
        n = max(1, request.n)
        first = await self._call(request, self._body(request, n))
        out = _parse(first, self.name)
        # Some OpenAI-compatible servers ignore `n`: ask again for what is missing, `per` at a time.
        per = len(out.texts)
        round_ = 0
        while len(out.texts) < n:
            missing = n - len(out.texts)
            sizes = [min(per, missing - i) for i in range(0, missing, per)]
            round_ += 1
            # a fixed seed would repeat the same samples: shift it per extra request
            bodies = [self._body(request, k, seed_offset=round_ * 1000 + i + 1) for i, k in enumerate(sizes)]
            for data in await asyncio.gather(*(self._call(request, body) for body in bodies)):
                more = _parse(data, self.name)
                out.texts += more.texts
                out.finish_reasons += more.finish_reasons
                out.input_tokens += more.input_tokens
                out.output_tokens += more.output_tokens
        del out.texts[n:], out.finish_reasons[n:]
        return out

    async def post_json(self, url: str, body: dict[str, Any], *, timeout_s: float | None = None) -> Any:
        """POST `body` to `url` once with this client (no retries); the decoded JSON."""
        try:
            resp = await self._client.post(url, json=body, timeout=timeout_s or self.timeout_s)
            if resp.status_code != 200:
                raise ProviderError(f"{self.name}: {url}: HTTP {resp.status_code}", status=resp.status_code)
            return resp.json()
        except (httpx2.HTTPError, ValueError) as exc:
            raise ProviderError(self._scrub(f"{self.name}: {url}: {type(exc).__name__}: {exc}"),
                                retryable=True) from None

    async def _call(self, request: Request, body: dict[str, Any]) -> dict[str, Any]:
        b = request.model
        timeout = float(b.get("timeout_s") or self.timeout_s)
        retries = b.get("max_retries")
        retries = self.max_retries if retries is None else int(retries)
        url = self.base_url + "/chat/completions"
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                resp = await self._client.post(url, json=body, timeout=timeout)
            except httpx2.TimeoutException:
                err = ProviderError(f"{self.name}: request timed out after {timeout:g}s "
                                    f"({attempt + 1} attempt{'s' if attempt else ''})", retryable=True)
                delay = None
            except httpx2.TransportError as exc:
                err = ProviderError(self._scrub(f"{self.name}: cannot reach {self.base_url}: "
                                                f"{type(exc).__name__}: {exc}"), retryable=True)
                delay = None
            else:
                if resp.status_code == 200:
                    return self._decode(resp)
                err, delay = self._http_error(resp)
            if last or not err.retryable:
                raise err
            await self._sleep(delay if delay is not None else _backoff(attempt))
        raise AssertionError("unreachable")

    def _decode(self, resp: httpx2.Response) -> dict[str, Any]:
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise ProviderError(self._scrub(f"{self.name}: HTTP 200 with a malformed JSON body: "
                                            f"{_snippet(resp.text)}"), status=200) from None
        if not isinstance(data, dict):
            raise ProviderError(f"{self.name}: HTTP 200 with an unexpected body (not a JSON object)", status=200)
        if data.get("error"):
            raise ProviderError(self._scrub(f"{self.name}: HTTP 200 with an error: {_error_message(data)}"),
                                status=200)
        return data

    def _http_error(self, resp: httpx2.Response) -> tuple[ProviderError, float | None]:
        status = resp.status_code
        try:
            data = resp.json()
        except ValueError:
            data = None
        msg = _error_message(data) if isinstance(data, dict) else _snippet(resp.text)
        code = ""
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = str(data["error"].get("code") or data["error"].get("type") or "")
        should = resp.headers.get("x-should-retry")
        if should in ("true", "false"):
            retryable = should == "true"
        else:
            retryable = status in RETRY_STATUSES or status >= 500
        if status == 429 and code in _NOT_RETRIED_429:
            retryable = False
        delay = retry_after_s(resp.headers)
        text = f"{self.name}: HTTP {status}" + (f": {msg}" if msg else "")
        if status in (401, 403):
            text += " (check the API key and its permissions)"
        err = ProviderError(self._scrub(text), status=status, retryable=retryable)
        err.retry_after_s = delay  # type: ignore[attr-defined]  # for the runtime's shared cool-down
        return err, delay

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text


def _parse(data: dict[str, Any], name: str) -> Completion:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ProviderError(f"{name}: HTTP 200 with no choices in the response", status=200)
    try:
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        texts = [(c.get("message") or {}).get("content") or "" for c in choices]
        reasons = [c.get("finish_reason") or "" for c in choices]
    except (AttributeError, TypeError):
        raise ProviderError(f"{name}: HTTP 200 with malformed choices in the response", status=200) from None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Completion(
        texts=texts,
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        model=data.get("model"),
        finish_reasons=reasons,
        response_id=data.get("id"),
    )


def retry_after_s(headers: httpx2.Headers | dict[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or HTTP date), capped; else None."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return _cap(float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return _cap(float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return _cap(when.timestamp() - time.time())


def _cap(seconds: float) -> float | None:
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _backoff(attempt: int) -> float:
    delay = min(INITIAL_RETRY_DELAY_S * 2**attempt, MAX_RETRY_DELAY_S)
    return delay * (1 - 0.25 * random.random())


def _error_message(data: dict[str, Any]) -> str:
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or err.get("type") or err)
    if err:
        return str(err)
    return str(data.get("message") or data.get("detail") or "")[:300]


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"

"""OpenAI chat completions over httpx2 — for OpenAI and any OpenAI-compatible server (`base_url`:
vLLM, llama.cpp, Ollama, LM Studio, OpenRouter, Together, Groq, ...); also the wire of `local`.

One attempt per `complete` (the runtime retries). `n` is sent up to the API's limit (128, or the
binding's `n_limit`); a larger ensemble, or a server that caps or ignores `n`, returns fewer choices
and the runtime asks for the rest. The token limit goes out as `max_completion_tokens` for reasoning
models and as `max_tokens` otherwise, or as the binding's `max_tokens_field` (capabilities.py). Structured output uses
`response_format: {type: json_schema, strict: true}`.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from . import capabilities
from .base import Completion, Request, token_count
from .http import HTTPProvider, rate_limits

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_QUOTA_CODES = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")


class OpenAIProvider(HTTPProvider):
    name = "openai"
    supports_n = True
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 default_max_tokens: int | None = None, **kwargs: Any) -> None:
        super().__init__(base_url, api_key, **kwargs)
        self.default_max_tokens = default_max_tokens

    def body(self, request: Request) -> dict[str, Any]:
        b = request.model
        caps = capabilities.openai(b, vendor=self.base_url == DEFAULT_BASE_URL)
        body: dict[str, Any] = {"model": b.get("model") or "default", "messages": request.messages}
        n = min(request.n, caps.n_limit) if caps.n_limit else request.n
        if n != 1:  # more than the limit: the runtime asks for the rest in further requests
            body["n"] = n
        body.update(caps.sampling(b))  # temperature/top_p, unless the model rejects them
        max_tokens = b.get("max_tokens") or self.default_max_tokens
        if max_tokens is not None:
            body[caps.max_tokens_field] = max_tokens
        if b.get("seed") is not None:
            # requests split from one sampled op differ by `sample_offset`: a fixed seed would repeat them
            body["seed"] = b["seed"] + request.meta.get("sample_offset", 0)
        if self.use_schema(b, request.schema):
            schema = {k: v for k, v in request.schema.items() if k != "title"}  # type: ignore[union-attr]
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.schema.get("title") or "reply", "strict": True, "schema": schema}}  # type: ignore[union-attr]
        return body

    async def complete(self, request: Request) -> Completion:
        data, headers = await self.post("/chat/completions", self.body(request),
                                        timeout_s=self.timeout_for(request.model))
        out = parse(data)
        out.rate_limits = rate_limits(headers)
        return out

    async def post_json(self, url: str, body: dict[str, Any], *, timeout_s: float | None = None) -> Any:
        """POST `body` to `url` once with this client; the decoded JSON (used for llama.cpp's /tokenize)."""
        return (await self.post(url, body, timeout_s=timeout_s))[0]

    def error_info(self, data: dict[str, Any]) -> tuple[str, Any, bool]:
        message, code, _ = super().error_info(data)
        err = data.get("error")
        kind = err.get("type") if isinstance(err, dict) else None
        return message, code, code in _QUOTA_CODES or kind in _QUOTA_CODES


def _sample(message: dict[str, Any], reason: str) -> tuple[str, str]:
    """One choice's text and finish reason; a refusal (`content: null, refusal: "..."`, finish reason
    `stop`) is the text "" with reason `refusal`, and a filtered reply is "" (see providers/base.py)."""
    if message.get("refusal"):
        return "", "refusal"
    if reason == "content_filter":
        return "", reason
    return message.get("content") or "", reason


def parse(data: dict[str, Any]) -> Completion:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ProviderError("HTTP 200 with no choices in the response", status=200)
    try:
        choices = sorted(choices, key=lambda c: c.get("index", 0))
        texts, reasons = [], []
        for c in choices:
            text, reason = _sample(c.get("message") or {}, c.get("finish_reason") or "")
            texts.append(text)
            reasons.append(reason)
    except (AttributeError, TypeError):
        raise ProviderError("HTTP 200 with malformed choices in the response", status=200) from None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Completion(
        texts=texts,
        input_tokens=token_count(usage, "prompt_tokens"),
        output_tokens=token_count(usage, "completion_tokens"),
        model=data.get("model"),
        finish_reasons=reasons,
        response_id=data.get("id"),
        cached_tokens=max(0, token_count({"cached": cached}, "cached")),
        usage_missing=not isinstance(data.get("usage"), dict),
    )

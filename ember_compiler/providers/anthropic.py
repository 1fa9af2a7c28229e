"""Anthropic Messages (`POST {base_url}/v1/messages`) over httpx2.

One attempt per `complete` (the runtime retries; 529 `overloaded_error` is retryable and starts a
shared cool-down). The API has no `n`: the op's samples arrive as separate requests. System messages
go to the top-level `system` field. Structured output is a forced tool call whose `input_schema` is
the op's schema; its input comes back as the reply text (JSON). Usage counts cache reads and writes
as part of the input, like the other providers.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ProviderError
from .base import Completion, Request
from .http import HTTPProvider, rate_limits

DEFAULT_BASE_URL = "https://api.anthropic.com"  # the SDKs' convention: the path carries /v1
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens; a binding sets its own with `max_tokens`


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    supports_n = False
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key, "anthropic-version": API_VERSION}

    def body(self, request: Request) -> dict[str, Any]:
        b = request.model
        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": b.get("model"),
            "max_tokens": b.get("max_tokens") or DEFAULT_MAX_TOKENS,
            "messages": [{"role": m["role"], "content": m["content"]}
                         for m in request.messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        for key in ("temperature", "top_p"):
            if b.get(key) is not None:
                body[key] = b[key]
        if self.use_schema(b, request.schema):
            name = request.schema.get("title") or "reply"  # type: ignore[union-attr]
            schema = {k: v for k, v in request.schema.items() if k != "title"}  # type: ignore[union-attr]
            body["tools"] = [{"name": name, "description": f"Record your {name}.", "input_schema": schema}]
            body["tool_choice"] = {"type": "tool", "name": name}
        return body

    async def complete(self, request: Request) -> Completion:
        data, headers = await self.post("/v1/messages", self.body(request),
                                        timeout_s=self.timeout_for(request.model))
        out = parse(data)
        out.rate_limits = rate_limits(headers)
        return out

    def error_info(self, data: dict[str, Any]) -> tuple[str, Any, bool]:
        # {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        err = data.get("error")
        if isinstance(err, dict):
            kind = err.get("type")
            message = str(err.get("message") or kind or "")[:500]
            return (f"{kind}: {message}" if kind and kind not in message else message), kind, False
        return super().error_info(data)


def parse(data: dict[str, Any]) -> Completion:
    content = data.get("content")
    if data.get("type") not in (None, "message") or not isinstance(content, list):
        raise ProviderError("HTTP 200 with no content in the response", status=200)
    texts, tool_input = [], None
    for block in content:
        if not isinstance(block, dict):
            raise ProviderError("HTTP 200 with malformed content in the response", status=200)
        if block.get("type") == "text":
            texts.append(block.get("text") or "")
        elif block.get("type") == "tool_use" and tool_input is None:
            tool_input = block.get("input")
    # a forced tool call is the structured reply; its JSON is the text the op parses. Only `text`
    # blocks are the answer (not `thinking`/`redacted_thinking`); a refusal is "" (providers/base.py)
    text = json.dumps(tool_input) if tool_input is not None else "".join(texts)
    if data.get("stop_reason") == "refusal":
        text = ""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return Completion(
        texts=[text],
        input_tokens=int(usage.get("input_tokens") or 0) + read + written,
        output_tokens=int(usage.get("output_tokens") or 0),
        model=data.get("model"),
        finish_reasons=[data.get("stop_reason") or ""],
        response_id=data.get("id"),
        cached_tokens=read,
        cache_write_tokens=written,
    )

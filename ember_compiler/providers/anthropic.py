"""Anthropic Messages (`POST {base_url}/v1/messages`) over httpx2.

One attempt per `complete` (the runtime retries; 529 `overloaded_error` is retryable and starts a
shared cool-down). The API has no `n`: the op's samples arrive as separate requests. System messages
go to the top-level `system` field. The `anthropic-version` header goes with every request;
`temperature` and `top_p` never together (temperature wins), neither for models that reject them
(capabilities.py; the runtime warns). Structured output is a forced tool call whose `input_schema` is
the op's schema; its input comes back as the reply text (JSON). Usage counts cache reads and writes
as part of the input, like the other providers.

A request with `on_text` is sent with `stream: true` and read as the Messages API's events:
`message_start` (the message with its input usage), `content_block_start`/`_delta`/`_stop` (each
`text_delta` goes to `on_text`; `thinking_delta`s do not, nor the tool call's `input_json_delta`s:
a structured reply's JSON is not prose), `message_delta` (the stop reason and the cumulative usage),
`message_stop`, `ping`, and `error` (an `overloaded_error` there is retryable, as a 529 is). The
events are put back together into the message `parse` reads; a stream that ends before
`message_stop` is a retryable failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..errors import ProviderError
from . import capabilities
from .base import Completion, Request, token_count
from .http import HTTPProvider, rate_limits

DEFAULT_BASE_URL = "https://api.anthropic.com"  # the SDKs' convention: the path carries /v1
API_VERSION = capabilities.RULES["anthropic"]["api_version"]  # sent on every request, with a key or not
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens; a binding sets its own with `max_tokens`


class AnthropicProvider(HTTPProvider):
    name = "anthropic"
    supports_n = False
    default_base_url = DEFAULT_BASE_URL

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def base_headers(self) -> dict[str, str]:
        # required on every request: a gateway at a custom base_url that adds the key itself needs it too
        return {"anthropic-version": API_VERSION}

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
        body.update(capabilities.anthropic(b).sampling(b))  # temperature, never with top_p
        if self.use_schema(b, request.schema):
            name = request.schema.get("title") or "reply"  # type: ignore[union-attr]
            schema = {k: v for k, v in request.schema.items() if k != "title"}  # type: ignore[union-attr]
            body["tools"] = [{"name": name, "description": f"Record your {name}.", "input_schema": schema}]
            body["tool_choice"] = {"type": "tool", "name": name}
        return body

    async def complete(self, request: Request) -> Completion:
        body, timeout_s = self.body(request), self.timeout_for(request.model)
        if request.on_text is not None:
            body["stream"] = True
            events = Events(request.on_text if "tools" not in body else None)
            data, headers = await self.post_stream("/v1/messages", body, events.reader(self), timeout_s=timeout_s)
            if data is None:
                data = events.message()
        else:
            data, headers = await self.post("/v1/messages", body, timeout_s=timeout_s)
        out = parse(data)
        out.cache_write_1h_tokens = cache_write_1h_tokens(data, out.cache_write_tokens)
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

    def transient(self, code: Any) -> bool:
        # an `error` event mid-stream: the same failures a 529 or a 500 would have been
        return code in ("overloaded_error", "api_error")


class Events:
    """The events of one streamed message, put back together as the unstreamed message."""

    __slots__ = ("on_text", "message_", "blocks", "json_parts", "done")

    def __init__(self, on_text: Callable[[str], None] | None) -> None:
        self.on_text = on_text  # None: nothing streams (a structured reply: its JSON is not the answer's prose)
        self.message_: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}
        self.json_parts: dict[int, list[str]] = {}  # a tool_use block's input, as it arrives
        self.done = False

    def reader(self, provider: AnthropicProvider) -> Callable[[str, str], bool]:
        def read(event: str, data: str) -> bool:
            value = provider.event_json(data)  # an `error` event raises here
            try:
                self.add(value.get("type") or event, value)
            except (AttributeError, TypeError, KeyError):
                raise ProviderError(f"HTTP 200 with a malformed {event} event in the stream", status=200) from None
            return self.done
        return read

    def add(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "message_start":
            self.message_ = dict(event["message"])
            self.message_["usage"] = dict(self.message_.get("usage") or {})
        elif kind == "content_block_start":
            self.blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block, delta = self.blocks[event["index"]], event["delta"]
            if delta.get("type") == "text_delta":
                block["text"] = (block.get("text") or "") + delta["text"]
                if self.on_text is not None and delta["text"]:
                    self.on_text(delta["text"])
            elif delta.get("type") == "input_json_delta":
                self.json_parts.setdefault(event["index"], []).append(delta.get("partial_json") or "")
        elif kind == "message_delta":
            self.message_.update({k: v for k, v in (event.get("delta") or {}).items() if k in ("stop_reason",
                                                                                             "stop_sequence")})
            # the counts are cumulative; newer servers repeat the input counts here too
            usage = self.message_.setdefault("usage", {})
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            self.done = True

    def message(self) -> dict[str, Any]:
        """The message the events make up (what `parse` reads)."""
        if not self.done:
            raise ProviderError("HTTP 200 but the stream ended before the message was complete", status=200,
                                retryable=True)
        for i, parts in self.json_parts.items():
            try:
                self.blocks[i]["input"] = json.loads("".join(parts) or "{}")
            except ValueError:
                raise ProviderError("HTTP 200 with a malformed tool input in the stream", status=200) from None
        return {**self.message_, "content": [self.blocks[i] for i in sorted(self.blocks)]}


def cache_write_1h_tokens(data: dict[str, Any], written: int) -> int:
    """Of the cache writes, those with the 1-hour lifetime (`usage.cache_creation`), billed at 2x input
    where 5-minute writes cost 1.25x; at most `written` (the total the usage reports)."""
    usage = data.get("usage")
    detail = usage.get("cache_creation") if isinstance(usage, dict) else None
    if not isinstance(detail, dict):
        return 0
    try:
        return min(max(int(detail.get("ephemeral_1h_input_tokens") or 0), 0), written)
    except (TypeError, ValueError):
        return 0


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
    read = max(0, token_count(usage, "cache_read_input_tokens"))
    written = max(0, token_count(usage, "cache_creation_input_tokens"))
    return Completion(
        texts=[text],
        input_tokens=token_count(usage, "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"),
        output_tokens=token_count(usage, "output_tokens"),
        model=data.get("model"),
        finish_reasons=[data.get("stop_reason") or ""],
        response_id=data.get("id"),
        cached_tokens=read,
        cache_write_tokens=written,
        usage_missing=not isinstance(data.get("usage"), dict),
    )

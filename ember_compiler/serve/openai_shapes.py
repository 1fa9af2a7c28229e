"""The OpenAI Chat Completions wire shapes `ember serve` reads and writes: the request it accepts, the
completion, the stream chunks and the error object (`{"error": {message, type, param, code}}`)."""

from __future__ import annotations

import json
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# status -> the error `type` OpenAI sends with it
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
          405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error",
          500: "server_error", 502: "upstream_error", 503: "server_error", 504: "timeout_error"}


class ApiError(Exception):
    """An answer that is an OpenAI error object with `status` (and `Retry-After` when given)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": _TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(max(1, int(-(-self.retry_after_s // 1))))}  # whole seconds, rounded up


class EmberExtra(BaseModel):
    """`extra_body={"ember": {...}}`: what an OpenAI request cannot say."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    budget: dict[str, Any] | None = None
    set: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (the text parts of a multi-part content, joined)."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields Ember reads; every other Chat Completions field (temperature, top_p, max_tokens,
    tools, ...) is accepted and ignored: a spec's own bindings say how its inner models sample."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[Message] = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    ember: EmberExtra | None = None


def parse_request(raw: bytes) -> ChatRequest:
    """The request body as a `ChatRequest`.

    Raises:
        ApiError: 400 for a body that is not JSON, or a field that is missing or wrong (named in `param`).
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{param}: {first['msg']}", param=param) from None


def usage_json(input_tokens: int, output_tokens: int, cached_tokens: int) -> dict[str, Any]:
    """OpenAI's `usage`: prompt tokens include the cached ones, which are also given apart."""
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens}}


def completion(request_id: str, model: str, created: int, contents: list[str], usage: dict[str, Any],
               ember: dict[str, Any]) -> dict[str, Any]:
    return {"id": request_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": "stop"} for i, text in enumerate(contents)],
            "usage": usage, "ember": ember}


def chunk(request_id: str, model: str, created: int, index: int, delta: dict[str, Any],
          finish_reason: str | None = None, extra: dict[str, Any] | None = None) -> bytes:
    """One SSE event carrying a `chat.completion.chunk` with one choice (and `extra` top-level fields)."""
    return sse({"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                **(extra or {})})


def usage_chunk(request_id: str, model: str, created: int, usage: dict[str, Any], ember: dict[str, Any]) -> bytes:
    """The last chunk with `stream_options.include_usage`: no choices, the usage."""
    return sse({"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": usage, "ember": ember})


# one encoder for every answer: `json.dumps` with `separators` builds a new `JSONEncoder` per call
encode = json.JSONEncoder(separators=(",", ":")).encode


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + encode(data).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def now() -> int:
    return int(time.time())


def model_entry(name: str, description: str | None, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "ember",
            **({"description": description} if description else {})}
